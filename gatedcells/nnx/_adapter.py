"""``Cell``: a gatedcells cell as a ``flax.nnx.RNNCellBase``."""

from __future__ import annotations

from typing import Any

import jax
from flax import nnx

from .. import _cell, _checks
from .._cell import Array, Carry, Params
from . import _params
from ._params import Metadata
from ._signature import InitSignature


class Cell(nnx.RNNCellBase):
    r"""A :class:`gatedcells.Cell` as a ``flax.nnx.RNNCellBase``.

    For code written against NNX's cell interface:
    ``nnx.RNN(gatedcells.nnx.Cell(gatedcells.lstm(128), in_features, rngs=rngs))`` runs the
    cell with ``nnx.scan``, inside ``nnx.Bidirectional`` too. ``__call__(carry, x)`` is
    ``cell.step`` with this module's params; ``initialize_carry`` returns
    ``cell.initial_carry`` (zeros), and needs no ``rngs`` for them. Prefer :class:`RNN` for
    whole sequences: it computes the input projection of all steps in one matmul before the
    scan, and runs the cell's fused gradient.

    The params are one ``nnx.Param`` per array, named by the cell's fields (``w_x``, ``w_h``,
    ``b``, ...); :meth:`params` hands back exactly ``cell.init``'s pytree. The carry comes
    back in the containers it came in: a plain ``(c, h)`` tuple, what Flax's
    ``nnx.LSTMCell`` takes, stays a tuple.

    Args:
      cell: a steppable :class:`gatedcells.Cell` (not a bidirectional layer).
      in_features: ``I``, the size of the inputs.
      rngs: an ``nnx.Rngs``: the params are drawn from its ``params`` stream (no key is
        stored).
      param_metadata: ``nnx.Param`` metadata per field name, e.g. sharding annotations
        ``{"w_h": {"out_sharding": (None, "model")}}``.

    Examples:
      >>> import jax.numpy as jnp, gatedcells as gc, gatedcells.nnx as gnnx
      >>> from flax import nnx
      >>> layer = nnx.RNN(gnnx.Cell(gc.gru(8), 3, rngs=nnx.Rngs(0)))
      >>> layer(jnp.ones((2, 5, 3))).shape
      (2, 5, 8)
      >>> [path for path, _ in nnx.to_flat_state(nnx.state(layer, nnx.Param))]
      [('cell', 'b'), ('cell', 'b_hn'), ('cell', 'w_h'), ('cell', 'w_x')]
    """

    __signature__ = InitSignature()  # the __init__'s, not NNX's metaclass's

    def __init__(
        self,
        cell: _cell.Cell,
        in_features: int,
        *,
        rngs: nnx.Rngs,
        param_metadata: Metadata | None = None,
    ):
        self.cell = _checks.check_cell("cell", cell, _params.flax_advice(cell))
        self.in_features = _checks.check_positive_int("in_features", in_features)
        params = cell.init(_params.init_key(rngs), self.in_features)
        _params.attach(self, params, metadata=param_metadata)

    def __call__(self, carry: Carry, x: Array) -> tuple[Carry, Array]:
        """One step: ``x [*B, I] -> (carry, y [*B, O])``, the carry in the containers given."""
        x = _checks.check_float_array("x", x)
        own = _checks.check_carry(self.cell, carry, x.shape[:-1])
        new, y = self.cell.step(self.params(), own, x)
        return _checks.like_carry(carry, new), y

    def initialize_carry(
        self,
        input_shape: tuple[int, ...],
        rngs: nnx.Rngs | nnx.RngStream | None = None,
        carry_init: Any = None,
    ) -> Carry:
        """The carry for inputs ``[*B, I]``: zeros (``rngs`` unused), or ``carry_init(key,
        shape, dtype)`` per leaf with keys from ``rngs`` (its ``carry`` stream)."""
        zeros = self.cell.initial_carry(tuple(input_shape[:-1]))
        if carry_init is None:
            return zeros
        if rngs is None:
            raise ValueError(
                "initialize_carry(carry_init=...) needs rngs (e.g. nnx.Rngs(carry=0)) to draw "
                "the carry; the zero carry (carry_init=None) needs none"
            )
        stream = rngs.carry if isinstance(rngs, nnx.Rngs) else rngs
        return jax.tree.map(lambda z: carry_init(stream(), z.shape, z.dtype), zeros)

    @property
    def num_feature_axes(self) -> int:
        """How many trailing axes a step's input has (``cell.feature_ndim``)."""
        return self.cell.feature_ndim

    def params(self) -> Params:
        """The params as ``cell.init`` returns them (e.g. an :class:`gatedcells.LSTMParams`)."""
        return _params.gather(self, self.cell, self.in_features)

    def as_cell(self) -> _cell.Cell:
        """The :class:`gatedcells.Cell` whose params are :meth:`params`: ``self.cell``."""
        return self.cell
