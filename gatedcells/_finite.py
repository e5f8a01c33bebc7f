"""Reporting non-finite values where the user asks for it: :func:`check_finite`."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def check_finite(tree: Any, name: str = "xs") -> Any:
    r"""Check that every floating leaf of ``tree`` is finite (no NaN, no Inf); return ``tree``.

    The cells and :func:`gatedcells.unroll` never check their inputs' values (a check costs a
    pass over the data and, under ``jax.jit``, a transfer to the host): a NaN in ``xs``
    propagates to the outputs and the gradients silently. Call this where a check is wanted,
    e.g. on a batch before a training step. The cells themselves produce no NaN or Inf from
    finite inputs (tested over ``T = 10,000`` steps of ``|x|`` up to ``1e3`` in float32 and
    bfloat16, gradients included).

    - On concrete arrays (eager code) it raises at once.
    - Under a transformation (``jax.jit``, ``lax.scan``, ...) it stages a
      ``jax.experimental.checkify`` check: wrap the transformed function with
      ``checkify.checkify`` and the check's error comes back as a value
      (``err, out = checkify.checkify(jax.jit(f))(...)``; ``err.throw()`` raises it).
      ``checkify.float_checks`` added to the errors also reports the first operation that
      *produces* a NaN; ``jax.debug_nans`` does the same without checkify, rerunning the
      offending computation op by op.

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
    from jax.experimental import checkify

    bad = ~jnp.isfinite(leaf)
    checkify.check(
        ~jnp.any(bad),
        f"{where} holds {{count}} non-finite values (NaN or Inf)",
        count=jnp.sum(bad, dtype=jnp.int32),
    )
