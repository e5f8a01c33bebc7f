"""The sLSTM of the xLSTM (Beck et al. 2024): exponential gating with a normaliser and a
stabiliser, and memory mixing through block-diagonal (per-head) recurrent weights."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from .. import _checks
from .._cell import Array, Cell, MatmulSplit
from . import _anatomy, _blocks, _slstm_grad

_IFZO = ("i", "f", "z", "o")
FORGET_GATES = ("sigmoid", "exp")


class SLSTMParams(NamedTuple):
    """sLSTM weights, gate blocks fused on the last axis in the xlstm package's order
    ``(i, f, z, o)``; within each gate block the ``NH`` heads sit side by side.

    Attributes:
      w_x: input kernel ``[I, 4H]``.
      w_h: block-diagonal recurrent kernel ``[NH, H/NH, 4H/NH]``: head ``n``'s slice
        ``h[n*H/NH:(n+1)*H/NH]`` meets only ``w_h[n]``, whose columns are that head's share of
        the four gates, ``(i, f, z, o)`` blocks of ``H/NH``. It is the xlstm package's
        ``recurrent_kernel [NH, H/NH, 4, H/NH]`` reshaped.
      b: bias ``[4H]`` (the xlstm vanilla cell's ``_bias``); the forget block starts at
        ``forget_bias``.
    """

    w_x: Array
    w_h: Array
    b: Array


class SLSTMCarry(NamedTuple):
    """The sLSTM's state, each ``[*B, H]``, stabilised: the true cell and normaliser states
    are ``c e^m`` and ``n e^m``. The output does not depend on ``m``, which cancels in
    ``c / n``; it only keeps the exponential gates in range.

    Attributes:
      c: the cell state (stabilised).
      n: the normaliser state (stabilised); 0 marks an empty memory (the zero carry).
      m: the stabiliser (log scale of ``c`` and ``n``).
      h: the hidden state, the output, the part of the carry that meets ``w_h``.
    """

    c: Array
    n: Array
    m: Array
    h: Array


class SLSTMGates(NamedTuple):
    """sLSTM gate activations of one step, each ``[*B, H]``: the stabilised input and forget
    gates ``i = exp(ĩ - m)`` and ``f = exp(log f + m_prev - m)`` (what the update multiplies
    by, both at most 1), the cell input ``z = tanh(z̃)``, the output gate ``o`` and the
    stabiliser ``m``."""

    i: Array
    f: Array
    z: Array
    o: Array
    m: Array


class SLSTMSpec(NamedTuple):
    """The static flags of an sLSTM (:func:`slstm`); ``forget_bias`` a number or
    ``"powerlaw"``."""

    name: str
    hidden_size: int
    num_heads: int
    forget_gate: str
    forget_bias: float | str
    kernel_init: Callable
    recurrent_init: Callable
    bias_init: Callable
    param_dtype: Any
    dtype: Any


def init(spec: SLSTMSpec, key: Array, input_size: int) -> SLSTMParams:
    """Blocks ``(i, f, z, o)``; ``w_h`` one ``[D, 4D]`` block per head, each by blocks; the
    forget block's bias at ``forget_bias`` (or the xlstm package's power law)."""
    H, NH, dtype = spec.hidden_size, spec.num_heads, spec.param_dtype
    D = H // NH
    kx, kh, kb = jax.random.split(key, 3)
    if isinstance(spec.forget_bias, str):  # "powerlaw"
        b = _blocks.gate_biases(spec.bias_init, kb, H, _IFZO, {}, dtype)
        b = _blocks.set_block(b, 1, H, powerlaw_forget_bias(D, NH))
    else:
        b = _blocks.gate_biases(spec.bias_init, kb, H, _IFZO, {"f": spec.forget_bias}, dtype)
    w_h = _blocks.init_heads(spec.recurrent_init, kh, H, NH, 4, dtype)
    w_x = _blocks.init_blocks(spec.kernel_init, kx, input_size, H, 4, dtype)
    return SLSTMParams(w_x=w_x, w_h=w_h, b=b)


def carry(spec: SLSTMSpec, batch_shape: tuple[int, ...], dtype: Any = None) -> SLSTMCarry:
    """The zero :class:`SLSTMCarry` (``n = 0``: an empty memory)."""
    zeros = _anatomy.Zeros(spec.hidden_size, spec.param_dtype)(batch_shape, dtype)
    return SLSTMCarry(zeros, zeros, zeros, zeros)


def pointwise(
    spec: SLSTMSpec, params: SLSTMParams, carry: SLSTMCarry, x_proj: Array, h_proj: Array
) -> tuple[SLSTMCarry, Array, SLSTMGates]:
    """One sLSTM step after the recurrent matmul. See :func:`slstm`."""
    del params  # the bias is in x_proj
    with jax.named_scope("gatedcells.slstm"):
        dtype = carry.h.dtype
        wide = _blocks.wide(dtype)
        pre = (x_proj.astype(dtype) + h_proj.astype(dtype)).astype(wide)
        g = _blocks.split(pre, _IFZO)
        c, n, m = (a.astype(wide) for a in carry[:3])
        log_f_m = _slstm_grad.log_forget(spec, g["f"]) + m
        # an empty memory (n = 0) takes the input's scale, as the xlstm package does
        m = jnp.where(n == 0, g["i"], jnp.maximum(log_f_m, g["i"]))
        i = jnp.exp(g["i"] - m)
        f = jnp.exp(jnp.minimum(log_f_m - m, 0.0))  # <= 1; only an empty memory caps it
        z = jnp.tanh(g["z"])
        o = jax.nn.sigmoid(g["o"])
        c = f * c + i * z
        n = f * n + i
        h = o * c / n
    new = SLSTMCarry(c, n, m, h)
    new, gates = jax.tree.map(lambda a: a.astype(dtype), (new, SLSTMGates(i, f, z, o, m)))
    return new, new.h, gates


def powerlaw_forget_bias(head_size: int, num_heads: int) -> Array:
    r"""The xlstm package's default forget-gate bias (``powerlaw_blockdependent``, first
    block), per head: :math:`b_k = 5 - 12\,(k / (D - 1))^{0.3}`, ``k < D = H/NH``, from 5
    (memory times of ~150 steps) down to -7; ``[H]``."""
    ratio = jnp.linspace(0.0, 1.0, head_size)  # [0] for one unit per head
    return jnp.tile(5.0 - 12.0 * ratio**0.3, num_heads)


def slstm(
    hidden_size: int,
    *,
    num_heads: int = 1,
    forget_gate: str = "sigmoid",
    forget_bias: float | str | None = None,
    kernel_init: Callable = jax.nn.initializers.lecun_normal(),
    recurrent_init: Callable = jax.nn.initializers.orthogonal(),
    bias_init: Callable = jax.nn.initializers.zeros,
    param_dtype: Any = jnp.float32,
    dtype: Any = None,
) -> Cell:
    r"""The sLSTM (scalar-memory LSTM) of the xLSTM (Beck et al. 2024), as the xlstm package's
    vanilla ``sLSTMCell`` computes it.

    Pre-activations :math:`\tilde g = x W_{xg} + h_{t-1} R_g + b_g` for
    :math:`g \in (i, f, z, o)`, with :math:`R` block-diagonal over ``NH`` heads. The input
    gate is exponential, the forget gate sigmoid (:math:`\log f = \log\sigma(\tilde f)`) or
    exponential (``forget_gate="exp"``: :math:`\log f = \tilde f`):

    .. math::

       c_t &= f_t c_{t-1} + i_t \tanh(\tilde z_t) \qquad n_t = f_t n_{t-1} + i_t
       \qquad h_t = \sigma(\tilde o_t) \odot c_t / n_t \\
       i_t &= e^{\tilde i_t}, \qquad f_t = e^{\log f_t}

    Exponentials overflow, so the state is kept stabilised, divided by :math:`e^{m_t}`:

    .. math::

       m_t &= \max(\log f_t + m_{t-1},\ \tilde i_t) \\
       i'_t &= \exp(\tilde i_t - m_t) \qquad f'_t = \exp(\log f_t + m_{t-1} - m_t)

    and :math:`c, n` are updated with :math:`i', f'` (both at most 1). :math:`h_t` is the
    same as without the stabiliser (:math:`e^{m}` cancels in :math:`c/n`), and
    :math:`n_t \ge 1` after the first step, so :math:`|h_t| \le 1`. An empty memory
    (:math:`n_{t-1} = 0`, the zero carry) takes :math:`m_t = \tilde i_t`, as the xlstm
    package does, so that a first input gate far below the forget gate cannot underflow
    :math:`n` to 0. Unlike a sigmoid gate, the exponential input gate can outweigh all that
    is stored: a later, stronger input overwrites an earlier decision (the xLSTM's
    "revising storage decisions").

    Parameter count: ``4*(I*H + H*H/NH + H)``: the block-diagonal recurrence has ``NH`` times
    fewer weights than the LSTM's.

    Args:
      hidden_size: size ``H`` of the hidden state.
      num_heads: number ``NH`` of heads of the block-diagonal recurrence; it must divide
        ``H``. Heads take contiguous slices of ``h`` (and of each gate's block).
      forget_gate: ``"sigmoid"`` (the xlstm package's) or ``"exp"``.
      forget_bias: the forget block of ``b`` at init: a number added to ``bias_init``'s
        values, ``"powerlaw"`` (the xlstm package's default, ``powerlaw_forget_bias``:
        per head, from 5 down to -7), or ``None``: ``"powerlaw"`` for the sigmoid forget
        gate, 0 (:math:`f = 1` at init) for the exponential one.
      kernel_init: initializer of each ``[I, H]`` block of ``w_x`` (default LeCun normal).
      recurrent_init: initializer of each head's ``[H/NH, H/NH]`` block of each gate in
        ``w_h`` (default orthogonal; the xlstm package starts it at zero).
      bias_init: initializer of ``b`` (default zeros).
      param_dtype: dtype of the params and of the default carry.
      dtype: compute dtype of the matmuls (``None``: the params' dtype). The gates are
        computed in float32 at least, the carry kept in its own dtype.

    Returns:
      A :class:`gatedcells.Cell` with :class:`SLSTMParams`, carry :class:`SLSTMCarry`
      ``(c, n, m, h)`` and gates :class:`SLSTMGates`. Its update is one (block-diagonal)
      matmul and a pointwise rest, so :func:`gatedcells.unroll` runs it on the fused scan.

    Raises:
      ValueError: a non-positive ``hidden_size`` or ``num_heads``, ``num_heads`` not dividing
        ``hidden_size``, an unknown ``forget_gate`` or ``forget_bias`` string.
      TypeError: a ``forget_bias`` that is neither a number nor a string, an initializer that
        is not a function, a dtype that is not floating.

    Examples:
      >>> import jax, jax.numpy as jnp, gatedcells as gc
      >>> cell = gc.slstm(8, num_heads=2)
      >>> params = cell.init(jax.random.key(0), 3)
      >>> params.w_x.shape, params.w_h.shape, params.b.shape, gc.count_params(params)
      ((3, 32), (2, 4, 16), (32,), 256)
      >>> [round(float(v), 2) for v in params.b[8:12]]  # the forget block of head 0
      [5.0, -3.63, -5.63, -7.0]
      >>> carry, ys = gc.unroll(cell, params, jnp.ones((5, 3)))
      >>> ys.shape, carry._fields, bool(jnp.all(carry.n >= 1))
      ((5, 8), ('c', 'n', 'm', 'h'), True)

    References:
      Beck, Pöppel, Spanring, Auer, Prudnikova, Kopp, Klambauer, Brandstetter & Hochreiter,
      "xLSTM: Extended Long Short-Term Memory", NeurIPS 2024 (§2.2 and Appendix A).
      The xlstm package (NX-AI, Apache-2.0), ``xlstm/blocks/slstm/src/vanilla/slstm.py``.
    """
    H = _checks.check_positive_int("hidden_size", hidden_size)
    NH = _checks.check_heads(num_heads, H)
    _checks.check_choice("forget_gate", forget_gate, FORGET_GATES)
    if forget_bias is None:
        forget_bias = "powerlaw" if forget_gate == "sigmoid" else 0.0
    if isinstance(forget_bias, str):
        _checks.check_choice("forget_bias", forget_bias, ("powerlaw",))
    else:
        _checks.check_factory_args(numbers={"forget_bias": forget_bias})
        forget_bias = float(forget_bias)
    inits = _blocks.checked_inits(kernel_init, recurrent_init, bias_init, param_dtype, dtype)
    flags = {"num_heads": NH} if NH > 1 else {}
    flags.update({"forget_gate": forget_gate} if forget_gate != "sigmoid" else {})
    name = _blocks.describe("slstm", H, flags)
    spec = SLSTMSpec(name, H, NH, forget_gate, forget_bias, *inits)
    step = _anatomy.Bound(pointwise, spec, vjp=_slstm_grad.own_vjp(spec))
    split = MatmulSplit(_anatomy.hidden, step, dtype, additive=True)
    shapes = {"w_x": (None, 4 * H), "w_h": (NH, H // NH, 4 * H // NH), "b": (4 * H,)}
    return _anatomy.assemble(
        spec, init, _blocks.project, split=split, shapes=shapes, carry=_anatomy.Bound(carry, spec)
    )
