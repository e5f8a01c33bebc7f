"""The gated recurrent unit, in its PyTorch/cuDNN form and in Cho et al.'s 2014 form, and
layer-normalised."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from .. import _checks
from .._cell import Array, Cell, MatmulSplit
from . import _anatomy, _blocks

RZN = ("r", "z", "n")  # PyTorch's block order


class GRUParams(NamedTuple):
    """GRU weights, gate blocks fused on the last axis in PyTorch's order ``(r, z, n)``.

    Attributes:
      w_x: input kernel ``[I, 3H]``.
      w_h: recurrent kernel ``[H, 3H]``; with ``num_heads=NH > 1`` block-diagonal,
        ``[NH, H/NH, 3H/NH]`` (the sLSTM's layout, :class:`~gatedcells.MatmulSplit`).
      b: bias ``[3H]``: PyTorch's ``b_ir + b_hr``, ``b_iz + b_hz`` and ``b_in``; the update
        block starts at ``update_bias``.
      b_hn: ``[H]``, the recurrent bias of the candidate, inside the reset product
        (``reset_after=True`` only; ``None`` otherwise).
    """

    w_x: Array
    w_h: Array
    b: Array
    b_hn: Array | None = None


class GRULayerNormParams(NamedTuple):
    """Weights of a layer-normalised GRU (``gru(H, layer_norm=True)``, Ba et al. 2016).

    Attributes:
      w_x, w_h, b, b_hn: as :class:`GRUParams`' (``b_hn [H]`` always: layer norm needs
        ``reset_after=True``).
      ln_x, ln_h: layer-norm gains ``[3H]`` of the input and recurrent pre-activations.
    """

    w_x: Array
    w_h: Array
    b: Array
    b_hn: Array
    ln_x: Array
    ln_h: Array


def _gru_params(cls, w_x, w_h, b, b_hn=None, ln_x=None, ln_h=None):
    """``GRUParams(w_x, w_h, b, b_hn)``. Until main at 367b98d ``GRUParams`` also held
    ``ln_x, ln_h`` (``None`` without layer norm): params pickled then load, with gains as
    :class:`GRULayerNormParams` (``tests/fixtures/params_main_264b4fd.pkl``)."""
    if ln_x is None and ln_h is None:
        return _new_gru_params(cls, w_x, w_h, b, b_hn)
    return GRULayerNormParams(w_x, w_h, b, b_hn, ln_x, ln_h)


_new_gru_params = GRUParams.__new__
GRUParams.__new__ = staticmethod(functools.wraps(_new_gru_params)(_gru_params))


class GRUGates(NamedTuple):
    """GRU gate activations of one step, each ``[*B, H]``: reset ``r``, update ``z`` (the
    share of the old state kept) and candidate ``n``."""

    r: Array
    z: Array
    n: Array


class GRUSpec(NamedTuple):
    """The static flags of a GRU (:func:`gru`)."""

    name: str
    hidden_size: int
    num_heads: int  # 1: a dense w_h
    reset_after: bool
    layer_norm_eps: float | None  # None: no layer normalisation
    update_bias: float
    chrono: float | None
    kernel_init: Callable
    recurrent_init: Callable
    bias_init: Callable
    param_dtype: Any
    dtype: Any


def shapes(spec: GRUSpec) -> dict[str, tuple]:
    """The shapes of :class:`GRUParams`' fields this GRU has (``None``: the input size)."""
    H = spec.hidden_size
    w_h = _blocks.recurrent_shape(H, spec.num_heads, 3)
    fields = {"w_x": (None, 3 * H), "w_h": w_h, "b": (3 * H,)}
    fields |= {"b_hn": (H,)} if spec.reset_after else {}
    gains = {"ln_x": (3 * H,), "ln_h": (3 * H,)}
    return fields | (gains if spec.layer_norm_eps is not None else {})


def init(spec: GRUSpec, key: Array, input_size: int) -> GRUParams | GRULayerNormParams:
    """Blocks ``(r, z, n)``; the update block's bias starts at ``update_bias`` (or chrono);
    with layer norm, gains of ones."""
    H, dtype = spec.hidden_size, spec.param_dtype
    kx, kh, kb, kn, kc = jax.random.split(key, 5)
    b = _blocks.gate_biases(spec.bias_init, kb, H, RZN, {"z": spec.update_bias}, dtype)
    if spec.chrono is not None:
        b = _blocks.set_block(b, 1, H, _blocks.chrono_bias(kc, H, spec.chrono, dtype))
    params = GRUParams(
        w_x=_blocks.init_blocks(spec.kernel_init, kx, input_size, H, 3, dtype),
        w_h=_blocks.init_recurrent(spec.recurrent_init, kh, H, H, spec.num_heads, 3, dtype),
        b=b,
        b_hn=_blocks.init_param(spec.bias_init, kn, (H,), dtype) if spec.reset_after else None,
    )
    if spec.layer_norm_eps is None:
        return params
    return GRULayerNormParams(*params, *[jnp.ones((3 * H,), dtype)] * 2)


def project(spec: GRUSpec, params: GRUParams, xs: Array) -> Array:
    """The input half: ``xs @ w_x + b``, or ``LN(xs @ w_x) * ln_x + b`` with layer norm."""
    if spec.layer_norm_eps is None:
        return _blocks.project(spec, params, xs)
    return _blocks.normalized_projection(params, xs, spec.layer_norm_eps, spec.dtype)


def pointwise(
    spec: Any, params: Any, h: Array, x_proj: Array, h_proj: Array
) -> tuple[Array, Array, GRUGates]:
    """One GRU step (``reset_after=True``) after the recurrent matmul (or convolution) ``h_proj
    = h U``, with layer norm when ``spec.layer_norm_eps`` is set. See :func:`gru`."""
    with jax.named_scope("gatedcells.gru"):
        dtype = h.dtype
        x = _blocks.split(x_proj.astype(dtype), RZN)
        h_proj = h_proj.astype(dtype)
        if spec.layer_norm_eps is not None:
            h_proj = _blocks.layer_norm(h_proj, params.ln_h, None, spec.layer_norm_eps)
        hh = _blocks.split(h_proj, RZN)
        r = jax.nn.sigmoid(x["r"] + hh["r"])
        z = jax.nn.sigmoid(x["z"] + hh["z"])
        n = jnp.tanh(x["n"] + r * (hh["n"] + _blocks.along_last(params.b_hn, hh["n"])))
        h = (1 - z) * n + z * h
    return h, h, GRUGates(r, z, n)


def update(
    spec: GRUSpec, params: GRUParams, h: Array, x_proj: Array
) -> tuple[Array, Array, GRUGates]:
    """One GRU step (``reset_after=False``, Cho et al. 2014). See :func:`gru`."""
    return reset_before(params, h, x_proj, functools.partial(_blocks.matmul_like, dtype=spec.dtype))


def reset_before(
    params: Any, h: Array, x_proj: Array, recurrent: Callable[[Array, Array], Array]
) -> tuple[Array, Array, GRUGates]:
    """Cho et al.'s (2014) step, the reset applied to ``h`` before its product with ``U_n``;
    ``recurrent(v, w)`` is the product (a matmul, or a convolution), in ``v``'s dtype; the
    columns of ``w_h`` (of each head's block, block-diagonal) are ``(r, z, n)`` blocks."""
    with jax.named_scope("gatedcells.gru"):
        D = params.w_h.shape[-2]  # H, or H/NH per head
        x = _blocks.split(x_proj.astype(h.dtype), RZN)
        w_rz, w_n = params.w_h[..., : 2 * D], params.w_h[..., 2 * D :]
        hh = _blocks.split(recurrent(h, w_rz), ("r", "z"))
        r = jax.nn.sigmoid(x["r"] + hh["r"])
        z = jax.nn.sigmoid(x["z"] + hh["z"])
        n = jnp.tanh(x["n"] + recurrent(r * h, w_n))
        h = (1 - z) * n + z * h
    return h, h, GRUGates(r, z, n)


def gru(
    hidden_size: int,
    *,
    reset_after: bool = True,
    update_bias: float = 1.0,
    chrono: float | None = None,
    layer_norm: bool = False,
    layer_norm_eps: float = 1e-5,
    num_heads: int = 1,
    kernel_init: Callable = jax.nn.initializers.lecun_normal(),
    recurrent_init: Callable = jax.nn.initializers.orthogonal(),
    bias_init: Callable = jax.nn.initializers.zeros,
    param_dtype: Any = jnp.float32,
    dtype: Any = None,
) -> Cell:
    r"""Gated recurrent unit (Cho et al. 2014).

    ``reset_after=True`` (default) is the form of PyTorch, Flax, Keras and cuDNN, the reset
    applied after the recurrent matmul:

    .. math::

       r &= \sigma(x W_{xr} + h W_{hr} + b_r) \qquad z = \sigma(x W_{xz} + h W_{hz} + b_z) \\
       n &= \tanh(x W_{xn} + b_n + r \odot (h W_{hn} + b_{hn})) \\
       h' &= (1 - z) \odot n + z \odot h

    ``reset_after=False`` is Cho et al.'s form (and Chung et al. 2014, Haiku), the reset
    applied before it: :math:`n = \tanh(x W_{xn} + (r \odot h) W_{hn} + b_n)`.

    ``z`` is the share of the old state kept, so :math:`\partial h'/\partial h` has the
    identity path :math:`\mathrm{diag}(z)`. A positive ``update_bias`` starts the GRU
    remembering, as the forget bias does an LSTM, but not too high: with ``z`` near 1 the
    GRU ignores its inputs. The default, 1, keeps ``z`` at about 0.73 at init.
    ``chrono=T_max`` draws the update bias as :math:`\log \mathcal{U}(1, T_{max} - 1)`
    instead (Tallec & Ollivier 2018), spreading the units' memory times up to ``T_max``.

    ``layer_norm=True`` (Ba et al. 2016; ``reset_after=True`` only) normalises the input and
    the recurrent pre-activations separately, each over its ``3H`` entries:
    :math:`\hat x = \mathrm{LN}(x W_x) \odot \gamma_x + b`,
    :math:`\hat h = \mathrm{LN}(h W_h) \odot \gamma_h`, then
    :math:`r = \sigma(\hat x_r + \hat h_r)`, :math:`z = \sigma(\hat x_z + \hat h_z)`,
    :math:`n = \tanh(\hat x_n + r \odot (\hat h_n + b_{hn}))`.

    Parameter count: ``3*(I*H + H*H + H)``, 3x a simple RNN's, plus ``H`` for ``b_hn`` with
    ``reset_after=True``, plus ``6H`` for the gains with ``layer_norm=True``.

    With ``num_heads=NH``, ``w_h`` is block-diagonal, as the sLSTM's: head ``n``'s slice of
    ``h`` meets only its own block (``3H*H/NH`` weights), in both forms, and tensor
    parallelism over heads needs no per-step exchange (layer norm excepted: it reads all
    ``3H`` entries).

    Args:
      hidden_size: size ``H`` of the hidden state.
      reset_after: the PyTorch/cuDNN form (``True``) or Cho et al.'s (``False``).
      update_bias: added to the update-gate bias at init, visible in ``params.b``.
      chrono: ``T_max`` for chrono initialisation of the update bias (replacing
        ``update_bias``), or ``None``.
      layer_norm: layer-normalise the pre-activations (Ba et al. 2016).
      layer_norm_eps: the :math:`\epsilon` of the layer norms.
      num_heads: number ``NH`` of heads of a block-diagonal ``w_h [NH, H/NH, 3H/NH]``; it
        must divide ``H``. Heads take contiguous slices of ``h`` and of each gate's block.
      kernel_init, recurrent_init, bias_init, param_dtype, dtype: as :func:`gatedcells.lstm`'s
        (``bias_init`` also initialises ``b_hn``).

    Returns:
      A :class:`gatedcells.Cell` with :class:`GRUParams` (:class:`GRULayerNormParams` with
      layer norm), carry ``h [*B, H]`` and gates :class:`GRUGates`.

    Raises:
      ValueError: a non-positive ``hidden_size``, ``num_heads`` not dividing it,
        ``layer_norm`` with ``reset_after=False``, or ``chrono`` not above 2.

    Examples:
      >>> import jax, jax.numpy as jnp, gatedcells as gc
      >>> cell = gc.gru(8)
      >>> params = cell.init(jax.random.key(0), 3)
      >>> params.w_h.shape, params.b_hn.shape, float(params.b[8])
      ((8, 24), (8,), 1.0)
      >>> h, ys = gc.unroll(cell, params, jnp.ones((5, 3)))
      >>> ys.shape, h.shape
      ((5, 8), (8,))

    References:
      Cho et al., "Learning Phrase Representations using RNN Encoder-Decoder for Statistical
      Machine Translation", EMNLP 2014.
      Chung, Gulcehre, Cho & Bengio, "Empirical Evaluation of Gated Recurrent Neural
      Networks on Sequence Modeling", 2014.
      Ba, Kiros & Hinton, "Layer Normalization", 2016.
      Tallec & Ollivier, "Can Recurrent Neural Networks Warp Time?", ICLR 2018.
    """
    H = _checks.check_positive_int("hidden_size", hidden_size)
    NH = _checks.check_heads(num_heads, H)
    _checks.check_flag("reset_after", reset_after)
    _checks.check_flag("layer_norm", layer_norm)
    _checks.check_factory_args(numbers={"update_bias": update_bias})
    inits = _blocks.checked_inits(kernel_init, recurrent_init, bias_init, param_dtype, dtype)
    _checks.check_t_max(chrono)
    if layer_norm and not reset_after:
        raise ValueError("layer_norm=True needs reset_after=True (the PyTorch/cuDNN form)")
    name = f"gru({H}" + ("" if reset_after else ", reset_after=False")
    name += f", num_heads={NH}" if NH > 1 else ""
    name += ", layer_norm=True)" if layer_norm else ")"
    eps = layer_norm_eps if layer_norm else None
    spec = GRUSpec(name, H, NH, reset_after, eps, float(update_bias), chrono, *inits)
    split = None
    if reset_after:
        split = MatmulSplit(_anatomy.itself, _anatomy.Bound(pointwise, spec), dtype=dtype)
    return _anatomy.assemble(
        spec, init, project, None if reset_after else update, split=split, shapes=shapes
    )
