"""Checks of values, where the user asks for them: :func:`check_finite` and
:func:`check_lengths`. Eager arrays raise at once; traced ones stage a
``jax.experimental.checkify`` check."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import checkify

from . import _checks


def check_finite(tree: Any, name: str = "xs") -> Any:
    r"""Check that every floating leaf of ``tree`` is finite (no NaN, no Inf); return ``tree``.

    The cells and :func:`gatedcells.unroll` never check their inputs' values (a check costs a
    pass over the data and, under ``jax.jit``, a transfer to the host): call this where a
    check is wanted, e.g. on a batch before a training step. The cells themselves produce no
    NaN or Inf from finite inputs (tested over ``T = 10,000`` steps of ``|x| <= 1e3`` in
    float32 and bfloat16, gradients included).

    - On concrete arrays (eager code) it raises at once.
    - Under a transformation (``jax.jit``, ``lax.scan``, ...) it stages a
      ``jax.experimental.checkify`` check: ``err, out = checkify.checkify(jax.jit(f))(...)``
      returns its error as a value (``err.throw()`` raises it). ``checkify.float_checks``
      also reports the first operation that *produces* a NaN, as ``jax.debug_nans`` does.

    Args:
      tree: an array or a pytree of arrays (integer and boolean leaves are skipped).
      name: how the message names ``tree`` (the argument's name).

    Returns:
      ``tree``, unchanged, so that a call can wrap an argument in place.

    Raises:
      TypeError: ``name`` not a string.
      ValueError: eagerly, when a leaf holds a NaN or an Inf; the message names ``name``,
        the leaf, the number of bad values and the index of the first one. Under
        ``jax.jit`` without ``checkify.checkify``, jax itself raises a ``ValueError`` at
        compile time saying that the check needs ``checkify.checkify``.

    Examples:
      >>> import jax.numpy as jnp, gatedcells as gc
      >>> xs = gc.check_finite(jnp.ones((2, 3, 4)), "xs")
      >>> gc.check_finite(jnp.ones((2, 3)).at[1, 2].set(jnp.nan), "xs")
      Traceback (most recent call last):
        ...
      ValueError: xs holds 1 non-finite value (NaN or Inf), the first at index (1, 2)
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a string (the argument's name), got {name!r}")
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    for path, leaf in leaves:
        if not hasattr(leaf, "dtype") or not jnp.issubdtype(leaf.dtype, jnp.inexact):
            continue
        where = name + jax.tree_util.keystr(path)
        if isinstance(leaf, jax.core.Tracer):
            _staged_check(leaf, where)
            continue
        value = np.asarray(leaf)
        if value.dtype.kind not in "fc":  # bfloat16 and other ml_dtypes
            value = value.astype(np.float32)
        bad = ~np.isfinite(value)
        count = int(bad.sum())
        if count:
            first = tuple(int(i) for i in np.argwhere(bad)[0])
            plural = "" if count == 1 else "s"
            raise ValueError(
                f"{where} holds {count} non-finite value{plural} (NaN or Inf), the first at "
                f"index {first}"
            )
    return tree


def _staged_check(leaf: jax.Array, where: str) -> None:
    bad = ~jnp.isfinite(leaf)
    checkify.check(
        ~jnp.any(bad),
        f"{where} holds {{count}} non-finite values (NaN or Inf)",
        count=jnp.sum(bad, dtype=jnp.int32),
    )


def check_lengths(lengths: Any, steps: int, name: str = "lengths") -> Any:
    r"""Check that every entry of ``lengths`` lies in ``[0, steps]``; return ``lengths``.

    :func:`gatedcells.unroll` checks concrete ``lengths`` itself, but under ``jax.jit`` their
    values are unknown when it is traced: there a length above ``T`` counts as ``T`` and one
    below ``0`` as ``0``, silently. Call this inside the jitted function, and wrap it with
    ``checkify.checkify``, to have such values reported.

    Args:
      lengths: an integer array (any shape), e.g. the ``lengths [*B]`` of ``unroll``.
      steps: ``T``, the number of time steps of the padded sequences.
      name: how the message names ``lengths``.

    Returns:
      ``lengths``, unchanged.

    Raises:
      TypeError: ``lengths`` not integer.
      ValueError: eagerly, when a value lies outside ``[0, steps]``. Under ``jax.jit``
        without ``checkify.checkify``, jax raises at compile time that the check needs it.

    Examples:
      >>> import jax, jax.numpy as jnp, gatedcells as gc
      >>> from jax.experimental import checkify
      >>> f = checkify.checkify(jax.jit(lambda n: gc.check_lengths(n, 5) * 2))
      >>> err, out = f(jnp.array([3, 7]))
      >>> err.get()
      'lengths must lie in [0, T] = [0, 5], got values from 3 to 7...'
    """
    lengths = _checks.checked_lengths(lengths, steps, name)  # dtype, and concrete values
    if isinstance(lengths, jax.core.Tracer) and np.size(lengths):
        low, high = jnp.min(lengths), jnp.max(lengths)
        message = _checks.lengths_out_of_range(name, steps)
        checkify.check((low >= 0) & (high <= steps), message, low=low, high=high)
    return lengths
