"""The LSTM family's ``init`` and factories, :func:`gatedcells.lstm` and
:func:`gatedcells.lstm_variant` over ``_lstm``'s one step (pinned by test_variants.py)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp

from .. import _checks
from .._cell import Array, Cell, MatmulSplit
from . import _anatomy, _blocks, _lstm, _lstm_flags
from ._lstm import STREAMS, LSTMSpec, project, recur, shapes
from ._lstm import FullGateCarry as FullGateCarry  # where carries pickled before the move look


def init(spec: LSTMSpec, key: Array, input_size: int) -> Any:
    """``w_x``, ``w_h``, ``b`` (the forget block at ``forget_bias``, or chrono with the input
    block its negative) and the variant's fields, each from its stream of ``key``."""
    H, step, P, dtype = spec.hidden_size, spec.step, spec.proj_size, spec.param_dtype
    G, k = len(step.blocks), {name: jax.random.fold_in(key, n) for n, name in enumerate(STREAMS)}
    b = _blocks.gate_biases(spec.bias_init, k["b"], H, step.blocks, {"f": spec.forget_bias}, dtype)
    if spec.chrono is not None:
        b_f = _blocks.chrono_bias(k["chrono"], H, spec.chrono, dtype)
        b = _blocks.set_block(b, step.blocks.index("f"), H, b_f)
        if "i" in step.blocks:
            b = _blocks.set_block(b, step.blocks.index("i"), H, -b_f)
    w_x = _blocks.init_blocks(spec.kernel_init, k["w_x"], input_size, H, G, dtype)
    w_h = _blocks.init_recurrent(spec.recurrent_init, k["w_h"], P or H, H, spec.num_heads, G, dtype)
    out = {"w_x": w_x, "w_h": w_h, "b": b}
    for gate_name, kp in zip(step.peepholes, jax.random.split(k["peepholes"], 3), strict=False):
        out[f"p_{gate_name}"] = _blocks.init_param(spec.peephole_init, kp, (H,), dtype)
    if S := len(step.fed_back):
        out["w_g"] = _blocks.init_blocks(spec.recurrent_init, k["w_g"], S * H, H, S, dtype)
    if P:
        out["w_r"] = _blocks.init_param(spec.kernel_init, k["w_r"], (H, P), dtype)
    if step.layer_norm_eps is not None:
        out |= {"ln_x": jnp.ones((G * H,), dtype), "ln_h": jnp.ones((G * H,), dtype)}
        out |= {"ln_c": jnp.ones((H,), dtype), "ln_c_bias": jnp.zeros((H,), dtype)}
    return _lstm_flags.params_of(tuple(out), tuple(out.values()))


def lstm_cell(spec: LSTMSpec) -> Cell:
    """Either factory's cell: a :class:`~gatedcells.MatmulSplit` over the step, unless the
    step has a second matmul (a projection, full gate recurrence: ``_lstm.recur``)."""
    split, update = None, recur
    if not (spec.step.fed_back or spec.proj_size):
        additive = spec.step.layer_norm_eps is None  # layer norm reads h_proj on its own
        pointwise = _anatomy.Bound(_lstm.update, spec.step)
        split, update = MatmulSplit(_anatomy.hidden, pointwise, spec.dtype, additive), None
    zeros, P = _anatomy.Bound(_lstm.carry, spec), spec.proj_size or spec.hidden_size
    return _anatomy.assemble(
        spec, init, project, update, split=split, shapes=shapes, carry=zeros, output_size=P
    )


def lstm(
    hidden_size: int,
    *,
    forget_gate: bool = True,
    forget_bias: float = 1.0,
    chrono: float | None = None,
    fixed_gates: Mapping[str, float] | None = None,
    output_activation: Callable[[Array], Array] = jnp.tanh,
    proj_size: int | None = None,
    num_heads: int = 1,
    kernel_init: Callable = jax.nn.initializers.lecun_normal(),
    recurrent_init: Callable = jax.nn.initializers.orthogonal(),
    bias_init: Callable = jax.nn.initializers.zeros,
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
    :math:`c' = c + i \odot g`, whose memory Jacobian is the identity.

    ``fixed_gates`` clamps gates to constants, without weights (the lecture's extreme
    regimes): with ``{"i": 1, "f": 0, "o": 1}`` and ``output_activation=jax.nn.identity``
    the LSTM *is* a simple RNN, :math:`h' = c' = \tanh(x W_{xg} + h W_{hg} + b_g)`.

    ``proj_size=P`` (LSTMP, Sak et al. 2014; PyTorch's): :math:`h' = (o \odot \phi(c')) W_r`,
    so ``h`` and the output are ``[*B, P]``. ``chrono=T_max`` (Tallec & Ollivier 2018): the
    forget bias is drawn as :math:`\log \mathcal{U}(1, T_{max} - 1)` (replacing
    ``forget_bias``) and the input bias is its negative. The research variants are
    :func:`gatedcells.lstm_variant`'s.

    Parameter count, with ``G`` learned blocks: ``G*(I*H + H*H + H)`` (4x a simple RNN's;
    3x without the forget gate; one block less per clamped gate), and with ``proj_size=P``
    ``G*(I*H + P*H + H) + H*P``; ``num_heads=NH`` divides the ``H*H`` of each block by ``NH``.

    Args:
      hidden_size: size ``H`` of ``c`` (and of ``h`` without a projection).
      forget_gate: ``False`` for the 1997 LSTM without a forget gate (``f = 1``).
      forget_bias: added to the forget-gate bias at init, visible in ``params.b``. The lecture
        suggests large values such as 5 (the LSTM starts by remembering); Jozefowicz et al.
        (2015) recommend 1. Ignored when there is no learned forget gate.
      chrono: ``T_max`` for chrono initialisation of the forget (and input) bias, or ``None``.
      fixed_gates: ``{"i" | "f" | "o": value in [0, 1]}`` gates clamped to constants.
      output_activation: :math:`\phi`, ``jnp.tanh`` or ``jax.nn.identity`` (``h = o*c``).
      proj_size: size ``P < H`` of the projected output, or ``None``.
      num_heads: ``NH`` heads of a block-diagonal ``w_h [NH, H/NH, G*H/NH]`` (the sLSTM's:
        head ``n``'s slice of ``h`` meets only its own block); it must divide ``H``.
      kernel_init: initializer of each ``[I, H]`` block of ``w_x`` (LeCun normal), and ``w_r``.
      recurrent_init: initializer of each block of ``w_h`` (default orthogonal).
      bias_init: initializer of ``b`` before the forget-bias offset (default zeros).
      param_dtype: dtype of the params and of the default carry.
      dtype: compute dtype of the matmuls (``None``: the params'); with ``jnp.bfloat16`` and
        float32 params and carry, the gates and the memory stay float32.

    Returns:
      A :class:`gatedcells.Cell` with :class:`LSTMParams` (:class:`LSTMPParams` with a
      projection), carry :class:`LSTMCarry`, gates :class:`LSTMGates` and output ``h`` (size
      ``H``, or ``P``); a :class:`~gatedcells.MatmulSplit` but with a projection.

    Raises:
      ValueError: an unknown gate in ``fixed_gates`` (or ``"f"`` without a forget gate), a
        value outside ``[0, 1]``, ``chrono`` without a forget gate or not above 2, ``proj_size``
        not in ``[1, H)`` or with heads, ``hidden_size`` < 1, ``num_heads`` not dividing it.
      TypeError: a flag of the wrong type (e.g. an initializer not a function).

    Examples:
      >>> import jax, jax.numpy as jnp, gatedcells as gc
      >>> cell = gc.lstm(8, forget_bias=5.0)
      >>> params = cell.init(jax.random.key(0), 3)
      >>> params.w_x.shape, params.w_h.shape, float(params.b[8])
      ((3, 32), (8, 32), 5.0)
      >>> carry, ys = gc.unroll(cell, params, jnp.ones((2, 5, 3)))
      >>> ys.shape, carry.c.shape
      ((2, 5, 8), (2, 8))
      >>> gc.count_params(gc.lstm(8, forget_gate=False).init(jax.random.key(0), 3))
      288

    References:
      Hochreiter & Schmidhuber, "Long Short-Term Memory", Neural Computation 1997.
      Gers, Schmidhuber & Cummins, "Learning to Forget", Neural Computation 2000.
      Jozefowicz, Zaremba & Sutskever, "An Empirical Exploration of Recurrent Network
      Architectures", ICML 2015.
      Sak, Senior & Beaufays, "Long Short-Term Memory Recurrent Neural Network Architectures
      for Large Scale Acoustic Modeling", Interspeech 2014 (projection).
      Tallec & Ollivier, "Can Recurrent Neural Networks Warp Time?", ICLR 2018 (chrono).
    """
    H = _checks.check_positive_int("hidden_size", hidden_size)
    _checks.check_factory_args(numbers={"forget_bias": forget_bias})
    inits = _blocks.checked_inits(kernel_init, recurrent_init, bias_init, param_dtype, dtype)
    NH = _checks.check_heads(num_heads, H)
    given = {"forget_gate": forget_gate, "output_activation": output_activation}
    given |= {"fixed_gates": fixed_gates}
    flags, name = _lstm_flags.resolve("lstm", H, None, given, proj_size, NH)
    step = _lstm_flags.step_from_flags(H, flags, chrono, proj_size, NH)
    return lstm_cell(LSTMSpec(name, H, NH, step, proj_size, float(forget_bias), chrono, *inits))


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
      diagonal weights, :math:`i = \sigma(\cdot + p_i \odot c)`, :math:`f` likewise (the old
      cell) and :math:`o = \sigma(\cdot + p_o \odot c')` (the new one).
    - ``cifg`` (coupled input and forget gate): :math:`i = 1 - \sigma(s_f - \beta)` with
      :math:`s_f` the forget gate's pre-activation and :math:`\beta` = ``cifg_shift`` (0:
      :math:`i = 1 - f`; JANET uses 1). The input block is not learned.
    - ``candidate_activation``: the block input's activation (Greff's NIAF: identity).
    - ``full_gate_recurrence`` (Greff's FGR): the learned gates also read those of the step
      before, :math:`s \mathrel{+}= [i, f, o]_{t-1} W_g`, kept in :class:`FullGateCarry`.
    - ``layer_norm`` (Ba et al. 2016): the input and recurrent pre-activations are normalised
      separately (each over its ``G*H`` entries) and the memory cell before its activation,
      :math:`[\cdot] = \mathrm{LN}(x W_x) \odot \gamma_x + \mathrm{LN}(h W_h) \odot \gamma_h
      + b`, :math:`h' = o \odot \phi(\mathrm{LN}(c') \odot \gamma_c + \beta_c)`. The carried
      ``c'`` is not normalised. (Ba's biases of the two pre-activation norms add to ``b``.)

    A flag left at ``None`` takes the variant's value, or the plain LSTM's; a flag given must
    agree with the variant (``fixed_gates`` merge). With no research flag this is
    :func:`gatedcells.lstm`: the same step, and the same params from the same key.

    Parameter count, with ``n = I*H + H*H + H``: :func:`gatedcells.lstm`'s (``G*n``; 3n with
    CIFG), plus ``H`` per peephole (vanilla: 4n + 3H), ``(S*H)**2`` with full gate recurrence
    over ``S`` gates (FGR: 4n + 3H + 9H²), and ``2*G*H + 2*H`` with layer norm (4n + 10H).

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
      peephole_init: initializer of the peepholes (zeros: the LSTM starts as if without).

    Returns:
      As :func:`gatedcells.lstm`'s, with :class:`LSTMVariantParams` of only the variant's
      fields (the plain LSTM's types when those are all), and with full gate recurrence the
      carry :class:`FullGateCarry` and no :class:`~gatedcells.MatmulSplit`.

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
    flags, name = _lstm_flags.resolve("lstm_variant", H, variant, given, proj_size)
    _checks.check_factory_args(numbers={"forget_bias": forget_bias})
    inits = _blocks.checked_inits(kernel_init, recurrent_init, bias_init, param_dtype, dtype)
    _checks.check_factory_args(functions={"peephole_init": peephole_init})
    step = _lstm_flags.step_from_flags(H, flags, chrono, proj_size, 1, layer_norm_eps)
    spec = LSTMSpec(name, H, 1, step, proj_size, float(forget_bias), chrono, *inits, peephole_init)
    return lstm_cell(spec)
