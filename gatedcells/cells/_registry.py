"""Every cell of the library by one name: the registry the command line, the benchmarks,
the zoo and the tests build cells from.

Each entry is a factory ``hidden_size -> Cell`` (keyword flags pass through to the cell's
own factory): ``CELLS["gru_reset_before"](32)`` is ``gru(32, reset_after=False)``. Greff et
al.'s grid appears as ``lstm_<variant>`` (``lstm_np`` computes the plain ``lstm``). The
convolutional cells are not here: they need a kernel size and read frames, not vectors.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from .._cell import Cell
from ._delta_net import delta_net, gated_delta_net
from ._gru import gru
from ._indrnn import indrnn
from ._lru import lru
from ._lstm_flags import GREFF_VARIANTS
from ._lstm_variants import lstm, lstm_variant
from ._mgu import mgu
from ._minimal import min_gru, min_lstm
from ._mlstm import mlstm
from ._mutants import mut1, mut2, mut3
from ._rglru import rg_lru
from ._simple import simple_rnn
from ._slstm import slstm
from ._ssm import selective_ssm

Factory = Callable[..., Cell]


def _lstm_proj(hidden_size: int, **flags) -> Cell:
    """LSTMP with ``P = H/2`` (Sak et al. 2014; PyTorch's ``proj_size``)."""
    return lstm(hidden_size, proj_size=max(1, hidden_size // 2), **flags)


CELLS: dict[str, Factory] = {
    "simple_rnn": simple_rnn,
    "lstm": lstm,
    "lstm1997": functools.partial(lstm, forget_gate=False),
    **{f"lstm_{name}": functools.partial(lstm_variant, variant=name) for name in GREFF_VARIANTS},
    "lstm_janet": functools.partial(lstm_variant, variant="janet"),
    "lstm_layer_norm": functools.partial(lstm_variant, layer_norm=True),
    "lstm_proj": _lstm_proj,
    "gru": gru,
    "gru_reset_before": functools.partial(gru, reset_after=False),
    "gru_layer_norm": functools.partial(gru, layer_norm=True),
    "mgu": mgu,
    "mut1": mut1,
    "mut2": mut2,
    "mut3": mut3,
    "indrnn": indrnn,
    "min_gru": min_gru,
    "min_lstm": min_lstm,
    "slstm": slstm,
    "mlstm": mlstm,
    # The linear recurrences read one input per channel; here they project any input size.
    "rg_lru": functools.partial(rg_lru, input_proj=True),
    "lru": functools.partial(lru, input_proj=True),
    "selective_ssm": functools.partial(selective_ssm, input_proj=True),
    "delta_net": delta_net,
    "gated_delta_net": gated_delta_net,
}


def make(name: str, hidden_size: int, **flags) -> Cell:
    """The cell called ``name`` in :data:`CELLS`, of ``hidden_size`` units.

    Raises:
      ValueError: an unknown ``name`` (the message lists the known ones).

    Examples:
      >>> from gatedcells import cells
      >>> cells.make("gru_reset_before", 8).name
      'gru(8, reset_after=False)'
    """
    if name not in CELLS:
        raise ValueError(f"unknown cell {name!r}; known: {', '.join(CELLS)}")
    return CELLS[name](hidden_size, **flags)
