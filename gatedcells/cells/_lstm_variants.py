"""The LSTM's flags: named variants (Greff et al.'s grid, JANET), checks, and the static spec.

A variant is nothing but flags, so ``lstm(H, variant="cifg")`` and
``lstm(H, peepholes=True, cifg=True)`` are the same cell, and a sweep over the grid is a loop
over names (``for name in GREFF_VARIANTS: lstm(H, variant=name)``).
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp

from .. import _checks
from .._cell import Array

_LSTM_GATES = ("i", "f", "o")  # the sigmoid gates; "g" is the candidate (block input)

# Greff et al. 2017 ("LSTM: A Search Space Odyssey"): "vanilla" has peepholes, and each
# variant changes one thing of vanilla. Our default lstm() is their NP (no peepholes), as
# PyTorch's nn.LSTM.
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
_OTHERS = {
    "janet": {
        "cifg": True,
        "cifg_shift": 1.0,
        "fixed_gates": {"o": 1.0},
        "output_activation": jax.nn.identity,
    },
}

GREFF_VARIANTS: tuple[str, ...] = tuple(_GREFF)
"""The names of Greff et al.'s eight variants and their "vanilla" baseline, in the paper's
order (``"np"`` is our default :func:`gatedcells.lstm`)."""


class _VariantTable(Mapping):
    """Every named variant of :func:`gatedcells.lstm` and the flags it stands for (read-only):
    Greff et al.'s ``"vanilla"``, ``"nig"``, ``"nfg"``, ``"nog"``, ``"niaf"``, ``"noaf"``,
    ``"np"``, ``"cifg"``, ``"fgr"``, and ``"janet"``."""

    def __init__(self, table: dict[str, dict[str, Any]]):
        self._table = {name: types.MappingProxyType(flags) for name, flags in table.items()}

    def __getitem__(self, name: str) -> Mapping[str, Any]:
        return self._table[name]

    def __iter__(self):
        return iter(self._table)

    def __len__(self) -> int:
        return len(self._table)

    def __repr__(self) -> str:
        return f"LSTM_VARIANTS({list(self._table)})"


LSTM_VARIANTS: Mapping[str, Mapping[str, Any]] = _VariantTable({**_GREFF, **_OTHERS})


def resolve_variant(
    variant: str | None, flags: dict[str, Any], defaults: dict[str, Any]
) -> dict[str, Any]:
    """``flags`` with those of ``variant`` applied; a flag given explicitly (not at its
    default) must agree with the variant, except ``fixed_gates``, whose entries merge."""
    if variant is None:
        return flags
    if variant not in LSTM_VARIANTS:
        raise ValueError(f"variant must be one of {sorted(LSTM_VARIANTS)} or None, got {variant!r}")
    out = dict(flags)
    for key, value in LSTM_VARIANTS[variant].items():
        given = flags[key]
        if key == "fixed_gates":
            merged = dict(given or {})
            for gate, v in value.items():
                if merged.setdefault(gate, v) != v:
                    raise ValueError(
                        f"fixed_gates[{gate!r}]={merged[gate]!r} contradicts variant="
                        f"{variant!r}, which fixes {gate!r} to {v}"
                    )
            out[key] = merged
        elif given is not defaults[key] and given != defaults[key] and given != value:
            raise ValueError(
                f"{key}={given!r} contradicts variant={variant!r}, which sets {key}={value!r}"
            )
        else:
            out[key] = value
    return out


@dataclasses.dataclass(frozen=True)
class LSTMSpec:
    """The static configuration of an LSTM: which blocks are learned, which are constants."""

    hidden_size: int
    blocks: tuple[str, ...]  # learned blocks, in (i, f, g, o) order
    fixed: tuple[tuple[str, float], ...]  # clamped gates and their values
    output_activation: Callable[[Array], Array]
    candidate_activation: Callable[[Array], Array] = jnp.tanh
    peepholes: tuple[str, ...] = ()  # learned gates with a peephole
    cifg_shift: float | None = None  # CIFG: i = 1 - sigmoid(s_f - shift); None: no coupling
    layer_norm_eps: float | None = None  # None: no layer normalisation
    fed_back: tuple[str, ...] = ()  # full gate recurrence: the gates fed back

    @property
    def gates(self) -> tuple[str, ...]:
        """The learned sigmoid gates."""
        return tuple(n for n in self.blocks if n != "g")


def spec_from_flags(hidden_size: int, flags: dict[str, Any]) -> LSTMSpec:
    """Check the flags of :func:`gatedcells.lstm` (after ``variant``) and build its spec."""
    forget_gate, cifg = flags["forget_gate"], flags["cifg"]
    fixed = _check_fixed_gates(flags["fixed_gates"], forget_gate)
    if not forget_gate:
        fixed["f"] = 1.0
    if cifg and "f" in fixed:
        raise ValueError("cifg couples the input gate to the forget gate, which must be learned")
    if cifg and "i" in fixed:
        raise ValueError("cifg computes the input gate, so fixed_gates cannot also fix 'i'")
    if not cifg and flags["cifg_shift"] != 0:
        raise ValueError(f"cifg_shift={flags['cifg_shift']!r} needs cifg=True")
    blocks = tuple(n for n in ("i", "f", "g", "o") if n not in fixed and not (cifg and n == "i"))
    gates = tuple(n for n in blocks if n != "g")
    if flags["full_gate_recurrence"] and not gates:
        raise ValueError("full_gate_recurrence needs at least one learned gate")
    _checks.check_t_max(flags["chrono"])
    if flags["chrono"] is not None and "f" not in blocks:
        raise ValueError("chrono initialises the forget-gate bias: it needs a learned forget gate")
    proj = flags["proj_size"]
    if proj is not None and (
        isinstance(proj, bool) or not isinstance(proj, int) or not 0 < proj < hidden_size
    ):
        raise ValueError(
            f"proj_size must be None or an int in [1, hidden_size) = [1, {hidden_size}), "
            f"got {proj!r}"
        )
    eps = flags["layer_norm_eps"]
    if not isinstance(eps, int | float) or eps <= 0:
        raise ValueError(f"layer_norm_eps must be a positive number, got {eps!r}")
    return LSTMSpec(
        hidden_size,
        blocks,
        tuple(sorted(fixed.items())),
        flags["output_activation"],
        flags["candidate_activation"],
        peepholes=gates if flags["peepholes"] else (),
        cifg_shift=float(flags["cifg_shift"]) if cifg else None,
        layer_norm_eps=float(eps) if flags["layer_norm"] else None,
        fed_back=gates if flags["full_gate_recurrence"] else (),
    )


_DESCRIBED = (  # the structural flags a cell's name shows when they are not at their default
    "forget_gate", "peepholes", "cifg", "cifg_shift", "candidate_activation",
    "output_activation", "fixed_gates", "full_gate_recurrence", "layer_norm", "proj_size",
)  # fmt: skip


def describe(hidden_size: int, variant: str | None, flags: dict, defaults: dict) -> str:
    """The cell's name: ``lstm(H, variant=..., flags not at their default)``."""
    parts = [str(hidden_size)] + ([f"variant={variant!r}"] if variant else [])
    implied = LSTM_VARIANTS[variant] if variant else {}
    for key in _DESCRIBED:
        value = flags[key]
        if key in implied or value is defaults[key] or value == defaults[key]:
            continue
        if callable(value):
            value = getattr(value, "__name__", "?")
        elif isinstance(value, Mapping):
            value = dict(value)
        parts.append(f"{key}={value}")
    return "lstm(" + ", ".join(parts) + ")"


def _check_fixed_gates(fixed_gates: Mapping[str, float] | None, forget_gate: bool):
    fixed = {}
    for name, value in dict(fixed_gates or {}).items():
        if name not in _LSTM_GATES:
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
    return fixed
