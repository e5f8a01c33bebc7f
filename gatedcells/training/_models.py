"""A cell with a linear readout, trained on a :mod:`gatedcells.tasks` task."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh

from .. import tasks as _tasks
from .._cell import Cell
from .._checks import check_positive_int
from ..cells._blocks import along_last
from ..sequence import unroll
from ._fit import fit
from ._history import History
from ._state import Array, EvalFn, LossFn, Params


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
    check_task(task)

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


def check_task(task) -> None:
    if not isinstance(task, _tasks.Task):
        raise TypeError(
            f"task must be a gatedcells.tasks.Task (e.g. tasks.adding(100)), got {task!r}"
        )


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
    checkpoint_dir: str | os.PathLike | None = None,
    checkpoint_every: int | None = None,
    resume: bool = False,
    config: dict | None = None,
    mesh: Mesh | str | None = "auto",
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
      checkpoint_dir, checkpoint_every, resume, mesh: as in :func:`fit`.
      config: as in :func:`fit`; the cell's and the task's names, ``batch_size``,
        ``eval_size`` and ``clip_norm`` are always part of it, so that a checkpoint of
        another run is refused.

    Returns:
      ``(params, history)``: ``params = {"cell": ..., "readout": ...}`` and a :class:`History`
      whose ``eval`` holds ``"loss"`` and ``task.metric_name``.
    """
    check_positive_int("batch_size", batch_size)
    check_positive_int("eval_size", eval_size)
    check_task(task)
    described = {
        "cell": cell.name if isinstance(cell, Cell) else repr(cell),
        "task": task.name,
        "batch_size": int(batch_size),
        "eval_size": int(eval_size),
        "clip_norm": None if clip_norm is None else float(clip_norm),
    }
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
        checkpoint_dir=checkpoint_dir,
        checkpoint_every=checkpoint_every,
        resume=resume,
        config={**described, **(config or {})},
        mesh=mesh,
    )
