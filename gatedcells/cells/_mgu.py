"""The minimal gated unit (Zhou et al. 2016): a GRU with one gate. It resets ``h`` before its
recurrent matmul (Cho et al.'s form), so it has no :class:`~gatedcells.MatmulSplit`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from .. import _checks
from .._cell import Array, Cell
from . import _anatomy, _blocks


class MGUParams(NamedTuple):
    """MGU weights, blocks ``(f, n)`` fused on the last axis.

    Attributes:
      w_x: input kernel ``[I, 2H]``. w_h: recurrent kernel ``[H, 2H]``. b: bias ``[2H]``.
    """

    w_x: Array
    w_h: Array
    b: Array


class MGUGates(NamedTuple):
    """MGU gate activations, each ``[*B, H]``: the gate ``f`` (reset, and share of the
    candidate taken) and the candidate ``n``."""

    f: Array
    n: Array


class MGUSpec(NamedTuple):
    """The static flags of an MGU (:func:`mgu`)."""

    name: str
    hidden_size: int
    forget_bias: float
    chrono: float | None
    kernel_init: Callable
    recurrent_init: Callable
    bias_init: Callable
    param_dtype: Any
    dtype: Any


def init(spec: MGUSpec, key: Array, input_size: int) -> MGUParams:
    """Blocks ``(f, n)``; ``b_f`` starts at ``forget_bias``, or chrono's negative."""
    H, dtype = spec.hidden_size, spec.param_dtype
    kx, kh, kb, kc = jax.random.split(key, 4)
    b = _blocks.gate_biases(spec.bias_init, kb, H, ("f", "n"), {"f": spec.forget_bias}, dtype)
    if spec.chrono is not None:
        b = _blocks.set_block(b, 0, H, -_blocks.chrono_bias(kc, H, spec.chrono, dtype))
    return MGUParams(
        w_x=_blocks.init_blocks(spec.kernel_init, kx, input_size, H, 2, dtype),
        w_h=_blocks.init_blocks(spec.recurrent_init, kh, H, H, 2, dtype),
        b=b,
    )


def update(
    spec: MGUSpec, params: MGUParams, h: Array, x_proj: Array
) -> tuple[Array, Array, MGUGates]:
    """One MGU step (Zhou et al. 2016): ``x_proj = x W_x + b`` ``[*B, 2H]``, ``h [*B, H]``."""
    with jax.named_scope("gatedcells.mgu"):
        x = _blocks.split(x_proj.astype(h.dtype), ("f", "n"))
        w_f, w_n = jnp.split(params.w_h, 2, axis=-1)
        f = jax.nn.sigmoid(x["f"] + _blocks.matmul_like(h, w_f, spec.dtype))
        n = jnp.tanh(x["n"] + _blocks.matmul_like(f * h, w_n, spec.dtype))
        h = (1 - f) * h + f * n
    return h, h, MGUGates(f, n)


def mgu(
    hidden_size: int,
    *,
    forget_bias: float = 0.0,
    chrono: float | None = None,
    kernel_init: Callable = jax.nn.initializers.lecun_normal(),
    recurrent_init: Callable = jax.nn.initializers.orthogonal(),
    bias_init: Callable = jax.nn.initializers.zeros,
    param_dtype: Any = jnp.float32,
    dtype: Any = None,
) -> Cell:
    r"""Minimal gated unit (Zhou, Wu, Zhang & Zhou 2016): a GRU with one gate.

    .. math::

       f &= \sigma(x W_{xf} + h W_{hf} + b_f) \\
       n &= \tanh(x W_{xn} + (f \odot h) W_{hn} + b_n) \\
       h' &= (1 - f) \odot h + f \odot n

    The paper's coupling: the gate that resets ``h`` before the matmul is the share of the
    candidate taken. Flax's ``nn.MGUCell`` couples the other way round and resets after the
    matmul, :math:`n = \tanh(x W_{xn} + b_n + f \odot (h W_{hn} + b_{hn}))`,
    :math:`h' = (1 - f) \odot n + f \odot h`: its reset gate is the share of the old state
    kept, so the two are different functions, not two parameterisations of one.

    Parameter count: ``2*(I*H + H*H + H)``, 2x a simple RNN's.

    Args:
      hidden_size: size ``H`` of the state.
      forget_bias: added to ``b_f`` at init. ``f`` is the share of the candidate taken, so a
        negative value starts the MGU remembering.
      chrono: ``T_max`` for chrono initialisation (Tallec & Ollivier 2018):
        :math:`b_f = -\log \mathcal{U}(1, T_{max} - 1)` (replacing ``forget_bias``), or
        ``None``.
      kernel_init, recurrent_init, bias_init, param_dtype, dtype: as :func:`gatedcells.gru`'s.

    Returns:
      A :class:`gatedcells.Cell` with :class:`MGUParams`, carry ``h [*B, H]`` and gates
      :class:`MGUGates`.

    Raises:
      ValueError: a non-positive ``hidden_size`` or ``chrono`` not above 2.
      TypeError: a flag of the wrong type (``forget_bias`` not a number, an initializer not
        a function, a dtype not floating).

    Examples:
      >>> import jax, jax.numpy as jnp, gatedcells as gc
      >>> cell = gc.mgu(8)
      >>> params = cell.init(jax.random.key(0), 3)
      >>> h, ys = gc.unroll(cell, params, jnp.ones((2, 5, 3)))
      >>> ys.shape, gc.count_params(params) == 2 * (3 * 8 + 8 * 8 + 8)
      ((2, 5, 8), True)

    References:
      Zhou, Wu, Zhang & Zhou, "Minimal Gated Unit for Recurrent Neural Networks",
      International Journal of Automation and Computing 2016 (arXiv:1603.09420).
    """
    H = _checks.check_positive_int("hidden_size", hidden_size)
    _checks.check_factory_args(numbers={"forget_bias": forget_bias})
    inits = _blocks.checked_inits(kernel_init, recurrent_init, bias_init, param_dtype, dtype)
    _checks.check_t_max(chrono)
    spec = MGUSpec(f"mgu({H})", H, float(forget_bias), chrono, *inits)
    shapes = {"w_x": (None, 2 * H), "w_h": (H, 2 * H), "b": (2 * H,)}
    return _anatomy.assemble(spec, init, _blocks.project, update, shapes=shapes)
