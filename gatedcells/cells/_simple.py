"""The simple (Elman) recurrent cell."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from .. import _checks
from .._cell import Array, Cell, MatmulSplit
from . import _anatomy, _blocks


class SimpleRNNParams(NamedTuple):
    """Simple RNN weights (the lecture's ``V``, ``W``, ``b``).

    Attributes:
      w_x: input kernel ``V``, ``[I, H]``.
      w_h: recurrent kernel ``W``, ``[H, H]``.
      b: bias ``[H]`` (PyTorch's ``b_ih + b_hh``).
    """

    w_x: Array
    w_h: Array
    b: Array


class SimpleRNNGates(NamedTuple):
    """A simple RNN has no gates: its gates are an empty NamedTuple."""


class SimpleRNNSpec(NamedTuple):
    """The static flags of a simple RNN (:func:`simple_rnn`)."""

    name: str
    hidden_size: int
    activation: Callable[[Array], Array]
    kernel_init: Callable
    recurrent_init: Callable
    bias_init: Callable
    param_dtype: Any
    dtype: Any


def init(spec: SimpleRNNSpec, key: Array, input_size: int) -> SimpleRNNParams:
    """``w_x``, ``w_h``, ``b`` by their initializers."""
    H, dtype = spec.hidden_size, spec.param_dtype
    kx, kh, kb = jax.random.split(key, 3)
    return SimpleRNNParams(
        w_x=_blocks.init_param(spec.kernel_init, kx, (input_size, H), dtype),
        w_h=_blocks.init_param(spec.recurrent_init, kh, (H, H), dtype),
        b=_blocks.init_param(spec.bias_init, kb, (H,), dtype),
    )


def pointwise(
    spec: SimpleRNNSpec, params: SimpleRNNParams, h: Array, x_proj: Array, h_proj: Array
) -> tuple[Array, Array, SimpleRNNGates]:
    """One simple RNN step after the recurrent matmul, ``h' = act(x V + b + h W)``."""
    del params
    with jax.named_scope("gatedcells.simple_rnn"):
        h = spec.activation(x_proj.astype(h.dtype) + h_proj.astype(h.dtype))
    return h, h, SimpleRNNGates()


def simple_rnn(
    hidden_size: int,
    *,
    activation: Callable[[Array], Array] = jnp.tanh,
    kernel_init: Callable = jax.nn.initializers.lecun_normal(),
    recurrent_init: Callable = jax.nn.initializers.orthogonal(),
    bias_init: Callable = jax.nn.initializers.zeros,
    param_dtype: Any = jnp.float32,
    dtype: Any = None,
) -> Cell:
    r"""Simple (Elman) recurrent cell, as in PyTorch's ``nn.RNN``.

    .. math::

       h' = \mathrm{act}(x V + h W + b)

    Its gradient through time passes :math:`\mathrm{diag}(\mathrm{act}') W^\top` at every step,
    so it vanishes (or explodes) geometrically: the problem the gated cells solve.

    Parameter count: ``I*H + H*H + H``, the unit the lecture's "LSTM has 4x, GRU 3x" counts in.

    Args:
      hidden_size: size ``H`` of the hidden state.
      activation: ``jnp.tanh`` (default) or e.g. ``jax.nn.relu``.
      kernel_init: initializer of ``w_x`` (default LeCun normal).
      recurrent_init: initializer of ``w_h`` (default orthogonal).
      bias_init: initializer of ``b`` (default zeros).
      param_dtype: dtype of the params and of the default carry.
      dtype: compute dtype of the matmuls (``None``: the params' dtype).

    Returns:
      A :class:`gatedcells.Cell` with :class:`SimpleRNNParams` and carry ``h [*B, H]``.

    Examples:
      >>> import jax, jax.numpy as jnp, gatedcells as gc
      >>> cell = gc.simple_rnn(4)
      >>> params = cell.init(jax.random.key(0), 3)
      >>> h, y = cell.step(params, cell.initial_carry(), jnp.ones(3))
      >>> y.shape, gc.count_params(params)
      ((4,), 32)

    References:
      Elman, "Finding Structure in Time", Cognitive Science 1990.
      Bengio, Simard & Frasconi, "Learning Long-Term Dependencies with Gradient Descent is
      Difficult", IEEE TNN 1994.
    """
    H = _checks.check_positive_int("hidden_size", hidden_size)
    _checks.check_factory_args(functions={"activation": activation})
    act = "" if activation is jnp.tanh else f", {getattr(activation, '__name__', '?')}"
    inits = _blocks.checked_inits(kernel_init, recurrent_init, bias_init, param_dtype, dtype)
    spec = SimpleRNNSpec(f"simple_rnn({H}{act})", H, activation, *inits)
    split = MatmulSplit(_anatomy.itself, _anatomy.Bound(pointwise, spec), dtype, additive=True)
    shapes = {"w_x": (None, H), "w_h": (H, H), "b": (H,)}
    return _anatomy.assemble(spec, init, _blocks.project, split=split, shapes=shapes)
