"""``gate_trace``: every gate activation and the carry at every step of a sequence."""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from .._cell import Array, Carry, Cell, Gates, Params
from ..sequence import mask_inputs, mask_step, valid_mask
from ..sequence._layout import check_sequence, from_time_major, to_time_major
from ..sequence._masks import broadcast_valid


class GateTrace(NamedTuple):
    """What a cell computed at every step of a sequence (batch-major, time on axis ``-2``).

    Attributes:
      gates: the cell's own gate NamedTuple (:class:`gatedcells.LSTMGates` ``(i, f, g, o)``,
        :class:`gatedcells.GRUGates` ``(r, z, n)``, ...) with every leaf ``[*B, T, H]``; a
        stack's is a tuple with one entry per layer. A clamped gate shows its constant.
      carry: the carry after every step, with the carry's structure and every leaf
        ``[*B, T, ...]`` (an LSTM's memory cell is ``carry.c [*B, T, H]``).
      ys: the outputs ``[*B, T, O]``, equal to :func:`gatedcells.unroll`'s.
      valid: boolean ``[*B, T]``, ``t < lengths`` (all true without ``lengths``). Past a
        sequence's end the gates and outputs are zero and the carry keeps its last value.
    """

    gates: Gates
    carry: Carry
    ys: Array
    valid: Array


def gate_trace(
    cell: Cell,
    params: Params,
    xs: Array,
    carry: Carry | None = None,
    *,
    lengths: Array | None = None,
    reverse: bool = False,
) -> GateTrace:
    r"""Every gate activation, carry and output of ``cell`` over the sequence ``xs``.

    The cell's own ``trace`` runs in a ``jax.lax.scan``: the gates are those the cell's step
    computes, by the same code (no second copy of any equation), for any cell that can be
    stepped (every factory, stacks, wrappers; not :func:`gatedcells.bidirectional`, whose
    directions are traced one at a time, the backward one with ``reverse=True``).

    Args:
      cell: a :class:`gatedcells.Cell`.
      params: its params.
      xs: inputs ``[*B, T, I]`` (batch-major, as :func:`gatedcells.unroll`'s default), or
        ``[*B, T, *S, I]`` for a convolutional cell.
      carry: the initial carry, or ``None`` for zeros.
      lengths: integer ``[*B]``, the valid length of each right-padded sequence.
      reverse: read the sequence backwards (within each sequence's length), as the backward
        half of a bidirectional layer does; the trace stays aligned with the inputs.

    Returns:
      A :class:`GateTrace` ``(gates, carry, ys, valid)``.

    Raises:
      TypeError: ``xs`` not a floating array, ``cell`` not a cell, or a cell that cannot be
        stepped.
      ValueError: ``xs`` not ``[*B, T, I]`` with the params' input size, a ``carry`` or
        ``lengths`` that does not match the batch shape.

    Examples:
      >>> import jax, jax.numpy as jnp, gatedcells as gc
      >>> from gatedcells import diagnostics as gd
      >>> cell = gc.lstm(4, forget_bias=5.0)
      >>> params = cell.init(jax.random.key(0), 3)
      >>> tr = gd.gate_trace(cell, params, jnp.zeros((2, 6, 3)))
      >>> tr.gates._fields, tr.gates.f.shape, tr.carry.c.shape
      (('i', 'f', 'g', 'o'), (2, 6, 4), (2, 6, 4))
      >>> round(float(tr.gates.f.mean()), 4)   # sigmoid(5): the LSTM starts remembering
      0.9933
      >>> bool(jnp.allclose(tr.ys, gc.unroll(cell, params, jnp.zeros((2, 6, 3)))[1]))
      True
    """
    xs, carry, layout = check_sequence(cell, params, xs, carry)
    steps, batch_shape = layout.steps, layout.batch_shape
    valid = None if lengths is None else valid_mask(lengths, steps, batch_shape)
    xs = mask_inputs(valid, to_time_major(xs, layout))  # [T, *B, *S, I]
    flags = broadcast_valid(valid, xs.shape)  # one per carry position, as unroll masks
    x_proj = cell.project(params, xs)  # [T, *B, *S, G*H]

    def body(carry, inputs):
        x_proj_t, valid_t = inputs
        new_carry, y, gates = cell.update(params, carry, x_proj_t)
        if valid_t is not None:
            new_carry, y = mask_step(valid_t, new_carry, carry, y)
            gates = jax.tree.map(lambda g: jnp.where(valid_t[..., None], g, 0), gates)
        return new_carry, (gates, new_carry, y)

    _, (gates, carries, ys) = jax.lax.scan(body, carry, (x_proj, flags), reverse=reverse)
    batch_major = functools.partial(from_time_major, layout=layout)
    if valid is None:
        valid = jnp.ones((steps, *batch_shape), bool)
    return GateTrace(
        gates=jax.tree.map(batch_major, gates),
        carry=jax.tree.map(batch_major, carries),
        ys=batch_major(ys),
        valid=batch_major(valid),
    )
