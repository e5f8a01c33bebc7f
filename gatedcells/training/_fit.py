"""The training loop, :func:`fit`: compiled chunks of steps, evaluations and checkpoints at
their boundaries, a progress bar."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator

import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh

from .._checks import check_key
from . import _checkpoint
from ._history import History, Recorder
from ._schedule import Schedule
from ._sharding import batch_rows, chunk_runner, data_mesh, replicate
from ._state import (
    Array,
    Batch,
    EvalFn,
    LossFn,
    Params,
    TrainState,
    check_loss_and_optimizer,
    clipped,
    train_step,
)


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
    every GPU, TPU core or CPU device, e.g. one per core after
    :func:`gatedcells.use_cpu_cores`, across processes after
    ``jax.distributed.initialize()``), the run is data-parallel: the state is replicated
    over a one-axis ``Mesh`` of all devices, each batch is split along its leading axis,
    and XLA inserts the gradient's all-reduce. The results equal those of one device up to
    float rounding (sums over the batch run in another order). A batch the devices do not
    divide, or with fewer than 8 rows per device (see :func:`gatedcells.use_cpu_cores`),
    runs on one device (the first with a warning). ``mesh=None`` keeps one device; a
    ``jax.sharding.Mesh`` of your own splits the batch over all its axes, which must
    divide it.

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
        ``resume``, a checkpoint past ``steps``, or a batch the devices of your own
        ``mesh`` do not divide.
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
    schedule = Schedule.create(steps, eval_every, log_every, checkpoint_every)
    optimizer = clipped(optimizer, clip_norm)
    if resume and checkpoint_dir is None:
        raise ValueError("resume=True needs a checkpoint_dir to resume from")
    config = _checkpoint.json_config(config)
    rows = None
    if isinstance(mesh, str) and mesh == "auto" and jax.device_count() > 1:
        rows, data = batch_rows(data, key)  # is the batch worth splitting?
    mesh = data_mesh(mesh, rows)
    run = chunk_runner(train_step(loss_fn, optimizer), data, mesh)
    batches = None if callable(data) else iter(data)
    evaluate = None if eval_fn is None else jax.jit(eval_fn)

    from tqdm import tqdm  # the text bar: it also works in notebooks without ipywidgets

    state = replicate(TrainState.create(params, optimizer, key), mesh)
    with _checkpoint.opened(checkpoint_dir) as manager:
        state, saved = _checkpoint.resume_or_start(
            manager, state, config, resume=resume, steps=steps, directory=checkpoint_dir
        )
        done = int(state.step)
        if batches is not None and 0 < done < steps:
            _take(batches, done, 0)  # the batches the checkpointed steps used
        recorder = Recorder(evaluate, saved)
        if done == 0:
            recorder.evaluate(0, state.params)
        with tqdm(total=steps, initial=done, desc=desc, disable=not progress, leave=True) as bar:
            while done < steps:
                n = schedule.next_chunk(done)
                stacked = None if batches is None else _take(batches, n, done)
                state, metrics = run(state, stacked, n)
                recorder.train(metrics)
                done += n
                if schedule.evaluates(done):
                    recorder.evaluate(done, state.params)
                if manager is not None and schedule.saves(done):
                    _checkpoint.save(manager, state, recorder.to_json(), config)
                bar.set_postfix(recorder.postfix(), refresh=False)
                bar.update(n)
        # resumed at the very end of a finished run
        if manager is not None and manager.latest_step() != steps:
            _checkpoint.save(manager, state, recorder.to_json(), config)
    return state.params, recorder.history(steps)


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
