"""The LSTM family: the forget-gate LSTM, the 1997 LSTM, and their variants (peepholes, CIFG,
Greff et al.'s ablations, full gate recurrence, layer normalisation, projection)."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from .. import _cell, _checks
from .._cell import Array, Cell, MatmulSplit
from . import _blocks
from ._lstm_variants import LSTMSpec, describe, resolve_variant, spec_from_flags


class LSTMParams(NamedTuple):
    """LSTM weights, gate blocks fused on the last axis in PyTorch's order ``(i, f, g, o)``.

    A gate that is absent (``forget_gate=False``, ``cifg``) or clamped (``fixed_gates``) has
    no block, so ``G`` counts only the learned blocks: 4 for the standard LSTM, 3 for the
    1997 LSTM. The fields after ``b`` belong to variants and are ``None`` otherwise.

    Attributes:
      w_x: input kernel ``[I, G*H]``.
      w_h: recurrent kernel ``[H, G*H]`` (``[P, G*H]`` with a projection).
      b: bias ``[G*H]`` (PyTorch's ``b_ih + b_hh``); the forget block starts at
        ``forget_bias``.
      p_i, p_f, p_o: peephole weights ``[H]`` (``peepholes=True``, learned gates only).
      w_g: full gate recurrence ``[S*H, S*H]`` from the ``S`` learned sigmoid gates at
        ``t-1`` to the same gates at ``t`` (``full_gate_recurrence=True``).
      w_r: projection ``[H, P]`` (``proj_size=P``; PyTorch's ``weight_hr.T``).
      ln_x, ln_h: layer-norm gains ``[G*H]`` of the input and recurrent pre-activations
        (``layer_norm=True``).
      ln_c, ln_c_bias: layer-norm gain and bias ``[H]`` of the memory cell.
    """

    w_x: Array
    w_h: Array
    b: Array
    p_i: Array | None = None
    p_f: Array | None = None
    p_o: Array | None = None
    w_g: Array | None = None
    w_r: Array | None = None
    ln_x: Array | None = None
    ln_h: Array | None = None
    ln_c: Array | None = None
    ln_c_bias: Array | None = None


class LSTMCarry(NamedTuple):
    """LSTM carry: the memory cell ``c [*B, H]`` and the hidden state ``h [*B, H]`` (``[*B, P]``
    with a projection).

    The order ``(c, h)`` is Flax's; access the fields by name.
    """

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


def lstm_update(
    spec: LSTMSpec,
    params: LSTMParams,
    carry: LSTMCarry,
    x_proj: Array,
    h_proj: Array,
    g_proj: Array | None = None,
) -> tuple[LSTMCarry, Array, LSTMGates]:
    r"""One LSTM step after the recurrent matmul (``g_proj``: the full gate recurrence's
    ``gates @ w_g``). Only pointwise parameters are read here. See :func:`gatedcells.lstm`."""
    with jax.named_scope("gatedcells.lstm"):
        c, dtype = carry.c, carry.c.dtype
        h_proj = h_proj.astype(dtype)
        if spec.layer_norm_eps is not None:
            h_proj = _blocks.layer_norm(h_proj, params.ln_h, None, spec.layer_norm_eps)
        z = _blocks.split(x_proj.astype(dtype) + h_proj, spec.blocks)
        if g_proj is not None:
            for name, zg in _blocks.split(g_proj.astype(dtype), spec.fed_back).items():
                z[name] = z[name] + zg
        fixed = dict(spec.fixed)

        def pre(name, cell_state):  # a gate's pre-activation, with its peephole
            if name in spec.peepholes:
                p = getattr(params, f"p_{name}")
                return z[name] + _blocks.along_last(p, cell_state) * cell_state
            return z[name]

        def gate(name, cell_state):
            if name in fixed:
                return jnp.full_like(c, fixed[name])
            return jax.nn.sigmoid(pre(name, cell_state))

        f = gate("f", c)
        if spec.cifg_shift is None:
            i = gate("i", c)
        else:  # coupled input and forget gate (JANET shifts the input gate's pre-activation)
            i = 1 - jax.nn.sigmoid(pre("f", c) - jnp.asarray(spec.cifg_shift, dtype))
        g = spec.candidate_activation(z["g"])
        c = f * c + i * g
        o = gate("o", c)  # the output gate's peephole reads the new memory cell
        if spec.layer_norm_eps is not None:
            h = o * spec.output_activation(
                _blocks.layer_norm(c, params.ln_c, params.ln_c_bias, spec.layer_norm_eps)
            )
        else:
            h = o * spec.output_activation(c)
        gates = LSTMGates(i, f, g, o)
        if spec.fed_back:
            fed = jnp.concatenate([getattr(gates, n) for n in spec.fed_back], axis=-1)
            return FullGateCarry(c, h, fed), h, gates
    return LSTMCarry(c, h), h, gates


def lstm_project(spec: LSTMSpec, dtype: Any, params: LSTMParams, xs: Array) -> Array:
    """The input half: ``xs @ w_x + b``, or ``LN(xs @ w_x) * ln_x + b`` with layer norm."""
    if spec.layer_norm_eps is None:
        return _blocks.project_affine(params, xs, dtype)
    out = _cell.matmul(xs, params.w_x, dtype).astype(params.b.dtype)
    out = _blocks.layer_norm(out, params.ln_x, None, spec.layer_norm_eps)
    return out + _blocks.along_last(params.b, out)


def lstm_trace(spec: LSTMSpec, dtype: Any, params: LSTMParams, carry, x_proj: Array):
    """A step of the variants without a :class:`~gatedcells.MatmulSplit` form: full gate recurrence (a second
    recurrent matmul, from the gates) and the projection (a matmul after the update)."""
    h_proj = _cell.matmul(carry.h, params.w_h, dtype)
    g_proj = _cell.matmul(carry.gates, params.w_g, dtype) if spec.fed_back else None
    new, y, gates = lstm_update(spec, params, carry, x_proj, h_proj, g_proj)
    if params.w_r is not None:
        with jax.named_scope("gatedcells.lstm_projection"):
            y = _cell.matmul(y, params.w_r, dtype).astype(y.dtype)
        new = new._replace(h=y)
    return new, y, gates


def lstm(
    hidden_size: int,
    *,
    variant: str | None = None,
    forget_gate: bool = True,
    forget_bias: float = 1.0,
    chrono: float | None = None,
    peepholes: bool = False,
    cifg: bool = False,
    cifg_shift: float = 0.0,
    candidate_activation: Callable[[Array], Array] = jnp.tanh,
    output_activation: Callable[[Array], Array] = jnp.tanh,
    fixed_gates: Mapping[str, float] | None = None,
    full_gate_recurrence: bool = False,
    layer_norm: bool = False,
    layer_norm_eps: float = 1e-5,
    proj_size: int | None = None,
    kernel_init: Callable = jax.nn.initializers.lecun_normal(),
    recurrent_init: Callable = jax.nn.initializers.orthogonal(),
    bias_init: Callable = jax.nn.initializers.zeros,
    peephole_init: Callable = jax.nn.initializers.zeros,
    param_dtype: Any = jnp.float32,
    dtype: Any = None,
) -> Cell:
    r"""Long short-term memory cell (Hochreiter & Schmidhuber 1997; Gers et al. 2000).

    With its forget gate (the default), as in PyTorch's ``nn.LSTM``:

    .. math::

       i &= \sigma(x W_{xi} + h W_{hi} + b_i) \qquad
       f  = \sigma(x W_{xf} + h W_{hf} + b_f) \\
       g &= \tanh(x W_{xg} + h W_{hg} + b_g) \qquad
       o  = \sigma(x W_{xo} + h W_{ho} + b_o) \\
       c' &= f \odot c + i \odot g \qquad h' = o \odot \phi(c')

    with :math:`\phi` = ``output_activation`` (tanh). The memory path has
    :math:`\partial c'/\partial c = \mathrm{diag}(f)` with ``h`` held fixed, which is why the
    forget bias starts high. With ``forget_gate=False`` it is the 1997 LSTM,
    :math:`c' = c + i \odot g`, whose memory Jacobian is the identity: three blocks of weights,
    3x a simple RNN's parameters (4x with the forget gate).

    ``fixed_gates`` clamps gates to constants (the lecture's extreme regimes). A clamped gate
    has no weights. With ``fixed_gates={"i": 1, "f": 0, "o": 1}`` and
    ``output_activation=jax.nn.identity`` the LSTM *is* a simple RNN:
    :math:`h' = c' = \tanh(x W_{xg} + h W_{hg} + b_g)`.

    Variants (flags combine; ``variant`` names a set of them, see
    :data:`gatedcells.LSTM_VARIANTS`):

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
    - ``proj_size=P`` (LSTMP, Sak et al. 2014; PyTorch's ``proj_size``):
      :math:`h' = (o \odot \phi(c')) W_r`, so ``h`` and the output are ``[*B, P]``.
    - ``chrono=T_max`` (Tallec & Ollivier 2018): the forget bias is drawn as
      :math:`\log \mathcal{U}(1, T_{max} - 1)` (replacing ``forget_bias``) and the input bias
      is its negative.

    Greff et al.'s "vanilla" LSTM has peepholes; our default (as PyTorch's) has none and is
    their NP. The grid: ``for name in gc.GREFF_VARIANTS: gc.lstm(H, variant=name)``.

    Parameter count, with ``n = I*H + H*H + H`` and ``G`` learned blocks: ``G*(I*H + H*H + H)``
    (4n; 3n without the forget gate or with CIFG; one block less per clamped gate), plus
    ``H`` per peephole (vanilla: 4n + 3H), ``(S*H)**2`` with full gate recurrence (FGR:
    4n + 3H + 9H²), ``2*G*H + 2*H`` with layer norm (4n + 10H), and with ``proj_size=P``
    ``G*(I*H + P*H + H) + H*P``.

    Args:
      hidden_size: size ``H`` of ``c`` (and of ``h`` without a projection).
      variant: a name of :data:`gatedcells.LSTM_VARIANTS` (``"vanilla"``, ``"nig"``,
        ``"nfg"``, ``"nog"``, ``"niaf"``, ``"noaf"``, ``"np"``, ``"cifg"``, ``"fgr"``,
        ``"janet"``) that sets its flags; flags given explicitly must agree with it.
      forget_gate: ``False`` for the 1997 LSTM without a forget gate (``f = 1``).
      forget_bias: added to the forget-gate bias at init, visible in ``params.b``. The lecture
        suggests large values such as 5 (the LSTM starts by remembering); Jozefowicz et al.
        (2015) recommend 1. Ignored when there is no learned forget gate.
      chrono: ``T_max`` for chrono initialisation of the forget (and input) bias, or ``None``.
      peepholes: diagonal peephole connections for every learned gate.
      cifg: couple the input gate to the forget gate.
      cifg_shift: :math:`\beta` of the coupling (``cifg=True`` only).
      candidate_activation: activation of the block input ``g`` (tanh).
      output_activation: :math:`\phi`, ``jnp.tanh`` or ``jax.nn.identity`` (``h = o*c``).
      fixed_gates: ``{"i" | "f" | "o": value in [0, 1]}`` gates clamped to constants.
      full_gate_recurrence: Greff's FGR.
      layer_norm: Ba et al.'s layer-normalised LSTM.
      layer_norm_eps: the :math:`\epsilon` of the layer norms.
      proj_size: size ``P < H`` of the projected output, or ``None``.
      kernel_init: initializer of each ``[I, H]`` block of ``w_x`` (default LeCun normal), and
        of ``w_r``.
      recurrent_init: initializer of each block of ``w_h`` and ``w_g`` (default orthogonal).
      bias_init: initializer of ``b`` before the forget-bias offset (default zeros).
      peephole_init: initializer of the peephole weights (default zeros: the LSTM starts as
        if it had none).
      param_dtype: dtype of the params and of the default carry.
      dtype: compute dtype of the matmuls (``None``: the params' dtype). With
        ``dtype=jnp.bfloat16`` and float32 params and carry, matmuls run in bfloat16 while
        the gates and the memory stay float32.

    Returns:
      A :class:`gatedcells.Cell` with :class:`LSTMParams`, carry :class:`LSTMCarry` (or
      :class:`FullGateCarry`) and gates :class:`LSTMGates`; its output is ``h``
      (``output_size`` = ``H``, or ``P``). It declares its :class:`~gatedcells.MatmulSplit` form except with
      full gate recurrence or a projection, whose steps hold a second matmul.

    Raises:
      ValueError: for an unknown ``variant`` or a flag that contradicts it, an unknown gate
        name in ``fixed_gates`` (or ``"f"`` without a forget gate), a value outside
        ``[0, 1]``, ``cifg`` without a learned forget and input gate, ``chrono`` without a
        forget gate or not above 2, a ``proj_size`` not in ``[1, H)``, or a non-positive
        ``hidden_size``.

    Examples:
      >>> import jax, jax.numpy as jnp, gatedcells as gc
      >>> cell = gc.lstm(8, forget_bias=5.0)
      >>> params = cell.init(jax.random.key(0), 3)
      >>> params.w_x.shape, params.w_h.shape, float(params.b[8])
      ((3, 32), (8, 32), 5.0)
      >>> carry, ys = gc.unroll(cell, params, jnp.ones((2, 5, 3)))
      >>> ys.shape, carry.c.shape
      ((2, 5, 8), (2, 8))
      >>> {name: gc.count_params(gc.lstm(8, variant=name).init(jax.random.key(0), 3))
      ...  for name in ("np", "vanilla", "cifg", "fgr")}
      {'np': 384, 'vanilla': 408, 'cifg': 304, 'fgr': 984}

    References:
      Hochreiter & Schmidhuber, "Long Short-Term Memory", Neural Computation 1997.
      Gers, Schmidhuber & Cummins, "Learning to Forget", Neural Computation 2000.
      Gers & Schmidhuber, "Recurrent Nets that Time and Count", IJCNN 2000 (peepholes).
      Greff, Srivastava, Koutník, Steunebrink & Schmidhuber, "LSTM: A Search Space
      Odyssey", IEEE TNNLS 2017.
      Jozefowicz, Zaremba & Sutskever, "An Empirical Exploration of Recurrent Network
      Architectures", ICML 2015.
      Sak, Senior & Beaufays, "Long Short-Term Memory Recurrent Neural Network Architectures
      for Large Scale Acoustic Modeling", Interspeech 2014 (projection).
      Ba, Kiros & Hinton, "Layer Normalization", 2016.
      Tallec & Ollivier, "Can Recurrent Neural Networks Warp Time?", ICLR 2018 (chrono).
      van der Westhuizen & Lasenby, "The unreasonable effectiveness of the forget gate",
      2018 (JANET).
    """
    flags = resolve_variant(variant, dict(locals()), _DEFAULTS)
    _checks.check_positive_int("hidden_size", hidden_size)
    _checks.check_factory_args(
        numbers={"forget_bias": forget_bias},
        functions={"output_activation": flags["output_activation"],
                   "candidate_activation": flags["candidate_activation"],
                   "kernel_init": kernel_init,
                   "recurrent_init": recurrent_init, "bias_init": bias_init},
        dtypes={"param_dtype": param_dtype, "dtype": dtype},
    )  # fmt: skip
    spec = spec_from_flags(hidden_size, flags)
    H, n, P = hidden_size, len(spec.blocks), flags["proj_size"]
    R, S = (P or H), len(spec.fed_back)
    name = describe(H, variant, flags, _DEFAULTS)
    chrono, layer_norm = flags["chrono"], spec.layer_norm_eps is not None

    def init(key: Array, input_size: int) -> LSTMParams:
        kx, kh, kb, kc, kp, kg, kr = jax.random.split(key, 7)
        b = _blocks.gate_biases(bias_init, kb, H, spec.blocks, {"f": forget_bias}, param_dtype)
        if chrono is not None:
            b_f = _blocks.chrono_bias(kc, H, chrono, param_dtype)
            b = _blocks.set_block(b, spec.blocks.index("f"), H, b_f)
            if "i" in spec.blocks:
                b = _blocks.set_block(b, spec.blocks.index("i"), H, -b_f)
        ones = jnp.ones((n * H,), param_dtype)
        peep = dict(zip(spec.peepholes, jax.random.split(kp, 3), strict=False))
        return LSTMParams(
            w_x=_blocks.init_blocks(kernel_init, kx, input_size, H, n, param_dtype),
            w_h=_blocks.init_blocks(recurrent_init, kh, R, H, n, param_dtype),
            b=b,
            **{
                f"p_{g}": _blocks.init_param(peephole_init, k, (H,), param_dtype)
                for g, k in peep.items()
            },  # fmt: skip
            w_g=_blocks.init_blocks(recurrent_init, kg, S * H, H, S, param_dtype) if S else None,
            w_r=_blocks.init_param(kernel_init, kr, (H, P), param_dtype) if P else None,
            ln_x=ones if layer_norm else None,
            ln_h=ones if layer_norm else None,
            ln_c=jnp.ones((H,), param_dtype) if layer_norm else None,
            ln_c_bias=jnp.zeros((H,), param_dtype) if layer_norm else None,
        )

    def initial_carry(batch_shape: tuple[int, ...] = (), dtype=None):
        c = _blocks.zeros_carry(H, param_dtype)(batch_shape, dtype)
        h = _blocks.zeros_carry(R, param_dtype)(batch_shape, dtype)
        if S:
            return FullGateCarry(c, h, _blocks.zeros_carry(S * H, param_dtype)(batch_shape, dtype))
        return LSTMCarry(c, h)

    shapes = {"w_x": (None, n * H), "w_h": (R, n * H), "b": (n * H,)}
    shapes.update({f"p_{g}": (H,) for g in spec.peepholes})
    shapes.update({"w_g": (S * H, S * H)} if S else {})
    shapes.update({"w_r": (H, P)} if P else {})
    if layer_norm:
        shapes.update({"ln_x": (n * H,), "ln_h": (n * H,), "ln_c": (H,), "ln_c_bias": (H,)})

    def input_size(params: LSTMParams) -> int:
        size = _checks.check_param_shapes(name, params, shapes)
        _checks.check_absent(name, params, tuple(f for f in LSTMParams._fields if f not in shapes))
        return size

    project = functools.partial(lstm_project, spec, dtype)
    if S or P:  # a second matmul in the step: no fused form
        fused, trace = None, functools.partial(lstm_trace, spec, dtype)
    else:
        update = functools.partial(lstm_update, spec)
        additive = spec.layer_norm_eps is None  # layer norm reads h_proj on its own
        fused = MatmulSplit(lambda carry: carry.h, update, dtype=dtype, additive=additive)
        trace = _cell.split_update(fused)
    return Cell(
        init_fn=init,
        carry_fn=initial_carry,
        project=project,
        update=trace,
        check_params=input_size,
        output_size=R,
        name=name,
        split=fused,
    )


# the flags' defaults, to tell a variant's flags from those given explicitly
_DEFAULTS = {k: v.default for k, v in inspect.signature(lstm).parameters.items()}
