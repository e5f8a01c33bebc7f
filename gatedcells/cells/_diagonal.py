"""Plumbing of the diagonal (gated linear) recurrences, the LRU, the RG-LRU and the S6: the
optional input projection to ``H`` channels, the float32 compute dtype, the carry of a
complex state. Never equations: each cell's are its own."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from .. import _checks
from .._cell import Array, matmul
from ..sequence import _linear
from . import _blocks


def checked_options(
    input_proj: Any, method: Any, chunk_size: Any, kernel_init: Any, param_dtype: Any, dtype: Any
) -> tuple:
    """The options every diagonal cell has, checked, as they appear last in its spec:
    ``(input_proj, method, chunk_size, kernel_init, param_dtype, dtype)``."""
    _checks.check_factory_args(
        functions={"kernel_init": kernel_init}, dtypes={"param_dtype": param_dtype, "dtype": dtype}
    )
    _checks.check_flag("input_proj", input_proj)
    method = None if method is None else _linear.check_method(method)
    chunk_size = _linear.check_chunk_size(chunk_size)
    return input_proj, method, chunk_size, kernel_init, param_dtype, dtype


def check_channels(name: str, input_size: int, hidden_size: int, input_proj: bool) -> None:
    """A layer of ``H`` channels reads inputs of size ``H`` unless it projects them."""
    if not input_proj and input_size != hidden_size:
        raise ValueError(
            f"{name} reads inputs of size hidden_size={hidden_size} (one per channel), got "
            f"input_size={input_size}: build it with input_proj=True to project them first"
        )


def input_weights(
    init: Callable, key: Array, input_size: int, H: int, input_proj: bool, dtype: Any
) -> dict[str, Array | None]:
    """``{"w_x": [I, H], "b_x": [H]}`` with ``input_proj``, else both ``None``."""
    if not input_proj:
        return {"w_x": None, "b_x": None}
    w_x = _blocks.init_param(init, key, (input_size, H), dtype)
    return {"w_x": w_x, "b_x": jnp.zeros((H,), dtype)}


def input_shapes(input_proj: bool, H: int) -> dict[str, tuple]:
    """The shapes of :func:`input_weights`'s fields (none without ``input_proj``)."""
    return {"w_x": (None, H), "b_x": (H,)} if input_proj else {}


def project_input(params: Any, xs: Array, dtype: Any) -> Array:
    """``xs @ w_x + b_x`` (or ``xs``), ``[..., H]``, in float32 or wider."""
    if params.w_x is None:
        return xs.astype(_blocks.wide(xs.dtype))
    out = matmul(xs, params.w_x, dtype)
    out = out + _blocks.along_last(params.b_x, out)
    return out.astype(_blocks.wide(out.dtype))


def to_complex(carry: Array) -> Array:
    """``[*B, 2N]`` real then imaginary parts -> ``[*B, N]`` complex."""
    re, im = jnp.split(carry, 2, axis=-1)
    return jax.lax.complex(re, im)


def to_real(x: Array) -> Array:
    """``[*B, N]`` complex -> ``[*B, 2N]``, the real then the imaginary parts."""
    return jnp.concatenate([x.real, x.imag], axis=-1)
