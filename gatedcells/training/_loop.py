"""The training loop: ``TrainState``, a pure ``train_step``, and ``fit``."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

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
    check_positive_int("steps", steps)
    eval_every = max(1, steps // 10) if eval_every is None else eval_every
    check_positive_int("eval_every", eval_every)
    check_positive_int("log_every", log_every)
    if clip_norm is not None:
        if not clip_norm > 0:
            raise ValueError(f"clip_norm must be positive or None, got {clip_norm!r}")
        optimizer = optax.chain(optax.clip_by_global_norm(clip_norm), optimizer)
    run = _chunk_runner(train_step(loss_fn, optimizer), data)
    batches = None if callable(data) else iter(data)
    evaluate = None if eval_fn is None else jax.jit(eval_fn)

    from tqdm import tqdm  # the text bar: it also works in notebooks without ipywidgets

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


def check_positive_int(name: str, value: Any) -> None:
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
