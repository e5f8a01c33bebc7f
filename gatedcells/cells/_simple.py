"""The simple (Elman) recurrent cell."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from .. import _cell, _checks
from .._cell import Array, Cell, MatmulSplit
from . import _blocks


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


def simple_rnn_update(
    activation: Callable[[Array], Array],
    params: SimpleRNNParams,
    h: Array,
    x_proj: Array,
    h_proj: Array,
) -> tuple[Array, Array, SimpleRNNGates]:
    """One simple RNN step after the recurrent matmul. See :func:`simple_rnn`."""
    del params
    with jax.named_scope("gatedcells.simple_rnn"):
        h = activation(x_proj.astype(h.dtype) + h_proj.astype(h.dtype))
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
    _checks.check_factory_args(
        functions={"activation": activation, "kernel_init": kernel_init,
                   "recurrent_init": recurrent_init, "bias_init": bias_init},
        dtypes={"param_dtype": param_dtype, "dtype": dtype},
    )  # fmt: skip

    def init(key: Array, input_size: int) -> SimpleRNNParams:
        kx, kh, kb = jax.random.split(key, 3)
        return SimpleRNNParams(
            w_x=_blocks.init_param(kernel_init, kx, (input_size, H), param_dtype),
            w_h=_blocks.init_param(recurrent_init, kh, (H, H), param_dtype),
            b=_blocks.init_param(bias_init, kb, (H,), param_dtype),
        )

    def input_size(params: SimpleRNNParams) -> int:
        shapes = {"w_x": (None, H), "w_h": (H, H), "b": (H,)}
        return _checks.check_param_shapes(f"simple_rnn({H})", params, shapes)

    split = MatmulSplit(
        hidden=lambda h: h,
        pointwise=functools.partial(simple_rnn_update, activation),
        dtype=dtype,
        additive=True,
    )
    act = getattr(activation, "__name__", "?")
    return Cell(
        init_fn=init,
        carry_fn=_blocks.zeros_carry(H, param_dtype),
        project=functools.partial(_blocks.project_affine, dtype=dtype),
        update=_cell.split_update(split),
        check_params=input_size,
        output_size=H,
        name=f"simple_rnn({H})" if activation is jnp.tanh else f"simple_rnn({H}, {act})",
        split=split,
    )
