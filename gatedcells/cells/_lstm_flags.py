"""The LSTM family's flags: the named variants as read-only tables (a variant is nothing but
flags), their resolution and checks into the step's ``LSTMStep`` (both factories'), and the
variants' one params type, :class:`LSTMVariantParams`."""

from __future__ import annotations

import types
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp

from .. import _checks
from . import _blocks, _lstm
from ._lstm import IFGO, LSTMStep

# Greff et al. 2017, in the paper's order: each variant changes one thing of "vanilla" (with
# peepholes); lstm() is their NP (no peepholes), as PyTorch's nn.LSTM.
_GREFF = {
    "vanilla": {"peepholes": True},
    "nig": {"peepholes": True, "fixed_gates": {"i": 1.0}},
    "nfg": {"peepholes": True, "forget_gate": False},
    "nog": {"peepholes": True, "fixed_gates": {"o": 1.0}},
    "niaf": {"peepholes": True, "candidate_activation": jax.nn.identity},
    "noaf": {"peepholes": True, "output_activation": jax.nn.identity},
    "np": {"peepholes": False},
    "cifg": {"peepholes": True, "cifg": True},
    "fgr": {"peepholes": True, "full_gate_recurrence": True},
}
# van der Westhuizen & Lasenby 2018: the forget gate alone, i = 1 - sigmoid(s_f - 1), h = c.
_JANET = dict(cifg=True, cifg_shift=1.0, fixed_gates={"o": 1.0}, output_activation=jax.nn.identity)
GREFF_VARIANTS: tuple[str, ...] = tuple(_GREFF)
LSTM_VARIANTS: Mapping[str, Mapping[str, Any]] = types.MappingProxyType(
    {name: types.MappingProxyType(flags) for name, flags in {**_GREFF, "janet": _JANET}.items()}
)

# The flags a variant may set, at the plain LSTM's values, in the order a cell's name shows
# them. A flag left at None takes the variant's value, or this one.
_PLAIN = types.MappingProxyType(
    {"forget_gate": True, "peepholes": False, "cifg": False, "cifg_shift": None}
    | {"candidate_activation": jnp.tanh, "output_activation": jnp.tanh, "fixed_gates": {}}
    | {"full_gate_recurrence": False, "layer_norm": False}
)
# Every field an LSTM's params may have, in their order (each variant holds a subsequence).
LSTM_FIELDS = ("w_x", "w_h", "b", "p_i", "p_f", "p_o", "w_g", "w_r", "ln_x", "ln_h")
LSTM_FIELDS += ("ln_c", "ln_c_bias")


class LSTMVariantParams:
    """Weights of an LSTM variant: exactly the fields the variant has, in the order below,
    read by name and a pytree keyed by them, as a NamedTuple would be (``_fields``,
    ``_replace``, ``_asdict``, iteration in field order). A variant whose fields are the
    plain LSTM's has :class:`gatedcells.LSTMParams` (or :class:`gatedcells.LSTMPParams`).

    Attributes:
      w_x, w_h, b, w_r: as :class:`gatedcells.LSTMPParams`' (``w_r`` with ``proj_size``).
      p_i, p_f, p_o: peephole weights ``[H]`` (``peepholes=True``, learned gates only).
      w_g: full gate recurrence ``[S*H, S*H]`` from the ``S`` learned sigmoid gates at
        ``t-1`` to the same gates at ``t`` (``full_gate_recurrence=True``).
      ln_x, ln_h: layer-norm gains ``[G*H]`` of the input and recurrent pre-activations
        (``layer_norm=True``); ln_c, ln_c_bias: gain and bias ``[H]`` of the memory cell.
    """

    __slots__ = ("_fields", "_values")

    def __init__(self, **fields: Any):
        if unknown := set(fields) - set(LSTM_FIELDS):
            raise TypeError(f"LSTMVariantParams has no field {sorted(unknown)[0]!r}")
        order = tuple(f for f in LSTM_FIELDS if f in fields)
        object.__setattr__(self, "_fields", order)
        object.__setattr__(self, "_values", tuple(fields[f] for f in order))

    def __getattr__(self, name: str) -> Any:
        if name in LSTM_FIELDS and name in self._fields:
            return self._values[self._fields.index(name)]
        raise AttributeError(f"this LSTMVariantParams has no field {name!r}")

    def __setattr__(self, name: str, value: Any):
        raise AttributeError("LSTMVariantParams is immutable: use _replace")

    def __iter__(self):
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"LSTMVariantParams({', '.join(f'{f}={v!r}' for f, v in self._asdict().items())})"

    def __reduce__(self):  # pickle and deepcopy by the field names
        return params_of, (self._fields, self._values)

    def _asdict(self) -> dict[str, Any]:
        return dict(zip(self._fields, self._values, strict=True))

    def _replace(self, **fields: Any) -> LSTMVariantParams:
        return LSTMVariantParams(**(self._asdict() | fields))


jax.tree_util.register_pytree_with_keys(
    LSTMVariantParams,
    lambda p: ([(jax.tree_util.GetAttrKey(f), v) for f, v in p._asdict().items()], p._fields),
    lambda fields, values: LSTMVariantParams(**dict(zip(fields, values, strict=True))),
)


def params_of(fields: tuple[str, ...], values: tuple) -> Any:
    """Params holding ``values`` by ``fields``: the plain LSTM's type for its fields, else
    :class:`LSTMVariantParams` (pickled params name this function)."""
    for plain in (_lstm.LSTMParams, _lstm.LSTMPParams):
        if tuple(fields) == plain._fields:
            return plain(*values)
    return LSTMVariantParams(**dict(zip(fields, values, strict=True)))


def resolve(
    factory: str, H: int, variant: str | None, given: dict, proj_size: Any, num_heads: int = 1
) -> tuple[dict[str, Any], str]:
    """The flags of ``variant`` (its table entry over the plain LSTM's) with the flags given
    (not ``None``) over them: a flag given must agree with the entry; ``fixed_gates`` merge.
    And the cell's name, ``factory(H, variant=..., the flags that change it)``."""
    if variant is not None and variant not in LSTM_VARIANTS:
        raise ValueError(f"variant must be one of {sorted(LSTM_VARIANTS)} or None, got {variant!r}")
    entry = LSTM_VARIANTS.get(variant, {})
    implied = {**_PLAIN, **entry}
    flags = dict(implied)
    for key, value in given.items():
        if value is None:
            continue
        if key == "fixed_gates":  # merged: the variant's clamped gates, and those given
            value = dict(value)
            for gate_name, v in entry.get(key, {}).items():
                if value.setdefault(gate_name, v) != v:
                    raise ValueError(
                        f"fixed_gates[{gate_name!r}]={value[gate_name]!r} contradicts "
                        f"variant={variant!r}, which fixes {gate_name!r} to {v}"
                    )
        elif key in entry and value is not entry[key] and value != entry[key]:
            raise ValueError(
                f"{key}={value!r} contradicts variant={variant!r}, which sets {key}={entry[key]!r}"
            )
        flags[key] = value
    shown = {"variant": variant} if variant else {}
    shown |= {k: v for k, v in flags.items() if v is not implied[k] and v != implied[k]}
    shown |= {"proj_size": proj_size} if proj_size else {}
    shown |= {"num_heads": num_heads} if num_heads > 1 else {}
    return flags, _blocks.describe(factory, H, shown)


def step_from_flags(H: int, flags: Mapping, chrono: Any, P: Any, heads=1, eps=1e-5) -> LSTMStep:
    """Check ``flags`` (the plain LSTM's where not given) and the flags that shape the step
    (``chrono`` needs a learned forget gate, ``proj_size=P`` is in ``[1, H)`` without
    heads, the layer norm's ``eps`` is positive): the step's static part, also
    :func:`gatedcells.lstm`'s."""
    flags = {**_PLAIN, **flags}
    for key in ("forget_gate", "peepholes", "cifg", "full_gate_recurrence", "layer_norm"):
        _checks.check_flag(key, flags[key])
    activations = ("output_activation", "candidate_activation")
    _checks.check_factory_args(functions={key: flags[key] for key in activations})
    cifg, shift = flags["cifg"], flags["cifg_shift"]
    fixed = clamped_gates(flags["fixed_gates"], flags["forget_gate"])
    if cifg and "f" in fixed:
        raise ValueError("cifg couples the input gate to the forget gate, which must be learned")
    if cifg and "i" in fixed:
        raise ValueError("cifg computes the input gate, so fixed_gates cannot also fix 'i'")
    if shift is not None:
        _checks.check_factory_args(numbers={"cifg_shift": shift})
        if not cifg:
            raise ValueError(f"cifg_shift={shift!r} needs cifg=True")
    blocks = tuple(n for n in IFGO if n not in fixed and not (cifg and n == "i"))
    gates = tuple(n for n in blocks if n != "g")
    if flags["full_gate_recurrence"] and not gates:
        raise ValueError("full_gate_recurrence needs at least one learned gate")
    _checks.check_t_max(chrono)
    if chrono is not None and "f" not in blocks:
        raise ValueError("chrono initialises the forget-gate bias: it needs a learned forget gate")
    if P is not None and (isinstance(P, bool) or not isinstance(P, int) or not 0 < P < H):
        raise ValueError(f"proj_size must be None or an int in [1, {H}), got {P!r}")
    if P is not None and heads > 1:
        raise ValueError("proj_size must be None with num_heads > 1 (it mixes the heads)")
    if isinstance(eps, bool) or not isinstance(eps, int | float) or eps <= 0:
        raise ValueError(f"layer_norm_eps must be a positive number, got {eps!r}")
    peepholes, fed_back = (gates if flags[k] else () for k in ("peepholes", "full_gate_recurrence"))
    shift, eps = float(shift or 0.0) if cifg else None, float(eps) if flags["layer_norm"] else None
    phi = (flags[key] for key in activations)
    return LSTMStep(blocks, tuple(fixed.items()), *phi, peepholes, shift, eps, fed_back)


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
            raise ValueError("fixed_gates: 'f' cannot be fixed: there is no forget gate")
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            raise ValueError(f"fixed_gates[{name!r}] must be a number in [0, 1], got {value!r}")
        fixed[name] = float(value)
    return fixed if forget_gate else {**fixed, "f": 1.0}
