"""The plumbing both Flax converters share: a Flax cell's params as named gate blocks.

A layout maps each field of the gatedcells params to the Flax arrays that hold it, as
``(submodules, leaf)``: the field is the concatenation, on the last axis and in gate order, of
``params[submodule][leaf]`` over the submodules (one submodule: the array itself). A field
mapped to ``None`` has no place in the Flax cell: it reads as zeros and must be zero to write.
No equations here: the cells are :func:`gatedcells.lstm`, :func:`gatedcells.gru` and
:func:`gatedcells.simple_rnn`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .._cell import Cell
from ..cells import GRUParams, LSTMParams, SimpleRNNParams, gru, lstm, simple_rnn

Layout = Mapping[str, "tuple[tuple[str, ...], str] | None"]
KINDS = ("LSTMCell", "OptimizedLSTMCell", "GRUCell", "SimpleCell")
_PARAMS = {"LSTM": LSTMParams, "GRU": GRUParams, "Simple": SimpleRNNParams}


def family(kind: str) -> str:
    """``"LSTM"``, ``"GRU"`` or ``"Simple"``: the gatedcells cell of a Flax cell kind."""
    return "LSTM" if "LSTM" in kind else kind.removesuffix("Cell")


def cell_for(kind: str, hidden_size: int, activation: Callable = jnp.tanh) -> Cell:
    """The gatedcells cell computing what the Flax cell ``kind`` computes."""
    fam = family(kind)
    if fam == "LSTM":
        return lstm(hidden_size)
    if fam == "GRU":
        return gru(hidden_size)
    return simple_rnn(hidden_size, activation=activation)


def check_options(module: Any, kind: str) -> None:
    """Refuse the Flax options (the same attributes in linen and NNX) that no gatedcells cell
    has: other gate or candidate activations, a residual simple cell."""
    if kind in ("LSTMCell", "OptimizedLSTMCell", "GRUCell"):
        if module.gate_fn is not jax.nn.sigmoid or module.activation_fn is not jnp.tanh:
            raise ValueError(
                f"{kind} with a non-default gate_fn or activation_fn has no gatedcells "
                "equivalent (sigmoid gates and tanh are required)"
            )
    if kind == "SimpleCell" and getattr(module, "residual", False):
        raise ValueError("SimpleCell(residual=True) has no gatedcells equivalent")


def read(p: Mapping[str, Any], kind: str, layout: Layout, where: str) -> Any:
    """The gatedcells params of ``kind`` held by the Flax params ``p`` laid out as ``layout``.

    Raises:
      ValueError: ``p`` lacks an array of the layout (``where`` names the expected module).
    """
    fields = {}
    for field, spec in layout.items():
        if spec is None:
            continue
        names, leaf = spec
        missing = [n for n in names if not isinstance(p.get(n), Mapping) or leaf not in p[n]]
        if missing:
            raise ValueError(
                f"params hold no {leaf} for {', '.join(missing)} (they hold {sorted(p)}): "
                f"not the params of {where}"
            )
        parts = [jnp.asarray(p[n][leaf]) for n in names]
        fields[field] = parts[0] if len(parts) == 1 else jnp.concatenate(parts, axis=-1)
    for field, spec in layout.items():
        if spec is None:  # e.g. NNX's GRU: no b_hn, i.e. b_hn = 0
            fields[field] = jnp.zeros(fields["w_h"].shape[:1], fields["b"].dtype)
    return _PARAMS[family(kind)](**fields)


def write(params: Any, kind: str, layout: Layout, hidden_size: int, where: str) -> dict:
    """The Flax params (a nested dict) of ``kind`` laid out as ``layout`` holding ``params``.

    Raises:
      ValueError: ``params`` are not the params of ``cell_for(kind, hidden_size)``, or a field
        the layout has no place for is not zero (the Flax cell cannot hold it).
    """
    cell_for(kind, hidden_size).check_params(params)
    out: dict[str, dict[str, Any]] = {}
    for field, spec in layout.items():
        value = getattr(params, field)
        if spec is None:
            if np.any(np.asarray(value)):
                peak = float(np.max(np.abs(np.asarray(value, np.float64))))
                raise ValueError(
                    f"params.{field} is not zero (max |{field}| = {peak:.3g}) and {where} has "
                    f"no {field}: converting would change the model"
                )
            continue
        names, leaf = spec
        H = hidden_size
        for k, name in enumerate(names):
            block = value if len(names) == 1 else value[..., k * H : (k + 1) * H]
            out.setdefault(name, {})[leaf] = block
    return out


def unwrap(p: Any, names: set[str]) -> Any:
    """The cell's params inside an RNN's (``{"cell": {...}}``), or ``p`` itself."""
    if isinstance(p, Mapping) and not names & set(p) and isinstance(p.get("cell"), Mapping):
        return p["cell"]
    return p


def layout_names(layout: Layout) -> set[str]:
    """The submodules a layout reads."""
    return {n for spec in layout.values() if spec is not None for n in spec[0]}
