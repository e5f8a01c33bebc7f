"""Varying manual axes: scan carries built from constants inside ``jax.shard_map``.

Inside ``jax.shard_map`` (``check_vma=True``) every value has a type that names the mesh
axes it varies over (``jax.typeof(x).manual_axis_type.varying`` in jax 0.10, ``.vma``
before). A scan's carry must keep its type, so a carry
built from constants (zeros, ``cell.initial_carry``, a learned initial carry, a
``zeros_like`` accumulator of a custom gradient) must start as varying as the inputs that
reach it. Outside ``shard_map`` every ``vma`` is empty and these are no-ops.
"""

from typing import Any

import jax


def vma(*trees: Any) -> frozenset:
    """The mesh axes any array leaf of ``trees`` varies over (empty outside ``shard_map``)."""
    axes = frozenset()
    for leaf in jax.tree.leaves(trees):
        aval = jax.typeof(leaf)
        mat = getattr(aval, "manual_axis_type", None)
        axes |= mat.varying if mat is not None else getattr(aval, "vma", frozenset())
    return axes


def match_vma(tree: Any, *refs: Any) -> Any:
    """``tree`` with each leaf cast to vary over every mesh axis the leaves of ``refs`` do.

    Args:
      tree: a pytree of arrays, e.g. an initial carry.
      refs: pytrees whose varying axes the leaves must take (the inputs, the params).

    Returns:
      ``tree``, its leaves cast with ``jax.lax.pcast(..., to="varying")`` where they vary
      over fewer axes; ``tree`` itself when ``refs`` vary over none.
    """
    axes = vma(*refs)
    if not axes:
        return tree

    def cast(leaf):
        missing = tuple(sorted(axes - vma(leaf)))
        return jax.lax.pcast(leaf, missing, to="varying") if missing else leaf

    return jax.tree.map(cast, tree)


def sum_to_vma(cotangents: Any, primals: Any) -> Any:
    """``cotangents`` summed (``psum``) over the mesh axes their ``primals`` do not vary over.

    What a custom VJP's backward rule must return inside ``shard_map``: the gradient of a
    value replicated over an axis (params, say) is the sum of the gradients of its copies,
    as JAX's own transpose of an implicit ``pcast`` to varying does.

    Args:
      cotangents: a pytree of arrays, of ``primals``' structure.
      primals: the values the cotangents belong to.

    Returns:
      ``cotangents``, each leaf as varying as its primal.
    """

    def reduce(ct, primal):
        extra = tuple(sorted(vma(ct) - vma(primal)))
        return jax.lax.psum(ct, extra) if extra else ct

    return jax.tree.map(reduce, cotangents, primals)
