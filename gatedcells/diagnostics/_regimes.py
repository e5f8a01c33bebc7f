"""``regimes``: how often each gate is open or closed, and the lecture's extreme regimes."""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp

from .._cell import Array, Gates
from ..cells import GRUGates, LSTMGates
from ._trace import GateTrace

CANDIDATES = ("g", "n")
"""Fields of a gate NamedTuple that are candidates (block inputs, tanh), not gates."""

REGIMES: dict[type, dict[str, dict[str, str]]] = {
    LSTMGates: {  # the lecture's extreme regimes
        "read_and_store": {"i": "open", "f": "open", "o": "closed"},
        "carry_and_release": {"i": "closed", "f": "open", "o": "open"},
        "no_read_write": {"i": "closed", "o": "closed"},
        "simple_rnn": {"i": "open", "f": "closed", "o": "open"},
    },
    GRUGates: {  # read off the GRU's equations, h' = (1 - z) n + z h
        "keep": {"z": "open"},
        "simple_rnn": {"r": "open", "z": "closed"},
        "reset": {"r": "closed", "z": "closed"},
    },
}
"""The named regimes of a gate type, each a state (``"open"`` or ``"closed"``) for some gates.

For :class:`gatedcells.LSTMGates` (every LSTM variant), the lecture's four:

- ``read_and_store``: only the input and forget gates open: the LSTM reads its input into
  the memory and keeps it, showing nothing.
- ``carry_and_release``: only the forget and output gates open: it carries the memory
  through time and releases it to the next layer.
- ``no_read_write``: input and output gates closed: it neither reads nor writes (the memory
  is kept or erased, as the forget gate says, unseen).
- ``simple_rnn``: input and output gates open, forget gate closed: memory and hidden state
  are the same thing, ``c' = g``, and with ``h = o*c`` the LSTM computes a simple RNN.

For :class:`gatedcells.GRUGates` (every GRU variant), read off :math:`h' = (1-z) n + z h`:
``keep`` (``z`` open: ``h' = h``), ``simple_rnn`` (``z`` closed, ``r`` open:
``h' = tanh(x W + h U + b)``) and ``reset`` (both closed: ``h' = n`` computed from the input
alone).

Other gate types have none: the same letters can mean the opposite (the ``z`` of minGRU and
of the mutants MUT1-3 is the share of the candidate taken, not of the state kept).
"""


class Regimes(NamedTuple):
    """Per unit, how often each gate is open or closed, and each named regime.

    Every value is a share of the valid steps of every sequence, per unit: ``[H]`` floats in
    ``[0, 1]``.

    Attributes:
      open: gate letter -> share of steps with the gate above ``open_above``.
      closed: gate letter -> share of steps with the gate below ``closed_below``.
      regimes: regime name (:data:`REGIMES`) -> share of steps in that regime; empty for a
        gate type without named regimes.
    """

    open: dict[str, Array]
    closed: dict[str, Array]
    regimes: dict[str, Array]


def regimes(
    gates: GateTrace | Gates,
    valid: Array | None = None,
    *,
    open_above: float = 0.9,
    closed_below: float = 0.1,
) -> Regimes:
    """Per unit, the share of steps each gate is open or closed, and in each named regime.

    A gate is open above ``open_above`` (0.9) and closed below ``closed_below`` (0.1). The
    candidates ``g`` and ``n`` are block inputs, not gates, and are left out. The named
    regimes are those :data:`REGIMES` gives the gates' type (the lecture's four for
    :class:`gatedcells.LSTMGates`); a regime counts a step when every gate it names is in
    the state it says.

    Args:
      gates: a :class:`GateTrace` (its ``valid`` is used), or one cell's gate NamedTuple
        with leaves ``[*B, T, H]`` (for a stack, one layer's: ``trace.gates[k]``).
      valid: boolean ``[*B, T]``: the steps to count (default: all; not allowed with a
        :class:`GateTrace`, which has its own).
      open_above: the threshold of an open gate, in ``(0, 1)``.
      closed_below: the threshold of a closed gate, in ``(0, open_above)``.

    Returns:
      A :class:`Regimes` ``(open, closed, regimes)`` of ``[H]`` shares.

    Raises:
      ValueError: for gates that are not one cell's gate NamedTuple (a stack's tuple), have
        no gate (a simple RNN), leaves of different shapes or fewer than two axes, a
        ``valid`` of the wrong shape, or thresholds out of order.
      TypeError: for a ``valid`` that is not boolean.

    Examples:
      >>> import jax, jax.numpy as jnp, gatedcells as gc
      >>> from gatedcells import diagnostics as gd
      >>> cell = gc.lstm(2, fixed_gates={"i": 1.0, "f": 0.0, "o": 1.0})
      >>> params = cell.init(jax.random.key(0), 3)
      >>> summary = gd.regimes(gd.gate_trace(cell, params, jnp.ones((4, 10, 3))))
      >>> summary.regimes["simple_rnn"].tolist(), summary.closed["f"].tolist()
      ([1.0, 1.0], [1.0, 1.0])
      >>> sorted(summary.regimes)
      ['carry_and_release', 'no_read_write', 'read_and_store', 'simple_rnn']
    """
    if isinstance(gates, GateTrace):
        if valid is not None:
            raise ValueError("valid must be None when gates is a GateTrace (it has its own)")
        gates, valid = gates.gates, gates.valid
    if not 0 < closed_below < open_above < 1:
        raise ValueError(
            "thresholds must satisfy 0 < closed_below < open_above < 1, got "
            f"closed_below={closed_below}, open_above={open_above}"
        )
    named = _check_gates(gates)
    shape = next(iter(named.values())).shape
    if valid is None:
        valid = jnp.ones(shape[:-1], bool)
    if not hasattr(valid, "dtype") or valid.dtype != jnp.bool_:
        raise TypeError(f"valid must be a boolean array, got {getattr(valid, 'dtype', valid)}")
    if tuple(valid.shape) != tuple(shape[:-1]):
        raise ValueError(
            f"valid must have shape [*B, T]={tuple(shape[:-1])} (the gates' leading axes), "
            f"got shape {tuple(valid.shape)}"
        )
    weight = valid[..., None].astype(jnp.float32)
    axes = tuple(range(len(shape) - 1))
    count = jnp.sum(weight, axis=axes)

    def share(mask: Array) -> Array:
        return jnp.sum(mask.astype(jnp.float32) * weight, axis=axes) / count

    states = {
        name: {"open": g > open_above, "closed": g < closed_below} for name, g in named.items()
    }
    found = {}
    for regime, spec in REGIMES.get(type(gates), {}).items():
        masks = [states[name][state] for name, state in spec.items()]
        found[regime] = share(jnp.all(jnp.stack(masks), axis=0))
    return Regimes(
        open={name: share(s["open"]) for name, s in states.items()},
        closed={name: share(s["closed"]) for name, s in states.items()},
        regimes=found,
    )


def _check_gates(gates: Gates) -> dict[str, Array]:
    fields = getattr(gates, "_fields", None)
    if fields is None:
        raise ValueError(
            "gates must be one cell's gate NamedTuple (e.g. trace.gates, or trace.gates[k] "
            f"for layer k of a stack), got {type(gates).__name__}"
        )
    named = {name: getattr(gates, name) for name in fields if name not in CANDIDATES}
    if not named:
        raise ValueError(f"{type(gates).__name__} has no gate to summarise (fields {fields})")
    shapes = {tuple(jnp.shape(g)) for g in named.values()}
    if len(shapes) != 1 or len(next(iter(shapes))) < 2:
        raise ValueError(
            "gates must have leaves of one shape [*B, T, H] (at least [T, H]), got shapes "
            + ", ".join(f"{n}: {tuple(jnp.shape(g))}" for n, g in named.items())
        )
    return named
