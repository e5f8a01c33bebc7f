"""Plumbing shared by the cell families: projections, gate blocks, initialisation, layer
normalisation. Never equations: each cell's step is written in its own module."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from .._cell import Array, Params, matmul


def project_affine(params: Params, xs: Array, dtype: Any = None) -> Array:
    """``xs @ w_x + b``: the input projection of every fused-gate cell, ``[..., G*H]``."""
    out = matmul(xs, params.w_x, dtype)
    return out + along_last(params.b, out)


def along_last(v: Array, like: Array) -> Array:
    """The vector ``v [N]`` shaped to broadcast against ``like [..., N]`` in its dtype."""
    return v.astype(like.dtype).reshape((1,) * (like.ndim - 1) + v.shape)


def split(z: Array, names: tuple[str, ...]) -> dict[str, Array]:
    """Split ``z [..., G*H]`` on its last axis into ``G`` named blocks of size ``H``."""
    return dict(zip(names, jnp.split(z, len(names), axis=-1), strict=True))


def init_blocks(init: Callable, key: Array, rows: int, hidden_size: int, n: int, dtype) -> Array:
    """``n`` independently initialised ``[rows, H]`` blocks concatenated to ``[rows, n*H]``.

    Per-block initialisation keeps e.g. an orthogonal recurrent kernel orthogonal within each
    gate, as separate per-gate matrices would be.
    """
    keys = jax.random.split(key, n)
    blocks = [init_param(init, k, (rows, hidden_size), dtype) for k in keys]
    return jnp.concatenate(blocks, axis=-1)


def init_param(init: Callable, key: Array, shape: tuple[int, ...], dtype) -> Array:
    """``init(key, shape)`` computed in at least float32, then cast to ``dtype``.

    Some initializers (orthogonal needs a QR decomposition) have no bfloat16 kernel on CPU.
    """
    wide = jnp.float32 if jnp.finfo(dtype).bits < 32 else dtype
    return init(key, shape, wide).astype(dtype)


def gate_biases(
    init: Callable, key: Array, hidden_size: int, names: tuple[str, ...], offsets, dtype
) -> Array:
    """The fused bias ``[G*H]`` with per-gate constant ``offsets`` added to ``init``."""
    b = init_param(init, key, (len(names) * hidden_size,), dtype)
    for k, name in enumerate(names):
        off = offsets.get(name, 0.0)
        if off:
            b = b.at[k * hidden_size : (k + 1) * hidden_size].add(jnp.asarray(off, dtype))
    return b


def set_block(b: Array, k: int, hidden_size: int, value: Array) -> Array:
    """``b [G*H]`` with its ``k``-th block of size ``H`` replaced by ``value``."""
    return b.at[k * hidden_size : (k + 1) * hidden_size].set(value.astype(b.dtype))


def zeros_carry(hidden_size: int, param_dtype):
    """A ``carry_fn`` for cells whose carry is the array ``h``."""

    def carry_fn(batch_shape: tuple[int, ...], dtype=None) -> Array:
        dtype = param_dtype if dtype is None else dtype
        return jnp.zeros((*tuple(batch_shape), hidden_size), dtype)

    return carry_fn


def layer_norm(z: Array, scale: Array, bias: Array | None, eps: float) -> Array:
    r"""Layer normalisation of ``z [..., N]`` over its last axis (Ba et al. 2016).

    .. math:: \mathrm{LN}(z) = \gamma \odot (z - \mu) / \sqrt{\sigma^2 + \epsilon} + \beta

    ``scale`` (:math:`\gamma`) and ``bias`` (:math:`\beta`, or ``None``) are ``[N]``.
    """
    mean = jnp.mean(z, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(z - mean), axis=-1, keepdims=True)
    out = (z - mean) * jax.lax.rsqrt(var + jnp.asarray(eps, z.dtype))
    out = out * along_last(scale, out)
    if bias is not None:
        out = out + along_last(bias, out)
    return out


def chrono_bias(key: Array, size: int, t_max: float, dtype: Any) -> Array:
    r"""Chrono initialisation (Tallec & Ollivier 2018): :math:`\log \mathcal{U}(1, T_{max}-1)`.

    A gate bias drawn so that the characteristic forgetting times
    :math:`1/(1-\sigma(b))` of the units spread up to ``t_max``, the longest dependency
    expected.
    """
    u = jax.random.uniform(key, (size,), jnp.float32, 1.0, t_max - 1.0)
    return jnp.log(u).astype(dtype)
