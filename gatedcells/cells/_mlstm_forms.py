r"""The mLSTM's sequence forms: parallel (quadratic in ``T``) and chunkwise (linear in ``T``).

Both compute, for every step of a block of steps, what the recurrent step
(``gatedcells.cells._mlstm.update``) computes one step at a time, from the
stabilised state ``(C, n, m)`` at the block's start (Beck et al. 2024, appendix: the
parallel stabilised form). With :math:`F_t = \sum_{s \le t} \log f_s` the cumulative log
forget gate of the block and :math:`\tilde\imath_j` the input-gate pre-activation,

.. math::

   \log D_{tj} &= F_t - F_j + \tilde\imath_j \quad (j \le t), \qquad
   \log w_t = F_t + m_0 \quad \text{(the state at the block's start)} \\
   m_t &= \max\bigl(\log w_t, \max_{j \le t} \log D_{tj}\bigr) \\
   \tilde h_t &= \frac{\sum_j e^{\log D_{tj} - m_t} (q_t \cdot k_j)\, v_j
                        + e^{\log w_t - m_t} C_0 q_t}
                       {\max\bigl(\bigl|\sum_j e^{\log D_{tj} - m_t} (q_t \cdot k_j)
                        + e^{\log w_t - m_t} n_0 \cdot q_t\bigr|, e^{-m_t}\bigr) + \epsilon}

:math:`m_t` is the recurrent stabiliser :math:`m_t = \max(\log f_t + m_{t-1},
\tilde\imath_t)` unrolled, so the three forms agree to float rounding, the :math:`\epsilon`
term included. The parallel form applies this to the whole sequence (``T x T`` matrices); the
chunkwise form splits time into chunks of ``L`` steps, runs the state from chunk to chunk
(every chunk's own ``[DV, L] @ [L, DK]`` product at once, then a pointwise loop) and computes
every chunk's outputs at once from its start state (``L x L`` matrices: ``O(T L)`` memory
instead of ``O(T^2)``), with a gradient of its own (``_mlstm_chunkwise``). The recurrent
form's loop has one too (``_mlstm_scan``).

Layout (the forms see one flat batch ``...`` = ``[B, NH]`` or ``[B, NH, NC]``): ``q``, ``k``
``[..., T, DK]`` (``k`` already scaled by :math:`1/\sqrt{DK}`), ``v`` ``[..., T, DV]``,
``log_i`` (the pre-activation :math:`\tilde\imath`) and ``log_f`` (:math:`\log\sigma(\tilde
f)`) ``[..., T]``; states ``C [..., DV, DK]``, ``n [..., DK]``, ``m [...]``. A step outside
a sequence's length has ``log_i = -inf`` and ``log_f = 0``: it leaves the state alone.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from .._cell import Array
from ..sequence import unroll_time_major
from ..sequence._dims import chunk_layout, is_known, padded
from . import _mlstm_chunkwise
from ._blocks import wide
from ._mlstm_scan import State, floor, recurrent

FORMS = ("recurrent", "parallel", "chunkwise")
CHUNK_SIZE = 32  # steps per chunk of the chunkwise form at 32 per head: see chunk_size_for


def chunk_size_for(qk: int) -> int:
    """The chunk size ``chunk_size=None`` means for ``qk`` query/key dims per head: the head
    size rounded up to a power of two, between 16 and 64: ``L x L`` matrices cost
    ``L^2 (2 DK + DV)`` per chunk, the state ``DK DV``, so the balance moves with the head
    size (measured: ``benchmarks/results/mlstm-cpu.md``, "Chunk size by head size").
    """
    return min(max(16, 1 << max(qk - 1, 0).bit_length()), 64)


class Dims(NamedTuple):
    """The sizes of an mLSTM: heads, and query/key and value sizes per head."""

    heads: int
    qk: int
    v: int

    def sizes(self) -> tuple[int, ...]:
        """The blocks ``(q, k, v, i, f, o)`` of the input projection."""
        nh, q, v = self.heads, self.heads * self.qk, self.heads * self.v
        return (q, q, v, nh, nh, v)


def split_inputs(dims: Dims, x_proj: Array):
    """``(q, k, v, log_i, log_f, o_pre)`` of the input projection ``[..., 2Q+2V+2NH]``:
    ``q, k [..., NH, DK]`` (``k`` scaled by ``1/sqrt(DK)``), ``v [..., NH, DV]``, the input
    gate's pre-activation ``ĩ`` and ``log σ(f̃)`` ``[..., NH]``, ``o_pre [..., V]``."""
    bounds = [sum(dims.sizes()[: j + 1]) for j in range(5)]
    q, k, v, i, f, o = jnp.split(x_proj, bounds, axis=-1)
    lead = x_proj.shape[:-1]
    q = q.reshape(*lead, dims.heads, dims.qk)
    k = k.reshape(*lead, dims.heads, dims.qk) / math.sqrt(dims.qk)
    return q, k, v.reshape(*lead, dims.heads, dims.v), i, jax.nn.log_sigmoid(f), o


def outputs(q: Array, k: Array, v: Array, log_i: Array, log_f: Array, state: State, eps: float):
    """:math:`\\tilde h_t` ``[..., T, DV]`` of every step of a block, from its start ``state``."""
    c0, n0, m0 = state
    steps = q.shape[-2]
    cum = jnp.cumsum(log_f, axis=-1)
    log_d = cum[..., :, None] - cum[..., None, :] + log_i[..., None, :]  # [..., T, T]
    causal = jnp.tril(jnp.ones((steps, steps), bool)).reshape((1,) * (q.ndim - 2) + (steps, steps))
    log_d = jnp.where(causal, log_d, -jnp.inf)
    log_w0 = cum + m0[..., None]
    m = jnp.maximum(jnp.max(log_d, axis=-1), log_w0)  # the stabiliser of every step
    w0 = jnp.exp(log_w0 - m)
    s = jnp.einsum("...td,...sd->...ts", q, k) * jnp.exp(log_d - m[..., None])
    num = s @ v + w0[..., None] * jnp.einsum("...vd,...td->...tv", c0, q)
    den = jnp.sum(s, axis=-1) + w0 * jnp.einsum("...d,...td->...t", n0, q)
    return num / (jnp.maximum(jnp.abs(den), floor(m)) + eps)[..., None]


def final_state(k: Array, v: Array, log_i: Array, log_f: Array, state: State) -> State:
    """The stabilised state ``(C, n, m)`` after a block of steps, from its start ``state``."""
    c0, n0, m0 = state
    cum = jnp.cumsum(log_f, axis=-1)
    total = cum[..., -1]
    log_w = total[..., None] - cum + log_i  # [..., T]: weight of step j in the end state
    m = jnp.maximum(jnp.max(log_w, axis=-1), total + m0)
    w = jnp.exp(log_w - m[..., None])
    decay = jnp.exp(total + m0 - m)
    c = decay[..., None, None] * c0 + jnp.einsum("...tv,...td->...vd", w[..., None] * v, k)
    n = decay[..., None] * n0 + jnp.einsum("...t,...td->...d", w, k)
    return c, n, m


def parallel(q, k, v, log_i, log_f, state: State, eps: float) -> tuple[Array, State]:
    """The parallel stabilised form over the whole sequence: ``(h [..., T, DV], state)``."""
    with jax.named_scope("gatedcells.mlstm_parallel"):
        h = outputs(q, k, v, log_i, log_f, state, eps)
        return h, final_state(k, v, log_i, log_f, state)


def chunkwise(
    q, k, v, log_i, log_f, state: State, eps: float, chunk_size: int, grad: str = "auto"
) -> tuple[Array, State]:
    """The chunkwise form with chunks of ``chunk_size`` steps: ``(h [..., T, DV], state)``;
    ``grad="autodiff"``: written for plain autodiff (forward mode too), a loop of
    :func:`final_state` and :func:`outputs`, rather than ``_mlstm_chunkwise``'s own gradient."""
    with jax.named_scope("gatedcells.mlstm_chunkwise"):
        steps = q.shape[-2]
        size, chunks, pad = chunk_layout(steps, chunk_size)
        if padded(pad):  # padded steps leave the state alone: i = 0 (log -inf), f = 1 (log 0)
            q, k, v = (_pad(a, pad, 0.0, axis=-2) for a in (q, k, v))
            log_i, log_f = _pad(log_i, pad, -jnp.inf, axis=-1), _pad(log_f, pad, 0.0, axis=-1)
        q, k, v = (a.reshape(*a.shape[:-2], chunks, size, a.shape[-1]) for a in (q, k, v))
        log_i, log_f = (a.reshape(*a.shape[:-1], chunks, size) for a in (log_i, log_f))
        if grad == "auto":
            h, last = _mlstm_chunkwise.chunks(q, k, v, log_i, log_f, state, eps)  # [.., NC, L, DV]
        else:
            last, starts = jax.lax.scan(
                lambda state, chunk: (final_state(*chunk, state), state),
                state,
                tuple(jnp.moveaxis(a, -3, 0) for a in (k, v))
                + tuple(jnp.moveaxis(a, -2, 0) for a in (log_i, log_f)),
            )
            c, n, m = starts  # [NC, ..., DV, DK], [NC, ..., DK], [NC, ...]
            starts = (jnp.moveaxis(c, 0, -3), jnp.moveaxis(n, 0, -2), jnp.moveaxis(m, 0, -1))
            h = outputs(q, k, v, log_i, log_f, starts, eps)
        h = h.reshape(*h.shape[:-3], chunks * size, h.shape[-1])
        return (h[..., :steps, :] if padded(pad) else h), last


def _pad(a: Array, pad: int, value: float, axis: int) -> Array:
    widths = [(0, 0)] * a.ndim
    widths[axis] = (0, pad)
    return jnp.pad(a, widths, constant_values=value)


# --------------------------------------------------------------------------------------
# Choosing and running a form.


def default_form(steps: int, chunk_size: int = CHUNK_SIZE, backend: str | None = None) -> str:
    """The form ``form=None`` runs: ``"parallel"`` up to ``chunk_size`` steps, else
    ``"chunkwise"`` (``backend``: ``jax.default_backend()`` if ``None``). A symbolic
    ``steps`` (``jax.export``) runs ``"chunkwise"``, right for any length.

    Measured on the CPU (``benchmarks/results/mlstm-cpu.md``): from 256 steps on, the
    chunkwise form was 1.5-3.7x faster than the recurrent one and 5.6-35x than the parallel
    one (whose memory is quadratic in ``T``); below one chunk the parallel form wins. GPU and
    TPU, unmeasured, follow the reference kernels' same rule; the recurrent form is the step's.
    """
    del backend  # one rule on every backend measured so far (the CPU)
    return "parallel" if is_known(steps) and steps <= chunk_size else "chunkwise"


def sequence(
    stepper: Any,
    output: Any,
    spec: Any,
    params: Any,
    carry: Any,
    xs: Array,
    *,
    valid: Array | None,
    reverse: bool,
    unroll: int | bool,
    grad: str,
    remat: bool | int,
) -> tuple[Any, Array]:
    """The mLSTM's sequence driver (a :class:`gatedcells.ScanFn` once ``stepper``, the cell
    without a driver, ``output``, ``(params, o, h) -> y``, and ``spec``, its ``dims``,
    ``eps``, ``form`` and ``chunk_size``, are bound). Every form runs here on the whole
    projected sequence (``[T, *B, ...]``), the recurrent one by ``_mlstm_scan.recurrent``,
    but the recurrent form with ``grad="autodiff"`` or ``remat``, which runs the generic
    driver over the step."""
    steps, dims, eps, chunk_size = xs.shape[0], spec.dims, spec.eps, spec.chunk_size
    chosen = default_form(steps, chunk_size) if spec.form is None else spec.form
    generic = chosen == "recurrent" and (grad != "auto" or remat is not False)
    if generic or steps == 0:
        options = {"unroll": unroll, "grad": grad, "remat": remat}
        return unroll_time_major(
            stepper, params, carry, xs, valid=valid, reverse=reverse, **options
        )
    batch_shape = xs.shape[1:-1]
    flat = math.prod(batch_shape)
    inner = wide(carry.C.dtype)
    x_proj = stepper.project(params, xs)
    x_proj = x_proj.reshape(steps, flat, x_proj.shape[-1]).astype(inner)
    if valid is not None:
        valid = valid.reshape(steps, flat)
    if reverse:  # each sequence read backwards within its length: the padding comes first
        x_proj, valid = x_proj[::-1], None if valid is None else valid[::-1]
    q, k, v, log_i, log_f, o_pre = split_inputs(dims, x_proj)
    if valid is not None:  # a step past the length leaves the memory alone: i = 0, f = 1
        keep = valid[..., None]
        log_i = jnp.where(keep, log_i, -jnp.inf)
        log_f = jnp.where(keep, log_f, jnp.zeros_like(log_f))
    state = state_of(jax.tree.map(lambda a: a.reshape(flat, a.shape[-1]), carry), dims, inner)
    if chosen == "recurrent":  # time-major, with a gradient of its own
        h, state = recurrent(q, k, v, log_i, log_f, state, eps, unroll)
    else:
        q, k, v = (jnp.moveaxis(a, 0, -2) for a in (q, k, v))  # [B, NH, T, D]
        log_i, log_f = jnp.moveaxis(log_i, 0, -1), jnp.moveaxis(log_f, 0, -1)  # [B, NH, T]
        if chosen == "parallel":
            h, state = parallel(q, k, v, log_i, log_f, state, eps)
        else:
            h, state = chunkwise(q, k, v, log_i, log_f, state, eps, chunk_size, grad)
        h = jnp.moveaxis(h, -2, 0)
    h = h.reshape(steps, flat, dims.heads * dims.v)  # [T, B, V]
    ys = output(params, jax.nn.sigmoid(o_pre), h).astype(carry.C.dtype)
    if valid is not None:
        ys = jnp.where(valid[..., None], ys, jnp.zeros_like(ys))
    if reverse:
        ys = ys[::-1]
    carry = jax.tree.map(lambda a: a.reshape(*batch_shape, a.shape[-1]), carry_of(state, carry))
    return carry, ys.reshape(steps, *batch_shape, ys.shape[-1])


def state_of(carry, dims: Dims, dtype) -> State:
    """The carry's ``(C [*B, NH, DV, DK], n [*B, NH, DK], m [*B, NH])`` in ``dtype``."""
    lead = carry.m.shape[:-1]
    c = carry.C.reshape(*lead, dims.heads, dims.v, dims.qk).astype(dtype)
    return c, carry.n.reshape(*lead, dims.heads, dims.qk).astype(dtype), carry.m.astype(dtype)


def carry_of(state: State, like):
    """``state`` flattened into a carry of the type and dtype of ``like`` (the inverse of
    :func:`state_of`)."""
    c, n, m = state
    lead, dtype = m.shape[:-1], like.C.dtype
    flat = lambda a: a.reshape(*lead, math.prod(a.shape[len(lead) :])).astype(dtype)  # noqa: E731
    return like._make((flat(c), flat(n), m.astype(dtype)))
