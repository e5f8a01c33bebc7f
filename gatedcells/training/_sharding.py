"""Data parallelism for :func:`~gatedcells.training.fit`: the mesh, the compiled chunk of
steps, and the batches split over the mesh's devices."""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable, Iterable
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from .._cores import splits, under_mesh
from ._state import Batch, TrainState


def data_mesh(mesh: Mesh | str | None, rows: int | None = None) -> Mesh | None:
    """The mesh :func:`fit` shards batches of ``rows`` rows over: ``"auto"`` is a one-axis
    ``("data",)`` mesh of every device when there is more than one and the batch is worth
    splitting over them (:func:`gatedcells._cores.splits`), else ``None`` (one device); a
    batch the devices do not divide says so in a warning (in one process; over several,
    the split is kept and refused at the first step)."""
    if isinstance(mesh, str):
        if mesh != "auto":
            raise ValueError(f'mesh must be "auto", None or a jax.sharding.Mesh, got {mesh!r}')
        devices = jax.devices()
        if len(devices) == 1:
            return None
        if rows is None or splits(rows, len(devices)) or jax.process_count() > 1:
            return Mesh(np.asarray(devices), ("data",))
        if rows % len(devices):
            warnings.warn(
                f"fit: a batch of {rows} does not split over {len(devices)} devices; training "
                f"on one (a batch size they divide uses them all; mesh=None silences this)",
                stacklevel=3,
            )
        return None
    if mesh is not None and not isinstance(mesh, Mesh):
        raise TypeError(f'mesh must be "auto", None or a jax.sharding.Mesh, got {mesh!r}')
    return mesh


def replicate(state: TrainState, mesh: Mesh | None) -> TrainState:
    """``state`` on every device of ``mesh`` (as it is when ``mesh`` is ``None``).

    A mesh spanning several processes (``jax.distributed``) holds devices this process
    cannot address: each process, holding the same ``state``, builds its devices' copies
    (``jax.make_array_from_callback``), where ``jax.device_put`` would refuse."""
    if mesh is None:
        return state
    sharding = NamedSharding(mesh, PartitionSpec())
    if sharding.is_fully_addressable:
        return jax.device_put(state, sharding)
    return jax.tree.map(lambda leaf: _global(leaf, sharding), state)


def _global(leaf, sharding: NamedSharding):
    """The process-local ``leaf``, the same in every process, as one global replicated array."""
    if jax.dtypes.issubdtype(jax.numpy.result_type(leaf), jax.dtypes.prng_key):
        data = _global(jax.random.key_data(leaf), sharding)
        return jax.random.wrap_key_data(data, impl=jax.random.key_impl(leaf))
    host = np.asarray(leaf)
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def chunk_runner(step: Callable, data: Any, mesh: Mesh | None) -> Callable:
    """A jitted ``run(state, stacked_batches, n) -> (state, metrics [n])``; with a ``mesh``,
    batches are split over its devices along their leading axis and the state replicated."""
    shard = batch_sharder(mesh)
    if callable(data):

        def body(state, _):
            key, data_key = jax.random.split(state.key)
            return step(state._replace(key=key), shard(data(data_key)))

    elif isinstance(data, Iterable):

        def body(state, batch):
            return step(state, shard(batch))

    else:
        raise TypeError(f"data must be a sampler (key -> batch) or an iterable, got {data!r}")

    def run(state: TrainState, stacked: Batch | None, n: int):
        return jax.lax.scan(body, state, stacked, length=n)

    if mesh is None:
        return jax.jit(run, static_argnums=2)
    replicated = NamedSharding(mesh, PartitionSpec())
    return under_mesh(mesh, jax.jit(run, static_argnums=2, out_shardings=replicated))


def batch_rows(data: Any, key) -> tuple[int | None, Any]:
    """The leading size of ``data``'s batches (``None`` if unknown), and ``data`` again (an
    iterable's first batch is read, and put back in front)."""
    if callable(data):
        batch = jax.eval_shape(data, key)
    else:
        data = iter(data)
        batch = next(data, None)
        if batch is None:
            return None, data
        data = itertools.chain([batch], data)
    shapes = [np.shape(leaf) for leaf in jax.tree.leaves(batch)]
    return next((s[0] for s in shapes if s), None), data


def batch_sharder(mesh: Mesh | None) -> Callable[[Batch], Batch]:
    """``batch -> batch`` constrained to be split over ``mesh`` along every leaf's axis 0."""
    if mesh is None:
        return lambda batch: batch
    sharding = NamedSharding(mesh, PartitionSpec(mesh.axis_names))

    def constrain(leaf):
        if np.ndim(leaf) == 0:
            return leaf
        if leaf.shape[0] % mesh.size:
            raise ValueError(
                f"a batch of {leaf.shape[0]} (leading axis of a leaf of shape "
                f"{tuple(leaf.shape)}) does not split over {mesh.size} devices; use a batch "
                "size they divide, or mesh=None for one device"
            )
        return jax.lax.with_sharding_constraint(leaf, sharding)

    return lambda batch: jax.tree.map(constrain, batch)
