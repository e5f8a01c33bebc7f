"""The mLSTM of the xLSTM (Beck et al. 2024): a matrix memory with exponential gating, in
its recurrent, parallel and chunkwise forms."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from .. import _cell, _checks
from .._cell import Array, Cell
from . import _anatomy, _blocks, _mlstm_forms, _mlstm_scan
from ._blocks import wide
from ._mlstm_forms import FORMS, Dims, carry_of, chunk_size_for, split_inputs, state_of


class MLSTMParams(NamedTuple):
    """mLSTM weights: one fused input projection, blocks in the paper's order.

    Attributes:
      w_x: input kernel ``[I, 2*Q + 2*V + 2*NH]``, blocks ``(q, k, v, i, f, o)`` of sizes
        ``Q, Q, V, NH, NH, V`` (``Q = qk_dim``, ``V = v_dim``, heads ``NH`` side by side
        within each block): the query, key and value projections, the per-head input and
        forget gates, the output gate.
      b: bias ``[2*Q + 2*V + 2*NH]``, same blocks; the forget block starts at
        ``forget_bias``, the input block at ``input_bias``.
      w_out: ``[V, H]``, the projection of the gated memory read-out to the output size
        (only when ``v_dim != hidden_size``; ``None`` otherwise).
    """

    w_x: Array
    b: Array
    w_out: Array | None = None


class MLSTMCarry(NamedTuple):
    """The mLSTM's stabilised memory, every leaf ``[*B, ...]`` with one trailing axis.

    The true memory is :math:`C e^{m}`, :math:`n e^{m}` per head; the output does not depend
    on ``m`` (it cancels in the ratio), which only keeps the exponentials in range.

    Attributes:
      C: the matrix memory ``[*B, NH*DV*DK]`` (``reshape(*B, NH, DV, DK)``: ``C_t = f_t
        C_{t-1} + i_t v_t k_t^T`` per head, ``DV = v_dim/NH``, ``DK = qk_dim/NH``).
      n: the normaliser ``[*B, NH*DK]`` (``reshape(*B, NH, DK)``).
      m: the stabiliser ``[*B, NH]`` (log scale of ``C`` and ``n``; 0 at the start).

    ``mlstm_kernels`` and xLSTM-large scale the queries instead of the keys and hold ``C``
    as ``[DK, DV]``: :func:`gatedcells.interop.to_mlstm_kernels` and
    :func:`~gatedcells.interop.from_mlstm_kernels` convert a state across.
    """

    C: Array
    n: Array
    m: Array


class MLSTMGates(NamedTuple):
    """mLSTM gate activations of one step: the stabilised input and forget gates
    ``i = exp(ĩ - m)``, ``f = exp(log σ(f̃) + m_prev - m)`` (``[*B, NH]``, what the update
    multiplies by; the true gates are ``i e^m`` and ``f e^(m - m_prev)``), the output gate
    ``o`` ``[*B, V]`` and the stabiliser ``m`` ``[*B, NH]``."""

    i: Array
    f: Array
    o: Array
    m: Array


class MLSTMSpec(NamedTuple):
    """The static flags of an mLSTM (:func:`mlstm`), resolved: ``dims`` the heads and their
    sizes, ``forget_bias`` the pair (start, end) over the heads."""

    name: str
    hidden_size: int
    dims: Dims
    form: str | None
    chunk_size: int
    eps: float
    forget_bias: tuple[float, float]
    input_bias: float
    kernel_init: Callable
    gate_init: Callable
    bias_init: Callable
    param_dtype: Any
    dtype: Any


def shapes(spec: MLSTMSpec) -> dict[str, tuple]:
    """The shapes of :class:`MLSTMParams`' fields (``None``: the input size)."""
    H, P, V = spec.hidden_size, sum(spec.dims.sizes()), spec.dims.heads * spec.dims.v
    return {"w_x": (None, P), "b": (P,)} | ({} if V == H else {"w_out": (V, H)})


def init(spec: MLSTMSpec, key: Array, input_size: int) -> MLSTMParams:
    """``w_x`` block by block (the gates' by ``gate_init``), ``b`` with the input bias and
    the forget biases spaced over the heads, and ``w_out`` when ``V != H``."""
    H, NH, dtype, sizes = spec.hidden_size, spec.dims.heads, spec.param_dtype, spec.dims.sizes()
    keys = jax.random.split(key, 8)
    kernel, gate = spec.kernel_init, spec.gate_init
    inits = (kernel, kernel, kernel, gate, gate, kernel)
    blocks = zip(inits, keys[:6], sizes, strict=True)
    w_x = [_blocks.init_param(fn, k, (input_size, size), dtype) for fn, k, size in blocks]
    b = _blocks.init_param(spec.bias_init, keys[6], (sum(sizes),), dtype)
    start = sum(sizes[:3])
    b = b.at[start : start + NH].add(jnp.asarray(spec.input_bias, dtype))
    fb = jnp.linspace(*spec.forget_bias, NH, dtype=jnp.float32).astype(dtype)
    b = b.at[start + NH : start + 2 * NH].add(fb)
    V = spec.dims.heads * spec.dims.v
    w_out = None if V == H else _blocks.init_param(kernel, keys[7], (V, H), dtype)
    return MLSTMParams(jnp.concatenate(w_x, axis=-1), b, w_out)


def carry(spec: MLSTMSpec, batch_shape: tuple[int, ...], dtype: Any = None) -> MLSTMCarry:
    """The zero :class:`MLSTMCarry`: an empty memory."""
    NH, dims = spec.dims.heads, spec.dims
    zeros = lambda size: _anatomy.Zeros(size, spec.param_dtype)(batch_shape, dtype)  # noqa: E731
    return MLSTMCarry(zeros(NH * dims.v * dims.qk), zeros(NH * dims.qk), zeros(NH))


def project(spec: MLSTMSpec, params: MLSTMParams, xs: Array) -> Array:
    """``xs @ w_x + b`` ``[..., 2Q+2V+2NH]``, accumulated and returned in float32 (or wider)
    whatever the compute ``dtype``: a bfloat16 pre-activation of the exponential input gate
    would be off by up to 0.4% of its value, in the exponent."""
    compute = params.w_x.dtype if spec.dtype is None else spec.dtype
    out = jnp.matmul(
        xs.astype(compute), params.w_x.astype(compute), preferred_element_type=wide(params.b.dtype)
    )
    return out + _blocks.along_last(params.b, out)


def update(
    spec: MLSTMSpec, params: MLSTMParams, carry: MLSTMCarry, x_proj: Array
) -> tuple[MLSTMCarry, Array, MLSTMGates]:
    """One mLSTM step, stabilised in log space: the recurrent form. See :func:`mlstm`."""
    dims = spec.dims
    with jax.named_scope("gatedcells.mlstm"):
        inner = wide(carry.C.dtype)  # float32 (or wider) inside
        q, k, v, log_i, log_f, o_pre = split_inputs(dims, x_proj.astype(inner))
        state = state_of(carry, dims, inner)
        (c, n, m_new), h, (i, f, _, _) = _mlstm_scan.step(state, q, k, v, log_i, log_f, spec.eps)
        h_tilde = h.reshape(*h.shape[:-2], dims.heads * dims.v)
        o = jax.nn.sigmoid(o_pre)
        y = output(spec, params, o, h_tilde).astype(carry.C.dtype)
    gates = MLSTMGates(i, f, o, m_new)
    gates = jax.tree.map(lambda g: g.astype(carry.C.dtype), gates)
    return carry_of((c, n, m_new), carry), y, gates


def output(spec: MLSTMSpec, params: MLSTMParams, o: Array, h_tilde: Array) -> Array:
    """``y = o ⊙ h̃`` (``[..., V]``), projected by ``w_out`` to ``[..., H]`` when present."""
    h = o * h_tilde
    if params.w_out is None:
        return h
    return _cell.matmul(h, params.w_out, spec.dtype).astype(h.dtype)


def scan(spec, params, carry, xs, *, valid, reverse, unroll, grad, remat):
    """The whole sequence in ``spec.form`` (``_mlstm_forms.sequence``); the recurrent form
    with ``grad="autodiff"`` or ``remat`` runs the generic driver over :func:`stepper`'s
    step."""
    return _mlstm_forms.sequence(
        stepper(spec),
        _anatomy.Bound(output, spec),
        spec,
        params,
        carry,
        xs,
        valid=valid,
        reverse=reverse,
        unroll=unroll,
        grad=grad,
        remat=remat,
    )


def stepper(spec: MLSTMSpec) -> Cell:
    """The mLSTM's cell without its sequence driver: the recurrent form, step by step."""
    return _anatomy.assemble(
        spec, init, project, update, shapes=shapes, carry=_anatomy.Bound(carry, spec)
    )


def mlstm(
    hidden_size: int,
    *,
    num_heads: int = 1,
    qk_dim: int | None = None,
    v_dim: int | None = None,
    form: str | None = None,
    chunk_size: int | None = None,
    eps: float = 1e-6,
    forget_bias: float | tuple[float, float] = (3.0, 6.0),
    input_bias: float = 0.0,
    kernel_init: Callable = jax.nn.initializers.lecun_normal(),
    gate_init: Callable = jax.nn.initializers.zeros,
    bias_init: Callable = jax.nn.initializers.zeros,
    param_dtype: Any = jnp.float32,
    dtype: Any = None,
) -> Cell:
    r"""mLSTM (Beck et al. 2024): the xLSTM's matrix-memory cell, fully parallelisable.

    Per head, with queries, keys, values and gates read from the input only:

    .. math::

       q_t &= W_q x_t + b_q \qquad k_t = \tfrac{1}{\sqrt{d_k}} (W_k x_t + b_k) \qquad
       v_t = W_v x_t + b_v \\
       \tilde\imath_t &= w_i^\top x_t + b_i \qquad \tilde f_t = w_f^\top x_t + b_f \qquad
       o_t = \sigma(W_o x_t + b_o) \\
       m_t &= \max(\log\sigma(\tilde f_t) + m_{t-1},\ \tilde\imath_t) \qquad
       i_t = e^{\tilde\imath_t - m_t} \qquad f_t = e^{\log\sigma(\tilde f_t) + m_{t-1} - m_t} \\
       C_t &= f_t C_{t-1} + i_t\, v_t k_t^\top \qquad n_t = f_t n_{t-1} + i_t k_t \\
       h_t &= o_t \odot \frac{C_t q_t}{\max(|n_t^\top q_t|, e^{-m_t}) + \epsilon}

    The input gate is exponential and the forget gate a sigmoid, both in log space: ``m`` is
    the stabiliser that keeps :math:`e^{\tilde\imath}` in range (``C`` and ``n`` are the
    paper's memory times :math:`e^{-m}`; the output does not depend on ``m`` but through
    :math:`\epsilon`, the reference implementation's ``1e-6``). The heads split ``q, k``
    (``qk_dim``) and ``v, o`` (``v_dim``) into equal parts, each with its own memory
    :math:`C \in \mathbb{R}^{d_v \times d_k}` and its own scalar gates. Nothing reads
    :math:`h_{t-1}`: no memory mixing, so a whole sequence runs in parallel.

    Three forms compute the same outputs and carry, to float rounding (the stabiliser
    included): ``"recurrent"``, the step (:meth:`~gatedcells.Cell.step`, for streaming) in a
    ``lax.scan``; ``"parallel"``, the stabilised quadratic form with the log-space decay
    matrix :math:`\log D_{tj} = \sum_{j<s\le t} \log\sigma(\tilde f_s) + \tilde\imath_j`
    (``O(T^2)`` time and memory); ``"chunkwise"``, parallel within chunks of ``chunk_size``
    steps and recurrent from chunk to chunk (``O(T L)`` memory). :func:`gatedcells.unroll`
    runs ``form``; ``form=None`` runs the fastest measured, the parallel form up to one
    chunk and the chunkwise form beyond (on a 2-core CPU at 2048 steps, forward+backward,
    2.7x faster than the recurrent form and 35x faster than the parallel one, in 1/22 of
    its memory: ``gatedcells.cells._mlstm_forms.default_form``,
    ``benchmarks/results/mlstm-cpu.md``). Lengths, ``reverse`` and an initial carry work in
    every form. The recurrent form runs the step's loop with a gradient of its own
    (``gatedcells.cells._mlstm_scan``: the state before each step saved, the adjoint
    recurrence by hand, 2x faster than autodiff of the loop), or with ``grad="autodiff"``
    (for ``jax.jvp``) or ``remat`` the generic driver; ``unroll`` applies to both. The
    chunkwise form has a gradient of its own too (``_mlstm_chunkwise``), or with
    ``grad="autodiff"`` plain autodiff; the parallel form ignores those three. The memory is computed in float32 (or
    wider) whatever the params' dtype, the input projection included. The floor
    :math:`e^{-m_t}` is capped at :math:`e^{80}` (``m_t < -80`` only happens for extreme
    inputs, where the output is below :math:`10^{-20}` either way) so that no gradient
    meets an infinity.

    Following the reference implementation (the ``xlstm`` package): gate weights start at
    zero and the forget-gate bias spaced from 3 to 6 over the heads, so every head starts
    remembering; no causal convolution, up-projection or group norm (those belong to the
    xLSTM *block*, built around the cell).

    Parameter count: ``(I + 1) * (2Q + 2V + 2NH)``, plus ``V*H`` when ``v_dim != H``.

    Args:
      hidden_size: output size ``H``.
      num_heads: number of heads ``NH``; it must divide ``qk_dim`` and ``v_dim``.
      qk_dim: total query/key size ``Q`` over the heads (default ``H``).
      v_dim: total value size ``V`` over the heads (default ``H``; another size adds the
        output projection ``w_out [V, H]``).
      form: ``"recurrent"``, ``"parallel"``, ``"chunkwise"`` or ``None`` (by length and
        backend, ``gatedcells.cells._mlstm_forms.default_form``; chunkwise for a symbolic
        length of ``jax.export``).
      chunk_size: ``L``, steps per chunk of the chunkwise form; ``None``: by the head size,
        as measured (16 up to 16 query/key dims per head, 32 up to 32, else 64:
        ``gatedcells.cells._mlstm_forms.chunk_size_for``).
      eps: :math:`\epsilon` added to the denominator.
      forget_bias: added to the forget-gate bias at init: a number, or ``(start, end)``
        spaced linearly over the heads.
      input_bias: added to the input-gate bias at init.
      kernel_init: initializer of the ``q, k, v, o`` blocks of ``w_x`` and of ``w_out``.
      gate_init: initializer of the ``i, f`` blocks of ``w_x`` (default zeros).
      bias_init: initializer of ``b`` (before the offsets).
      param_dtype: dtype of the params and of the default carry.
      dtype: compute dtype of the input and output projections (``None``: the params').

    Returns:
      A :class:`gatedcells.Cell` with :class:`MLSTMParams`, carry :class:`MLSTMCarry` and
      gates :class:`MLSTMGates`.

    Raises:
      ValueError: a non-positive size, ``num_heads`` not dividing ``qk_dim`` or ``v_dim``,
        an unknown ``form``, or a non-positive ``chunk_size``.
      TypeError: a flag of the wrong type.

    Examples:
      >>> import jax, jax.numpy as jnp, gatedcells as gc
      >>> cell = gc.mlstm(8, num_heads=2, qk_dim=4)
      >>> params = cell.init(jax.random.key(0), 3)
      >>> params.w_x.shape, gc.count_params(params)
      ((3, 28), 112)
      >>> carry = cell.initial_carry((5,))
      >>> carry.C.shape, carry.n.shape, carry.m.shape     # 2 heads of [4, 2] memories
      ((5, 16), (5, 4), (5, 2))
      >>> xs = jax.random.normal(jax.random.key(1), (5, 100, 3))
      >>> _, ys = gc.unroll(cell, params, xs)              # chunkwise at 100 steps
      >>> _, ys_rec = gc.unroll(gc.mlstm(8, num_heads=2, qk_dim=4, form="recurrent"), params, xs)
      >>> ys.shape, bool(jnp.allclose(ys, ys_rec, atol=1e-5))
      ((5, 100, 8), True)

    References:
      Beck, Pöppel, Spanring, Auer, Prudnikova, Kopp, Klambauer, Brandstetter &
      Hochreiter, "xLSTM: Extended Long Short-Term Memory", NeurIPS 2024.
      Beck, Pöppel, Lippe & Hochreiter, "Tiled Flash Linear Attention: More Efficient
      Linear RNN and xLSTM Kernels", 2025 (the chunkwise form).
    """
    H = _checks.check_positive_int("hidden_size", hidden_size)
    NH = _checks.check_positive_int("num_heads", num_heads)
    Q = H if qk_dim is None else _checks.check_positive_int("qk_dim", qk_dim)
    V = H if v_dim is None else _checks.check_positive_int("v_dim", v_dim)
    if Q % NH or V % NH:
        raise ValueError(
            f"num_heads={NH} must divide qk_dim={Q} and v_dim={V} (each head takes an equal share)"
        )
    if form is not None:
        _checks.check_choice("form", form, FORMS)
    if chunk_size is None:
        chunk_size = chunk_size_for(Q // NH)
    L = _checks.check_positive_int("chunk_size", chunk_size)
    biases = forget_bias if isinstance(forget_bias, tuple | list) else (forget_bias,)
    if len(biases) not in (1, 2):
        raise ValueError(
            f"forget_bias must be a number or a pair (start, end), got {forget_bias!r}"
        )
    numbers = {"eps": eps, "input_bias": input_bias, "forget_bias": biases[0]}
    numbers |= {"forget_bias[-1]": biases[-1]}
    functions = {"kernel_init": kernel_init, "gate_init": gate_init, "bias_init": bias_init}
    dtypes = {"param_dtype": param_dtype, "dtype": dtype}
    _checks.check_factory_args(numbers=numbers, functions=functions, dtypes=dtypes)
    flags = {"num_heads": NH} if NH != 1 else {}
    flags |= {"qk_dim": Q} if Q != H else {}
    flags |= {"v_dim": V} if V != H else {}
    flags |= {"form": form} if form is not None else {}
    name = _blocks.describe("mlstm", H, flags)
    dims, biases = Dims(NH, Q // NH, V // NH), (float(biases[0]), float(biases[-1]))
    inits = (kernel_init, gate_init, bias_init, param_dtype, dtype)
    spec = MLSTMSpec(name, H, dims, form, L, eps, biases, float(input_bias), *inits)
    return dataclasses.replace(stepper(spec), scan=_anatomy.Bound(scan, spec))
