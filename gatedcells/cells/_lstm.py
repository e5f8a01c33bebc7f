"""The LSTM: with its forget gate (Gers et al. 2000) or without (Hochreiter & Schmidhuber
1997), clamped gates, and PyTorch's projection. The research variants (peepholes, CIFG,
Greff et al.'s grid, ...) are :func:`gatedcells.lstm_variant`, in ``_lstm_variants``."""

from __future__ import annotations

import functools
import types
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from .. import _cell, _checks
from .._cell import Array, Cell, MatmulSplit
from . import _blocks

IFGO = ("i", "f", "g", "o")  # PyTorch's block order; "g" is the candidate, not a gate
# the structural flags of the plain LSTM, at their defaults (a cell's name shows the others)
PLAIN = types.MappingProxyType(
    {"forget_gate": True, "output_activation": jnp.tanh, "fixed_gates": {}, "proj_size": None}
)


class LSTMParams(NamedTuple):
    """LSTM weights, gate blocks fused on the last axis in PyTorch's order ``(i, f, g, o)``.

    A gate that is absent (``forget_gate=False``) or clamped (``fixed_gates``) has no block,
    so ``G`` counts only the learned blocks: 4 for the standard LSTM, 3 for the 1997 LSTM.

    Attributes:
      w_x: input kernel ``[I, G*H]``.
      w_h: recurrent kernel ``[H, G*H]``.
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


class LSTMSpec(NamedTuple):
    """The static part of an LSTM's step: which blocks are learned, which gates clamped."""

    blocks: tuple[str, ...]  # the learned blocks, in (i, f, g, o) order
    fixed: Mapping[str, float]  # the clamped gates and their constants
    output_activation: Callable[[Array], Array]


def gate(z: dict[str, Array], name: str, fixed: Mapping[str, float]) -> Array:
    """The gate ``name``: the sigmoid of its learned block, or its clamped constant."""
    if name in fixed:
        return jnp.full_like(z["g"], fixed[name])
    return jax.nn.sigmoid(z[name])


def lstm_update(
    spec: LSTMSpec, params: LSTMParams, carry: LSTMCarry, x_proj: Array, h_proj: Array
) -> tuple[LSTMCarry, Array, LSTMGates]:
    """One LSTM step after the recurrent matmul. See :func:`gatedcells.lstm`.

    ``x_proj = x W_x + b`` and ``h_proj = h W_h`` are ``[*B, G*H]``; ``params`` hold nothing
    the pointwise part reads. Returns ``(LSTMCarry(c', h'), h', LSTMGates(i, f, g, o))``.
    """
    del params
    with jax.named_scope("gatedcells.lstm"):
        dtype = carry.c.dtype
        z = _blocks.split(x_proj.astype(dtype) + h_proj.astype(dtype), spec.blocks)
        i, f, o = (gate(z, name, spec.fixed) for name in "ifo")
        g = jnp.tanh(z["g"])
        c = f * carry.c + i * g
        h = o * spec.output_activation(c)
    return LSTMCarry(c, h), h, LSTMGates(i, f, g, o)


def lstmp_update(
    spec: LSTMSpec, dtype: Any, params: LSTMPParams, carry: LSTMCarry, x_proj: Array
) -> tuple[LSTMCarry, Array, LSTMGates]:
    """One LSTMP step (Sak et al. 2014): the LSTM step from the projected ``h [*B, P]``, then
    ``h' = (o * phi(c')) W_r``. Two matmuls, so no :class:`~gatedcells.MatmulSplit`."""
    h_proj = _cell.matmul(carry.h, params.w_h, dtype)
    carry, y, gates = lstm_update(spec, params, carry, x_proj, h_proj)
    with jax.named_scope("gatedcells.lstm_projection"):
        h = _blocks.matmul_like(y, params.w_r, dtype)
    return LSTMCarry(carry.c, h), h, gates


def lstm(
    hidden_size: int,
    *,
    forget_gate: bool = True,
    forget_bias: float = 1.0,
    chrono: float | None = None,
    fixed_gates: Mapping[str, float] | None = None,
    output_activation: Callable[[Array], Array] = jnp.tanh,
    proj_size: int | None = None,
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
    ``G*(I*H + P*H + H) + H*P``.

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
      ValueError: an unknown gate name in ``fixed_gates`` (or ``"f"`` without a forget
        gate), a value outside ``[0, 1]``, ``chrono`` without a forget gate or not above 2, a
        ``proj_size`` not in ``[1, H)``, or a non-positive ``hidden_size``.
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
        numbers={"forget_bias": forget_bias},
        functions={"output_activation": output_activation, "kernel_init": kernel_init,
                   "recurrent_init": recurrent_init, "bias_init": bias_init},
        dtypes={"param_dtype": param_dtype, "dtype": dtype},
    )  # fmt: skip
    fixed = _blocks.clamped_gates(fixed_gates, forget_gate)
    blocks = tuple(name for name in IFGO if name not in fixed)
    _blocks.check_chrono(chrono, blocks)
    _blocks.check_proj_size(proj_size, H)
    spec = LSTMSpec(blocks, types.MappingProxyType(fixed), output_activation)
    flags = {"forget_gate": forget_gate, "output_activation": output_activation,
             "fixed_gates": dict(fixed_gates or {}), "proj_size": proj_size}  # fmt: skip
    name = _blocks.describe("lstm", H, {k: v for k, v in flags.items() if v != PLAIN[k]})
    weights = functools.partial(
        _blocks.lstm_weights, hidden_size=H, blocks=blocks, proj_size=proj_size,
        forget_bias=forget_bias, chrono=chrono, kernel_init=kernel_init,
        recurrent_init=recurrent_init, bias_init=bias_init, param_dtype=param_dtype,
    )  # fmt: skip
    params_type = LSTMPParams if proj_size else LSTMParams

    def init(key: Array, input_size: int) -> LSTMParams | LSTMPParams:
        return params_type(**weights(key, input_size))

    if proj_size:
        split, update = None, functools.partial(lstmp_update, spec, dtype)
    else:
        pointwise = functools.partial(lstm_update, spec)
        split = MatmulSplit(lambda carry: carry.h, pointwise, dtype=dtype, additive=True)
        update = _cell.split_update(split)
    shapes = _blocks.lstm_shapes(H, blocks, proj_size)
    return Cell(
        init_fn=init,
        carry_fn=functools.partial(zeros_carry, H, proj_size or H, param_dtype),
        project=functools.partial(_blocks.project_affine, dtype=dtype),
        update=update,
        check_params=functools.partial(_blocks.check_fields, name, shapes=shapes),
        output_size=proj_size or H,
        name=name,
        split=split,
    )


def zeros_carry(
    hidden_size: int, out_size: int, param_dtype: Any, batch_shape: tuple[int, ...], dtype=None
) -> LSTMCarry:
    """The zero :class:`LSTMCarry`: ``c [*B, H]``, ``h [*B, P]`` (``P = H`` unprojected)."""
    c = _blocks.zeros_carry(hidden_size, param_dtype)(batch_shape, dtype)
    return LSTMCarry(c, _blocks.zeros_carry(out_size, param_dtype)(batch_shape, dtype))
