"""Checkpoints of a whole training run with orbax-checkpoint: save, find, refuse, restore.

A checkpoint holds everything :func:`~gatedcells.training.fit` needs to go on as if it had
never stopped: the :class:`TrainState` (params, optimizer state, step, PRNG key), the history
recorded so far, and a description of the run (the state's leaves with their shapes and
dtypes, and the caller's ``config``). orbax writes each checkpoint into a temporary folder and
renames it when complete, so a process killed at any moment, in the middle of a save
included, leaves the previous checkpoints intact; the unfinished folder is ignored and
removed on the next start.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

FORMAT = 1  # the layout of "meta", bumped if it ever changes
KEEP = 2  # checkpoints kept: the latest and the one before


def manager(directory: str | os.PathLike):
    """An orbax ``CheckpointManager`` over ``directory`` (created if missing), saving
    synchronously, keeping the last :data:`KEEP` checkpoints."""
    import orbax.checkpoint as ocp

    options = ocp.CheckpointManagerOptions(
        max_to_keep=KEEP,
        create=True,
        enable_async_checkpointing=False,
        cleanup_tmp_directories=True,
    )
    return ocp.CheckpointManager(
        os.path.abspath(os.fspath(directory)), options=options, item_names=("state", "meta")
    )


@contextlib.contextmanager
def opened(directory: str | os.PathLike | None) -> Iterator[Any]:
    """A :func:`manager` over ``directory`` (``None`` for ``None``), closed however the block
    ends, an error included (an unclosed manager may print orbax's traceback at exit)."""
    if directory is None:
        yield None
        return
    mngr = manager(directory)
    try:
        yield mngr
    finally:
        mngr.close()


def resume_or_start(
    mngr, state: Any, config: dict | None, *, resume: bool, steps: int, directory: str | os.PathLike
) -> tuple[Any, dict | None]:
    """``(state, history)`` restored from the latest checkpoint in ``mngr`` (into the structure
    and shardings of ``state``), or ``(state, None)`` to start afresh: there is no ``mngr``
    (``None``) or no checkpoint yet.

    Raises:
      ValueError: when ``directory`` holds checkpoints but ``resume`` is false (nothing is
        overwritten), when the latest belongs to another run (see :func:`restore`), or when
        it is past ``steps``.
    """
    if mngr is None:
        return state, None
    directory, latest = os.fspath(directory), mngr.latest_step()
    if latest is not None and not resume:
        raise ValueError(
            f"checkpoint_dir {directory} already holds a run's checkpoints (latest step "
            f"{latest}): pass resume=True to go on with it, or choose another folder"
        )
    state, history = restore(mngr, state, config, directory) or (state, None)
    if int(state.step) > steps:
        done = int(state.step)
        raise ValueError(f"the checkpoint in {directory} is at step {done}, past steps={steps}")
    return state, history


def json_config(config: Any) -> Any:
    """``config`` as it reads back from a checkpoint (tuples become lists)."""
    if config is None:
        return None
    try:
        return json.loads(json.dumps(config))
    except (TypeError, ValueError) as err:
        raise TypeError(f"config must be JSON-serialisable: {err}") from None


def describe(state: Any) -> list[list]:
    """``[[path, shape, dtype], ...]`` for every leaf of ``state`` (what must match)."""
    leaves = jax.tree_util.tree_flatten_with_path(state)[0]
    return [
        [jax.tree_util.keystr(path), list(np.shape(leaf)), str(jnp.asarray(leaf).dtype)]
        for path, leaf in leaves
    ]


def save(mngr, state: Any, history: dict, config: dict | None) -> None:
    """Write ``state`` (a ``TrainState``) and ``history`` as the checkpoint of its step."""
    import orbax.checkpoint as ocp

    state = _storable(state)
    meta = {"format": FORMAT, "state": describe(state), "config": config, "history": history}
    step = int(state.step)
    mngr.save(
        step,
        args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)),
        force=True,
    )
    mngr.wait_until_finished()


def read_meta(mngr) -> Any:
    """The description saved with the latest checkpoint in ``mngr`` (``{"format", "state",
    "config", "history"}`` when gatedcells wrote it); ``None`` when there is no checkpoint."""
    import orbax.checkpoint as ocp

    step = mngr.latest_step()
    if step is None:
        return None
    return mngr.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta


def restore(mngr, like: Any, config: dict | None, directory: str) -> tuple[Any, dict] | None:
    """The latest checkpoint in ``mngr`` restored into the structure (and shardings) of
    ``like``, with its history; ``None`` when there is none.

    Raises:
      ValueError: when the checkpoint belongs to another run: another ``config``, or a state
        whose leaves differ in path, shape or dtype from ``like``'s. Nothing is loaded.
    """
    import orbax.checkpoint as ocp

    step = mngr.latest_step()
    if step is None:
        return None
    meta = read_meta(mngr)
    where = f"the checkpoint in {directory} (step {step})"
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{where} was not written by gatedcells.training.fit")
    if meta["config"] != config:
        raise ValueError(f"{where} belongs to another run: {_config_diff(meta['config'], config)}")
    storable = _storable(like)
    _check_same_leaves(meta["state"], describe(storable), where)
    abstract = jax.tree.map(_abstract, storable)
    restored = mngr.restore(
        step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract))
    ).state
    restored = jax.tree.unflatten(jax.tree.structure(storable), jax.tree.leaves(restored))
    if _is_typed_key(like.key):
        restored = restored._replace(
            key=jax.random.wrap_key_data(restored.key, impl=jax.random.key_impl(like.key))
        )
    return restored, meta["history"]


def _storable(state: Any) -> Any:
    """The state with a typed PRNG key replaced by its raw data (orbax stores arrays)."""
    if _is_typed_key(state.key):
        return state._replace(key=jax.random.key_data(state.key))
    return state


def _is_typed_key(key: Any) -> bool:
    return hasattr(key, "dtype") and jnp.issubdtype(key.dtype, jax.dtypes.prng_key)


def _abstract(leaf: Any) -> jax.ShapeDtypeStruct:
    sharding = getattr(leaf, "sharding", None)
    return jax.ShapeDtypeStruct(np.shape(leaf), jnp.asarray(leaf).dtype, sharding=sharding)


def _check_same_leaves(saved: list, here: list, where: str) -> None:
    saved_paths = {p: (s, d) for p, s, d in saved}
    here_paths = {p: (s, d) for p, s, d in here}
    for path, (shape, dtype) in here_paths.items():
        if path not in saved_paths:
            raise ValueError(
                f"{where} belongs to another model: it has no leaf state{path} "
                f"(it holds {sorted(saved_paths)[:6]}...)"
            )
        if saved_paths[path] != (shape, dtype):
            old_shape, old_dtype = saved_paths[path]
            raise ValueError(
                f"{where} belongs to another model: state{path} has shape {tuple(old_shape)} "
                f"and dtype {old_dtype} there, shape {tuple(shape)} and dtype {dtype} here"
            )
    extra = sorted(set(saved_paths) - set(here_paths))
    if extra:
        raise ValueError(f"{where} belongs to another model: it holds extra leaves {extra[:6]}")


def _config_diff(saved: Any, here: Any) -> str:
    if not isinstance(saved, dict) or not isinstance(here, dict):
        return f"its config is {saved!r}, this run's is {here!r}"
    keys = sorted(set(saved) | set(here))
    diffs = [
        f"{k}={saved.get(k, '(absent)')!r} there, {here.get(k, '(absent)')!r} here"
        for k in keys
        if saved.get(k, "(absent)") != here.get(k, "(absent)")
    ]
    return "; ".join(diffs)
