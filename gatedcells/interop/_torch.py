"""PyTorch <-> gatedcells: ``nn.RNN/LSTM/GRU`` (any ``num_layers``, ``bidirectional``,
``proj_size``) and ``nn.RNNCell/LSTMCell/GRUCell``. torch is imported only inside the functions
that take a torch module; :func:`from_torch_state_dict` (in ``_torch_state_dict``) works on
numpy arrays without it."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._cell import Cell
from ._torch_state_dict import _torch_cell, from_torch_state_dict


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
      ValueError: params of another architecture or size, of a cell with ``num_heads > 1``
        (a block-diagonal ``w_h``), or non-zero biases for a module built with ``bias=False``.

    Examples:
      .. code-block:: python

         params = gc.gru(8).init(jax.random.key(0), 3)
         module = interop.to_torch(params, torch.nn.GRU(3, 8, batch_first=True))
    """
    import torch

    if any(np.ndim(w) == 3 for w in _recurrent_kernels(params)):
        raise ValueError(
            "params have num_heads > 1 (a block-diagonal w_h): PyTorch has no such cell"
        )
    if isinstance(module, torch.nn.RNNBase):
        mode, n, bidi = module.mode, module.num_layers, module.bidirectional
        proj_size = getattr(module, "proj_size", 0)
        cell = _torch_cell(
            mode, module.hidden_size, num_layers=n, bidirectional=bidi, proj_size=proj_size
        )
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


def _recurrent_kernels(params: Any) -> list:
    """Every ``w_h`` of ``params``: one cell's, or its layers' and directions'."""
    if hasattr(params, "w_h"):
        return [params.w_h]
    return [w for p in params for w in _recurrent_kernels(p)] if isinstance(params, tuple) else []


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
