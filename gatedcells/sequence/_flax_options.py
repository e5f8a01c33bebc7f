"""Flax's RNN options over :func:`unroll`: what ``gatedcells.linen`` and ``gatedcells.nnx``
share, written once and without flax (only those two import it).

The options are those of ``flax.linen.RNN`` and ``flax.nnx.RNN``: ``time_major``,
``reverse``, ``keep_order``, ``return_carry``, ``initial_carry`` (handed back in the
containers it came in) and ``seq_lengths`` (checked once, under that name). A stacked module
runs its layers with :func:`run_layers` and :func:`step_layers`, its own dropout between them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax.numpy as jnp

from .. import _cell, _checks
from .._cell import Array, Carry, Cell, Params
from ._layout import check_inputs, from_time_major, sequence_layout, start_carry, to_time_major
from ._masks import valid_mask
from ._unroll import named_unroll, unroll_time_major

Merge = str | Callable[[Array, Array], Array]
Between = Callable[[int, Array], Array]  # (k, outputs of layer k) -> inputs of layer k + 1

# what flax.linen.RNN and flax.nnx.RNN ask of a bare cell: say how to wrap it
_cell.FOREIGN_ATTRIBUTES.update(
    dict.fromkeys(
        ("num_feature_axes", "initialize_carry"),
        "{cell!r} is not a Flax module (it has no {name!r}): wrap it, "
        "flax.linen.RNN(gatedcells.linen.Cell(cell)) or "
        "nnx.RNN(gatedcells.nnx.Cell(cell, in_features, rngs=rngs)), or use "
        "gatedcells.linen.RNN / gatedcells.nnx.RNN",
    )
)


def pick(override: Any, default: Any) -> Any:
    """A call's option, or the module's attribute when the call leaves it ``None``."""
    return default if override is None else override


def run(
    cell: Cell,
    params: Params,
    xs: Array,
    initial_carry: Carry | None,
    seq_lengths: Array | None,
    *,
    time_major: bool,
    reverse: bool,
    keep_order: bool,
    unroll: int | bool | None,
) -> tuple[Carry, Array]:
    """:func:`unroll` with Flax's options; the carry in the containers given.

    With ``reverse`` and not ``keep_order``, the outputs come in processing order, as Flax's:
    each sequence's outputs reversed within its length, the padding (zeros) at the end.
    """
    carry, ys = named_unroll(
        "seq_lengths",
        cell,
        params,
        xs,
        initial_carry,
        lengths=seq_lengths,
        reverse=reverse,
        time_major=time_major,
        unroll=unroll,
    )
    if reverse and not keep_order:
        layout = sequence_layout(ys.shape, cell.feature_ndim, time_major)
        ys = from_time_major(processing_order(to_time_major(ys, layout), seq_lengths), layout)
    return _checks.like_carry(initial_carry, carry), ys


def processing_order(ys: Array, lengths: Array | None) -> Array:
    """``ys [T, *B, ...]``, aligned with the inputs, in the order a reversed scan read them:
    ``out[t] = ys[L - 1 - t]`` for ``t < L``, the rest (zeros past ``L``) in place."""
    if lengths is None:
        return ys[::-1]
    steps, lengths = ys.shape[0], jnp.asarray(lengths)
    t = jnp.arange(steps).reshape((steps,) + (1,) * (ys.ndim - 1))
    ones = (1,) * (ys.ndim - 1 - lengths.ndim)
    length = jnp.clip(lengths, 0, steps).reshape((1, *lengths.shape, *ones))  # as unroll's
    index = jnp.where(t < length, length - 1 - t, t)
    return jnp.take_along_axis(ys, jnp.broadcast_to(index, ys.shape), axis=0)


def step(cell: Cell, params: Params, x: Array, carry: Carry | None) -> tuple[Carry, Array]:
    """``cell.step`` from ``carry`` (zeros if None), for the modules' ``step``."""
    x = _checks.check_float_array("x", x)
    if carry is None:
        carry = cell.initial_carry(x.shape[:-1])
    return cell.step(params, carry, x)


def run_layers(
    stacked: Cell,
    layers: Sequence[Cell],
    params: tuple,
    xs: Array,
    initial_carry: Sequence[Carry | None] | None,
    seq_lengths: Array | None,
    *,
    time_major: bool,
    unroll: int | bool | None,
    between: Between,
) -> tuple[tuple, Array]:
    """``layers`` (the layers of ``stacked = gatedcells.stack(*layers)``) one after the other,
    the outputs of each but the last through ``between(k, ys)`` (dropout); ``initial_carry``
    one carry per layer (``None`` for zeros). Returns ``(carries, ys)``."""
    if initial_carry is None:
        initial_carry = (None,) * len(layers)
    check_carries(initial_carry, len(layers), "initial_carry")
    xs, layout = check_inputs(stacked, params, xs, time_major)
    _checks.check_unroll(unroll)
    valid = None
    if seq_lengths is not None:
        valid = valid_mask(seq_lengths, layout.steps, layout.batch_shape, "seq_lengths")
    xs, carries = to_time_major(xs, layout), []  # one transpose in, one out
    for k, layer in enumerate(layers):
        given = initial_carry[k]
        carry = start_carry(layer, given, layout)
        carry, xs = unroll_time_major(layer, params[k], carry, xs, valid=valid, unroll=unroll)
        carries.append(_checks.like_carry(given, carry))
        if k < len(layers) - 1:
            xs = between(k, xs)
    return tuple(carries), from_time_major(xs, layout)


def step_layers(
    stacked: Cell,
    layers: Sequence[Cell],
    params: tuple,
    x: Array,
    carry: Sequence[Carry] | None,
    between: Between,
) -> tuple[tuple, Array]:
    """One step through ``layers``, as :func:`run_layers` runs them: ``x [*B, I] -> (carry,
    y [*B, O])``, ``carry`` one per layer (zeros if None)."""
    x = _checks.check_float_array("x", x)
    if carry is None:
        carry = stacked.initial_carry(x.shape[:-1])
    check_carries(carry, len(layers), "carry")
    carries = []
    for k, layer in enumerate(layers):
        new, x = layer.step(params[k], carry[k], x)
        carries.append(new)
        if k < len(layers) - 1:
            x = between(k, x)
    return tuple(carries), x


def check_carries(carry: Any, n: int, name: str) -> None:
    """``carry`` must be a tuple (or list) of ``n`` carries, one per layer."""
    if not isinstance(carry, tuple | list) or len(carry) != n:
        raise ValueError(
            f"{name} must be a tuple of {n} carries (one per layer), got "
            + (f"{len(carry)}" if isinstance(carry, tuple | list) else type(carry).__name__)
        )


def no_step(layer: str) -> TypeError:
    """The refusal of a bidirectional layer's ``step``."""
    return TypeError(
        f"{layer}.step: a bidirectional layer cannot stream (its backward direction reads "
        "the sequence from its end); call it on whole sequences, or stream an RNN layer"
    )
