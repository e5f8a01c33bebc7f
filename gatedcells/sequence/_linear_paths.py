"""The paths of the diagonal linear recurrence ``h_t = a_t * h_{t-1} + b_t``, time-major.

Every function here takes ``log_a``, ``b`` ``[T, *S]`` and ``h0`` ``[*S]`` (``*S`` any trailing
shape: ``[*B, H]``, or ``[*B, H, N]`` with a state axis) of one dtype, real or complex, and
returns every state ``hs [T, *S]``. No checks, no masks: :mod:`._linear` prepares the inputs.

- :func:`sequential`: ``jax.lax.scan``, ``T`` dependent steps.
- :func:`associative`: ``jax.lax.associative_scan``, ``O(log T)`` depth: in log space for
  real ``log_a`` (Heinsen 2023, the minimal cells' path: products of many ``a`` are never
  formed), on the pairs ``(a, b)`` for complex ``log_a`` (Martin & Cundy 2018, the LRU's).
- :func:`chunked`: a ``jax.lax.scan`` over chunks of ``chunk_size`` steps carrying the state,
  each chunk solved by an associative scan on ``(a, b)``: ``T / L`` dependent steps of depth
  ``log L`` and ``O(T log L)`` work.

:func:`recurrence` is any of them with its gradient written as the adjoint recurrence, run
backwards by the same path (``g_t = dL/dh_t + a_{t+1} g_{t+1}``), for real and complex
values alike (every operation is holomorphic, so JAX's transposes need no conjugation).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from .._cell import Array
from ._dims import chunk_layout, is_known, padded
from ._vma import like, match_vma, sum_to_vma

# log(0): a finite floor instead of -inf keeps every gradient finite (exp(LOG_ZERO) == 0).
LOG_ZERO = -1e30


def forward(method: str, unroll, chunk_size: int, log_a: Array, b: Array, h0: Array) -> Array:
    """Every ``h_t`` of ``h_t = exp(log_a_t) * h_{t-1} + b_t`` from ``h_{-1} = h0``."""
    with jax.named_scope("gatedcells.linear_recurrence"):
        h0 = match_vma(h0, log_a, b)  # inside shard_map: a scan carry as varying as its inputs
        if method == "sequential":
            return sequential(jnp.exp(log_a), b, h0, unroll)
        if method == "chunked":
            return chunked(jnp.exp(log_a), b, h0, chunk_size)
        if method == "pairs" or jnp.iscomplexobj(log_a):
            return pairs(jnp.exp(log_a), b.at[0].add(jnp.exp(log_a[0]) * h0))
        return log_space(log_a, b, h0)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2))
def recurrence(method: str, unroll, chunk_size: int, log_a: Array, b: Array, h0: Array) -> Array:
    """:func:`forward` whose gradient is its adjoint, another linear recurrence run
    backwards by the same method: ``g_t = dL/dh_t + a_{t+1} g_{t+1}``. Autodiff through the
    associative scan's tree costs twice the compile time and memory."""
    return forward(method, unroll, chunk_size, log_a, b, h0)


def _recurrence_fwd(method, unroll, chunk_size, log_a, b, h0):
    hs = forward(method, unroll, chunk_size, log_a, b, h0)
    return hs, (log_a, hs, h0, b[:0])  # b[:0]: no data, b's type inside shard_map


def _recurrence_bwd(method, unroll, chunk_size, residuals, d_hs):
    log_a, hs, h0, b_type = residuals
    # g_t = d_hs_t + a_{t+1} g_{t+1}: the same recurrence, time reversed, a shifted by one
    log_a_next = jnp.concatenate([log_a[1:], jnp.zeros_like(log_a[:1])], axis=0)
    g = forward(method, unroll, chunk_size, log_a_next[::-1], d_hs[::-1], jnp.zeros_like(h0))
    g = g[::-1]
    h_prev = jnp.concatenate([h0[None], hs[:-1]], axis=0)
    d_log_a = g * jnp.exp(log_a) * h_prev  # dh_t / dlog a_t = a_t h_{t-1}
    d_h0 = jnp.exp(log_a[0]) * g[0]
    return sum_to_vma((d_log_a, g, d_h0), (log_a, b_type, h0))  # replicated: summed


recurrence.defvjp(_recurrence_fwd, _recurrence_bwd)


def sequential(a: Array, b: Array, h0: Array, unroll) -> Array:
    def body(h, inputs):
        a_t, b_t = inputs
        h = a_t * h + b_t
        return h, h

    return jax.lax.scan(body, h0, (a, b), unroll=unroll)[1]


def pairs(a: Array, b: Array) -> Array:
    """The states of ``h_t = a_t h_{t-1} + b_t`` from ``h_{-1} = 0`` by an associative scan on
    the pairs ``(a, b)``: ``(a_1, b_1) . (a_2, b_2) = (a_1 a_2, a_2 b_1 + b_2)``."""

    def compose(earlier, later):
        return earlier[0] * later[0], later[0] * earlier[1] + later[1]

    return associative_scan(compose, (a, b))[1]


def chunked(a: Array, b: Array, h0: Array, chunk_size: int) -> Array:
    """A scan over chunks of ``chunk_size`` steps, each chunk an associative scan (:func:`pairs`);
    the last chunk is padded with ``a = 1, b = 0`` (steps that keep the state)."""
    steps = a.shape[0]
    size, chunks, pad = chunk_layout(steps, chunk_size)
    if padded(pad):
        a = jnp.concatenate([a, like(jnp.ones((pad, *a.shape[1:]), a.dtype), a)])
        b = jnp.concatenate([b, like(jnp.zeros((pad, *b.shape[1:]), b.dtype), b)])

    def body(h, inputs):
        a_c, b_c = inputs
        hs = pairs(a_c, b_c.at[0].add(a_c[0] * h))
        return hs[-1], hs

    chunk = lambda v: v.reshape(chunks, size, *v.shape[1:])
    _, hs = jax.lax.scan(body, h0, (chunk(a), chunk(b)))
    hs = hs.reshape(chunks * size, *hs.shape[2:])
    return hs[:steps] if padded(pad) else hs


ROUNDS = 31  # doubling rounds of associative_scan for a symbolic length: any T < 2**31


def associative_scan(compose, elems):
    """``jax.lax.associative_scan(compose, elems, axis=0)``, for a symbolic length as well.

    ``jax.lax.associative_scan`` splits time by halves and needs its length. For a length
    known only when an exported function is called (``jax.export``), a doubling scan
    (Hillis & Steele 1986) computes the same prefixes: in round ``k`` each step composes
    with the one ``2**k`` steps before it, for ``ceil(log2 T)`` rounds (a loop of
    ``ROUNDS`` whose rounds past ``T`` are skipped): ``O(log T)`` depth as well,
    ``O(T log T)`` work.
    """
    steps = jax.tree.leaves(elems)[0].shape[0]
    if is_known(steps):
        return jax.lax.associative_scan(compose, elems, axis=0)
    t = jnp.arange(steps, dtype=jnp.int32)

    def combine(shift, elems):
        earlier = jax.tree.map(lambda e: jnp.roll(e, shift, axis=0), elems)
        reach = t >= shift  # the first `shift` steps have nothing that far back: kept

        def pick(new, old):
            return jnp.where(reach.reshape((-1,) + (1,) * (old.ndim - 1)), new, old)

        return jax.tree.map(pick, compose(earlier, elems), elems)

    def round_(elems, k):
        shift = jnp.left_shift(jnp.int32(1), k)
        skip = lambda shift, elems: elems  # noqa: E731
        return jax.lax.cond(shift < steps, combine, skip, shift, elems), None

    return jax.lax.scan(round_, elems, jnp.arange(ROUNDS, dtype=jnp.int32))[0]


def log_space(log_a: Array, b: Array, h0: Array) -> Array:
    """The associative scan in log space for real values: the positive and negative parts of
    ``b`` (and ``h0``) are two positive recurrences composed with ``logaddexp``, stacked in
    one array (half the compile time of two scans); ``h = exp(P) - exp(N)``."""
    dtype = h0.dtype
    wide = dtype if jnp.finfo(dtype).bits >= 32 else jnp.float32
    log_a, b, h0 = log_a.astype(wide), b.astype(wide), h0.astype(wide)
    # h_0 enters through the first step: b_1 <- a_1 * h_0 + b_1
    b = b.at[0].add(jnp.exp(log_a[0]) * h0)
    log_b = jnp.stack([_log_or_floor(b), _log_or_floor(-b)], axis=1)  # [T, 2, *S]
    _, log_h = associative_scan(_compose_logs, (log_a, log_b))
    return (jnp.exp(log_h[:, 0]) - jnp.exp(log_h[:, 1])).astype(dtype)


def _compose_logs(earlier, later):
    """``(log a, [log b+, log b-])`` of two consecutive segments composed into one."""
    la1, lb1 = earlier
    la2, lb2 = later
    return la1 + la2, _logaddexp(lb1 + la2[:, None], lb2)


def _log_or_floor(v: Array) -> Array:
    """``log(v)`` where ``v > 0``, ``LOG_ZERO`` elsewhere (with zero gradient there)."""
    pos = v > 0
    return jnp.where(pos, jnp.log(jnp.where(pos, v, jnp.ones_like(v))), LOG_ZERO)


def _logaddexp(x: Array, y: Array) -> Array:
    """``log(exp(x) + exp(y))`` for finite ``x``, ``y``: one ``exp`` and one ``log1p``."""
    return jnp.maximum(x, y) + jnp.log1p(jnp.exp(-jnp.abs(x - y)))


# --------------------------------------------------------------------------------------
# The fused form: coefficients and outputs computed per step, the states kept at most once.


def fused(coefficients, readout, method, unroll, chunk_size, grad, params, inputs, h0):
    """``(h_last, ys)`` of ``h_t = exp(log_a_t) h_{t-1} + b_t``, ``(log_a_t, b_t) =
    coefficients(params, x_t)``, ``y_t = readout(params, h_t, x_t)``, ``x_t`` the time slices
    of the pytree ``inputs`` (both functions work on any leading axes).

    ``"sequential"`` and ``"chunked"`` never hold ``log_a``, ``b`` or ``h`` for more than one
    step (one chunk) in the forward pass: their loop bodies are checkpointed, so the backward
    pass keeps the state at each step (each chunk's start) and recomputes the rest, holding
    the states ``[T, *S]`` once (``[T / L, *S]`` and one chunk's for ``"chunked"``).
    ``"associative"`` forms every coefficient and runs :func:`recurrence`.
    """
    if method == "associative":
        log_a, b = coefficients(params, inputs)
        run = recurrence if grad == "auto" else forward
        hs = run(method, unroll, chunk_size, log_a, b, h0)
        return hs[-1], readout(params, hs, inputs)
    if method == "sequential":

        def step(params, h, x_t):
            log_a, b = coefficients(params, x_t)
            h = jnp.exp(log_a) * h + b
            return h, readout(params, h, x_t)

        step = jax.checkpoint(step, prevent_cse=False)  # inside a scan, CSE cannot defeat it
        return jax.lax.scan(lambda h, x_t: step(params, h, x_t), h0, inputs, unroll=unroll)

    steps = jax.tree.leaves(inputs)[0].shape[0]
    size, chunks, pad = chunk_layout(steps, chunk_size)
    keep = jnp.arange(chunks * size) < steps  # padded steps keep the state: a = 1, b = 0

    def in_chunks(v):
        if padded(pad):
            v = jnp.concatenate([v, like(jnp.zeros((pad, *v.shape[1:]), v.dtype), v)])
        return v.reshape(chunks, size, *v.shape[1:])

    def block(params, h, chunk):
        x_c, keep_c = chunk
        log_a, b = coefficients(params, x_c)
        k = keep_c.reshape(keep_c.shape + (1,) * (log_a.ndim - 1))
        log_a = jnp.where(k, log_a, jnp.zeros_like(log_a))
        b = jnp.where(k, b, jnp.zeros_like(b))
        hs = recurrence("pairs", 1, size, log_a, b, h)  # its adjoint: a few [L, *S] at most
        return hs[-1], readout(params, hs, x_c)

    block = jax.checkpoint(block, prevent_cse=False)
    chunk_inputs = (jax.tree.map(in_chunks, inputs), keep.reshape(chunks, size))
    h, ys = jax.lax.scan(lambda h, c: block(params, h, c), h0, chunk_inputs)
    ys = jax.tree.map(lambda y: y.reshape(chunks * size, *y.shape[2:])[:steps], ys)
    return h, ys
