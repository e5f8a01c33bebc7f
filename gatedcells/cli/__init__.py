"""The gatedcells command: the lecture's experiment, and training any cell on any task.

  gatedcells demo              simple RNN vs LSTM vs GRU on the adding problem (a few minutes)
  gatedcells demo --quick      the same, reduced (about a minute)
  gatedcells train --task adding --cell lstm --hidden 32 --length 100 --steps 2000 --out run/
  gatedcells train --task mqar --cell gru --num-pairs 4 --out run/   (any task: --help lists them)
  gatedcells sample --run run/ --prompt ROMEO: --top-k 10   text from a --task text run
  gatedcells zoo --task adding --only lstm gru min_gru   every variant on one task, one table
  gatedcells bench             speed against Flax, Equinox and PyTorch on this machine

Run 'gatedcells COMMAND --help' for the options of each command.

On a CPU, train, demo, zoo and bench present the host as one JAX device per core and split
a batch over them where it pays, 8 to 64 rows per device (gatedcells.use_cpu_cores;
docs/training.md has the measurements). GATEDCELLS_CPU_DEVICES=N asks for N devices, and
GATEDCELLS_CPU_DEVICES=1 keeps JAX's single CPU device.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from .. import __version__
from .._cores import use_cpu_cores
from ._numbers import clip_norm as _clip_norm
from ._numbers import positive as _positive
from ._numbers import positive_float as _positive_float
from ._out import checkpoint_options, interrupted, prepare_out
from ._runs import (
    DEMO,
    QUICK,
    UsageError,
    demo_table,
    make_cell,
    plot_runs,
    solved_below,
    train_one,
)
from ._runs import DemoConfig as DemoConfig
from ._runs import Run as Run
from ._runs import save_run as save_run
from ._sample import add_sample
from ._tasks import (
    ALL_CELLS,
    TASK_HELP,
    TASKS,
    add_task_options,
    make_model_cell,
    make_task,
    task_options,
)

# The help of train's options, where it does not fit on the option's line.
HELP = {
    "task": TASK_HELP,
    "cell": "any cell of the registry (gatedcells.cells.CELLS): simple_rnn (Elman), lstm "
    "(with forget gate), lstm1997 (no forget gate), gru (PyTorch/cuDNN form), "
    "gru_reset_before (Cho et al. 2014), lstm_<greff variant>, mgu, min_gru, ...; and for the "
    "frame tasks (shapes) conv_lstm and conv_gru (Shi et al. 2015; --kernel); a dense cell "
    "reads a frame task's frames flattened",
    "length": "sequence length T (the delay for copy, the window for text; default: the "
    "task's own)",
    "lr": "Adam's learning rate (default: %(default)s)",
    "clip": "clip gradients to this global norm, a positive number; 0 for no clipping "
    "(default: %(default)s)",
    "forget_bias": "LSTM forget-gate bias at init (the lecture suggests 5; default: %(default)s)",
    "update_bias": "GRU update-gate bias at init (default: %(default)s)",
    "checkpoint_every": "save the run to OUT/checkpoints every N steps and at the end",
    "resume": "go on from the latest checkpoint in OUT/checkpoints (started afresh if there is "
    "none; checkpoints then every --eval-every steps unless --checkpoint-every says otherwise)",
    "out": "output folder (created if missing); one holding another run's results is refused "
    "unless --resume or --overwrite",
    "overwrite": "replace the run in OUT: its checkpoints are deleted before training, its "
    "results replaced at the end",
}
# Options that do not change what a run computes (where it writes, how it reports, how
# often it saves): left out of history.json's config and of a checkpoint's.
RUN_ONLY = ("run", "out", "quiet", "resume", "overwrite", "checkpoint_every")
# Options of some tasks or cells only: in history.json's config when given.
OPTIONAL = ("kernel", *task_options())


# --------------------------------------------------------------------------------------
# gatedcells train


def _train(args: argparse.Namespace) -> int:
    cell, task = make_model_cell(args, make_task(args))
    out = prepare_out(
        args.out, "gatedcells train", results=True, resume=args.resume, overwrite=args.overwrite
    )
    # What determines the results: a checkpoint of a run with other values is refused.
    config = {k: v for k, v in vars(args).items() if k not in RUN_ONLY}
    config = {k: v for k, v in config.items() if v is not None or k not in OPTIONAL}
    checkpointing = checkpoint_options(args, out / "checkpoints", config)
    try:
        params, run = train_one(
            cell,
            task,
            lr=args.lr,
            steps=args.steps,
            seed=args.seed,
            batch_size=args.batch_size,
            eval_every=args.eval_every,
            clip=args.clip,
            quiet=args.quiet,
            **checkpointing,
        )
        save_run(out, run, params, task, config)
    except ValueError as err:
        if "checkpoint" not in str(err):
            raise
        raise UsageError(f"gatedcells train: {err}") from None
    except KeyboardInterrupt:  # say what was saved, and the command that goes on from it
        print(interrupted(_train_parser(), args, out), file=sys.stderr)
        return 130
    final = run.final(task.metric_name)
    print(
        f"{cell.name} on {task.name}: {task.metric_name} {final:.4g} "
        f"(chance {task.baseline_metric:.4g}), {run.params:,} params, {run.seconds:.0f} s"
    )
    print(f"wrote {out / 'history.json'}, {out / 'params.npz'}, {out / 'curves.png'}")
    return 0


# --------------------------------------------------------------------------------------
# gatedcells demo


def _demo(args: argparse.Namespace) -> int:
    from gatedcells import tasks

    config = QUICK if args.quick else DEMO
    config = config._replace(steps=args.steps or config.steps, length=args.length or config.length)
    try:
        task = tasks.adding(config.length)
    except ValueError as err:
        raise UsageError(f"gatedcells demo: {err}") from None
    out = prepare_out(args.out, "gatedcells demo")
    print(
        f"The adding problem at T={config.length}: remember two marked numbers over "
        f"{config.length} steps and add them.\nChance level (always predict 1): MSE "
        f"{task.baseline_metric:.3f}. {config.steps} Adam steps (lr {config.learning_rate:g}, "
        f"batch {config.batch_size}, clip 1) per model, seed {args.seed}.\n",
        flush=True,
    )
    runs = []
    for name, hidden in config.hidden:
        _, run = train_one(
            make_cell(name, hidden),
            task,
            lr=config.learning_rate,
            steps=config.steps,
            seed=args.seed,
            batch_size=config.batch_size,
            eval_every=config.eval_every,
            clip=1.0,
            quiet=args.quiet,
        )
        runs.append(run)
    table = demo_table(runs, task)
    print("\n" + table)
    title = f"Adding problem, T={config.length}: {config.steps} steps, batch {config.batch_size}"
    plot_runs(runs, task, out / "demo.png", title, solved=solved_below(task))
    summary = {
        "config": config._asdict(),
        "seed": args.seed,
        "table": table,
        "runs": {
            r.label: {"params": r.params, "seconds": r.seconds, **r.history.to_dict()} for r in runs
        },
    }
    (out / "demo.json").write_text(json.dumps(summary))
    print(f"\nwrote {out / 'demo.png'} and {out / 'demo.json'}")
    return 0


# --------------------------------------------------------------------------------------
# The parser: one function per command.


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line (and a pointer to ``--help``)."""

    def error(self, message: str):
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


def build_parser() -> argparse.ArgumentParser:
    """The command's parser; a new command is a new subparser with ``set_defaults(run=...)``."""
    parser = _Parser(
        prog="gatedcells",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"gatedcells {__version__}")
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_Parser
    )
    _add_demo(sub)
    _add_train(sub)
    add_sample(sub)
    _add_passthrough(sub)
    return parser


def _add_demo(sub) -> None:
    demo = sub.add_parser(
        "demo",
        help="the lecture's experiment: simple RNN vs LSTM vs GRU on the adding problem",
        description=(
            "Trains a simple RNN, an LSTM and a GRU of similar parameter counts on the adding "
            "problem at a length where the simple RNN fails, prints a table (model, "
            "parameters, final test MSE, chance level, time) and saves the learning curves "
            "to OUT/demo.png (and every number to OUT/demo.json). About 1 to 3 minutes on 2 "
            "CPU cores; --quick runs a reduced version in about a minute."
        ),
    )
    demo.add_argument("--quick", action="store_true", help="a reduced run (about a minute)")
    demo.add_argument(
        "--out", default="gatedcells-demo", help="output folder (default: %(default)s)"
    )
    demo.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    demo.add_argument("--steps", type=_positive, help="override the number of steps")
    demo.add_argument("--length", type=_positive, help="override the length T")
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    demo.set_defaults(run=_demo)


def _add_train(sub) -> None:
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
    _add_model_options(train)
    _add_run_options(train)
    train.set_defaults(run=_train)


def _train_parser() -> argparse.ArgumentParser:
    """``train``'s options alone (they spell the command :func:`interrupted` prints)."""
    train = _Parser(prog="gatedcells train")
    _add_model_options(train)
    _add_run_options(train)
    return train


def _add_model_options(train: argparse.ArgumentParser) -> None:
    """``train``'s options that choose the task, the cell and the training."""
    add = train.add_argument
    add("--task", required=True, choices=TASKS, metavar="TASK", help=HELP["task"])
    add("--cell", required=True, choices=ALL_CELLS, metavar="CELL", help=HELP["cell"])
    add("--hidden", type=_positive, default=32, help="hidden size (default: %(default)s)")
    add("--layers", type=_positive, default=1, help="stacked layers (default: %(default)s)")
    add("--length", type=_positive, help=HELP["length"])
    add("--steps", type=_positive, default=1000, help="training steps (default: %(default)s)")
    add("--batch-size", type=_positive, default=64, help="default: %(default)s")
    add("--lr", type=_positive_float, default=1e-3, help=HELP["lr"])
    add("--clip", type=_clip_norm, default=1.0, help=HELP["clip"])
    add("--forget-bias", type=float, default=1.0, help=HELP["forget_bias"])
    add("--update-bias", type=float, default=1.0, help=HELP["update_bias"])
    add("--eval-every", type=_positive, help="steps between evaluations (default: steps/10)")
    add("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    add_task_options(train)


def _add_run_options(train: argparse.ArgumentParser) -> None:
    """``train``'s options that do not change what it computes (see :data:`RUN_ONLY`)."""
    add = train.add_argument
    add("--out", required=True, help=HELP["out"])
    add("--checkpoint-every", type=_positive, metavar="N", help=HELP["checkpoint_every"])
    either = train.add_mutually_exclusive_group()
    either.add_argument("--resume", action="store_true", help=HELP["resume"])
    either.add_argument("--overwrite", action="store_true", help=HELP["overwrite"])
    add("--quiet", action="store_true", help="no progress bar")


def _zoo(argv: list[str]) -> int:
    from ..zoo import main as zoo_main

    return zoo_main(argv, prog="gatedcells zoo")


def _bench(argv: list[str]) -> int:
    from ..bench import main as bench_main

    return bench_main(argv)


# The commands that use the CPU's cores as devices (the count is fixed when JAX starts).
CORES = ("train", "demo", "zoo", "bench")

# Subcommands whose options (--help included) belong to a module of their own.
PASSTHROUGH = {
    "zoo": (_zoo, "every variant of the zoo on one task, one table (python -m gatedcells.zoo)"),
    "bench": (_bench, "speed against Flax, Equinox and PyTorch (the installed ones), side by side"),
}


def _add_passthrough(sub) -> None:
    """List the pass-through subcommands in ``--help``; ``main`` hands them their argv."""
    for name, (run, summary) in PASSTHROUGH.items():
        parser = sub.add_parser(
            name,
            help=summary,
            description=f"See 'gatedcells {name} --help' (options are passed to gatedcells.{name}).",
            add_help=False,
        )
        parser.add_argument("args", nargs=argparse.REMAINDER, help=f"options of gatedcells.{name}")
        parser.set_defaults(run=lambda args, run=run: run(args.args))


def main(argv: list[str] | None = None) -> int:
    """Run the command with ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        if argv[:1] and argv[0] in CORES:  # before any JAX operation
            use_cpu_cores()
        if argv[:1] and argv[0] in PASSTHROUGH:
            return PASSTHROUGH[argv[0]][0](argv[1:])
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
