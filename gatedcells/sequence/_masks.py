"""Length masks shared by every sequence driver: which steps are valid, and what a padded
step does (it keeps the carry and outputs zero)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .. import _checks
from .._cell import Array, Carry


def mask_step(valid_t: Array, new_carry: Carry, carry: Carry, y: Array) -> tuple[Carry, Array]:
    """Keep the old carry and output zeros where ``valid_t [*B]`` is false."""
    keep = valid_t[..., None]
    new_carry = jax.tree.map(lambda n, o: jnp.where(keep, n, o), new_carry, carry)
    return new_carry, jnp.where(keep, y, jnp.zeros_like(y))


def valid_mask(
    lengths: Array, steps: int, batch_shape: tuple[int, ...], name: str = "lengths"
) -> Array:
    """``[T, *B]`` booleans ``t < lengths``, after checking ``lengths`` (called ``name`` in
    the messages: Flax modules call it ``seq_lengths``)."""
    lengths = _checks.check_lengths(lengths, steps, batch_shape, name)
    t = jnp.arange(steps).reshape((steps,) + (1,) * len(batch_shape))
    return t < jnp.asarray(lengths).astype(t.dtype)[None]
