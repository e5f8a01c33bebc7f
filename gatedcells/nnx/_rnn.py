"""``RNN`` and ``Bidirectional``: a cell over a sequence, as a Flax NNX module."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flax import nnx

from .. import _checks
from .._cell import Array, Carry, Cell, Params
from ..sequence import _flax_options as options
from ..sequence._flax_options import pick
from . import _params
from ._params import Metadata
from ._signature import InitSignature

Rngs = nnx.Rngs | nnx.RngStream | Array | None


def dropout_key(rngs: Rngs, what: str) -> Array:
    """A key from the call's ``rngs`` (its ``dropout`` stream), or an error saying how."""
    if isinstance(rngs, nnx.Rngs):
        return rngs.dropout()
    if isinstance(rngs, nnx.RngStream):
        return rngs()
    if rngs is None:
        raise ValueError(
            f"{what} in training mode needs a key: call it with rngs=nnx.Rngs(dropout=seed), "
            "or turn it off (deterministic=True, model.eval() or nnx.view)"
        )
    _checks.check_key("rngs", rngs)
    return rngs


class RNN(nnx.Module):
    r"""Runs a :class:`gatedcells.Cell` over a sequence: ``flax.nnx.RNN``'s options, no math.

    The params are one ``nnx.Param`` per array of ``cell.init``'s pytree, named by its fields
    (``layer.w_x``, ``layer.w_h``, ``layer.b``; a stack's under ``layer.layers[k]``), so
    ``nnx.state(layer, nnx.Param)``, path filters and optax masks see them per array.
    :meth:`params` hands back exactly ``cell.init``'s pytree:
    ``gatedcells.unroll(layer.cell, layer.params(), xs)`` equals ``layer(xs)``. No RNG key
    is stored.

    Differences from ``flax.nnx.RNN``, on purpose (as :class:`gatedcells.linen.RNN`):
    outputs past each sequence's length are exactly zero and the carry stops at the last
    valid step (Flax runs the cell over the padding); ``reverse=True`` with
    ``keep_order=False`` returns outputs in processing order, padding still at the end, as
    Flax does; the carry starts at zeros unless ``initial_carry`` is given.

    Args:
      cell: a :class:`gatedcells.Cell` (stacks and bidirectional layers included).
      in_features: ``I``, the size of the inputs.
      rngs: an ``nnx.Rngs``; the params come from its ``params`` stream.
      time_major: inputs and outputs ``[T, *B, ...]`` instead of ``[*B, T, ...]``.
      reverse: read each sequence from its end.
      keep_order: with ``reverse``, return the outputs aligned with the inputs.
      return_carry: return ``(carry, ys)`` instead of ``ys``.
      unroll: time steps per loop iteration of the scan (``None``: per backend).
      regularizer: a recurrent regulariser ``(cell, key=, deterministic=) -> cell``, e.g.
        ``functools.partial(gc.recurrent_dropout, rate=0.25)``, with a key from the call's
        ``rngs`` (its ``dropout`` stream).
      deterministic: turn the regulariser off (``model.eval()`` sets it, ``model.train()``
        clears it; a call may override it).
      param_metadata: ``nnx.Param`` metadata per field name (e.g. sharding annotations).

    Examples:
      >>> import jax.numpy as jnp, gatedcells as gc, gatedcells.nnx as gnnx
      >>> from flax import nnx
      >>> layer = gnnx.RNN(gc.lstm(16), 3, rngs=nnx.Rngs(0), return_carry=True)
      >>> carry, ys = layer(jnp.ones((4, 10, 3)), seq_lengths=jnp.array([10, 7, 3, 1]))
      >>> ys.shape, carry.h.shape, float(abs(ys[3, 1:]).max())
      ((4, 10, 16), (4, 16), 0.0)
      >>> type(layer.params()).__name__, layer.w_x.shape
      ('LSTMParams', (3, 64))
    """

    __signature__ = InitSignature()  # the __init__'s, not NNX's metaclass's

    def __init__(
        self,
        cell: Cell,
        in_features: int,
        *,
        rngs: nnx.Rngs,
        time_major: bool = False,
        reverse: bool = False,
        keep_order: bool = False,
        return_carry: bool = False,
        unroll: int | bool | None = None,
        regularizer: Callable[..., Cell] | None = None,
        deterministic: bool = False,
        param_metadata: Metadata | None = None,
    ):
        self.cell = _checks.check_cell("cell", cell, _params.flax_advice(cell))
        self.in_features = _checks.check_positive_int("in_features", in_features)
        flags = dict(
            time_major=time_major, reverse=reverse, keep_order=keep_order, return_carry=return_carry
        )
        for name, flag in flags.items():
            _checks.check_flag(name, flag)
        _checks.check_unroll(unroll)
        self.time_major, self.reverse, self.keep_order = time_major, reverse, keep_order
        self.return_carry, self.unroll = return_carry, unroll
        self.regularizer, self.deterministic = regularizer, deterministic
        params = cell.init(_params.init_key(rngs), self.in_features)
        _params.attach(self, params, metadata=param_metadata)

    def __call__(
        self,
        xs: Array,
        *,
        initial_carry: Carry | None = None,
        seq_lengths: Array | None = None,
        return_carry: bool | None = None,
        time_major: bool | None = None,
        reverse: bool | None = None,
        keep_order: bool | None = None,
        rngs: Rngs = None,
        deterministic: bool | None = None,
    ) -> Array | tuple[Carry, Array]:
        """Run the cell over ``xs``.

        Args:
          xs: ``[*B, T, I]`` (``[T, *B, I]`` when time-major), any floating dtype.
          initial_carry: the carry to start from (``cell.initial_carry(B)``, or plain
            tuples in place of its NamedTuples: handed back as given); zeros if None.
          seq_lengths: integer ``[*B]``, the valid length of each right-padded sequence.
          return_carry, time_major, reverse, keep_order: override the attributes of the
            same names for this call (as ``flax.nnx.RNN`` allows).
          rngs: the key source of the regulariser (an ``nnx.Rngs``, a stream or a key);
            unused without one.
          deterministic: overrides the attribute.

        Returns:
          ``ys [*B, T, O]`` (``[T, *B, O]``), or ``(carry, ys)`` with ``return_carry``.

        Raises:
          TypeError, ValueError: as :func:`gatedcells.unroll` (``seq_lengths`` is its
            ``lengths``); a regulariser in training mode without ``rngs``.
        """
        carry, ys = options.run(
            self._cell(rngs, deterministic),
            self.params(),
            xs,
            initial_carry,
            seq_lengths,
            time_major=pick(time_major, self.time_major),
            reverse=pick(reverse, self.reverse),
            keep_order=pick(keep_order, self.keep_order),
            unroll=self.unroll,
        )
        return (carry, ys) if pick(return_carry, self.return_carry) else ys

    def initial_carry(self, batch_shape: tuple[int, ...] = (), dtype: Any = None) -> Carry:
        """The zero carry a stream starts from: ``cell.initial_carry(batch_shape, dtype)``.

        ``batch_shape`` is a step input's shape without its last axis, ``(*B,)``.
        """
        return self.cell.initial_carry(batch_shape, dtype)

    def step(
        self,
        x: Array,
        carry: Carry | None = None,
        *,
        rngs: Rngs = None,
        deterministic: bool | None = None,
    ) -> tuple[Carry, Array]:
        """One time step, for streaming and generation: ``x [*B, I] -> (carry, y [*B, O])``.

        Feeding the carry forward step by step (or chunk by chunk through
        ``layer(xs, initial_carry=carry, return_carry=True)``) gives the outputs of one long
        call. ``reverse`` and ``time_major`` play no part in a single step (a ``reverse``
        layer's stream is fed from the sequence's end).

        Args:
          x: ``[*B, I]``, one step of every sequence.
          carry: the carry so far (:meth:`initial_carry`, or a previous step's or call's);
            zeros if None.
          rngs, deterministic: as in ``__call__``, for the regulariser (a key per step).

        Returns:
          ``(carry, y)``, the carry in the containers given.

        Examples:
          >>> import jax.numpy as jnp, gatedcells as gc, gatedcells.nnx as gnnx
          >>> from flax import nnx
          >>> layer = gnnx.RNN(gc.gru(8), 3, rngs=nnx.Rngs(0))
          >>> xs = jnp.ones((2, 5, 3))
          >>> carry = layer.initial_carry((2,))
          >>> for t in range(5):
          ...     carry, y = layer.step(xs[:, t], carry)
          >>> bool(jnp.allclose(y, layer(xs)[:, -1], atol=1e-6))
          True
        """
        return options.step(self._cell(rngs, deterministic), self.params(), x, carry)

    def _cell(self, rngs: Rngs, deterministic: bool | None) -> Cell:
        """The cell with the regulariser applied (a fresh key), or the cell itself."""
        if self.regularizer is None:
            return self.cell
        off = pick(deterministic, self.deterministic)
        key = None if off else dropout_key(rngs, "RNN(regularizer=...)")
        return self.regularizer(self.cell, key=key, deterministic=off)

    def params(self) -> Params:
        """The params as ``cell.init`` returns them (e.g. an :class:`gatedcells.LSTMParams`)."""
        return _params.gather(self, self.cell, self.in_features)

    def as_cell(self) -> Cell:
        """The cell whose params are :meth:`params`: ``self.cell``."""
        return self.cell

    def set_view(self, deterministic: bool | None = None) -> None:
        """For ``nnx.view(model, deterministic=...)``."""
        if deterministic is not None:
            self.deterministic = deterministic
