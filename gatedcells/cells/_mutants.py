"""The three mutants of the GRU found by Jozefowicz et al.'s (2015) architecture search: one
update each, as in the paper. Each resets ``h`` before its recurrent matmul (Cho et al.'s
form), so none has a :class:`~gatedcells.MatmulSplit`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from .. import _cell, _checks
from .._cell import Array, Cell
from . import _anatomy, _blocks

_RZN = ("r", "z", "n")


class MUTParams(NamedTuple):
    """Weights of a mutant (MUT1-3), blocks in GRU order ``(r, z, n)`` on the last axis.

    Attributes:
      w_x: input kernel ``[I, 3H]`` (``[I, 2H]`` with ``raw_input=True``: the block that the
        paper replaces by ``x`` itself is absent).
      w_h: recurrent kernel ``[H, 3H]`` (MUT1: ``[H, 2H]``, blocks ``(r, n)``; its ``z``
        reads only ``x``).
      b: bias ``[3H]``.
    """

    w_x: Array
    w_h: Array
    b: Array


class MUTGates(NamedTuple):
    """Mutant gate activations, each ``[*B, H]``: reset ``r``, update ``z`` (the share of
    the candidate taken) and candidate ``n``."""

    r: Array
    z: Array
    n: Array


# --------------------------------------------------------------------------------------
# The updates: ``x_proj [*B, 3H]`` is the input half (blocks r, z, n), ``h [*B, H]``.


class MUTSpec(NamedTuple):
    """The static flags of a mutant (:func:`mut1`, :func:`mut2`, :func:`mut3`)."""

    name: str
    hidden_size: int
    raw_input: bool  # the paper's x itself in place of one input block
    h_blocks: int  # recurrent blocks in w_h
    kernel_init: Callable
    recurrent_init: Callable
    bias_init: Callable
    param_dtype: Any
    dtype: Any


def mut1_update(
    spec: MUTSpec, params: MUTParams, h: Array, x_proj: Array
) -> tuple[Array, Array, MUTGates]:
    """One MUT1 step; ``x_proj``'s candidate block is already ``tanh(x W_xn)``. See :func:`mut1`."""
    with jax.named_scope("gatedcells.mut1"):
        x = _blocks.split(x_proj.astype(h.dtype), _RZN)
        w_r, w_n = jnp.split(params.w_h, 2, axis=-1)
        z = jax.nn.sigmoid(x["z"])
        r = jax.nn.sigmoid(x["r"] + _blocks.matmul_like(h, w_r, spec.dtype))
        n = jnp.tanh(x["n"] + _blocks.matmul_like(r * h, w_n, spec.dtype))
        h = n * z + h * (1 - z)
    return h, h, MUTGates(r, z, n)


def mut2_update(
    spec: MUTSpec, params: MUTParams, h: Array, x_proj: Array
) -> tuple[Array, Array, MUTGates]:
    """One MUT2 step. See :func:`mut2`."""
    with jax.named_scope("gatedcells.mut2"):
        x = _blocks.split(x_proj.astype(h.dtype), _RZN)
        w_r, w_z, w_n = jnp.split(params.w_h, 3, axis=-1)
        z = jax.nn.sigmoid(x["z"] + _blocks.matmul_like(h, w_z, spec.dtype))
        r = jax.nn.sigmoid(x["r"] + _blocks.matmul_like(h, w_r, spec.dtype))
        n = jnp.tanh(x["n"] + _blocks.matmul_like(r * h, w_n, spec.dtype))
        h = n * z + h * (1 - z)
    return h, h, MUTGates(r, z, n)


def mut3_update(
    spec: MUTSpec, params: MUTParams, h: Array, x_proj: Array
) -> tuple[Array, Array, MUTGates]:
    """One MUT3 step. See :func:`mut3`."""
    with jax.named_scope("gatedcells.mut3"):
        x = _blocks.split(x_proj.astype(h.dtype), _RZN)
        w_r, w_z, w_n = jnp.split(params.w_h, 3, axis=-1)
        z = jax.nn.sigmoid(x["z"] + _blocks.matmul_like(jnp.tanh(h), w_z, spec.dtype))
        r = jax.nn.sigmoid(x["r"] + _blocks.matmul_like(h, w_r, spec.dtype))
        n = jnp.tanh(x["n"] + _blocks.matmul_like(r * h, w_n, spec.dtype))
        h = n * z + h * (1 - z)
    return h, h, MUTGates(r, z, n)


def mut1_project(spec: MUTSpec, params: MUTParams, xs: Array) -> Array:
    """MUT1's input half: ``x W_xr``, ``x W_xz`` and the candidate's ``tanh(x W_xn)`` (the
    paper's ``tanh(x)`` with ``raw_input``), plus ``b``."""
    out = _cell.matmul(xs, params.w_x, spec.dtype)
    blocks = _blocks.split(out, ("r", "z") if spec.raw_input else _RZN)
    n = xs.astype(out.dtype) if spec.raw_input else blocks["n"]
    out = jnp.concatenate([blocks["r"], blocks["z"], jnp.tanh(n)], axis=-1)
    return out + _blocks.along_last(params.b, out)


def mut2_project(spec: MUTSpec, params: MUTParams, xs: Array) -> Array:
    """MUT2's input half: ``x W_x + b``, with the paper's ``x`` itself in place of ``x W_xr``
    with ``raw_input``."""
    if not spec.raw_input:
        return _blocks.project(spec, params, xs)
    out = _cell.matmul(xs, params.w_x, spec.dtype)
    out = jnp.concatenate([xs.astype(out.dtype), out], axis=-1)
    return out + _blocks.along_last(params.b, out)


def init(spec: MUTSpec, key: Array, input_size: int) -> MUTParams:
    """``w_x`` (without the raw input's block), ``w_h`` and ``b``, block by block."""
    H, dtype, x_blocks = spec.hidden_size, spec.param_dtype, 2 if spec.raw_input else 3
    if spec.raw_input and input_size != H:
        raise ValueError(
            f"{spec.name} adds x itself, so input_size must equal hidden_size={H}, got {input_size}"
        )
    kx, kh, kb = jax.random.split(key, 3)
    return MUTParams(
        w_x=_blocks.init_blocks(spec.kernel_init, kx, input_size, H, x_blocks, dtype),
        w_h=_blocks.init_blocks(spec.recurrent_init, kh, H, H, spec.h_blocks, dtype),
        b=_blocks.gate_biases(spec.bias_init, kb, H, _RZN, {}, dtype),
    )


def mutant_cell(
    factory: str,
    H: int,
    update: Callable,
    project: Callable,
    raw_input: bool,
    h_blocks: int,
    *inits: Any,
) -> Cell:
    """A mutant of ``H`` units from its ``update`` and ``project``, ``h_blocks`` recurrent
    blocks, and ``inits`` (``kernel_init, recurrent_init, bias_init, param_dtype, dtype``)
    checked; ``w_x`` has no block for the raw input."""
    H = _checks.check_positive_int("hidden_size", H)
    _checks.check_flag("raw_input", raw_input)
    inits = _blocks.checked_inits(*inits)
    name = f"{factory}({H}" + (", raw_input=True)" if raw_input else ")")
    spec = MUTSpec(name, H, raw_input, h_blocks, *inits)
    x_blocks = 2 if raw_input else 3
    shapes = {"w_x": (H if raw_input else None, x_blocks * H), "w_h": (H, h_blocks * H)}
    return _anatomy.assemble(spec, init, project, update, shapes=shapes | {"b": (3 * H,)})


def mut1(
    hidden_size: int,
    *,
    raw_input: bool = False,
    kernel_init: Callable = jax.nn.initializers.lecun_normal(),
    recurrent_init: Callable = jax.nn.initializers.orthogonal(),
    bias_init: Callable = jax.nn.initializers.zeros,
    param_dtype: Any = jnp.float32,
    dtype: Any = None,
) -> Cell:
    r"""MUT1, the first of Jozefowicz et al.'s (2015) three best evolved architectures.

    .. math::

       z &= \sigma(x W_{xz} + b_z) \qquad r = \sigma(x W_{xr} + h W_{hr} + b_r) \\
       h' &= \tanh((r \odot h) W_{hn} + \tanh(x W_{xn}) + b_n) \odot z + h \odot (1 - z)

    Its update gate reads only the input. The paper writes :math:`\tanh(x)` for
    :math:`\tanh(x W_{xn})` (``raw_input=True``), which needs ``I == H``.

    Parameter count: ``3*I*H + 2*H*H + 3*H`` (``raw_input``: ``2*I*H + 2*H*H + 3*H``).

    Args:
      hidden_size: size ``H`` of the state.
      raw_input: use ``x`` itself in the candidate, as the paper's :math:`\tanh(x)`
        (needs ``I == H``); ``False`` (default) substitutes a learned ``[I, H]`` block.
      kernel_init, recurrent_init, bias_init, param_dtype, dtype: as :func:`gatedcells.lstm`'s.

    Returns:
      A :class:`gatedcells.Cell` with :class:`MUTParams`, carry ``h [*B, H]`` and gates
      :class:`MUTGates`.

    Raises:
      ValueError: a non-positive ``hidden_size``, or ``raw_input`` with ``I != H``.
      TypeError: an initializer not a function, a dtype not floating, ``raw_input`` not a
        bool.

    Examples:
      >>> import jax, jax.numpy as jnp, gatedcells as gc
      >>> params = gc.mut1(8).init(jax.random.key(0), 3)
      >>> params.w_x.shape, params.w_h.shape, gc.count_params(params)
      ((3, 24), (8, 16), 224)

    References:
      Jozefowicz, Zaremba & Sutskever, "An Empirical Exploration of Recurrent Network
      Architectures", ICML 2015.
    """
    inits = (kernel_init, recurrent_init, bias_init, param_dtype, dtype)
    return mutant_cell("mut1", hidden_size, mut1_update, mut1_project, raw_input, 2, *inits)


def mut2(
    hidden_size: int,
    *,
    raw_input: bool = False,
    kernel_init: Callable = jax.nn.initializers.lecun_normal(),
    recurrent_init: Callable = jax.nn.initializers.orthogonal(),
    bias_init: Callable = jax.nn.initializers.zeros,
    param_dtype: Any = jnp.float32,
    dtype: Any = None,
) -> Cell:
    r"""MUT2, the second of Jozefowicz et al.'s (2015) three best evolved architectures.

    .. math::

       z &= \sigma(x W_{xz} + h W_{hz} + b_z) \qquad r = \sigma(x W_{xr} + h W_{hr} + b_r) \\
       h' &= \tanh((r \odot h) W_{hn} + x W_{xn} + b_n) \odot z + h \odot (1 - z)

    The paper's reset gate reads :math:`x` itself, :math:`r = \sigma(x + h W_{hr} + b_r)`
    (``raw_input=True``), which needs ``I == H``.

    Parameter count: ``3*(I*H + H*H + H)`` (``raw_input``: ``2*I*H + 3*H*H + 3*H``).

    Args:
      hidden_size: size ``H`` of the state.
      raw_input: use ``x`` itself in the reset gate, as the paper (needs ``I == H``);
        ``False`` (default) substitutes a learned ``[I, H]`` block.
      kernel_init, recurrent_init, bias_init, param_dtype, dtype: as :func:`mut1`'s.

    Returns:
      A :class:`gatedcells.Cell` as :func:`mut1`'s.

    Raises:
      ValueError, TypeError: as :func:`mut1`.

    Examples:
      >>> import jax, gatedcells as gc
      >>> gc.count_params(gc.mut2(8).init(jax.random.key(0), 3))
      288

    References:
      Jozefowicz, Zaremba & Sutskever, "An Empirical Exploration of Recurrent Network
      Architectures", ICML 2015.
    """
    inits = (kernel_init, recurrent_init, bias_init, param_dtype, dtype)
    return mutant_cell("mut2", hidden_size, mut2_update, mut2_project, raw_input, 3, *inits)


def mut3(
    hidden_size: int,
    *,
    kernel_init: Callable = jax.nn.initializers.lecun_normal(),
    recurrent_init: Callable = jax.nn.initializers.orthogonal(),
    bias_init: Callable = jax.nn.initializers.zeros,
    param_dtype: Any = jnp.float32,
    dtype: Any = None,
) -> Cell:
    r"""MUT3, the third of Jozefowicz et al.'s (2015) three best evolved architectures.

    .. math::

       z &= \sigma(x W_{xz} + \tanh(h) W_{hz} + b_z) \qquad
       r = \sigma(x W_{xr} + h W_{hr} + b_r) \\
       h' &= \tanh((r \odot h) W_{hn} + x W_{xn} + b_n) \odot z + h \odot (1 - z)

    Parameter count: ``3*(I*H + H*H + H)``.

    Args:
      hidden_size: size ``H`` of the state.
      kernel_init, recurrent_init, bias_init, param_dtype, dtype: as :func:`mut1`'s.

    Returns:
      A :class:`gatedcells.Cell` as :func:`mut1`'s.

    Raises:
      ValueError, TypeError: as :func:`mut1` (no ``raw_input``).

    Examples:
      >>> import jax, gatedcells as gc
      >>> gc.count_params(gc.mut3(8).init(jax.random.key(0), 3))
      288

    References:
      Jozefowicz, Zaremba & Sutskever, "An Empirical Exploration of Recurrent Network
      Architectures", ICML 2015.
    """
    inits = (kernel_init, recurrent_init, bias_init, param_dtype, dtype)
    return mutant_cell("mut3", hidden_size, mut3_update, _blocks.project, False, 3, *inits)
