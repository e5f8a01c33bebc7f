"""The training loop: ``TrainState``, a pure ``train_step``, and ``fit``."""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from .._checks import check_key
from . import _checkpoint

Array = jax.Array
Params = Any
Batch = Any
LossFn = Callable[[Params, Batch, Array], tuple[Array, dict[str, Array]]]
EvalFn = Callable[[Params], dict[str, Array]]


class TrainState(NamedTuple):
    """The whole state of a training run, carried from step to step (a pytree).

    Attributes:
      params: the model's params.
      opt_state: the optimizer's state.
      step: int32 scalar, the number of updates applied so far.
      key: the PRNG key the next step splits for its data and its loss.
    """

    params: Params
    opt_state: optax.OptState
    step: Array
    key: Array

    @classmethod
    def create(
        cls, params: Params, optimizer: optax.GradientTransformation, key: Array
    ) -> TrainState:
        """The state before the first step: ``optimizer.init(params)``, ``step = 0``."""
        with _standard_promotion():
            opt_state = optimizer.init(params)
        return cls(params, opt_state, jnp.zeros((), jnp.int32), key)


class History(NamedTuple):
    """What :func:`fit` recorded: NumPy arrays, ready to plot.

    Attributes:
      step: ``[N]`` the step number (1..N) of each training record.
      train: ``"loss"``, ``"grad_norm"`` (global norm of the gradient before clipping) and
        the loss function's metrics, each ``[N]``: one value per step, on its own batch.
      eval_step: ``[M]`` the steps at which ``eval_fn`` ran (0 is before training).
      eval: ``eval_fn``'s metrics, each ``[M]``.
      seconds: ``[M]`` wall-clock seconds from the start of ``fit`` to each evaluation
        (compilation included).
    """

    step: np.ndarray
    train: dict[str, np.ndarray]
    eval_step: np.ndarray
    eval: dict[str, np.ndarray]
    seconds: np.ndarray

    def to_dict(self) -> dict[str, list]:
        """A flat, JSON-ready dict of lists: ``step``, the train records by name (``loss``,
        ...), ``eval_step``, the evaluations as ``eval_<name>``, and ``seconds``."""
        out: dict[str, list] = {"step": self.step.tolist()}
        out.update({k: v.tolist() for k, v in self.train.items()})
        out["eval_step"] = self.eval_step.tolist()
        out.update({f"eval_{k}": v.tolist() for k, v in self.eval.items()})
        out["seconds"] = self.seconds.tolist()
        return out


def train_step(
    loss_fn: LossFn, optimizer: optax.GradientTransformation
) -> Callable[[TrainState, Batch], tuple[TrainState, dict[str, Array]]]:
    """A pure, jittable training step from a loss function and an optax optimizer.

    Args:
      loss_fn: ``(params, batch, key) -> (loss, metrics)``, see the module docstring.
      optimizer: any ``optax.GradientTransformation`` (chain ``optax.clip_by_global_norm``
        in front of it to clip).

    Returns:
      ``step(state, batch) -> (state, metrics)``: one update of ``state.params``, with
      ``metrics`` holding ``"loss"``, the loss function's metrics and ``"grad_norm"``.

    Examples:
      >>> import jax, jax.numpy as jnp, optax
      >>> from gatedcells import training
      >>> loss_fn = lambda p, batch, key: (jnp.sum((p - batch) ** 2), {})
      >>> step = jax.jit(training.train_step(loss_fn, optax.sgd(0.25)))
      >>> state = training.TrainState.create(jnp.zeros(2), optax.sgd(0.25), jax.random.key(0))
      >>> state, metrics = step(state, jnp.array([1.0, -1.0]))
      >>> state.params.tolist(), float(metrics["loss"]), int(state.step)
      ([0.5, -0.5], 2.0, 1)
    """

    check_loss_and_optimizer(loss_fn, optimizer)

    def checked_loss(params, batch, key):
        out = loss_fn(params, batch, key)
        if not (isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], Mapping)):
            got = f"an array of shape {jnp.shape(out)}" if hasattr(out, "shape") else repr(out)
            raise TypeError(
                "loss_fn must return (loss, metrics): a scalar and a dict of scalars (may be "
                f"empty), got {got}"
            )
        loss = out[0]
        if jnp.shape(loss) != () or not jnp.issubdtype(jnp.result_type(loss), jnp.floating):
            raise TypeError(
                f"loss_fn's loss must be a floating scalar, got shape {jnp.shape(loss)} and "
                f"dtype {jnp.result_type(loss)}"
            )
        return out

    def step(state: TrainState, batch: Batch) -> tuple[TrainState, dict[str, Array]]:
        key, loss_key = jax.random.split(state.key)
        grad_fn = jax.value_and_grad(checked_loss, has_aux=True)
        (loss, metrics), grads = grad_fn(state.params, batch, loss_key)
        with _standard_promotion():  # optax's own code relies on implicit promotion
            updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
            params = optax.apply_updates(state.params, updates)
        metrics = {"loss": loss, **metrics, "grad_norm": _global_norm(grads)}
        return TrainState(params, opt_state, state.step + 1, key), metrics

    return step


def fit(
    loss_fn: LossFn,
    params: Params,
    optimizer: optax.GradientTransformation,
    data: Callable[[Array], Batch] | Iterable[Batch],
    *,
    steps: int,
    key: Array,
    eval_fn: EvalFn | None = None,
    eval_every: int | None = None,
    clip_norm: float | None = None,
    log_every: int = 50,
    progress: bool = True,
    desc: str | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    checkpoint_every: int | None = None,
    resume: bool = False,
    config: dict | None = None,
    mesh: Mesh | str | None = "auto",
) -> tuple[Params, History]:
    """Train ``params`` for ``steps`` updates; return the trained params and a history.

    Steps run ``log_every`` at a time inside one compiled ``jax.lax.scan``, so a small model
    does not pay Python's dispatch cost per step, and every step's loss is still recorded.
    When ``data`` is a sampler (``key -> batch``, e.g. ``functools.partial(task.sample,
    batch_size=64)``), the batches are generated inside the compiled loop too.

    The run is deterministic: ``key`` seeds the data and the loss's keys (dropout), so the
    same arguments give bit-identical params on the same machine. (The params' own
    initialisation is the caller's, from a key of their own.)

    **Checkpoints.** With ``checkpoint_dir``, the whole run (params, optimizer state, step,
    PRNG key, the history so far) is saved there with orbax-checkpoint every
    ``checkpoint_every`` steps and at the end, atomically: a process killed at any moment,
    in the middle of a save included, leaves the last complete checkpoint. ``resume=True``
    goes on from the latest one (or starts afresh when there is none, so a job script may
    always pass it), and ends with params and a history bit-identical to those of a run
    never interrupted (``History.seconds`` aside: wall-clock time). A checkpoint of another
    model (leaves of other paths, shapes or dtypes) or another ``config`` is refused before
    anything is loaded. With an iterable ``data``, a resumed run skips the batches already
    used, so the iterable must yield the same batches again.

    **Several devices.** With ``mesh="auto"`` and more than one device (``jax.devices()``:
    every GPU, TPU core or ``--xla_force_host_platform_device_count`` CPU device, across
    processes after ``jax.distributed.initialize()``), the run is data-parallel: the state
    is replicated over a one-axis ``Mesh`` of all devices, each batch is split along its
    leading axis (which the device count must divide), and XLA inserts the gradient's
    all-reduce. The results equal those of one device up to float rounding (sums over the
    batch run in another order). ``mesh=None`` keeps one device; a ``jax.sharding.Mesh`` of
    your own splits the batch over all its axes.

    Args:
      loss_fn: ``(params, batch, key) -> (loss, metrics)``.
      params: the initial params.
      optimizer: an optax optimizer.
      data: a pure sampler ``key -> batch`` (jittable), or an iterable of batches (each step
        takes the next one; it must hold at least ``steps`` batches).
      steps: the number of updates.
      key: the PRNG key of the run.
      eval_fn: ``params -> dict of scalars``, run (jitted) before training, every
        ``eval_every`` steps and at the end.
      eval_every: steps between evaluations (default: ``steps // 10``, at least 1).
      clip_norm: clip the gradient to this global norm before the optimizer (``None``: no
        clipping).
      log_every: steps per compiled call (at most; fewer if ``eval_every`` is smaller), and
        between progress-bar updates.
      progress: show a tqdm progress bar with the loss and the metrics.
      desc: the progress bar's label.
      checkpoint_dir: a folder for checkpoints (created if missing), or ``None`` for none.
      checkpoint_every: steps between checkpoints (default: ``eval_every``); the last
        step is always saved.
      resume: go on from the latest checkpoint in ``checkpoint_dir``. Without it, a
        ``checkpoint_dir`` that already holds checkpoints is refused (nothing is
        overwritten).
      config: a JSON-serialisable dict describing the run (saved with each checkpoint;
        resuming requires an equal one), e.g. the options of a command line.
      mesh: ``"auto"``, ``None`` or a ``jax.sharding.Mesh``: see above.

    Returns:
      ``(params, history)``: the trained params and a :class:`History`.

    Raises:
      TypeError: ``loss_fn`` not a function or returning something other than ``(scalar
        loss, dict)``, ``optimizer`` not an optax optimizer, ``key`` not a PRNG key, or
        ``eval_fn`` not returning a dict (see also below).
      ValueError: for non-positive ``steps``, ``eval_every``, ``log_every``,
        ``checkpoint_every`` or ``clip_norm``, an iterable ``data`` that runs out, a
        checkpoint of another run, a ``checkpoint_dir`` holding checkpoints without
        ``resume``, a checkpoint past ``steps``, or a batch the devices do not divide.
      TypeError: when ``data`` is neither callable nor iterable, or ``mesh`` is not a mesh.

    Examples:
      >>> import jax, jax.numpy as jnp, optax
      >>> from gatedcells import training
      >>> target = jnp.array([1.0, -2.0])
      >>> loss_fn = lambda p, batch, key: (jnp.sum((p - batch) ** 2), {})
      >>> params, history = training.fit(
      ...     loss_fn, jnp.zeros(2), optax.adam(0.1), lambda key: target,
      ...     steps=200, key=jax.random.key(0), progress=False)
      >>> [round(float(p), 2) for p in params], history.train["loss"].shape
      ([1.0, -2.0], (200,))
    """
    check_loss_and_optimizer(loss_fn, optimizer)
    check_key("key", key)
    if eval_fn is not None and not callable(eval_fn):
        raise TypeError(f"eval_fn must be a function params -> dict of scalars, got {eval_fn!r}")
    check_positive_int("steps", steps)
    eval_every = max(1, steps // 10) if eval_every is None else eval_every
    check_positive_int("eval_every", eval_every)
    check_positive_int("log_every", log_every)
    checkpoint_every = eval_every if checkpoint_every is None else checkpoint_every
    check_positive_int("checkpoint_every", checkpoint_every)
    if clip_norm is not None:
        if not clip_norm > 0:
            raise ValueError(f"clip_norm must be positive or None, got {clip_norm!r}")
        optimizer = optax.chain(optax.clip_by_global_norm(clip_norm), optimizer)
    if resume and checkpoint_dir is None:
        raise ValueError("resume=True needs a checkpoint_dir to resume from")
    if config is not None:  # as it reads back from a checkpoint (tuples become lists)
        try:
            config = json.loads(json.dumps(config))
        except (TypeError, ValueError) as err:
            raise TypeError(f"config must be JSON-serialisable: {err}") from None
    mesh = data_mesh(mesh)
    run = _chunk_runner(train_step(loss_fn, optimizer), data, mesh)
    batches = None if callable(data) else iter(data)
    evaluate = None if eval_fn is None else jax.jit(eval_fn)

    from tqdm import tqdm  # the text bar: it also works in notebooks without ipywidgets

    state = TrainState.create(params, optimizer, key)
    if mesh is not None:
        state = jax.device_put(state, NamedSharding(mesh, PartitionSpec()))
    records: list[dict[str, np.ndarray]] = []
    evals: list[dict[str, float]] = []
    eval_steps: list[int] = []
    seconds: list[float] = []
    elapsed = 0.0
    manager = None
    if checkpoint_dir is not None:
        manager = _checkpoint.manager(checkpoint_dir)
        latest = manager.latest_step()
        if latest is not None and not resume:
            raise ValueError(
                f"checkpoint_dir {os.fspath(checkpoint_dir)} already holds a run's checkpoints "
                f"(latest step {latest}): pass resume=True to go on with it, or choose "
                "another folder"
            )
        restored = _checkpoint.restore(manager, state, config, os.fspath(checkpoint_dir))
        if restored is not None:
            state, saved = restored
            train, old_evals, eval_steps, seconds = _checkpoint.history_from_json(saved)
            records = [train] if train else []
            evals = [dict(e) for e in old_evals]
            elapsed = seconds[-1] if seconds else 0.0
    done = int(state.step)
    if done > steps:
        raise ValueError(
            f"the checkpoint in {os.fspath(checkpoint_dir)} is at step {done}, past steps={steps}"
        )
    if batches is not None and 0 < done < steps:
        _take(batches, done, 0)  # the batches the checkpointed steps used
    start = time.perf_counter() - elapsed

    def record_eval(step: int) -> None:
        if evaluate is not None:
            values = evaluate(state.params)
            if not isinstance(values, dict):
                raise TypeError(
                    f"eval_fn must return a dict of scalars, got {type(values).__name__}"
                )
            evals.append({k: float(v) for k, v in values.items()})
            eval_steps.append(step)
            seconds.append(time.perf_counter() - start)

    def save() -> None:
        train = {k: np.concatenate([r[k] for r in records]) for k in records[0]} if records else {}
        history = _checkpoint.history_to_json(train, evals, eval_steps, seconds)
        _checkpoint.save(manager, state, history, config)

    if done == 0:
        record_eval(0)
    # Chunk boundaries depend on the step number only: a resumed run compiles and runs the
    # same chunks as an uninterrupted one, hence the same bits.
    chunk = _chunk_length(log_every, eval_every, checkpoint_every)
    with tqdm(total=steps, initial=done, desc=desc, disable=not progress, leave=True) as bar:
        while done < steps:
            n = min(
                chunk - done % chunk,
                eval_every - done % eval_every,
                checkpoint_every - done % checkpoint_every,
                steps - done,
            )
            stacked = None if batches is None else _take(batches, n, done)
            state, metrics = run(state, stacked, n)
            records.append(jax.tree.map(np.asarray, metrics))
            done += n
            if done % eval_every == 0 or done == steps:
                record_eval(done)
            if manager is not None and (done % checkpoint_every == 0 or done == steps):
                save()
            postfix = {k: v[-n:].mean() for k, v in records[-1].items() if k != "grad_norm"}
            postfix.update({f"eval_{k}": v for k, v in (evals[-1] if evals else {}).items()})
            bar.set_postfix({k: f"{float(v):.4g}" for k, v in postfix.items()}, refresh=False)
            bar.update(n)
    if manager is not None:
        if manager.latest_step() != steps:  # resumed at the very end of a finished run
            save()
        manager.close()
    names = list(records[0]) if records else []
    history = History(
        step=np.arange(1, steps + 1),
        train={k: np.concatenate([r[k] for r in records]) for k in names},
        eval_step=np.asarray(eval_steps, np.int64),
        eval={k: np.asarray([e[k] for e in evals]) for k in (evals[0] if evals else {})},
        seconds=np.asarray(seconds),
    )
    return state.params, history


def data_mesh(mesh: Mesh | str | None) -> Mesh | None:
    """The mesh :func:`fit` shards batches over: ``"auto"`` is a one-axis ``("data",)`` mesh of
    every device when there is more than one, else ``None`` (one device)."""
    if isinstance(mesh, str):
        if mesh != "auto":
            raise ValueError(f'mesh must be "auto", None or a jax.sharding.Mesh, got {mesh!r}')
        devices = jax.devices()
        return Mesh(np.asarray(devices), ("data",)) if len(devices) > 1 else None
    if mesh is not None and not isinstance(mesh, Mesh):
        raise TypeError(f'mesh must be "auto", None or a jax.sharding.Mesh, got {mesh!r}')
    return mesh


@contextlib.contextmanager
def _standard_promotion():
    """JAX's default promotion rules, whatever the user's config (optax's adam computes
    ``decay ** count`` with an int32 count, an error under ``jax_numpy_dtype_promotion=
    "strict"``)."""
    with jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"):
        yield


def _global_norm(tree: Any) -> Array:
    leaves = [jnp.sum(jnp.square(leaf.astype(jnp.float32))) for leaf in jax.tree.leaves(tree)]
    return jnp.sqrt(sum(leaves, jnp.zeros((), jnp.float32)))


def check_loss_and_optimizer(loss_fn: Any, optimizer: Any) -> None:
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be a function (params, batch, key) -> (loss, metrics), "
                        f"got {loss_fn!r}")  # fmt: skip
    if not (
        callable(getattr(optimizer, "init", None)) and callable(getattr(optimizer, "update", None))
    ):
        raise TypeError(
            f"optimizer must be an optax.GradientTransformation (e.g. optax.adam(1e-3)), got "
            f"{optimizer!r}"
        )


def check_positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def _chunk_length(log_every: int, eval_every: int, checkpoint_every: int) -> int:
    """Steps per compiled call: one length for the whole run where possible.

    Each distinct length is compiled once, so the chunks should all be equal: the largest
    divisor of both the evaluation and the checkpoint periods that is at most ``log_every``
    (e.g. ``eval_every=60, log_every=50`` runs chunks of 30, not 50, 10, 40, 20, 30, ...
    each compiled anew). When the periods share no divisor that large, chunks of up to
    ``min(log_every, eval_every)`` steps end at each boundary instead.
    """
    period = math.gcd(eval_every, checkpoint_every)
    upper = min(log_every, eval_every)
    chunk = max(d for d in range(1, min(log_every, period) + 1) if period % d == 0)
    return chunk if 2 * chunk >= upper else upper


def _chunk_runner(step: Callable, data: Any, mesh: Mesh | None) -> Callable:
    """A jitted ``run(state, stacked_batches, n) -> (state, metrics [n])``; with a ``mesh``,
    batches are split over its devices along their leading axis and the state replicated."""
    shard = _batch_sharder(mesh)
    if callable(data):

        def body(state, _):
            key, data_key = jax.random.split(state.key)
            return step(state._replace(key=key), shard(data(data_key)))

    elif isinstance(data, Iterable):

        def body(state, batch):
            return step(state, shard(batch))

    else:
        raise TypeError(f"data must be a sampler (key -> batch) or an iterable, got {data!r}")

    def run(state: TrainState, stacked: Batch | None, n: int):
        return jax.lax.scan(body, state, stacked, length=n)

    if mesh is None:
        return jax.jit(run, static_argnums=2)
    replicated = NamedSharding(mesh, PartitionSpec())
    return jax.jit(run, static_argnums=2, out_shardings=replicated)


def _batch_sharder(mesh: Mesh | None) -> Callable[[Batch], Batch]:
    """``batch -> batch`` constrained to be split over ``mesh`` along every leaf's axis 0."""
    if mesh is None:
        return lambda batch: batch
    sharding = NamedSharding(mesh, PartitionSpec(mesh.axis_names))

    def constrain(leaf):
        if np.ndim(leaf) == 0:
            return leaf
        if leaf.shape[0] % mesh.size:
            raise ValueError(
                f"a batch of {leaf.shape[0]} (leading axis of a leaf of shape "
                f"{tuple(leaf.shape)}) does not split over {mesh.size} devices; use a batch "
                "size they divide, or mesh=None for one device"
            )
        return jax.lax.with_sharding_constraint(leaf, sharding)

    return lambda batch: jax.tree.map(constrain, batch)


def _take(batches: Iterator[Batch], n: int, done: int) -> Batch:
    chunk = []
    for _ in range(n):
        try:
            chunk.append(next(batches))
        except StopIteration:
            raise ValueError(
                f"data ran out after {done + len(chunk)} batches; fit needs one per step"
            ) from None
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *chunk)
