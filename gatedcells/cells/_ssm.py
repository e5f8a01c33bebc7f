"""The selective state-space model of Mamba (S6, Gu & Dao 2023) as a cell."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from .. import _cell, _checks
from .._cell import Array, Cell
from ..sequence import _linear
from . import _anatomy, _blocks, _diagonal


class SSMParams(NamedTuple):
    """Selective SSM weights, named after Mamba's (``mamba_simple.py``), stored input-first.

    Attributes:
      w_x: ``[I, H]``, the input projection (``input_proj=True`` only; ``None`` otherwise).
      b_x: ``[H]``, its bias (likewise).
      w_dbc: ``[H, R + 2N]``, Mamba's ``x_proj``: the low-rank step ``δ`` (``R = dt_rank``),
        then ``B`` and ``C`` (``N = state_size``), no bias.
      w_dt: ``[R, H]``, Mamba's ``dt_proj.weight`` transposed.
      b_dt: ``[H]``, ``dt_proj.bias``: :math:`\\Delta` starts in ``[dt_min, dt_max]``.
      a_log: ``[H, N]``, :math:`A = -e^{a_{\\log}}` (``A_log``; S4D-real init, ``A[:, n] =
        -(n + 1)``).
      d: ``[H]``, the skip ``D`` (ones at init).
    """

    w_x: Array | None
    b_x: Array | None
    w_dbc: Array
    w_dt: Array
    b_dt: Array
    a_log: Array
    d: Array


class SSMGates(NamedTuple):
    """The selection of one step: the step size :math:`\\Delta` ``[*B, H]`` (the decay of
    channel ``h``'s state ``n`` is :math:`e^{\\Delta_h A_{hn}}`)."""

    delta: Array


class SSMSpec(NamedTuple):
    """The static flags of a selective SSM (:func:`selective_ssm`)."""

    name: str
    hidden_size: int
    state_size: int
    dt_rank: int
    dt_min: float
    dt_max: float
    dt_init_floor: float
    input_proj: bool
    method: str | None
    chunk_size: int
    kernel_init: Callable
    param_dtype: Any
    dtype: Any


def shapes(spec: SSMSpec) -> dict[str, tuple]:
    """The shapes of :class:`SSMParams`' fields (``None``: the input size)."""
    H, N, R = spec.hidden_size, spec.state_size, spec.dt_rank
    fields = {"w_dbc": (H, R + 2 * N), "w_dt": (R, H), "b_dt": (H,), "a_log": (H, N), "d": (H,)}
    return _diagonal.input_shapes(spec.input_proj, H) | fields


def init(spec: SSMSpec, key: Array, input_size: int) -> SSMParams:
    """Mamba's initialisation: S4D-real ``A``, ``D = 1``, :math:`\\Delta` log-uniform in
    ``[dt_min, dt_max]`` through ``b_dt``."""
    H, N, R, dtype = spec.hidden_size, spec.state_size, spec.dt_rank, spec.param_dtype
    _diagonal.check_channels(spec.name, input_size, H, spec.input_proj)
    kx, kp, kw, kd = jax.random.split(key, 4)
    bound = R**-0.5
    log_min, log_max = math.log(spec.dt_min), math.log(spec.dt_max)
    dt = jnp.exp(jax.random.uniform(kd, (H,)) * (log_max - log_min) + log_min)
    dt = jnp.maximum(dt, spec.dt_init_floor)
    a = jnp.broadcast_to(jnp.arange(1, N + 1, dtype=jnp.float32), (H, N))
    return SSMParams(
        **_diagonal.input_weights(spec.kernel_init, kx, input_size, H, spec.input_proj, dtype),
        w_dbc=_blocks.init_param(spec.kernel_init, kp, (H, R + 2 * N), dtype),
        w_dt=jax.random.uniform(kw, (R, H), jnp.float32, -bound, bound).astype(dtype),
        b_dt=(dt + jnp.log(-jnp.expm1(-dt))).astype(dtype),  # softplus^-1(dt)
        a_log=jnp.log(a).astype(dtype),
        d=jnp.ones((H,), dtype),
    )


def project(spec: SSMSpec, params: SSMParams, xs: Array) -> Array:
    """``[u, Δ, B, C]`` ``[..., 2H + 2N]``: the input ``u [..., H]`` (projected with
    ``input_proj``) and the selection read from it."""
    u = _diagonal.project_input(params, xs, spec.dtype)
    dbc = _cell.matmul(u, params.w_dbc, spec.dtype).astype(u.dtype)
    delta, b, c = jnp.split(dbc, [spec.dt_rank, spec.dt_rank + spec.state_size], axis=-1)
    return jnp.concatenate([u, step_size(spec, params, delta), b, c], axis=-1)


def step_size(spec: SSMSpec, params: SSMParams, delta: Array) -> Array:
    """:math:`\\Delta = \\operatorname{softplus}(\\delta W_{dt} + b_{dt})` ``[..., H]`` from the
    low-rank :math:`\\delta = u W_\\delta` ``[..., R]``."""
    delta = _cell.matmul(delta, params.w_dt, spec.dtype).astype(delta.dtype)
    return jax.nn.softplus(delta + _blocks.along_last(params.b_dt, delta))


def update(
    spec: SSMSpec, params: SSMParams, carry: Array, x_proj: Array
) -> tuple[Array, Array, SSMGates]:
    """One S6 step, :math:`h' = e^{\\Delta A} h + \\Delta B u`, :math:`y = C h' + D u`;
    ``carry [*B, H*N]`` is the state ``[*B, H, N]`` flattened."""
    with jax.named_scope("gatedcells.selective_ssm"):
        x_proj = x_proj.astype(_blocks.wide(carry.dtype))
        log_a, b = coefficients(params, x_proj)
        h = jnp.exp(log_a) * carry.reshape(b.shape).astype(b.dtype) + b
        y = readout(params, h, x_proj)
        gates = SSMGates(selection(params, x_proj)[1].astype(carry.dtype))
    return h.reshape(carry.shape).astype(carry.dtype), y.astype(carry.dtype), gates


def scan(spec, params, carry, xs, *, valid, reverse, unroll, grad, remat):
    """The whole sequence: ``Δ, B, C`` in one projection, then the recurrence with the
    coefficients and the read-out formed inside its loop (never all states at once)."""
    del remat  # the recurrence holds its states at most once: nothing to recompute
    x_proj = project(spec, params, xs).astype(_blocks.wide(carry.dtype))
    state = carry.reshape(*carry.shape[:-1], spec.hidden_size, spec.state_size)
    options = {"valid": valid, "reverse": reverse, "unroll": unroll, "grad": grad}
    options |= {"method": spec.method or default_method(), "chunk_size": spec.chunk_size}
    args = (coefficients, readout, params, x_proj, state)
    h, ys = _linear.linear_scan_with_readout(*args, **options)
    return h.reshape(carry.shape), ys


def coefficients(params: SSMParams, x_proj: Array) -> tuple[Array, Array]:
    """``(log a, b)`` ``[..., H, N]`` of :math:`h_t = e^{\\Delta_t A} h_{t-1} + \\Delta_t B_t
    u_t` from the projection ``[..., 2H + 2N]`` (``u, Δ, B, C``). See :func:`selective_ssm`."""
    u, delta, b, _ = selection(params, x_proj)
    a = -jnp.exp(params.a_log.astype(x_proj.dtype))  # [H, N]
    a = a.reshape((1,) * (delta.ndim - 1) + a.shape)
    return delta[..., None] * a, (delta * u)[..., None] * b[..., None, :]


def readout(params: SSMParams, h: Array, x_proj: Array) -> Array:
    """:math:`y_t = C_t h_t + D \\odot u_t`, ``[..., H]``, from ``h [..., H, N]``."""
    u, _, _, c = selection(params, x_proj)
    return jnp.einsum("...hn,...n->...h", h, c) + _blocks.along_last(params.d, u) * u


def selection(params: SSMParams, x_proj: Array) -> tuple[Array, Array, Array, Array]:
    """``(u, Δ, B, C)`` of the projection ``[..., 2H + 2N]``."""
    H, N = params.a_log.shape
    return tuple(jnp.split(x_proj, [H, 2 * H, 2 * H + N], axis=-1))


def default_method() -> str:
    """The path ``method=None`` runs: ``"sequential"`` on CPU, the fastest there
    (``benchmarks/results/linear-cells-cpu.md``); ``"chunked"`` elsewhere, unmeasured: it holds
    the states ``[T, *B, H, N]`` at most once, as the sequential one (the associative: more)."""
    return "sequential" if jax.default_backend() == "cpu" else "chunked"


def selective_ssm(
    hidden_size: int,
    *,
    state_size: int = 16,
    dt_rank: int | None = None,
    dt_min: float = 0.001,
    dt_max: float = 0.1,
    dt_init_floor: float = 1e-4,
    input_proj: bool = False,
    method: str | None = None,
    chunk_size: int = _linear.CHUNK_SIZE,
    kernel_init: Callable = jax.nn.initializers.lecun_normal(),
    param_dtype: Any = jnp.float32,
    dtype: Any = None,
) -> Cell:
    r"""The selective state-space model S6 of Mamba (Gu & Dao 2023), as a cell.

    Every channel ``h`` of the input ``u`` has its own state of size ``N``; the step size
    :math:`\Delta`, the input matrix ``B`` and the output matrix ``C`` are read from the
    input (the selection):

    .. math::

       \Delta_t &= \operatorname{softplus}(W_{dt} (W_\delta u_t) + b_{dt}) \qquad
       B_t = W_B u_t \qquad C_t = W_C u_t \\
       h_t &= e^{\Delta_t A} \odot h_{t-1} + \Delta_t B_t u_t \qquad
       y_t = C_t h_t + D \odot u_t

    per channel (:math:`h_t \in \mathbb{R}^{H \times N}`, :math:`A \in \mathbb{R}^{H \times
    N}` negative: :math:`A = -e^{a_{\log}}`). ``A`` is discretised by zero-order hold and
    ``B`` by Euler's rule (:math:`\bar B = \Delta B`), as Mamba's reference
    ``selective_scan_ref`` does; the initialisation is Mamba's (S4D-real ``A``, ``D = 1``,
    :math:`\Delta` log-uniform in ``[dt_min, dt_max]`` through ``b_dt``). This is the selective
    scan of the paper's Algorithm 2 with its input-dependent ``Δ, B, C``; the rest of the
    Mamba block (expansion, causal convolution, the SiLU gate) is built around the cell.

    :func:`gatedcells.unroll` forms ``Δ, B, C`` for the whole sequence in one matmul and runs
    the recurrence with the coefficients and the read-out formed inside the loop
    (``method``): the ``"sequential"`` and ``"chunked"`` paths never hold the states
    ``[T, *B, H, N]`` in the forward pass and hold them once in the backward pass;
    ``"associative"`` forms them all. The carry is the state flattened, ``[*B, H*N]``.

    The layer maps ``H`` channels to ``H``: its input must have ``I = H``, or
    ``input_proj=True`` first projects it (Mamba's ``in_proj``, its ``x`` half).

    Parameter count: ``H*(R + 2N) + R*H + H + H*N + H``, plus ``I*H + H`` with ``input_proj``.

    Args:
      hidden_size: ``H``, the channels.
      state_size: ``N``, the state size per channel (16 in Mamba).
      dt_rank: ``R``, the rank of :math:`\Delta`'s projection (default ``ceil(H / 16)``; a
        Mamba block's is ``ceil(d_model / 16)`` of its outer width: pass that to port one,
        docs/cells/linear.md).
      dt_min, dt_max: the range of :math:`\Delta` at init (``0 < dt_min < dt_max``).
      dt_init_floor: the smallest :math:`\Delta` at init.
      input_proj, chunk_size, param_dtype: as :func:`gatedcells.lru`'s.
      method: as :func:`gatedcells.lru`'s; ``None`` is ``_ssm.default_method``.
      kernel_init: initializer of ``w_x`` and ``w_dbc``.
      dtype: compute dtype of the projections (``None``: float32 or wider).

    Returns:
      A :class:`gatedcells.Cell` with :class:`SSMParams`, carry ``[*B, H*N]`` and gates
      :class:`SSMGates`.

    Raises:
      ValueError: a non-positive size, a bad range of :math:`\Delta`, an unknown
        ``method``; at ``init``, an input size other than ``H`` without ``input_proj``.

    Examples:
      >>> import jax, jax.numpy as jnp, gatedcells as gc
      >>> cell = gc.selective_ssm(8, state_size=4)
      >>> params = cell.init(jax.random.key(0), 8)
      >>> params.w_dbc.shape, params.a_log.shape, gc.count_params(params)
      ((8, 9), (8, 4), 128)
      >>> h, ys = gc.unroll(cell, params, jnp.ones((2, 50, 8)))
      >>> ys.shape, h.shape
      ((2, 50, 8), (2, 32))

    References:
      Gu & Dao, "Mamba: Linear-Time Sequence Modeling with Selective State Spaces", 2023
      (Algorithm 2; ``state-spaces/mamba``, ``selective_scan_ref``).
      Gu, Gupta, Goel & Ré, "On the Parameterization and Initialization of Diagonal State
      Space Models", NeurIPS 2022 (S4D-real).
    """
    H = _checks.check_positive_int("hidden_size", hidden_size)
    N = _checks.check_positive_int("state_size", state_size)
    R = math.ceil(H / 16) if dt_rank is None else _checks.check_positive_int("dt_rank", dt_rank)
    numbers = {"dt_min": dt_min, "dt_max": dt_max, "dt_init_floor": dt_init_floor}
    _checks.check_factory_args(numbers=numbers)
    options = (input_proj, method, chunk_size, kernel_init, param_dtype, dtype)
    options = _diagonal.checked_options(*options)
    if not 0 < dt_min < dt_max or dt_init_floor <= 0:
        raise ValueError(
            f"need 0 < dt_min < dt_max and dt_init_floor > 0, got {dt_min=}, {dt_max=}, "
            f"{dt_init_floor=}"
        )
    flags = {"state_size": N} if N != 16 else {}
    flags |= {"dt_rank": R} if dt_rank is not None else {}
    flags |= {"input_proj": True} if input_proj else {}
    name = _blocks.describe("selective_ssm", H, flags)
    spec = SSMSpec(name, H, N, R, dt_min, dt_max, dt_init_floor, *options)
    return _anatomy.assemble(spec, init, project, update, scan=scan, carry=H * N, shapes=shapes)
