"""How params shard: logical axis names for every params field, mapped to a mesh by rules.

Every array field of every cell's params has a tuple of *logical* axis names, one per axis
(``w_x [I, G*H]`` is ``("embed", "gates")``), kept in one table here: :data:`AXES`, keyed by
the field's name, with :data:`OVERRIDES` keyed by ``(params type, field)`` where a field of
that name has other axes (the sLSTM's block-diagonal ``w_h [NH, H/NH, 4H/NH]`` is
``("heads", "head_in", "head_gates")``). The table lives beside the cells rather than in
each cell's module so that one page says how all of them shard, as Flax's logical axis
annotations and MaxText's rules do, and a new field without names fails
:func:`logical_axes` (and the test that runs it over every cell) instead of sharding
silently as replicated.

:func:`param_shardings` maps the names to a mesh with Flax-style rules (``("embed",
"fsdp")``: the input axis over the mesh axis ``"fsdp"``, FSDP; ``("heads", "tp")``: the
heads over ``"tp"``, tensor parallelism), and returns a ``NamedSharding`` per array, for
``jax.device_put`` and ``jax.jit(..., in_shardings=..., out_shardings=...)``. Under
``jax.jit`` the compiler inserts whatever communication a layout needs: any rules give the
same values, the rules decide the memory per device and the traffic.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

AXES: dict[str, tuple[str, ...]] = {
    # dense gate blocks: simple RNN, LSTM and its variants, GRU, MGU, MUT, IndRNN, the
    # minimal cells, the sLSTM and mLSTM input side
    "w_x": ("embed", "gates"),  # [I, G*H] (convolutional: [*K, C, G*H], kernel axes unnamed)
    "w_h": ("hidden", "gates"),  # [H, G*H]
    "b": ("gates",),  # [G*H]
    "b_hn": ("hidden",),  # GRU reset_after: [H]
    "u": ("hidden",),  # IndRNN: [H]
    "p_i": ("hidden",),  # peepholes: [H]
    "p_f": ("hidden",),
    "p_o": ("hidden",),
    "w_g": ("gates_in", "gates"),  # full gate recurrence: [G*H, G*H]
    "w_r": ("hidden", "proj"),  # LSTMP projection: [H, P]
    "ln_x": ("gates",),  # layer norm scales: [G*H]
    "ln_h": ("gates",),
    "ln_c": ("hidden",),  # [H]
    "ln_c_bias": ("hidden",),
    "w_out": ("value", "hidden"),  # mLSTM read-out projection: [V, H]
    # the diagonal linear recurrences (RG-LRU, LRU, selective SSM)
    "b_x": ("hidden",),  # input projection bias: [H]
    "w_a": ("heads", "head_in", "head_out"),  # RG-LRU block-diagonal gates: [NH, H/NH, H/NH]
    "w_i": ("heads", "head_in", "head_out"),
    "b_a": ("hidden",),
    "b_i": ("hidden",),
    "lam": ("hidden",),
    "nu_log": ("state",),  # LRU: [N]
    "theta_log": ("state",),
    "gamma_log": ("state",),
    "b_re": ("hidden", "state"),  # [H, N]
    "b_im": ("hidden", "state"),
    "c_re": ("state", "hidden"),  # [N, H]
    "c_im": ("state", "hidden"),
    "d": ("hidden",),  # [H]
    "w_dbc": ("hidden", "dbc"),  # S6: [H, R + 2N]
    "w_dt": ("dt_rank", "hidden"),  # [R, H]
    "b_dt": ("hidden",),
    "a_log": ("hidden", "state"),  # [H, N]
    # the delta rule (DeltaNet, Gated DeltaNet): the heads live inside the fused projection
    "conv": ("conv_window", "qkv"),  # short causal convolution: [K, 2Q + V]
    "A_log": ("heads",),  # [NH]
    "dt_bias": ("heads",),
    "norm": ("head_value",),  # per-head RMSNorm scale, shared by the heads: [DV]
    # a learned initial carry (LearnedCarryParams.carry): the carry, or one [H] per leaf
    "carry": ("hidden",),
    "c": ("hidden",),
    "h": ("hidden",),
    "n": ("hidden",),
    "m": ("hidden",),
}
"""One logical name per axis of each params field (its docstring's shape), by field name."""

OVERRIDES: dict[tuple, tuple[str, ...]] = {
    ("SLSTMParams", "w_h"): ("heads", "head_in", "head_gates"),  # [NH, H/NH, 4H/NH]
    # lstm(num_heads > 1), gru(num_heads > 1): block-diagonal [NH, H/NH, G*H/NH]
    ("LSTMParams", "w_h", 3): ("heads", "head_in", "head_gates"),
    ("GRUParams", "w_h", 3): ("heads", "head_in", "head_gates"),
    ("GRULayerNormParams", "w_h", 3): ("heads", "head_in", "head_gates"),
    ("LSTMPParams", "w_h"): ("proj", "gates"),  # [P, 4H]
    ("RGLRUParams", "w_x"): ("embed", "hidden"),  # input projection [I, H]
    ("LRUParams", "w_x"): ("embed", "hidden"),
    ("SSMParams", "w_x"): ("embed", "hidden"),
    ("DeltaParams", "w_x"): ("embed", "projections"),  # [I, 2Q + V + NH (+ NH) (+ V)]
}
"""Names by ``(params type, field)``, where a field's name means other axes in that type,
or by ``(params type, field, ndim)`` where it does for that number of axes."""

Rules = Mapping[str, Any] | Sequence[tuple[str, Any]]


def logical_axes(params: Any) -> Any:
    """The logical axis names of every array of ``params``, as a pytree of ``PartitionSpec``.

    Params are walked as pytrees: a NamedTuple's array fields are named by :data:`AXES`
    (and :data:`OVERRIDES`), tuples, lists and dicts (stacks, bidirectional layers,
    :class:`gatedcells.LearnedCarryParams`) are walked into, ``None`` fields stay ``None``.
    Axes before the named ones (a convolution's kernel axes) are unnamed (``None``).

    Args:
      params: any cell's params, or a pytree of them.

    Returns:
      The pytree of ``params`` with a ``PartitionSpec`` of logical names per array.

    Raises:
      ValueError: an array field with no names in the table, or of fewer axes than its
        names, or an array outside any NamedTuple field.

    Examples:
      >>> import jax, gatedcells as gc
      >>> params = gc.lstm(8).init(jax.random.key(0), 4)
      >>> gc.logical_axes(params).w_h
      P('hidden', 'gates')
    """
    return _walk(params, None, None)


def param_shardings(params: Any, mesh: jax.sharding.Mesh, rules: Rules) -> Any:
    """A ``NamedSharding`` on ``mesh`` for every array of ``params``, from logical rules.

    ``rules`` maps logical names (:func:`logical_axes`) to mesh axes, as Flax's
    ``logical_axis_rules`` do: a sequence of ``(logical name, mesh axis)`` pairs (or a dict),
    the mesh axis a name, a tuple of names, or ``None``. For each axis of an array, the
    first rule for its name whose mesh axes are not used by another axis of the same array
    and whose size divides the axis wins; otherwise the axis is replicated. So
    ``[("embed", "fsdp"), ("heads", "tp"), ("gates", "tp")]`` shards every input axis over
    ``"fsdp"`` (FSDP) and the heads, or else the gate columns, over ``"tp"`` (tensor
    parallelism).

    Args:
      params: any cell's params, or a pytree of them.
      mesh: a ``jax.sharding.Mesh``.
      rules: the logical-to-mesh rules.

    Returns:
      The pytree of ``params`` with a ``NamedSharding`` per array.

    Raises:
      TypeError: ``mesh`` not a ``jax.sharding.Mesh``.
      ValueError: a rule naming an axis ``mesh`` does not have, or what
        :func:`logical_axes` raises.

    Examples:
      >>> import jax, gatedcells as gc
      >>> mesh = jax.make_mesh((1, 1), ("fsdp", "tp"))
      >>> params = gc.slstm(8, num_heads=2).init(jax.random.key(0), 4)
      >>> rules = [("embed", "fsdp"), ("heads", "tp"), ("gates", "tp")]
      >>> gc.param_shardings(params, mesh, rules).w_h.spec
      P('tp', None, None)
    """
    if not isinstance(mesh, jax.sharding.Mesh):
        raise TypeError(f"mesh must be a jax.sharding.Mesh, got {type(mesh).__name__}")
    pairs = list(rules.items()) if isinstance(rules, Mapping) else list(rules)
    for name, axes in pairs:
        for axis in _axes(axes):
            if axis not in mesh.axis_names:
                raise ValueError(
                    f"rules map {name!r} to {axis!r}, not an axis of the mesh {mesh.axis_names}"
                )

    def shard(array, names: P) -> NamedSharding:
        used, spec = set(), []
        for size, name in zip(array.shape, names, strict=True):
            pick = None
            for logical, axes in pairs:
                axes = _axes(axes)
                total = 1
                for axis in axes:
                    total *= mesh.shape[axis]
                if logical == name and axes and not used & set(axes) and size % total == 0:
                    pick = axes[0] if len(axes) == 1 else axes
                    used |= set(axes)
                    break
            spec.append(pick)
        return NamedSharding(mesh, P(*spec))

    return jax.tree.map(shard, params, logical_axes(params))


def _axes(axes) -> tuple[str, ...]:
    return () if axes is None else (axes,) if isinstance(axes, str) else tuple(axes)


def _walk(tree: Any, owner: str | None, field: str | None) -> Any:
    if tree is None:
        return None
    if hasattr(tree, "_fields") and hasattr(tree, "_replace"):  # named params: their fields
        name = type(tree).__name__  # (a NamedTuple, or LSTMVariantParams)
        return tree._replace(
            **{f: _walk(v, name, f) for f, v in zip(tree._fields, tree, strict=True)}
        )
    if isinstance(tree, (tuple, list)):
        return type(tree)(_walk(v, owner, field) for v in tree)
    if isinstance(tree, Mapping):
        return {k: _walk(v, owner, k if isinstance(k, str) else field) for k, v in tree.items()}
    if field is None:
        raise ValueError(f"an array of shape {jax.numpy.shape(tree)} outside a named params field")
    ndim = len(jax.numpy.shape(tree))
    names = OVERRIDES.get((owner, field, ndim), OVERRIDES.get((owner, field), AXES.get(field)))
    where = f"field {field!r} of {owner or 'params'}"
    if names is None:
        raise ValueError(f"no logical axis names for {where} (add it to gatedcells.sharding.AXES)")
    if ndim < len(names):
        raise ValueError(f"{where} has {ndim} axes, fewer than its names {names}")
    return P(*(None,) * (ndim - len(names)), *names)
