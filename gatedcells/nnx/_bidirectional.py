"""``Bidirectional``: a bidirectional layer of two cells, as a Flax NNX module."""

from __future__ import annotations

from typing import Any, NoReturn

from flax import nnx

from .. import _checks
from .._cell import Array, Carry, Cell, Params
from ..combinators import bidirectional
from ..sequence import _flax_options as options
from ..sequence._flax_options import Merge, no_step, pick
from . import _params
from ._params import Metadata
from ._rnn import Rngs
from ._signature import InitSignature


class Bidirectional(nnx.Module):
    r"""A bidirectional layer: ``forward`` reads the sequence forwards, ``backward`` backwards.

    The module form of :func:`gatedcells.bidirectional`: both directions read the same
    input, each sequence within its own ``seq_lengths``; their outputs, aligned with the input
    steps, are merged (concatenated by default: ``[*B, T, O_f + O_b]``). The params are
    ``layer.forward.w_x``, ``layer.backward.w_x``, ...; :meth:`params` is the pair
    ``(forward's, backward's)``, ``as_cell().init``'s pytree.

    To pair two RNN layers as Flax does, use ``flax.nnx.Bidirectional(forward_rnn,
    backward_rnn)``: it runs two :class:`RNN` layers unchanged.

    Args:
      forward: the forward cell.
      in_features: ``I``, the size of the inputs.
      rngs: an ``nnx.Rngs``; the params come from its ``params`` stream.
      backward: the backward cell (default: ``forward``'s architecture, own params).
      merge: ``"concat"``, ``"sum"``, ``"mean"``, or ``(y_fwd, y_bwd) -> y``.
      time_major: inputs and outputs ``[T, *B, ...]``.
      return_carry: return ``((carry_fwd, carry_bwd), ys)`` instead of ``ys``.
      unroll: time steps per loop iteration of the scans (``None``: per backend).
      param_metadata: ``nnx.Param`` metadata per field name.

    Examples:
      >>> import jax.numpy as jnp, gatedcells as gc, gatedcells.nnx as gnnx
      >>> from flax import nnx
      >>> layer = gnnx.Bidirectional(gc.gru(8), 3, rngs=nnx.Rngs(0))
      >>> layer(jnp.ones((2, 5, 3)), seq_lengths=jnp.array([5, 2])).shape
      (2, 5, 16)
    """

    __signature__ = InitSignature()  # the __init__'s, not NNX's metaclass's

    def __init__(
        self,
        forward: Cell,
        in_features: int,
        *,
        rngs: nnx.Rngs,
        backward: Cell | None = None,
        merge: Merge = "concat",
        time_major: bool = False,
        return_carry: bool = False,
        unroll: int | bool | None = None,
        param_metadata: Metadata | None = None,
    ):
        if isinstance(forward, nnx.Module) or isinstance(backward, nnx.Module):
            raise TypeError(
                "gatedcells.nnx.Bidirectional takes cells: Bidirectional(gc.gru(8), "
                "in_features, rngs=rngs); to pair two RNN layers write "
                "flax.nnx.Bidirectional(forward_rnn, backward_rnn), which runs "
                "gatedcells.nnx.RNN layers unchanged"
            )
        self.cell = bidirectional(
            _checks.check_cell("cell", forward, _params.flax_advice(forward)), backward, merge=merge
        )
        self.in_features = _checks.check_positive_int("in_features", in_features)
        _checks.check_flag("time_major", time_major)
        _checks.check_flag("return_carry", return_carry)
        _checks.check_unroll(unroll)
        self.time_major, self.return_carry, self.unroll = time_major, return_carry, unroll
        params = self.cell.init(_params.init_key(rngs), self.in_features)
        _params.attach(self, params, ("forward", "backward"), param_metadata)

    def __call__(
        self,
        xs: Array,
        *,
        initial_carry: tuple[Carry, Carry] | None = None,
        seq_lengths: Array | None = None,
        return_carry: bool | None = None,
        time_major: bool | None = None,
        rngs: Rngs = None,
        reverse: bool | None = None,
        keep_order: bool | None = None,
    ) -> Array | tuple[tuple[Carry, Carry], Array]:
        """Run both directions over ``xs [*B, T, I]``; see :class:`RNN` for the arguments.

        ``rngs``, ``reverse`` and ``keep_order`` are accepted and unused, as in
        ``flax.nnx.Bidirectional``.
        """
        del rngs, reverse, keep_order
        carry, ys = options.run(
            self.cell,
            self.params(),
            xs,
            initial_carry,
            seq_lengths,
            time_major=pick(time_major, self.time_major),
            reverse=False,
            keep_order=True,
            unroll=self.unroll,
        )
        return (carry, ys) if pick(return_carry, self.return_carry) else ys

    def step(self, x: Array, carry: Any = None, **kwargs: Any) -> NoReturn:
        """Refused: a bidirectional layer cannot stream (its backward direction reads the
        sequence from its end).

        Raises:
          TypeError: always.
        """
        raise no_step("Bidirectional")

    def params(self) -> Params:
        """The pair ``(forward's params, backward's params)``, ``as_cell().init``'s pytree."""
        return _params.gather(self, self.cell, self.in_features, ("forward", "backward"))

    def as_cell(self) -> Cell:
        """``gatedcells.bidirectional(forward, backward, merge=merge)``."""
        return self.cell
