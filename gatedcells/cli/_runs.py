"""The pieces of the ``gatedcells`` commands: cells by name, one timed training run, the
demo's experiment, its table and the learning-curve plot."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from ..cells._registry import CELLS


class UsageError(Exception):
    """A bad argument: reported on one line, exit status 2."""


def make_cell(
    name: str, hidden: int, *, forget_bias: float = 1.0, update_bias: float = 1.0, layers: int = 1
):
    """The cell called ``name`` (one of :data:`gatedcells.cells.CELLS`) of ``hidden`` units,
    stacked ``layers`` deep; ``--forget-bias`` applies to ``lstm``, ``--update-bias`` to the
    GRUs."""
    import gatedcells as gc

    if name not in CELLS:
        raise UsageError(f"unknown cell {name!r}; choose one of {', '.join(CELLS)}")
    if layers < 1:
        raise UsageError(f"--layers must be at least 1, got {layers}")
    flags = {"lstm": dict(forget_bias=forget_bias)}.get(name, {})
    if name in ("gru", "gru_reset_before", "gru_layer_norm"):
        flags = dict(update_bias=update_bias)
    cell = CELLS[name](hidden, **flags)
    return cell if layers == 1 else gc.stack(*(cell,) * layers)


class Run(NamedTuple):
    """One trained model, as the demo's table and plot show it."""

    label: str
    params: int
    history: Any  # gatedcells.training.History
    seconds: float

    def final(self, metric: str) -> float:
        """The last evaluation of ``metric``."""
        return float(self.history.eval[metric][-1])


def train_one(
    cell,
    task,
    *,
    lr: float,
    steps: int,
    seed: int,
    batch_size: int,
    eval_every: int | None,
    clip: float,
    quiet: bool,
    **checkpointing,
):
    """Train ``cell`` on ``task`` with Adam (:func:`gatedcells.training.fit_task`), timed.

    ``checkpointing``: ``checkpoint_dir``, ``checkpoint_every``, ``resume`` and ``config``,
    passed to ``fit_task``.

    Returns:
      ``(params, Run)``; ``clip <= 0`` disables gradient clipping.
    """
    import jax
    import optax

    import gatedcells as gc
    from gatedcells import training

    start = time.perf_counter()
    params, history = training.fit_task(
        cell,
        task,
        optax.adam(lr),
        steps=steps,
        key=jax.random.key(seed),
        batch_size=batch_size,
        eval_every=eval_every,
        clip_norm=clip if clip > 0 else None,
        progress=not quiet,
        **checkpointing,
    )
    seconds = time.perf_counter() - start
    return params, Run(cell.name, gc.count_params(params), history, seconds)


def plot_runs(
    runs: Sequence[Run], task, path: Path, title: str, solved: float | None = None
) -> None:
    """Training loss (per step, smoothed) and evaluation metric curves, with the chance
    level and, given ``solved``, the threshold below which the metric counts as solved; each
    run labelled with its parameter count, a legend on each panel (matplotlib, Agg: no
    display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, (ax_loss, ax_eval) = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    for k, run in enumerate(runs):
        color, label = f"C{k}", f"{run.label}, {run.params:,} params"
        loss = run.history.train["loss"]
        width = max(1, len(loss) // 50)
        smooth = np.convolve(loss, np.ones(width) / width, mode="valid")
        ax_loss.plot(run.history.step[width - 1 :], smooth, color=color, label=label)
        ev = run.history.eval[task.metric_name]
        ax_eval.plot(run.history.eval_step, ev, "o-", ms=3, color=color, label=label)
    for ax, base, name in (
        (ax_loss, task.baseline_loss, "training loss"),
        (ax_eval, task.baseline_metric, f"test {task.metric_name}"),
    ):
        ax.axhline(base, color="gray", ls="--", lw=1, label=f"chance ({base:.3g})")
        if solved is not None and ax is ax_eval:
            label = f"solved below {solved:.3g} (a tenth of chance)"
            ax.axhline(solved, color="black", ls=":", lw=1.2, label=label)
        ax.set_xlabel("step")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        if task.metric_name == "mse" or ax is ax_loss:
            ax.set_yscale("log")
    ax_loss.set_title("training loss (moving average)")
    ax_eval.set_title(f"held-out {task.metric_name}")
    for ax in (ax_loss, ax_eval):
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def save_run(out: Path, run: Run, params, task, config: dict[str, Any]) -> None:
    """Write ``run`` to the folder ``out``: history.json (deterministic: the same options give
    the same bytes, resumed or not), timing.json (the wall-clock times), params.npz and
    curves.png; each file whole or not at all."""
    from gatedcells import training

    history = run.history
    record = {
        "config": config,
        "task": task.name,
        "cell": run.label,
        "params": run.params,
        "metric": task.metric_name,
        "final": run.final(task.metric_name),
        "baseline": task.baseline_metric,
        **{k: v for k, v in history.to_dict().items() if k != "seconds"},
    }
    timing = {
        "seconds": run.seconds,
        "eval_step": history.eval_step.tolist(),
        "eval_seconds": history.seconds.tolist(),
    }
    _write_atomically(out / "history.json", json.dumps(record).encode())
    _write_atomically(out / "timing.json", json.dumps(timing).encode())
    training.save_params(out / "params.npz.tmp", params)
    os.replace(out / "params.npz.tmp", out / "params.npz")
    plot_runs([run], task, out / "curves.png", task.name)


def _write_atomically(path: Path, data: bytes) -> None:
    """Write ``path`` through a temporary file renamed over it: never half a file."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class DemoConfig(NamedTuple):
    """The demo's experiment. The full one was chosen by measurement (see the README)."""

    length: int
    steps: int
    batch_size: int
    learning_rate: float
    hidden: tuple[tuple[str, int], ...]  # (cell, hidden size): similar parameter counts
    eval_every: int


DEMO = DemoConfig(200, 3000, 64, 2e-3, (("simple_rnn", 64), ("lstm", 32), ("gru", 37)), 150)
QUICK = DemoConfig(20, 60, 32, 1e-2, (("simple_rnn", 16), ("lstm", 8), ("gru", 9)), 20)
SOLVED = 0.1  # of the chance level


def solved_below(task) -> float:
    """The demo's "solved": a final test metric below a tenth of chance."""
    return SOLVED * task.baseline_metric


def demo_table(runs: Sequence[Run], task) -> str:
    """The demo's result table, in Markdown (it reads as plain text too)."""
    name = task.metric_name
    rows = [
        f"| model | parameters | final test {name} | chance {name} | solved | time |",
        "| --- | ---: | ---: | ---: | :---: | ---: |",
    ]
    for run in runs:
        final = run.final(name)
        solved = final < solved_below(task)
        rows.append(
            f"| {run.label} | {run.params:,} | {final:.4f} | {task.baseline_metric:.4f} | "
            f"{'yes' if solved else 'no'} | {run.seconds:.0f} s |"
        )
    return "\n".join(rows)
