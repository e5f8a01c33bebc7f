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

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax.numpy as jnp
from flax.linen.recurrent import flip_sequences

from . import _cell
from ._cell import Array, Carry
from ._stack import bidirectional, stack
from ._unroll import unroll

Merge = str | Callable[[Array, Array], Array]


def _run(
    module: nn.Module,
    cell: _cell.Cell,
    xs: Array,
    initial_carry: Carry | None,
    seq_lengths: Array | None,
    *,
    time_major: bool,
    reverse: bool,
    keep_order: bool,
    unroll_steps: int | bool,
) -> tuple[Carry, Array]:
    """Fetch ``cell``'s params once as ``module``'s param ``"cell"`` and unroll it."""
    xs = _cell.check_float_array("xs", xs)
    params = module.param("cell", cell.init, xs.shape[-1])
    carry, ys = unroll(
        cell,
        params,
        xs,
        initial_carry,
        lengths=seq_lengths,
        reverse=reverse,
        time_major=time_major,
        unroll=unroll_steps,
    )
    if reverse and not keep_order:  # flax's order: outputs in processing order
        batch_dims = ys.ndim - 2
        ys = flip_sequences(ys, seq_lengths, num_batch_dims=batch_dims, time_major=time_major)
    return carry, ys


def _pick(override: Any, default: Any) -> Any:
    return default if override is None else override


class RNN(nn.Module):
    r"""Runs a :class:`gatedcells.Cell` over a sequence: ``flax.linen.RNN``'s options, no math.

    ``variables["params"]["cell"]`` is exactly ``cell.init(key, I)``'s pytree, so
    ``RNN(cell).apply(variables, xs)`` equals
    ``gatedcells.unroll(cell, variables["params"]["cell"], xs)[1]``.

    Differences from ``flax.linen.RNN``, on purpose:

    - ``reverse=True`` reads the sequence backwards (each one within its own
      ``seq_lengths``). As in Flax, with ``keep_order=False`` (the default) the outputs come
      back in processing order: ``ys[..., t, :]`` is the output after reading input
      ``L - 1 - t`` for a sequence of length ``L``, padding still at the end. With
      ``keep_order=True`` they are aligned with the inputs (``ys[..., t, :]`` is the output
      at input ``t``): that is :func:`gatedcells.unroll`'s native ``reverse=True`` and what a
      bidirectional layer uses.
    - Outputs past each sequence's length are exactly zero (Flax leaves the values of the
      cell run over the padding), and the returned carry is always the one at the last valid
      step (Flax slices it only when ``return_carry=True``; the result is the same).
    - The carry starts at zeros (``cell.initial_carry``): ``init_key`` is accepted for
      compatibility with ``flax.linen.Bidirectional`` and ignored.

    Attributes:
      cell: a :class:`gatedcells.Cell` (stacks and bidirectional layers included).
      time_major: inputs and outputs ``[T, *B, ...]`` instead of ``[*B, T, ...]``.
      reverse: read the sequence from its end (see above).
      keep_order: with ``reverse``, return the outputs aligned with the inputs.
      return_carry: return ``(carry, ys)`` instead of ``ys``.
      unroll: time steps per loop iteration of the scan.

    Examples:
      >>> import jax, jax.numpy as jnp, gatedcells as gc, gatedcells.linen as gl
      >>> model = gl.RNN(gc.lstm(16), return_carry=True)
      >>> xs = jnp.ones((4, 10, 3))                              # [B, T, I]
      >>> variables = model.init(jax.random.key(0), xs)
      >>> type(variables["params"]["cell"]).__name__
      'LSTMParams'
      >>> carry, ys = model.apply(variables, xs, seq_lengths=jnp.array([10, 7, 3, 1]))
      >>> ys.shape, carry.h.shape, float(abs(ys[3, 1:]).max())
      ((4, 10, 16), (4, 16), 0.0)
    """

    cell: _cell.Cell
    time_major: bool = False
    reverse: bool = False
    keep_order: bool = False
    return_carry: bool = False
    unroll: int | bool = 1

    @nn.compact
    def __call__(
        self,
        xs: Array,
        *,
        initial_carry: Carry | None = None,
        seq_lengths: Array | None = None,
        init_key: Array | None = None,
        return_carry: bool | None = None,
        time_major: bool | None = None,
        reverse: bool | None = None,
        keep_order: bool | None = None,
    ) -> Array | tuple[Carry, Array]:
        """Run the cell over ``xs``.

        Args:
          xs: ``[*B, T, I]`` (``[T, *B, I]`` when time-major), any floating dtype.
          initial_carry: the carry to start from (``cell.initial_carry(B)``); zeros if None.
          seq_lengths: integer ``[*B]``, the valid length of each right-padded sequence.
          init_key: ignored (the carry starts at zeros); for ``flax.linen.RNNBase``.
          return_carry, time_major, reverse, keep_order: override the attributes of the
            same names for this call (as ``flax.linen.RNN`` allows).

        Returns:
          ``ys [*B, T, O]`` (``[T, *B, O]``), or ``(carry, ys)`` with ``return_carry``.

        Raises:
          TypeError, ValueError: as :func:`gatedcells.unroll` (``seq_lengths`` is its
            ``lengths``).
        """
        del init_key
        carry, ys = _run(
            self,
            self.cell,
            xs,
            initial_carry,
            seq_lengths,
            time_major=_pick(time_major, self.time_major),
            reverse=_pick(reverse, self.reverse),
            keep_order=_pick(keep_order, self.keep_order),
            unroll_steps=self.unroll,
        )
        return (carry, ys) if _pick(return_carry, self.return_carry) else ys

    @nn.nowrap
    def as_cell(self) -> _cell.Cell:
        """The cell whose params are ``variables["params"]["cell"]``: ``self.cell``."""
        return self.cell


class Bidirectional(nn.Module):
    r"""A bidirectional layer: ``forward`` reads the sequence forwards, ``backward`` backwards.

    The module form of :func:`gatedcells.bidirectional`: both directions read the same
    input, each sequence within its own ``seq_lengths``; their outputs, aligned with the
    input steps, are merged (concatenated by default: ``[*B, T, O_f + O_b]``).
    ``variables["params"]["cell"]`` is the pair ``(forward's params, backward's params)``.

    Attributes:
      forward: the forward cell.
      backward: the backward cell (default: ``forward``'s architecture, own params).
      merge: ``"concat"``, ``"sum"``, ``"mean"``, or ``(y_fwd, y_bwd) -> y``.
      time_major: inputs and outputs ``[T, *B, ...]``.
      return_carry: return ``((carry_fwd, carry_bwd), ys)`` instead of ``ys``.
      unroll: time steps per loop iteration of the scans.

    Examples:
      >>> import jax, jax.numpy as jnp, gatedcells as gc, gatedcells.linen as gl
      >>> layer = gl.Bidirectional(gc.gru(8))
      >>> xs = jnp.ones((2, 5, 3))
      >>> variables = layer.init(jax.random.key(0), xs)
      >>> layer.apply(variables, xs, seq_lengths=jnp.array([5, 2])).shape
      (2, 5, 16)
    """

    forward: _cell.Cell
    backward: _cell.Cell | None = None
    merge: Merge = "concat"
    time_major: bool = False
    return_carry: bool = False
    unroll: int | bool = 1

    @nn.compact
    def __call__(
        self,
        xs: Array,
        *,
        initial_carry: tuple[Carry, Carry] | None = None,
        seq_lengths: Array | None = None,
    ) -> Array | tuple[tuple[Carry, Carry], Array]:
        """Run both directions over ``xs [*B, T, I]``; see :class:`RNN` for the arguments."""
        carry, ys = _run(
            self,
            self.as_cell(),
            xs,
            initial_carry,
            seq_lengths,
            time_major=self.time_major,
            reverse=False,
            keep_order=True,
            unroll_steps=self.unroll,
        )
        return (carry, ys) if self.return_carry else ys

    @nn.nowrap
    def as_cell(self) -> _cell.Cell:
        """``gatedcells.bidirectional(forward, backward, merge=merge)``."""
        return bidirectional(self.forward, self.backward, merge=self.merge)


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
      deterministic: disable dropout (may be given at call time instead).
      time_major: inputs and outputs ``[T, *B, ...]``.
      return_carry: return ``(carry, ys)`` instead of ``ys``.
      unroll: time steps per loop iteration of the scans.

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

    cells: _cell.Cell | Sequence[_cell.Cell]
    num_layers: int | None = None
    bidirectional: bool = False
    dropout: float = 0.0
    merge: Merge = "concat"
    deterministic: bool | None = None
    time_major: bool = False
    return_carry: bool = False
    unroll: int | bool = 1

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
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {self.dropout!r}")
        layers = self._layers()
        xs = _cell.check_float_array("xs", xs)
        params = self.param("cell", stack(*layers).init, xs.shape[-1])
        drop = self.dropout > 0 and not nn.merge_param(
            "deterministic", self.deterministic, deterministic
        )
        if initial_carry is None:
            initial_carry = (None,) * len(layers)
        elif not isinstance(initial_carry, tuple) or len(initial_carry) != len(layers):
            raise ValueError(
                f"initial_carry must be a tuple of {len(layers)} carries (one per layer), "
                f"got {type(initial_carry).__name__}"
            )
        if not self.time_major:  # one transpose in, one out; the layers run time-major
            xs = jnp.moveaxis(xs, -2, 0)
        carries = []
        for k, layer in enumerate(layers):
            carry, xs = unroll(
                layer,
                params[k],
                xs,
                initial_carry[k],
                lengths=seq_lengths,
                time_major=True,
                unroll=self.unroll,
            )
            carries.append(carry)
            if drop and k < len(layers) - 1:
                xs = nn.Dropout(self.dropout, name=f"dropout_{k}")(xs, deterministic=False)
        ys = xs if self.time_major else jnp.moveaxis(xs, 0, -2)
        return (tuple(carries), ys) if self.return_carry else ys

    @nn.nowrap
    def _layers(self) -> tuple[_cell.Cell, ...]:
        cells = self.cells
        if isinstance(cells, _cell.Cell):
            n = 1 if self.num_layers is None else self.num_layers
            if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                raise ValueError(f"num_layers must be a positive int, got {self.num_layers!r}")
            cells = (cells,) * n
        else:
            cells = tuple(cells)
            if not cells or not all(isinstance(c, _cell.Cell) for c in cells):
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
    def as_cell(self) -> _cell.Cell:
        """The :func:`gatedcells.stack` of the layers (bidirectional ones if so)."""
        return stack(*self._layers())


class Cell(nn.RNNCellBase):
    r"""A :class:`gatedcells.Cell` as a ``flax.linen.RNNCellBase``.

    For code written against Flax's cell interface:
    ``flax.linen.RNN(gatedcells.linen.Cell(gatedcells.lstm(128)))`` runs the cell with
    ``nn.scan``, inside ``flax.linen.Bidirectional`` too. ``__call__(carry, x)`` is
    ``cell.step`` with the params fetched as this module's param ``"cell"`` (exactly
    ``cell.init``'s pytree); ``initialize_carry`` returns ``cell.initial_carry`` (zeros).
    Prefer :class:`RNN` for whole sequences: it computes the input projection of all steps
    in one matmul before the scan.

    Attributes:
      cell: a steppable :class:`gatedcells.Cell` (not a bidirectional layer).

    Examples:
      >>> import jax, jax.numpy as jnp, flax.linen as nn
      >>> import gatedcells as gc, gatedcells.linen as gl
      >>> model = nn.RNN(gl.Cell(gc.gru(8)))
      >>> xs = jnp.ones((2, 5, 3))
      >>> variables = model.init(jax.random.key(0), xs)
      >>> model.apply(variables, xs).shape, type(variables["params"]["cell"]["cell"]).__name__
      ((2, 5, 8), 'GRUParams')
    """

    cell: _cell.Cell

    @nn.compact
    def __call__(self, carry: Carry, x: Array) -> tuple[Carry, Array]:
        """One step: ``x [*B, I] -> (carry, y [*B, O])``."""
        x = _cell.check_float_array("x", x)
        params = self.param("cell", self.cell.init, x.shape[-1])
        return self.cell.step(params, carry, x)

    @nn.nowrap
    def initialize_carry(self, rng: Array, input_shape: tuple[int, ...]) -> Carry:
        """Zeros for inputs of shape ``[*B, I]`` (``rng`` is unused)."""
        del rng
        return self.cell.initial_carry(tuple(input_shape[:-1]))

    @property
    def num_feature_axes(self) -> int:
        """1: the input's last axis."""
        return 1


__all__ = ["RNN", "Bidirectional", "Cell", "StackedRNN"]
