"""gatedcells: gated recurrent cells (simple RNN, LSTM, GRU) as pure JAX functions.

A cell is an immutable value of pure functions over an explicit parameter pytree and carry
(:class:`Cell`); :func:`unroll` scans it over a sequence. ``import gatedcells`` needs only
jax: the Flax modules (``gatedcells.linen``), the optax training loop
(``gatedcells.training``) and the converters (``gatedcells.interop``) are submodules that
import their own dependencies.
"""

from ._cell import Cell as Cell
from ._cell import Fused as Fused
from ._gru import GRUGates as GRUGates
from ._gru import GRUParams as GRUParams
from ._gru import gru as gru
from ._lstm import LSTMCarry as LSTMCarry
from ._lstm import LSTMGates as LSTMGates
from ._lstm import LSTMParams as LSTMParams
from ._lstm import lstm as lstm
from ._params import count_params as count_params
from ._simple import SimpleRNNGates as SimpleRNNGates
from ._simple import SimpleRNNParams as SimpleRNNParams
from ._simple import simple_rnn as simple_rnn
from ._stack import bidirectional as bidirectional
from ._stack import stack as stack
from ._unroll import GRADS as GRADS
from ._unroll import unroll as unroll

__version__ = "0.1.0"

__all__ = [
    "Cell",
    "Fused",
    "GRADS",
    "GRUGates",
    "GRUParams",
    "LSTMCarry",
    "LSTMGates",
    "LSTMParams",
    "SimpleRNNGates",
    "SimpleRNNParams",
    "bidirectional",
    "count_params",
    "gru",
    "lstm",
    "simple_rnn",
    "stack",
    "unroll",
]
