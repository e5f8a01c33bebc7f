"""``StackedRNN``: PyTorch's ``nn.LSTM(num_layers, bidirectional, dropout)`` for any cells."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn

from .. import _checks
from .._cell import Array, Cell
from ..combinators import bidirectional, stack
from ..sequence import _flax_options as options
from ..sequence._flax_options import Merge, no_step
from ._rnn import cell_params


class StackedRNN(nn.Module):
    r"""A deep RNN, PyTorch's ``nn.LSTM(num_layers, bidirectional, dropout)`` for any cells.

    Layer ``k`` reads the outputs of layer ``k - 1``. ``cells`` is one cell used for every
    layer (``num_layers`` of them, each with its own params; input sizes chain by
    themselves) or a sequence of cells, one per layer, types mixed as you like (the lecture's
    advice: GRU layers under an LSTM on top). With ``bidirectional`` every layer is a
    :func:`gatedcells.bidirectional` layer whose merged outputs (concatenated by default)
    feed the next. As in PyTorch, dropout with rate ``dropout`` is applied to the outputs of
    every layer but the last, elementwise and independently at each step, driven by Flax's
    ``"dropout"`` RNG stream; it is off when ``deterministic`` (the attribute, or the call
    argument, as for ``flax.linen.Dropout``).

    ``variables["params"]["cell"]`` is the tuple of the layers' params, exactly
    ``self.as_cell().init(key, I)``: the params of :func:`gatedcells.stack`, so
    ``gatedcells.unroll(model.as_cell(), params, xs)`` equals the deterministic module. The
    carry is the stack's: a tuple with one carry per layer (a ``(forward, backward)`` pair for
    bidirectional layers).

    Attributes:
      cells: a :class:`gatedcells.Cell` for every layer, or a sequence of cells (a tuple),
        bottom first.
      num_layers: the number of layers when ``cells`` is a single cell (default 1); with a
        sequence it must be ``None`` or its length.
      bidirectional: make every layer bidirectional.
      dropout: the dropout rate between layers, in ``[0, 1)``.
      merge: how a bidirectional layer merges its directions (``"concat"``, ...).
      deterministic: disable dropout (may be given at call time instead; under ``nn.jit``,
        whose call arguments are traced, give it here).
      time_major: inputs and outputs ``[T, *B, ...]``.
      return_carry: return ``(carry, ys)`` instead of ``ys``.
      unroll: time steps per loop iteration of the scans (``None``: per backend, see
        :func:`gatedcells.default_unroll`).

    Examples:
      >>> import jax, jax.numpy as jnp, gatedcells as gc, gatedcells.linen as gl
      >>> model = gl.StackedRNN(gc.lstm(16), num_layers=2, bidirectional=True, dropout=0.1)
      >>> xs = jnp.ones((4, 10, 3))
      >>> variables = model.init(jax.random.key(0), xs, deterministic=True)
      >>> [p.w_x.shape for p, _ in variables["params"]["cell"]]  # forward halves
      [(3, 64), (32, 64)]
      >>> ys = model.apply(variables, xs, deterministic=False,
      ...                  rngs={"dropout": jax.random.key(1)})
      >>> ys.shape
      (4, 10, 32)
    """

    cells: Cell | Sequence[Cell]
    num_layers: int | None = None
    bidirectional: bool = False
    dropout: float = 0.0
    merge: Merge = "concat"
    deterministic: bool | None = None
    time_major: bool = False
    return_carry: bool = False
    unroll: int | bool | None = None

    @nn.compact
    def __call__(
        self,
        xs: Array,
        *,
        initial_carry: tuple | None = None,
        seq_lengths: Array | None = None,
        deterministic: bool | None = None,
    ) -> Array | tuple[tuple, Array]:
        """Run the layers over ``xs [*B, T, I]``.

        Args:
          xs: ``[*B, T, I]`` (``[T, *B, I]`` when time-major).
          initial_carry: a tuple of one carry per layer (``as_cell().initial_carry(B)``).
          seq_lengths: integer ``[*B]``, the valid length of each right-padded sequence.
          deterministic: overrides the attribute; required (here or there) when
            ``dropout > 0``.

        Returns:
          ``ys [*B, T, O]``, or ``(carry, ys)`` with ``return_carry``.

        Raises:
          ValueError: for a ``dropout`` outside ``[0, 1)``, or ``deterministic`` given
            neither as an attribute nor at call time while ``dropout > 0``; and as
            :func:`gatedcells.unroll`.
        """
        layers = self._layers()
        stacked = stack(*layers)
        params, xs = cell_params(self, stacked, xs, "xs")
        carry, ys = options.run_layers(
            stacked,
            layers,
            params,
            xs,
            initial_carry,
            seq_lengths,
            time_major=self.time_major,
            unroll=self.unroll,
            between=self._between(deterministic),
        )
        return (carry, ys) if self.return_carry else ys

    @nn.compact
    def step(
        self, x: Array, carry: tuple | None = None, *, deterministic: bool | None = None
    ) -> tuple[tuple, Array]:
        """One time step through every layer: ``x [*B, I] -> (carry, y [*B, O])``.

        Call it as ``model.apply(variables, x, carry, method=StackedRNN.step)``: layer ``k``
        steps from ``carry[k]`` on layer ``k - 1``'s output, with dropout between layers as
        in ``__call__`` (a fresh mask per step; none when deterministic). Without
        dropout, feeding the carry forward gives the outputs of one long call.

        Args:
          x: ``[*B, I]``, one step of every sequence.
          carry: a tuple of one carry per layer (:meth:`initial_carry`); zeros if None.
          deterministic: as in ``__call__``.

        Returns:
          ``(carry, y)``, ``carry`` a tuple of one carry per layer.

        Raises:
          TypeError: for a bidirectional stack (it cannot stream).
          ValueError: a ``carry`` that is not one carry per layer, and as
            :meth:`gatedcells.Cell.step`.

        Examples:
          >>> import jax, jax.numpy as jnp, gatedcells as gc, gatedcells.linen as gl
          >>> model, xs = gl.StackedRNN(gc.lstm(8), num_layers=2), jnp.ones((2, 5, 3))
          >>> variables = model.init(jax.random.key(0), xs)
          >>> carry, y = model.apply(variables, xs[:, 0], model.initial_carry((2,)),
          ...                        method=gl.StackedRNN.step)
          >>> bool(jnp.allclose(y, model.apply(variables, xs)[:, 0], atol=1e-6)), len(carry)
          (True, 2)
        """
        if self.bidirectional:
            raise no_step("StackedRNN(bidirectional=True)")
        layers = self._layers()
        stacked = stack(*layers)
        params, x = cell_params(self, stacked, x, "x")
        return options.step_layers(stacked, layers, params, x, carry, self._between(deterministic))

    @nn.nowrap
    def initial_carry(self, batch_shape: tuple[int, ...] = (), dtype: Any = None) -> tuple:
        """The zero carry a stream starts from: a tuple of one carry per layer (needs no
        variables: ``model.initial_carry((B,))``)."""
        return self.as_cell().initial_carry(batch_shape, dtype)

    def _between(self, deterministic: bool | None) -> Callable[[int, Array], Array]:
        """Dropout on the outputs of layer ``k`` (``"dropout"`` RNG stream), or nothing."""
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {self.dropout!r}")
        if self.dropout == 0 or nn.merge_param("deterministic", self.deterministic, deterministic):
            return lambda k, ys: ys
        return lambda k, ys: nn.Dropout(self.dropout, name=f"dropout_{k}")(ys, deterministic=False)

    @nn.nowrap
    def _layers(self) -> tuple[Cell, ...]:
        cells = self.cells
        if isinstance(cells, Cell):
            n = 1 if self.num_layers is None else self.num_layers
            n = _checks.check_positive_int("num_layers", n)
            cells = (cells,) * n
        else:
            cells = tuple(cells)
            if not cells or not all(isinstance(c, Cell) for c in cells):
                raise TypeError(
                    f"cells must be a gatedcells.Cell or a non-empty sequence of them, got "
                    f"{self.cells!r}"
                )
            if self.num_layers not in (None, len(cells)):
                raise ValueError(
                    f"num_layers={self.num_layers} but {len(cells)} cells were given; pass "
                    "one cell with num_layers, or one cell per layer"
                )
        if self.bidirectional:
            cells = tuple(bidirectional(c, merge=self.merge) for c in cells)
        return cells

    @nn.nowrap
    def as_cell(self) -> Cell:
        """The :func:`gatedcells.stack` of the layers (bidirectional ones if so)."""
        return stack(*self._layers())
