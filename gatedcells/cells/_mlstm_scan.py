r"""The mLSTM's recurrent form over a whole sequence, with a gradient of its own.

The step is :func:`gatedcells.cells._mlstm.update`'s, run on inputs split and gated once
for the whole sequence (time-major, ``...`` = ``[B, NH]``): ``q, k [T, ..., DK]`` (``k``
scaled), ``v [T, ..., DV]``, ``log_i`` (:math:`\tilde\imath`) and ``log_f``
(:math:`\log\sigma(\tilde f)`) ``[T, ...]``. Plain autodiff of that loop saves every
intermediate of every step and reads them back one by one; the backward pass needs less.
The forward loop saves the state before each step (as the fused scan of the dense cells
does) and three scalars per step and head (:math:`m_t`, :math:`n_t^\top q_t`, the
denominator); the backward loop runs the adjoint recurrence

.. math::

   \bar C_t &= f_{t+1} \bar C_{t+1} + \bar{\mathrm{num}}_t\, q_t^\top, \qquad
   \bar n_t = f_{t+1} \bar n_{t+1} + \bar{(n^\top q)}_t\, q_t \\
   \bar v_t &= i_t \bar C_t k_t, \quad \bar k_t = i_t (\bar C_t^\top v_t + \bar n_t),
   \quad \bar q_t = C_t^\top \bar{\mathrm{num}}_t + \bar{(n^\top q)}_t\, n_t \\
   \bar f_t &= \langle \bar C_t, C_{t-1} \rangle + \bar n_t \cdot n_{t-1}, \qquad
   \bar\imath_t = v_t^\top \bar C_t k_t + \bar n_t \cdot k_t

with :math:`C_t^\top \bar{\mathrm{num}}_t = f_t C_{t-1}^\top \bar{\mathrm{num}}_t + i_t
(v_t \cdot \bar{\mathrm{num}}_t) k_t` read from the saved state, and the stabiliser's
adjoint :math:`\bar m_t` carried alongside (through :math:`f_t = e^{\log f_t + m_{t-1} -
m_t}`, :math:`i_t = e^{\tilde\imath_t - m_t}`, the floor :math:`e^{-m_t}` and the ``max``
of :math:`m_t`, ties split in halves as ``jnp.maximum``'s derivative does). Everything
pointwise in time (the gates, the denominator's branch, :math:`\bar{\mathrm{num}}_t =
\bar h_t / d_t`) is computed before or after the loops, for all steps at once. It is the
same derivative as autodiff's, in another order (float rounding aside).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from .._cell import Array

State = tuple[Array, Array, Array]  # (C [..., DV, DK], n [..., DK], m [...]), stabilised

# The denominator's floor e^{-m} is capped at e^{80} (float32 overflows past e^{88.7}). It
# binds only for m < -80, where the output is below e^{-80} |C q| either way (< 1e-20 here),
# and keeps the gradient finite: e^{-m} = inf would multiply a zero cotangent.
MAX_LOG_FLOOR = 80.0


def floor(m: Array) -> Array:
    """:math:`e^{-m}`, the denominator's lower bound, capped at :math:`e^{80}`."""
    return jnp.exp(jnp.minimum(-m, MAX_LOG_FLOOR))


def recurrent(q, k, v, log_i, log_f, state: State, eps: float, unroll: int | bool = 1):
    """``(h [T, ..., DV], state)``: the recurrent form, step by step from ``state``."""
    with jax.named_scope("gatedcells.mlstm_recurrent"):
        return _recurrent(eps, unroll, q, k, v, log_i, log_f, state)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _recurrent(eps, unroll, q, k, v, log_i, log_f, state):
    last, (h, _) = _forward(eps, unroll, q, k, v, log_i, log_f, state, save=False)
    return h, last


def step(state: State, q, k, v, log_i, log_f, eps: float):
    """One stabilised step (the paper's equations, as :func:`gatedcells.mlstm` writes them):
    ``(state, h [..., DV], (i, f, n^T q, denominator))`` from ``state`` and one step's
    inputs (``q, k [..., DK]``, ``v [..., DV]``, ``log_i, log_f [...]``)."""
    c, n, m = state
    m_new = jnp.maximum(log_f + m, log_i)
    f = jnp.exp(log_f + m - m_new)
    i = jnp.exp(log_i - m_new)
    c = f[..., None, None] * c + i[..., None, None] * (v[..., :, None] * k[..., None, :])
    n = f[..., None] * n + i[..., None] * k
    num = jnp.einsum("...vd,...d->...v", c, q)
    qn = jnp.sum(n * q, axis=-1)
    den = jnp.maximum(jnp.abs(qn), floor(m_new)) + eps
    return (c, n, m_new), num / den[..., None], (i, f, qn, den)


def _forward(eps, unroll, q, k, v, log_i, log_f, state, save):
    def body(carry, x):
        new, h, (_, _, qn, den) = step(carry, *x, eps)
        return new, (h, (carry, new[2], qn, den) if save else None)

    return jax.lax.scan(body, state, (q, k, v, log_i, log_f), unroll=unroll)


def _fwd(eps, unroll, q, k, v, log_i, log_f, state):
    last, (h, saved) = _forward(eps, unroll, q, k, v, log_i, log_f, state, save=True)
    return (h, last), (q, k, v, log_i, log_f, h, saved)


def _bwd(eps, unroll, residuals, cotangents):
    del eps
    q, k, v, log_i, log_f, h, ((c_prev, n_prev, m_prev), m, qn, den) = residuals
    dh, d_last = cotangents
    u = log_f + m_prev  # m = max(u, log_i)
    f, i = jnp.exp(u - m), jnp.exp(log_i - m)
    to_u = half_ties(u, log_i)  # the share of m's cotangent that reaches u
    d_num = dh / den[..., None]
    d_den = -jnp.sum(dh * h, axis=-1) / den
    fl = floor(m)
    to_qn = half_ties(jnp.abs(qn), fl)
    d_qn = jnp.where(qn >= 0, d_den, -d_den) * to_qn  # as jnp.abs's derivative
    d_m_floor = -d_den * (1 - to_qn) * fl * half_ties(MAX_LOG_FLOOR, -m)

    def step(carry, x):
        dc, dn, dm = carry
        q, k, v, f, i, to_u, d_num, d_qn, d_m_floor, c_prev, n_prev = x
        dc = dc + d_num[..., :, None] * q[..., None, :]
        dn = dn + d_qn[..., None] * q
        dck = jnp.einsum("...vd,...d->...v", dc, k)
        d_i = jnp.sum(v * dck, axis=-1) + jnp.sum(dn * k, axis=-1)
        d_f = jnp.sum(dc * c_prev, axis=(-2, -1)) + jnp.sum(dn * n_prev, axis=-1)
        dv = i[..., None] * dck
        dk = i[..., None] * (jnp.einsum("...vd,...v->...d", dc, v) + dn)
        n = f[..., None] * n_prev + i[..., None] * k
        dq = f[..., None] * jnp.einsum("...vd,...v->...d", c_prev, d_num)
        dq = dq + (i * jnp.sum(v * d_num, axis=-1))[..., None] * k + d_qn[..., None] * n
        du, d_log_i = d_f * f, d_i * i
        dm = dm + d_m_floor - du - d_log_i  # m's cotangent, then split by its max
        du, d_log_i = du + to_u * dm, d_log_i + (1 - to_u) * dm
        carry = (f[..., None, None] * dc, f[..., None] * dn, du)
        return carry, (dq, dk, dv, d_log_i, du)

    xs = (q, k, v, f, i, to_u, d_num, d_qn, d_m_floor, c_prev, n_prev)
    d_state, (dq, dk, dv, d_log_i, d_log_f) = jax.lax.scan(
        step, d_last, xs, reverse=True, unroll=unroll
    )
    return dq, dk, dv, d_log_i, d_log_f, d_state


def half_ties(a: Array, b: Array) -> Array:
    """``d max(a, b) / da``: 1 where ``a > b``, 0 where ``a < b``, 1/2 at ties."""
    return jnp.where(a > b, 1.0, jnp.where(a == b, 0.5, 0.0)).astype(jnp.result_type(a, b))


_recurrent.defvjp(_fwd, _bwd)
