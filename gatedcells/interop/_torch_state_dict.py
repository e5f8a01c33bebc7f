"""A PyTorch recurrent ``state_dict`` -> gatedcells, with numpy alone: the architecture read
from the keys (layers, directions, projection), the shapes checked against the mode, and
every tensor accounted for."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .._cell import Cell
from .._checks import check_flag, check_positive_int
from ..cells import GRUParams, LSTMParams, LSTMPParams, SimpleRNNParams, gru, lstm, simple_rnn
from ..combinators import bidirectional as _bidirectional
from ..combinators import stack

_TORCH_MODES = ("LSTM", "GRU", "RNN_TANH", "RNN_RELU")
_GATES = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1}
_GUESS = {4: "an LSTM", 3: "a GRU", 1: "an RNN"}
_LAYER_KEY = re.compile(r"weight_ih_l(\d+)(_reverse)?")


def _torch_cell(
    mode: str,
    hidden_size: int,
    *,
    num_layers: int = 1,
    bidirectional: bool = False,
    proj_size: int = 0,
) -> Cell:
    """The gatedcells cell with the architecture of a PyTorch module of ``mode``."""
    if mode not in _TORCH_MODES:
        raise ValueError(f"mode must be one of {_TORCH_MODES}, got {mode!r}")
    if proj_size and mode != "LSTM":
        raise ValueError(f"proj_size applies to mode='LSTM' only, got mode={mode!r}")

    def one():
        if mode == "LSTM":
            return lstm(hidden_size, proj_size=proj_size or None)
        if mode == "GRU":
            return gru(hidden_size)
        return simple_rnn(hidden_size, activation=jnp.tanh if mode == "RNN_TANH" else jax.nn.relu)

    layers = [_bidirectional(one()) if bidirectional else one() for _ in range(num_layers)]
    return layers[0] if num_layers == 1 else stack(*layers)


def from_torch_state_dict(
    state_dict: Mapping[str, Any],
    *,
    mode: str,
    num_layers: int | None = None,
    bidirectional: bool | None = None,
) -> tuple[Cell, Any]:
    """Convert a PyTorch recurrent ``state_dict`` (tensors or numpy arrays) to gatedcells.

    Works without torch when the values are numpy arrays (e.g. loaded from an ``.npz``). The
    architecture is read from the keys: the layers from ``weight_ih_l0``, ``weight_ih_l1``,
    ..., bidirectional from the ``_reverse`` keys, ``proj_size`` from ``weight_hr_l0``. Per
    layer and direction: ``w_x [I, G*H] = weight_ih.T``, ``w_h [H, G*H] = weight_hh.T`` (``[P,
    4H]`` with ``proj_size=P``), ``w_r [H, P] = weight_hr.T``, and the biases as in the table
    of :mod:`gatedcells.interop` (``G`` = 4 for an LSTM, 3 for a GRU, 1 for a simple RNN).
    Every key must be used and every shape must be that of ``mode``: nothing is dropped.

    Args:
      state_dict: ``module.state_dict()`` of an ``nn.RNN/LSTM/GRU`` (keys ``weight_ih_l0``,
        ...; an LSTM with ``proj_size`` also has ``weight_hr_l0``, ...) or of an
        ``nn.RNNCell/LSTMCell/GRUCell`` (keys ``weight_ih``, ...).
      mode: ``"LSTM"``, ``"GRU"``, ``"RNN_TANH"`` or ``"RNN_RELU"`` (PyTorch's ``module.mode``;
        the shapes cannot tell ``RNN_TANH`` from ``RNN_RELU``, so it is not inferred).
      num_layers: PyTorch's ``num_layers``; ``None`` (the default) reads it from the keys.
      bidirectional: PyTorch's ``bidirectional``; ``None`` (the default) reads it from the
        keys.

    Returns:
      ``(cell, params)``: a cell of the same architecture (a :func:`gatedcells.stack` of
      :func:`gatedcells.bidirectional` layers where PyTorch has them) and its params (one
      params per layer in a tuple when ``num_layers > 1``, a ``(forward, backward)`` pair per
      bidirectional layer).

    Raises:
      TypeError: ``state_dict`` is not a mapping, or ``bidirectional`` is not a bool.
      ValueError: an unknown ``mode``; ``num_layers`` or ``bidirectional`` given and not
        what the keys say; a weight missing; a shape that is not ``mode``'s (e.g. a GRU's
        ``3H`` rows for ``mode="LSTM"``); keys the model does not use.

    Examples:
      .. code-block:: python

         arrays = dict(np.load("lstm.npz"))     # a torch nn.LSTM(3, 8, num_layers=2) saved
         cell, params = interop.from_torch_state_dict(arrays, mode="LSTM")  # 2 layers: keys
         carry, ys = gc.unroll(cell, params, xs)   # xs [B, T, 3] -> ys [B, T, 8]
    """
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"state_dict must be a mapping of names to arrays, got {state_dict!r}")
    if mode not in _TORCH_MODES:
        raise ValueError(f"mode must be one of {_TORCH_MODES}, got {mode!r}")
    if num_layers is not None:
        num_layers = check_positive_int("num_layers", num_layers)
    if bidirectional is not None:
        check_flag("bidirectional", bidirectional)
        bidirectional = bool(bidirectional)
    arrays = {k: _to_numpy(v) for k, v in state_dict.items()}
    is_cell = "weight_ih" in arrays
    if is_cell:
        _given_matches("num_layers", num_layers, 1, "a cell's: weight_ih")
        _given_matches("bidirectional", bidirectional, False, "a cell's: weight_ih")
        layers = [[""]]
    else:
        layers = _layers(arrays, num_layers, bidirectional)
    sfxs = [s for layer in layers for s in layer]
    proj = f"weight_hr{sfxs[0]}" in arrays
    needed = ("ih", "hh", "hr") if proj else ("ih", "hh")
    _require(arrays, [f"weight_{w}{s}" for s in sfxs for w in needed])
    used = {f"{w}{s}" for s in sfxs for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
    unused = sorted(set(arrays) - used - {f"weight_hr{s}" for s in sfxs if proj}, key=str)
    if unused:
        model = f"mode={mode!r}, num_layers={len(layers)}"
        model += ", bidirectional=True model" if len(layers[0]) == 2 else " model"
        raise ValueError(
            f"state_dict holds keys this {f'mode={mode!r} cell' if is_cell else model} does not "
            f"use: {', '.join(map(repr, unused))}"
        )
    hidden, proj_size = _check_shapes(arrays, layers, mode, proj)
    params = [tuple(_layer_from_torch(arrays, s, mode) for s in layer) for layer in layers]
    params = [p if len(p) == 2 else p[0] for p in params]
    bidi = len(layers[0]) == 2
    cell = _torch_cell(
        mode, hidden, num_layers=len(layers), bidirectional=bidi, proj_size=proj_size
    )
    return cell, params[0] if len(params) == 1 else tuple(params)


def _layers(arrays: Mapping[str, Any], num_layers: int | None, bidirectional: bool | None):
    """The key suffixes of each layer (``[["_l0", "_l0_reverse"], ...]``) the keys describe,
    after checking the options the caller gave against them."""
    found = [m for k in arrays if isinstance(k, str) and (m := _LAYER_KEY.fullmatch(k))]
    if not found:
        _require(arrays, ["weight_ih_l0", "weight_hh_l0"])
    n = max(int(m[1]) for m in found) + 1
    reverse = sorted((int(m[1]), m[0]) for m in found if m[2])
    bidi = bool(reverse)
    evidence = f"they include {reverse[0][1]!r}" if bidi else "no 'weight_ih_l0_reverse'"
    _given_matches("bidirectional", bidirectional, bidi, evidence)
    said = "weight_ih_l0 only" if n == 1 else f"weight_ih_l0 to weight_ih_l{n - 1}"
    layers = [[f"_l{k}", f"_l{k}_reverse"][: 1 + bidi] for k in range(num_layers or n)]
    if num_layers is not None and num_layers < n:
        _given_matches("num_layers", num_layers, n, said)
    if num_layers is not None and num_layers > n:
        missing = [f"weight_{w}{s}" for layer in layers[n:] for s in layer for w in ("ih", "hh")]
        missing = [name for name in missing if name not in arrays]
        raise ValueError(
            f"state_dict has no {', '.join(map(repr, missing))}: num_layers={num_layers} was "
            f"given, but state_dict's keys say num_layers={n} ({said})"
        )
    return layers


def _given_matches(name: str, given: Any, said: Any, evidence: str) -> None:
    """Refuse an option the caller gave that is not what the keys say."""
    if given is not None and given != said:
        raise ValueError(
            f"{name}={given} was given, but state_dict's keys say {name}={said} ({evidence})"
        )


def _check_shapes(arrays: dict, layers: list, mode: str, proj: bool) -> tuple[int, int]:
    """Check every array's shape against ``mode``; return ``(hidden_size, proj_size)``."""
    for s in (s for layer in layers for s in layer):
        for name in ("weight_ih", "weight_hh", "weight_hr", "bias_ih", "bias_hh"):
            key, ndim = f"{name}{s}", 2 if name.startswith("weight") else 1
            if key in arrays and arrays[key].ndim != ndim:
                raise ValueError(
                    f"state_dict's {key} must be {ndim}-D, got shape {arrays[key].shape}"
                )
    first = layers[0][0]
    h_key = f"weight_hr{first}" if proj else f"weight_hh{first}"
    hidden = arrays[h_key].shape[1]  # weight_hr [P, H]; else weight_hh [G*H, H]
    proj_size = arrays[h_key].shape[0] if proj else 0
    out, rows = proj_size or hidden, _GATES[mode] * hidden
    for k, layer in enumerate(layers):
        inputs = arrays[f"weight_ih{first}"].shape[1] if k == 0 else out * len(layer)
        for s in layer:
            expected = {
                f"weight_ih{s}": (rows, inputs),
                f"weight_hh{s}": (rows, out),
                f"weight_hr{s}": (proj_size, hidden),
                f"bias_ih{s}": (rows,),
                f"bias_hh{s}": (rows,),
            }
            for key, shape in expected.items():
                got = arrays[key].shape if key in arrays else shape
                if key.startswith("weight_ih") and got[0] != rows:
                    g = got[0] // hidden if got[0] % hidden == 0 else 0
                    which = f", which is {g} x {hidden} ({_GUESS[g]}?)" if g in _GUESS else ""
                    raise ValueError(
                        f"state_dict's {key} has {got[0]} rows{which}, but mode={mode!r} needs "
                        f"{_GATES[mode]} x H = {rows} (H = {hidden} from {h_key})"
                    )
                if got != shape:
                    raise ValueError(
                        f"state_dict's {key} has shape {got}, but a mode={mode!r} layer with "
                        f"H = {hidden} needs {shape}"
                    )
    return hidden, proj_size


def _require(arrays: Mapping[str, Any], names: list[str]) -> None:
    missing = [n for n in names if n not in arrays]
    if missing:
        raise ValueError(
            f"state_dict has no {', '.join(map(repr, missing))} (it holds "
            f"{sorted(arrays, key=str)}); check mode, num_layers and bidirectional"
        )


def _to_numpy(value) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _layer_from_torch(arrays: dict, sfx: str, mode: str):
    w_ih, w_hh = arrays[f"weight_ih{sfx}"], arrays[f"weight_hh{sfx}"]
    hidden = w_ih.shape[0] // _GATES[mode]
    zeros = np.zeros(w_ih.shape[0], w_ih.dtype)
    b_ih = arrays.get(f"bias_ih{sfx}", zeros)
    b_hh = arrays.get(f"bias_hh{sfx}", zeros)
    w_x, w_h = jnp.asarray(w_ih.T), jnp.asarray(w_hh.T)
    if mode == "GRU":
        b = b_ih + np.concatenate([b_hh[: 2 * hidden], np.zeros(hidden, b_hh.dtype)])
        return GRUParams(w_x, w_h, jnp.asarray(b), jnp.asarray(b_hh[2 * hidden :]))
    if mode == "LSTM":
        b, w_hr = jnp.asarray(b_ih + b_hh), arrays.get(f"weight_hr{sfx}")
        if w_hr is None:
            return LSTMParams(w_x, w_h, b)
        return LSTMPParams(w_x, w_h, b, jnp.asarray(w_hr.T))
    return SimpleRNNParams(w_x, w_h, jnp.asarray(b_ih + b_hh))
