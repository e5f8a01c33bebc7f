"""PyTorch <-> gatedcells: ``nn.RNN/LSTM/GRU`` (any ``num_layers``, ``bidirectional``,
``proj_size``) and ``nn.RNNCell/LSTMCell/GRUCell``. torch is imported only inside the functions
that take a torch module; :func:`from_torch_state_dict` works on numpy arrays without it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .._cell import Cell
from ..cells import GRUParams, LSTMParams, LSTMPParams, SimpleRNNParams, gru, lstm, simple_rnn
from ..combinators import bidirectional as _bidirectional
from ..combinators import stack

_TORCH_MODES = ("LSTM", "GRU", "RNN_TANH", "RNN_RELU")


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
    num_layers: int = 1,
    bidirectional: bool = False,
) -> tuple[Cell, Any]:
    """Convert a PyTorch recurrent ``state_dict`` (tensors or numpy arrays) to gatedcells.

    Works without torch when the values are numpy arrays (e.g. loaded from an ``.npz``). Per
    layer and direction: ``w_x [I, G*H] = weight_ih.T``, ``w_h [H, G*H] = weight_hh.T`` (``[P,
    4H]`` with ``proj_size=P``), ``w_r [H, P] = weight_hr.T``, and the biases as in the table
    of :mod:`gatedcells.interop` (``G`` = 4 for an LSTM, 3 for a GRU, 1 for a simple RNN).

    Args:
      state_dict: ``module.state_dict()`` of an ``nn.RNN/LSTM/GRU`` (keys ``weight_ih_l0``,
        ...; an LSTM with ``proj_size`` also has ``weight_hr_l0``, ...) or of an
        ``nn.RNNCell/LSTMCell/GRUCell`` (keys ``weight_ih``, ...).
      mode: ``"LSTM"``, ``"GRU"``, ``"RNN_TANH"`` or ``"RNN_RELU"`` (PyTorch's ``module.mode``).
      num_layers: PyTorch's ``num_layers``.
      bidirectional: PyTorch's ``bidirectional``.

    Returns:
      ``(cell, params)``: a cell of the same architecture (a :func:`gatedcells.stack` of
      :func:`gatedcells.bidirectional` layers where PyTorch has them) and its params (one
      params per layer in a tuple when ``num_layers > 1``, a ``(forward, backward)`` pair per
      bidirectional layer).

    Raises:
      TypeError: ``state_dict`` is not a mapping.
      ValueError: an unknown ``mode``, or a weight the options require is missing.

    Examples:
      .. code-block:: python

         arrays = dict(np.load("lstm.npz"))     # a torch nn.LSTM(3, 8, num_layers=2) saved
         cell, params = interop.from_torch_state_dict(arrays, mode="LSTM", num_layers=2)
         carry, ys = gc.unroll(cell, params, xs)   # xs [B, T, 3] -> ys [B, T, 8]
    """
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"state_dict must be a mapping of names to arrays, got {state_dict!r}")
    if mode not in _TORCH_MODES:
        raise ValueError(f"mode must be one of {_TORCH_MODES}, got {mode!r}")
    arrays = {k: _to_numpy(v) for k, v in state_dict.items()}
    is_cell = "weight_ih" in arrays
    _require(arrays, ["weight_ih", "weight_hh"] if is_cell else ["weight_ih_l0", "weight_hh_l0"])
    hidden = arrays["weight_hh" if is_cell else "weight_hh_l0"].shape[1]
    proj_size = 0
    if "weight_hr_l0" in arrays:  # weight_hr [P, H]; weight_hh [4H, P]
        proj_size, hidden = arrays["weight_hr_l0"].shape
    if is_cell:
        return _torch_cell(mode, hidden), _layer_from_torch(arrays, "", mode)
    layers = []
    for k in range(num_layers):
        sfxs = [f"_l{k}", f"_l{k}_reverse"] if bidirectional else [f"_l{k}"]
        _require(arrays, [f"weight_{w}{sfx}" for sfx in sfxs for w in ("ih", "hh")])
        directions = tuple(_layer_from_torch(arrays, s, mode) for s in sfxs)
        layers.append(directions if bidirectional else directions[0])
    params = layers[0] if num_layers == 1 else tuple(layers)
    cell = _torch_cell(
        mode, hidden, num_layers=num_layers, bidirectional=bidirectional, proj_size=proj_size
    )
    return cell, params


def from_torch(module) -> tuple[Cell, Any]:
    """Convert a PyTorch ``nn.RNN/LSTM/GRU`` or ``nn.RNNCell/LSTMCell/GRUCell`` to gatedcells.

    Inter-layer ``dropout`` of the module is a training-time option and is not part of the
    params; ``batch_first`` is a layout option (see ``unroll(time_major=...)``). An LSTM with
    ``proj_size=P`` becomes ``gatedcells.lstm(H, proj_size=P)`` layers.

    Args:
      module: the torch module; its ``state_dict()`` is read (see
        :func:`from_torch_state_dict` for the layout).

    Returns:
      ``(cell, params)`` that compute what ``module`` computes (to float tolerance): for
      inputs ``[B, T, I]`` (``batch_first=True``; ``time_major=True`` for PyTorch's default
      ``[T, B, I]``), ``gc.unroll(cell, params, xs)`` gives PyTorch's outputs and final carry.

    Raises:
      TypeError: ``module`` is not one of the six torch recurrent modules.

    Examples:
      .. code-block:: python

         module = torch.nn.LSTM(3, 8, num_layers=2, batch_first=True)
         cell, params = interop.from_torch(module)
         carry, ys = gc.unroll(cell, params, xs)   # xs [B, T, 3] -> ys [B, T, 8]
    """
    import torch

    if not isinstance(module, torch.nn.Module):
        raise TypeError(
            "from_torch takes torch.nn.RNN/LSTM/GRU or RNNCell/LSTMCell/GRUCell, got "
            f"{type(module).__name__}"
        )
    state = module.state_dict()
    if isinstance(module, torch.nn.RNNBase):
        return from_torch_state_dict(
            state,
            mode=module.mode,
            num_layers=module.num_layers,
            bidirectional=module.bidirectional,
        )
    return from_torch_state_dict(state, mode=_torch_cell_mode(module))


def to_torch(params: Any, module):
    """Copy gatedcells ``params`` into a PyTorch recurrent ``module`` (in place); return it.

    The module fixes the architecture: ``params`` must have the structure and shapes of
    ``from_torch(module)[1]`` (a tuple per layer, a pair per bidirectional layer). Values are
    cast to the module's dtype. The summed bias ``b`` goes to ``bias_ih`` and ``bias_hh``
    holds zeros (and a GRU's ``b_hn`` in its candidate block).

    Round trip: ``from_torch(to_torch(params, module))[1]`` equals ``params`` exactly (same
    dtype). ``to_torch(from_torch(module)[1], module)`` computes what ``module`` computed but
    does not hold the same tensors: ``bias_ih``/``bias_hh`` come back as their sum and zeros.

    Args:
      params: gatedcells params, e.g. ``cell.init(key, I)`` of the cell ``from_torch(module)``
        returns.
      module: an ``nn.RNN/LSTM/GRU`` or ``nn.RNNCell/LSTMCell/GRUCell``; it is modified.

    Returns:
      ``module``, now holding ``params``.

    Raises:
      ValueError: params of another architecture or size, or non-zero biases for a module
        built with ``bias=False``.

    Examples:
      .. code-block:: python

         params = gc.gru(8).init(jax.random.key(0), 3)
         module = interop.to_torch(params, torch.nn.GRU(3, 8, batch_first=True))
    """
    import torch

    if isinstance(module, torch.nn.RNNBase):
        mode, n, bidi = module.mode, module.num_layers, module.bidirectional
        cell = _torch_cell(
            mode, module.hidden_size, num_layers=n, bidirectional=bidi,
            proj_size=getattr(module, "proj_size", 0),
        )  # fmt: skip
        cell.check_params(params)
        layers = (params,) if n == 1 else tuple(params)
        arrays = {}
        for k, layer in enumerate(layers):
            directions = (
                zip((f"_l{k}", f"_l{k}_reverse"), layer, strict=True)
                if bidi
                else [(f"_l{k}", layer)]
            )
            for sfx, p in directions:
                arrays.update(_layer_to_torch(p, sfx, mode, module.bias))
    else:
        mode = _torch_cell_mode(module)
        _torch_cell(mode, module.hidden_size).check_params(params)
        arrays = _layer_to_torch(params, "", mode, module.bias)
    current = module.state_dict()
    new = {k: torch.tensor(np.array(v), dtype=current[k].dtype) for k, v in arrays.items()}
    module.load_state_dict(new, strict=True)
    return module


def _torch_cell_mode(module) -> str:
    import torch

    if isinstance(module, torch.nn.LSTMCell):
        return "LSTM"
    if isinstance(module, torch.nn.GRUCell):
        return "GRU"
    if isinstance(module, torch.nn.RNNCell):
        return "RNN_TANH" if module.nonlinearity == "tanh" else "RNN_RELU"
    raise TypeError(
        "from_torch/to_torch take torch.nn.RNN/LSTM/GRU or RNNCell/LSTMCell/GRUCell, "
        f"got {type(module).__name__}"
    )


def _require(arrays: Mapping[str, Any], names: list[str]) -> None:
    missing = [n for n in names if n not in arrays]
    if missing:
        raise ValueError(
            f"state_dict has no {', '.join(map(repr, missing))} (it holds {sorted(arrays)}); "
            "check mode, num_layers and bidirectional"
        )


def _to_numpy(value) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _layer_from_torch(arrays: dict, sfx: str, mode: str):
    w_ih, w_hh = arrays[f"weight_ih{sfx}"], arrays[f"weight_hh{sfx}"]
    hidden = w_hh.shape[1]
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


def _layer_to_torch(params, sfx: str, mode: str, bias: bool) -> dict:
    w_x, w_h, b = (np.asarray(params.w_x), np.asarray(params.w_h), np.asarray(params.b))
    out = {f"weight_ih{sfx}": w_x.T, f"weight_hh{sfx}": w_h.T}
    if getattr(params, "w_r", None) is not None:
        out[f"weight_hr{sfx}"] = np.asarray(params.w_r).T
    b_hh = np.zeros_like(b)
    if mode == "GRU":
        b_hh[2 * w_h.shape[0] :] = np.asarray(params.b_hn)
    if bias:
        out[f"bias_ih{sfx}"], out[f"bias_hh{sfx}"] = b, b_hh
    elif np.any(b) or np.any(b_hh):
        raise ValueError(
            "params have non-zero biases, but the torch module was built with bias=False"
        )
    return out
