r"""The delta rule's chunkwise-parallel form (the WY / UT-transform form of Yang et al. 2024
and of Gated DeltaNet), and the family's sequence driver.

Write :math:`u_t = b_t (v_t - a_t S_{t-1} k_t)`, the correction the step writes, so that
:math:`S_t = a_t S_{t-1} + u_t k_t^\top`. Within a chunk of ``L`` steps that starts from
:math:`S_0`, with the cumulative decay :math:`\gamma_t = \prod_{s \le t} a_s` and
:math:`\Gamma_{tj} = \gamma_t / \gamma_j` (:math:`j \le t`),

.. math::

   S_t = \gamma_t S_0 + \sum_{j \le t} \Gamma_{tj}\, u_j k_j^\top, \qquad
   u_t + b_t \sum_{j < t} \Gamma_{tj} (k_t \cdot k_j)\, u_j = b_t v_t - b_t \gamma_t S_0 k_t

The second line is a unit lower-triangular system :math:`(I + A) U = \mathrm{diag}(b) V -
\mathrm{diag}(b \gamma) K S_0^\top` with :math:`A_{tj} = b_t \Gamma_{tj} k_t \cdot k_j`
(:math:`j < t`): solved once per chunk, in parallel (:func:`unit_lower_inverse`), as :math:`\tilde U = (I + A)^{-1}
\mathrm{diag}(b) V` and :math:`W = (I + A)^{-1} \mathrm{diag}(b\gamma) K` (the UT transform;
the WY representation of the product of the chunk's Householder-like factors), so that
:math:`U = \tilde U - W S_0^\top`. A ``lax.scan`` then runs the state from chunk to chunk,

.. math::

   U = \tilde U - W S_0^\top, \qquad
   O = \mathrm{diag}(\gamma) Q S_0^\top + (Q K^\top \odot \Gamma) U, \qquad
   S_L = \gamma_L S_0 + U^\top \mathrm{diag}(\Gamma_{L\cdot}) K

(four ``[L, D]``-by-``[D, D]`` or ``[L, L]`` products per chunk and head). Resets inside a
chunk zero :math:`\Gamma_{tj}` across a segment start and :math:`\gamma_t` after one. Layout:
``[..., T, D]`` with ``...`` = ``[B, NH]``; states ``[..., DV, DK]``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from .._cell import Array
from ..sequence import unroll_time_major
from ..sequence._dims import chunk_layout, padded
from ..sequence._linear import reset_flags
from . import _delta

FORMS = ("recurrent", "chunkwise")
CHUNK_SIZE = 16  # steps per chunk, measured on the CPU (benchmarks/delta.py); fla uses 64 on GPUs


def chunk_terms(q, k, v, b, log_a, seg):
    """Every chunk's parallel terms: ``(P, gamma, decay_end, W, U_tilde)``.

    ``q, k [..., L, DK]``, ``v [..., L, DV]``, ``b, log_a [..., L]``, ``seg [..., L]`` (the
    number of segment starts so far in the chunk). ``P = Q K^T ⊙ Γ`` ``[..., L, L]``,
    ``gamma`` the decay from the chunk's start ``[..., L]``, ``decay_end = Γ[L-1, :]``.
    """
    size, lead = q.shape[-2], (1,) * (q.ndim - 2)
    lower = jnp.tril(jnp.ones((size, size), bool)).reshape(*lead, size, size)
    cum = jnp.cumsum(log_a, axis=-1)
    keep = lower & (seg[..., :, None] == seg[..., None, :])
    diff = jnp.where(keep, cum[..., :, None] - cum[..., None, :], 0.0)
    Gamma = jnp.where(keep, jnp.exp(diff), 0.0)  # [..., L, L]: decay from step j to step t
    gamma = jnp.where(seg == 0, jnp.exp(cum), 0.0)  # decay from the chunk's start
    eye = jnp.eye(size, dtype=b.dtype).reshape(*lead, size, size)
    A = jnp.where(eye > 0, 0.0, b[..., :, None] * Gamma * (k @ jnp.swapaxes(k, -1, -2)))
    rhs = jnp.concatenate([(b * gamma)[..., None] * k, b[..., None] * v], axis=-1)
    solved = unit_lower_inverse(eye + A) @ rhs  # the UT transform
    W, U_tilde = solved[..., : k.shape[-1]], solved[..., k.shape[-1] :]
    P = (q @ jnp.swapaxes(k, -1, -2)) * Gamma
    return P, gamma, Gamma[..., -1, :], W, U_tilde


def unit_lower_inverse(M: Array) -> Array:
    """The inverse of unit lower-triangular matrices ``M [..., L, L]``, by blocks: both
    diagonal halves at once (one batch), then :math:`X_{21} = -X_{22} M_{21} X_{11}`;
    ``L^3/3`` multiply-adds in ``log2 L`` rounds of matmuls (a triangular solve is a loop
    of ``L`` steps, 5-15x slower forward and backward on the CPU, as measured)."""
    n = M.shape[-1]
    if n == 1:
        return jnp.ones_like(M)
    if n & (n - 1):  # pad to a power of two with the identity: diag(M, I)^-1 = diag(M^-1, I)
        size = 1 << n.bit_length()
        eye = jnp.eye(size, dtype=M.dtype).reshape((1,) * (M.ndim - 2) + (size, size))
        widths = [(0, 0)] * (M.ndim - 2) + [(0, size - n)] * 2
        return unit_lower_inverse(jnp.pad(M, widths) + eye.at[..., :n, :n].set(0.0))[..., :n, :n]
    h = n // 2
    halves = unit_lower_inverse(jnp.stack([M[..., :h, :h], M[..., h:, h:]], axis=-3))
    X11, X22 = halves[..., 0, :, :], halves[..., 1, :, :]
    X21 = -X22 @ M[..., h:, :h] @ X11
    top = jnp.concatenate([X11, jnp.zeros_like(X11)], axis=-1)
    return jnp.concatenate([top, jnp.concatenate([X21, X22], axis=-1)], axis=-2)


def chunk_step(S0, terms):
    """One chunk from its start state ``S0 [..., DV, DK]``: ``(S_L, O [..., L, DV])``."""
    q, k, P, gamma, decay_end, W, U_tilde = terms
    U = U_tilde - jnp.einsum("...ld,...vd->...lv", W, S0)
    O = gamma[..., None] * jnp.einsum("...ld,...vd->...lv", q, S0) + P @ U
    S = jnp.einsum("...lv,...ld->...vd", decay_end[..., None] * U, k)
    return S + gamma[..., -1, None, None] * S0, O


def chunkwise(q, k, v, b, log_a, starts, state, chunk_size: int):
    """The delta rule over ``T`` steps in chunks of ``chunk_size``: ``(o [..., T, DV], S)``.

    ``q, k [..., T, DK]``, ``v [..., T, DV]``, ``b, log_a [..., T]``, ``starts [..., T]``
    (bool: the state is zeroed before the step) or ``None``, ``state [..., DV, DK]``.
    """
    with jax.named_scope("gatedcells.delta_rule_chunkwise"):
        steps = q.shape[-2]
        size, chunks, pad = chunk_layout(steps, chunk_size)
        starts = jnp.zeros(b.shape, bool) if starts is None else starts
        if padded(pad):  # padded steps leave the state alone: b = 0, a = 1
            q, k, v = (_pad(x, pad, axis=-2) for x in (q, k, v))
            b, log_a, starts = (_pad(x, pad, axis=-1) for x in (b, log_a, starts))
        q, k, v = (x.reshape(*x.shape[:-2], chunks, size, x.shape[-1]) for x in (q, k, v))
        b, log_a, starts = (x.reshape(*x.shape[:-1], chunks, size) for x in (b, log_a, starts))
        seg = jnp.cumsum(starts.astype(jnp.int32), axis=-1)
        terms = (q, k) + chunk_terms(q, k, v, b, log_a, seg)
        terms = tuple(jnp.moveaxis(x, q.ndim - 3, 0) for x in terms)  # chunks first
        state, o = jax.lax.scan(chunk_step, state, terms)
        o = jnp.moveaxis(o, 0, -3)
        o = o.reshape(*o.shape[:-3], chunks * size, o.shape[-1])
        return (o[..., :steps, :] if padded(pad) else o), state


def _pad(x: Array, pad, axis: int) -> Array:
    widths = [(0, 0)] * x.ndim
    widths[axis] = (0, pad)
    return jnp.pad(x, widths)


def convolve(spec, params, window: Array, raw: Array, lengths: Array, seg: Array | None):
    """The short causal convolution over a whole sequence: ``(out [N, T, C], window)``.

    ``window [N, K-1, C]`` holds the inputs before the first step, ``raw [N, T, C]`` the
    projected ``q, k, v``; ``lengths [N]``; ``seg [N, T]`` counts the segment starts so far
    (a tap reaching back across a start reads zero, as the recurrent step's reset window).
    The new window is the last ``K - 1`` inputs before each sequence's end.
    """
    K, steps = spec.conv_size, raw.shape[1]
    full = jnp.concatenate([window.astype(raw.dtype), raw], axis=1)  # [N, K-1+T, C]
    w = params.conv.astype(raw.dtype)
    if seg is not None:
        seg_full = jnp.pad(seg, ((0, 0), (K - 1, 0)))  # a pad keeps seg's sharding
    out = jnp.zeros_like(raw)
    for j in range(K):  # tap j reads step t - (K-1) + j
        tap = full[:, j : j + steps] * w[j][None, None]
        if seg is not None:
            tap = jnp.where((seg_full[:, j : j + steps] == seg)[..., None], tap, 0.0)
        out = out + tap
    idx = lengths[:, None] + jnp.arange(K - 1)[None, :]  # the last K-1 inputs, in `full`
    new = jnp.take_along_axis(full, idx[..., None], axis=1)
    if seg is not None:
        last = jnp.take_along_axis(seg_full, idx[:, -1:], axis=1)
        new = jnp.where((jnp.take_along_axis(seg_full, idx, axis=1) == last)[..., None], new, 0.0)
    return out, new


def sequence(spec, stepper, params, carry, xs, *, valid, reverse, unroll, grad, remat):
    """The delta rule's sequence driver, a :class:`gatedcells.ScanFn` once ``spec`` and
    ``stepper`` (the cell without a driver) are bound: the recurrent form runs the generic
    driver over the step, the chunkwise form runs here on the projected sequence."""
    steps = xs.shape[0]
    if spec.resets:  # where the state is zeroed before a step, in the order steps are read
        starts = reset_flags(xs[..., -1] > 0.5, valid, reverse)
        xs = jnp.concatenate([xs[..., :-1], starts[..., None].astype(xs.dtype)], axis=-1)
    if spec.form == "recurrent" or steps == 0:
        options = {"unroll": unroll, "grad": grad, "remat": remat}
        return unroll_time_major(
            stepper, params, carry, xs, valid=valid, reverse=reverse, **options
        )
    batch_shape = xs.shape[1:-1]
    n = math.prod(batch_shape)
    inner = _delta.wide(carry.S.dtype)
    x_proj = stepper.project(params, xs).reshape(steps, n, -1).astype(inner)
    valid = jnp.ones((steps, n), bool) if valid is None else valid.reshape(steps, n)
    lengths = jnp.sum(valid, axis=0)
    order = None
    if reverse:  # read each sequence backwards within its length: a gather, its own inverse
        t, length = jnp.arange(steps)[:, None], lengths[None, :]
        order = jnp.where(t < length, length - 1 - t, t)
        x_proj = jnp.take_along_axis(x_proj, order[..., None], axis=0)
    x_proj = jnp.swapaxes(x_proj, 0, 1)  # [N, T, P]
    valid = jnp.swapaxes(valid, 0, 1)
    starts = (x_proj[..., -1] > 0.5) & valid if spec.resets else None
    seg = None if starts is None else jnp.cumsum(starts.astype(jnp.int32), axis=1)
    raw, window = x_proj[..., : spec.channels], None
    if spec.conv_size:
        past = carry.conv.reshape(n, spec.conv_size - 1, spec.channels)
        raw, window = convolve(spec, params, past, raw, lengths, seg)
        window = window.reshape(*batch_shape, -1).astype(carry.conv.dtype)
    q, k, v = (jnp.moveaxis(x, 1, 2) for x in _delta.features(spec, raw))  # [N, NH, T, D]
    b, log_a = (jnp.where(valid[..., None], x, 0.0) for x in _delta.strengths(spec, params, x_proj))
    b, log_a = jnp.moveaxis(b, 1, 2), jnp.moveaxis(log_a, 1, 2)  # [N, NH, T]
    S = carry.S.reshape(n, spec.heads, spec.dv, spec.dk).astype(inner)
    starts = None if starts is None else jnp.broadcast_to(starts[:, None], b.shape)
    o, S = chunkwise(q, k, v, b, log_a, starts, S, spec.chunk_size)
    g = jax.nn.silu(x_proj[..., _delta.gate_slice(spec)]) if spec.output_gate else None
    ys = _delta.output(spec, params, jnp.moveaxis(o, 1, 2), g).astype(carry.S.dtype)
    ys = jnp.swapaxes(jnp.where(valid[..., None], ys, jnp.zeros_like(ys)), 0, 1)  # [T, N, O]
    if order is not None:
        ys = jnp.take_along_axis(ys, order[..., None], axis=0)
    S = S.reshape(*batch_shape, -1).astype(carry.S.dtype)
    return _delta.DeltaCarry(S, window), ys.reshape(steps, *batch_shape, ys.shape[-1])
