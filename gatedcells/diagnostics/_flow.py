"""``gradient_flow``: how much gradient reaches each step back from a loss at the last one."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from .._cell import Array, Carry, Cell, Params
from ..sequence._layout import check_sequence, from_time_major, to_time_major


class GradientFlow(NamedTuple):
    r"""Gradient norms through time, one per step, for a loss on the last output.

    Index ``t`` is the step that reads the quantity: ``carry[..., t]`` is the norm of the
    gradient with respect to the carry entering step ``t`` (``t = 0``: the initial carry;
    ``t = T-1``: the carry the last step reads), ``inputs[..., t]`` the one with respect to
    ``x_t``. Both are ``T - t`` steps away from the loss.

    Attributes:
      carry: ``[*B, T]``, the norm over every floating leaf of the carry
        (:math:`\|\partial L / \partial h_{t-1}\|` for a GRU or simple RNN, the norm of
        the pair :math:`(\partial L/\partial c_{t-1}, \partial L/\partial h_{t-1})` for an
        LSTM).
      parts: the same per leaf, in the carry's structure, each ``[*B, T]``
        (``parts.c`` and ``parts.h`` for an LSTM; zeros for an integer leaf).
      inputs: ``[*B, T]``, the norm of the gradient with respect to ``x_t``.
    """

    carry: Array
    parts: Carry
    inputs: Array


def gradient_flow(
    cell: Cell,
    params: Params,
    xs: Array,
    carry: Carry | None = None,
    *,
    loss: Callable[[Array], Array] | None = None,
) -> GradientFlow:
    r"""Gradient norms through time, for a loss on the output of the last step.

    The norms are those backpropagation through time computes: the cell's own ``trace``
    runs in a ``jax.lax.scan`` and ``jax.vjp`` differentiates it. With ``loss=None`` the norm
    is the Frobenius norm of the Jacobian of the last output, for every example ``b``

    .. math::

       \mathrm{carry}_{b,t} = \Big\| \frac{\partial y_{T-1}}{\partial \mathrm{carry}_{t-1}}
       \Big\|_F, \qquad \mathrm{inputs}_{b,t} = \Big\| \frac{\partial y_{T-1}}
       {\partial x_t} \Big\|_F,

    the root of the sum over every loss direction at once (so no loss is privileged); with a
    ``loss`` it is :math:`\|\partial L/\partial \cdot\|` for that loss.

    A simple RNN's norms fall geometrically with the distance ``T - t`` (each step
    multiplies by :math:`\mathrm{diag}(\tanh') W^\top`): its gradients vanish. An LSTM's
    memory path multiplies by :math:`\mathrm{diag}(f)` only, so with a forget bias of 5
    (:math:`f \approx 0.993`) they barely fall, and without a forget gate not at all; with a
    forget bias of 0 (:math:`f \approx 0.5`) they vanish too. A GRU's shortcut multiplies by
    :math:`\mathrm{diag}(z)`: its ``update_bias`` plays the forget bias's part.

    Args:
      cell: a :class:`gatedcells.Cell` that can be stepped.
      params: its params.
      xs: inputs ``[*B, T, I]``.
      carry: the initial carry, or ``None`` for zeros.
      loss: ``None`` (the Jacobian's Frobenius norm), or a function ``y [*B, O] -> scalar``
        of the last step's outputs, e.g. ``lambda y: jnp.sum(y ** 2) / 2``. Each example's
        gradient is its own (examples do not interact), so a loss summed over the batch
        gives per-example norms.

    Returns:
      A :class:`GradientFlow` ``(carry [*B, T], parts, inputs [*B, T])``.

    Raises:
      TypeError, ValueError: as :func:`gate_trace` for a bad ``xs`` or ``carry``; a ``loss``
        that does not return a scalar; ``loss=None`` for a cell over frames (``xs [*B, T,
        *S, C]`` for the convolutional cells, whose Jacobian would be ``[*S, H]`` wide).

    Examples:
      >>> import jax, jax.numpy as jnp, gatedcells as gc
      >>> from gatedcells import diagnostics as gd
      >>> xs = jax.random.normal(jax.random.key(1), (30, 2))
      >>> def flow(cell):
      ...     params = cell.init(jax.random.key(0), 2)
      ...     return gd.gradient_flow(cell, params, xs).carry
      >>> rnn, lstm = flow(gc.simple_rnn(8)), flow(gc.lstm(8, forget_bias=5.0))
      >>> rnn.shape, bool(rnn[0] < 1e-4 * rnn[-1]), bool(lstm[0] > 0.1 * lstm[-1])
      ((30,), True, True)
    """
    xs, carry, layout = check_sequence(cell, params, xs, carry)
    batch_shape = layout.batch_shape
    if loss is None and cell.feature_ndim > 1:
        raise ValueError(
            f"loss=None (the Jacobian's norm) needs a cell with vector outputs; {cell.name} "
            "outputs frames [*S, H]: pass a loss, e.g. loss=lambda y: jnp.sum(y ** 2) / 2"
        )
    leaves, treedef = jax.tree.flatten(carry)
    floating = [jnp.issubdtype(leaf.dtype, jnp.floating) for leaf in leaves]
    steps, xs_tm = layout.steps, to_time_major(xs, layout)  # [T, *B, I]
    deltas = [
        jnp.zeros((steps, *leaf.shape), leaf.dtype) for leaf, fl in _pairs(leaves, floating) if fl
    ]

    def last_output(deltas: list[Array], xs_tm: Array) -> Array:
        x_proj = cell.project(params, xs_tm)

        def body(carry: Carry, inputs):
            x_proj_t, deltas_t = inputs
            perturbed = iter(deltas_t)
            carry = jax.tree.unflatten(
                treedef,
                [
                    leaf + next(perturbed) if fl else leaf
                    for leaf, fl in _pairs(jax.tree.leaves(carry), floating)
                ],
            )
            carry, y, _ = cell.update(params, carry, x_proj_t)
            return carry, y

        _, ys = jax.lax.scan(body, carry, (x_proj, deltas))
        return ys[-1]

    y_last, vjp = jax.vjp(last_output, deltas, xs_tm)
    if loss is None:
        basis = jnp.eye(y_last.shape[-1], dtype=y_last.dtype)
        cotangents = jnp.broadcast_to(
            basis.reshape((basis.shape[0],) + (1,) * len(batch_shape) + basis.shape[1:]),
            (basis.shape[0], *y_last.shape),
        )
        g_deltas, g_xs = jax.vmap(vjp)(cotangents)  # each [O, T, *B, ...]
        lead = 1
    else:
        value, loss_vjp = jax.vjp(loss, y_last)
        if jnp.shape(value) != ():
            raise ValueError(f"loss must return a scalar, got shape {jnp.shape(value)}")
        (cotangent,) = loss_vjp(jnp.ones_like(value))
        g_deltas, g_xs = vjp(cotangent)  # each [T, *B, ...]
        lead = 0

    def square_norm(g: Array) -> Array:  # [O?, T, *B, ...] -> [T, *B]
        axes = tuple(range(lead)) + tuple(range(lead + 1 + len(batch_shape), g.ndim))
        return jnp.sum(jnp.square(g.astype(jnp.float32)), axis=axes)

    squares = iter([square_norm(g) for g in g_deltas])
    zeros = jnp.zeros((steps, *batch_shape), jnp.float32)
    per_leaf = [next(squares) if fl else zeros for _, fl in _pairs(leaves, floating)]
    total = sum(per_leaf, zeros)
    batch_major = functools.partial(from_time_major, layout=layout)
    return GradientFlow(
        carry=batch_major(jnp.sqrt(total)),
        parts=jax.tree.unflatten(treedef, [batch_major(jnp.sqrt(s)) for s in per_leaf]),
        inputs=batch_major(jnp.sqrt(square_norm(g_xs))),
    )


def _pairs(leaves: list, floating: list[bool]):
    return zip(leaves, floating, strict=True)
