"""The cell contract: a small immutable value of pure functions.

Shape legend used in every docstring of the package: ``T`` time, ``B`` batch (``*B`` any
number of leading batch axes, none included), ``I`` input size, ``H`` hidden size, ``G``
number of learned gate blocks fused on the last axis.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
Params = Any  # a pytree of arrays (NamedTuple per cell family, tuples for combinators)
Carry = Any  # an array or a NamedTuple of arrays, each ``[*B, H]``
Gates = Any  # a NamedTuple of gate activations, each ``[*B, H]``

InitFn = Callable[[Array, int], Params]
CarryFn = Callable[..., Carry]
ProjectFn = Callable[[Params, Array], Array]
TraceFn = Callable[[Params, Carry, Array], tuple[Carry, Array, Gates]]
# scan(params, carry, xs [T, *B, I], *, valid [T, *B] | None, reverse, unroll, grad)
#   -> (carry, ys [T, *B, O]); overrides should pass unknown keywords on to their layers.
ScanFn = Callable[..., tuple[Carry, Array]]


class Fused(NamedTuple):
    """How a cell's recurrence splits around its one recurrent matmul.

    A cell whose step is ``update(params, carry, x_proj, hidden(carry) @ params.w_h)``, with
    ``update`` free of any other matmul, declares it with this value. ``unroll`` then uses
    a custom gradient that keeps only the pointwise ``update`` inside the backward loop and
    forms the weight gradients with single large matmuls after it.

    Attributes:
      hidden: ``carry -> h`` ``[*B, H]``: the part of the carry that meets ``w_h``. It must
        also work on carries stacked over time (``[T, *B, ...]`` leaves): the backward pass
        applies it to all the saved carries at once.
      update: ``(params, carry, x_proj, h_proj) -> (carry, y, gates)``: everything of the step
        after the recurrent matmul. ``x_proj`` is ``project(params, x)`` and ``h_proj`` is
        ``hidden(carry) @ w_h``, both ``[*B, G*H]``.
      dtype: compute dtype of the matmuls, or ``None`` for the params' own dtype.
      additive: ``update`` reads ``x_proj`` and ``h_proj`` only through their sum (LSTM,
        simple RNN; not the GRU, whose reset multiplies ``h_proj``'s candidate block). The
        backward pass then keeps one pre-activation per step instead of two.
    """

    hidden: Callable[[Carry], Array]
    update: Callable[[Params, Carry, Array, Array], tuple[Carry, Array, Gates]]
    dtype: Any = None
    additive: bool = False


@dataclasses.dataclass(frozen=True)
class Cell:
    """A recurrent cell as pure functions over an explicit parameter pytree and carry.

    Build cells with the factories (:func:`gatedcells.lstm`, :func:`gatedcells.gru`,
    :func:`gatedcells.simple_rnn`) and combinators (:func:`gatedcells.stack`,
    :func:`gatedcells.bidirectional`); run them over sequences with
    :func:`gatedcells.unroll`. A cell is not a pytree: close over it, or pass it to
    ``jax.jit`` as a static argument. Build it once: two calls of a factory give cells that
    compare unequal (their functions are closures).

    Attributes:
      init: ``(key, input_size) -> params``.
      initial_carry: ``(batch_shape=(), dtype=None) -> carry`` of zeros, each leaf
        ``[*B, H]``; ``dtype=None`` is the cell's ``param_dtype``.
      project: ``(params, xs) -> x_proj``: the input half of the step, ``[..., I] ->
        [..., G*H]`` over any leading axes (``unroll`` runs it once per sequence).
      trace: ``(params, carry, x_proj) -> (carry, y, gates)``: the recurrent half of the
        step with the gate activations it computed. The equations of a cell live here, once.
      input_size: ``params -> I``; also checks that ``params`` belong to this cell and raises
        ``ValueError`` naming the offending field otherwise.
      output_size: size of ``y``, so that stacks chain input sizes without being told.
      name: a short description used in messages and ``repr``.
      fused: the split of ``trace`` around its recurrent matmul (:class:`Fused`), or ``None``.
      scan: a sequence driver of the cell's own, or ``None`` for the generic one. Stacks and
        bidirectional layers bring their own. It is called as ``scan(params, carry, xs,
        *, valid, reverse, unroll, grad)`` with time-major ``xs [T, *B, I]`` and ``valid
        [T, *B]`` (or ``None``), and returns ``(carry, ys [T, *B, O])``.
    """

    init: InitFn
    initial_carry: CarryFn
    project: ProjectFn
    trace: TraceFn
    input_size: Callable[[Params], int]
    output_size: int
    name: str = "cell"
    fused: Fused | None = None
    scan: ScanFn | None = None

    def __post_init__(self):
        # Every cell, whatever its factory, checks the arguments of init and initial_carry.
        if not getattr(self.init, "_checked", False):
            object.__setattr__(self, "init", _checked_init(self.init))
        if not getattr(self.initial_carry, "_checked", False):
            object.__setattr__(self, "initial_carry", _checked_initial_carry(self.initial_carry))

    def recur(self, params: Params, carry: Carry, x_proj: Array) -> tuple[Carry, Array]:
        """The recurrent half of :meth:`step`: ``(params, carry, x_proj) -> (carry, y)``."""
        carry, y, _ = self.trace(params, carry, x_proj)
        return carry, y

    def step(self, params: Params, carry: Carry, x: Array) -> tuple[Carry, Array]:
        """One time step, ``x [*B, I] -> y [*B, O]``; equal to ``recur(project(x))``.

        With ``params`` bound (``functools.partial(cell.step, params)``) this is a valid
        ``jax.lax.scan`` body.
        """
        check_step_input(self, params, carry, x)
        return self.recur(params, carry, self.project(params, x))

    def gates(self, params: Params, carry: Carry, x: Array) -> Gates:
        """The gate activations of one step (a NamedTuple named by the gates' letters)."""
        check_step_input(self, params, carry, x)
        return self.trace(params, carry, self.project(params, x))[2]

    def __repr__(self) -> str:
        return f"Cell({self.name})"


def _checked_init(init: InitFn) -> InitFn:
    def checked(key: Array, input_size: int) -> Params:
        check_key("key", key)
        if (
            isinstance(input_size, bool)
            or not isinstance(input_size, int | np.integer)
            or input_size < 1
        ):
            raise ValueError(f"input_size must be a positive int, got {input_size!r}")
        return init(key, int(input_size))

    checked._checked = True
    checked.__wrapped__ = init
    return checked


def _checked_initial_carry(initial_carry: CarryFn) -> CarryFn:
    def checked(batch_shape: tuple[int, ...] = (), dtype=None) -> Carry:
        if not isinstance(batch_shape, tuple | list) or not all(
            isinstance(n, int | np.integer) and not isinstance(n, bool) and n >= 0
            for n in batch_shape
        ):
            raise TypeError(
                f"batch_shape must be a tuple of non-negative ints (e.g. (32,), or () for "
                f"one sequence), got {batch_shape!r}"
            )
        if dtype is not None and not jnp.issubdtype(dtype, jnp.floating):
            raise TypeError(f"dtype must be a floating dtype or None, got {dtype!r}")
        return initial_carry(tuple(int(n) for n in batch_shape), dtype)

    checked._checked = True
    checked.__wrapped__ = initial_carry
    return checked


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


# --------------------------------------------------------------------------------------
# Plumbing shared by the cell families (never equations).


def matmul(a: Array, w: Array, dtype: Any = None) -> Array:
    """``a @ w`` on the trailing axis, computed in ``dtype`` (default: ``w``'s dtype)."""
    dtype = w.dtype if dtype is None else dtype
    return jnp.matmul(a.astype(dtype), w.astype(dtype))


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


def zeros_carry(hidden_size: int, param_dtype):
    """An ``initial_carry`` for cells whose carry is the array ``h``."""

    def initial_carry(batch_shape: tuple[int, ...] = (), dtype=None) -> Array:
        dtype = param_dtype if dtype is None else dtype
        return jnp.zeros((*tuple(batch_shape), hidden_size), dtype)

    return initial_carry


def fused_trace(fused: Fused, w_h: Callable[[Params], Array] = lambda p: p.w_h) -> TraceFn:
    """``trace`` of a cell from its :class:`Fused` split: the two can never disagree."""

    def trace(params, carry, x_proj):
        h_proj = matmul(fused.hidden(carry), w_h(params), fused.dtype)
        return fused.update(params, carry, x_proj, h_proj)

    return trace


def check_hidden_size(hidden_size: int) -> None:
    if not isinstance(hidden_size, int) or isinstance(hidden_size, bool) or hidden_size < 1:
        raise ValueError(f"hidden_size must be a positive int, got {hidden_size!r}")


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
        if value is None and name == "dtype":
            continue
        try:
            floating = jnp.issubdtype(value, jnp.floating)
        except TypeError:
            floating = False
        if not floating:
            raise TypeError(f"{name} must be a floating dtype (e.g. jnp.float32), got {value!r}")


def check_param_shapes(name: str, params: Params, expected: dict[str, tuple]) -> int:
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


def check_step_input(cell: Cell, params: Params, carry: Carry, x: Array) -> None:
    """Trace-time checks of :meth:`Cell.step`'s arguments, with messages naming them."""
    input_size = cell.input_size(params)
    x = check_float_array("x", x)
    if x.ndim < 1 or x.shape[-1] != input_size:
        raise ValueError(f"x must have shape [*B, I] with I={input_size}, got shape {x.shape}")
    check_carry(cell, carry, x.shape[:-1])


def check_cell(name: str, cell: Any) -> Cell:
    """``cell`` must be a :class:`Cell` (the message names the argument)."""
    if not isinstance(cell, Cell):
        raise TypeError(
            f"{name} must be a gatedcells.Cell (e.g. gatedcells.lstm(128)), got {cell!r}"
        )
    return cell


def check_float_array(name: str, x) -> Array:
    if not hasattr(x, "dtype") or not hasattr(x, "shape"):
        raise TypeError(f"{name} must be an array, got {type(x).__name__}")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"{name} must have a floating dtype, got {x.dtype}")
    return x


def check_carry(cell: Cell, carry: Carry, batch_shape: tuple[int, ...]) -> None:
    """``carry`` must have the structure and shapes of ``cell.initial_carry(batch_shape)``."""
    expected = jax.eval_shape(lambda: cell.initial_carry(tuple(batch_shape)))
    exp_leaves, exp_tree = jax.tree.flatten(expected)
    try:
        got_leaves = exp_tree.flatten_up_to(carry)
    except (ValueError, TypeError):
        raise ValueError(
            f"carry must have the structure of cell.initial_carry(batch_shape={batch_shape}): "
            f"{_describe(expected)}, got {_describe(carry)}"
        ) from None
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


def _describe(tree) -> str:
    shapes = jax.tree.map(lambda a: tuple(getattr(a, "shape", ())), tree)
    return str(shapes)
