"""Varying manual axes: scan carries built from constants inside ``jax.shard_map``.

Inside ``jax.shard_map`` (``check_vma=True``) every value has a type that names the mesh
axes it varies over (``jax.typeof(x).manual_axis_type.varying`` in jax 0.10, ``.vma``
before). A scan's carry must keep its type, so a carry
built from constants (zeros, ``cell.initial_carry``, a learned initial carry, a
``zeros_like`` accumulator of a custom gradient) must start as varying as the inputs that
reach it. Outside ``shard_map`` every ``vma`` is empty and these are no-ops.

Under a mesh with ``Explicit`` axes (``jax.sharding.AxisType.Explicit``, ``jax.set_mesh``)
an array's type holds its sharding instead (``float32[4@b, 8]``): a carry or a padding
built from constants is replicated, and a scan or a ``where`` that meets it with the
batch-split inputs refuses. :func:`shard_like_batch` and :func:`like` give them the
inputs' sharding; elsewhere they are no-ops too.
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


def shard_like_batch(carry: Any, xs: Any) -> Any:
    """``carry`` (leaves ``[*B, ...]``) sharded over its batch axes as ``xs [T, *B, ..., I]``
    is, under a mesh with ``Explicit`` axes (where an array's type holds its sharding and a
    scan's carry must keep its type); ``carry`` itself elsewhere.

    A carry built from constants is replicated; after one step that reads the inputs it is
    split as they are. A leaf's own sharding of its other axes is kept.
    """
    if not explicit(xs):
        return carry
    sharding = jax.typeof(xs).sharding
    lead = tuple(sharding.spec)[1:-1]  # *B (and a frame's *S)

    def shard(leaf):
        own = tuple(jax.typeof(leaf).sharding.spec)
        if len(own) < len(lead) or own[: len(lead)] == lead:
            return leaf
        spec = (
            tuple(o if o is not None else x for o, x in zip(own[: len(lead)], lead, strict=True))
            + own[len(lead) :]
        )
        return jax.sharding.reshard(leaf, sharding.update(spec=jax.sharding.PartitionSpec(*spec)))

    return jax.tree.map(shard, carry)


def like(x: Any, ref: Any) -> Any:
    """``x`` sharded as ``ref`` (of ``x``'s rank) under ``Explicit`` mesh axes, where a
    constant (``jnp.ones``) or a broadcast param is replicated and an operation that mixes
    it with ``ref`` refuses; ``x`` itself elsewhere."""
    if not explicit(ref):
        return x
    return jax.sharding.reshard(x, jax.typeof(ref).sharding)


def partitioned() -> bool:
    """Whether code traced now may see arrays split over devices by jit's partitioner: the
    mesh of ``jax.set_mesh`` has an axis of several devices that is not manual (inside
    ``shard_map`` each device holds its own rows, as a single device does)."""
    mesh = jax.sharding.get_abstract_mesh()
    manual = jax.sharding.AxisType.Manual
    return any(n > 1 and t != manual for n, t in zip(mesh.axis_sizes, mesh.axis_types, strict=True))


def explicit(*trees) -> bool:
    """Whether a leaf of ``trees`` lives on a mesh with ``Explicit`` axes."""
    for leaf in jax.tree.leaves(trees):
        sharding = getattr(jax.typeof(leaf), "sharding", None)
        if sharding is not None and getattr(sharding.mesh, "explicit_axes", ()):
            return True
    return False
