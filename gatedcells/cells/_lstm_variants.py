"""Research variants of the LSTM: peepholes, coupled gates, the candidate's activation, full
gate recurrence, layer normalisation (their flags and named sets, Greff et al.'s grid and
JANET, are ``_lstm_flags``'s). The step is the paper's, with one helper per variant.

With no research flag, ``lstm_variant`` is :func:`gatedcells.lstm`: the same params, outputs
and gradients, written independently and pinned together by ``tests/cells/test_variants.py``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from .. import _cell, _checks
from .._cell import Array, Cell, MatmulSplit
from . import _blocks, _lstm, _lstm_flags
from ._lstm import LSTMCarry, LSTMGates
from ._lstm_flags import LSTMVariantSpec


class FullGateCarry(NamedTuple):
    """Carry of an LSTM with full gate recurrence: ``c``, ``h`` and ``gates [*B, S*H]``, the
    learned sigmoid gates of the previous step (in ``(i, f, o)`` order), zeros at first."""

    c: Array
    h: Array
    gates: Array


# --------------------------------------------------------------------------------------
# The step: the paper's lines, one named helper per variant.


def lstm_variant_update(
    spec: LSTMVariantSpec, params: Any, carry: Any, x_proj: Array, h_proj: Array,
    g_proj: Array | None = None,
) -> tuple[Any, Array, LSTMGates]:  # fmt: skip
    """One step of an LSTM variant after its recurrent matmuls: ``x_proj`` the projection,
    ``h_proj = h W_h`` and (full gate recurrence) ``g_proj = gates W_g``, each ``[*B, G*H]``.
    See :func:`gatedcells.lstm_variant`."""
    with jax.named_scope("gatedcells.lstm_variant"):
        c, dtype = carry.c, carry.c.dtype
        h_proj = layer_norm_recurrent(spec, params, h_proj.astype(dtype))
        z = _blocks.split(x_proj.astype(dtype) + h_proj, spec.blocks)
        z = full_gate_recurrence(spec, z, g_proj)
        f = gate(spec, params, z, "f", c)
        i = input_gate(spec, params, z, c)
        g = spec.candidate_activation(z["g"])
        c = f * c + i * g
        o = gate(spec, params, z, "o", c)  # the output gate's peephole reads the new cell
        h = o * spec.output_activation(layer_norm_memory(spec, params, c))
        gates = LSTMGates(i, f, g, o)
    return carry_of(spec, c, h, gates), h, gates


def peephole(spec: LSTMVariantSpec, params: Any, z: dict, name: str, c: Array) -> Array:
    r"""Gate ``name``'s pre-activation, reading the memory cell through its diagonal peephole
    weights with ``peepholes`` (Gers & Schmidhuber 2000): :math:`s + p \odot c`."""
    if name not in spec.peepholes:
        return z[name]
    return z[name] + _blocks.along_last(getattr(params, f"p_{name}"), c) * c


def gate(spec: LSTMVariantSpec, params: Any, z: dict, name: str, c: Array) -> Array:
    """A sigmoid gate (with its peephole), or its clamped constant (``fixed_gates``)."""
    if name in spec.fixed:
        return jnp.full_like(c, spec.fixed[name])
    return jax.nn.sigmoid(peephole(spec, params, z, name, c))


def input_gate(spec: LSTMVariantSpec, params: Any, z: dict, c: Array) -> Array:
    r"""The input gate; with ``cifg`` (Greff et al. 2017) coupled to the forget gate,
    :math:`i = 1 - \sigma(s_f - \beta)` with :math:`s_f` the forget gate's pre-activation:
    :math:`i = 1 - f` for :math:`\beta = 0`; JANET's :math:`\beta = 1` (van der Westhuizen &
    Lasenby 2018) opens it a little less."""
    if spec.cifg_shift is None:
        return gate(spec, params, z, "i", c)
    shift = jnp.asarray(spec.cifg_shift, c.dtype)
    return 1 - jax.nn.sigmoid(peephole(spec, params, z, "f", c) - shift)


def full_gate_recurrence(spec: LSTMVariantSpec, z: dict, g_proj: Array | None) -> dict:
    r"""Greff et al.'s (2017) FGR: each learned gate also reads all learned gates of the
    previous step, :math:`s \mathrel{+}= [i, f, o]_{t-1} W_g`."""
    if not spec.fed_back:
        return z
    fed = _blocks.split(g_proj.astype(z["g"].dtype), spec.fed_back)
    return {name: z[name] + fed[name] if name in fed else z[name] for name in z}


def layer_norm_recurrent(spec: LSTMVariantSpec, params: Any, h_proj: Array) -> Array:
    r"""Ba et al. (2016): the recurrent pre-activations normalised on their own,
    :math:`\mathrm{LN}(h W_h) \odot \gamma_h` (the input's are normalised by the projection)."""
    if spec.layer_norm_eps is None:
        return h_proj
    return _blocks.layer_norm(h_proj, params.ln_h, None, spec.layer_norm_eps)


def layer_norm_memory(spec: LSTMVariantSpec, params: Any, c: Array) -> Array:
    r"""Ba et al. (2016): the memory cell normalised before its activation,
    :math:`\mathrm{LN}(c') \odot \gamma_c + \beta_c` (the carried :math:`c'` is not)."""
    if spec.layer_norm_eps is None:
        return c
    return _blocks.layer_norm(c, params.ln_c, params.ln_c_bias, spec.layer_norm_eps)


def carry_of(spec: LSTMVariantSpec, c: Array, h: Array, gates: LSTMGates) -> Any:
    """:class:`LSTMCarry`, or with full gate recurrence :class:`FullGateCarry` holding the
    learned gates that the next step reads."""
    if not spec.fed_back:
        return LSTMCarry(c, h)
    return FullGateCarry(c, h, jnp.concatenate([getattr(gates, n) for n in spec.fed_back], -1))


def lstm_variant_project(spec: LSTMVariantSpec, dtype: Any, params: Any, xs: Array) -> Array:
    """The input half: ``xs @ w_x + b``, or ``LN(xs @ w_x) * ln_x + b`` with layer norm."""
    if spec.layer_norm_eps is None:
        return _blocks.project_affine(params, xs, dtype)
    return _blocks.normalized_projection(params, xs, spec.layer_norm_eps, dtype)


def lstm_variant_recur(spec: LSTMVariantSpec, dtype: Any, params: Any, carry: Any, x_proj: Array):
    """A step with a second matmul, so without a :class:`~gatedcells.MatmulSplit`: full gate
    recurrence (``gates @ w_g``) or the projection of LSTMP (Sak et al. 2014), ``h' = y W_r``."""
    h_proj = _cell.matmul(carry.h, params.w_h, dtype)
    g_proj = _cell.matmul(carry.gates, params.w_g, dtype) if spec.fed_back else None
    carry, y, gates = lstm_variant_update(spec, params, carry, x_proj, h_proj, g_proj)
    if spec.proj_size:
        with jax.named_scope("gatedcells.lstm_projection"):
            y = _blocks.matmul_like(y, params.w_r, dtype)
        carry = carry._replace(h=y)
    return carry, y, gates


# --------------------------------------------------------------------------------------
# The factory.


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

    The plain LSTM's step (:func:`gatedcells.lstm`) with these changes; flags combine, and
    ``variant`` names a set of them (:data:`gatedcells.LSTM_VARIANTS`):

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

    and :func:`gatedcells.lstm`'s flags (``forget_gate``, ``fixed_gates``,
    ``output_activation``, ``forget_bias``, ``chrono``, ``proj_size``). A flag left at
    ``None`` takes the variant's value, or the plain LSTM's; a flag given must agree with the
    variant (``fixed_gates`` merge). With no research flag this is :func:`gatedcells.lstm`:
    the same params from the same key, the same outputs and gradients.

    Greff et al.'s "vanilla" LSTM has peepholes; the plain LSTM (as PyTorch's) has none and
    is their NP. The grid: ``for name in gc.GREFF_VARIANTS: gc.lstm_variant(H, variant=name)``.

    Parameter count, with ``n = I*H + H*H + H`` and ``G`` learned blocks: ``G*n`` (4n; 3n
    without the forget gate or with CIFG; one block less per clamped gate), plus ``H`` per
    peephole (vanilla: 4n + 3H), ``(S*H)**2`` with full gate recurrence (FGR: 4n + 3H +
    9H²), ``2*G*H + 2*H`` with layer norm (4n + 10H), and with ``proj_size=P`` as
    :func:`gatedcells.lstm`'s.

    Args:
      hidden_size: size ``H`` of ``c`` (and of ``h`` without a projection).
      variant: a name of :data:`gatedcells.LSTM_VARIANTS` (``"vanilla"``, ``"nig"``,
        ``"nfg"``, ``"nog"``, ``"niaf"``, ``"noaf"``, ``"np"``, ``"cifg"``, ``"fgr"``,
        ``"janet"``) that sets its flags, or ``None``.
      peepholes: diagonal peephole connections for every learned gate (``False``).
      cifg: couple the input gate to the forget gate (``False``).
      cifg_shift: :math:`\beta` of the coupling (``cifg=True`` only; ``0``).
      candidate_activation: activation of the block input ``g`` (``jnp.tanh``).
      full_gate_recurrence: Greff's FGR (``False``).
      layer_norm: Ba et al.'s layer-normalised LSTM (``False``).
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
      are all it has), carry :class:`gatedcells.LSTMCarry` (or :class:`FullGateCarry`) and gates
      :class:`gatedcells.LSTMGates`. It declares its :class:`~gatedcells.MatmulSplit` form
      except with full gate recurrence or a projection, whose steps hold a second matmul.

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
    given = {"forget_gate": forget_gate, "peepholes": peepholes, "cifg": cifg,
             "cifg_shift": cifg_shift, "candidate_activation": candidate_activation,
             "output_activation": output_activation, "fixed_gates": fixed_gates,
             "full_gate_recurrence": full_gate_recurrence, "layer_norm": layer_norm}  # fmt: skip
    flags = _lstm_flags.resolve(variant, given)
    _checks.check_factory_args(
        numbers={"forget_bias": forget_bias},
        functions={"kernel_init": kernel_init, "recurrent_init": recurrent_init,
                   "bias_init": bias_init, "peephole_init": peephole_init},
        dtypes={"param_dtype": param_dtype, "dtype": dtype},
    )  # fmt: skip
    spec = _lstm_flags.spec_from_flags(
        H, flags, chrono=chrono, layer_norm_eps=layer_norm_eps, proj_size=proj_size
    )
    name = _lstm_flags.describe(H, variant, flags, proj_size)
    structure = {"blocks": spec.blocks, "proj_size": proj_size, "peepholes": spec.peepholes,
                 "fed_back": spec.fed_back, "layer_norm": spec.layer_norm_eps is not None}  # fmt: skip
    weights = functools.partial(
        _blocks.lstm_weights, hidden_size=H, forget_bias=forget_bias, chrono=chrono,
        kernel_init=kernel_init, recurrent_init=recurrent_init, bias_init=bias_init,
        peephole_init=peephole_init, param_dtype=param_dtype, **structure,
    )  # fmt: skip
    shapes = _blocks.lstm_shapes(H, **structure)
    fields = tuple(f for f in _blocks.LSTM_FIELDS if f in shapes)

    def init(key: Array, input_size: int) -> Any:
        return _lstm_flags.params_type(fields)(**weights(key, input_size))

    def carry_fn(batch_shape: tuple[int, ...], dtype: Any = None) -> Any:
        carry = _lstm.zeros_carry(H, proj_size or H, param_dtype, batch_shape, dtype)
        if not spec.fed_back:
            return carry
        gates = _blocks.zeros_carry(len(spec.fed_back) * H, param_dtype)(batch_shape, dtype)
        return FullGateCarry(*carry, gates)

    if spec.fed_back or proj_size:  # a second matmul in the step: no split
        split, update = None, functools.partial(lstm_variant_recur, spec, dtype)
    else:
        additive = spec.layer_norm_eps is None  # layer norm reads h_proj on its own
        pointwise = functools.partial(lstm_variant_update, spec)
        split = MatmulSplit(lambda carry: carry.h, pointwise, dtype=dtype, additive=additive)
        update = _cell.split_update(split)
    return Cell(
        init_fn=init,
        carry_fn=carry_fn,
        project=functools.partial(lstm_variant_project, spec, dtype),
        update=update,
        check_params=functools.partial(_blocks.check_fields, name, shapes=shapes),
        output_size=proj_size or H,
        name=name,
        split=split,
    )
