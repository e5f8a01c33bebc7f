"""Where time is in a sequence: the one layout rule of every sequence driver and adapter.

A sequence is ``[*B, T, *F]`` (batch-major) or ``[T, *B, *F]`` (time-major), ``F`` the
``feature_ndim`` trailing axes of one step's input: ``(I,)`` for a dense cell, ``(*S, I)``
for a convolutional one. ``lengths`` cover ``*B``; a carry covers ``(*B, *S)``. The drivers
run time-major: :func:`to_time_major` moves ``T`` to the front, :func:`from_time_major`
moves it back to where it was.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax.numpy as jnp

from .. import _checks
from .._cell import Array, Carry, Cell, Params


class SequenceLayout(NamedTuple):
    """The axes of a sequence ``xs``.

    Attributes:
      time: the axis of ``T``: 0 time-major, ``len(B)`` batch-major.
      steps: ``T`` (a symbolic dimension under ``jax.export``).
      batch_shape: ``B``, the axes that ``lengths`` cover.
      frame_shape: a step's trailing axes, ``(I,)`` or ``(*S, I)``.
    """

    time: int
    steps: Any
    batch_shape: tuple[int, ...]
    frame_shape: tuple[int, ...]

    @property
    def carry_shape(self) -> tuple[int, ...]:
        """``(*B, *S)``: a step input's shape without its last axis, the carry's batch shape."""
        return self.batch_shape + self.frame_shape[:-1]


def sequence_layout(
    shape: tuple[int, ...], feature_ndim: int = 1, time_major: bool = False
) -> SequenceLayout:
    """The layout of a sequence of ``shape`` (rank at least ``feature_ndim + 1``)."""
    lead = len(shape) - feature_ndim  # T and *B
    time = 0 if time_major else lead - 1
    batch_shape = shape[1:lead] if time_major else shape[: lead - 1]
    return SequenceLayout(time, shape[time], tuple(batch_shape), tuple(shape[lead:]))


def to_time_major(xs: Array, layout: SequenceLayout) -> Array:
    """``xs`` in ``layout`` as ``[T, *B, *F]``."""
    return jnp.moveaxis(xs, layout.time, 0)


def from_time_major(ys: Array, layout: SequenceLayout) -> Array:
    """``ys [T, *B, *F']`` back in ``layout`` (outputs keep the inputs' layout)."""
    return jnp.moveaxis(ys, 0, layout.time)


def check_sequence(
    cell: Cell, params: Params, xs: Any, carry: Carry | None, time_major: bool = False
) -> tuple[Array, Carry, SequenceLayout]:
    """Trace-time checks of ``(cell, params, xs, carry)`` for a sequence driver.

    ``xs`` as :func:`check_inputs` checks it. Returns ``(xs, carry, layout)``, with
    ``carry=None`` replaced by the cell's zeros for steps ``[*B, *S, I]``.
    """
    xs, layout = check_inputs(cell, params, xs, time_major)
    return xs, start_carry(cell, carry, layout), layout


def check_inputs(
    cell: Cell, params: Params, xs: Any, time_major: bool = False
) -> tuple[Array, SequenceLayout]:
    """Trace-time checks of ``(cell, params, xs)``; returns ``(xs, layout)``.

    ``xs`` is ``[*B, T, I]`` (``[T, *B, I]`` when ``time_major``), or ``[*B, T, *S, I]``
    (``[T, *B, *S, I]``) for a cell with ``feature_ndim = 1 + len(S)``, with the params'
    input size ``I``.
    """
    _checks.check_cell("cell", cell)
    input_size = cell.check_params(params)
    xs = _checks.check_float_array("xs", xs)
    _checks.check_flag("time_major", time_major)
    nf = getattr(cell, "feature_ndim", 1)
    if xs.ndim < nf + 1 or xs.shape[-1] != input_size:
        frame, sizes = _checks.describe_frame(nf, input_size)
        order = f"[T, *B, {frame}]" if time_major else f"[*B, T, {frame}]"
        raise ValueError(
            f"xs must have shape {order} with {sizes} (the params' input size), "
            f"got shape {tuple(xs.shape)}"
        )
    return xs, sequence_layout(xs.shape, nf, time_major)


def start_carry(cell: Cell, carry: Carry | None, layout: SequenceLayout) -> Carry:
    """The carry a driver starts from: ``cell``'s zeros for ``None``, else ``carry`` checked
    against ``layout``'s ``(*B, *S)`` (in the cell's containers, see ``check_carry``)."""
    if carry is None:
        return cell.initial_carry(layout.carry_shape)
    return _checks.check_carry(cell, carry, layout.carry_shape)
