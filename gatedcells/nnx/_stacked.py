"""``StackedRNN``: PyTorch's ``nn.LSTM(num_layers, bidirectional, dropout)`` for any cells."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
from flax import nnx

from .. import _checks
from .._cell import Array, Cell, Params
from ..combinators import bidirectional, stack
from ..sequence import _flax_options as options
from ..sequence._flax_options import Merge, no_step, pick
from . import _params
from ._params import Metadata
from ._rnn import Rngs, dropout_key
from ._signature import InitSignature


class StackedRNN(nnx.Module):
    r"""A deep RNN, PyTorch's ``nn.LSTM(num_layers, bidirectional, dropout)`` for any cells.

    Layer ``k`` reads the outputs of layer ``k - 1``. ``cells`` is one cell used for every
    layer (``num_layers`` of them, each with its own params) or a sequence of cells, one per
    layer, types mixed as you like. With ``bidirectional`` every layer is a
    :func:`gatedcells.bidirectional` layer whose merged outputs feed the next. Dropout with
    rate ``dropout`` is applied to the outputs of every layer but the last (an
    ``nnx.Dropout``, so ``model.train()``, ``model.eval()`` and ``nnx.view`` drive it), with
    keys from the ``dropout`` stream of the call's ``rngs``: no key is stored.

    The params are ``layer.layers[k].w_x``, ... (``layer.layers[k][0].w_x`` and
    ``[1]`` for the two directions of a bidirectional layer); :meth:`params` is the tuple of
    the layers' params, exactly ``as_cell().init``'s pytree, so
    ``gatedcells.unroll(layer.as_cell(), layer.params(), xs)`` equals the deterministic
    layer. The carry is a tuple with one carry per layer; ``layer.layer_cells`` are the
    layers' cells.

    The arguments are those of the other NNX layers, ``StackedRNN(cells, in_features, *,
    rngs, ...)``: the second is ``in_features``, not ``num_layers`` as in
    :class:`gatedcells.linen.StackedRNN` (whose modules learn their input size at ``init``).
    So that ``StackedRNN(cell, 3)`` written as in linen cannot silently build one layer of
    input size 3, a single cell needs ``num_layers`` by name (a ``ValueError`` otherwise);
    everything after ``in_features`` is keyword-only.

    Args:
      cells: a :class:`gatedcells.Cell` for every layer, or a sequence of cells, bottom first.
      in_features: ``I``, the size of the inputs.
      rngs: an ``nnx.Rngs``; the params come from its ``params`` stream.
      num_layers: the number of layers when ``cells`` is a single cell: required then
        (``StackedRNN(cell, in_features, num_layers=N, rngs=rngs)``); with a sequence it
        must be ``None`` or its length.
      bidirectional: make every layer bidirectional.
      dropout: the dropout rate between layers, in ``[0, 1)``.
      merge: how a bidirectional layer merges its directions (``"concat"``, ...).
      deterministic: disable dropout (a call may override it).
      time_major: inputs and outputs ``[T, *B, ...]``.
      return_carry: return ``(carry, ys)`` instead of ``ys``.
      unroll: time steps per loop iteration of the scans (``None``: per backend).
      param_metadata: ``nnx.Param`` metadata per field name.

    Examples:
      >>> import jax.numpy as jnp, gatedcells as gc, gatedcells.nnx as gnnx
      >>> from flax import nnx
      >>> model = gnnx.StackedRNN(gc.lstm(16), 3, num_layers=2, bidirectional=True,
      ...                         dropout=0.1, rngs=nnx.Rngs(0))
      >>> [fwd.w_x.shape for fwd, _ in model.layers]
      [(3, 64), (32, 64)]
      >>> model(jnp.ones((4, 10, 3)), rngs=nnx.Rngs(dropout=1)).shape
      (4, 10, 32)
    """

    __signature__ = InitSignature()  # the __init__'s, not NNX's metaclass's

    def __init__(
        self,
        cells: Cell | Sequence[Cell],
        in_features: int,
        *,
        rngs: nnx.Rngs,
        num_layers: int | None = None,
        bidirectional: bool = False,
        dropout: float = 0.0,
        merge: Merge = "concat",
        deterministic: bool = False,
        time_major: bool = False,
        return_carry: bool = False,
        unroll: int | bool | None = None,
        param_metadata: Metadata | None = None,
    ):
        _checks.check_flag("bidirectional", bidirectional)
        self.bidirectional = bool(bidirectional)
        self.layer_cells = _layers(cells, num_layers, bidirectional, merge)
        self.cell = stack(*self.layer_cells)
        self.in_features = _checks.check_positive_int("in_features", in_features)
        rate = _checks.check_rate("dropout", dropout)
        _checks.check_flag("time_major", time_major)
        _checks.check_flag("return_carry", return_carry)
        _checks.check_unroll(unroll)
        self.time_major, self.return_carry, self.unroll = time_major, return_carry, unroll
        self.dropout = nnx.Dropout(rate, deterministic=deterministic)
        params = self.cell.init(_params.init_key(rngs), self.in_features)
        _params.attach(self, params, metadata=param_metadata)

    def __call__(
        self,
        xs: Array,
        *,
        initial_carry: tuple | None = None,
        seq_lengths: Array | None = None,
        return_carry: bool | None = None,
        time_major: bool | None = None,
        rngs: Rngs = None,
        deterministic: bool | None = None,
    ) -> Array | tuple[tuple, Array]:
        """Run the layers over ``xs [*B, T, I]`` (``[T, *B, I]`` when time-major).

        Args:
          initial_carry: a tuple of one carry per layer (``as_cell().initial_carry(B)``).
          seq_lengths: integer ``[*B]``, the valid length of each right-padded sequence.
          return_carry, time_major: override the attributes of the same names.
          rngs: the dropout keys (an ``nnx.Rngs`` with a ``dropout`` stream, a stream or a
            key); needed when dropping out.
          deterministic: overrides the attribute of the ``nnx.Dropout``.

        Returns:
          ``ys [*B, T, O]``, or ``(carry, ys)`` with ``return_carry``.

        Raises:
          ValueError: an ``initial_carry`` that is not one carry per layer, dropout in
            training mode without ``rngs``, and as :func:`gatedcells.unroll`.
        """
        carry, ys = options.run_layers(
            self.cell,
            self.layer_cells,
            self.params(),
            xs,
            initial_carry,
            seq_lengths,
            time_major=pick(time_major, self.time_major),
            unroll=self.unroll,
            between=self._between(rngs, deterministic),
        )
        return (carry, ys) if pick(return_carry, self.return_carry) else ys

    def initial_carry(self, batch_shape: tuple[int, ...] = (), dtype: Any = None) -> tuple:
        """The zero carry a stream starts from: a tuple of one carry per layer."""
        return self.cell.initial_carry(batch_shape, dtype)

    def step(
        self,
        x: Array,
        carry: tuple | None = None,
        *,
        rngs: Rngs = None,
        deterministic: bool | None = None,
    ) -> tuple[tuple, Array]:
        """One time step through every layer: ``x [*B, I] -> (carry, y [*B, O])``.

        Layer ``k`` steps from ``carry[k]`` on layer ``k - 1``'s output, with dropout
        between layers as in ``__call__`` (a fresh mask per step; none when
        deterministic). Without dropout, feeding the carry forward gives the outputs of one
        long call. Bidirectional layers cannot stream.

        Args:
          x: ``[*B, I]``, one step of every sequence.
          carry: a tuple of one carry per layer (:meth:`initial_carry`); zeros if None.
          rngs, deterministic: as in ``__call__``.

        Returns:
          ``(carry, y)``, ``carry`` a tuple of one carry per layer.

        Raises:
          TypeError: for a bidirectional stack.
          ValueError: a ``carry`` that is not one carry per layer, and as
            :meth:`gatedcells.Cell.step`.

        Examples:
          >>> import jax.numpy as jnp, gatedcells as gc, gatedcells.nnx as gnnx
          >>> from flax import nnx
          >>> model = gnnx.StackedRNN(gc.lstm(8), 3, num_layers=2, rngs=nnx.Rngs(0))
          >>> xs = jnp.ones((2, 5, 3))
          >>> carry, y = model.step(xs[:, 0], model.initial_carry((2,)))
          >>> carry, ys = model(xs[:, 1:], initial_carry=carry, return_carry=True)
          >>> bool(jnp.allclose(ys, model(xs)[:, 1:], atol=1e-6)), len(carry)
          (True, 2)
        """
        if self.bidirectional:
            raise no_step("StackedRNN(bidirectional=True)")
        between = self._between(rngs, deterministic)
        return options.step_layers(self.cell, self.layer_cells, self.params(), x, carry, between)

    def _between(self, rngs: Rngs, deterministic: bool | None) -> Callable[[int, Array], Array]:
        """Dropout on the outputs of layer ``k`` (a key from ``rngs`` per call), or nothing."""
        off = self.dropout.rate == 0 or pick(deterministic, self.dropout.deterministic)
        if off or len(self.layer_cells) == 1:
            return lambda k, ys: ys
        key = dropout_key(rngs, "StackedRNN(dropout>0)")
        return lambda k, ys: self.dropout(ys, deterministic=False, rngs=jax.random.fold_in(key, k))

    def params(self) -> Params:
        """The tuple of the layers' params, ``as_cell().init``'s pytree."""
        return _params.gather(self, self.cell, self.in_features)

    def as_cell(self) -> Cell:
        """The :func:`gatedcells.stack` of the layers (bidirectional ones if so)."""
        return self.cell


def _layers(
    cells: Cell | Sequence[Cell], num_layers: int | None, bidi: bool, merge: Merge
) -> tuple[Cell, ...]:
    if isinstance(cells, Cell):
        if num_layers is None:  # StackedRNN(cell, 3): 3 layers in linen, in_features=3 here
            raise ValueError(
                "num_layers must be given with a single cell: "
                "StackedRNN(cell, in_features, num_layers=N, rngs=rngs) (the second argument "
                "is in_features here, num_layers in gatedcells.linen.StackedRNN)"
            )
        n = _checks.check_positive_int("num_layers", num_layers)
        cells = (_checks.check_cell("cell", cells, _params.flax_advice(cells)),) * n
    else:
        cells = tuple(cells) if isinstance(cells, Sequence) else ()
        if not cells or not all(isinstance(c, Cell) for c in cells):
            raise TypeError(
                f"cells must be a gatedcells.Cell or a non-empty sequence of them, got {cells!r}"
            )
        if num_layers not in (None, len(cells)):
            raise ValueError(
                f"num_layers={num_layers} but {len(cells)} cells were given; pass one cell "
                "with num_layers, or one cell per layer"
            )
    return tuple(bidirectional(c, merge=merge) for c in cells) if bidi else cells
