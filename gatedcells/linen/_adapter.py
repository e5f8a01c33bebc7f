"""``Cell``: a gatedcells cell as a ``flax.linen.RNNCellBase``."""

from __future__ import annotations

import flax.linen as nn

from .. import _cell, _checks
from .._cell import Array, Carry


class Cell(nn.RNNCellBase):
    r"""A :class:`gatedcells.Cell` as a ``flax.linen.RNNCellBase``.

    For code written against Flax's cell interface:
    ``flax.linen.RNN(gatedcells.linen.Cell(gatedcells.lstm(128)))`` runs the cell with
    ``nn.scan``, inside ``flax.linen.Bidirectional`` too. ``__call__(carry, x)`` is
    ``cell.step`` with the params fetched as this module's param ``"cell"`` (exactly
    ``cell.init``'s pytree); ``initialize_carry`` returns ``cell.initial_carry`` (zeros).
    The carry comes back in the containers it came in: a plain ``(c, h)`` tuple, what
    ``flax.linen.LSTMCell`` takes and returns, stays a tuple (``nn.scan`` needs the same
    type in and out), so a Flax encoder's carry feeds a gatedcells decoder. Prefer
    :class:`RNN` for whole sequences: it computes the input projection of all steps in one
    matmul before the scan.

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
        """One step: ``x [*B, I] -> (carry, y [*B, O])``, the carry in the containers given."""
        x = _checks.check_float_array("x", x)
        params = self.param("cell", self.cell.init, x.shape[-1])
        own = _checks.check_carry(self.cell, carry, x.shape[:-1])
        new, y = self.cell.step(params, own, x)
        return _checks.like_carry(carry, new), y

    @nn.nowrap
    def initialize_carry(self, rng: Array, input_shape: tuple[int, ...]) -> Carry:
        """Zeros for inputs of shape ``[*B, I]`` (``rng`` is unused)."""
        del rng
        return self.cell.initial_carry(tuple(input_shape[:-1]))

    @property
    def num_feature_axes(self) -> int:
        """How many trailing axes a step's input has (``cell.feature_ndim``)."""
        return self.cell.feature_ndim
