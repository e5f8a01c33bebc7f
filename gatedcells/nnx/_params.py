"""A cell's params pytree as NNX variables: one ``nnx.Param`` per array, named by its field.

``attach`` turns ``cell.init``'s pytree into attributes of a module: the fields of a
NamedTuple become attributes of the module itself (``layer.w_x``), a tuple (a stack's
layers, a bidirectional pair) an ``nnx.List`` (``layer.layers[0].w_x``) or attributes named
by the caller (``layer.forward.w_x``), a nested NamedTuple a :class:`Fields` module, each
array an ``nnx.Param``. A NamedTuple with a field the layer already uses for itself
(:data:`RESERVED`: ``learned_initial_carry``'s ``cell``) goes whole under
``layer.cell_params`` (``layer.cell_params.cell.w_x``). ``gather`` reads them back into exactly the pytree ``cell.init``
returns (same NamedTuple types, ``None`` fields included), so the functional path and the
module share weights. The layout is read from ``jax.eval_shape(cell.init)``: nothing but the
arrays is stored.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import jax
from flax import nnx

from .. import _checks
from .._cell import Array, Cell, Params

Metadata = Mapping[str, Mapping[str, Any]]  # field name -> nnx.Param metadata


class Fields(nnx.Module):
    """The arrays of one NamedTuple (or dict) of params, as attributes named by its fields.

    Attributes:
      kind: the name of the NamedTuple type (e.g. ``"LSTMParams"``), for display.
    """

    def __init__(self, value: Any, metadata: Metadata):
        self.kind = type(value).__name__
        items = value._asdict() if hasattr(value, "_asdict") else dict(value)
        for name, leaf in items.items():
            if leaf is not None:
                setattr(self, name, to_nnx(leaf, metadata, name))


def to_nnx(value: Any, metadata: Metadata, name: str | None = None) -> Any:
    """``value`` (a params pytree) as NNX nodes: ``nnx.Param`` leaves."""
    if value is None:
        return None
    if hasattr(value, "_fields") or isinstance(value, dict):
        return Fields(value, metadata)
    if isinstance(value, tuple | list):
        return nnx.List([to_nnx(v, metadata, name) for v in value])
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return nnx.Param(value, **dict(metadata.get(name, {})))
    raise TypeError(f"params leaves must be arrays, got {type(value).__name__} at {name!r}")


# the names of the layers' own attributes and methods: a cell whose params have a field of
# one of these names (``learned_initial_carry``'s ``cell``) keeps them under ``cell_params``
RESERVED = frozenset(
    "cell in_features time_major reverse keep_order return_carry unroll regularizer "
    "deterministic layer_cells dropout layers forward backward cell_params kind params "
    "as_cell set_view initialize_carry num_feature_axes".split()
)


def attach(
    module: nnx.Module,
    params: Params,
    names: tuple[str, ...] | None = None,
    metadata: Metadata | None = None,
) -> None:
    """Set ``params`` on ``module`` (see the module docstring); ``names`` name the entries of
    a top-level tuple (default: one ``nnx.List`` attribute ``layers``)."""
    metadata = check_metadata(metadata)
    mode = _mode(params, names)
    if mode == "fields":
        top = {k: v for k, v in params._asdict().items() if v is not None}
    elif mode == "named":
        top = dict(zip(names, params, strict=True))
    else:
        top = {mode: params}
    for name, value in top.items():
        setattr(module, name, to_nnx(value, metadata, name))


def gather(
    module: nnx.Module, cell: Cell, input_size: int, names: tuple[str, ...] | None = None
) -> Params:
    """The params pytree of ``cell`` (``cell.init``'s, exactly) from ``module``'s params."""
    treedef, paths, shapes = layout(cell, input_size)
    mode = _mode(shapes, names)
    if mode == "fields":
        root = module
    elif mode == "named":
        root = [getattr(module, n) for n in names]
    else:
        root = getattr(module, mode)
    leaves = []
    for path in paths:
        node = root
        for key in path:
            node = _child(node, key)
        leaves.append(node[...])
    return treedef.unflatten(leaves)


def _mode(params: Any, names: tuple[str, ...] | None) -> str:
    """Where the top of ``params`` goes: ``"fields"`` (a NamedTuple's fields on the module
    itself), ``"named"`` (a tuple's entries as ``names``), or the one attribute holding it
    all (``"layers"`` for a tuple, ``"cell_params"`` otherwise)."""
    if hasattr(params, "_fields"):
        return "cell_params" if RESERVED.intersection(params._fields) else "fields"
    if isinstance(params, tuple | list):
        return "layers" if names is None else "named"
    return "cell_params"


def _child(node: Any, key: Any) -> Any:
    if isinstance(key, jax.tree_util.GetAttrKey):
        return getattr(node, key.name)
    if isinstance(key, jax.tree_util.DictKey):
        return getattr(node, key.key)
    return node[key.idx]  # SequenceKey


def layout(cell: Cell, input_size: int) -> tuple[Any, tuple, Any]:
    """``(treedef, key paths of the leaves, shapes)`` of ``cell.init(key, input_size)``, from
    ``jax.eval_shape`` (cached per cell)."""
    try:
        return _cached_layout(cell, input_size)
    except TypeError:  # a cell with an unhashable field: not cached
        return _layout(cell, input_size)


@functools.lru_cache(maxsize=256)
def _cached_layout(cell: Cell, input_size: int) -> tuple[Any, tuple, Any]:
    return _layout(cell, input_size)


def _layout(cell: Cell, input_size: int) -> tuple[Any, tuple, Any]:
    shapes = jax.eval_shape(lambda key: cell.init(key, input_size), jax.random.key(0))
    flat, treedef = jax.tree_util.tree_flatten_with_path(shapes)
    return treedef, tuple(path for path, _ in flat), shapes


def check_metadata(metadata: Any) -> Mapping[str, Mapping[str, Any]]:
    """``param_metadata`` must map field names to mappings of ``nnx.Param`` metadata."""
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping) or not all(
        isinstance(k, str) and isinstance(v, Mapping) for k, v in metadata.items()
    ):
        raise TypeError(
            "param_metadata must map field names to nnx.Param metadata, e.g. "
            f"{{'w_x': {{'out_sharding': (None, 'model')}}}}, got {metadata!r}"
        )
    return metadata


def init_key(rngs: Any) -> Array:
    """A params key from ``rngs``: an ``nnx.Rngs`` (its ``params`` stream), a stream, a key."""
    if isinstance(rngs, nnx.Rngs):
        return rngs.params()
    if isinstance(rngs, nnx.RngStream):
        return rngs()
    if hasattr(rngs, "dtype"):
        _checks.check_key("rngs", rngs)
        return rngs
    raise TypeError(f"rngs must be an nnx.Rngs (e.g. nnx.Rngs(0)), got {rngs!r}")


def flax_advice(value: Any) -> str:
    """What to write instead of an NNX module where a gatedcells cell was expected (the end
    of ``check_cell``'s message)."""
    return ": run Flax's cells with flax.nnx.RNN" if isinstance(value, nnx.Module) else ""
