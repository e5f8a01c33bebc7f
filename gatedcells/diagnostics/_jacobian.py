"""``carry_jacobian``: the one-step Jacobians of a cell's carry."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from .. import _checks
from .._cell import Array, Carry, Cell, Params


class CarryJacobian(NamedTuple):
    r"""The Jacobians of one step of a cell's carry, per example.

    Attributes:
      memory: ``[*B, M, M]``, the Jacobian of the memory with the rest of the carry held
        fixed. For a carry with a memory cell (a NamedTuple with a field ``c``: the LSTM
        family) it is :math:`\partial c_t / \partial c_{t-1}` with :math:`h_{t-1}` fixed,
        ``M = H``: :math:`\mathrm{diag}(f_t)` for the LSTM, the identity without a forget
        gate. For any other carry (the array ``h`` of a GRU or simple RNN, a stack's
        tuple) the memory is the whole carry and ``memory`` equals ``full``:
        :math:`\partial h_t / \partial h_{t-1}`.
      full: ``[*B, N, N]``, the Jacobian of the whole carry, every floating leaf flattened
        and concatenated in the carry's order (``N = 2H`` for ``LSTMCarry(c, h)``: rows and
        columns ``[:H]`` are ``c``, ``[H:]`` are ``h``). Integer leaves (a step counter) are
        held fixed and left out.
    """

    memory: Array
    full: Array


def carry_jacobian(cell: Cell, params: Params, carry: Carry, x: Array) -> CarryJacobian:
    r"""The Jacobians of the carry of one step, ``carry_{t-1} -> carry_t`` at input ``x_t``.

    Computed with ``jax.jacobian`` of the cell's own step, per example (``vmap`` over the
    batch axes). It checks the lecture's claim numerically: with :math:`h_{t-1}` held fixed,
    the LSTM's memory path has :math:`\partial c_t / \partial c_{t-1} = \mathrm{diag}(f_t)`
    (the identity for the 1997 LSTM without a forget gate), no nonlinearity and no weight
    matrix on it. (Peepholes add a term: their gates read :math:`c_{t-1}`.)

    Args:
      cell: a :class:`gatedcells.Cell` that can be stepped.
      params: its params.
      carry: the carry entering the step, each leaf ``[*B, ...]``.
      x: the input of the step, ``[*B, I]``.

    Returns:
      A :class:`CarryJacobian` ``(memory [*B, M, M], full [*B, N, N])``.

    Raises:
      TypeError, ValueError: as :meth:`gatedcells.Cell.step` for a bad ``x`` or ``carry``.

    Examples:
      >>> import jax, jax.numpy as jnp, gatedcells as gc
      >>> from gatedcells import diagnostics as gd
      >>> cell = gc.lstm(3)
      >>> params = cell.init(jax.random.key(0), 2)
      >>> carry = gc.LSTMCarry(c=jnp.ones(3), h=jnp.full(3, 0.5))
      >>> x = jnp.array([1.0, -1.0])
      >>> jac = gd.carry_jacobian(cell, params, carry, x)
      >>> jac.memory.shape, jac.full.shape
      ((3, 3), (6, 6))
      >>> f = cell.gates(params, carry, x).f
      >>> bool(jnp.allclose(jac.memory, jnp.diag(f)))
      True
    """
    _checks.check_cell("cell", cell)
    carry = _checks.check_step_input(cell, params, carry, x)
    batch_shape = tuple(x.shape[:-1])

    def one(carry: Carry, x: Array) -> CarryJacobian:
        x_proj = cell.project(params, x)

        def step(carry: Carry) -> Carry:
            return cell.update(params, carry, x_proj)[0]

        full = _flat_jacobian(step, carry)
        if _has_memory_cell(carry):
            memory = jax.jacobian(lambda c: step(carry._replace(c=c)).c)(carry.c)
        else:
            memory = full
        return CarryJacobian(memory, full)

    if not batch_shape:
        return one(carry, x)
    size = math.prod(batch_shape)
    flat = jax.tree.map(lambda leaf: leaf.reshape((size, *leaf.shape[len(batch_shape) :])), carry)
    out = jax.vmap(one)(flat, x.reshape((size, x.shape[-1])))
    return jax.tree.map(lambda leaf: leaf.reshape(batch_shape + leaf.shape[1:]), out)


def _has_memory_cell(carry: Carry) -> bool:
    return hasattr(carry, "_fields") and "c" in carry._fields


def _flat_jacobian(step: Callable[[Carry], Carry], carry: Carry) -> Array:
    """The Jacobian ``[N, N]`` of ``step`` over the floating leaves of one example's carry."""
    leaves, treedef = jax.tree.flatten(carry)
    floating = [jnp.issubdtype(leaf.dtype, jnp.floating) for leaf in leaves]
    sizes = [int(leaf.size) for leaf, fl in zip(leaves, floating, strict=True) if fl]

    def pack(tree: Carry) -> Array:
        got = jax.tree.leaves(tree)
        return jnp.concatenate([g.ravel() for g, fl in zip(got, floating, strict=True) if fl])

    def unpack(vec: Array) -> Carry:
        parts = iter(jnp.split(vec, list(_cumsum(sizes))[:-1]))
        rebuilt = [
            next(parts).reshape(leaf.shape).astype(leaf.dtype) if fl else leaf
            for leaf, fl in zip(leaves, floating, strict=True)
        ]
        return jax.tree.unflatten(treedef, rebuilt)

    return jax.jacobian(lambda vec: pack(step(unpack(vec))))(pack(carry))


def _cumsum(sizes: list[int]):
    total = 0
    for s in sizes:
        total += s
        yield total
