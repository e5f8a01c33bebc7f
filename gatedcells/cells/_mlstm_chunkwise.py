r"""The mLSTM's chunkwise form on whole chunks, with a gradient of its own.

Inputs are chunked (``...`` = ``[B, NH]``): ``q, k [..., NC, L, DK]`` (``k`` scaled),
``v [..., NC, L, DV]``, ``log_i`` and ``log_f`` ``[..., NC, L]``. Within a chunk, with
:math:`F_t = \sum_{s \le t} \log f_s` and :math:`g_j = \tilde\imath_j - F_j`, the decay
matrix of ``_mlstm_forms.outputs`` is :math:`\log D_{tj} = F_t + g_j` and its stabiliser
:math:`m_t = F_t + M_t` with :math:`M_t = \max(\max_{j \le t} g_j, m_0)`: the matrix that is
exponentiated is :math:`g_j - M_t`, and the running maximum is a cumulative max over
``L`` steps, not over ``L x L``. The state at the chunk's end uses the last row:
:math:`C' = e^{m_0 - M_{L}} C_0 + \sum_j e^{g_j - M_L} v_j k_j^\top`, :math:`m' = F_L + M_L`.
The per-chunk sums :math:`\sum_j e^{g_j - \max g} v_j k_j^\top` are one batched matmul over
all chunks; the loop from chunk to chunk is pointwise.

The backward pass is written out: the cotangents of the outputs with respect to each
chunk's start state, its decay matrix and its stabiliser are computed for all chunks at once
(``dS = dnum v^T + dden``, ``dP = dS D``, ``d log D = dS S``); a reverse loop from chunk to
chunk carries the state's cotangent (pointwise: ``dC <- f dC + sum_t w_t dnum_t q_t^T``
and the stabiliser's share); the inputs' gradients through the chunk-end states are again
batched over all chunks. The stabiliser is differentiated as autodiff does (``max`` ties
shared equally, ``maximum`` ties in halves), so the gradient is autodiff's, in another order.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from ._mlstm_scan import MAX_LOG_FLOOR, State, floor, half_ties


def chunks(q, k, v, log_i, log_f, state: State, eps: float):
    """``(h [..., NC, L, DV], state)``: every chunk's outputs and the state after the last."""
    return _chunks(eps, q, k, v, log_i, log_f, state)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _chunks(eps, q, k, v, log_i, log_f, state):
    h, last, _ = _forward(eps, q, k, v, log_i, log_f, state)
    return h, last


def _stabilisers(log_i, log_f):
    """``F`` (cumulative log forget), ``g = ĩ - F``, ``G`` its running max ``[..., NC, L]``
    and ``G``'s last column made finite (a chunk of padding only has ``G = -inf``)."""
    cum = jnp.cumsum(log_f, axis=-1)
    g = log_i - cum
    running = jax.lax.cummax(g, axis=g.ndim - 1)
    top = running[..., -1]
    return cum, g, running, jnp.where(jnp.isfinite(top), top, 0.0)


def _decay(g, running, m0):
    """``M [..., NC, L]``, ``D = exp(g_j - M_t)`` (``j <= t``, else 0) and ``w0 = exp(m0 - M)``."""
    big_m = jnp.maximum(running, m0[..., None])
    d = jnp.where(_causal(g), jnp.exp(g[..., None, :] - big_m[..., :, None]), 0.0)
    return big_m, d, jnp.exp(m0[..., None] - big_m)


def _forward(eps, q, k, v, log_i, log_f, state):
    cum, g, running, top = _stabilisers(log_i, log_f)
    e = jnp.exp(g - top[..., None])
    c_loc = jnp.einsum("...ctv,...ctd->c...vd", e[..., None] * v, k)  # chunk-major
    n_loc = jnp.einsum("...ct,...ctd->c...d", e, k)

    def body(carry, x):
        c, n, m = carry
        g_max, top, total, c_loc, n_loc = x
        big_m = jnp.maximum(g_max, m)
        alpha, beta = jnp.exp(m - big_m), jnp.exp(top - big_m)
        c = alpha[..., None, None] * c + beta[..., None, None] * c_loc
        n = alpha[..., None] * n + beta[..., None] * n_loc
        return (c, n, cum_end(total, big_m)), carry

    chunk_major = lambda a: jnp.moveaxis(a, -1, 0)  # noqa: E731
    xs = (chunk_major(running[..., -1]), chunk_major(top), chunk_major(cum[..., -1]))
    last, starts = jax.lax.scan(body, state, (*xs, c_loc, n_loc))
    c0, n0, m0 = jnp.moveaxis(starts[0], 0, -3), jnp.moveaxis(starts[1], 0, -2), starts[2]
    m0 = jnp.moveaxis(m0, 0, -1)
    big_m, d, w0 = _decay(g, running, m0)
    s = jnp.einsum("...td,...sd->...ts", q, k) * d
    qc, qn = jnp.einsum("...vd,...td->...tv", c0, q), jnp.einsum("...d,...td->...t", n0, q)
    num = s @ v + w0[..., None] * qc
    den = jnp.sum(s, axis=-1) + w0 * qn
    dd = jnp.maximum(jnp.abs(den), floor(cum + big_m)) + eps
    h = num / dd[..., None]
    saved = (q, k, v, cum, g, running, top, (c0, n0, m0), (c_loc, n_loc), h, den, dd)
    return h, last, saved


def cum_end(total, big_m):
    """The stabiliser after a chunk: ``F_L + M_L``."""
    return total + big_m


def _fwd(eps, q, k, v, log_i, log_f, state):
    h, last, saved = _forward(eps, q, k, v, log_i, log_f, state)
    return (h, last), saved


def _bwd(eps, saved, cotangents):
    del eps
    q, k, v, cum, g, running, top, (c0, n0, m0), (c_loc, n_loc), h, den, dd = saved
    dh, d_last = cotangents
    big_m, d, w0 = _decay(g, running, m0)
    s = jnp.einsum("...td,...sd->...ts", q, k) * d
    # the outputs' cotangents, all chunks at once
    d_num = dh / dd[..., None]
    d_dd = -jnp.sum(dh * h, axis=-1) / dd
    fl = floor(cum + big_m)
    to_den = half_ties(jnp.abs(den), fl)
    d_den = jnp.where(den >= 0, d_dd, -d_dd) * to_den
    d_m = -d_dd * (1 - to_den) * fl * half_ties(MAX_LOG_FLOOR, -(cum + big_m))  # of m_t
    ds = jnp.einsum("...tv,...sv->...ts", d_num, v) + d_den[..., None]
    dp, d_log_d = ds * d, ds * s
    qc, qn = jnp.einsum("...vd,...td->...tv", c0, q), jnp.einsum("...d,...td->...t", n0, q)
    dq = dp @ k + w0[..., None] * (
        jnp.einsum("...vd,...tv->...td", c0, d_num) + d_den[..., None] * n0[..., None, :]
    )
    dk = jnp.einsum("...ts,...td->...sd", dp, q)
    dv = jnp.einsum("...ts,...tv->...sv", s, d_num)
    dg = jnp.sum(d_log_d, axis=-2)
    d_log_w0 = w0 * (jnp.sum(d_num * qc, axis=-1) + d_den * qn)
    d_big_m = d_m - jnp.sum(d_log_d, axis=-1) - d_log_w0
    to_m0 = half_ties(m0[..., None], running)  # M = max(running max, m0)
    dm0 = jnp.sum(d_log_w0, axis=-1) + jnp.sum((to_m0 * d_big_m)[..., :-1], axis=-1)
    dc0 = jnp.einsum("...tv,...td->...vd", w0[..., None] * d_num, q)
    dn0 = jnp.einsum("...t,...td->...d", w0 * d_den, q)
    # the chunk-to-chunk loop, backwards: the state's cotangent and the stabiliser's
    alpha = jnp.exp(m0 - big_m[..., -1])
    beta = jnp.exp(top - big_m[..., -1])
    c_end = beta[..., None, None] * jnp.moveaxis(c_loc, 0, -3)  # the chunks' own terms
    n_end = beta[..., None] * jnp.moveaxis(n_loc, 0, -2)

    def body(carry, x):
        dc, dn, dm = carry  # of the chunk's end state
        c0, n0, c_end, n_end, alpha, to_m0, d_big_m, dc0, dn0, dm0 = x
        d_alpha = jnp.sum(dc * c0, axis=(-2, -1)) + jnp.sum(dn * n0, axis=-1)
        d_end = jnp.sum(dc * c_end, axis=(-2, -1)) + jnp.sum(dn * n_end, axis=-1)
        d_last_m = d_big_m + dm - alpha * d_alpha - d_end  # of M_L
        dm0 = dm0 + alpha * d_alpha + to_m0 * d_last_m
        carry = (dc0 + alpha[..., None, None] * dc, dn0 + alpha[..., None] * dn, dm0)
        return carry, (dc, dn, d_last_m, dm)

    last_col = lambda a: a[..., -1]  # noqa: E731
    xs = (c0, n0, c_end, n_end, alpha, last_col(to_m0), last_col(d_big_m), dc0, dn0, dm0)
    xs = jax.tree.map(_to_chunk_major, xs, (3, 2, 3, 2, 1, 1, 1, 3, 2, 1))
    d_state, (dc_end, dn_end, d_last_m, dm_end) = jax.lax.scan(body, d_last, xs, reverse=True)
    dc_end, dn_end = jnp.moveaxis(dc_end, 0, -3), jnp.moveaxis(dn_end, 0, -2)
    d_last_m, dm_end = jnp.moveaxis(d_last_m, 0, -1), jnp.moveaxis(dm_end, 0, -1)
    # the inputs through the chunk-end states, all chunks at once
    weight = jnp.exp(g - big_m[..., -1:])  # e^{g_j - M_L}
    dck = jnp.einsum("...vd,...td->...tv", dc_end, k)
    dv = dv + weight[..., None] * dck
    dk = dk + weight[..., None] * (
        jnp.einsum("...vd,...tv->...td", dc_end, v) + dn_end[..., None, :]
    )
    dg = dg + weight * (jnp.sum(v * dck, axis=-1) + jnp.einsum("...d,...td->...t", dn_end, k))
    # the running max: M_t's cotangent to its argmax (ties shared equally)
    d_big_m = d_big_m.at[..., -1].set(d_last_m)
    d_running = (1 - to_m0) * d_big_m
    hits = _causal(g) & (g[..., None, :] == running[..., :, None])
    count = jnp.maximum(jnp.sum(hits, axis=-1, dtype=dg.dtype), 1.0)
    dg = dg + jnp.einsum("...t,...tj->...j", d_running / count, hits.astype(dg.dtype))
    d_cum = d_m - dg
    d_cum = d_cum.at[..., -1].add(dm_end)
    d_log_f = jnp.flip(jnp.cumsum(jnp.flip(d_cum, -1), axis=-1), -1)
    return dq, dk, dv, dg, d_log_f, d_state


def _causal(g):
    """``j <= t`` ``[1, ..., 1, L, L]`` for ``g [..., L]``."""
    steps = g.shape[-1]
    return jnp.tril(jnp.ones((steps, steps), bool)).reshape((1,) * (g.ndim - 1) + (steps, steps))


def _to_chunk_major(a, rank):
    return jnp.moveaxis(a, -rank, 0)


_chunks.defvjp(_fwd, _bwd)
