"""The LSTM family's equations: one step for :func:`gatedcells.lstm` and
:func:`gatedcells.lstm_variant`, the variants' terms helpers named after their papers that
vanish at the plain flags. Flags: ``_lstm_flags``; ``init`` and factories: ``_lstm_variants``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from .._cell import Array, matmul
from . import _anatomy, _blocks

IFGO = ("i", "f", "g", "o")  # PyTorch's block order; "g" is the candidate, not a gate
# A PRNG stream per field, fold_in(key, n): a field's values do not depend on the others.
STREAMS = ("w_x", "w_h", "b", "chrono", "peepholes", "w_g", "w_r")


class LSTMParams(NamedTuple):
    """LSTM weights, gate blocks fused on the last axis in PyTorch's order ``(i, f, g, o)``.

    A gate that is absent (``forget_gate=False``) or clamped (``fixed_gates``) has no block,
    so ``G`` counts only the learned blocks: 4 for the standard LSTM, 3 for the 1997 LSTM.

    Attributes:
      w_x: input kernel ``[I, G*H]``.
      w_h: recurrent kernel ``[H, G*H]``, block-diagonal ``[NH, H/NH, G*H/NH]`` with heads.
      b: bias ``[G*H]`` (PyTorch's ``b_ih + b_hh``), the forget block at ``forget_bias``.
    """

    w_x: Array
    w_h: Array
    b: Array


class LSTMPParams(NamedTuple):
    """Weights of an LSTM with a projection (LSTMP, ``lstm(H, proj_size=P)``).

    Attributes:
      w_x: input kernel ``[I, G*H]``.
      w_h: recurrent kernel ``[P, G*H]``: it reads the projected ``h``.
      b: bias ``[G*H]``, as :class:`LSTMParams`'s.
      w_r: projection ``[H, P]`` (PyTorch's ``weight_hr.T``).
    """

    w_x: Array
    w_h: Array
    b: Array
    w_r: Array


class LSTMCarry(NamedTuple):
    """LSTM carry: the memory cell ``c [*B, H]`` and the hidden state ``h [*B, H]`` (``[*B, P]``
    with a projection). The order ``(c, h)`` is Flax's; access the fields by name."""

    c: Array
    h: Array


class FullGateCarry(NamedTuple):
    """Carry of an LSTM with full gate recurrence: ``c``, ``h`` and ``gates [*B, S*H]``, the
    learned sigmoid gates of the previous step (in ``(i, f, o)`` order), zeros at first."""

    c: Array
    h: Array
    gates: Array


class LSTMGates(NamedTuple):
    """LSTM gate activations of one step, each ``[*B, H]``.

    Attributes:
      i: input gate. f: forget gate (ones without a forget gate). g: candidate (block input).
      o: output gate. A clamped gate shows its constant; with CIFG, ``i = 1 - f``.
    """

    i: Array
    f: Array
    g: Array
    o: Array


class LSTMStep(NamedTuple):
    """The static part of an LSTM's step; the defaults are the plain LSTM's (no variant)."""

    blocks: tuple[str, ...]  # the learned blocks, in (i, f, g, o) order
    fixed: tuple[tuple[str, float], ...]  # the clamped gates and their constants
    output_activation: Callable[[Array], Array]
    candidate_activation: Callable[[Array], Array] = jnp.tanh
    peepholes: tuple[str, ...] = ()  # the learned gates with a peephole
    cifg_shift: float | None = None  # CIFG: i = 1 - sigmoid(s_f - shift); None: no coupling
    layer_norm_eps: float | None = None  # None: no layer normalisation
    fed_back: tuple[str, ...] = ()  # full gate recurrence: the gates fed back


class LSTMSpec(NamedTuple):
    """The static flags of an LSTM (:func:`lstm`) or an LSTM variant, resolved."""

    name: str
    hidden_size: int
    num_heads: int  # 1: a dense w_h
    step: LSTMStep
    proj_size: int | None
    forget_bias: float
    chrono: float | None
    kernel_init: Callable
    recurrent_init: Callable
    bias_init: Callable
    param_dtype: Any
    dtype: Any
    peephole_init: Callable | None = None


def shapes(spec: LSTMSpec) -> dict[str, tuple]:
    """The shapes of the params' fields (``None``: the input size), the variants' included."""
    H, step, P = spec.hidden_size, spec.step, spec.proj_size
    G, S = len(step.blocks), len(step.fed_back)
    w_h = (P, G * H) if P else _blocks.recurrent_shape(H, spec.num_heads, G)
    out = {"w_x": (None, G * H), "w_h": w_h, "b": (G * H,)}
    out |= {f"p_{n}": (H,) for n in step.peepholes}
    out |= ({"w_g": (S * H, S * H)} if S else {}) | ({"w_r": (H, P)} if P else {})
    norms = {"ln_x": (G * H,), "ln_h": (G * H,), "ln_c": (H,), "ln_c_bias": (H,)}
    return out | (norms if step.layer_norm_eps is not None else {})


def carry(spec: LSTMSpec, batch_shape: tuple[int, ...], dtype: Any = None) -> Any:
    """The zero carry: :class:`LSTMCarry` ``c [*B, H]``, ``h [*B, P]`` (``P = H``
    unprojected), or :class:`FullGateCarry` with the ``S`` fed-back gates ``[*B, S*H]``."""
    H, P, S = spec.hidden_size, spec.proj_size or spec.hidden_size, len(spec.step.fed_back)
    zeros = [_anatomy.Zeros(n, spec.param_dtype)(batch_shape, dtype) for n in (H, P, S * H) if n]
    return FullGateCarry(*zeros) if S else LSTMCarry(*zeros)


def update(
    step: LSTMStep, params: Any, carry: Any, x_proj: Array, h_proj: Array, g_proj=None
) -> tuple[Any, Array, LSTMGates]:
    """One step from ``x_proj = x W_x + b``, ``h_proj = h W_h`` and (full gate recurrence)
    ``g_proj = gates W_g``, each ``[*B, G*H]``; see :func:`gatedcells.lstm_variant`."""
    with jax.named_scope("gatedcells.lstm"):
        c, dtype = carry.c, carry.c.dtype
        h_proj = layer_norm_recurrent(step, params, h_proj.astype(dtype))
        z = _blocks.split(x_proj.astype(dtype) + h_proj, step.blocks)
        z = full_gate_recurrence(step, z, g_proj)
        f, i = (gate(step, params, z, name, c) for name in "fi")
        g = step.candidate_activation(z["g"])
        c = f * c + i * g
        o = gate(step, params, z, "o", c)  # the output gate's peephole reads the new cell
        h = o * step.output_activation(layer_norm_memory(step, params, c))
    return LSTMCarry(c, h), h, LSTMGates(i, f, g, o)


def gate(step: LSTMStep, params: Any, z: dict, name: str, c: Array) -> Array:
    r"""The sigmoid gate ``name`` (with its peephole), its constant (``fixed_gates``), or
    Greff et al.'s (2017) CIFG input gate :math:`i = 1 - \sigma(s_f - \beta)` (JANET's
    :math:`\beta = 1`, van der Westhuizen & Lasenby 2018)."""
    fixed = dict(step.fixed)
    if name in fixed:
        return jnp.full_like(c, fixed[name])
    if name == "i" and step.cifg_shift is not None:
        shift = jnp.asarray(step.cifg_shift, c.dtype)
        return 1 - jax.nn.sigmoid(peephole(step, params, z, "f", c) - shift)
    return jax.nn.sigmoid(peephole(step, params, z, name, c))


def peephole(step: LSTMStep, params: Any, z: dict, name: str, c: Array) -> Array:
    r"""Gers & Schmidhuber's (2000) peephole: gate ``name``'s :math:`s + p \odot c`."""
    if name not in step.peepholes:
        return z[name]
    return z[name] + _blocks.along_last(getattr(params, f"p_{name}"), c) * c


def full_gate_recurrence(step: LSTMStep, z: dict, g_proj: Array | None) -> dict:
    r"""Greff et al.'s (2017) FGR: :math:`s \mathrel{+}= [i, f, o]_{t-1} W_g`."""
    if not step.fed_back:
        return z
    fed = _blocks.split(g_proj.astype(z["g"].dtype), step.fed_back)
    return {name: z[name] + fed[name] if name in fed else z[name] for name in z}


def layer_norm_recurrent(step: LSTMStep, params: Any, h_proj: Array) -> Array:
    r"""Ba et al. (2016): :math:`\mathrm{LN}(h W_h) \odot \gamma_h` (and :func:`project`)."""
    if step.layer_norm_eps is None:
        return h_proj
    return _blocks.layer_norm(h_proj, params.ln_h, None, step.layer_norm_eps)


def layer_norm_memory(step: LSTMStep, params: Any, c: Array) -> Array:
    r"""Ba et al. (2016): :math:`\mathrm{LN}(c') \odot \gamma_c + \beta_c` (not carried)."""
    if step.layer_norm_eps is None:
        return c
    return _blocks.layer_norm(c, params.ln_c, params.ln_c_bias, step.layer_norm_eps)


def project(spec: LSTMSpec, params: Any, xs: Array) -> Array:
    """The input half: ``xs @ w_x + b``, or ``LN(xs @ w_x) * ln_x + b`` with layer norm."""
    if spec.step.layer_norm_eps is None:
        return _blocks.project(spec, params, xs)
    return _blocks.normalized_projection(params, xs, spec.step.layer_norm_eps, spec.dtype)


def recur(spec: LSTMSpec, params: Any, carry: Any, x_proj: Array) -> tuple[Any, Array, LSTMGates]:
    """A step with a second matmul (no :class:`~gatedcells.MatmulSplit`): full gate recurrence
    (``gates @ w_g``, the gates kept in :class:`FullGateCarry`) or Sak et al.'s (2014)
    projection, ``h' = (o * phi(c')) W_r [*B, P]``, the new ``carry.h`` and the output."""
    step, dtype = spec.step, spec.dtype
    h_proj = matmul(carry.h, params.w_h, dtype)
    g_proj = matmul(carry.gates, params.w_g, dtype) if step.fed_back else None
    new, h, gates = update(step, params, carry, x_proj, h_proj, g_proj)
    if step.fed_back:
        new = FullGateCarry(*new, jnp.concatenate([getattr(gates, n) for n in step.fed_back], -1))
    if spec.proj_size:
        with jax.named_scope("gatedcells.lstm_projection"):
            h = _blocks.matmul_like(h, params.w_r, dtype)
        new = new._replace(h=h)
    return new, h, gates
