"""Relatives of the GRU: the minimal gated unit (Zhou et al. 2016) and the three mutants found
by Jozefowicz et al.'s (2015) architecture search. Each resets ``h`` before its recurrent
matmul (Cho et al.'s form), so none has a :class:`~gatedcells.MatmulSplit` split."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from .. import _cell, _checks
from .._cell import Array, Cell
from . import _blocks


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


def mgu_trace(dtype: Any, params: MGUParams, h: Array, x_proj: Array):
    """One MGU step (Zhou et al. 2016). See :func:`mgu`."""
    with jax.named_scope("gatedcells.mgu"):
        x = _blocks.split(x_proj.astype(h.dtype), ("f", "n"))
        w_f, w_n = jnp.split(params.w_h, 2, axis=-1)
        f = jax.nn.sigmoid(x["f"] + _cell.matmul(h, w_f, dtype).astype(h.dtype))
        n = jnp.tanh(x["n"] + _cell.matmul(f * h, w_n, dtype).astype(h.dtype))
        h = (1 - f) * h + f * n
    return h, h, MGUGates(f, n)


def mut_project(version: int, raw_input: bool, dtype: Any, params: MUTParams, xs: Array):
    """The input half of a mutant, blocks ``(r, z, n)``: affine, except MUT1's candidate term
    ``tanh(x W_xn) + b_n`` and, with ``raw_input``, ``x`` itself where the paper has it."""
    out = _cell.matmul(xs, params.w_x, dtype)
    if raw_input:  # the paper's x in place of the absent block (I == H)
        absent = 2 if version == 1 else 0
        blocks = list(jnp.split(out, 2, axis=-1))
        blocks.insert(absent, xs.astype(out.dtype))
        out = jnp.concatenate(blocks, axis=-1)
    if version == 1:
        r, z, n = jnp.split(out, 3, axis=-1)
        out = jnp.concatenate([r, z, jnp.tanh(n)], axis=-1)
    return out + _blocks.along_last(params.b, out)


def mut_trace(version: int, dtype: Any, params: MUTParams, h: Array, x_proj: Array):
    """One step of MUT1, MUT2 or MUT3 (Jozefowicz et al. 2015). See :func:`mut1`."""
    with jax.named_scope(f"gatedcells.mut{version}"):
        x = _blocks.split(x_proj.astype(h.dtype), ("r", "z", "n"))
        w = _blocks.split(params.w_h, ("r", "n") if version == 1 else ("r", "z", "n"))

        def rec(v, block):
            return _cell.matmul(v, w[block], dtype).astype(h.dtype)

        r = jax.nn.sigmoid(x["r"] + rec(h, "r"))
        if version == 1:
            z = jax.nn.sigmoid(x["z"])
        else:
            z = jax.nn.sigmoid(x["z"] + rec(jnp.tanh(h) if version == 3 else h, "z"))
        n = jnp.tanh(x["n"] + rec(r * h, "n"))
        h = n * z + h * (1 - z)
    return h, h, MUTGates(r, z, n)


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
      kernel_init: initializer of each ``[I, H]`` block of ``w_x``.
      recurrent_init: initializer of each ``[H, H]`` block of ``w_h``.
      bias_init: initializer of ``b`` before the offset.
      param_dtype: dtype of the params and of the default carry.
      dtype: compute dtype of the matmuls (``None``: the params' dtype).

    Returns:
      A :class:`gatedcells.Cell` with :class:`MGUParams`, carry ``h [*B, H]`` and gates
      :class:`MGUGates`.

    Raises:
      ValueError: a non-positive ``hidden_size`` or ``chrono`` not above 2.

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
    _checks.check_positive_int("hidden_size", hidden_size)
    _checks.check_t_max(chrono)
    H = hidden_size

    def init(key: Array, input_size: int) -> MGUParams:
        kx, kh, kb, kc = jax.random.split(key, 4)
        b = _blocks.gate_biases(bias_init, kb, H, ("f", "n"), {"f": forget_bias}, param_dtype)
        if chrono is not None:
            b = _blocks.set_block(b, 0, H, -_blocks.chrono_bias(kc, H, chrono, param_dtype))
        return MGUParams(
            w_x=_blocks.init_blocks(kernel_init, kx, input_size, H, 2, param_dtype),
            w_h=_blocks.init_blocks(recurrent_init, kh, H, H, 2, param_dtype),
            b=b,
        )

    def input_size(params: MGUParams) -> int:
        shapes = {"w_x": (None, 2 * H), "w_h": (H, 2 * H), "b": (2 * H,)}
        return _checks.check_param_shapes(f"mgu({H})", params, shapes)

    return Cell(
        init_fn=init,
        carry_fn=_blocks.zeros_carry(H, param_dtype),
        project=functools.partial(_blocks.project_affine, dtype=dtype),
        update=functools.partial(mgu_trace, dtype),
        check_params=input_size,
        output_size=H,
        name=f"mgu({H})",
    )


def _mut(
    version: int,
    hidden_size: int,
    raw_input: bool,
    kernel_init: Callable,
    recurrent_init: Callable,
    bias_init: Callable,
    param_dtype: Any,
    dtype: Any,
) -> Cell:
    _checks.check_positive_int("hidden_size", hidden_size)
    if raw_input and version == 3:
        raise ValueError("raw_input=True: MUT3 has no raw input term (MUT1 and MUT2 do)")
    H = hidden_size
    n_x = 2 if raw_input else 3
    n_h = 2 if version == 1 else 3
    name = f"mut{version}({H}" + (", raw_input=True)" if raw_input else ")")

    def init(key: Array, input_size: int) -> MUTParams:
        if raw_input and input_size != H:
            raise ValueError(
                f"{name} adds x itself, so input_size must equal hidden_size={H}, got {input_size}"
            )
        kx, kh, kb = jax.random.split(key, 3)
        return MUTParams(
            w_x=_blocks.init_blocks(kernel_init, kx, input_size, H, n_x, param_dtype),
            w_h=_blocks.init_blocks(recurrent_init, kh, H, H, n_h, param_dtype),
            b=_blocks.gate_biases(bias_init, kb, H, ("r", "z", "n"), {}, param_dtype),
        )

    def input_size(params: MUTParams) -> int:
        x_rows = H if raw_input else None
        shapes = {"w_x": (x_rows, n_x * H), "w_h": (H, n_h * H), "b": (3 * H,)}
        size = _checks.check_param_shapes(name, params, shapes)
        return H if raw_input else size

    return Cell(
        init_fn=init,
        carry_fn=_blocks.zeros_carry(H, param_dtype),
        project=functools.partial(mut_project, version, raw_input, dtype),
        update=functools.partial(mut_trace, version, dtype),
        check_params=input_size,
        output_size=H,
        name=name,
    )


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
      kernel_init: initializer of each ``[I, H]`` block of ``w_x``.
      recurrent_init: initializer of each ``[H, H]`` block of ``w_h``.
      bias_init: initializer of ``b``.
      param_dtype: dtype of the params and of the default carry.
      dtype: compute dtype of the matmuls (``None``: the params' dtype).

    Returns:
      A :class:`gatedcells.Cell` with :class:`MUTParams`, carry ``h [*B, H]`` and gates
      :class:`MUTGates`.

    Raises:
      ValueError: a non-positive ``hidden_size``, or ``raw_input`` with ``I != H``.

    Examples:
      >>> import jax, jax.numpy as jnp, gatedcells as gc
      >>> params = gc.mut1(8).init(jax.random.key(0), 3)
      >>> params.w_x.shape, params.w_h.shape, gc.count_params(params)
      ((3, 24), (8, 16), 224)

    References:
      Jozefowicz, Zaremba & Sutskever, "An Empirical Exploration of Recurrent Network
      Architectures", ICML 2015.
    """
    return _mut(1, hidden_size, raw_input, kernel_init, recurrent_init, bias_init,
                param_dtype, dtype)  # fmt: skip


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
      kernel_init: initializer of each ``[I, H]`` block of ``w_x``.
      recurrent_init: initializer of each ``[H, H]`` block of ``w_h``.
      bias_init: initializer of ``b``.
      param_dtype: dtype of the params and of the default carry.
      dtype: compute dtype of the matmuls (``None``: the params' dtype).

    Returns:
      A :class:`gatedcells.Cell` with :class:`MUTParams`, carry ``h [*B, H]`` and gates
      :class:`MUTGates`.

    Raises:
      ValueError: a non-positive ``hidden_size``, or ``raw_input`` with ``I != H``.

    Examples:
      >>> import jax, gatedcells as gc
      >>> gc.count_params(gc.mut2(8).init(jax.random.key(0), 3))
      288

    References:
      Jozefowicz, Zaremba & Sutskever, "An Empirical Exploration of Recurrent Network
      Architectures", ICML 2015.
    """
    return _mut(2, hidden_size, raw_input, kernel_init, recurrent_init, bias_init,
                param_dtype, dtype)  # fmt: skip


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
      kernel_init: initializer of each ``[I, H]`` block of ``w_x``.
      recurrent_init: initializer of each ``[H, H]`` block of ``w_h``.
      bias_init: initializer of ``b``.
      param_dtype: dtype of the params and of the default carry.
      dtype: compute dtype of the matmuls (``None``: the params' dtype).

    Returns:
      A :class:`gatedcells.Cell` with :class:`MUTParams`, carry ``h [*B, H]`` and gates
      :class:`MUTGates`.

    Raises:
      ValueError: a non-positive ``hidden_size``.

    Examples:
      >>> import jax, gatedcells as gc
      >>> gc.count_params(gc.mut3(8).init(jax.random.key(0), 3))
      288

    References:
      Jozefowicz, Zaremba & Sutskever, "An Empirical Exploration of Recurrent Network
      Architectures", ICML 2015.
    """
    return _mut(3, hidden_size, False, kernel_init, recurrent_init, bias_init,
                param_dtype, dtype)  # fmt: skip
