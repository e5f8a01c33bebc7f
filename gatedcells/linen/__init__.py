r"""Flax linen modules for gatedcells cells: adapters with no math of their own.

Every module here fetches the whole params pytree of its cell once, with
``self.param("cell", cell.init, input_size)``, and calls the pure functions
(:func:`gatedcells.unroll`). So ``variables["params"]["cell"]`` is exactly what the cell's
``init`` returns (an :class:`gatedcells.LSTMParams`, a tuple of them for a stack), the
functional and the module paths share weights, and the time loop is a plain
``jax.lax.scan``: no ``nn.scan``, no ``variable_broadcast``, no ``split_rngs``.

- :class:`RNN`: a cell over a sequence, with the options of ``flax.linen.RNN``.
- :class:`Bidirectional`: a bidirectional layer of two cells.
- :class:`StackedRNN`: PyTorch's ``nn.LSTM(num_layers, bidirectional, dropout)`` for any
  cells, mixed types per layer allowed, dropout between layers.
- :class:`Cell`: a ``flax.linen.RNNCellBase``, so a gatedcells cell also runs inside
  ``flax.linen.RNN`` and ``flax.linen.Bidirectional`` unchanged.

Each sequence module has ``as_cell()``, the :class:`gatedcells.Cell` whose params are its
``variables["params"]["cell"]``: ``gatedcells.unroll(module.as_cell(), params, xs)`` computes
what the module computes (without dropout).

``import gatedcells`` does not import this module; it needs flax
(``pip install 'gatedcells[flax]'``).

Shape legend: ``B`` batch (``*B`` any number of axes), ``T`` time, ``I`` input, ``O`` output.
"""

from ._adapter import Cell as Cell
from ._rnn import RNN as RNN
from ._rnn import Bidirectional as Bidirectional
from ._stacked import StackedRNN as StackedRNN

__all__ = ["RNN", "Bidirectional", "Cell", "StackedRNN"]
