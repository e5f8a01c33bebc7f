r"""Training with optax: a pure train step, a ``fit`` loop, and models for the tasks.

The pieces, from the bottom up:

- :class:`TrainState` ``(params, opt_state, step, key)`` is everything a training run
  carries from one step to the next: a pytree, so it can be jitted over, sharded and saved.
- :func:`train_step` builds a pure, jittable ``step(state, batch) -> (state, metrics)`` from
  a loss function and an optax optimizer.
- :func:`fit` runs that step (many steps per compiled call, with ``jax.lax.scan``) with a
  tqdm progress bar, periodic evaluation and optional gradient clipping, and returns the
  trained params and a :class:`History` of arrays ready to plot. It is deterministic: the
  same ``key`` gives bit-identical params.
- :func:`task_model` and :func:`fit_task` train any cell on any :mod:`gatedcells.tasks`
  task with a linear readout: what ``gatedcells train`` and ``gatedcells demo`` run.

A loss function has the signature ``loss_fn(params, batch, key) -> (loss, metrics)``: a
scalar loss to minimise, a dict of scalar metrics to record (may be empty), and a fresh
PRNG key per step for dropout (ignore it when unused). With a Flax module::

    def loss_fn(params, batch, key):
        xs, ys = batch
        logits = model.apply({"params": params}, xs, rngs={"dropout": key})
        return task.loss(logits, ys), {"accuracy": task.metric(logits, ys)}

``import gatedcells`` does not import this module; it needs optax and tqdm
(``pip install 'gatedcells[train]'``).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from . import tasks as _tasks
from ._cell import Cell, along_last
from ._unroll import unroll

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

    def step(state: TrainState, batch: Batch) -> tuple[TrainState, dict[str, Array]]:
        key, loss_key = jax.random.split(state.key)
        grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
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
) -> tuple[Params, History]:
    """Train ``params`` for ``steps`` updates; return the trained params and a history.

    Steps run ``log_every`` at a time inside one compiled ``jax.lax.scan``, so a small model
    does not pay Python's dispatch cost per step, and every step's loss is still recorded.
    When ``data`` is a sampler (``key -> batch``, e.g. ``functools.partial(task.sample,
    batch_size=64)``), the batches are generated inside the compiled loop too.

    The run is deterministic: ``key`` seeds the data and the loss's keys (dropout), so the
    same arguments give bit-identical params on the same machine. (The params' own
    initialisation is the caller's, from a key of their own.)

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

    Returns:
      ``(params, history)``: the trained params and a :class:`History`.

    Raises:
      ValueError: for non-positive ``steps``, ``eval_every``, ``log_every`` or ``clip_norm``,
        or an iterable ``data`` that runs out.
      TypeError: when ``data`` is neither callable nor iterable.

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
    _check_positive_int("steps", steps)
    eval_every = max(1, steps // 10) if eval_every is None else eval_every
    _check_positive_int("eval_every", eval_every)
    _check_positive_int("log_every", log_every)
    if clip_norm is not None:
        if not clip_norm > 0:
            raise ValueError(f"clip_norm must be positive or None, got {clip_norm!r}")
        optimizer = optax.chain(optax.clip_by_global_norm(clip_norm), optimizer)
    run = _chunk_runner(train_step(loss_fn, optimizer), data)
    batches = None if callable(data) else iter(data)
    evaluate = None if eval_fn is None else jax.jit(eval_fn)

    from tqdm.auto import tqdm

    start = time.perf_counter()
    state = TrainState.create(params, optimizer, key)
    records: list[dict[str, np.ndarray]] = []
    evals: list[dict[str, float]] = []
    eval_steps: list[int] = []
    seconds: list[float] = []

    def record_eval(step: int) -> None:
        if evaluate is not None:
            evals.append({k: float(v) for k, v in evaluate(state.params).items()})
            eval_steps.append(step)
            seconds.append(time.perf_counter() - start)

    record_eval(0)
    done, chunk = 0, min(log_every, eval_every)  # equal chunks: one compilation
    with tqdm(total=steps, desc=desc, disable=not progress, leave=True) as bar:
        while done < steps:
            n = min(chunk - done % chunk, eval_every - done % eval_every, steps - done)
            stacked = None if batches is None else _take(batches, n, done)
            state, metrics = run(state, stacked, n)
            records.append(jax.tree.map(np.asarray, metrics))
            done += n
            if done % eval_every == 0 or done == steps:
                record_eval(done)
            postfix = {k: v[-n:].mean() for k, v in records[-1].items() if k != "grad_norm"}
            postfix.update({f"eval_{k}": v for k, v in (evals[-1] if evals else {}).items()})
            bar.set_postfix({k: f"{float(v):.4g}" for k, v in postfix.items()}, refresh=False)
            bar.update(n)
    names = list(records[0]) if records else []
    history = History(
        step=np.arange(1, steps + 1),
        train={k: np.concatenate([r[k] for r in records]) for k in names},
        eval_step=np.asarray(eval_steps, np.int64),
        eval={k: np.asarray([e[k] for e in evals]) for k in (evals[0] if evals else {})},
        seconds=np.asarray(seconds),
    )
    return state.params, history


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


def _check_positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def _chunk_runner(step: Callable, data: Any) -> Callable:
    """A jitted ``run(state, stacked_batches, n) -> (state, metrics [n])``."""
    if callable(data):

        def body(state, _):
            key, data_key = jax.random.split(state.key)
            return step(state._replace(key=key), data(data_key))

    elif isinstance(data, Iterable):
        body = step
    else:
        raise TypeError(f"data must be a sampler (key -> batch) or an iterable, got {data!r}")

    def run(state: TrainState, stacked: Batch | None, n: int):
        return jax.lax.scan(body, state, stacked, length=n)

    return jax.jit(run, static_argnums=2)


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


# --------------------------------------------------------------------------------------
# A cell with a linear readout, for the tasks.


class Model(NamedTuple):
    """A recurrent model as a pair of pure functions (params ``{"cell", "readout"}``).

    Attributes:
      init: ``key -> params``, ``{"cell": cell params, "readout": {"w": [O_cell, O],
        "b": [O]}}``.
      apply: ``(params, inputs [B, T, I]) -> predictions``: ``[B, O]`` from the last step,
        or ``[B, T, O]`` at every step for a ``per_step`` task.
    """

    init: Callable[[Array], Params]
    apply: Callable[[Params, Array], Array]


def task_model(cell: Cell, task: _tasks.Task) -> Model:
    """``cell`` unrolled over ``task``'s inputs, with a linear readout of ``task.output_size``.

    The readout reads the output of the last step (every step for a ``per_step`` task); its
    kernel starts LeCun-normal and its bias at zero.

    Examples:
      >>> import jax, gatedcells as gc, gatedcells.tasks as tasks
      >>> from gatedcells import training
      >>> task = tasks.adding(length=10)
      >>> model = training.task_model(gc.gru(8), task)
      >>> params = model.init(jax.random.key(0))
      >>> xs, ys = task.sample(jax.random.key(1), 4)
      >>> model.apply(params, xs).shape
      (4, 1)
    """
    if not isinstance(cell, Cell):
        raise TypeError(f"cell must be a gatedcells.Cell, got {cell!r}")

    def init(key: Array) -> Params:
        k_cell, k_out = jax.random.split(key)
        shape = (cell.output_size, task.output_size)
        w = jax.nn.initializers.lecun_normal()(k_out, shape, jnp.float32)
        readout = {"w": w, "b": jnp.zeros((task.output_size,), jnp.float32)}
        return {"cell": cell.init(k_cell, task.input_size), "readout": readout}

    def apply(params: Params, inputs: Array) -> Array:
        _, ys = unroll(cell, params["cell"], inputs)
        if not task.per_step:
            ys = ys[..., -1, :]
        w, b = params["readout"]["w"], params["readout"]["b"]
        out = jnp.matmul(ys.astype(w.dtype), w)
        return out + along_last(b, out)

    return Model(init, apply)


def task_loss(model: Model, task: _tasks.Task) -> LossFn:
    """``loss_fn(params, (inputs, targets), key) -> (task.loss, {task.metric_name: ...})``."""

    def loss_fn(params: Params, batch: tuple[Array, Array], key: Array):
        del key  # the task models have no dropout
        inputs, targets = batch
        predictions = model.apply(params, inputs)
        return task.loss(predictions, targets), {
            task.metric_name: task.metric(predictions, targets)
        }

    return loss_fn


def task_eval(model: Model, task: _tasks.Task, key: Array, size: int = 1000) -> EvalFn:
    """``eval_fn(params) -> {"loss", task.metric_name}`` on ``task.test``, or on ``size``
    fresh samples drawn once from ``key`` for a generated task (the same every call)."""
    inputs, targets = task.test if task.test is not None else task.sample(key, size)

    def eval_fn(params: Params) -> dict[str, Array]:
        predictions = model.apply(params, inputs)
        return {
            "loss": task.loss(predictions, targets),
            task.metric_name: task.metric(predictions, targets),
        }

    return eval_fn


def fit_task(
    cell: Cell,
    task: _tasks.Task,
    optimizer: optax.GradientTransformation,
    *,
    steps: int,
    key: Array,
    batch_size: int = 64,
    eval_every: int | None = None,
    eval_size: int = 1000,
    clip_norm: float | None = 1.0,
    progress: bool = True,
    desc: str | None = None,
) -> tuple[Params, History]:
    """Train ``cell`` with a linear readout (:func:`task_model`) on ``task``.

    ``key`` is split into the params' initialisation, the evaluation set (generated tasks)
    and the run, so one key determines everything. Evaluation is on ``task.test`` for a
    data set, or on ``eval_size`` fresh samples for a generated task, and reports the loss
    and ``task.metric_name``.

    Args:
      cell: any :class:`gatedcells.Cell` (stacks and bidirectional layers included).
      task: a :class:`gatedcells.tasks.Task`.
      optimizer: an optax optimizer, e.g. ``optax.adam(1e-3)``.
      steps: the number of updates.
      key: the PRNG key of the whole run.
      batch_size: sequences per step.
      eval_every: steps between evaluations (default: ``steps // 10``).
      eval_size: the size of the evaluation set of a generated task.
      clip_norm: global-norm gradient clipping (``None``: none).
      progress: show a progress bar.
      desc: the progress bar's label (default: the cell's name).

    Returns:
      ``(params, history)``: ``params = {"cell": ..., "readout": ...}`` and a :class:`History`
      whose ``eval`` holds ``"loss"`` and ``task.metric_name``.
    """
    _check_positive_int("batch_size", batch_size)
    _check_positive_int("eval_size", eval_size)
    k_init, k_eval, k_run = jax.random.split(key, 3)
    model = task_model(cell, task)

    def sampler(data_key: Array) -> tuple[Array, Array]:
        return task.sample(data_key, batch_size)

    return fit(
        task_loss(model, task),
        model.init(k_init),
        optimizer,
        sampler,
        steps=steps,
        key=k_run,
        eval_fn=task_eval(model, task, k_eval, eval_size),
        eval_every=eval_every,
        clip_norm=clip_norm,
        progress=progress,
        desc=cell.name if desc is None else desc,
    )


# --------------------------------------------------------------------------------------
# Params on disk (a plain .npz; orbax checkpoints of a whole TrainState belong elsewhere).


def save_params(path: str | os.PathLike, params: Params) -> None:
    """Save a params pytree as an ``.npz``, one array per leaf named by its path.

    Leaves are named like ``cell/w_x`` or ``cell/0/w_h`` (a stack's layer 0), so the file
    reads without gatedcells: ``numpy.load(path)["cell/w_x"]``.
    """
    leaves = jax.tree_util.tree_flatten_with_path(params)[0]
    arrays = {_path_name(p): np.asarray(v) for p, v in leaves}
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def load_params(path: str | os.PathLike, like: Params) -> Params:
    """Load params saved by :func:`save_params` into the structure of ``like``.

    Args:
      path: the ``.npz`` file.
      like: a params pytree of the same structure (e.g. ``model.init(key)``, or its
        ``jax.eval_shape``).

    Raises:
      ValueError: when the file's arrays do not match ``like``'s leaves (names or shapes).

    Examples:
      >>> import jax, tempfile, os, gatedcells as gc
      >>> from gatedcells import training
      >>> params = gc.lstm(4).init(jax.random.key(0), 2)
      >>> path = os.path.join(tempfile.mkdtemp(), "params.npz")
      >>> training.save_params(path, params)
      >>> back = training.load_params(path, params)
      >>> type(back).__name__, bool((back.w_h == params.w_h).all())
      ('LSTMParams', True)
    """
    leaves, treedef = jax.tree_util.tree_flatten_with_path(like)
    with np.load(path) as data:
        names = [_path_name(p) for p, _ in leaves]
        if sorted(names) != sorted(data.files):
            raise ValueError(
                f"{path} holds {sorted(data.files)}, but the params expect {sorted(names)}"
            )
        arrays = []
        for name, (_, leaf) in zip(names, leaves, strict=True):
            array = data[name]
            if array.shape != tuple(leaf.shape):
                raise ValueError(
                    f"{path}: {name} has shape {array.shape}, expected {tuple(leaf.shape)}"
                )
            arrays.append(jnp.asarray(array, leaf.dtype))
    return jax.tree_util.tree_unflatten(treedef, arrays)


def _path_name(path: tuple) -> str:
    return jax.tree_util.keystr(path, simple=True, separator="/")
