"""Params on disk: a plain ``.npz`` (orbax checkpoints of a whole ``TrainState`` belong
elsewhere)."""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np

from ._state import Params


def save_params(path: str | os.PathLike, params: Params) -> None:
    """Save a params pytree as an ``.npz``, one array per leaf named by its path.

    Leaves are named like ``cell/w_x`` or ``cell/0/w_h`` (a stack's layer 0), so the file
    reads without gatedcells: ``numpy.load(path)["cell/w_x"]``.
    """
    leaves = jax.tree_util.tree_flatten_with_path(params)[0]
    arrays = {_path_name(p): np.asarray(v) for p, v in leaves}
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def load_params(path: str | os.PathLike, like: Params) -> Params:
    """Load params saved by :func:`save_params` into the structure of ``like``.

    Args:
      path: the ``.npz`` file.
      like: a params pytree of the same structure (e.g. ``model.init(key)``, or its
        ``jax.eval_shape``).

    Raises:
      ValueError: when the file's arrays do not match ``like``'s leaves (names or shapes).

    Examples:
      >>> import jax, tempfile, os, gatedcells as gc
      >>> from gatedcells import training
      >>> params = gc.lstm(4).init(jax.random.key(0), 2)
      >>> path = os.path.join(tempfile.mkdtemp(), "params.npz")
      >>> training.save_params(path, params)
      >>> back = training.load_params(path, params)
      >>> type(back).__name__, bool((back.w_h == params.w_h).all())
      ('LSTMParams', True)
    """
    leaves, treedef = jax.tree_util.tree_flatten_with_path(like)
    with np.load(path) as data:
        names = [_path_name(p) for p, _ in leaves]
        if sorted(names) != sorted(data.files):
            raise ValueError(
                f"{path} holds {sorted(data.files)}, but the params expect {sorted(names)}"
            )
        arrays = []
        for name, (_, leaf) in zip(names, leaves, strict=True):
            array = data[name]
            if array.shape != tuple(leaf.shape):
                raise ValueError(
                    f"{path}: {name} has shape {array.shape}, expected {tuple(leaf.shape)}"
                )
            arrays.append(jnp.asarray(array, leaf.dtype))
    return jax.tree_util.tree_unflatten(treedef, arrays)


def _path_name(path: tuple) -> str:
    return jax.tree_util.keystr(path, simple=True, separator="/")
