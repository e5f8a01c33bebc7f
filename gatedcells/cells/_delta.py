r"""The delta rule: DeltaNet (Yang et al. 2024) and Gated DeltaNet (Yang, Kautz & Hatamizadeh
2025), a matrix memory written by error correction, in its recurrent form.

Per head, with :math:`S \in \mathbb{R}^{d_v \times d_k}` (values by keys, as the papers
write it: ``o = S q``):

.. math::

   S_t = a_t S_{t-1} (I - b_t k_t k_t^\top) + b_t v_t k_t^\top
       = a_t S_{t-1} + b_t (v_t - a_t S_{t-1} k_t) k_t^\top, \qquad o_t = S_t q_t

The chunkwise-parallel form of the same recurrence is in ``_delta_chunkwise``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from .. import _cell, _checks
from .._cell import Array
from . import _blocks


class DeltaParams(NamedTuple):
    r"""Delta-rule weights (``Q = NH*DK`` keys, ``V = NH*DV`` values over the heads).

    Attributes:
      w_x: the fused input projection ``[I, 2Q + V + NH (+ NH) (+ V)]``, blocks
        ``(q, k, v, b, a, g)``: queries, keys, values, the writing strength's
        pre-activation, the decay's (Gated DeltaNet only) and the output gate's
        (``output_gate=True`` only); heads side by side within each block. No bias, as in
        the reference layers.
      conv: the short causal depthwise convolution ``[K, 2Q + V]`` over the ``q, k, v``
        blocks (``conv[-1]`` weighs the current step, ``conv[0]`` the one ``K - 1`` steps
        back; PyTorch's ``Conv1d`` weight ``[2Q+V, 1, K]`` is ``conv.T[:, None]``), or
        ``None`` (``conv_size=None``).
      A_log: ``[NH]``, Gated DeltaNet's decay rate :math:`\log A` (``None`` for DeltaNet).
      dt_bias: ``[NH]``, the bias of Gated DeltaNet's step size (``None`` for DeltaNet).
      norm: ``[DV]``, the per-head RMSNorm's scale (shared by the heads, as in fla).
      w_out: ``[V, H]``, the output projection (``None`` with ``output_proj=False``).
    """

    w_x: Array
    conv: Array | None
    A_log: Array | None
    dt_bias: Array | None
    norm: Array
    w_out: Array | None


class DeltaCarry(NamedTuple):
    """The memory and the convolution's window, leaves ``[*B, ...]`` with one trailing axis.

    Attributes:
      S: ``[*B, NH*DV*DK]``; ``reshape(*B, NH, DV, DK)`` gives each head's
        :math:`S \\in \\mathbb{R}^{d_v \\times d_k}` (``o = S q``). fla's state is the
        transpose, ``[*B, NH, DK, DV]``: ``S.reshape(*B, NH, DV, DK).swapaxes(-1, -2)``.
      conv: ``[*B, (K-1)*(2Q+V)]``; ``reshape(*B, K-1, 2Q+V)`` gives the last ``K - 1``
        projected ``q, k, v`` inputs, oldest first (``None`` without convolution).
    """

    S: Array
    conv: Array | None


class DeltaGates(NamedTuple):
    """One step's gates: the writing strength ``b`` ``[*B, NH]`` (in (0, 1), or (0, 2) with
    negative eigenvalues), the decay ``a`` ``[*B, NH]`` (ones for DeltaNet) and the output
    gate ``g = silu(x W_g)`` ``[*B, V]`` (``None`` without one)."""

    b: Array
    a: Array
    g: Array | None


@dataclasses.dataclass(frozen=True)
class DeltaSpec:
    """The resolved flags of a delta-rule cell (see :func:`delta_net`), and its name."""

    name: str
    hidden_size: int
    heads: int
    dk: int
    dv: int
    gated: bool
    negative_eigenvalues: bool
    conv_size: int | None
    qk_norm: bool
    output_gate: bool
    output_proj: bool
    resets: bool
    form: str
    chunk_size: int
    scale: float
    norm_eps: float
    a_range: tuple[float, float] | None  # Gated DeltaNet only
    dt_range: tuple[float, float] | None
    kernel_init: Callable
    conv_init: Callable
    param_dtype: Any
    dtype: Any

    def sizes(self) -> tuple[int, ...]:
        """The blocks ``(q, k, v, b[, a][, g])`` of ``w_x``."""
        q, v, nh = self.heads * self.dk, self.heads * self.dv, self.heads
        return (q, q, v, nh) + (nh,) * self.gated + (v,) * self.output_gate

    @property
    def channels(self) -> int:
        """``2Q + V``: the ``q, k, v`` blocks, the convolution's channels."""
        return self.heads * (2 * self.dk + self.dv)


# --------------------------------------------------------------------------------------
# init, project, update.


def init(spec: DeltaSpec, key: Array, input_size: int) -> DeltaParams:
    """Fresh params for inputs of size ``I`` (Gated DeltaNet's ``A ~ U(a_range)``, step sizes
    log-uniform in ``dt_range`` floored at ``1e-4`` through ``dt_bias = softplus^-1(dt)``)."""
    kx, kc, ka, kd, ko = jax.random.split(key, 5)
    dtype, nh, rows = spec.param_dtype, spec.heads, input_size - spec.resets
    w_x = _blocks.init_param(spec.kernel_init, kx, (rows, sum(spec.sizes())), dtype)
    conv = None
    if spec.conv_size:
        conv = _blocks.init_param(spec.conv_init, kc, (spec.conv_size, spec.channels), dtype)
    A_log = dt_bias = None
    if spec.gated:
        A_log = jnp.log(jax.random.uniform(ka, (nh,), jnp.float32, *spec.a_range)).astype(dtype)
        lo, hi = (math.log(d) for d in spec.dt_range)
        dt = jnp.maximum(jnp.exp(jax.random.uniform(kd, (nh,), jnp.float32, lo, hi)), 1e-4)
        dt_bias = (dt + jnp.log(-jnp.expm1(-dt))).astype(dtype)
    w_out = None
    if spec.output_proj:
        V = nh * spec.dv
        w_out = _blocks.init_param(spec.kernel_init, ko, (V, spec.hidden_size), dtype)
    return DeltaParams(w_x, conv, A_log, dt_bias, jnp.ones((spec.dv,), dtype), w_out)


def project(spec: DeltaSpec, params: DeltaParams, xs: Array) -> Array:
    """``xs @ w_x`` ``[..., 2Q+V+NH(+NH)(+V)]`` accumulated in float32 (or wider), with the
    reset flag (the input's last channel) appended when ``resets``."""
    flag = xs[..., -1:] if spec.resets else None
    xs = xs[..., :-1] if spec.resets else xs
    compute = params.w_x.dtype if spec.dtype is None else spec.dtype
    accumulate = wide(params.w_x.dtype)
    out = jnp.matmul(
        xs.astype(compute), params.w_x.astype(compute), preferred_element_type=accumulate
    )
    return out if flag is None else jnp.concatenate([out, flag.astype(out.dtype)], axis=-1)


def update(
    spec: DeltaSpec, params: DeltaParams, carry: DeltaCarry, x_proj: Array
) -> tuple[DeltaCarry, Array, DeltaGates]:
    """One step of the delta rule: the recurrent form. See :func:`delta_net`."""
    with jax.named_scope("gatedcells.delta_rule"):
        inner = wide(carry.S.dtype)
        x_proj = x_proj.astype(inner)
        if spec.resets:  # a segment starts here: the carry starts afresh
            start = x_proj[..., -1:] > 0.5
            carry = jax.tree.map(lambda c: jnp.where(start, jnp.zeros_like(c), c), carry)
        raw, window = x_proj[..., : spec.channels], None
        if spec.conv_size:
            lead = raw.shape[:-1]
            past = carry.conv.reshape(*lead, spec.conv_size - 1, spec.channels).astype(inner)
            window = jnp.concatenate([past, raw[..., None, :]], axis=-2)  # [*B, K, 2Q+V]
            raw = jnp.einsum("...kc,kc->...c", window, params.conv.astype(inner))
        q, k, v = features(spec, raw)
        b, log_a = strengths(spec, params, x_proj)
        S = carry.S.reshape(*q.shape[:-1], spec.dv, spec.dk).astype(inner)
        S, o = delta_rule(S, q, k, v, b, jnp.exp(log_a))
        g = jax.nn.silu(x_proj[..., gate_slice(spec)]) if spec.output_gate else None
        y = output(spec, params, o, g).astype(carry.S.dtype)
    S = S.reshape(*S.shape[:-3], -1).astype(carry.S.dtype)
    window = None if window is None else window[..., 1:, :].reshape(*window.shape[:-2], -1)
    window = None if window is None else window.astype(carry.S.dtype)
    gates = DeltaGates(b, jnp.exp(log_a), g)
    return DeltaCarry(S, window), y, jax.tree.map(lambda z: z.astype(carry.S.dtype), gates)


def wide(dtype: Any) -> Any:
    """``dtype``, or float32 when narrower: the dtype the memory is computed in."""
    return dtype if jnp.finfo(dtype).bits >= 32 else jnp.float32


def delta_rule(S: Array, q: Array, k: Array, v: Array, b: Array, a: Array) -> tuple[Array, Array]:
    """One step of the (gated) delta rule on the memories ``S [..., NH, DV, DK]``, from
    ``q, k [..., NH, DK]``, ``v [..., NH, DV]``, ``b, a [..., NH]``: ``(S_t, o_t)``,
    ``o_t = S_t q_t`` ``[..., NH, DV]``."""
    S = a[..., None, None] * S  # the decay
    S = S + b[..., None, None] * outer(v - read(S, k), k)  # the delta rule: S k moves to v
    return S, read(S, q)


def read(S: Array, key: Array) -> Array:
    """``S k`` ``[..., NH, DV]``: what the memory ``S [..., NH, DV, DK]`` stores at ``k``."""
    return jnp.einsum("...vd,...d->...v", S, key)


def outer(v: Array, k: Array) -> Array:
    """``v k^T`` ``[..., NH, DV, DK]``."""
    return v[..., :, None] * k[..., None, :]


def features(spec: DeltaSpec, raw: Array) -> tuple[Array, Array, Array]:
    """``q, k [..., NH, DK]``, ``v [..., NH, DV]`` of the (convolved) ``q, k, v`` blocks
    ``raw [..., 2Q+V]``: SiLU, then ``q`` and ``k`` L2-normalised (``qk_norm``) and ``q``
    scaled by ``scale``."""
    raw = jax.nn.silu(raw)
    Q, lead = spec.heads * spec.dk, raw.shape[:-1]
    q = raw[..., :Q].reshape(*lead, spec.heads, spec.dk)
    k = raw[..., Q : 2 * Q].reshape(*lead, spec.heads, spec.dk)
    v = raw[..., 2 * Q :].reshape(*lead, spec.heads, spec.dv)
    if spec.qk_norm:
        q, k = l2_normalize(q), l2_normalize(k)
    return q * spec.scale, k, v


def l2_normalize(x: Array, eps: float = 1e-6) -> Array:
    """``x / sqrt(|x|^2 + eps)`` on the last axis (fla's ``l2norm``)."""
    return x * jax.lax.rsqrt(jnp.sum(x * x, axis=-1, keepdims=True) + eps)


def strengths(spec: DeltaSpec, params: DeltaParams, x_proj: Array) -> tuple[Array, Array]:
    """The writing strength ``b = sigmoid(x W_b)`` (times 2 with negative eigenvalues) and
    the log decay ``log a = -exp(A_log) softplus(x W_a + dt_bias)`` (0 for DeltaNet), each
    ``[..., NH]``."""
    start, nh = spec.channels, spec.heads
    b = jax.nn.sigmoid(x_proj[..., start : start + nh])
    b = 2.0 * b if spec.negative_eigenvalues else b
    if not spec.gated:
        return b, jnp.zeros_like(b)
    dt = jax.nn.softplus(
        x_proj[..., start + nh : start + 2 * nh] + _blocks.along_last(params.dt_bias, b)
    )
    return b, -jnp.exp(_blocks.along_last(params.A_log, b)) * dt


def gate_slice(spec: DeltaSpec) -> slice:
    """Where the output gate's pre-activation sits in ``x_proj``."""
    start = sum(spec.sizes()[:-1])
    return slice(start, start + spec.heads * spec.dv)


def output(spec: DeltaSpec, params: DeltaParams, o: Array, g: Array | None) -> Array:
    """``y = w_out^T (RMSNorm(o) ⊙ norm ⊙ g)`` ``[..., H]`` from the read-out
    ``o [..., NH, DV]``: the per-head RMSNorm, the output gate ``g [..., V]`` (if any), the
    output projection (if any)."""
    rms = jax.lax.rsqrt(jnp.mean(o * o, axis=-1, keepdims=True) + spec.norm_eps)
    h = o * rms * _blocks.along_last(params.norm, o)
    h = h.reshape(*h.shape[:-2], spec.heads * spec.dv)
    h = h if g is None else h * g
    if params.w_out is None:
        return h
    return _cell.matmul(h, params.w_out, spec.dtype).astype(h.dtype)


def initial_carry(spec: DeltaSpec, batch_shape: tuple[int, ...], dtype: Any = None) -> DeltaCarry:
    """The zero carry: ``S [*B, NH*DV*DK]`` and, with a convolution, ``conv [*B, (K-1)*(2Q+V)]``."""
    dtype = spec.param_dtype if dtype is None else dtype
    S = jnp.zeros((*batch_shape, spec.heads * spec.dv * spec.dk), dtype)
    if not spec.conv_size:
        return DeltaCarry(S, None)
    return DeltaCarry(S, jnp.zeros((*batch_shape, (spec.conv_size - 1) * spec.channels), dtype))


def check_params(spec: DeltaSpec, params: DeltaParams) -> int:
    """``I`` of ``params``; a one-line ``ValueError`` if they are not this cell's."""
    nh, V = spec.heads, spec.heads * spec.dv
    shapes = {"w_x": (None, sum(spec.sizes())), "norm": (spec.dv,)}
    shapes |= {"conv": (spec.conv_size, spec.channels)} if spec.conv_size else {}
    shapes |= {"A_log": (nh,), "dt_bias": (nh,)} if spec.gated else {}
    shapes |= {"w_out": (V, spec.hidden_size)} if spec.output_proj else {}
    size = _checks.check_param_shapes(spec.name, params, shapes)
    _checks.check_absent(
        spec.name, params, tuple(f for f in DeltaParams._fields if f not in shapes)
    )
    return size + spec.resets
