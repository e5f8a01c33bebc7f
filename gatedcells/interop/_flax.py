"""Flax <-> gatedcells, linen and NNX: the public :func:`from_flax` and :func:`to_flax`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._cell import Cell
from . import _linen, _nnx


def from_flax(module: Any, params: Any = None) -> tuple[Cell, Any]:
    """Convert a Flax recurrent cell, linen or NNX, to gatedcells.

    The cells: ``LSTMCell`` and ``OptimizedLSTMCell`` become :func:`gatedcells.lstm`,
    ``GRUCell`` :func:`gatedcells.gru` (``reset_after=True``), ``SimpleCell``
    :func:`gatedcells.simple_rnn` with the module's ``activation_fn``. The layouts are in the
    table of :mod:`gatedcells.interop`: ``w_x [I, G*H]``, ``w_h [H, G*H]``, ``b [G*H]``, and
    for the GRU ``b_hn [H]``, which NNX's ``GRUCell`` does not have (it reads as zeros), with
    ``G`` = 4 for an LSTM, 3 for a GRU, 1 for a simple cell.

    Args:
      module: one of the four cells, from ``flax.linen`` or ``flax.nnx``, or a linen
        ``nn.RNN`` or an ``nnx.RNN`` holding one; it fixes the kind and the hidden size
        ``H``. For NNX it may also be the cell's state alone (``nnx.state(cell)``, or its pure
        dict): the kind is then read from the paths and shapes, and the options the state
        does not hold are assumed to be the defaults (sigmoid gates, tanh, not residual).
      params: linen: the module's ``variables``: ``{"params": {...}}`` of the cell, or of an
        ``nn.RNN`` of it (``{"params": {"cell": {...}}}``), or the inner ``{...}`` itself.
        NNX: optional, the cell's (or its ``nnx.RNN``'s) ``nnx.State`` or pure dict to read
        instead of the module's own values (e.g. the state of ``nnx.split``).

    Returns:
      ``(cell, params)``: for inputs ``xs [*B, T, I]``, ``gc.unroll(cell, params, xs)``
      gives the outputs ``[*B, T, H]`` and final carry of the Flax cell under ``nn.RNN`` /
      ``nnx.RNN``, to float tolerance. Flax's LSTM carry is the tuple ``(c, h)``; ours is
      :class:`gatedcells.LSTMCarry` with the same field order; the GRU's and simple cell's
      carry is ``h [*B, H]`` in both.

    Raises:
      TypeError: another module kind, linen ``params`` that are not a mapping, or an NNX
        state whose cell cannot be told.
      ValueError: a cell with a non-default ``gate_fn``/``activation_fn`` (LSTM, GRU) or
        ``residual=True``; params that are not the module's (a missing array, other sizes).

    Examples:
      .. code-block:: python

         cell, params = interop.from_flax(nnx.GRUCell(3, 8, rngs=nnx.Rngs(0)))   # NNX
         cell, params = interop.from_flax(nn.LSTMCell(8), variables)              # linen
         carry, ys = gc.unroll(cell, params, xs)   # xs [B, T, 3] -> ys [B, T, 8]
    """
    if _nnx.is_nnx(module) or (params is None and isinstance(module, Mapping)):
        return _nnx.from_nnx(module, params)
    return _linen.from_linen(module, params)


def to_flax(params: Any, module: Any) -> Any:
    """Put gatedcells ``params`` into a Flax cell: the inverse of :func:`from_flax`.

    An LSTM's bias ``b`` goes to Flax's recurrent biases (linen and NNX ``h?``, NNX
    ``OptimizedLSTMCell``'s ``dense_h``), a GRU's to its input biases (``i?``, NNX
    ``dense_i``); a GRU's ``b_hn`` to linen's ``hn`` bias, and NNX's ``GRUCell``, which has no
    such bias, takes only ``b_hn == 0``.

    Round trip, in both directions, for linen and NNX: ``from_flax(module, to_flax(params,
    module))`` (for NNX: ``from_flax(to_flax(params, module))``) gives back ``params`` array
    for array, bitwise, and ``to_flax(from_flax(module, variables)[1], module)`` gives back
    ``variables``' params (NNX: the cell's ``nnx.Param`` values) bitwise: every Flax array is
    one gatedcells array or one gate block of it, nothing is summed. Two conditions: the
    dtypes agree (an NNX cell's params are cast to its own param dtype), and, for NNX's
    ``GRUCell``, ``b_hn`` is zero (``from_flax`` gives zeros; anything else raises).

    Args:
      params: the params of the cell :func:`from_flax` gives for ``module``: ``LSTMParams``
        (``w_x [I, 4H]``, ``w_h [H, 4H]``, ``b [4H]``), ``GRUParams`` (``w_x [I, 3H]``,
        ``w_h [H, 3H]``, ``b [3H]``, ``b_hn [H]``) or ``SimpleRNNParams`` (``w_x [I, H]``,
        ``w_h [H, H]``, ``b [H]``).
      module: a linen cell or ``nn.RNN`` of one; an NNX cell or ``nnx.RNN`` of one, filled in
        place; or an NNX cell class (``nnx.LSTMCell``, ...), built with ``in_features=I``,
        ``hidden_features=H``, ``param_dtype`` the params' and its other options at their
        defaults, then filled.

    Returns:
      linen: the variables ``{"params": {...}}`` for ``module.apply`` (``{"params": {"cell":
      {...}}}`` for an ``nn.RNN``). NNX: the module, holding ``params``.

    Raises:
      TypeError: another module kind.
      ValueError: params of another cell or size (the module's ``H``, an NNX cell's
        ``in_features``), a non-default ``gate_fn``/``activation_fn`` or ``residual=True``,
        or a non-zero ``b_hn`` for NNX's ``GRUCell``.

    Examples:
      .. code-block:: python

         params = gc.lstm(8).init(jax.random.key(0), 3)
         variables = interop.to_flax(params, nn.LSTMCell(8))                  # linen
         cell = interop.to_flax(params, nnx.OptimizedLSTMCell)                # a new NNX cell
         interop.to_flax(params, nnx.LSTMCell(3, 8, rngs=nnx.Rngs(0)))        # filled in place
    """
    if _nnx.is_nnx(module):
        return _nnx.to_nnx(params, module)
    return _linen.to_linen(params, module)
