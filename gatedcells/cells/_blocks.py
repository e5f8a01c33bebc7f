"""Plumbing shared by the cell families: projections, gate blocks, initialisation, layer
normalisation, names; and the LSTM family's flags, weights and shapes, shared by ``lstm`` and
``lstm_variant``. Never equations: each cell's step is written in its own module."""

from __future__ import annotations

import types
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp

from .. import _checks
from .._cell import Array, Params, matmul


def project_affine(params: Params, xs: Array, dtype: Any = None) -> Array:
    """``xs @ w_x + b``: the input projection of every fused-gate cell, ``[..., G*H]``."""
    out = matmul(xs, params.w_x, dtype)
    return out + along_last(params.b, out)


def project(spec: Any, params: Params, xs: Array) -> Array:
    """``xs @ w_x + b`` computed in ``spec.dtype``: a family's ``project`` (:func:`project_affine`)."""
    return project_affine(params, xs, spec.dtype)


def normalized_projection(params: Params, xs: Array, eps: float, dtype: Any = None) -> Array:
    """``LN(xs @ w_x) * ln_x + b`` (Ba et al. 2016): the input projection of a layer-normalised
    cell, normalised over its ``G*H`` entries, ``[..., G*H]`` in the bias's dtype."""
    out = matmul(xs, params.w_x, dtype).astype(params.b.dtype)
    out = layer_norm(out, params.ln_x, None, eps)
    return out + along_last(params.b, out)


def matmul_like(v: Array, w: Array, dtype: Any = None) -> Array:
    """``v @ w`` computed in ``dtype`` (default: ``w``'s), returned in ``v``'s dtype: a
    recurrent matmul inside a step, whose carry keeps its own dtype."""
    return matmul(v, w, dtype).astype(v.dtype)


def along_last(v: Array, like: Array) -> Array:
    """The vector ``v [N]`` shaped to broadcast against ``like [..., N]`` in its dtype."""
    return v.astype(like.dtype).reshape((1,) * (like.ndim - 1) + v.shape)


def split(z: Array, names: tuple[str, ...]) -> dict[str, Array]:
    """Split ``z [..., G*H]`` on its last axis into ``G`` named blocks of size ``H``."""
    return dict(zip(names, jnp.split(z, len(names), axis=-1), strict=True))


def init_blocks(init: Callable, key: Array, rows: int, hidden_size: int, n: int, dtype) -> Array:
    """``n`` independently initialised ``[rows, H]`` blocks concatenated to ``[rows, n*H]``.

    Per-block initialisation keeps e.g. an orthogonal recurrent kernel orthogonal within each
    gate, as separate per-gate matrices would be.
    """
    keys = jax.random.split(key, n)
    blocks = [init_param(init, k, (rows, hidden_size), dtype) for k in keys]
    return jnp.concatenate(blocks, axis=-1)


def init_param(init: Callable, key: Array, shape: tuple[int, ...], dtype) -> Array:
    """``init(key, shape)`` computed in at least float32, then cast to ``dtype``.

    Some initializers (orthogonal needs a QR decomposition) have no bfloat16 kernel on CPU.
    """
    return init(key, shape, wide(dtype)).astype(dtype)


def wide(dtype: Any) -> Any:
    """float32 (or wider): the dtype of an initializer's draw, and of the gated linear
    cells' recurrences."""
    return dtype if jnp.finfo(dtype).bits >= 32 else jnp.float32


def gate_biases(
    init: Callable, key: Array, hidden_size: int, names: tuple[str, ...], offsets, dtype
) -> Array:
    """The fused bias ``[G*H]`` with per-gate constant ``offsets`` added to ``init``."""
    b = init_param(init, key, (len(names) * hidden_size,), dtype)
    for k, name in enumerate(names):
        off = offsets.get(name, 0.0)
        if off:
            b = b.at[k * hidden_size : (k + 1) * hidden_size].add(jnp.asarray(off, dtype))
    return b


def set_block(b: Array, k: int, hidden_size: int, value: Array) -> Array:
    """``b [G*H]`` with its ``k``-th block of size ``H`` replaced by ``value``."""
    return b.at[k * hidden_size : (k + 1) * hidden_size].set(value.astype(b.dtype))


def checked_inits(kernel_init, recurrent_init, bias_init, param_dtype, dtype) -> tuple:
    """The initializers and dtypes of a dense gated cell, checked, as they appear last in its
    spec: ``(kernel_init, recurrent_init, bias_init, param_dtype, dtype)``."""
    inits = {"kernel_init": kernel_init, "recurrent_init": recurrent_init, "bias_init": bias_init}
    dtypes = {"param_dtype": param_dtype, "dtype": dtype}
    _checks.check_factory_args(functions=inits, dtypes=dtypes)
    return (*inits.values(), *dtypes.values())


def describe(factory: str, hidden_size: int, flags: dict[str, Any]) -> str:
    """A cell's name, ``factory(H, key=value, ...)``, functions by their name."""
    parts = [str(hidden_size)]
    for key, value in flags.items():
        if callable(value):
            value = getattr(value, "__name__", "?")
        else:
            value = repr(dict(value) if isinstance(value, Mapping) else value)
        parts.append(f"{key}={value}")
    return f"{factory}({', '.join(parts)})"


def zeros_carry(hidden_size: int, param_dtype):
    """A ``carry_fn`` for cells whose carry is the array ``h``."""

    def carry_fn(batch_shape: tuple[int, ...], dtype=None) -> Array:
        dtype = param_dtype if dtype is None else dtype
        return jnp.zeros((*tuple(batch_shape), hidden_size), dtype)

    return carry_fn


def layer_norm(z: Array, scale: Array, bias: Array | None, eps: float) -> Array:
    r"""Layer normalisation of ``z [..., N]`` over its last axis (Ba et al. 2016).

    .. math:: \mathrm{LN}(z) = \gamma \odot (z - \mu) / \sqrt{\sigma^2 + \epsilon} + \beta

    ``scale`` (:math:`\gamma`) and ``bias`` (:math:`\beta`, or ``None``) are ``[N]``.
    """
    mean = jnp.mean(z, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(z - mean), axis=-1, keepdims=True)
    out = (z - mean) * jax.lax.rsqrt(var + jnp.asarray(eps, z.dtype))
    out = out * along_last(scale, out)
    if bias is not None:
        out = out + along_last(bias, out)
    return out


def chrono_bias(key: Array, size: int, t_max: float, dtype: Any) -> Array:
    r"""Chrono initialisation (Tallec & Ollivier 2018): :math:`\log \mathcal{U}(1, T_{max}-1)`.

    A gate bias drawn so that the characteristic forgetting times
    :math:`1/(1-\sigma(b))` of the units spread up to ``t_max``, the longest dependency
    expected.
    """
    u = jax.random.uniform(key, (size,), jnp.float32, 1.0, t_max - 1.0)
    return jnp.log(u).astype(dtype)


# --------------------------------------------------------------------------------------
# The LSTM family's, shared by lstm and lstm_variant: flags to blocks, weights, shapes.

LSTM_FIELDS = ("w_x", "w_h", "b", "p_i", "p_f", "p_o", "w_g", "w_r", "ln_x", "ln_h", "ln_c",
               "ln_c_bias")  # fmt: skip
"""Every field an LSTM's params may have, in their order (each type holds a subsequence)."""
# One PRNG stream per field, ``jax.random.fold_in(key, n)``: a field's values do not depend
# on which other fields the cell has, so lstm and lstm_variant agree on a key.
LSTM_STREAMS = types.MappingProxyType(
    {"w_x": 0, "w_h": 1, "b": 2, "chrono": 3, "peepholes": 4, "w_g": 5, "w_r": 6}
)


def clamped_gates(fixed_gates: Mapping[str, float] | None, forget_gate: bool) -> dict:
    """``{gate: constant}`` of the gates without weights: ``fixed_gates``, checked, and
    ``f = 1`` without a forget gate."""
    fixed = {}
    for name, value in dict(fixed_gates or {}).items():
        if name not in ("i", "f", "o"):
            raise ValueError(
                f"fixed_gates: unknown gate {name!r}; an LSTM's gates are 'i', 'f', 'o' "
                "('g' is the candidate, not a gate)"
            )
        if name == "f" and not forget_gate:
            raise ValueError(
                "fixed_gates: this LSTM has no forget gate (forget_gate=False), so 'f' cannot "
                "be fixed"
            )
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            raise ValueError(f"fixed_gates[{name!r}] must be a number in [0, 1], got {value!r}")
        fixed[name] = float(value)
    return fixed if forget_gate else {**fixed, "f": 1.0}


def check_chrono(chrono: float | None, blocks: tuple[str, ...]) -> None:
    """``chrono`` is ``None`` or ``T_max > 2``, and needs a learned forget gate."""
    _checks.check_t_max(chrono)
    if chrono is not None and "f" not in blocks:
        raise ValueError("chrono initialises the forget-gate bias: it needs a learned forget gate")


def check_proj_size(proj_size: int | None, hidden_size: int) -> None:
    """``proj_size`` is ``None`` or an int in ``[1, H)``."""
    if proj_size is not None and (
        isinstance(proj_size, bool)
        or not isinstance(proj_size, int)
        or not 0 < proj_size < hidden_size
    ):
        raise ValueError(
            f"proj_size must be None or an int in [1, hidden_size) = [1, {hidden_size}), "
            f"got {proj_size!r}"
        )


def lstm_weights(
    key: Array, input_size: int, *, hidden_size: int, blocks: tuple[str, ...],
    proj_size: int | None, forget_bias: float, chrono: float | None, kernel_init: Callable,
    recurrent_init: Callable, bias_init: Callable, param_dtype: Any,
    peepholes: tuple[str, ...] = (), fed_back: tuple[str, ...] = (), layer_norm: bool = False,
    peephole_init: Callable = jax.nn.initializers.zeros,
) -> dict[str, Array]:  # fmt: skip
    """An LSTM's weights by field, in :data:`LSTM_FIELDS` order, each from its stream of
    ``key``: ``w_x``, ``w_h``, ``b`` (the forget block offset by ``forget_bias``, or chrono
    with the input block its negative), and ``w_r`` with a projection; the variants' ``p_*``
    per gate in ``peepholes``, ``w_g`` for the gates ``fed_back``, and the layer-norm gains."""
    H, G, S, dtype = hidden_size, len(blocks), len(fed_back), param_dtype

    def stream(field):
        return jax.random.fold_in(key, LSTM_STREAMS[field])

    b = gate_biases(bias_init, stream("b"), H, blocks, {"f": forget_bias}, dtype)
    if chrono is not None:
        b_f = chrono_bias(stream("chrono"), H, chrono, dtype)
        b = set_block(b, blocks.index("f"), H, b_f)
        if "i" in blocks:
            b = set_block(b, blocks.index("i"), H, -b_f)
    out = {
        "w_x": init_blocks(kernel_init, stream("w_x"), input_size, H, G, dtype),
        "w_h": init_blocks(recurrent_init, stream("w_h"), proj_size or H, H, G, dtype),
        "b": b,
    }
    keys = jax.random.split(stream("peepholes"), 3)
    for gate, k in zip(peepholes, keys, strict=False):
        out[f"p_{gate}"] = init_param(peephole_init, k, (H,), dtype)
    if S:
        out["w_g"] = init_blocks(recurrent_init, stream("w_g"), S * H, H, S, dtype)
    if proj_size:
        out["w_r"] = init_param(kernel_init, stream("w_r"), (H, proj_size), dtype)
    if layer_norm:
        out.update(ln_x=jnp.ones((G * H,), dtype), ln_h=jnp.ones((G * H,), dtype),
                   ln_c=jnp.ones((H,), dtype), ln_c_bias=jnp.zeros((H,), dtype))  # fmt: skip
    return out


def lstm_shapes(
    hidden_size: int, blocks: tuple[str, ...], proj_size: int | None,
    peepholes: tuple[str, ...] = (), fed_back: tuple[str, ...] = (), layer_norm: bool = False,
) -> dict[str, tuple]:  # fmt: skip
    """The shapes of :func:`lstm_weights`'s fields (``None``: the input size)."""
    H, G, S = hidden_size, len(blocks), len(fed_back)
    shapes = {"w_x": (None, G * H), "w_h": (proj_size or H, G * H), "b": (G * H,)}
    shapes.update({f"p_{gate}": (H,) for gate in peepholes})
    shapes.update({"w_g": (S * H, S * H)} if S else {})
    shapes.update({"w_r": (H, proj_size)} if proj_size else {})
    if layer_norm:
        shapes.update(ln_x=(G * H,), ln_h=(G * H,), ln_c=(H,), ln_c_bias=(H,))
    return shapes


def check_fields(name: str, params: Any, shapes: dict[str, tuple]) -> int:
    """``params`` have the fields of ``shapes`` with those shapes, and no other; return ``I``."""
    size = _checks.check_param_shapes(name, params, shapes)
    extra = tuple(f for f in getattr(params, "_fields", ()) if f not in shapes)
    _checks.check_absent(name, params, extra)
    return size
