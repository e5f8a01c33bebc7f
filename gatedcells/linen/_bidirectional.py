"""``Bidirectional``: a bidirectional layer of two cells, as a Flax linen module."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NoReturn

import flax.linen as nn

from .._cell import Array, Carry, Cell
from ..combinators import bidirectional
from ..sequence import _flax_options as options
from ..sequence._flax_options import Merge, no_step, pick
from ._rnn import cell_params


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
        cell = self.as_cell()
        params, xs = cell_params(self, cell, xs, "xs")
        carry, ys = options.run(
            cell,
            params,
            xs,
            initial_carry,
            seq_lengths,
            time_major=pick(time_major, self.time_major),
            reverse=False,
            keep_order=True,
            unroll=self.unroll,
        )
        return (carry, ys) if pick(return_carry, self.return_carry) else ys

    @nn.nowrap
    def step(self, x: Array, carry: Any = None, **kwargs: Any) -> NoReturn:
        """Refused: a bidirectional layer cannot stream (its backward direction reads the
        sequence from its end).

        Raises:
          TypeError: always.
        """
        raise no_step("Bidirectional")

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
    candidate = value
    for _ in range(3):  # a cell, an RNN of one, or flax's RNN of a gatedcells.linen.Cell
        if isinstance(candidate, Cell):
            return candidate
        candidate = getattr(candidate, "cell", None)
    inner = type(getattr(value, "cell", value)).__name__
    raise TypeError(
        f"{name} must be a gatedcells cell or an RNN of one, got {type(value).__name__}"
        f"{f'({inner})' if inner != type(value).__name__ else ''}: write "
        "gatedcells.linen.Bidirectional(gc.lstm(H, forget_bias=0.0)) for Flax's LSTM "
        "(gc.gru(H, update_bias=0.0) for its GRU), or keep flax.linen.Bidirectional for "
        "Flax's own cells"
    )
