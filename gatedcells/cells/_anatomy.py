"""The one assembler of the cell families (DESIGN section 6). It binds a family's
module-level functions to its spec by :class:`Bound`, a value rather than a closure, so two
calls of a factory with the same flags give equal, hashable cells (and
``jax.jit(..., static_argnums=...)`` reuses its trace across them)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Hashable, Mapping
from typing import Any

import jax.numpy as jnp

from .. import _checks
from .._cell import Array, Cell, MatmulSplit, PointwiseVJP, split_update


@dataclasses.dataclass(frozen=True)
class Bound:
    """``fn(spec, *args, **kwargs)``: a module-level function bound to a static spec, equal
    to another when both ``fn`` and ``spec`` are (``functools.partial`` is equal only to
    itself)."""

    fn: Callable
    spec: Hashable
    vjp: PointwiseVJP | None = None  # a pointwise's own backward (sequence/_fused.py)

    def __call__(self, *args, **kwargs):
        return self.fn(self.spec, *args, **kwargs)


@dataclasses.dataclass(frozen=True)
class Zeros:
    """The ``carry_fn`` of a cell whose carry is one array ``[*B, *size]`` of zeros."""

    size: int | tuple[int, ...]
    param_dtype: Any

    def __call__(self, batch_shape: tuple[int, ...], dtype: Any = None) -> Array:
        size = self.size if isinstance(self.size, tuple) else (self.size,)
        return jnp.zeros((*batch_shape, *size), self.param_dtype if dtype is None else dtype)


@dataclasses.dataclass(frozen=True)
class CheckFields:
    """The ``check_params`` of a cell: the fields of ``shapes`` (``None``: the input size)
    with those shapes and no other field set; returns ``I`` (``channels`` when no shape
    holds it) plus ``extra`` (input channels the params do not read, a reset flag)."""

    name: str
    shapes: tuple[tuple[str, tuple], ...]
    channels: int | None = None
    extra: int = 0

    def __call__(self, params: Any) -> int:
        shapes = dict(self.shapes)
        size = _checks.check_param_shapes(self.name, params, shapes)
        extra = tuple(f for f in getattr(params, "_fields", ()) if f not in shapes)
        _checks.check_absent(self.name, params, extra)
        return (self.channels if size is None else size) + self.extra


def frozen(shapes: Mapping[str, tuple]) -> tuple[tuple[str, tuple], ...]:
    """``shapes`` as a hashable tuple of ``(field, shape)`` pairs, in their order."""
    return tuple(shapes.items())


def assemble(
    spec: Any,
    init: Callable,
    project: Callable,
    update: Callable | None = None,
    *,
    split: MatmulSplit | None = None,
    scan: Callable | None = None,
    shapes: Mapping[str, tuple] | Callable | None = None,
    extra: int = 0,
    check: Callable | None = None,
    carry: Callable | int | None = None,
    output_size: int | None = None,
    feature_ndim: int = 1,
) -> Cell:
    """The :class:`~gatedcells.Cell` of a family: its functions bound to ``spec``, a frozen
    value of the factory's resolved flags with the fields ``name``, ``hidden_size`` and
    ``param_dtype``.

    ``update=None`` takes the update of ``split`` (:func:`gatedcells._cell.split_update`).
    ``check`` is the cell's ``check_params``, or by default :class:`CheckFields` of
    ``shapes`` (a mapping, or a function of ``spec``), with ``H`` input channels where no
    shape holds ``I``, and ``extra`` more. ``carry`` is its ``carry_fn`` (a :class:`Bound`),
    or the size of its one array of zeros (default ``H``); ``output_size`` defaults to ``H``.
    """
    H = spec.hidden_size
    if carry is None or isinstance(carry, int):
        carry = Zeros(carry or H, spec.param_dtype)
    if check is None:
        shapes = shapes(spec) if callable(shapes) else shapes
        check = CheckFields(spec.name, frozen(shapes), H, extra)
    return Cell(
        init_fn=Bound(init, spec),
        carry_fn=carry,
        project=Bound(project, spec),
        update=split_update(split) if update is None else Bound(update, spec),
        check_params=check,
        output_size=H if output_size is None else output_size,
        name=spec.name,
        split=split,
        scan=None if scan is None else Bound(scan, spec),
        feature_ndim=feature_ndim,
    )


def hidden(carry: Any) -> Array:
    """``carry.h``: the part of an LSTM-like carry that meets ``w_h`` (:class:`MatmulSplit`)."""
    return carry.h


def itself(h: Array) -> Array:
    """The carry ``h`` itself: the part that meets ``w_h`` of a cell whose carry is ``h``."""
    return h
