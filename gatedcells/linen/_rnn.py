"""``RNN`` and ``Bidirectional``: a cell over a sequence, as a Flax linen module."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax.numpy as jnp
from flax.linen.recurrent import flip_sequences

from .. import _checks
from .._cell import Array, Carry, Cell
from ..combinators import bidirectional
from ..sequence import unroll, valid_mask

Merge = str | Callable[[Array, Array], Array]


def run(
    module: nn.Module,
    cell: Cell,
    xs: Array,
    initial_carry: Carry | None,
    seq_lengths: Array | None,
    *,
    time_major: bool,
    reverse: bool,
    keep_order: bool,
    unroll_steps: int | bool | None,
) -> tuple[Carry, Array]:
    """Fetch ``cell``'s params once as ``module``'s param ``"cell"`` and unroll it."""
    _checks.check_cell("cell", cell)
    xs = _checks.check_float_array("xs", xs)
    check_seq_lengths(seq_lengths, xs, time_major, cell.feature_ndim)
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
        lengths = None if seq_lengths is None else jnp.asarray(seq_lengths, jnp.int32)
        batch_dims = ys.ndim - 1 - cell.feature_ndim  # [*B, T, *S, O]
        ys = flip_sequences(ys, lengths, num_batch_dims=batch_dims, time_major=time_major)
    return _checks.like_carry(initial_carry, carry), ys


def check_seq_lengths(
    seq_lengths: Array | None, xs: Array, time_major: bool, feature_ndim: int = 1
) -> None:
    """``unroll``'s checks of ``lengths``, with messages that say ``seq_lengths``."""
    lead = xs.ndim - feature_ndim  # T and *B
    if seq_lengths is not None and lead >= 1:
        steps = xs.shape[0] if time_major else xs.shape[lead - 1]
        batch_shape = tuple(xs.shape[1:lead] if time_major else xs.shape[: lead - 1])
        valid_mask(seq_lengths, steps, batch_shape, name="seq_lengths")


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
        cell = self.cell
        if self.regularizer is not None:  # a fresh key from the "dropout" stream per call
            off = nn.merge_param("deterministic", self.deterministic, deterministic)
            key = None if off else self.make_rng("dropout")
            cell = self.regularizer(cell, key=key, deterministic=off)
        carry, ys = run(
            self,
            cell,
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
    def as_cell(self) -> Cell:
        """The cell whose params are ``variables["params"]["cell"]``: ``self.cell``."""
        return self.cell


class Bidirectional(nn.Module):
    r"""A bidirectional layer: ``forward`` reads the sequence forwards, ``backward`` backwards.

    The module form of :func:`gatedcells.bidirectional`: both directions read the same
    input, each sequence within its own ``seq_lengths``; their outputs, aligned with the
    input steps, are merged (concatenated by default: ``[*B, T, O_f + O_b]``).
    ``variables["params"]["cell"]`` is the pair ``(forward's params, backward's params)``.

    A Flax user's call works too: ``Bidirectional(RNN(cell_f), RNN(cell_b))``, the keywords
    ``forward_rnn``/``backward_rnn``/``merge_fn`` of ``flax.linen.Bidirectional``, and the
    call-time ``return_carry``/``time_major``. An RNN given here contributes its cell only
    (this layer runs both directions itself); ``flax.linen.RNN(gatedcells.linen.Cell(c))``
    is read as ``c``. Flax's own cells (``nn.LSTMCell``, ...) are refused with the
    gatedcells spelling (``gc.lstm(H, forget_bias=0.0)`` is Flax's LSTM).

    Attributes:
      forward: the forward cell (or an RNN of it).
      backward: the backward cell (default: ``forward``'s architecture, own params).
      merge: ``"concat"``, ``"sum"``, ``"mean"``, or ``(y_fwd, y_bwd) -> y``.
      time_major: inputs and outputs ``[T, *B, ...]``.
      return_carry: return ``((carry_fwd, carry_bwd), ys)`` instead of ``ys``.
      unroll: time steps per loop iteration of the scans (``None``: per backend, see
        :func:`gatedcells.default_unroll`).
      forward_rnn, backward_rnn, merge_fn: ``flax.linen.Bidirectional``'s names for
        ``forward``, ``backward`` and ``merge`` (give one name of each pair).

    Examples:
      >>> import jax, jax.numpy as jnp, gatedcells as gc, gatedcells.linen as gl
      >>> layer = gl.Bidirectional(gc.gru(8))
      >>> xs = jnp.ones((2, 5, 3))
      >>> variables = layer.init(jax.random.key(0), xs)
      >>> layer.apply(variables, xs, seq_lengths=jnp.array([5, 2])).shape
      (2, 5, 16)
      >>> flax_style = gl.Bidirectional(forward_rnn=gl.RNN(gc.gru(8)),
      ...                               backward_rnn=gl.RNN(gc.gru(8)), merge_fn=jnp.add)
      >>> carry, ys = flax_style.apply(variables, xs, return_carry=True)
      >>> ys.shape, len(carry)
      ((2, 5, 8), 2)
    """

    forward: Any = None
    backward: Any = None
    merge: Merge = "concat"
    time_major: bool = False
    return_carry: bool = False
    unroll: int | bool | None = None
    forward_rnn: Any = None
    backward_rnn: Any = None
    merge_fn: Callable[[Array, Array], Array] | None = None

    @nn.compact
    def __call__(
        self,
        xs: Array,
        *,
        initial_carry: tuple[Carry, Carry] | None = None,
        seq_lengths: Array | None = None,
        return_carry: bool | None = None,
        time_major: bool | None = None,
        init_key: Array | None = None,
        reverse: bool | None = None,
        keep_order: bool | None = None,
    ) -> Array | tuple[tuple[Carry, Carry], Array]:
        """Run both directions over ``xs [*B, T, I]``; see :class:`RNN` for the arguments.

        ``return_carry`` and ``time_major`` override the attributes for this call;
        ``init_key``, ``reverse`` and ``keep_order`` are accepted and unused, as in
        ``flax.linen.Bidirectional``.
        """
        del init_key, reverse, keep_order
        carry, ys = run(
            self,
            self.as_cell(),
            xs,
            initial_carry,
            seq_lengths,
            time_major=_pick(time_major, self.time_major),
            reverse=False,
            keep_order=True,
            unroll_steps=self.unroll,
        )
        return (carry, ys) if _pick(return_carry, self.return_carry) else ys

    @nn.nowrap
    def as_cell(self) -> Cell:
        """``gatedcells.bidirectional(forward, backward, merge=merge)``."""
        forward = _one_of("forward", self.forward, "forward_rnn", self.forward_rnn)
        backward = _one_of("backward", self.backward, "backward_rnn", self.backward_rnn)
        merge = _one_of("merge", self.merge, "merge_fn", self.merge_fn, default="concat")
        if forward is None:
            raise TypeError("Bidirectional needs a forward cell: Bidirectional(gc.lstm(H))")
        backward = None if backward is None else _cell_of("backward", backward)
        return bidirectional(_cell_of("forward", forward), backward, merge=merge)


def _one_of(name: str, value: Any, alias: str, other: Any, default: Any = None) -> Any:
    """The value given as ``name`` or as Flax's ``alias``, not both."""
    if other is None:
        return value
    if value != default:
        raise TypeError(f"give {name} or {alias} (Flax's name for it), not both")
    return other


def _cell_of(name: str, value: Any) -> Cell:
    """A gatedcells cell from a cell, an RNN of one, or Flax's ``nn.RNN(gl.Cell(cell))``."""
    for candidate in (value, getattr(value, "cell", None),
                      getattr(getattr(value, "cell", None), "cell", None)):  # fmt: skip
        if isinstance(candidate, Cell):
            return candidate
    inner = type(getattr(value, "cell", value)).__name__
    raise TypeError(
        f"{name} must be a gatedcells cell or an RNN of one, got {type(value).__name__}"
        f"{f'({inner})' if inner != type(value).__name__ else ''}: write "
        "gatedcells.linen.Bidirectional(gc.lstm(H, forget_bias=0.0)) for Flax's LSTM "
        "(gc.gru(H, update_bias=0.0) for its GRU), or keep flax.linen.Bidirectional for "
        "Flax's own cells"
    )
