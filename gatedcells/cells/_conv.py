"""Convolutional gated cells: the ConvLSTM (Shi et al. 2015) and the ConvGRU (Ballas et al.
2016), in 1, 2 and 3 spatial dimensions.

The dense cells' layout with a convolution in place of each matmul: ``w_x [*K, I, G*H]``,
``w_h [*K, H, G*H]``, ``b [G*H]``, gate blocks fused on the last axis in PyTorch's order. A
step reads a frame ``x [*B, *S, I]`` (``I`` channels) and keeps a state ``[*B, *S, H]`` of
the frame's spatial shape ``S``; the cells declare ``feature_ndim = 1 + len(S)``, so that
:func:`gatedcells.unroll` finds time in ``xs [*B, T, *S, I]``, and their carry comes from
``initial_carry((*B, *S))``: one cell serves frames of any size.

Padding and strides. The recurrent convolution reads the state and must give back a state of
the same shape at every step: it runs at stride 1 with a padding that keeps ``S``, and the
input convolution uses the same padding, so that it keeps ``S`` too.

- ``"SAME"`` pads ``(K - 1) / 2`` on each side, for odd kernels only. With an even kernel the
  extra zeros must go on one side, and the recurrent convolution then shifts the state half
  a cell towards the other at every step (``T / 2`` cells after ``T`` steps); Flax and
  TensorFlow silently pad more on the high side. An even kernel needs explicit pairs, e.g.
  ``padding=((1, 2), (1, 2))`` for a 4x4 kernel as Flax pads it.
- explicit pairs ``((low, high), ...)``, one per spatial axis, with ``low + high = K - 1``:
  e.g. a causal 1-D kernel, ``((K - 1, 0),)``.
- ``"VALID"`` only with a kernel of ones (otherwise it shrinks the state).

``strides`` is accepted for the call sites of Flax and Keras, and must be 1: a strided input
convolution would make the state smaller than the frames, whose shape the carry has.
Downsample the frames before the cell.

Both convolutions run inside the loop (``project`` is the identity), as matmuls of patches:
see ``_convolution`` for the measurements behind both choices. The gradient is plain
autodiff. The dense cells' custom gradient generalised to the convolution (the backward loop
keeps the pointwise part and ``d h``; ``dW_h`` after it, one matmul of every saved state's
patches) took 0.95x autodiff's time with the input projection hoisted in both (592 against
626 ms at B=8, T=20, 32x32, 8 -> 32 channels, ``benchmarks/conv.py fused``), and autodiff
with the input convolution in the loop, what these cells run, took 504-531 ms: a few per
cent, not worth a second copy of the custom-gradient scan.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from .. import _checks
from .._cell import Array, Cell
from . import _anatomy, _blocks, _gru, _lstm
from ._convolution import Conv, ConvCheck, convolve_like, factory_args, input_half
from ._gru import RZN, GRUGates
from ._lstm import IFGO, LSTMCarry, LSTMGates, LSTMStep  # IFGO: not Flax's i, g, f, o


class ConvLSTMParams(NamedTuple):
    """ConvLSTM weights, gate blocks fused on the last axis in the order ``(i, f, g, o)``.

    Attributes:
      w_x: input kernel ``[*K, I, 4H]``.
      w_h: recurrent kernel ``[*K, H, 4H]``.
      b: bias ``[4H]``; the forget block starts at ``forget_bias``.
    """

    w_x: Array
    w_h: Array
    b: Array


class ConvGRUParams(NamedTuple):
    """ConvGRU weights, gate blocks fused on the last axis in the order ``(r, z, n)``.

    Attributes:
      w_x: input kernel ``[*K, I, 3H]``.
      w_h: recurrent kernel ``[*K, H, 3H]``.
      b: bias ``[3H]``; the update block starts at ``update_bias``.
      b_hn: ``[H]``, the recurrent bias of the candidate, inside the reset product
        (``reset_after=True`` only; ``None`` otherwise).
    """

    w_x: Array
    w_h: Array
    b: Array
    b_hn: Array | None = None


class ConvSpec(NamedTuple):
    """The static flags of a convolutional cell (:func:`conv_lstm`, :func:`conv_gru`)."""

    name: str
    hidden_size: int
    conv: Conv
    reset_after: bool  # the ConvGRU's form (the ConvLSTM's is True)
    gate_bias: float  # the forget (LSTM) or update (GRU) block's offset at init
    kernel_init: Callable
    recurrent_init: Callable
    bias_init: Callable
    param_dtype: Any
    dtype: Any
    layer_norm_eps: None = None  # read by the GRU's step: no layer normalisation
    proj_size: None = None  # read by the LSTM's carry: no projection
    step: LSTMStep = LSTMStep(IFGO, (), jnp.tanh)  # the plain LSTM's step, shared with gc.lstm


def lstm_init(spec: ConvSpec, key: Array, input_size: int) -> ConvLSTMParams:
    """``[*K, rows, H]`` blocks ``(i, f, g, o)`` for ``w_x`` and ``w_h``; ``b`` with the
    forget block at ``forget_bias``."""
    H, K, dtype = spec.hidden_size, spec.conv.kernel_size, spec.param_dtype
    kx, kh, kb = jax.random.split(key, 3)
    return ConvLSTMParams(
        w_x=_blocks.init_blocks(spec.kernel_init, kx, input_size, H, 4, dtype, K),
        w_h=_blocks.init_blocks(spec.recurrent_init, kh, H, H, 4, dtype, K),
        b=_blocks.gate_biases(spec.bias_init, kb, H, IFGO, {"f": spec.gate_bias}, dtype),
    )


def gru_init(spec: ConvSpec, key: Array, input_size: int) -> ConvGRUParams:
    """``[*K, rows, H]`` blocks ``(r, z, n)`` for ``w_x`` and ``w_h``; ``b`` with the update
    block at ``update_bias``, and ``b_hn`` (``reset_after``)."""
    H, K, dtype = spec.hidden_size, spec.conv.kernel_size, spec.param_dtype
    kx, kh, kb, kn = jax.random.split(key, 4)
    b_hn = _blocks.init_param(spec.bias_init, kn, (H,), dtype) if spec.reset_after else None
    return ConvGRUParams(
        w_x=_blocks.init_blocks(spec.kernel_init, kx, input_size, H, 3, dtype, K),
        w_h=_blocks.init_blocks(spec.recurrent_init, kh, H, H, 3, dtype, K),
        b=_blocks.gate_biases(spec.bias_init, kb, H, RZN, {"z": spec.gate_bias}, dtype),
        b_hn=b_hn,
    )


def project(spec: ConvSpec, params: Any, xs: Array) -> Array:
    """The identity: ``update`` runs both convolutions, the input one inside the loop (on
    XLA:CPU, hoisting it was 1.65x slower forward, 1.18x forward+backward: conv-cpu.md)."""
    del spec, params
    return xs


def lstm_update(
    spec: ConvSpec, params: ConvLSTMParams, carry: LSTMCarry, x: Array
) -> tuple[LSTMCarry, Array, LSTMGates]:
    """One ConvLSTM step (Shi et al. 2015, eq. 3, without peepholes): the LSTM's step on
    ``W_x * x + b`` and ``W_h * h``. ``x [*B, *S, I]`` is the frame, ``carry`` holds ``c, h
    [*B, *S, H]``. See :func:`conv_lstm`."""
    with jax.named_scope("gatedcells.conv_lstm"):
        x_proj = input_half(spec.conv, params, x, carry.c.dtype)
        return _lstm.update(spec.step, params, carry, x_proj, spec.conv(carry.h, params.w_h))


def gru_update(
    spec: ConvSpec, params: ConvGRUParams, h: Array, x: Array
) -> tuple[Array, Array, GRUGates]:
    """One ConvGRU step (Ballas et al. 2016): the GRU's step (:func:`gatedcells.gru`, either
    form) with convolutions ``W * x`` and ``U * h`` for its matmuls. ``x [*B, *S, I]`` is the
    frame, ``h [*B, *S, H]`` the state. See :func:`conv_gru`."""
    with jax.named_scope("gatedcells.conv_gru"):
        x_proj = input_half(spec.conv, params, x, h.dtype)
        if spec.reset_after:  # one recurrent convolution: U * h, all three blocks
            return _gru.pointwise(spec, params, h, x_proj, spec.conv(h, params.w_h))
        return _gru.reset_before(params, h, x_proj, functools.partial(convolve_like, spec.conv))


def conv_lstm(
    hidden_size: int,
    kernel_size: Sequence[int],
    *,
    strides: int | Sequence[int] = 1,
    padding: str | Sequence[tuple[int, int]] = "SAME",
    forget_bias: float = 1.0,
    kernel_init: Callable = jax.nn.initializers.lecun_normal(),
    recurrent_init: Callable = jax.nn.initializers.orthogonal(),
    bias_init: Callable = jax.nn.initializers.zeros,
    param_dtype: Any = jnp.float32,
    dtype: Any = None,
) -> Cell:
    r"""Convolutional LSTM cell (Shi et al. 2015), in 1, 2 or 3 spatial dimensions.

    The LSTM with a convolution :math:`*` in place of each matmul, on frames
    :math:`x \in \mathbb{R}^{*S \times I}` and states :math:`c, h \in \mathbb{R}^{*S \times H}`:

    .. math::

       i &= \sigma(W_{xi} * x + W_{hi} * h + b_i) \qquad
       f  = \sigma(W_{xf} * x + W_{hf} * h + b_f) \\
       g &= \tanh(W_{xg} * x + W_{hg} * h + b_g) \qquad
       o  = \sigma(W_{xo} * x + W_{ho} * h + b_o) \\
       c' &= f \odot c + i \odot g \qquad h' = o \odot \tanh(c')

    Shi et al.'s peepholes (:math:`W_c \odot c` in each gate) are left out, as in Flax's
    ``ConvLSTMCell`` and Keras' ``ConvLSTM2D``. Flax's cell adds a hidden 1 to the forget
    pre-activation in its step and orders the blocks ``(i, g, f, o)``; here the forget bias
    is in ``params.b`` and the order is PyTorch's, so Flax's weights map one-to-one by
    moving blocks and adding 1 to ``b_f``.

    ``padding="SAME"`` needs an odd kernel: with an even one the recurrent convolution would
    shift the state half a cell per step; give explicit pairs ``((low, high), ...)`` with
    ``low + high = K - 1`` instead (Flax's ``"SAME"`` is ``low = (K - 1) // 2``).
    ``strides`` must be 1: the state keeps the frames' shape.

    Parameter count: ``4*(prod(K)*(I + H)*H + H)``.

    Args:
      hidden_size: ``H``, the channels of ``c`` and ``h``.
      kernel_size: ``K``, a tuple of 1, 2 or 3 positive ints; its length is the spatial rank.
      strides: 1 (or a tuple of ones): the state keeps the frames' shape.
      padding: ``"SAME"``, ``"VALID"`` (kernels of ones) or ``((low, high), ...)`` with
        ``low + high = K - 1``, for both convolutions.
      forget_bias: added to the forget-gate bias at init, visible in ``params.b``.
      kernel_init: initializer of each ``[*K, I, H]`` block of ``w_x`` (LeCun normal).
      recurrent_init: initializer of each ``[*K, H, H]`` block of ``w_h`` (orthogonal on
        the ``[prod(K)*H, H]`` matrix, as Keras).
      bias_init: initializer of ``b`` before the forget-bias offset (zeros).
      param_dtype: dtype of the params and of the default carry.
      dtype: compute dtype of the convolutions (``None``: the params' dtype).

    Returns:
      A :class:`gatedcells.Cell` with :class:`ConvLSTMParams`, carry
      :class:`gatedcells.LSTMCarry` ``(c, h)`` of leaves ``[*B, *S, H]``, gates
      :class:`gatedcells.LSTMGates` and ``feature_ndim = 1 + len(K)``.

    Raises:
      TypeError: a ``kernel_size`` that is not a tuple of ints, or a flag of the wrong type.
      ValueError: a kernel rank outside 1-3, a non-positive size, strides other than 1, or
        a padding that does not keep the state's shape (``"SAME"`` with an even kernel).

    Examples:
      >>> import jax, jax.numpy as jnp, gatedcells as gc
      >>> cell = gc.conv_lstm(8, (3, 3))
      >>> params = cell.init(jax.random.key(0), 2)
      >>> params.w_x.shape, params.w_h.shape, float(params.b[8])
      ((3, 3, 2, 32), (3, 3, 8, 32), 1.0)
      >>> xs = jnp.ones((4, 5, 16, 16, 2))             # [B, T, *S, I]
      >>> carry, ys = gc.unroll(cell, params, xs)
      >>> ys.shape, carry.c.shape, cell.feature_ndim
      ((4, 5, 16, 16, 8), (4, 16, 16, 8), 3)

    References:
      Shi, Chen, Wang, Yeung, Wong & Woo, "Convolutional LSTM Network: A Machine Learning
      Approach for Precipitation Nowcasting", NeurIPS 2015.
    """
    H, K, conv, name = factory_args("conv_lstm", hidden_size, kernel_size, strides, padding, dtype)
    _checks.check_factory_args(numbers={"forget_bias": forget_bias})
    inits = _blocks.checked_inits(kernel_init, recurrent_init, bias_init, param_dtype, dtype)
    if forget_bias != 1.0:
        name = f"{name[:-1]}, forget_bias={forget_bias!r})"
    spec = ConvSpec(name, H, conv, True, float(forget_bias), *inits)
    shapes = {"w_x": (*K, None, 4 * H), "w_h": (*K, H, 4 * H), "b": (4 * H,)}
    check = ConvCheck(name, len(K), ConvLSTMParams, _anatomy.frozen(shapes))
    carry = _anatomy.Bound(_lstm.carry, spec)
    return _anatomy.assemble(
        spec, lstm_init, project, lstm_update, check=check, carry=carry, feature_ndim=1 + len(K)
    )


def conv_gru(
    hidden_size: int,
    kernel_size: Sequence[int],
    *,
    reset_after: bool = True,
    update_bias: float = 1.0,
    strides: int | Sequence[int] = 1,
    padding: str | Sequence[tuple[int, int]] = "SAME",
    kernel_init: Callable = jax.nn.initializers.lecun_normal(),
    recurrent_init: Callable = jax.nn.initializers.orthogonal(),
    bias_init: Callable = jax.nn.initializers.zeros,
    param_dtype: Any = jnp.float32,
    dtype: Any = None,
) -> Cell:
    r"""Convolutional GRU cell (Ballas et al. 2016), in 1, 2 or 3 spatial dimensions.

    The GRU of :func:`gatedcells.gru` with a convolution :math:`*` in place of each matmul,
    on frames :math:`x \in \mathbb{R}^{*S \times I}` and a state
    :math:`h \in \mathbb{R}^{*S \times H}`. With ``reset_after=True`` (PyTorch's and cuDNN's
    form of the GRU):

    .. math::

       r &= \sigma(W_{xr} * x + U_r * h + b_r) \qquad z = \sigma(W_{xz} * x + U_z * h + b_z) \\
       n &= \tanh(W_{xn} * x + b_n + r \odot (U_n * h + b_{hn})) \\
       h' &= (1 - z) \odot n + z \odot h

    ``reset_after=False`` is Ballas et al.'s form (and Cho et al.'s), the reset applied
    before the convolution: :math:`n = \tanh(W_{xn} * x + U_n * (r \odot h) + b_n)`, a
    second recurrent convolution per step. ``z`` is the share of the old state kept; a
    positive ``update_bias`` starts the cell remembering. Padding and strides follow
    :func:`conv_lstm`'s rules (``"SAME"`` needs an odd kernel; strides must be 1).

    Parameter count: ``3*(prod(K)*(I + H)*H + H)``, plus ``H`` with ``reset_after=True``.

    Args:
      hidden_size: ``H``, the channels of ``h``.
      kernel_size: ``K``, a tuple of 1, 2 or 3 positive ints; its length is the spatial rank.
      reset_after: PyTorch's form (``True``) or Ballas et al.'s (``False``).
      update_bias: added to the update-gate bias at init, visible in ``params.b``.
      strides, padding: as :func:`conv_lstm`'s.
      kernel_init, recurrent_init, bias_init, param_dtype, dtype: as :func:`conv_lstm`'s
        (``bias_init`` also initialises ``b_hn``).

    Returns:
      A :class:`gatedcells.Cell` with :class:`ConvGRUParams`, carry ``h [*B, *S, H]``, gates
      :class:`gatedcells.GRUGates` and ``feature_ndim = 1 + len(K)``.

    Raises:
      TypeError, ValueError: as :func:`conv_lstm`.

    Examples:
      >>> import jax, jax.numpy as jnp, gatedcells as gc
      >>> cell = gc.conv_gru(4, (5,))
      >>> params = cell.init(jax.random.key(0), 3)
      >>> params.w_h.shape, params.b_hn.shape, float(params.b[4])
      ((5, 4, 12), (4,), 1.0)
      >>> h, ys = gc.unroll(cell, params, jnp.ones((2, 7, 32, 3)))   # [B, T, W, I]
      >>> ys.shape, h.shape
      ((2, 7, 32, 4), (2, 32, 4))

    References:
      Ballas, Yao, Pal & Courville, "Delving Deeper into Convolutional Networks for Learning
      Video Representations", ICLR 2016.
      Cho et al., "Learning Phrase Representations using RNN Encoder-Decoder for Statistical
      Machine Translation", EMNLP 2014.
    """
    H, K, conv, name = factory_args("conv_gru", hidden_size, kernel_size, strides, padding, dtype)
    _checks.check_flag("reset_after", reset_after)
    _checks.check_factory_args(numbers={"update_bias": update_bias})
    inits = _blocks.checked_inits(kernel_init, recurrent_init, bias_init, param_dtype, dtype)
    flags = ([] if reset_after else ["reset_after=False"]) + (
        [] if update_bias == 1.0 else [f"update_bias={update_bias!r}"]
    )
    name = name if not flags else f"{name[:-1]}, {', '.join(flags)})"
    spec = ConvSpec(name, H, conv, reset_after, float(update_bias), *inits)
    shapes = {"w_x": (*K, None, 3 * H), "w_h": (*K, H, 3 * H), "b": (3 * H,)}
    shapes.update({"b_hn": (H,)} if reset_after else {})
    check = ConvCheck(name, len(K), ConvGRUParams, _anatomy.frozen(shapes))
    return _anatomy.assemble(
        spec, gru_init, project, gru_update, check=check, feature_ndim=1 + len(K)
    )
