"""Flax linen <-> gatedcells: ``LSTMCell``, ``OptimizedLSTMCell``, ``GRUCell``, ``SimpleCell``
and an ``nn.RNN`` of one. Duck-typed on the module's class name: flax is never imported."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._cell import Cell
from . import _layout

_LSTM = {
    "w_x": (("ii", "if", "ig", "io"), "kernel"),
    "w_h": (("hi", "hf", "hg", "ho"), "kernel"),
    "b": (("hi", "hf", "hg", "ho"), "bias"),
}
LAYOUTS: dict[str, _layout.Layout] = {
    "LSTMCell": _LSTM,
    "OptimizedLSTMCell": _LSTM,  # linen's optimized cell keeps the per-gate params
    "GRUCell": {
        "w_x": (("ir", "iz", "in"), "kernel"),
        "w_h": (("hr", "hz", "hn"), "kernel"),
        "b": (("ir", "iz", "in"), "bias"),
        "b_hn": (("hn",), "bias"),
    },
    "SimpleCell": {"w_x": (("i",), "kernel"), "w_h": (("h",), "kernel"), "b": (("i",), "bias")},
}


def _cell_of(module: Any) -> tuple[Any, str, bool]:
    """``(cell module, kind, inside an nn.RNN)``."""
    in_rnn = type(module).__name__ == "RNN" and hasattr(module, "cell")
    cell = module.cell if in_rnn else module
    return cell, type(cell).__name__, in_rnn


def from_linen(module: Any, variables: Any) -> tuple[Cell, Any]:
    """See :func:`gatedcells.interop.from_flax`."""
    if not isinstance(variables, Mapping):
        raise TypeError(
            f"params must be the module's variables (a mapping), got {type(variables).__name__}"
        )
    module, kind, _ = _cell_of(module)
    if kind not in LAYOUTS:
        raise TypeError(
            "from_flax takes flax.linen LSTMCell, OptimizedLSTMCell, GRUCell or SimpleCell (or "
            f"an nn.RNN of one), or a flax.nnx one (or its nnx.state), got {kind}"
        )
    _layout.check_options(module, kind)
    layout = LAYOUTS[kind]
    p = variables.get("params", variables)
    p = _layout.unwrap(p, _layout.layout_names(layout))  # an nn.RNN's {"cell": {...}}
    params = _layout.read(p, kind, layout, f"a flax.linen.{kind}")
    cell = _layout.cell_for(kind, module.features, module.activation_fn)
    cell.check_params(params)
    return cell, params


def to_linen(params: Any, module: Any) -> dict:
    """See :func:`gatedcells.interop.to_flax`."""
    module, kind, in_rnn = _cell_of(module)
    if kind not in LAYOUTS:
        raise TypeError(f"to_flax takes the module kinds of from_flax, got {kind}")
    _layout.check_options(module, kind)
    out = _layout.write(params, kind, LAYOUTS[kind], module.features, f"flax.linen.{kind}")
    return {"params": {"cell": out} if in_rnn else out}
