"""Plumbing shared by the dense cell families: projections, gate blocks, initialisation, layer
normalisation, names. Never equations: each cell's step is written in its own module."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp

from .. import _checks
from .._cell import Array, Params, matmul, recurrent_matmul


def project(spec: Any, params: Params, xs: Array) -> Array:
    """``xs @ w_x + b`` computed in ``spec.dtype``: the input projection of every fused-gate
    cell, ``[..., G*H]``."""
    out = matmul(xs, params.w_x, spec.dtype)
    return out + along_last(params.b, out)


def normalized_projection(params: Params, xs: Array, eps: float, dtype: Any = None) -> Array:
    """``LN(xs @ w_x) * ln_x + b`` (Ba et al. 2016): the input projection of a layer-normalised
    cell, normalised over its ``G*H`` entries, ``[..., G*H]`` in the bias's dtype."""
    out = matmul(xs, params.w_x, dtype).astype(params.b.dtype)
    out = layer_norm(out, params.ln_x, None, eps)
    return out + along_last(params.b, out)


def matmul_like(v: Array, w: Array, dtype: Any = None) -> Array:
    """``v @ w`` computed in ``dtype`` (default: ``w``'s), returned in ``v``'s dtype: a
    recurrent matmul inside a step, whose carry keeps its own dtype. A block-diagonal ``w
    [NH, H/NH, G*H/NH]`` gives gate-major columns (:func:`~gatedcells._cell.recurrent_matmul`)."""
    return recurrent_matmul(v, w, dtype).astype(v.dtype)


def along_last(v: Array, like: Array) -> Array:
    """The vector ``v [N]`` shaped to broadcast against ``like [..., N]`` in its dtype."""
    return v.astype(like.dtype).reshape((1,) * (like.ndim - 1) + v.shape)


def split(z: Array, names: tuple[str, ...]) -> dict[str, Array]:
    """Split ``z [..., G*H]`` on its last axis into ``G`` named blocks of size ``H``."""
    return dict(zip(names, jnp.split(z, len(names), axis=-1), strict=True))


def init_blocks(
    init: Callable, key: Array, rows: int, hidden_size: int, n: int, dtype, kernel_size=()
) -> Array:
    """``n`` independently initialised ``[*K, rows, H]`` blocks concatenated to
    ``[*K, rows, n*H]`` (``K = kernel_size``: a convolution's kernel; none for a matmul).

    Per-block initialisation keeps e.g. an orthogonal recurrent kernel orthogonal within each
    gate, as separate per-gate matrices would be.
    """
    keys = jax.random.split(key, n)
    blocks = [init_param(init, k, (*kernel_size, rows, hidden_size), dtype) for k in keys]
    return jnp.concatenate(blocks, axis=-1)


def init_heads(
    init: Callable, key: Array, hidden_size: int, num_heads: int, n: int, dtype
) -> Array:
    """A block-diagonal ``w_h [NH, H/NH, n*H/NH]``: per head, :func:`init_blocks` of ``n``
    gate blocks ``[H/NH, H/NH]``, head ``k`` from ``jax.random.split(key, NH)[k]``."""
    D = hidden_size // num_heads
    return jnp.stack(
        [init_blocks(init, k, D, D, n, dtype) for k in jax.random.split(key, num_heads)]
    )


def init_recurrent(
    init: Callable, key: Array, rows: int, hidden_size: int, num_heads: int, n: int, dtype
):
    """``w_h``: dense ``[rows, n*H]`` (:func:`init_blocks`) for one head, else
    :func:`init_heads` (``rows = H``)."""
    if num_heads == 1:
        return init_blocks(init, key, rows, hidden_size, n, dtype)
    return init_heads(init, key, hidden_size, num_heads, n, dtype)


def recurrent_shape(hidden_size: int, num_heads: int, n: int) -> tuple[int, ...]:
    """The shape of :func:`init_recurrent`'s ``w_h``: ``(H, n*H)``, or ``(NH, H/NH, n*H/NH)``."""
    H, NH = hidden_size, num_heads
    return (H, n * H) if NH == 1 else (NH, H // NH, n * H // NH)


def init_param(init: Callable, key: Array, shape: tuple[int, ...], dtype) -> Array:
    """``init(key, shape)`` computed in at least float32, then cast to ``dtype`` (some
    initializers, orthogonal's QR decomposition, have no bfloat16 kernel on CPU)."""
    return init(key, shape, wide(dtype)).astype(dtype)


def wide(dtype: Any) -> Any:
    """float32 (or wider): the dtype of an initializer's draw, and of the gated linear
    cells' recurrences."""
    return dtype if jnp.finfo(dtype).bits >= 32 else jnp.float32


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


def checked_inits(kernel_init, recurrent_init, bias_init, param_dtype, dtype) -> tuple:
    """The initializers and dtypes of a dense gated cell, checked, as they appear last in its
    spec: ``(kernel_init, recurrent_init, bias_init, param_dtype, dtype)``."""
    inits = {"kernel_init": kernel_init, "recurrent_init": recurrent_init, "bias_init": bias_init}
    dtypes = {"param_dtype": param_dtype, "dtype": dtype}
    _checks.check_factory_args(functions=inits, dtypes=dtypes)
    return (*inits.values(), *dtypes.values())


def describe(factory: str, hidden_size: int, flags: dict[str, Any]) -> str:
    """A cell's name, ``factory(H, key=value, ...)``, functions by their name."""
    parts = [str(hidden_size)]
    for key, value in flags.items():
        if callable(value):
            value = getattr(value, "__name__", "?")
        else:
            value = repr(dict(value) if isinstance(value, Mapping) else value)
        parts.append(f"{key}={value}")
    return f"{factory}({', '.join(parts)})"


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
    r"""Chrono initialisation (Tallec & Ollivier 2018): :math:`\log \mathcal{U}(1, T_{max}-1)`,
    a gate bias whose forgetting times :math:`1/(1-\sigma(b))` spread up to ``t_max``."""
    u = jax.random.uniform(key, (size,), jnp.float32, 1.0, t_max - 1.0)
    return jnp.log(u).astype(dtype)
