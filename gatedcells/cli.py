"""The gatedcells command: the lecture's experiment, and training any cell on any task.

  gatedcells demo              simple RNN vs LSTM vs GRU on the adding problem (a few minutes)
  gatedcells demo --quick      the same, reduced to seconds
  gatedcells train --task adding --cell lstm --hidden 32 --length 100 --steps 2000 --out run/
  gatedcells bench             speed against Flax, Equinox and PyTorch on this machine

Run 'gatedcells COMMAND --help' for the options of each command.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

CELLS = ("simple_rnn", "lstm", "lstm1997", "gru", "gru_cho")
CELL_HELP = (
    "simple_rnn (Elman), lstm (with forget gate), lstm1997 (no forget gate), "
    "gru (PyTorch/cuDNN form), gru_cho (Cho et al. 2014, reset before the matmul)"
)
TASK_HELP = (
    "adding (Le et al. 2015), copy (copy memory, Arjovsky et al. 2016; --length is the "
    "delay), order (temporal order, Hochreiter & Schmidhuber 1997), digits (scikit-learn's "
    "8x8 digits read row by row; fixed length 8)"
)


class UsageError(Exception):
    """A bad argument: reported on one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line (and a pointer to ``--help``)."""

    def error(self, message: str):
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


# --------------------------------------------------------------------------------------
# Building cells from the command line.


def make_cell(name: str, hidden: int, *, forget_bias: float = 1.0, update_bias: float = 1.0,
              layers: int = 1):  # fmt: skip
    """The cell called ``name`` (one of :data:`CELLS`) of ``hidden`` units, stacked ``layers``
    deep."""
    import gatedcells as gc

    builders: dict[str, Callable[[], Any]] = {
        "simple_rnn": lambda: gc.simple_rnn(hidden),
        "lstm": lambda: gc.lstm(hidden, forget_bias=forget_bias),
        "lstm1997": lambda: gc.lstm(hidden, forget_gate=False),
        "gru": lambda: gc.gru(hidden, update_bias=update_bias),
        "gru_cho": lambda: gc.gru(hidden, reset_after=False, update_bias=update_bias),
    }
    if name not in builders:
        raise UsageError(f"unknown cell {name!r}; choose one of {', '.join(CELLS)}")
    if layers < 1:
        raise UsageError(f"--layers must be at least 1, got {layers}")
    cell = builders[name]()
    return cell if layers == 1 else gc.stack(*(cell,) * layers)


# --------------------------------------------------------------------------------------
# Plots (matplotlib, Agg: no display needed).


class Run(NamedTuple):
    """One trained model, as the demo's table and plot show it."""

    label: str
    params: int
    history: Any  # gatedcells.training.History
    seconds: float


def plot_runs(runs: Sequence[Run], task, path: Path, title: str) -> None:
    """Training loss (per step, smoothed) and evaluation metric curves, with the baseline."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, (ax_loss, ax_eval) = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    for k, run in enumerate(runs):
        color = f"C{k}"
        loss = run.history.train["loss"]
        width = max(1, len(loss) // 50)
        smooth = np.convolve(loss, np.ones(width) / width, mode="valid")
        ax_loss.plot(run.history.step[width - 1 :], smooth, color=color, label=run.label)
        ev = run.history.eval[task.metric_name]
        ax_eval.plot(run.history.eval_step, ev, "o-", ms=3, color=color, label=run.label)
    for ax, base, name in (
        (ax_loss, task.baseline_loss, "training loss"),
        (ax_eval, task.baseline_metric, f"test {task.metric_name}"),
    ):
        ax.axhline(base, color="gray", ls="--", lw=1, label=f"chance ({base:.3g})")
        ax.set_xlabel("step")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        if task.metric_name == "mse" or ax is ax_loss:
            ax.set_yscale("log")
    ax_loss.set_title("training loss (moving average)")
    ax_eval.set_title(f"held-out {task.metric_name}")
    ax_eval.legend(fontsize=8)
    fig.suptitle(title)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def train_one(cell, task, *, lr: float, steps: int, seed: int, batch_size: int,
              eval_every: int | None, clip: float, quiet: bool, **checkpointing):  # fmt: skip
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


# --------------------------------------------------------------------------------------
# gatedcells train


def _train(args: argparse.Namespace) -> int:

    from gatedcells import tasks, training

    try:
        task = tasks.get(args.task, args.length)
    except ValueError as err:
        raise UsageError(f"gatedcells train: {err}") from None
    cell = make_cell(args.cell, args.hidden, forget_bias=args.forget_bias,
                     update_bias=args.update_bias, layers=args.layers)  # fmt: skip
    out = Path(args.out)
    # What determines the results: a checkpoint of a run with other values is refused.
    config = {k: v for k, v in vars(args).items() if k not in RUN_ONLY}
    checkpointing = {}
    if args.checkpoint_every is not None or args.resume:
        checkpoints = out / "checkpoints"
        if checkpoints.exists() and any(checkpoints.iterdir()) and not args.resume:
            raise UsageError(
                f"gatedcells train: {checkpoints} holds the checkpoints of a run; pass --resume "
                "to go on with it, or choose another --out"
            )
        checkpointing = dict(checkpoint_dir=checkpoints, resume=args.resume, config=config,
                             checkpoint_every=args.checkpoint_every)  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    try:
        params, run = train_one(cell, task, lr=args.lr, steps=args.steps, seed=args.seed,
                                batch_size=args.batch_size, eval_every=args.eval_every,
                                clip=args.clip, quiet=args.quiet, **checkpointing)  # fmt: skip
    except ValueError as err:
        if "checkpoint" not in str(err):
            raise
        raise UsageError(f"gatedcells train: {err}") from None
    history, n_params = run.history, run.params
    final = float(history.eval[task.metric_name][-1])
    # Deterministic: the same options give the same bytes, resumed or not (times elsewhere).
    record = {
        "config": config,
        "task": task.name,
        "cell": cell.name,
        "params": n_params,
        "metric": task.metric_name,
        "final": final,
        "baseline": task.baseline_metric,
        **{k: v for k, v in history.to_dict().items() if k != "seconds"},
    }
    timing = {"seconds": run.seconds, "eval_step": history.eval_step.tolist(),
              "eval_seconds": history.seconds.tolist()}  # fmt: skip
    _write_atomically(out / "history.json", json.dumps(record).encode())
    _write_atomically(out / "timing.json", json.dumps(timing).encode())
    training.save_params(out / "params.npz.tmp", params)
    os.replace(out / "params.npz.tmp", out / "params.npz")
    plot_runs([run._replace(label=f"{run.label}, {n_params:,} params")], task,
              out / "curves.png", task.name)  # fmt: skip
    print(
        f"{cell.name} on {task.name}: {task.metric_name} {final:.4g} "
        f"(chance {task.baseline_metric:.4g}), {n_params:,} params, {run.seconds:.0f} s"
    )
    print(f"wrote {out / 'history.json'}, {out / 'params.npz'}, {out / 'curves.png'}")
    return 0


# Options that do not change what a run computes (where it writes, how it reports, how
# often it saves): left out of history.json's config and of a checkpoint's.
RUN_ONLY = ("run", "out", "quiet", "resume", "checkpoint_every")


def _write_atomically(path: Path, data: bytes) -> None:
    """Write ``path`` through a temporary file renamed over it: never half a file."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


# --------------------------------------------------------------------------------------
# gatedcells demo


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


def _demo(args: argparse.Namespace) -> int:

    from gatedcells import tasks

    config = QUICK if args.quick else DEMO
    config = config._replace(steps=args.steps or config.steps, length=args.length or config.length)
    task = tasks.adding(config.length)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(
        f"The adding problem at T={config.length}: remember two marked numbers over "
        f"{config.length} steps and add them.\nChance level (always predict 1): MSE "
        f"{task.baseline_metric:.3f}. {config.steps} Adam steps (lr {config.learning_rate:g}, "
        f"batch {config.batch_size}, clip 1) per model, seed {args.seed}.\n",
        flush=True,
    )
    runs = []
    for name, hidden in config.hidden:
        _, run = train_one(make_cell(name, hidden), task, lr=config.learning_rate,
                           steps=config.steps, seed=args.seed, batch_size=config.batch_size,
                           eval_every=config.eval_every, clip=1.0, quiet=args.quiet)  # fmt: skip
        runs.append(run)
    table = demo_table(runs, task)
    print("\n" + table)
    title = f"Adding problem, T={config.length}: {config.steps} steps, batch {config.batch_size}"
    plot_runs([r._replace(label=f"{r.label}, {r.params:,} params") for r in runs], task,
              out / "demo.png", title)  # fmt: skip
    summary = {
        "config": config._asdict(),
        "seed": args.seed,
        "table": table,
        "runs": {r.label: {"params": r.params, "seconds": r.seconds, **r.history.to_dict()}
                 for r in runs},
    }  # fmt: skip
    (out / "demo.json").write_text(json.dumps(summary))
    print(f"\nwrote {out / 'demo.png'} and {out / 'demo.json'}")
    return 0


def demo_table(runs: Sequence[Run], task) -> str:
    """The demo's result table, in Markdown (it reads as plain text too)."""
    name = task.metric_name
    rows = [
        f"| model | parameters | final test {name} | chance {name} | solved | time |",
        "| --- | ---: | ---: | ---: | :---: | ---: |",
    ]
    for run in runs:
        final = float(run.history.eval[name][-1])
        solved = final < 0.1 * task.baseline_metric
        rows.append(
            f"| {run.label} | {run.params:,} | {final:.4f} | {task.baseline_metric:.4f} | "
            f"{'yes' if solved else 'no'} | {run.seconds:.0f} s |"
        )
    return "\n".join(rows)


# --------------------------------------------------------------------------------------
# The parser.


def build_parser() -> argparse.ArgumentParser:
    """The command's parser; a new command is a new subparser with ``set_defaults(run=...)``."""
    parser = _Parser(
        prog="gatedcells",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                parser_class=_Parser)  # fmt: skip

    demo = sub.add_parser(
        "demo",
        help="the lecture's experiment: simple RNN vs LSTM vs GRU on the adding problem",
        description=(
            "Trains a simple RNN, an LSTM and a GRU of similar parameter counts on the adding "
            "problem at a length where the simple RNN fails, prints a table (model, "
            "parameters, final test MSE, chance level, time) and saves the learning curves "
            "to OUT/demo.png (and every number to OUT/demo.json). About 5 minutes on 2 CPU "
            "cores; --quick runs a reduced version in seconds."
        ),
    )
    demo.add_argument("--quick", action="store_true", help="a reduced run (seconds)")
    demo.add_argument(
        "--out", default="gatedcells-demo", help="output folder (default: %(default)s)"
    )
    demo.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    demo.add_argument("--steps", type=_positive, default=None, help="override the number of steps")
    demo.add_argument("--length", type=_positive, default=None, help="override the length T")
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    demo.set_defaults(run=_demo)

    train = sub.add_parser(
        "train",
        help="train any cell on any task",
        description=(
            "Trains CELL with a linear readout on TASK with Adam and writes OUT/history.json "
            "(the loss of every step, the evaluations, the configuration), OUT/params.npz "
            "(the trained params; gatedcells.training.load_params reads them back), "
            "OUT/curves.png and OUT/timing.json (wall-clock times). With --checkpoint-every N "
            "the whole run is saved to OUT/checkpoints every N steps and at the end; a run "
            "stopped at any moment goes on with --resume (the same options) and ends with the "
            "same params.npz and history.json, to the bit, as a run never stopped."
        ),
        epilog=(
            "example: gatedcells train --task adding --cell lstm --hidden 32 --length 100 "
            "--steps 2000 --forget-bias 5 --out runs/lstm-adding"
        ),
    )
    train.add_argument("--task", required=True, choices=("adding", "copy", "order", "digits"),
                       metavar="TASK", help=TASK_HELP)  # fmt: skip
    train.add_argument("--cell", required=True, choices=CELLS, metavar="CELL", help=CELL_HELP)
    train.add_argument(
        "--hidden", type=_positive, default=32, help="hidden size (default: %(default)s)"
    )
    train.add_argument(
        "--layers", type=_positive, default=1, help="stacked layers (default: %(default)s)"
    )
    train.add_argument("--length", type=_positive, default=None,
                       help="sequence length T (the delay for copy; default: the task's own)")  # fmt: skip
    train.add_argument(
        "--steps", type=_positive, default=1000, help="training steps (default: %(default)s)"
    )
    train.add_argument("--batch-size", type=_positive, default=64, help="default: %(default)s")
    train.add_argument(
        "--lr",
        type=_positive_float,
        default=1e-3,
        help="Adam's learning rate (default: %(default)s)",
    )
    train.add_argument("--clip", type=float, default=1.0,
                       help="clip gradients to this global norm; 0 for none (default: %(default)s)")  # fmt: skip
    train.add_argument("--forget-bias", type=float, default=1.0,
                       help="LSTM forget-gate bias at init (the lecture suggests 5; default: %(default)s)")  # fmt: skip
    train.add_argument("--update-bias", type=float, default=1.0,
                       help="GRU update-gate bias at init (default: %(default)s)")  # fmt: skip
    train.add_argument("--eval-every", type=_positive, default=None,
                       help="steps between evaluations (default: steps/10)")  # fmt: skip
    train.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    train.add_argument("--out", required=True, help="output folder (created if missing)")
    train.add_argument("--checkpoint-every", type=_positive, default=None, metavar="N",
                       help="save the run to OUT/checkpoints every N steps and at the end")  # fmt: skip
    train.add_argument("--resume", action="store_true",
                       help="go on from the latest checkpoint in OUT/checkpoints (started afresh "
                            "if there is none; checkpoints then every --eval-every steps unless "
                            "--checkpoint-every says otherwise)")  # fmt: skip
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(run=_train)

    bench = sub.add_parser(
        "bench",
        help="speed against Flax, Equinox and PyTorch (the installed ones), side by side",
        description="See 'gatedcells bench --help' (options are passed to gatedcells.bench).",
        add_help=False,
    )
    bench.add_argument("args", nargs=argparse.REMAINDER, help="options of gatedcells.bench")
    bench.set_defaults(run=_bench)
    return parser


def _bench(args: argparse.Namespace) -> int:
    from .bench import main as bench_main

    return bench_main(args.args)


def _positive_of(kind: type, noun: str) -> Callable[[str], Any]:
    """An argparse ``type`` accepting numbers of ``kind`` greater than zero."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not value > 0:
            raise argparse.ArgumentTypeError(f"expected a positive {noun}, got {text!r}")
        return value

    parse.__name__ = f"positive {noun}"
    return parse


_positive = _positive_of(int, "integer")
_positive_float = _positive_of(float, "number")


def main(argv: list[str] | None = None) -> int:
    """Run the command with ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        if argv[:1] == ["bench"]:  # its options (--help included) belong to gatedcells.bench
            return _bench(argparse.Namespace(args=argv[1:]))
        args = build_parser().parse_args(argv)
        return args.run(args)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except ImportError as err:
        print(f"error: {err} (pip install 'gatedcells[train]')", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `gatedcells train ... | head -1`: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
