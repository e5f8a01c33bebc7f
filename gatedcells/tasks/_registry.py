"""The tasks by name, as the ``gatedcells`` command knows them."""

from __future__ import annotations

from collections.abc import Callable

from ._digits import digits
from ._mnist1d import MNIST1D_LENGTH, mnist1d
from ._recall import mqar
from ._selective import selective_copy
from ._smnist import SMNIST_PIXELS, SMNIST_SIDE, smnist
from ._state_tracking import parity
from ._synthetic import adding, copy_memory, temporal_order
from ._task import Task
from ._text import text
from ._video import moving_shapes

TASKS: dict[str, Callable[..., Task]] = {
    "adding": adding,
    "copy": copy_memory,
    "order": temporal_order,
    "digits": digits,
    "mnist1d": mnist1d,
    "smnist": smnist,
    "text": text,
    "mqar": mqar,
    "parity": parity,
    "shapes": moving_shapes,
    "selective_copy": selective_copy,
}
"""The tasks by the names the ``gatedcells`` command uses."""

# The tasks of fixed length: each length they accept, and the factory keywords that give it.
FIXED: dict[str, dict[int, dict[str, bool]]] = {
    "digits": {8: {}},
    "mnist1d": {MNIST1D_LENGTH: {}},
    "smnist": {SMNIST_PIXELS: {"pixels": True}, SMNIST_SIDE: {"pixels": False}},
}


def length_options(name: str, length: int | None) -> dict[str, bool]:
    """The keywords of the fixed-length task ``name``'s factory that give it ``length``
    (``{}`` for None, its default); a length it does not accept is a ``ValueError``."""
    if name not in FIXED:
        raise ValueError(f"the {name} task has no fixed length")
    if length is None:
        return {}
    if length not in FIXED[name]:
        accepted = " or ".join(map(str, FIXED[name]))
        raise ValueError(f"the {name} task has a fixed length of {accepted}, got length={length}")
    return FIXED[name][length]


def get(name: str, length: int | None = None) -> Task:
    """The task called ``name`` (a key of :data:`TASKS`) at ``length`` (its default if None).

    ``length`` is the sequence length ``T`` (the delay for ``"copy"``, the window
    ``seq_len`` for ``"text"``, over the bundled Tiny Shakespeare); ``"digits"`` and
    ``"mnist1d"`` have fixed lengths (8 and 40) and accept only ``None`` or that length;
    ``"smnist"`` reads a digit pixel by pixel (None or 784) or row by row (28).

    Raises:
      ValueError: for an unknown name, or a length the task does not accept.

    Examples:
      >>> import gatedcells.tasks as tasks
      >>> tasks.get("adding", 30).name
      'adding(T=30)'
    """
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}")
    if name in FIXED:
        return TASKS[name](**length_options(name, length))
    if name == "text":
        return text() if length is None else text(seq_len=length)
    return TASKS[name]() if length is None else TASKS[name](length)
