"""gatedcells: gated recurrent cells (simple RNN, LSTM, GRU and their variants) as pure JAX
functions.

A cell is an immutable value of pure functions over an explicit parameter pytree and carry
(:class:`Cell`); :func:`unroll` scans it over a sequence. ``import gatedcells`` needs only
jax: the Flax modules (``gatedcells.linen``), the optax training loop
(``gatedcells.training``) and the converters (``gatedcells.interop``) are submodules that
import their own dependencies.
"""

from ._carry import LearnedCarry as LearnedCarry
from ._carry import LearnedCarryParams as LearnedCarryParams
from ._carry import learned_initial_carry as learned_initial_carry
from ._carry import resettable as resettable
from ._cell import Cell as Cell
from ._cell import Fused as Fused
from ._finite import check_finite as check_finite
from ._gru import GRUGates as GRUGates
from ._gru import GRUParams as GRUParams
from ._gru import gru as gru
from ._indrnn import IndRNNGates as IndRNNGates
from ._indrnn import IndRNNParams as IndRNNParams
from ._indrnn import indrnn as indrnn
from ._linear import linear_recurrence as linear_recurrence
from ._lstm import FullGateCarry as FullGateCarry
from ._lstm import LSTMCarry as LSTMCarry
from ._lstm import LSTMGates as LSTMGates
from ._lstm import LSTMParams as LSTMParams
from ._lstm import lstm as lstm
from ._lstm_variants import GREFF_VARIANTS as GREFF_VARIANTS
from ._lstm_variants import LSTM_VARIANTS as LSTM_VARIANTS
from ._minimal import MinGRUGates as MinGRUGates
from ._minimal import MinimalParams as MinimalParams
from ._minimal import MinLSTMGates as MinLSTMGates
from ._minimal import min_gru as min_gru
from ._minimal import min_lstm as min_lstm
from ._mutants import MGUGates as MGUGates
from ._mutants import MGUParams as MGUParams
from ._mutants import MUTGates as MUTGates
from ._mutants import MUTParams as MUTParams
from ._mutants import mgu as mgu
from ._mutants import mut1 as mut1
from ._mutants import mut2 as mut2
from ._mutants import mut3 as mut3
from ._params import count_params as count_params
from ._regularization import ZoneoutCarry as ZoneoutCarry
from ._regularization import recurrent_dropout as recurrent_dropout
from ._regularization import weight_drop as weight_drop
from ._regularization import zoneout as zoneout
from ._simple import SimpleRNNGates as SimpleRNNGates
from ._simple import SimpleRNNParams as SimpleRNNParams
from ._simple import simple_rnn as simple_rnn
from ._stack import bidirectional as bidirectional
from ._stack import stack as stack
from ._unroll import GRADS as GRADS
from ._unroll import default_unroll as default_unroll
from ._unroll import unroll as unroll

__version__ = "0.1.0"

__all__ = [
    "Cell",
    "FullGateCarry",
    "Fused",
    "GRADS",
    "GREFF_VARIANTS",
    "GRUGates",
    "GRUParams",
    "IndRNNGates",
    "IndRNNParams",
    "LSTMCarry",
    "LSTMGates",
    "LSTMParams",
    "LSTM_VARIANTS",
    "LearnedCarry",
    "LearnedCarryParams",
    "MGUGates",
    "MGUParams",
    "MUTGates",
    "MUTParams",
    "MinGRUGates",
    "MinLSTMGates",
    "MinimalParams",
    "SimpleRNNGates",
    "SimpleRNNParams",
    "ZoneoutCarry",
    "bidirectional",
    "check_finite",
    "count_params",
    "default_unroll",
    "gru",
    "indrnn",
    "learned_initial_carry",
    "linear_recurrence",
    "lstm",
    "mgu",
    "min_gru",
    "min_lstm",
    "mut1",
    "mut2",
    "mut3",
    "recurrent_dropout",
    "resettable",
    "simple_rnn",
    "stack",
    "unroll",
    "weight_drop",
    "zoneout",
]
