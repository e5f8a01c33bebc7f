"""The convolution of the convolutional cells and the plumbing their factories share (kernel
size, strides and padding checked and resolved, the cell built). No
equations: those are in ``_conv``, and the padding rules are explained there."""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any, NamedTuple

import jax.numpy as jnp
import numpy as np

from .. import _checks
from .._cell import Array, matmul
from . import _blocks


class Conv(NamedTuple):
    """A shape-preserving convolution ``[..., *S, N] -> [..., *S, M]`` over the trailing
    ``1 + len(K)`` axes, any leading axes, as a matmul of patches (im2col).

    ``x * w = patches(x) @ w.reshape(-1, M)``, whose gradients are matmuls, slices and pads.
    On XLA:CPU (``benchmarks/results/conv-cpu.md``) forward+backward is 41x faster this way
    than with ``jax.lax.conv_general_dilated`` (as Flax's ``ConvLSTMCell``), whose gradients
    inside a loop are slow, and 1.7x faster than summing shifted matmuls. Unmeasured on GPU and TPU.

    Attributes:
      kernel_size: ``K``. padding: ``((low, high), ...)`` with ``low + high = K - 1``.
      dtype: compute dtype of the matmul (``None``: the kernel's dtype).
    """

    kernel_size: tuple[int, ...]
    padding: tuple[tuple[int, int], ...]
    dtype: Any = None

    def patches(self, x: Array) -> Array:
        """``x [..., *S, N] -> [..., *S, prod(K)*N]``: the window of each position, row-major
        over the kernel's offsets, so that ``patches(x) @ w.reshape(-1, M)`` is ``x * w``."""
        rank = len(self.kernel_size)
        if x.ndim < rank + 1:
            raise ValueError(
                f"a {rank}-D convolutional cell needs inputs [..., *S, I] with {rank} spatial "
                f"axes (the kernel's rank), got shape {tuple(x.shape)}"
            )
        if all(k == 1 for k in self.kernel_size):
            return x
        lead = x.ndim - rank - 1
        spatial = x.shape[lead:-1]
        padded = jnp.pad(x, [(0, 0)] * lead + list(self.padding) + [(0, 0)])
        views = []
        for offsets in itertools.product(*(range(k) for k in self.kernel_size)):
            window = tuple(slice(o, o + n) for o, n in zip(offsets, spatial, strict=True))
            views.append(padded[(Ellipsis, *window, slice(None))])
        return jnp.concatenate(views, axis=-1)

    def __call__(self, x: Array, w: Array) -> Array:
        """``x * w``, cross-correlation as in Flax, PyTorch and Shi et al.; ``w [*K, N, M]``."""
        return matmul(self.patches(x), w.reshape(-1, w.shape[-1]), self.dtype)


def factory_args(
    factory: str, hidden_size: Any, kernel_size: Any, strides: Any, padding: Any, dtype: Any
) -> tuple[int, tuple[int, ...], Conv, str]:
    """Check the arguments both factories share; return ``(H, K, conv, name)``."""
    H = _checks.check_positive_int("hidden_size", hidden_size)
    K = check_kernel_size(kernel_size)
    check_strides(strides, len(K))
    pads = resolve_padding(padding, K)
    _checks.check_float_dtype("dtype", dtype, optional=True)  # before Conv keeps it
    name = f"{factory}({H}, kernel_size={K}"
    if padding != "SAME":
        name += f", padding={padding!r}"
    return H, K, Conv(K, pads, dtype), name + ")"


def check_kernel_size(kernel_size: Any) -> tuple[int, ...]:
    """``kernel_size`` must be a tuple of 1, 2 or 3 positive ints; return it as a tuple."""
    if not isinstance(kernel_size, tuple | list) or not all(
        isinstance(k, int | np.integer) and not isinstance(k, bool) for k in kernel_size
    ):
        raise TypeError(
            f"kernel_size must be a tuple of 1, 2 or 3 ints (its length is the spatial rank), "
            f"e.g. (3, 3), got {kernel_size!r}"
        )
    if not 1 <= len(kernel_size) <= 3 or min(kernel_size) < 1:
        raise ValueError(
            f"kernel_size must be a tuple of 1, 2 or 3 positive ints (its length is the "
            f"spatial rank), got {tuple(kernel_size)!r}"
        )
    return tuple(int(k) for k in kernel_size)


def check_strides(strides: Any, rank: int) -> None:
    """``strides`` must be 1 or a tuple of ``rank`` ones (see the module's docstring)."""
    ones = isinstance(strides, int | np.integer) and strides == 1
    if isinstance(strides, tuple | list) and len(strides) == rank:
        ones = all(isinstance(s, int | np.integer) and s == 1 for s in strides)
    if isinstance(strides, bool) or not ones:
        raise ValueError(
            f"strides must be 1: the recurrent convolution must keep the state's spatial shape "
            f"(downsample the frames before the cell instead), got strides={strides!r}"
        )


def resolve_padding(padding: Any, kernel_size: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
    """``padding`` as ``((low, high), ...)`` pairs that keep the state's shape, or raise."""
    if isinstance(padding, str):
        mode = padding.upper()
        if mode == "SAME" and all(k % 2 for k in kernel_size):
            return tuple(((k - 1) // 2, (k - 1) // 2) for k in kernel_size)
        if mode == "SAME":
            flax = tuple(((k - 1) // 2, k // 2) for k in kernel_size)
            raise ValueError(
                f"padding='SAME' with the even kernel_size {kernel_size} is ambiguous (the extra "
                f"zeros go on one side and the state drifts by half a cell per step): use an "
                f"odd kernel, or explicit pairs, e.g. padding={flax} as Flax pads it"
            )
        if mode == "VALID" and all(k == 1 for k in kernel_size):
            return tuple((0, 0) for _ in kernel_size)
        if mode == "VALID":
            raise ValueError(
                f"padding='VALID' shrinks the state with the kernel_size {kernel_size}: a "
                f"recurrent state keeps its shape (use 'SAME' or pairs with low + high = K - 1)"
            )
    else:
        try:
            pairs = tuple((int(lo), int(hi)) for lo, hi in padding)
            valid = len(pairs) == len(kernel_size) and all(
                lo >= 0 and hi >= 0 and lo + hi == k - 1
                for (lo, hi), k in zip(pairs, kernel_size, strict=True)
            )
        except (TypeError, ValueError):
            valid = False
        if valid:
            return pairs
    raise ValueError(
        f"padding must be 'SAME', 'VALID' (kernels of ones) or {len(kernel_size)} pairs "
        f"(low, high) with low + high = K - 1 for kernel_size {kernel_size}, got {padding!r}"
    )


def input_half(conv: Conv, params: Any, x: Array, dtype: Any) -> Array:
    """``W_x * x + b`` ``[*B, *S, G*H]`` in ``dtype``."""
    x_proj = conv(x, params.w_x).astype(dtype)
    return x_proj + _blocks.along_last(params.b, x_proj)


def convolve_like(conv: Conv, v: Array, w: Array) -> Array:
    """``v * w`` in ``v``'s dtype: a recurrent convolution inside a step."""
    return conv(v, w).astype(v.dtype)


@dataclasses.dataclass(frozen=True)
class ConvCheck:
    """The ``check_params`` of a convolutional cell: ``params`` of ``params_type`` with a
    ``w_x`` of rank ``rank + 2`` and the ``shapes`` by field (``None`` for ``I``); returns ``I``.
    """

    name: str
    rank: int
    params_type: type
    shapes: tuple[tuple[str, tuple], ...]

    def __call__(self, params: Any) -> int:
        name, rank, params_type, shapes = self.name, self.rank, self.params_type, dict(self.shapes)
        w_x = getattr(params, "w_x", None)
        got = tuple(getattr(w_x, "shape", ()))
        if not isinstance(params, params_type) or len(got) != rank + 2:
            expected = tuple("I" if n is None else n for n in shapes["w_x"])
            raise ValueError(
                f"params do not belong to this {name}: expected {params_type.__name__} with "
                f"w_x of shape {expected}, got {type(params).__name__}"
                + (f" with w_x of shape {got}" if w_x is not None else "")
            )
        size = got[rank]
        exact = {f: tuple(size if n is None else n for n in shape) for f, shape in shapes.items()}
        _checks.check_param_shapes(name, params, exact)
        _checks.check_absent(name, params, tuple(f for f in params._fields if f not in shapes))
        return size
