"""Every argument check of the package, once.

Checks run at trace time, at the public boundary, and raise a one-line ``TypeError`` or
``ValueError`` naming the argument, what it got and what was expected. This module imports
nothing else of gatedcells (checks that need a cell duck-type on its methods).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array

# --------------------------------------------------------------------------------------
# Scalars and flags.


def check_positive_int(name: str, value: Any) -> int:
    """``value`` must be a positive int (not a bool); return it as a Python int."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def check_heads(num_heads: Any, hidden_size: int) -> int:
    """``num_heads`` must be a positive int dividing ``hidden_size``; return it."""
    NH = check_positive_int("num_heads", num_heads)
    if hidden_size % NH:
        raise ValueError(
            f"num_heads={NH} must divide hidden_size={hidden_size} (each head takes H/NH)"
        )
    return NH


def check_flag(name: str, value: Any) -> None:
    """``value`` must be a bool (a string such as ``"no"`` would be true)."""
    if not isinstance(value, bool | np.bool_):
        raise TypeError(f"{name} must be a bool, got {value!r}")


def check_rate(name: str, rate: Any) -> float:
    """``rate`` must be a number in ``[0, 1)`` (a dropout or zoneout probability)."""
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate < 1:
        raise ValueError(f"{name} must be a number in [0, 1), got {rate!r}")
    return float(rate)


def check_t_max(chrono: Any) -> None:
    """``chrono`` must be ``None`` or the longest dependency expected, ``T_max > 2``."""
    if chrono is None:
        return
    if isinstance(chrono, bool) or not isinstance(chrono, int | float) or chrono <= 2:
        raise ValueError(
            f"chrono must be None or T_max > 2 (the longest dependency expected, in steps), "
            f"got {chrono!r}"
        )


def check_unroll(unroll: Any) -> None:
    """``unroll`` must be a positive int, ``True`` (the whole loop) or ``None`` (per backend)."""
    if unroll is None or unroll is True:
        return
    if isinstance(unroll, bool) or not isinstance(unroll, int | np.integer) or unroll < 1:
        raise ValueError(f"unroll must be a positive int, True or None, got {unroll!r}")


def check_remat(remat: Any) -> None:
    """``remat`` must be a bool or a positive int (a chunk length)."""
    if not isinstance(remat, bool) and (not isinstance(remat, int | np.integer) or remat < 1):
        raise ValueError(f"remat must be a bool or a positive int (a chunk length), got {remat!r}")


def check_choice(name: str, value: Any, choices: tuple) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


def check_key(name: str, key: Any) -> None:
    """``key`` must be a PRNG key: ``jax.random.key(seed)`` (or a raw ``uint32`` one)."""
    dtype = getattr(key, "dtype", None)
    if dtype is None or not (
        jnp.issubdtype(dtype, jax.dtypes.prng_key) or (dtype == jnp.uint32 and key.ndim >= 1)
    ):
        raise TypeError(
            f"{name} must be a PRNG key (jax.random.key(seed)), got "
            + (f"an array of dtype {dtype}" if dtype is not None else type(key).__name__)
        )


def check_batch_shape(batch_shape: Any) -> tuple[int, ...]:
    """``batch_shape`` must be a tuple of non-negative ints or symbolic dimensions (a batch
    size of ``jax.export.symbolic_shape``, known when the exported function is called)."""
    if not isinstance(batch_shape, tuple | list) or not all(
        jax.export.is_symbolic_dim(n)
        or (isinstance(n, int | np.integer) and not isinstance(n, bool) and n >= 0)
        for n in batch_shape
    ):
        raise TypeError(
            f"batch_shape must be a tuple of non-negative ints (e.g. (32,), or () for one "
            f"sequence), got {batch_shape!r}"
        )
    return tuple(n if jax.export.is_symbolic_dim(n) else int(n) for n in batch_shape)


def check_float_dtype(name: str, dtype: Any, *, optional: bool = False) -> None:
    """``dtype`` must be a floating dtype (or ``None`` where ``optional``)."""
    if dtype is None and optional:
        return
    try:
        floating = jnp.issubdtype(dtype, jnp.floating)
    except TypeError:
        floating = False
    if not floating:
        raise TypeError(f"{name} must be a floating dtype (e.g. jnp.float32), got {dtype!r}")


def check_factory_args(
    *,
    numbers: Mapping[str, Any] = MappingProxyType({}),
    functions: Mapping[str, Any] = MappingProxyType({}),
    dtypes: Mapping[str, Any] = MappingProxyType({}),
) -> None:
    """A cell factory's flags, checked when the cell is built (not when ``init`` fails).

    ``numbers`` must be real numbers, ``functions`` callables, ``dtypes`` floating dtypes
    (``None`` allowed for the compute ``dtype``).
    """
    for name, value in numbers.items():
        scalar = isinstance(value, int | float | np.number) or (
            hasattr(value, "dtype")
            and np.ndim(value) == 0
            and jnp.issubdtype(value.dtype, jnp.number)
        )
        if isinstance(value, bool) or not scalar:
            raise TypeError(f"{name} must be a number, got {value!r}")
    for name, value in functions.items():
        if not callable(value):
            raise TypeError(f"{name} must be a function (e.g. jnp.tanh), got {value!r}")
    for name, value in dtypes.items():
        check_float_dtype(name, value, optional=name == "dtype")


# --------------------------------------------------------------------------------------
# Arrays, params and carries.


def check_float_array(name: str, x: Any) -> Array:
    """``x`` must be an array of a floating dtype; return it."""
    if not hasattr(x, "dtype") or not hasattr(x, "shape"):
        raise TypeError(f"{name} must be an array, got {type(x).__name__}")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"{name} must have a floating dtype, got {x.dtype}")
    return x


def check_param_shapes(name: str, params: Any, expected: dict[str, tuple]) -> int:
    """Check ``params`` fields against ``expected`` shapes (``None`` = any); return ``I``.

    ``expected`` maps field names to shapes whose first entry may be ``None`` for the input
    size, which is read from the first such field.
    """
    input_size = None
    for field, shape in expected.items():
        leaf = getattr(params, field, None)
        if leaf is None or not hasattr(leaf, "shape"):
            raise ValueError(
                f"params do not belong to this {name}: expected a field {field!r} of shape "
                f"{_fmt(shape)}, got params of type {type(params).__name__}"
            )
        got = tuple(leaf.shape)
        if shape[0] is None:
            input_size = got[0] if got else None
            shape = (input_size, *shape[1:])
        if got != tuple(shape):
            raise ValueError(
                f"params do not belong to this {name}: params.{field} has shape {got}, "
                f"expected {_fmt(shape)} (params of type {type(params).__name__})"
            )
    return input_size


def _fmt(shape) -> str:
    return "(" + ", ".join("I" if s is None else str(s) for s in shape) + ")"


def check_absent(name: str, params: Any, fields: tuple[str, ...]) -> None:
    """Fields that this configuration of a cell does not have must be ``None``."""
    for field in fields:
        if getattr(params, field, None) is not None:
            raise ValueError(
                f"params do not belong to this {name}: params.{field} must be None (this "
                f"configuration has no {field})"
            )


def check_fits_in_memory(name: str, shapes: Any) -> None:
    """Params of ``shapes`` (a pytree of ``ShapeDtypeStruct``) must fit in the memory of the
    default device (the host's RAM on CPU): a clear error instead of a process killed."""
    size = sum(math.prod(a.shape) * np.dtype(a.dtype).itemsize for a in jax.tree.leaves(shapes))
    device = jax.devices()[0]
    stats = device.memory_stats() if device.platform != "cpu" else None
    limit = (stats or {}).get("bytes_limit") or os.sysconf("SC_PAGE_SIZE") * os.sysconf(
        "SC_PHYS_PAGES"
    )
    if size > limit:
        raise ValueError(
            f"the params of {name} would take {size / 2**30:,.1f} GiB, more than the "
            f"{limit / 2**30:,.1f} GiB of memory of {device.platform}:{device.id}"
        )


def check_cell(name: str, cell: Any, advice: str = "") -> Any:
    """``cell`` must be a :class:`gatedcells.Cell` (duck-typed). The message names it, what it
    got (its type for a long repr, a module's) and ends with ``advice`` (an adapter's, e.g.
    ``": run Flax's cells with flax.nnx.RNN"``)."""
    if not all(hasattr(cell, a) for a in ("init_fn", "carry_fn", "project", "update", "step")):
        got = repr(cell) if "\n" not in repr(cell) else type(cell).__name__
        raise TypeError(
            f"{name} must be a gatedcells.Cell (e.g. gatedcells.lstm(128)), got {got}{advice}"
        )
    return cell


def check_carry(cell: Any, carry: Any, batch_shape: tuple[int, ...]) -> Any:
    """``carry`` must have the structure and shapes of ``cell.initial_carry(batch_shape)``.

    Returns the carry in the cell's own containers: plain tuples or lists in place of the
    cell's NamedTuples (Flax's LSTM carry ``(c, h)`` for :class:`gatedcells.LSTMCarry`) are
    accepted when their leaves line up, and rebuilt (:func:`like_carry` hands a result back
    in the caller's containers).
    """
    expected = jax.eval_shape(lambda: cell.initial_carry(tuple(batch_shape)))
    exp_leaves, exp_tree = jax.tree.flatten(expected)
    try:
        got_leaves = exp_tree.flatten_up_to(carry)
    except (ValueError, TypeError):
        if jax.tree.structure(_plain(carry)) != jax.tree.structure(_plain(expected)):
            raise ValueError(
                f"carry must have the structure of cell.initial_carry(batch_shape="
                f"{batch_shape}): {_describe(expected)}, got {_describe(carry)}"
            ) from None
        got_leaves = jax.tree.leaves(carry)
        carry = exp_tree.unflatten(got_leaves)
    for exp, got in zip(exp_leaves, got_leaves, strict=True):
        shape = getattr(got, "shape", None)
        if shape is None or tuple(shape) != tuple(exp.shape):
            raise ValueError(
                f"carry does not match the batch shape of the input: expected leaves of "
                f"shape {tuple(exp.shape)} (batch shape {tuple(batch_shape)}), got "
                f"{_describe(carry)}"
            )
        if not jnp.issubdtype(got.dtype, jnp.floating):
            raise TypeError(f"carry must have a floating dtype, got {got.dtype}")
    return carry


def like_carry(given: Any, carry: Any) -> Any:
    """``carry`` in the containers of ``given``, the carry a caller passed in (``None``: the
    cell's own): a scan body must hand back the type it was given (Flax's ``(c, h)``)."""
    if given is None or jax.tree.structure(given) == jax.tree.structure(carry):
        return carry
    return jax.tree.structure(given).unflatten(jax.tree.leaves(carry))


def _plain(tree: Any) -> Any:  # NamedTuples and lists as plain tuples: containers aside
    if isinstance(tree, tuple | list):
        return tuple(_plain(t) for t in tree)
    return tree


def _describe(tree) -> str:  # the shapes of a pytree's leaves
    return str(jax.tree.map(lambda a: tuple(getattr(a, "shape", ())), tree))


def describe_frame(feature_ndim: int, input_size: int) -> tuple[str, str]:
    """A step's trailing axes as the legend writes them, and what they must hold."""
    if feature_ndim == 1:
        return "I", f"I={input_size}"
    return "*S, I", f"{feature_ndim - 1} spatial axes (the kernel's rank) and I={input_size}"


def check_step_input(cell: Any, params: Any, carry: Any, x: Any) -> Any:
    """Trace-time checks of :meth:`Cell.step`'s arguments, with messages naming them.

    ``x`` is ``[*B, I]``, or ``[*B, *S, I]`` for a cell with ``feature_ndim = 1 + len(S)``;
    the carry's leading shape is ``x.shape[:-1]``. Returns the carry as
    :func:`check_carry` does."""
    input_size = cell.check_params(params)
    x = check_float_array("x", x)
    nf = getattr(cell, "feature_ndim", 1)
    if x.ndim < nf or x.shape[-1] != input_size:
        frame, sizes = describe_frame(nf, input_size)
        raise ValueError(f"x must have shape [*B, {frame}] with {sizes}, got shape {x.shape}")
    return check_carry(cell, carry, x.shape[:-1])


def checked_lengths(
    lengths: Any, steps: Any, name: str = "lengths", batch_shape: tuple[int, ...] | None = None
) -> Array:
    """``lengths`` must be integer (``[*B]`` when ``batch_shape`` is given) with concrete values
    in ``[0, T]``; return it as an array.

    Traced values (under ``jax.jit``) pass: :func:`gatedcells.check_lengths` stages their
    check (see ``unroll``'s docstring). The bound ``T`` waits for the call when ``steps`` is
    a symbolic dimension (``jax.export``).
    """
    if not hasattr(lengths, "dtype"):
        lengths = np.asarray(lengths)
    if not jnp.issubdtype(lengths.dtype, jnp.integer):
        raise TypeError(f"{name} must have an integer dtype, got {lengths.dtype}")
    if batch_shape is not None and tuple(lengths.shape) != tuple(batch_shape):
        raise ValueError(
            f"{name} must have shape [*B]={tuple(batch_shape)} (the batch shape of xs), "
            f"got shape {tuple(lengths.shape)}"
        )
    if not isinstance(lengths, jax.core.Tracer) and np.size(lengths):
        concrete = np.asarray(lengths)
        low, high = int(concrete.min()), int(concrete.max())
        if low < 0 or (not jax.export.is_symbolic_dim(steps) and high > steps):
            raise ValueError(lengths_out_of_range(name, steps).format(low=low, high=high))
    return lengths


def lengths_out_of_range(name: str, steps: Any) -> str:
    """The message for ``lengths`` outside ``[0, T]``, with ``{low}`` and ``{high}`` to fill."""
    return f"{name} must lie in [0, T] = [0, {steps}], got values from {{low}} to {{high}}"
