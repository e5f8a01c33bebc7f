"""gatedcells: gated recurrent cells (simple RNN, LSTM, GRU and their variants) as pure JAX
functions.

A cell is an immutable value of pure functions over an explicit parameter pytree and carry
(:class:`Cell`); :func:`unroll` scans it over a sequence. ``import gatedcells`` needs only
jax: the Flax modules (``gatedcells.linen``), the optax training loop
(``gatedcells.training``) and the converters (``gatedcells.interop``) are submodules that
import their own dependencies.
"""

from ._cell import CarryFn as CarryFn
from ._cell import Cell as Cell
from ._cell import CheckParamsFn as CheckParamsFn
from ._cell import InitFn as InitFn
from ._cell import MatmulSplit as MatmulSplit
from ._cell import ProjectFn as ProjectFn
from ._cell import ScanFn as ScanFn
from ._cell import UpdateFn as UpdateFn
from ._cores import use_cpu_cores as use_cpu_cores
from ._values import check_finite as check_finite
from ._values import check_lengths as check_lengths
from .cells import GREFF_VARIANTS as GREFF_VARIANTS
from .cells import LSTM_VARIANTS as LSTM_VARIANTS
from .cells import ConvGRUParams as ConvGRUParams
from .cells import ConvLSTMParams as ConvLSTMParams
from .cells import DeltaCarry as DeltaCarry
from .cells import DeltaGates as DeltaGates
from .cells import DeltaParams as DeltaParams
from .cells import FullGateCarry as FullGateCarry
from .cells import GRUGates as GRUGates
from .cells import GRULayerNormParams as GRULayerNormParams
from .cells import GRUParams as GRUParams
from .cells import IndRNNGates as IndRNNGates
from .cells import IndRNNParams as IndRNNParams
from .cells import LRUGates as LRUGates
from .cells import LRUParams as LRUParams
from .cells import LSTMCarry as LSTMCarry
from .cells import LSTMGates as LSTMGates
from .cells import LSTMParams as LSTMParams
from .cells import LSTMPParams as LSTMPParams
from .cells import LSTMVariantParams as LSTMVariantParams
from .cells import MGUGates as MGUGates
from .cells import MGUParams as MGUParams
from .cells import MinGRUGates as MinGRUGates
from .cells import MinimalParams as MinimalParams
from .cells import MinLSTMGates as MinLSTMGates
from .cells import MLSTMCarry as MLSTMCarry
from .cells import MLSTMGates as MLSTMGates
from .cells import MLSTMParams as MLSTMParams
from .cells import MUTGates as MUTGates
from .cells import MUTParams as MUTParams
from .cells import RGLRUGates as RGLRUGates
from .cells import RGLRUParams as RGLRUParams
from .cells import SimpleRNNGates as SimpleRNNGates
from .cells import SimpleRNNParams as SimpleRNNParams
from .cells import SLSTMCarry as SLSTMCarry
from .cells import SLSTMGates as SLSTMGates
from .cells import SLSTMParams as SLSTMParams
from .cells import SSMGates as SSMGates
from .cells import SSMParams as SSMParams
from .cells import conv_gru as conv_gru
from .cells import conv_lstm as conv_lstm
from .cells import delta_net as delta_net
from .cells import gated_delta_net as gated_delta_net
from .cells import gru as gru
from .cells import indrnn as indrnn
from .cells import lru as lru
from .cells import lstm as lstm
from .cells import lstm_variant as lstm_variant
from .cells import mgu as mgu
from .cells import min_gru as min_gru
from .cells import min_lstm as min_lstm
from .cells import mlstm as mlstm
from .cells import mut1 as mut1
from .cells import mut2 as mut2
from .cells import mut3 as mut3
from .cells import rg_lru as rg_lru
from .cells import selective_ssm as selective_ssm
from .cells import simple_rnn as simple_rnn
from .cells import slstm as slstm
from .combinators import LearnedCarry as LearnedCarry
from .combinators import LearnedCarryParams as LearnedCarryParams
from .combinators import ZoneoutCarry as ZoneoutCarry
from .combinators import bidirectional as bidirectional
from .combinators import learned_initial_carry as learned_initial_carry
from .combinators import recurrent_dropout as recurrent_dropout
from .combinators import resettable as resettable
from .combinators import stack as stack
from .combinators import weight_drop as weight_drop
from .combinators import zoneout as zoneout
from .diagnostics import count_params as count_params
from .sequence import GRADS as GRADS
from .sequence import default_unroll as default_unroll
from .sequence import linear_recurrence as linear_recurrence
from .sequence import sharded_unroll as sharded_unroll
from .sequence import unroll as unroll
from .sharding import logical_axes as logical_axes
from .sharding import param_shardings as param_shardings


def _version() -> str:
    """The installed distribution's version (pyproject.toml); "0+unknown" from a bare tree."""
    from importlib import metadata

    try:
        return metadata.version("gatedcells")
    except metadata.PackageNotFoundError:
        return "0+unknown"


__version__ = _version()

__all__ = [
    "Cell",
    "InitFn",
    "CarryFn",
    "ProjectFn",
    "UpdateFn",
    "CheckParamsFn",
    "ScanFn",
    "DeltaCarry",
    "DeltaGates",
    "DeltaParams",
    "FullGateCarry",
    "MatmulSplit",
    "GRADS",
    "GREFF_VARIANTS",
    "GRUGates",
    "GRUParams",
    "GRULayerNormParams",
    "IndRNNGates",
    "IndRNNParams",
    "LSTMCarry",
    "LSTMGates",
    "LSTMParams",
    "LSTMPParams",
    "LSTMVariantParams",
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
    "MLSTMCarry",
    "MLSTMGates",
    "MLSTMParams",
    "SimpleRNNGates",
    "SimpleRNNParams",
    "SLSTMCarry",
    "SLSTMGates",
    "SLSTMParams",
    "ZoneoutCarry",
    "bidirectional",
    "check_finite",
    "check_lengths",
    "count_params",
    "default_unroll",
    "delta_net",
    "gated_delta_net",
    "gru",
    "indrnn",
    "learned_initial_carry",
    "linear_recurrence",
    "logical_axes",
    "lstm",
    "lstm_variant",
    "mgu",
    "min_gru",
    "min_lstm",
    "mlstm",
    "mut1",
    "mut2",
    "mut3",
    "param_shardings",
    "recurrent_dropout",
    "resettable",
    "sharded_unroll",
    "simple_rnn",
    "slstm",
    "stack",
    "unroll",
    "use_cpu_cores",
    "weight_drop",
    "zoneout",
    "ConvGRUParams",
    "ConvLSTMParams",
    "conv_gru",
    "conv_lstm",
    "LRUGates",
    "LRUParams",
    "lru",
    "RGLRUGates",
    "RGLRUParams",
    "rg_lru",
    "SSMGates",
    "SSMParams",
    "selective_ssm",
]
