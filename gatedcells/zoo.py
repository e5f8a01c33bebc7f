"""Every cell variant of gatedcells by name, and a comparison of them all on one task.

``python -m gatedcells.zoo`` trains each variant of :func:`variants` on one task of
:mod:`gatedcells.tasks` with the same budget and prints one table (parameters, final test
metric and loss, wall-clock seconds). :func:`compare` returns the rows for a notebook.
``import gatedcells`` does not import this module; it needs optax (``gatedcells[train]``).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from typing import NamedTuple

from ._cell import Cell
from .cells import CELLS
from .diagnostics import count_params

__all__ = ["Row", "compare", "main", "table", "variants"]


def variants(hidden_size: int) -> dict[str, Cell]:
    """Every cell of the registry (:data:`gatedcells.cells.CELLS`) at hidden size ``H``.

    The LSTM entries ``lstm_<name>`` are Greff et al.'s grid by :func:`gatedcells.lstm_variant`
    (``lstm_np`` computes the plain :func:`gatedcells.lstm`), then JANET, the
    layer-normalised LSTM and LSTMP (``P = H/2``); the GRU in both forms and
    layer-normalised; MGU, MUT1-3, IndRNN, minGRU, minLSTM; the xLSTM's sLSTM and mLSTM; the
    gated linear recurrences RG-LRU, LRU and the selective SSM (each projecting its input);
    DeltaNet and Gated DeltaNet; and the simple RNN as the baseline without gates.

    Examples:
      >>> from gatedcells import zoo
      >>> cells = zoo.variants(8)
      >>> len(cells), cells["lstm_cifg"].name
      (32, "lstm_variant(8, variant='cifg')")
    """
    return {name: make(hidden_size) for name, make in CELLS.items()}


class Row(NamedTuple):
    """One trained variant: its name, parameter count (readout included), final evaluation
    ``metric`` and ``loss``, and wall-clock ``seconds`` of training (compilation included)."""

    name: str
    params: int
    metric: float
    loss: float
    seconds: float


def compare(
    task=None,
    *,
    hidden_size: int = 32,
    steps: int = 600,
    batch_size: int = 64,
    learning_rate: float = 3e-3,
    seed: int = 0,
    names: Sequence[str] | None = None,
    eval_every: int | None = None,
    progress: bool = False,
) -> list[Row]:
    """Train every variant (or those in ``names``) on ``task`` with Adam and the same budget.

    Args:
      task: a :class:`gatedcells.tasks.Task` (default: the adding problem, ``T = 50``).
      hidden_size: ``H`` of every cell.
      steps, batch_size, learning_rate, seed: the training budget, the same for all.
      names: a subset of :func:`variants`' names, in the order wanted.
      eval_every: steps between evaluations (default ``steps // 10``); ``steps`` evaluates
        once, at the end, which is all the table needs.
      progress: show a progress bar per variant.

    Returns:
      One :class:`Row` per variant, in the order trained.
    """
    import jax
    import optax

    from . import tasks, training

    task = tasks.adding(50) if task is None else task
    cells = variants(hidden_size)
    unknown = sorted(set(names or ()) - set(cells))
    if unknown:
        raise ValueError(f"names: unknown variants {unknown}; choose among {sorted(cells)}")
    rows = []
    for name in names or cells:
        start = time.perf_counter()
        params, history = training.fit_task(
            cells[name],
            task,
            optax.adam(learning_rate),
            steps=steps,
            key=jax.random.key(seed),
            batch_size=batch_size,
            eval_every=eval_every,
            progress=progress,
            desc=name,
        )
        seconds = time.perf_counter() - start
        final = {k: float(v[-1]) for k, v in history.eval.items()}
        rows.append(
            Row(name, count_params(params), final[task.metric_name], final["loss"], seconds)
        )
    return rows


def table(rows: Sequence[Row], task) -> str:
    """The rows as a Markdown table, with the task's chance-level baseline."""
    best = max if task.higher_is_better else min
    top = best(r.metric for r in rows)
    lines = [
        f"{task.name}: {task.metric_name} (chance level {task.baseline_metric:.4g})",
        "",
        f"| variant | params | {task.metric_name} | loss | seconds |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        metric = f"**{r.metric:.4g}**" if r.metric == top else f"{r.metric:.4g}"
        lines.append(f"| {r.name} | {r.params} | {metric} | {r.loss:.4g} | {r.seconds:.0f} |")
    return "\n".join(lines)


# The command's help, in plain text (the module's docstring is written for the docs site).
DESCRIPTION = (
    "Trains every cell variant of gatedcells (the registry gatedcells.cells.CELLS; --only "
    "names a subset) on one task with Adam and the same budget, and prints one table: "
    "parameters, final test metric and loss, wall-clock seconds. Needs optax: "
    "pip install 'gatedcells[train]'."
)
EXAMPLE = "example: python -m gatedcells.zoo --task adding --only lstm gru min_gru"
HELP_LENGTH = (
    "sequence length T (the delay for copy; default: 50; digits and mnist1d have fixed "
    "lengths, smnist reads 784 pixels or, with 28, rows)"
)


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line on stderr (exit status 2)."""

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def main(argv: Sequence[str] | None = None, prog: str = "python -m gatedcells.zoo") -> int:
    """``python -m gatedcells.zoo [--task adding --length 50 --hidden 32 --steps 600 ...]``,
    also ``gatedcells zoo [...]`` (``prog`` names the command in the help and the errors).

    A bad argument (an unknown ``--only`` name included) is one line on stderr, exit status 2:

    Examples:
      >>> import contextlib, io
      >>> err = io.StringIO()
      >>> with contextlib.redirect_stderr(err):
      ...     main(["--only", "gru", "gruu"])
      Traceback (most recent call last):
      ...
      SystemExit: 2
      >>> print(err.getvalue().split("; known:")[0])
      error: python -m gatedcells.zoo: --only: unknown variant 'gruu' (did you mean 'gru'?)
    """
    import difflib

    from . import tasks
    from .cli._numbers import positive, positive_float  # the train command's checks
    from .tasks._registry import FIXED

    example = EXAMPLE.replace("python -m gatedcells.zoo", prog)
    parser = _Parser(prog=prog, description=DESCRIPTION, epilog=example)
    add = parser.add_argument
    add(
        "--task",
        default="adding",
        choices=sorted(tasks.TASKS),
        help="the task (default: %(default)s)",
    )
    add("--length", type=positive, help=HELP_LENGTH)
    add("--hidden", type=positive, default=32, help="hidden size H (default: %(default)s)")
    add("--steps", type=positive, default=600, help="training steps (default: %(default)s)")
    add("--batch-size", type=positive, default=64, help="default: %(default)s")
    add("--lr", type=positive_float, default=3e-3, help="Adam's learning rate (default: 0.003)")
    add("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    add("--only", nargs="*", metavar="NAME", help="train only these variants, in this order")
    args = parser.parse_args(argv)
    known = list(variants(2))  # the names do not depend on the size
    unknown = [name for name in args.only or () if name not in known]
    if unknown:
        close = {name: difflib.get_close_matches(name, known, n=1) for name in unknown}
        listed = ", ".join(
            f"{name!r}" + (f" (did you mean {c[0]!r}?)" if c else "") for name, c in close.items()
        )
        plural = "s" if len(unknown) > 1 else ""
        parser.error(f"--only: unknown variant{plural} {listed}; known: {', '.join(known)}")
    length = args.length
    if length is None and args.task not in FIXED:  # 50 where a task takes any length
        length = 50
    try:
        task = tasks.get(args.task, length)
    except ValueError as err:
        parser.error(str(err))
    rows = compare(
        task,
        hidden_size=args.hidden,
        steps=args.steps,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        seed=args.seed,
        names=args.only,
        progress=False,
    )
    print(table(rows, task))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
