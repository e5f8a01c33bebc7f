"""Flax NNX <-> gatedcells: ``nnx.LSTMCell``, ``nnx.OptimizedLSTMCell``, ``nnx.GRUCell``,
``nnx.SimpleCell``, an ``nnx.RNN`` of one, or their ``nnx.state``.

flax is imported only to read or build a module: an object that is an NNX module or state
means ``flax.nnx`` is already imported, so :func:`is_nnx` looks in ``sys.modules``.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp
import numpy as np

from .._cell import Cell
from . import _layout

_LSTM_GATES = ("hi", "hf", "hg", "ho")
LAYOUTS: dict[str, _layout.Layout] = {
    # per-gate Linear layers; "if" is a Python keyword, hence NNX's "if_"
    "LSTMCell": {
        "w_x": (("ii", "if_", "ig", "io"), "kernel"),
        "w_h": (_LSTM_GATES, "kernel"),
        "b": (_LSTM_GATES, "bias"),
    },
    # the same arrays fused, gate blocks (i, f, g, o) on the last axis
    "OptimizedLSTMCell": {
        "w_x": (("dense_i",), "kernel"),
        "w_h": (("dense_h",), "kernel"),
        "b": (("dense_h",), "bias"),
    },
    # (r, z, n) blocks; the bias is the input layer's, and there is no b_hn (it is 0)
    "GRUCell": {
        "w_x": (("dense_i",), "kernel"),
        "w_h": (("dense_h",), "kernel"),
        "b": (("dense_i",), "bias"),
        "b_hn": None,
    },
    "SimpleCell": {
        "w_x": (("dense_i",), "kernel"),
        "w_h": (("dense_h",), "kernel"),
        "b": (("dense_i",), "bias"),
    },
}
_NAMES = set().union(*(_layout.layout_names(layout) for layout in LAYOUTS.values()))


def is_nnx(obj: Any) -> bool:
    """Whether ``obj`` is a Flax NNX module, module class or state."""
    nnx = sys.modules.get("flax.nnx")
    if nnx is None:
        return False
    if isinstance(obj, type):
        return issubclass(obj, nnx.Module)
    return isinstance(obj, nnx.Module | nnx.State)


def _kind(module: Any) -> str:
    from flax import nnx

    cls = module if isinstance(module, type) else type(module)
    for kind in _layout.KINDS:
        if issubclass(cls, getattr(nnx, kind)):
            return kind
    raise TypeError(
        "from_flax/to_flax take flax.nnx LSTMCell, OptimizedLSTMCell, GRUCell or SimpleCell "
        f"(or an nnx.RNN of one), got {cls.__name__}"
    )


def _plain(tree: Any) -> Any:
    """Nested dicts of arrays from an ``nnx.State`` or a mapping of ``nnx.Variable``s."""
    if isinstance(tree, Mapping):
        return {k: _plain(v) for k, v in tree.items()}
    return tree.get_value() if hasattr(tree, "get_value") else tree


def _infer_kind(p: Mapping[str, Any]) -> str:
    """The NNX cell whose state ``p`` is, read from its paths and shapes."""
    if {"ii", "if_"} <= set(p):
        return "LSTMCell"
    h = p.get("dense_h")
    if isinstance(h, Mapping) and "kernel" in h and isinstance(p.get("dense_i"), Mapping):
        if "bias" in h:
            return "OptimizedLSTMCell"
        H, GH = np.shape(h["kernel"])
        if GH in (H, 3 * H):
            return "GRUCell" if GH == 3 * H else "SimpleCell"
    raise TypeError(
        f"from_flax cannot tell which flax.nnx cell a state holding {sorted(p)} belongs to: "
        "pass the module, from_flax(cell) or from_flax(cell, state)"
    )


def _check_in_features(params: Any, module: Any, kind: str) -> None:
    I = np.shape(params.w_x)[0]
    if I != module.in_features:
        raise ValueError(
            f"params have input size {I} (params.w_x {tuple(np.shape(params.w_x))}), but the "
            f"flax.nnx.{kind} has in_features={module.in_features}"
        )


def from_nnx(module: Any, state: Any = None) -> tuple[Cell, Any]:
    """See :func:`gatedcells.interop.from_flax`."""
    if isinstance(module, Mapping):  # a state alone: the cell's default options
        if state is not None:
            raise TypeError("from_flax(state) takes no second argument: from_flax(cell, state)")
        module, state, kind, H, activation = None, module, None, None, jnp.tanh
    else:
        from flax import nnx

        module = module.cell if isinstance(module, nnx.RNN) else module
        kind = _kind(module)
        _layout.check_options(module, kind)
        H, activation = module.hidden_features, module.activation_fn
        state = nnx.state(module, nnx.Param) if state is None else state
    if not isinstance(state, Mapping):
        raise TypeError(f"state must be an nnx.State or a mapping, got {type(state).__name__}")
    p = _layout.unwrap(_plain(state), _NAMES)  # an nnx.RNN's {"cell": {...}, "rngs": ...}
    kind = kind or _infer_kind(p)
    params = _layout.read(p, kind, LAYOUTS[kind], f"a flax.nnx.{kind}")
    if module is not None:
        _check_in_features(params, module, kind)
    cell = _layout.cell_for(kind, H or np.shape(params.w_h)[0], activation)
    cell.check_params(params)
    return cell, params


def to_nnx(params: Any, target: Any) -> Any:
    """See :func:`gatedcells.interop.to_flax`."""
    from flax import nnx

    if isinstance(target, type):
        cls = target
        _kind(cls)  # refuse other classes before building one
        if getattr(params, "w_x", None) is None or getattr(params, "w_h", None) is None:
            raise TypeError(f"params must be gatedcells params, got {type(params).__name__}")
        I, H = np.shape(params.w_x)[0], np.shape(params.w_h)[0]
        dtype = jnp.asarray(params.w_x).dtype
        # built abstract (no initialisation runs), then filled
        target = nnx.eval_shape(lambda: cls(I, H, param_dtype=dtype, rngs=nnx.Rngs(0)))
    cell = target.cell if isinstance(target, nnx.RNN) else target
    kind = _kind(cell)
    _layout.check_options(cell, kind)
    out = _layout.write(params, kind, LAYOUTS[kind], cell.hidden_features, f"flax.nnx.{kind}")
    _check_in_features(params, cell, kind)
    state = nnx.state(cell, nnx.Param)
    current = nnx.to_pure_dict(state)
    out = {
        name: {leaf: jnp.asarray(v, current[name][leaf].dtype) for leaf, v in arrays.items()}
        for name, arrays in out.items()
    }
    nnx.replace_by_pure_dict(state, out)
    nnx.update(cell, state)
    return target
