"""The LSTM: with its forget gate (Gers et al. 2000) or without (Hochreiter & Schmidhuber
1997), clamped gates, and PyTorch's projection. The research variants (peepholes, CIFG,
Greff et al.'s grid, ...) are :func:`gatedcells.lstm_variant`, in ``_lstm_variants``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from .. import _cell, _checks
from .._cell import Array, Cell, MatmulSplit
from . import _anatomy, _blocks

IFGO = ("i", "f", "g", "o")  # PyTorch's block order; "g" is the candidate, not a gate
# One PRNG stream per field, ``jax.random.fold_in(key, n)``: a field's values do not depend
# on which other fields the cell has, so lstm and lstm_variant agree on a key.
STREAMS = ("w_x", "w_h", "b", "chrono", "peepholes", "w_g", "w_r")


class LSTMParams(NamedTuple):
    """LSTM weights, gate blocks fused on the last axis in PyTorch's order ``(i, f, g, o)``.

    A gate that is absent (``forget_gate=False``) or clamped (``fixed_gates``) has no block,
    so ``G`` counts only the learned blocks: 4 for the standard LSTM, 3 for the 1997 LSTM.

    Attributes:
      w_x: input kernel ``[I, G*H]``.
      w_h: recurrent kernel ``[H, G*H]``, block-diagonal ``[NH, H/NH, G*H/NH]`` with heads.
      b: bias ``[G*H]`` (PyTorch's ``b_ih + b_hh``); the forget block starts at
        ``forget_bias``.
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
    with a projection).

    The order ``(c, h)`` is Flax's; access the fields by name.
    """

    c: Array
    h: Array


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
    """The static part of an LSTM's step: which blocks are learned, which gates clamped."""

    blocks: tuple[str, ...]  # the learned blocks, in (i, f, g, o) order
    fixed: tuple[tuple[str, float], ...]  # the clamped gates and their constants
    output_activation: Callable[[Array], Array]


class LSTMSpec(NamedTuple):
    """The static flags of an LSTM (:func:`lstm`), resolved; :func:`gatedcells.lstm_variant`'s
    too, with its step (``_lstm_flags.LSTMVariantStep``) and ``peephole_init``."""

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


def init(spec: Any, key: Array, input_size: int) -> LSTMParams | LSTMPParams:
    """``w_x``, ``w_h``, ``b`` (the forget block at ``forget_bias``, or chrono with the input
    block its negative) and, with a projection, ``w_r``; each from its stream of ``key``."""
    H, blocks, P, dtype = spec.hidden_size, spec.step.blocks, spec.proj_size, spec.param_dtype
    G, k = len(blocks), {name: jax.random.fold_in(key, n) for n, name in enumerate(STREAMS)}
    b = _blocks.gate_biases(spec.bias_init, k["b"], H, blocks, {"f": spec.forget_bias}, dtype)
    if spec.chrono is not None:
        b_f = _blocks.chrono_bias(k["chrono"], H, spec.chrono, dtype)
        b = _blocks.set_block(b, blocks.index("f"), H, b_f)
        if "i" in blocks:
            b = _blocks.set_block(b, blocks.index("i"), H, -b_f)
    w_x = _blocks.init_blocks(spec.kernel_init, k["w_x"], input_size, H, G, dtype)
    w_h = _blocks.init_recurrent(spec.recurrent_init, k["w_h"], P or H, H, spec.num_heads, G, dtype)
    if not P:
        return LSTMParams(w_x, w_h, b)
    return LSTMPParams(w_x, w_h, b, _blocks.init_param(spec.kernel_init, k["w_r"], (H, P), dtype))


def shapes(spec: Any) -> dict[str, tuple]:
    """The shapes of :func:`init`'s fields (``None``: the input size)."""
    H, G, P = spec.hidden_size, len(spec.step.blocks), spec.proj_size
    w_h = (P, G * H) if P else _blocks.recurrent_shape(H, spec.num_heads, G)
    fields = {"w_x": (None, G * H), "w_h": w_h, "b": (G * H,)}
    return fields | ({"w_r": (H, P)} if P else {})


def carry(spec: Any, batch_shape: tuple[int, ...], dtype: Any = None) -> LSTMCarry:
    """The zero :class:`LSTMCarry`: ``c [*B, H]``, ``h [*B, P]`` (``P = H`` unprojected)."""
    H, P = spec.hidden_size, spec.proj_size or spec.hidden_size
    c = _anatomy.Zeros(H, spec.param_dtype)(batch_shape, dtype)
    return LSTMCarry(c, _anatomy.Zeros(P, spec.param_dtype)(batch_shape, dtype))


def gate(z: dict[str, Array], name: str, fixed: Mapping[str, float]) -> Array:
    """The gate ``name``: the sigmoid of its learned block, or its clamped constant."""
    if name in fixed:
        return jnp.full_like(z["g"], fixed[name])
    return jax.nn.sigmoid(z[name])


def lstm_update(
    step: LSTMStep, params: Any, carry: LSTMCarry, x_proj: Array, h_proj: Array
) -> tuple[LSTMCarry, Array, LSTMGates]:
    """One LSTM step after the recurrent matmul. See :func:`gatedcells.lstm`.

    ``x_proj = x W_x + b`` and ``h_proj = h W_h`` are ``[*B, G*H]``; ``params`` hold nothing
    the pointwise part reads. Returns ``(LSTMCarry(c', h'), h', LSTMGates(i, f, g, o))``.
    """
    del params
    with jax.named_scope("gatedcells.lstm"):
        dtype, fixed = carry.c.dtype, dict(step.fixed)
        z = _blocks.split(x_proj.astype(dtype) + h_proj.astype(dtype), step.blocks)
        i, f, o = (gate(z, name, fixed) for name in "ifo")
        g = jnp.tanh(z["g"])
        c = f * carry.c + i * g
        h = o * step.output_activation(c)
    return LSTMCarry(c, h), h, LSTMGates(i, f, g, o)


def lstmp_update(
    spec: LSTMSpec, params: LSTMPParams, carry: LSTMCarry, x_proj: Array
) -> tuple[LSTMCarry, Array, LSTMGates]:
    """One LSTMP step (Sak et al. 2014): the LSTM step from the projected ``h [*B, P]``, then
    its :func:`projection`. Two matmuls, so no :class:`~gatedcells.MatmulSplit`."""
    h_proj = _cell.matmul(carry.h, params.w_h, spec.dtype)
    return projection(spec, params, *lstm_update(spec.step, params, carry, x_proj, h_proj))


def projection(
    spec: Any, params: Any, carry: Any, y: Array, gates: LSTMGates
) -> tuple[Any, Array, LSTMGates]:
    """Sak et al.'s (2014) projection of a step's output, ``h' = (o * phi(c')) W_r [*B, P]``:
    the new ``carry.h`` and the output."""
    with jax.named_scope("gatedcells.lstm_projection"):
        h = _blocks.matmul_like(y, params.w_r, spec.dtype)
    return carry._replace(h=h), h, gates


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


def check_proj_size(proj_size: int | None, hidden_size: int, num_heads: int = 1) -> None:
    """``proj_size`` is ``None`` or an int in ``[1, H)``, and ``None`` with ``num_heads > 1``."""
    P, H = proj_size, hidden_size
    if P is not None and (isinstance(P, bool) or not isinstance(P, int) or not 0 < P < H):
        raise ValueError(f"proj_size must be None or an int in [1, {H}), got {P!r}")
    if P is not None and num_heads > 1:
        raise ValueError("proj_size must be None with num_heads > 1 (it mixes the heads)")


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
    :math:`c' = c + i \odot g`, whose memory Jacobian is the identity: three blocks of weights,
    3x a simple RNN's parameters (4x with the forget gate).

    ``fixed_gates`` clamps gates to constants (the lecture's extreme regimes). A clamped gate
    has no weights. With ``fixed_gates={"i": 1, "f": 0, "o": 1}`` and
    ``output_activation=jax.nn.identity`` the LSTM *is* a simple RNN:
    :math:`h' = c' = \tanh(x W_{xg} + h W_{hg} + b_g)`.

    ``proj_size=P`` (LSTMP, Sak et al. 2014; PyTorch's ``proj_size``):
    :math:`h' = (o \odot \phi(c')) W_r`, so ``h`` and the output are ``[*B, P]``.
    ``chrono=T_max`` (Tallec & Ollivier 2018): the forget bias is drawn as
    :math:`\log \mathcal{U}(1, T_{max} - 1)` (replacing ``forget_bias``) and the input bias is
    its negative. Peepholes, coupled gates, layer normalisation and Greff et al.'s grid are
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
      kernel_init: initializer of each ``[I, H]`` block of ``w_x`` (default LeCun normal), and
        of ``w_r``.
      recurrent_init: initializer of each block of ``w_h`` (default orthogonal).
      bias_init: initializer of ``b`` before the forget-bias offset (default zeros).
      param_dtype: dtype of the params and of the default carry.
      dtype: compute dtype of the matmuls (``None``: the params' dtype). With
        ``dtype=jnp.bfloat16`` and float32 params and carry, matmuls run in bfloat16 while
        the gates and the memory stay float32.

    Returns:
      A :class:`gatedcells.Cell` with :class:`LSTMParams` (:class:`LSTMPParams` with a
      projection), carry :class:`LSTMCarry` and gates :class:`LSTMGates`; its output is
      ``h`` (``output_size`` = ``H``, or ``P``). It declares its
      :class:`~gatedcells.MatmulSplit` form, except with a projection (a second matmul).

    Raises:
      ValueError: an unknown gate in ``fixed_gates`` (or ``"f"`` without a forget gate), a
        value outside ``[0, 1]``, ``chrono`` without a forget gate or not above 2, ``proj_size``
        not in ``[1, H)`` or with heads, ``hidden_size`` < 1, ``num_heads`` not dividing it.
      TypeError: a flag of the wrong type (``forget_bias`` not a number, an activation or
        initializer not a function, a dtype not floating, ``forget_gate`` not a bool).

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
    _checks.check_flag("forget_gate", forget_gate)
    _checks.check_factory_args(
        numbers={"forget_bias": forget_bias}, functions={"output_activation": output_activation}
    )
    inits = _blocks.checked_inits(kernel_init, recurrent_init, bias_init, param_dtype, dtype)
    fixed = clamped_gates(fixed_gates, forget_gate)
    blocks = tuple(name for name in IFGO if name not in fixed)
    check_chrono(chrono, blocks)
    NH = _checks.check_heads(num_heads, H)
    check_proj_size(proj_size, H, NH)
    flags = {"forget_gate": forget_gate, "output_activation": output_activation}
    flags |= {"fixed_gates": dict(fixed_gates or {}), "proj_size": proj_size, "num_heads": NH}
    plain = {"forget_gate": True, "output_activation": jnp.tanh, "fixed_gates": {}, "num_heads": 1}
    name = _blocks.describe("lstm", H, {k: v for k, v in flags.items() if v != plain.get(k)})
    step = LSTMStep(blocks, tuple(fixed.items()), output_activation)
    spec = LSTMSpec(name, H, NH, step, proj_size, float(forget_bias), chrono, *inits)
    split, update = None, lstmp_update
    if not proj_size:
        pointwise = _anatomy.Bound(lstm_update, step)
        split, update = MatmulSplit(_anatomy.hidden, pointwise, dtype, additive=True), None
    zeros, P = _anatomy.Bound(carry, spec), proj_size or H
    return _anatomy.assemble(
        spec, init, _blocks.project, update, split=split, shapes=shapes, carry=zeros, output_size=P
    )
