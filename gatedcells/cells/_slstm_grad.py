"""The sLSTM step's own backward for the fused scan (:class:`~gatedcells.PointwiseVJP`): what
the forward loop saves of each step (:func:`residuals`) and the step's VJP from it
(:func:`backward`), so that the backward loop recomputes no ``log_sigmoid``, ``tanh`` or
``sigmoid``. The step's equations are :func:`gatedcells.cells._slstm.pointwise`'s;
``grad="autodiff"`` differentiates that step itself, the reference of this one."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from .._cell import Array, PointwiseVJP
from . import _anatomy
from ._blocks import wide


class SLSTMResiduals(NamedTuple):
    r"""What the backward of one sLSTM step reads (:func:`backward`), saved by the fused
    scan's forward loop, each ``[*B, H]``: the carry before the step and the step's gate
    inputs (float32 at least, as the gates are computed).

    Attributes:
      c: the cell state before the step, :math:`c_{t-1}` (the carry's dtype).
      n: the normaliser before the step, :math:`n_{t-1}` (the carry's dtype).
      lead: :math:`\tilde i_t - (\log f_t + m_{t-1})`, how far the input gate leads the
        forget gate: all the stabiliser's work hangs on it. A memory that is not empty
        takes :math:`m_t = \tilde i_t` where it is positive, and its stabilised gates are
        :math:`i'_t = e^{\min(lead, 0)}` and :math:`f'_t = e^{\min(-lead, 0)}` (an empty
        one's are :math:`1` and the latter).
      f: the forget gate's pre-activation :math:`\tilde f_t` (the slope of the sigmoid forget
        gate's logarithm); ``None`` for the exponential one.
      z: the cell input :math:`\tanh(\tilde z_t)`.
      o: the output gate :math:`\sigma(\tilde o_t)`.
    """

    c: Array
    n: Array
    lead: Array
    f: Array | None
    z: Array
    o: Array


def log_forget(spec: Any, f: Array) -> Array:
    r""":math:`\log f_t` from the forget gate's pre-activation: ``log_sigmoid``, or itself."""
    return f if spec.forget_gate == "exp" else jax.nn.log_sigmoid(f)


def residuals(spec: Any, params: Any, carry: Any, z: Array) -> SLSTMResiduals:
    """What :func:`backward` reads of the step from ``carry`` with pre-activations ``z``
    ``[*B, 4H]`` (the fused scan computes it next to :func:`~gatedcells.cells._slstm.pointwise`, which XLA merges)."""
    del params
    i, f, z, o = jnp.split(z.astype(wide(z.dtype)), 4, axis=-1)  # pointwise's (i, f, z, o)
    lead = i - (log_forget(spec, f) + carry.m.astype(f.dtype))
    f = None if spec.forget_gate == "exp" else f
    return SLSTMResiduals(carry.c, carry.n, lead, f, jnp.tanh(z), jax.nn.sigmoid(o))


def backward(
    spec: Any, params: Any, res: SLSTMResiduals, d_carry: Any, d_y: Array
) -> tuple[Any, Any, Array]:
    """The VJP of :func:`pointwise` at the step ``res`` was saved from (:func:`residuals`),
    without the path through ``h @ w_h``: the fused scan's backward. It is autodiff's, term
    by term in the same order (a tie of ``max`` or ``min`` splits the gradient in halves,
    as JAX's does), with nothing transcendental left but the stabilised gates and the
    forget gate's slope. Returns ``(d params, d carry, d z)``."""
    dtype, wide = d_y.dtype, res.lead.dtype
    c_prev, n_prev = res.c.astype(wide), res.n.astype(wide)
    empty = n_prev == 0
    # ĩ - m and log f + m_prev - m, bit for bit as pointwise computed them
    i_m = jnp.where(empty, 0.0, jnp.minimum(res.lead, 0.0))
    f_m = jnp.where(empty, -res.lead, jnp.minimum(-res.lead, 0.0))
    i, f = jnp.exp(i_m), jnp.exp(jnp.minimum(f_m, 0.0))
    c = f * c_prev + i * res.z
    n = f * n_prev + i
    # h = o c / n, and the carry's own cotangents
    d_h = (d_carry.h + d_y).astype(wide)
    d_oc = d_h / n
    d_c = d_carry.c.astype(wide) + res.o * d_oc
    d_n = d_carry.n.astype(wide) - d_h * n**-2 * (res.o * c)
    # c = f c_prev + i z, n = f n_prev + i; i = exp(ĩ - m), f = exp(min(log f + m_prev - m, 0))
    d_i = (d_n + d_c * res.z) * i
    d_f = (d_n * n_prev + d_c * c_prev) * f * _slope(0.0, f_m)
    d_m = d_carry.m.astype(wide) - d_f - d_i
    # m = max(log f + m_prev, ĩ), or ĩ for an empty memory
    d_m_max = jnp.where(empty, 0.0, d_m)
    d_log_f_m = d_f + d_m_max * _slope(0.0, res.lead)
    d_z = i * d_c * (1 - res.z)
    d_pre = (
        d_i + jnp.where(empty, d_m, 0.0) + d_m_max * _slope(res.lead, 0.0),
        d_log_f_m if res.f is None else d_log_f_m * jax.nn.sigmoid(-res.f),
        d_z + d_z * res.z,  # tanh' = (1 + z)(1 - z)
        d_oc * c * (res.o * (1 - res.o)),
    )
    d_prev = d_carry._replace(c=f * d_c, n=f * d_n, m=d_log_f_m, h=jnp.zeros_like(d_c))
    d_prev = jax.tree.map(lambda a, like: a.astype(like.dtype), d_prev, d_carry)
    d_params = jax.tree.map(jnp.zeros_like, params)
    return d_params, d_prev, jnp.concatenate(d_pre, axis=-1).astype(dtype)


def _slope(x: Array, y: Array) -> Array:
    """``d max(x, y) / dx`` as JAX takes it: 1 where ``x > y``, 1/2 at a tie, else 0 (also
    ``d min(y, x) / dy``)."""
    return jnp.where(x > y, 1.0, jnp.where(x == y, 0.5, 0.0))


def own_vjp(spec: Any) -> PointwiseVJP:
    """The sLSTM's :class:`~gatedcells._cell.PointwiseVJP`: :func:`residuals` and
    :func:`backward` bound to ``spec``."""
    return PointwiseVJP(_anatomy.Bound(residuals, spec), _anatomy.Bound(backward, spec))
