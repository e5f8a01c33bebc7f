"""The independently recurrent neural network (Li et al. 2018)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from .. import _checks
from .._cell import Array, Cell
from . import _anatomy, _blocks
from ._simple import SimpleRNNSpec as IndRNNSpec  # the same flags

_UNIFORM_0_1 = jax.nn.initializers.uniform(1.0)  # U[0, 1), the paper's recurrent init


class IndRNNParams(NamedTuple):
    """IndRNN weights.

    Attributes:
      w_x: input kernel ``[I, H]``.
      u: recurrent weights ``[H]``, one per unit (a diagonal recurrent matrix).
      b: bias ``[H]``.
    """

    w_x: Array
    u: Array
    b: Array


class IndRNNGates(NamedTuple):
    """An IndRNN has no gates: its gates are an empty NamedTuple."""


def init(spec: IndRNNSpec, key: Array, input_size: int) -> IndRNNParams:
    """``w_x``, ``u``, ``b`` by their initializers (``u`` uniform in ``[0, 1)``)."""
    H, dtype = spec.hidden_size, spec.param_dtype
    kx, ku, kb = jax.random.split(key, 3)
    return IndRNNParams(
        w_x=_blocks.init_param(spec.kernel_init, kx, (input_size, H), dtype),
        u=_blocks.init_param(spec.recurrent_init, ku, (H,), dtype),
        b=_blocks.init_param(spec.bias_init, kb, (H,), dtype),
    )


def update(
    spec: IndRNNSpec, params: IndRNNParams, h: Array, x_proj: Array
) -> tuple[Array, Array, IndRNNGates]:
    """One IndRNN step, ``h' = act(x W + b + u * h)``."""
    with jax.named_scope("gatedcells.indrnn"):
        h = spec.activation(x_proj.astype(h.dtype) + _blocks.along_last(params.u, h) * h)
    return h, h, IndRNNGates()


def indrnn(
    hidden_size: int,
    *,
    activation: Callable[[Array], Array] = jax.nn.relu,
    kernel_init: Callable = jax.nn.initializers.lecun_normal(),
    recurrent_init: Callable = _UNIFORM_0_1,
    bias_init: Callable = jax.nn.initializers.zeros,
    param_dtype: Any = jnp.float32,
    dtype: Any = None,
) -> Cell:
    r"""Independently recurrent neural network (Li, Li, Cook, Zhu & Gao 2018).

    .. math::

       h' = \mathrm{act}(x W + u \odot h + b)

    Each unit sees only its own past, through one recurrent weight :math:`u_j`, so
    :math:`\partial h'_j/\partial h_j = \mathrm{act}'(\cdot)\, u_j`: with ReLU, keeping
    :math:`|u_j| \le 2^{1/T}`-ish bounds the gradient over ``T`` steps (the paper clips
    :math:`u` during training; that is the optimiser's business, e.g. a projection after
    each update). Depth, not width, mixes the units: stack IndRNN layers.

    Parameter count: ``I*H + 2*H``.

    Args:
      hidden_size: size ``H`` of the state.
      activation: ``jax.nn.relu`` (default, the paper's) or e.g. ``jnp.tanh``.
      kernel_init: initializer of ``w_x``.
      recurrent_init: initializer of ``u`` (default uniform in ``[0, 1)``, as the paper).
      bias_init: initializer of ``b``.
      param_dtype: dtype of the params and of the default carry.
      dtype: compute dtype of the input projection (``None``: the params' dtype).

    Returns:
      A :class:`gatedcells.Cell` with :class:`IndRNNParams` and carry ``h [*B, H]``.

    Raises:
      ValueError: a non-positive ``hidden_size``.
      TypeError: an activation or initializer not a function, a dtype not floating.

    Examples:
      >>> import jax, jax.numpy as jnp, gatedcells as gc
      >>> cell = gc.indrnn(8)
      >>> params = cell.init(jax.random.key(0), 3)
      >>> params.u.shape, gc.count_params(params)
      ((8,), 40)

    References:
      Li, Li, Cook, Zhu & Gao, "Independently Recurrent Neural Network (IndRNN): Building
      A Longer and Deeper RNN", CVPR 2018.
    """
    H = _checks.check_positive_int("hidden_size", hidden_size)
    _checks.check_factory_args(functions={"activation": activation})
    inits = _blocks.checked_inits(kernel_init, recurrent_init, bias_init, param_dtype, dtype)
    act = "" if activation is jax.nn.relu else f", {getattr(activation, '__name__', '?')}"
    spec = IndRNNSpec(f"indrnn({H}{act})", H, activation, *inits)
    shapes = {"w_x": (None, H), "u": (H,), "b": (H,)}
    return _anatomy.assemble(spec, init, _blocks.project, update, shapes=shapes)
