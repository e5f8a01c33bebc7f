"""Utilities over parameter pytrees."""

from __future__ import annotations

import math

import jax

from ._cell import Params


def count_params(params: Params) -> int:
    """The number of scalars in a params pytree (any cell, stack or model).

    Examples:
      >>> import jax, gatedcells as gc
      >>> I, H = 3, 8
      >>> [gc.count_params(c.init(jax.random.key(0), I)) // (I * H + H * H + H)
      ...  for c in (gc.simple_rnn(H), gc.lstm(H), gc.lstm(H, forget_gate=False))]
      [1, 4, 3]
    """
    total = 0
    for leaf in jax.tree.leaves(params):
        if not hasattr(leaf, "shape"):
            raise TypeError(
                f"params must be a pytree of arrays (or jax.ShapeDtypeStruct), got a leaf of "
                f"type {type(leaf).__name__}"
            )
        total += math.prod(leaf.shape)
    return total
