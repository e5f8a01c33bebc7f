"""``RNN`` and ``Bidirectional``: a cell over a sequence, as a Flax linen module."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax.linen as nn

from .. import _checks
from .._cell import Array, Carry, Cell, Params
from ..sequence import _flax_options as options
from ..sequence._flax_options import pick


def cell_params(module: nn.Module, cell: Cell, x: Array, name: str) -> tuple[Params, Array]:
    """``cell``'s params, fetched once as ``module``'s param ``"cell"`` for inputs like ``x``
    (called ``name`` in the messages), and ``x``, checked."""
    _checks.check_cell("cell", cell)
    x = _checks.check_float_array(name, x)
    return module.param("cell", cell.init, x.shape[-1]), x


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
      unroll: time steps per loop iteration of the scan (``None``: per backend, see
        :func:`gatedcells.default_unroll`).
      regularizer: a recurrent regulariser ``(cell, key=, deterministic=) -> cell`` applied
        at each call, e.g. ``functools.partial(gc.recurrent_dropout, rate=0.25)`` (also
        :func:`gatedcells.zoneout`, :func:`gatedcells.weight_drop`), drawing its key from the
        ``"dropout"`` RNG stream. It keeps the params: ``variables`` stay ``cell``'s.
      deterministic: turn the regulariser off (may be given at call time instead; required
        with a ``regularizer``).

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

    cell: Cell
    time_major: bool = False
    reverse: bool = False
    keep_order: bool = False
    return_carry: bool = False
    unroll: int | bool | None = None
    regularizer: Callable[..., Cell] | None = None
    deterministic: bool | None = None

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
        deterministic: bool | None = None,
    ) -> Array | tuple[Carry, Array]:
        """Run the cell over ``xs``.

        Args:
          xs: ``[*B, T, I]`` (``[T, *B, I]`` when time-major), any floating dtype;
            ``[*B, T, *S, I]`` for a convolutional cell.
          initial_carry: the carry to start from (``cell.initial_carry(B)``, or plain
            tuples in place of its NamedTuples, e.g. a ``flax.linen.LSTMCell``'s ``(c, h)``:
            the carry returned has the containers given); zeros if None.
          seq_lengths: integer ``[*B]``, the valid length of each right-padded sequence.
          init_key: ignored (the carry starts at zeros); for ``flax.linen.RNNBase``.
          return_carry, time_major, reverse, keep_order: override the attributes of the
            same names for this call (as ``flax.linen.RNN`` allows).
          deterministic: overrides the attribute (with a ``regularizer``).

        Returns:
          ``ys [*B, T, O]`` (``[T, *B, O]``), or ``(carry, ys)`` with ``return_carry``.

        Raises:
          TypeError, ValueError: as :func:`gatedcells.unroll` (``seq_lengths`` is its
            ``lengths``).
        """
        del init_key
        cell = self._cell(deterministic)
        params, xs = cell_params(self, cell, xs, "xs")
        carry, ys = options.run(
            cell,
            params,
            xs,
            initial_carry,
            seq_lengths,
            time_major=pick(time_major, self.time_major),
            reverse=pick(reverse, self.reverse),
            keep_order=pick(keep_order, self.keep_order),
            unroll=self.unroll,
        )
        return (carry, ys) if pick(return_carry, self.return_carry) else ys

    @nn.compact
    def step(
        self, x: Array, carry: Carry | None = None, *, deterministic: bool | None = None
    ) -> tuple[Carry, Array]:
        """One time step, for streaming and generation: ``x [*B, I] -> (carry, y [*B, O])``.

        Call it as ``model.apply(variables, x, carry, method=RNN.step)``: it fetches the
        same param ``"cell"`` as ``__call__``. Feeding the carry forward step by step
        (or chunk by chunk, ``apply(variables, xs, initial_carry=carry,
        return_carry=True)``) gives the outputs of one long call. ``reverse`` and
        ``time_major`` play no part in a single step.

        Args:
          x: ``[*B, I]``, one step of every sequence.
          carry: the carry so far (:meth:`initial_carry`, or a previous step's or call's);
            zeros if None.
          deterministic: as in ``__call__``, for the regulariser (a key per step).

        Returns:
          ``(carry, y)``, the carry in the containers given.

        Examples:
          >>> import jax, jax.numpy as jnp, gatedcells as gc, gatedcells.linen as gl
          >>> model, xs = gl.RNN(gc.gru(8)), jnp.ones((2, 5, 3))
          >>> variables = model.init(jax.random.key(0), xs)
          >>> carry = model.initial_carry((2,))
          >>> for t in range(5):
          ...     carry, y = model.apply(variables, xs[:, t], carry, method=gl.RNN.step)
          >>> bool(jnp.allclose(y, model.apply(variables, xs)[:, -1], atol=1e-6))
          True
        """
        cell = self._cell(deterministic)
        params, x = cell_params(self, cell, x, "x")
        return options.step(cell, params, x, carry)

    @nn.nowrap
    def initial_carry(self, batch_shape: tuple[int, ...] = (), dtype: Any = None) -> Carry:
        """The zero carry a stream starts from: ``cell.initial_carry(batch_shape, dtype)``.

        ``batch_shape`` is a step input's shape without its last axis, ``(*B,)``. Needs no
        variables: ``model.initial_carry((B,))``.
        """
        return self.cell.initial_carry(batch_shape, dtype)

    def _cell(self, deterministic: bool | None) -> Cell:
        """The cell with the regulariser applied (a fresh key from the ``"dropout"``
        stream), or the cell itself."""
        if self.regularizer is None:
            return self.cell
        off = nn.merge_param("deterministic", self.deterministic, deterministic)
        key = None if off else self.make_rng("dropout")
        return self.regularizer(self.cell, key=key, deterministic=off)

    @nn.nowrap
    def as_cell(self) -> Cell:
        """The cell whose params are ``variables["params"]["cell"]``: ``self.cell``."""
        return self.cell
