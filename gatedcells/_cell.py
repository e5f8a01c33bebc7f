"""The cell contract: a small immutable value of pure functions.

One shape legend serves every docstring of the package:

- ``T`` time steps; ``B`` batch (``*B``: any number of leading batch axes, none included);
- ``I`` input size; ``H`` hidden size; ``O`` output size (``H``, or ``2H`` bidirectional);
- ``G`` number of learned gate blocks fused on the last axis (``w_x [I, G*H]``);
- ``P`` projection size (``lstm(proj_size=P)``); ``L`` layers of a stack;
- ``M``, ``N`` the two sizes of a Jacobian block (diagnostics); ``C`` classes (tasks);
- ``S`` the spatial shape of a convolutional cell's frames (``*S``: 1 to 3 axes), ``K`` its
  kernel shape; such a cell reads steps ``x [*B, *S, I]`` (``I`` channels), and its carry
  and outputs keep ``S``: ``[*B, *S, H]``;
- feature axes (:attr:`Cell.feature_ndim`): how many trailing axes a step's input has, 1 for
  dense cells (``[*B, I]``), 1 + spatial rank for convolutional cells (``[*B, *S, I]``).
  Sequences put time just before them: ``xs [*B, T, *S, I]`` (or ``[T, *B, *S, I]``).
"""

import dataclasses
import functools
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import jax
import jax.numpy as jnp

from . import _checks

Array = jax.Array
Params = Any  # a pytree of arrays (NamedTuple per cell family, tuples for combinators)
Carry = Any  # an array or a NamedTuple of arrays, each ``[*B, H]``
Gates = Any  # a NamedTuple of gate activations, each ``[*B, H]``


class InitFn(Protocol):
    """The type of :attr:`Cell.init_fn`: ``(key, input_size) -> params``."""

    def __call__(self, key: Array, input_size: int) -> Params:
        """Fresh params for inputs of size ``I``, from a PRNG ``key`` (arguments checked)."""


class CarryFn(Protocol):
    """The type of :attr:`Cell.carry_fn`: ``(batch_shape, dtype) -> carry`` of zeros."""

    def __call__(self, batch_shape: tuple[int, ...], dtype: Any) -> Carry:
        """The zero carry, each leaf ``[*B, H]`` (``[*B, *S, H]`` for a convolutional cell,
        whose ``batch_shape`` is ``(*B, *S)``); ``dtype=None`` is the params' dtype."""


class ProjectFn(Protocol):
    """The type of :attr:`Cell.project`: ``(params, xs) -> x_proj``."""

    def __call__(self, params: Params, xs: Array) -> Array:
        """The input half of a step, ``[..., I] -> [..., G*H]`` over any leading axes."""


class UpdateFn(Protocol):
    """The type of :attr:`Cell.update`: ``(params, carry, x_proj) -> (carry, y, gates)``."""

    def __call__(self, params: Params, carry: Carry, x_proj: Array) -> tuple[Carry, Array, Gates]:
        """The recurrent half of a step: ``(carry, y [*B, O], gates)``. The equations."""


class CheckParamsFn(Protocol):
    """The type of :attr:`Cell.check_params`: ``params -> I``."""

    def __call__(self, params: Params) -> int:
        """Return ``I`` of ``params``; raise ``ValueError`` if they are not this cell's."""


class ScanFn(Protocol):
    """The type of :attr:`Cell.scan`: a sequence driver of a cell's own."""

    def __call__(
        self,
        params: Params,
        carry: Carry,
        xs: Array,
        *,
        valid: Array | None,
        reverse: bool,
        unroll: int | bool,
        grad: str,
        remat: bool | int,
    ) -> tuple[Carry, Array]:
        """Run the cell over time-major ``xs [T, *B, I]``: ``(carry, ys [T, *B, O])``.

        ``valid [T, *B]`` (``t < length``) or ``None``; the other keywords as in
        :func:`gatedcells.unroll`.
        """


class MatmulSplit(NamedTuple):
    """How a cell's ``update`` splits around its one recurrent matmul.

    A cell whose update is ``pointwise(params, carry, x_proj, hidden(carry) @ params.w_h)``,
    with ``pointwise`` free of any other matmul, declares it with this value. ``unroll`` then
    uses a custom gradient that keeps only ``pointwise`` inside the backward loop and forms
    the weight gradients with single large matmuls after it.

    Attributes:
      hidden: ``carry -> h`` ``[*B, H]``: the part of the carry that meets ``w_h``. It must
        also work on carries stacked over time (``[T, *B, ...]`` leaves): the backward pass
        applies it to all the saved carries at once.
      pointwise: ``(params, carry, x_proj, h_proj) -> (carry, y, gates)``: everything of the
        step after the recurrent matmul. ``x_proj`` is ``project(params, x)`` and ``h_proj``
        is ``hidden(carry) @ w_h`` (``recurrent_matmul``), both ``[*B, G*H]``. ``w_h``
        is dense, ``[H, G*H]``, or block-diagonal with one block per head,
        ``[NH, H/NH, G*H/NH]`` (the sLSTM): ``NH`` heads split ``h`` and each gate's block
        into contiguous slices, and head ``n``'s slice of ``h`` meets only its own block.
      dtype: compute dtype of the matmuls, or ``None`` for the params' own dtype.
      additive: ``pointwise`` reads ``x_proj`` and ``h_proj`` only through their sum (LSTM,
        simple RNN; not the GRU, whose reset multiplies ``h_proj``'s candidate block). The
        backward pass then keeps one pre-activation per step instead of two.

    An additive ``pointwise`` may also hold its own backward, a ``PointwiseVJP`` (in
    ``gatedcells/_cell.py``) as its attribute ``vjp`` (the sLSTM's): the fused scan then
    saves its residuals for each step instead of the carry and the pre-activations, and runs
    its backward instead of autodiff of ``pointwise`` (``grad="autodiff"`` still
    differentiates ``pointwise`` itself). A function that wraps ``pointwise`` (a
    combinator's) holds none, so it falls back to autodiff. With one, ``hidden`` must
    select a part of the carry (``carry.h``).
    """

    hidden: Callable[[Carry], Array]
    pointwise: Callable[[Params, Carry, Array, Array], tuple[Carry, Array, Gates]]
    dtype: Any = None
    additive: bool = False


class PointwiseVJP(NamedTuple):
    """A hand-written backward of an additive :class:`MatmulSplit`'s ``pointwise``, for the
    fused scan: the attribute ``vjp`` of the ``pointwise`` it differentiates.

    Attributes:
      residuals: ``(params, carry, z) -> res``: what the backward of a step reads, from the
        carry before it and its pre-activations ``z = x_proj + h_proj`` (summed in the
        carry's dtype); a pytree of ``[*B, ...]`` arrays that the forward loop saves for
        every step. Computed next to ``pointwise``, it shares its work (XLA merges the two).
      backward: ``(params, res, d_carry, d_y) -> (d_params, d_carry, d_z)``: the VJP of
        ``pointwise`` at that step, equal to autodiff's up to float rounding, without the
        path through ``hidden(carry) @ w_h`` (the scan adds it); ``d_params`` has the
        structure of ``params``.
    """

    residuals: Callable[[Params, Carry, Array], Any]
    backward: Callable[[Params, Any, Carry, Array], tuple[Params, Carry, Array]]


@dataclasses.dataclass(frozen=True)
class Cell:
    """A recurrent cell as pure functions over an explicit parameter pytree and carry.

    Build cells with the factories (:func:`gatedcells.lstm`, :func:`gatedcells.gru`, ...)
    and combinators (:func:`gatedcells.stack`, :func:`gatedcells.bidirectional`, ...); run
    them over sequences with :func:`gatedcells.unroll`. A cell is not a pytree: close over
    it, or pass it to ``jax.jit`` as a static argument. A factory's cell is a value of its
    flags: two calls with the same flags give equal, hashable cells, so ``jax.jit`` reuses
    its trace across them (its functions are module-level functions bound to a frozen spec;
    a combinator's are closures, and compare by identity).

    The fields are the raw pure functions a factory provides; the methods are what users
    call (:meth:`init` and :meth:`initial_carry` check their arguments, then call the
    fields). A combinator that wraps a cell must forward ``update`` (the equations), and may
    forward ``split`` (the custom gradient: drop it if the wrapper changes the step between
    the matmul and the pointwise part) and ``scan`` (a driver of the cell's own).

    Attributes:
      init_fn: ``(key, input_size) -> params`` (:class:`InitFn`).
      carry_fn: ``(batch_shape, dtype) -> carry`` of zeros (:class:`CarryFn`).
      project: ``(params, xs) -> x_proj``, ``[..., I] -> [..., G*H]`` (:class:`ProjectFn`):
        ``unroll`` runs it once per sequence.
      update: ``(params, carry, x_proj) -> (carry, y, gates)`` (:class:`UpdateFn`): the
        recurrent half of the step with the gate activations it computed. The equations of a
        cell live here, once; ``step``, ``unroll`` and the diagnostics all run them.
      check_params: ``params -> I``; raises ``ValueError`` naming the offending field when
        ``params`` do not belong to this cell (:class:`CheckParamsFn`).
      output_size: size of ``y``, so that stacks chain input sizes without being told.
      name: a short description used in messages and ``repr``.
      split: ``update`` split around its recurrent matmul (:class:`MatmulSplit`), or ``None``.
      scan: a sequence driver of the cell's own (:class:`ScanFn`), or ``None`` for the
        generic one. Stacks, bidirectional layers and the linear recurrences bring their own.
      feature_ndim: how many trailing axes a step's input has: 1 for dense cells
        (``x [*B, I]``), 1 + spatial rank for convolutional cells (``x [*B, *S, I]``).
        ``unroll`` finds time just before them (``xs [*B, T, *S, I]``), ``lengths`` cover
        the axes before time, and ``initial_carry``'s ``batch_shape`` is the step input's
        shape without its last axis, ``(*B, *S)``, so that a carry keeps the frames' ``S``
        and one cell serves every frame size. A combinator declares the largest of its
        cells' (a dense cell over frames treats ``S`` as batch axes).
    """

    init_fn: InitFn
    carry_fn: CarryFn
    project: ProjectFn
    update: UpdateFn
    check_params: CheckParamsFn
    output_size: int
    name: str = "cell"
    split: MatmulSplit | None = None
    scan: ScanFn | None = None
    feature_ndim: int = 1

    def init(self, key: Array, input_size: int) -> Params:
        """Fresh params for inputs ``[*B, I]`` with ``I = input_size``."""
        _checks.check_key("key", key)
        input_size = _checks.check_positive_int("input_size", input_size)
        with warnings.catch_warnings():  # e.g. int32 indices of a huge bias: it is refused
            warnings.simplefilter("ignore")
            shapes = jax.eval_shape(functools.partial(self.init_fn, input_size=input_size), key)
        _checks.check_fits_in_memory(self.name, shapes)
        return self.init_fn(key, input_size)

    def initial_carry(self, batch_shape: tuple[int, ...] = (), dtype: Any = None) -> Carry:
        """The zero carry, each leaf ``[*B, H]``; ``dtype=None`` is the cell's param dtype.

        ``batch_shape`` is a step input's shape without its last axis: ``(*B, *S)`` for a
        convolutional cell, whose carry leaves are ``[*B, *S, H]``.
        """
        batch_shape = _checks.check_batch_shape(batch_shape)
        if dtype is not None and not jnp.issubdtype(dtype, jnp.floating):
            raise TypeError(f"dtype must be a floating dtype or None, got {dtype!r}")
        return self.carry_fn(batch_shape, dtype)

    def recur(self, params: Params, carry: Carry, x_proj: Array) -> tuple[Carry, Array]:
        """The recurrent half of :meth:`step`: ``(params, carry, x_proj) -> (carry, y)``."""
        carry, y, _ = self.update(params, carry, x_proj)
        return carry, y

    def step(self, params: Params, carry: Carry, x: Array) -> tuple[Carry, Array]:
        """One time step, ``x [*B, I] -> y [*B, O]`` (``[*B, *S, I] -> [*B, *S, O]`` for a
        convolutional cell); equal to ``recur(project(x))``.

        With ``params`` bound (``functools.partial(cell.step, params)``) this is a valid
        ``jax.lax.scan`` body. A carry given as plain tuples (Flax's ``(c, h)``) comes back
        as plain tuples.
        """
        checked = _checks.check_step_input(self, params, carry, x)
        new_carry, y = self.recur(params, checked, self.project(params, x))
        return _checks.like_carry(carry, new_carry), y

    def gates(self, params: Params, carry: Carry, x: Array) -> Gates:
        """The gate activations of one step (a NamedTuple named by the gates' letters)."""
        carry = _checks.check_step_input(self, params, carry, x)
        return self.update(params, carry, self.project(params, x))[2]

    def __repr__(self) -> str:
        return f"Cell({self.name})"

    def __getattr__(self, name: str):
        advice = FOREIGN_ATTRIBUTES.get(name)  # a library took the cell for one of its own
        if advice is not None:
            raise AttributeError(advice.format(cell=self, name=name))
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


# Attributes that other libraries ask of their own cells, each with a message template
# (``{cell}``, ``{name}``) saying how to run a gatedcells cell there instead. The contract
# knows no library: the code that adapts to one registers its attributes (Flax's in
# ``sequence/_flax_options.py``).
FOREIGN_ATTRIBUTES: dict[str, str] = {}


# The contract's types are documented, shown in signatures and linked as ``gatedcells.X``,
# where users import them, not by this private module.
for _public in (InitFn, CarryFn, ProjectFn, UpdateFn, CheckParamsFn, ScanFn, MatmulSplit, Cell):
    _public.__module__ = "gatedcells"


def matmul(a: Array, w: Array, dtype: Any = None) -> Array:
    """``a @ w`` on the trailing axis, computed in ``dtype`` (default: ``w``'s dtype)."""
    dtype = w.dtype if dtype is None else dtype
    return jnp.matmul(a.astype(dtype), w.astype(dtype))


def recurrent_matmul(h: Array, w_h: Array, dtype: Any = None) -> Array:
    """``h [*B, H] @ w_h -> [*B, G*H]`` for a dense ``w_h [H, G*H]`` or a block-diagonal
    ``w_h [NH, H/NH, G*H/NH]`` (:class:`MatmulSplit`), computed in ``dtype``.

    The block-diagonal product is one batched matmul over the heads; its columns come out
    per head, ``[*B, NH, G, H/NH]``, and are returned gate-major, ``[*B, G, NH, H/NH]``
    flattened, the layout of ``x_proj``.
    """
    if w_h.ndim == 2:
        return matmul(h, w_h, dtype)
    heads, rows, cols = w_h.shape
    if heads == 1:  # a plain matmul: XLA:CPU runs a batched one of 1 about 1.5x slower
        return matmul(h, w_h[0], dtype)
    lead = h.shape[:-1]
    dtype = w_h.dtype if dtype is None else dtype
    per_head = h.astype(dtype).reshape(*lead, heads, rows)
    out = jnp.einsum("...nj,njk->...nk", per_head, w_h.astype(dtype))
    out = jnp.swapaxes(out.reshape(*lead, heads, cols // rows, rows), -3, -2)
    return out.reshape(*lead, heads * cols)


def split_update(split: MatmulSplit, w_h: Callable[[Params], Array] | None = None) -> UpdateFn:
    """A cell's ``update`` from its :class:`MatmulSplit`: the two can never disagree. A value,
    equal for equal splits (so are the cells built with it)."""
    return SplitUpdate(split, w_h)


@dataclasses.dataclass(frozen=True)
class SplitUpdate:
    """``update(params, carry, x_proj)`` of a :class:`MatmulSplit` (see :func:`split_update`):
    ``pointwise(params, carry, x_proj, hidden(carry) @ w_h)``, ``w_h`` read by ``w_h`` (or
    ``params.w_h``)."""

    split: MatmulSplit
    w_h: Callable[[Params], Array] | None = None

    def __call__(self, params: Params, carry: Carry, x_proj: Array) -> tuple[Carry, Array, Gates]:
        w_h = params.w_h if self.w_h is None else self.w_h(params)
        h_proj = recurrent_matmul(self.split.hidden(carry), w_h, self.split.dtype)
        return self.split.pointwise(params, carry, x_proj, h_proj)
