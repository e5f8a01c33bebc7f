"""``param_counts``: parameters per cell and the ratio to a simple RNN of the same sizes."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import jax

from .._cell import Cell, Params
from .._checks import check_cell, check_positive_int
from ..cells import simple_rnn


def count_params(params: Params) -> int:
    """The number of scalars in a params pytree (any cell, stack or model).

    Examples:
      >>> import jax, gatedcells as gc
      >>> I, H = 3, 8
      >>> [gc.count_params(c.init(jax.random.key(0), I)) // (I * H + H * H + H)
      ...  for c in (gc.simple_rnn(H), gc.lstm(H), gc.lstm(H, forget_gate=False))]
      [1, 4, 3]
    """
    total = 0
    for leaf in jax.tree.leaves(params):
        if not hasattr(leaf, "shape"):
            raise TypeError(
                f"params must be a pytree of arrays (or jax.ShapeDtypeStruct), got a leaf of "
                f"type {type(leaf).__name__}"
            )
        total += math.prod(leaf.shape)
    return total


class ParamCount(NamedTuple):
    """A cell's parameter count next to a simple RNN's of the same sizes.

    Attributes:
      params: the cell's number of scalars.
      simple_rnn: that of ``simple_rnn(O)`` with the same input size, ``O`` the cell's
        ``output_size``: ``I*O + O*O + O``, the lecture's unit.
      ratio: ``params / simple_rnn`` (the lecture: 4 for the LSTM, 3 for the GRU).
    """

    params: int
    simple_rnn: int
    ratio: float


def param_counts(
    cells: Mapping[str, Cell] | Sequence[Cell], input_size: int
) -> dict[str, ParamCount]:
    """Parameter counts of ``cells`` at ``input_size`` and their ratio to a simple RNN.

    The params are never materialised: their shapes come from ``jax.eval_shape`` of
    ``cell.init``. The reference is a simple RNN with the same input size and a hidden size
    equal to the cell's ``output_size`` (for a single cell, its hidden size ``H``; a stack
    is compared with one simple RNN layer of its output size, a bidirectional layer with one
    of its merged output size).

    Args:
      cells: a mapping ``name -> cell``, or a sequence of cells (named by ``cell.name``).
      input_size: ``I``.

    Returns:
      ``{name: ParamCount(params, simple_rnn, ratio)}``, in the order given.

    Raises:
      TypeError: for an entry that is not a :class:`gatedcells.Cell`.
      ValueError: for a non-positive ``input_size`` or two cells of the same name.

    Examples:
      >>> import gatedcells as gc
      >>> from gatedcells import diagnostics as gd
      >>> table = gd.param_counts([gc.simple_rnn(32), gc.lstm(32), gc.gru(32)], 16)
      >>> {name: (row.params, round(row.ratio, 3)) for name, row in table.items()}
      {'simple_rnn(32)': (1568, 1.0), 'lstm(32)': (6272, 4.0), 'gru(32)': (4736, 3.02)}
    """
    check_positive_int("input_size", input_size)
    if isinstance(cells, Mapping):
        items = list(cells.items())
    else:
        items = [(getattr(cell, "name", repr(cell)), cell) for cell in cells]
        names = [name for name, _ in items]
        if len(set(names)) != len(names):
            raise ValueError(f"two cells share a name in {names}; pass a dict to name them")
    table = {}
    for name, cell in items:
        check_cell("cell", cell)
        params = _count(cell, input_size)
        reference = _count(simple_rnn(cell.output_size), input_size)
        table[name] = ParamCount(params, reference, params / reference)
    return table


def _count(cell: Cell, input_size: int) -> int:
    shapes = jax.eval_shape(lambda: cell.init(jax.random.key(0), input_size))
    return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(shapes))
