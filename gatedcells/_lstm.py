"""The LSTM family: with and without a forget gate, gates optionally clamped."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from . import _cell
from ._cell import Array, Cell, Fused

_LSTM_GATES = ("i", "f", "o")  # the sigmoid gates; "g" is the candidate (block input)


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


class LSTMCarry(NamedTuple):
    """LSTM carry: the memory cell ``c`` and the hidden state ``h``, each ``[*B, H]``.

    The order ``(c, h)`` is Flax's; access the fields by name.
    """

    c: Array
    h: Array


class LSTMGates(NamedTuple):
    """LSTM gate activations of one step, each ``[*B, H]``.

    Attributes:
      i: input gate. f: forget gate (ones without a forget gate). g: candidate (block input).
      o: output gate. A clamped gate shows its constant.
    """

    i: Array
    f: Array
    g: Array
    o: Array


@dataclasses.dataclass(frozen=True)
class LSTMSpec:
    """The static configuration of an LSTM: which blocks are learned, which are constants."""

    hidden_size: int
    blocks: tuple[str, ...]  # learned blocks, in (i, f, g, o) order
    fixed: tuple[tuple[str, float], ...]  # clamped gates and their values
    output_activation: Callable[[Array], Array]


def lstm_update(
    spec: LSTMSpec, params: LSTMParams, carry: LSTMCarry, x_proj: Array, h_proj: Array
) -> tuple[LSTMCarry, Array, LSTMGates]:
    r"""One LSTM step after the recurrent matmul. See :func:`gatedcells.lstm`."""
    del params  # every weight already met the input in x_proj and h_proj
    with jax.named_scope("gatedcells.lstm"):
        dtype = carry.c.dtype
        z = _cell.split(x_proj.astype(dtype) + h_proj.astype(dtype), spec.blocks)
        fixed = dict(spec.fixed)

        def gate(name):
            if name in fixed:
                return jnp.full_like(z["g"], fixed[name])
            return jax.nn.sigmoid(z[name])

        i, f, o = gate("i"), gate("f"), gate("o")
        g = jnp.tanh(z["g"])
        c = f * carry.c + i * g
        h = o * spec.output_activation(c)
    return LSTMCarry(c, h), h, LSTMGates(i, f, g, o)


def lstm(
    hidden_size: int,
    *,
    forget_gate: bool = True,
    forget_bias: float = 1.0,
    output_activation: Callable[[Array], Array] = jnp.tanh,
    fixed_gates: Mapping[str, float] | None = None,
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

    Parameter count: ``G*(I*H + H*H + H)`` with ``G`` learned blocks (4, or 3 without the
    forget gate, minus one per clamped gate).

    Args:
      hidden_size: size ``H`` of ``c`` and ``h``.
      forget_gate: ``False`` for the 1997 LSTM without a forget gate (``f = 1``).
      forget_bias: added to the forget-gate bias at init, visible in ``params.b``. The lecture
        suggests large values such as 5 (the LSTM starts by remembering); Jozefowicz et al.
        (2015) recommend 1. Ignored when there is no learned forget gate.
      output_activation: :math:`\phi`, ``jnp.tanh`` or ``jax.nn.identity`` (``h = o*c``).
      fixed_gates: ``{"i" | "f" | "o": value in [0, 1]}`` gates clamped to constants.
      kernel_init: initializer of each ``[I, H]`` block of ``w_x`` (default LeCun normal).
      recurrent_init: initializer of each ``[H, H]`` block of ``w_h`` (default orthogonal).
      bias_init: initializer of ``b`` before the forget-bias offset (default zeros).
      param_dtype: dtype of the params and of the default carry.
      dtype: compute dtype of the matmuls (``None``: the params' dtype). With
        ``dtype=jnp.bfloat16`` and float32 params and carry, matmuls run in bfloat16 while
        the gates and the memory stay float32.

    Returns:
      A :class:`gatedcells.Cell` with :class:`LSTMParams`, carry :class:`LSTMCarry` and gates
      :class:`LSTMGates`; its output is ``h`` (``output_size = H``).

    Raises:
      ValueError: for an unknown gate name in ``fixed_gates`` (or ``"f"`` without a forget
        gate), a value outside ``[0, 1]``, or a non-positive ``hidden_size``.

    Examples:
      >>> import jax, jax.numpy as jnp, gatedcells as gc
      >>> cell = gc.lstm(8, forget_bias=5.0)
      >>> params = cell.init(jax.random.key(0), 3)
      >>> params.w_x.shape, params.w_h.shape, float(params.b[8])
      ((3, 32), (8, 32), 5.0)
      >>> carry, ys = gc.unroll(cell, params, jnp.ones((2, 5, 3)))
      >>> ys.shape, carry.c.shape
      ((2, 5, 8), (2, 8))

    References:
      Hochreiter & Schmidhuber, "Long Short-Term Memory", Neural Computation 1997.
      Gers, Schmidhuber & Cummins, "Learning to Forget", Neural Computation 2000.
      Jozefowicz, Zaremba & Sutskever, "An Empirical Exploration of Recurrent Network
      Architectures", ICML 2015.
    """
    _cell.check_hidden_size(hidden_size)
    fixed = _check_fixed_gates(fixed_gates, forget_gate)
    if not forget_gate:
        fixed["f"] = 1.0
    blocks = tuple(n for n in ("i", "f", "g", "o") if n not in fixed)
    spec = LSTMSpec(hidden_size, blocks, tuple(sorted(fixed.items())), output_activation)
    n, H = len(blocks), hidden_size
    flags = [] if forget_gate else ["forget_gate=False"]
    if fixed_gates:
        flags.append(f"fixed_gates={dict(fixed_gates)}")
    if output_activation is not jnp.tanh:
        flags.append(f"output_activation={getattr(output_activation, '__name__', '?')}")
    name = ", ".join([f"lstm({H}", *flags]) + ")"

    def init(key: Array, input_size: int) -> LSTMParams:
        kx, kh, kb = jax.random.split(key, 3)
        offsets = {"f": forget_bias}
        return LSTMParams(
            w_x=_cell.init_blocks(kernel_init, kx, input_size, H, n, param_dtype),
            w_h=_cell.init_blocks(recurrent_init, kh, H, H, n, param_dtype),
            b=_cell.gate_biases(bias_init, kb, H, blocks, offsets, param_dtype),
        )

    def initial_carry(batch_shape: tuple[int, ...] = (), dtype=None) -> LSTMCarry:
        zeros = _cell.zeros_carry(H, param_dtype)(batch_shape, dtype)
        return LSTMCarry(zeros, zeros)

    def input_size(params: LSTMParams) -> int:
        shapes = {"w_x": (None, n * H), "w_h": (H, n * H), "b": (n * H,)}
        return _cell.check_param_shapes(name, params, shapes)

    fused = Fused(
        hidden=lambda carry: carry.h, update=functools.partial(lstm_update, spec), dtype=dtype
    )
    return Cell(
        init=init,
        initial_carry=initial_carry,
        project=functools.partial(_cell.project_affine, dtype=dtype),
        trace=_cell.fused_trace(fused),
        input_size=input_size,
        output_size=H,
        name=name,
        fused=fused,
    )


def _check_fixed_gates(fixed_gates: Mapping[str, float] | None, forget_gate: bool):
    fixed = {}
    for name, value in dict(fixed_gates or {}).items():
        if name not in _LSTM_GATES:
            raise ValueError(
                f"fixed_gates: unknown gate {name!r}; an LSTM's gates are 'i', 'f', 'o' "
                "('g' is the candidate, not a gate)"
            )
        if name == "f" and not forget_gate:
            raise ValueError(
                "fixed_gates: this LSTM has no forget gate (forget_gate=False), so 'f' cannot "
                "be fixed"
            )
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            raise ValueError(f"fixed_gates[{name!r}] must be a number in [0, 1], got {value!r}")
        fixed[name] = float(value)
    return fixed
