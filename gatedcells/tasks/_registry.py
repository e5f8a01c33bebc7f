"""The tasks by name, as the ``gatedcells`` command knows them."""

from __future__ import annotations

from collections.abc import Callable

from ._digits import digits
from ._synthetic import adding, copy_memory, temporal_order
from ._task import Task

TASKS: dict[str, Callable[..., Task]] = {
    "adding": adding,
    "copy": copy_memory,
    "order": temporal_order,
    "digits": digits,
}
"""The tasks by the names the ``gatedcells`` command uses."""


def get(name: str, length: int | None = None) -> Task:
    """The task called ``name`` (a key of :data:`TASKS`) at ``length`` (its default if None).

    ``length`` is the sequence length ``T`` (the delay for ``"copy"``); ``"digits"`` has a
    fixed length of 8 and accepts only ``None`` or 8.

    Raises:
      ValueError: for an unknown name, or a length the task does not accept.

    Examples:
      >>> import gatedcells.tasks as tasks
      >>> tasks.get("adding", 30).name
      'adding(T=30)'
    """
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}")
    if name == "digits":
        if length not in (None, 8):
            raise ValueError(f"the digits task has a fixed length of 8, got length={length}")
        return digits()
    return TASKS[name]() if length is None else TASKS[name](length)
