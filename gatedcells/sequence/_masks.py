"""Length masks shared by every sequence driver: which steps are valid, and what a padded
step does (it keeps the carry and outputs zero)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .. import _checks
from .._cell import Array, Carry


def mask_inputs(valid: Array | None, xs: Array) -> Array:
    """``xs [T, *B, ...]`` with zeros at the steps where ``valid [T, *B]`` is false.

    Padding is often garbage (NaN, Inf, 1e30) in real pipelines. A padded step's result is
    discarded by :func:`mask_step`, but a discarded branch still differentiates through its
    inputs (``0 * nan`` is ``nan``): padding zeroed before any step reaches no value and no
    gradient.
    """
    if valid is None:
        return xs
    keep = valid.reshape(valid.shape + (1,) * (xs.ndim - valid.ndim))
    return jnp.where(keep, xs, jnp.zeros_like(xs))


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
    lengths = _checks.checked_lengths(lengths, steps, name, batch_shape)
    t = jnp.arange(steps).reshape((steps,) + (1,) * len(batch_shape))
    return t < jnp.asarray(lengths).astype(t.dtype)[None]


def broadcast_valid(valid: Array | None, shape: tuple[int, ...]) -> Array | None:
    """``valid [T, *B]`` as one flag per carry position of inputs ``[T, *B, *S, I]`` of
    ``shape``: ``[T, *B, *S]``, so that a driver masks a ``[*B, *S, H]`` carry (frames) as
    it masks ``[*B, H]``."""
    if valid is None:
        return None
    ones = (1,) * (len(shape) - 1 - valid.ndim)
    return jnp.broadcast_to(valid.reshape(valid.shape + ones), shape[:-1])
