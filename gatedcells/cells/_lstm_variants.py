"""Research variants of the LSTM (their flags are ``_lstm_flags``'s): the step as in the
papers, one helper per variant, written apart from :func:`gatedcells.lstm`'s and pinned to it
by ``tests/cells/test_variants.py``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from .. import _cell, _checks
from .._cell import Array, Cell, MatmulSplit
from . import _anatomy, _blocks, _lstm, _lstm_flags
from ._lstm import LSTMCarry, LSTMGates, LSTMSpec
from ._lstm_flags import LSTMVariantStep


class FullGateCarry(NamedTuple):
    """Carry of an LSTM with full gate recurrence: ``c``, ``h`` and ``gates [*B, S*H]``, the
    learned sigmoid gates of the previous step (in ``(i, f, o)`` order), zeros at first."""

    c: Array
    h: Array
    gates: Array


# --------------------------------------------------------------------------------------
# The step: the paper's lines, one named helper per variant.


def lstm_variant_update(
    step: LSTMVariantStep, params: Any, carry: Any, x_proj: Array, h_proj: Array, g_proj=None
) -> tuple[Any, Array, LSTMGates]:
    """One step of an LSTM variant after its recurrent matmuls: ``x_proj`` the projection,
    ``h_proj = h W_h`` and (full gate recurrence) ``g_proj = gates W_g``, each ``[*B, G*H]``.
    See :func:`gatedcells.lstm_variant`."""
    with jax.named_scope("gatedcells.lstm_variant"):
        c, dtype = carry.c, carry.c.dtype
        h_proj = layer_norm_recurrent(step, params, h_proj.astype(dtype))
        z = _blocks.split(x_proj.astype(dtype) + h_proj, step.blocks)
        z = full_gate_recurrence(step, z, g_proj)
        f, i = (gate(step, params, z, name, c) for name in "fi")
        g = step.candidate_activation(z["g"])
        c = f * c + i * g
        o = gate(step, params, z, "o", c)  # the output gate's peephole reads the new cell
        h = o * step.output_activation(layer_norm_memory(step, params, c))
        gates = LSTMGates(i, f, g, o)
    return carry_of(step, c, h, gates), h, gates


def peephole(step: LSTMVariantStep, params: Any, z: dict, name: str, c: Array) -> Array:
    r"""Gate ``name``'s pre-activation, reading the memory cell through its diagonal peephole
    weights with ``peepholes`` (Gers & Schmidhuber 2000): :math:`s + p \odot c`."""
    if name not in step.peepholes:
        return z[name]
    return z[name] + _blocks.along_last(getattr(params, f"p_{name}"), c) * c


def gate(step: LSTMVariantStep, params: Any, z: dict, name: str, c: Array) -> Array:
    r"""A sigmoid gate (with its peephole), or its clamped constant (``fixed_gates``); with
    ``cifg`` (Greff et al. 2017) the input gate is coupled to the forget gate's pre-activation,
    :math:`i = 1 - \sigma(s_f - \beta)`: :math:`1 - f` for :math:`\beta = 0`, and JANET's
    :math:`\beta = 1` (van der Westhuizen & Lasenby 2018) opens it a little less."""
    fixed = dict(step.fixed)
    if name in fixed:
        return jnp.full_like(c, fixed[name])
    if name == "i" and step.cifg_shift is not None:
        shift = jnp.asarray(step.cifg_shift, c.dtype)
        return 1 - jax.nn.sigmoid(peephole(step, params, z, "f", c) - shift)
    return jax.nn.sigmoid(peephole(step, params, z, name, c))


def full_gate_recurrence(step: LSTMVariantStep, z: dict, g_proj: Array | None) -> dict:
    r"""Greff et al.'s (2017) FGR: each learned gate also reads all learned gates of the
    previous step, :math:`s \mathrel{+}= [i, f, o]_{t-1} W_g`."""
    if not step.fed_back:
        return z
    fed = _blocks.split(g_proj.astype(z["g"].dtype), step.fed_back)
    return {name: z[name] + fed[name] if name in fed else z[name] for name in z}


def layer_norm_recurrent(step: LSTMVariantStep, params: Any, h_proj: Array) -> Array:
    r"""Ba et al. (2016): the recurrent pre-activations normalised on their own,
    :math:`\mathrm{LN}(h W_h) \odot \gamma_h` (the input's are normalised by the projection)."""
    if step.layer_norm_eps is None:
        return h_proj
    return _blocks.layer_norm(h_proj, params.ln_h, None, step.layer_norm_eps)


def layer_norm_memory(step: LSTMVariantStep, params: Any, c: Array) -> Array:
    r"""Ba et al. (2016): the memory cell normalised before its activation,
    :math:`\mathrm{LN}(c') \odot \gamma_c + \beta_c` (the carried :math:`c'` is not)."""
    if step.layer_norm_eps is None:
        return c
    return _blocks.layer_norm(c, params.ln_c, params.ln_c_bias, step.layer_norm_eps)


def carry_of(step: LSTMVariantStep, c: Array, h: Array, gates: LSTMGates) -> Any:
    """:class:`LSTMCarry`, or with full gate recurrence :class:`FullGateCarry` holding the
    learned gates that the next step reads."""
    if not step.fed_back:
        return LSTMCarry(c, h)
    return FullGateCarry(c, h, jnp.concatenate([getattr(gates, n) for n in step.fed_back], -1))


def project(spec: LSTMSpec, params: Any, xs: Array) -> Array:
    """The input half: ``xs @ w_x + b``, or ``LN(xs @ w_x) * ln_x + b`` with layer norm."""
    if spec.step.layer_norm_eps is None:
        return _blocks.project(spec, params, xs)
    return _blocks.normalized_projection(params, xs, spec.step.layer_norm_eps, spec.dtype)


def recur(spec: LSTMSpec, params: Any, carry: Any, x_proj: Array):
    """A step with a second matmul, so without a :class:`~gatedcells.MatmulSplit`: full gate
    recurrence (``gates @ w_g``) or the projection of LSTMP (:func:`_lstm.projection`)."""
    step, dtype = spec.step, spec.dtype
    h_proj = _cell.matmul(carry.h, params.w_h, dtype)
    g_proj = _cell.matmul(carry.gates, params.w_g, dtype) if step.fed_back else None
    out = lstm_variant_update(step, params, carry, x_proj, h_proj, g_proj)
    return _lstm.projection(spec, params, *out) if spec.proj_size else out


# --------------------------------------------------------------------------------------
# The params and the factory (the spec is the LSTM's, with peephole_init).


def init(spec: LSTMSpec, key: Array, input_size: int) -> Any:
    """:func:`gatedcells.lstm`'s weights from the same streams of ``key``, and the variant's
    own: peepholes, ``w_g`` and the layer-norm gains."""
    H, step, dtype = spec.hidden_size, spec.step, spec.param_dtype
    out, stream = _lstm.init(spec, key, input_size)._asdict(), _lstm.STREAMS.index
    keys = jax.random.split(jax.random.fold_in(key, stream("peepholes")), 3)
    for gate_name, k in zip(step.peepholes, keys, strict=False):
        out[f"p_{gate_name}"] = _blocks.init_param(spec.peephole_init, k, (H,), dtype)
    if step.fed_back:
        k, S = jax.random.fold_in(key, stream("w_g")), len(step.fed_back)
        out["w_g"] = _blocks.init_blocks(spec.recurrent_init, k, S * H, H, S, dtype)
    if step.layer_norm_eps is not None:
        G = len(step.blocks)
        out |= {"ln_x": jnp.ones((G * H,), dtype), "ln_h": jnp.ones((G * H,), dtype)}
        out |= {"ln_c": jnp.ones((H,), dtype), "ln_c_bias": jnp.zeros((H,), dtype)}
    return _lstm_flags.params_of(tuple(out), tuple(out.values()))


def shapes(spec: LSTMSpec) -> dict[str, tuple]:
    """The shapes of :func:`init`'s fields (``None``: the input size)."""
    H, step = spec.hidden_size, spec.step
    G, S = len(step.blocks), len(step.fed_back)
    out = _lstm.shapes(spec) | {f"p_{gate_name}": (H,) for gate_name in step.peepholes}
    out |= {"w_g": (S * H, S * H)} if S else {}
    if step.layer_norm_eps is not None:
        out |= {"ln_x": (G * H,), "ln_h": (G * H,), "ln_c": (H,), "ln_c_bias": (H,)}
    return out


def carry(spec: LSTMSpec, batch_shape: tuple[int, ...], dtype: Any = None) -> Any:
    """:func:`gatedcells.lstm`'s zero carry, and the fed-back gates' with full gate recurrence."""
    c, h = _lstm.carry(spec, batch_shape, dtype)
    if not spec.step.fed_back:
        return LSTMCarry(c, h)
    gates = _anatomy.Zeros(len(spec.step.fed_back) * spec.hidden_size, spec.param_dtype)
    return FullGateCarry(c, h, gates(batch_shape, dtype))


def lstm_variant(
    hidden_size: int,
    *,
    variant: str | None = None,
    peepholes: bool | None = None,
    cifg: bool | None = None,
    cifg_shift: float | None = None,
    candidate_activation: Callable[[Array], Array] | None = None,
    full_gate_recurrence: bool | None = None,
    layer_norm: bool | None = None,
    layer_norm_eps: float = 1e-5,
    forget_gate: bool | None = None,
    forget_bias: float = 1.0,
    chrono: float | None = None,
    fixed_gates: Mapping[str, float] | None = None,
    output_activation: Callable[[Array], Array] | None = None,
    proj_size: int | None = None,
    kernel_init: Callable = jax.nn.initializers.lecun_normal(),
    recurrent_init: Callable = jax.nn.initializers.orthogonal(),
    bias_init: Callable = jax.nn.initializers.zeros,
    peephole_init: Callable = jax.nn.initializers.zeros,
    param_dtype: Any = jnp.float32,
    dtype: Any = None,
) -> Cell:
    r"""An LSTM with the research variants of the literature, as flags or by name.

    :func:`gatedcells.lstm`'s step with these changes; flags combine, and ``variant`` names a
    set of them (:data:`gatedcells.LSTM_VARIANTS`; Greff et al.'s grid,
    :data:`gatedcells.GREFF_VARIANTS`, whose "vanilla" has peepholes and whose NP is
    :func:`gatedcells.lstm`):

    - ``peepholes`` (Gers & Schmidhuber 2000): the gates also read the memory cell through
      diagonal weights, :math:`i = \sigma(\cdot + p_i \odot c)`,
      :math:`f = \sigma(\cdot + p_f \odot c)` (the old cell) and
      :math:`o = \sigma(\cdot + p_o \odot c')` (the new one).
    - ``cifg`` (coupled input and forget gate): :math:`i = 1 - \sigma(s_f - \beta)` with
      :math:`s_f` the forget gate's pre-activation and :math:`\beta` = ``cifg_shift`` (0:
      :math:`i = 1 - f`; JANET uses 1). The input block is not learned.
    - ``candidate_activation``: the block input's activation (Greff's NIAF: identity).
    - ``full_gate_recurrence`` (Greff's FGR): the learned gates at :math:`t` also read all
      learned gates at :math:`t-1`, :math:`s \mathrel{+}= [i, f, o]_{t-1} W_g`; the carry is
      :class:`FullGateCarry`.
    - ``layer_norm`` (Ba et al. 2016): the input and recurrent pre-activations are normalised
      separately (each over its ``G*H`` entries) and the memory cell before its activation,
      :math:`[\cdot] = \mathrm{LN}(x W_x) \odot \gamma_x + \mathrm{LN}(h W_h) \odot \gamma_h
      + b`, :math:`h' = o \odot \phi(\mathrm{LN}(c') \odot \gamma_c + \beta_c)`. The carried
      ``c'`` is not normalised. (Ba's biases of the two pre-activation norms add to ``b``.)

    A flag left at ``None`` takes the variant's value, or the plain LSTM's; a flag given must
    agree with the variant (``fixed_gates`` merge). With no research flag this is
    :func:`gatedcells.lstm`: the same params from the same key, outputs and gradients.

    Parameter count, with ``n = I*H + H*H + H``: :func:`gatedcells.lstm`'s (``G*n`` with
    ``G`` learned blocks; 3n with CIFG), plus ``H`` per peephole (vanilla: 4n + 3H),
    ``(S*H)**2`` with full gate recurrence over ``S`` gates (FGR: 4n + 3H + 9H²), and
    ``2*G*H + 2*H`` with layer norm (4n + 10H).

    Args:
      hidden_size: size ``H`` of ``c`` (and of ``h`` without a projection).
      variant: a name of :data:`gatedcells.LSTM_VARIANTS` that sets its flags, or ``None``.
      peepholes, cifg, full_gate_recurrence, layer_norm: the changes above (``False``).
      cifg_shift: :math:`\beta` of the coupling (``cifg=True`` only; ``0``).
      candidate_activation: activation of the block input ``g`` (``jnp.tanh``).
      layer_norm_eps: the :math:`\epsilon` of the layer norms.
      forget_gate, fixed_gates, output_activation: as :func:`gatedcells.lstm`'s (``None``:
        the variant's, or ``True``, none, ``jnp.tanh``).
      forget_bias, chrono, proj_size, kernel_init, recurrent_init, bias_init, param_dtype, dtype:
        as :func:`gatedcells.lstm`'s; ``recurrent_init`` also initialises ``w_g``.
      peephole_init: initializer of the peephole weights (default zeros: the LSTM starts as
        if it had none).

    Returns:
      A :class:`gatedcells.Cell` with :class:`LSTMVariantParams` holding only the variant's
      fields (:class:`gatedcells.LSTMParams` or :class:`gatedcells.LSTMPParams` when those
      are all it has), carry :class:`gatedcells.LSTMCarry` (or :class:`FullGateCarry`) and
      gates :class:`gatedcells.LSTMGates`; no :class:`~gatedcells.MatmulSplit` with a second
      matmul in the step (full gate recurrence, projection).

    Raises:
      ValueError: an unknown ``variant`` or a flag that contradicts it, ``cifg`` without a
        learned forget and input gate, ``cifg_shift`` without ``cifg``, a non-positive
        ``layer_norm_eps``, and :func:`gatedcells.lstm`'s errors.
      TypeError: a flag of the wrong type.

    Examples:
      >>> import jax, jax.numpy as jnp, gatedcells as gc
      >>> cell = gc.lstm_variant(8, variant="vanilla")
      >>> params = cell.init(jax.random.key(0), 3)
      >>> type(params).__name__, params._fields[3:]
      ('LSTMVariantParams', ('p_i', 'p_f', 'p_o'))
      >>> {name: gc.count_params(gc.lstm_variant(8, variant=name).init(jax.random.key(0), 3))
      ...  for name in ("np", "vanilla", "cifg", "fgr")}
      {'np': 384, 'vanilla': 408, 'cifg': 304, 'fgr': 984}
      >>> gc.lstm_variant(8, peepholes=True, cifg=True).name
      'lstm_variant(8, peepholes=True, cifg=True)'

    References:
      Gers & Schmidhuber, "Recurrent Nets that Time and Count", IJCNN 2000 (peepholes).
      Greff, Srivastava, Koutník, Steunebrink & Schmidhuber, "LSTM: A Search Space
      Odyssey", IEEE TNNLS 2017.
      Ba, Kiros & Hinton, "Layer Normalization", 2016.
      van der Westhuizen & Lasenby, "The unreasonable effectiveness of the forget gate",
      2018 (JANET).
      and :func:`gatedcells.lstm`'s.
    """
    H = _checks.check_positive_int("hidden_size", hidden_size)
    given = {"forget_gate": forget_gate, "peepholes": peepholes, "cifg": cifg}
    given |= {"cifg_shift": cifg_shift, "candidate_activation": candidate_activation}
    given |= {"output_activation": output_activation, "fixed_gates": fixed_gates}
    given |= {"full_gate_recurrence": full_gate_recurrence, "layer_norm": layer_norm}
    flags, name = _lstm_flags.resolve(H, variant, given, proj_size)
    _checks.check_factory_args(numbers={"forget_bias": forget_bias})
    inits = _blocks.checked_inits(kernel_init, recurrent_init, bias_init, param_dtype, dtype)
    _checks.check_factory_args(functions={"peephole_init": peephole_init})
    step = _lstm_flags.step_from_flags(H, flags, chrono, layer_norm_eps, proj_size)
    spec = LSTMSpec(name, H, 1, step, proj_size, float(forget_bias), chrono, *inits, peephole_init)
    split, update = None, recur  # a second matmul in the step (FGR, projection): no split
    if not (step.fed_back or proj_size):
        additive = step.layer_norm_eps is None  # layer norm reads h_proj on its own
        pointwise = _anatomy.Bound(lstm_variant_update, step)
        split, update = MatmulSplit(_anatomy.hidden, pointwise, dtype, additive), None
    zeros, P = _anatomy.Bound(carry, spec), proj_size or H
    return _anatomy.assemble(
        spec, init, project, update, split=split, shapes=shapes, carry=zeros, output_size=P
    )
