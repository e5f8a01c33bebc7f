"""``sharded_unroll``: :func:`gatedcells.unroll` with the time axis sharded over a mesh."""

from __future__ import annotations

import jax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from .._cell import Array, Carry, Cell, Params
from ._layout import check_sequence
from ._time_shards import check_time_shardable
from ._unroll import unroll as unroll_


def sharded_unroll(
    cell: Cell,
    params: Params,
    xs: Array,
    carry: Carry | None = None,
    *,
    mesh: jax.sharding.Mesh,
    axis_name: str,
    batch_axis_name: str | None = None,
    lengths: Array | None = None,
    reverse: bool = False,
    time_major: bool = False,
    unroll: int | bool | None = None,
    grad: str = "auto",
) -> tuple[Carry, Array]:
    r""":func:`gatedcells.unroll` sequence-parallel: ``xs``'s time axis sharded over ``mesh``.

    Builds the ``jax.shard_map`` that :func:`gatedcells.unroll` with ``axis_name`` runs in:
    ``xs`` split along time over the mesh axis ``axis_name`` (``D`` blocks of ``T / D``
    consecutive steps) and, with ``batch_axis_name``, along its first batch axis; params
    replicated. Each device runs its block; the block summaries of the linear recurrence
    cross devices in ``ceil(log2 D)`` rounds of ``jax.lax.ppermute`` (see
    :func:`gatedcells.linear_recurrence`), so the exchange does not grow with ``T``. For
    the cells whose recurrence is diagonal and linear (``min_gru``, ``min_lstm``,
    ``rg_lru``, ``lru``, ``selective_ssm``, stacks and bidirectional layers of them).
    Works eagerly and under ``jax.jit`` / ``jax.grad``; the result equals ``gc.unroll``'s on
    one device to float rounding.

    Args:
      cell, params, xs, carry, lengths, reverse, time_major, unroll, grad: as in
        :func:`gatedcells.unroll`.
      mesh: a ``jax.sharding.Mesh`` with an axis ``axis_name`` whose size divides ``T``.
      axis_name: the mesh axis time is sharded over.
      batch_axis_name: a mesh axis the first batch axis is sharded over (data parallelism
        on top), or ``None`` (the batch replicated over the other mesh axes).

    Returns:
      ``(carry, ys)``: ``ys`` laid out as ``xs`` and sharded as it (over time, and the batch
      with ``batch_axis_name``), the final carry replicated over ``axis_name``.

    Raises:
      TypeError: ``mesh`` not a ``jax.sharding.Mesh``, or what :func:`gatedcells.unroll`
        raises.
      ValueError: an axis name that is not one of ``mesh``'s, a ``T`` (or first batch
        axis) its mesh axis does not divide, a cell with no sequence-parallel form or one
        that starts from a learned initial carry (:func:`gatedcells.learned_initial_carry`:
        pass its inner cell and the learned carry as ``carry``), or what
        :func:`gatedcells.unroll` raises.

    Examples:
      >>> import jax, jax.numpy as jnp, gatedcells as gc
      >>> mesh = jax.make_mesh((jax.device_count(),), ("t",))
      >>> cell = gc.rg_lru(8, input_proj=True)
      >>> params = cell.init(jax.random.key(0), 3)
      >>> xs = jax.random.normal(jax.random.key(1), (2, 16 * jax.device_count(), 3))
      >>> h, ys = gc.sharded_unroll(cell, params, xs, mesh=mesh, axis_name="t")
      >>> bool(jnp.allclose(ys, gc.unroll(cell, params, xs)[1], atol=1e-5))
      True
    """
    if not isinstance(mesh, jax.sharding.Mesh):
        raise TypeError(f"mesh must be a jax.sharding.Mesh, got {type(mesh).__name__}")
    for name, axis in (("axis_name", axis_name), ("batch_axis_name", batch_axis_name)):
        if (axis is not None or name == "axis_name") and axis not in mesh.axis_names:
            raise ValueError(
                f"{name} must be one of the mesh's axes {mesh.axis_names}, got {axis!r}"
            )
    xs, carry, layout = check_sequence(cell, params, xs, carry, time_major)
    check_time_shardable(cell)
    batch_shape = layout.batch_shape
    time, batch = (0, 1) if time_major else (len(batch_shape), 0)
    _divides(mesh, axis_name, xs.shape[time], "T (xs's time axis)")
    spec = [None] * xs.ndim
    spec[time] = axis_name
    if batch_axis_name is not None:
        if not batch_shape:
            raise ValueError("batch_axis_name needs xs with a batch axis, got none")
        _divides(mesh, batch_axis_name, batch_shape[0], "the first batch axis of xs")
        spec[batch] = batch_axis_name
    along_batch = P(batch_axis_name)

    def run(params, xs, carry, lengths):
        return unroll_(
            cell,
            params,
            xs,
            carry,
            lengths=lengths,
            reverse=reverse,
            time_major=time_major,
            unroll=unroll,
            grad=grad,
            axis_name=axis_name,
        )

    in_specs = (P(), P(*spec), along_batch, None if lengths is None else along_batch)
    out_specs = (along_batch, P(*spec))  # one spec for every leaf of the carry
    args = [
        jax.tree.map(lambda v, s=s: jax.device_put(v, NamedSharding(mesh, s)), arg)
        for arg, s in zip((params, xs, carry, lengths), in_specs, strict=True)
    ]
    return jax.shard_map(run, mesh=mesh, in_specs=in_specs, out_specs=out_specs)(*args)


def _divides(mesh, axis: str, size: int, what: str) -> None:
    if size % mesh.shape[axis]:
        raise ValueError(
            f"{what} must be a multiple of the mesh axis {axis!r} of size {mesh.shape[axis]}, "
            f"got {size}"
        )
