"""The time-major engines of the diagonal linear recurrence, without argument checks.

:func:`linear_scan` runs ``h_t = a_t h_{t-1} + b_t`` over prepared coefficients,
:func:`linear_scan_with_readout` forms them (and the outputs) inside the loop. Both run the local paths of
:mod:`._linear_paths`, or, with the time axis sharded over a mesh axis (``axis_name``, or a
cell traced by ``gatedcells.unroll(..., axis_name=...)``), the sequence-parallel form of
:mod:`._time_shards`.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from .._cell import Array
from . import _linear_paths as paths
from . import _time_shards as shards
from ._vma import like

CHUNK_SIZE = 64  # steps per chunk of the "chunked" path


def linear_scan(
    log_a: Array,
    b: Array,
    h0: Array,
    *,
    valid: Array | None = None,
    reverse: bool = False,
    method: str = "sequential",
    unroll: int | bool = 1,
    grad: str = "auto",
    resets: Array | None = None,
    chunk_size: int = CHUNK_SIZE,
    axis_name: str | None = None,
) -> tuple[Array, Array]:
    """The time-major driver of :func:`linear_recurrence`, without its checks.

    Args:
      log_a, b: ``[T, *B, *F]`` (``log_a`` may broadcast to ``b``). h0: ``[*B, *F]``.
      valid: boolean ``[T, *B]`` or ``None``.
      resets: boolean ``[T, *B]``: ``a_t = 0`` there (the state is zeroed before the step,
        in the direction of the run: see :func:`reset_flags`), or ``None``.
      grad: ``"auto"``: the gradient is the adjoint recurrence, run by the same ``method``;
        ``"autodiff"``: plain autodiff (needed for forward mode).
      axis_name: the mesh axis time is sharded over (:mod:`._time_shards`); ``None``: that
        of a cell traced sharded, if any.

    Returns:
      ``(h_last, hs [T, *B, *F])`` in ``h0``'s dtype (complex when ``log_a`` or ``b`` is);
      outputs at invalid steps are zero.
    """
    axis_name = shards.claim(axis_name)
    dtype = _state_dtype(h0, log_a, b)
    if b.shape[0] == 0:
        return h0.astype(dtype), jnp.zeros(b.shape, dtype)
    wide = _wide(dtype)
    log_a = like(jnp.broadcast_to(log_a.astype(wide), b.shape), b)  # Explicit axes: as b
    b, h0 = b.astype(wide), h0.astype(wide)
    if resets is not None:  # a = 0 before a segment's first step
        log_a = jnp.where(_expand(resets, b), paths.LOG_ZERO, log_a)
    if valid is not None:  # an invalid step leaves the state alone: a = 1, b = 0
        keep = _expand(valid, b)
        log_a = jnp.where(keep, log_a, jnp.zeros_like(log_a))
        b = jnp.where(keep, b, jnp.zeros_like(b))
    if reverse:
        log_a, b = log_a[::-1], b[::-1]
    run = functools.partial(
        paths.recurrence if grad == "auto" else paths.forward, method, unroll, chunk_size
    )
    if axis_name is None:
        hs = run(log_a, b, h0)
        h_last = hs[-1]
    else:
        hs, h_last = shards.recurrence(run, log_a, b, h0, axis_name, reverse)
    if reverse:
        hs = hs[::-1]
    if valid is not None:
        hs = jnp.where(_expand(valid, hs), hs, jnp.zeros_like(hs))
    return h_last.astype(dtype), hs.astype(dtype)


def linear_scan_with_readout(
    coefficients,
    readout,
    params,
    inputs,
    h0: Array,
    *,
    valid: Array | None = None,
    resets: Array | None = None,
    reverse: bool = False,
    method: str = "sequential",
    unroll: int | bool = 1,
    grad: str = "auto",
    chunk_size: int = CHUNK_SIZE,
    axis_name: str | None = None,
) -> tuple[Array, Array]:
    """The linear recurrence with its coefficients and outputs formed inside the loop.

    ``h_t = exp(log_a_t) h_{t-1} + b_t`` with ``(log_a_t, b_t) = coefficients(params, x_t)``
    (each ``[*B, *F]``) and the output ``y_t = readout(params, h_t, x_t)``, ``x_t`` the time
    slices of the pytree ``inputs`` (leaves ``[T, *B, ...]``). For states larger than the
    inputs (the selective SSM's ``[*B, H, N]``): the sequential and chunked paths never hold
    ``[T, *B, *F]`` in the forward pass and hold it once in the backward pass (see
    :func:`._linear_paths.fused`). Both functions must accept extra leading axes. ``grad``
    as in :func:`linear_scan` (it matters to the associative path only), and ``axis_name``
    (time sharded: the sequential and chunked paths then run each block twice, once for
    its summary and once from the state it receives, so the states are still never held).

    Returns:
      ``(h_last [*B, *F], ys [T, *B, ...])`` in ``h0``'s dtype; outputs at invalid steps are
      zero.
    """
    axis_name = shards.claim(axis_name)
    dtype = h0.dtype
    wide = _wide(dtype)
    flags = (valid, resets)

    def masked_coefficients(params, x):
        x, (valid_t, reset_t) = x
        log_a, b = coefficients(params, x)
        log_a, b = log_a.astype(wide), b.astype(wide)
        if reset_t is not None:
            log_a = jnp.where(_expand(reset_t, log_a), paths.LOG_ZERO, log_a)
        if valid_t is not None:
            keep = _expand(valid_t, log_a)
            log_a = jnp.where(keep, log_a, jnp.zeros_like(log_a))
            b = jnp.where(keep, b, jnp.zeros_like(b))
        return log_a, b

    def masked_readout(params, h, x):
        x, (valid_t, _) = x
        y = readout(params, h, x)
        return y if valid_t is None else jnp.where(_expand(valid_t, y), y, jnp.zeros_like(y))

    inputs = (inputs, flags)
    if reverse:
        inputs = jax.tree.map(lambda v: v[::-1], inputs)
    run = functools.partial(
        paths.fused, masked_coefficients, masked_readout, method, unroll, chunk_size, grad, params
    )
    if axis_name is None:
        h, ys = run(inputs, h0.astype(wide))
    else:
        h, ys = shards.fused(
            run, masked_coefficients, method, params, inputs, h0.astype(wide), axis_name, reverse
        )
    if reverse:
        ys = ys[::-1]
    return h.astype(dtype), ys.astype(dtype)


def _expand(mask: Array, like: Array) -> Array:
    """``mask [T, *B]`` (or ``[*B]``) shaped to broadcast against ``like [..., *F]``."""
    return mask.reshape(mask.shape + (1,) * (like.ndim - mask.ndim))


def _state_dtype(h0: Array, log_a: Array, b: Array):
    if jnp.iscomplexobj(log_a) or jnp.iscomplexobj(b):
        return jnp.complex128 if jnp.finfo(h0.dtype).bits == 64 else jnp.complex64
    return h0.dtype


def _wide(dtype):
    """float32 or complex64 at least: the recurrence accumulates in it."""
    if jnp.finfo(dtype).bits >= 32:
        return dtype
    return jnp.complex64 if jnp.issubdtype(dtype, jnp.complexfloating) else jnp.float32
