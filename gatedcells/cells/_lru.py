"""The Linear Recurrent Unit of Orvieto et al. (2023): a complex diagonal linear recurrence."""

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


class LRUParams(NamedTuple):
    """LRU weights: the paper's Appendix A parameters, matrices stored input-first.

    Attributes:
      w_x: ``[I, H]``, the input projection (``input_proj=True`` only; ``None`` otherwise).
      b_x: ``[H]``, its bias (likewise).
      nu_log: ``[N]``: :math:`|\\lambda| = e^{-e^{\\nu}}`.
      theta_log: ``[N]``: :math:`\\arg \\lambda = e^{\\theta}`.
      gamma_log: ``[N]``, the input normalisation :math:`\\log \\gamma` (trained; starts at
        :math:`\\log \\sqrt{1 - |\\lambda|^2}`).
      b_re, b_im: ``[H, N]``, the input matrix :math:`B^\\top` (the paper's ``B [N, H]``).
      c_re, c_im: ``[N, H]``, the output matrix :math:`C^\\top` (the paper's ``C [H, N]``).
      d: ``[H]``, the skip :math:`D`.
    """

    w_x: Array | None
    b_x: Array | None
    nu_log: Array
    theta_log: Array
    gamma_log: Array
    b_re: Array
    b_im: Array
    c_re: Array
    c_im: Array
    d: Array


class LRUGates(NamedTuple):
    """The LRU has no gates; its decay :math:`|\\lambda|` ``[*B, N]`` (constant in time) is
    traced in their place."""

    a: Array


class LRUSpec(NamedTuple):
    """The static flags of an LRU (:func:`lru`); ``N = state_size``."""

    name: str
    hidden_size: int
    state_size: int
    r_min: float
    r_max: float
    max_phase: float
    input_proj: bool
    method: str | None
    chunk_size: int
    kernel_init: Callable
    param_dtype: Any
    dtype: Any


def shapes(spec: LRUSpec) -> dict[str, tuple]:
    """The shapes of :class:`LRUParams`' fields (``None``: the input size)."""
    H, N = spec.hidden_size, spec.state_size
    fields = {"nu_log": (N,), "theta_log": (N,), "gamma_log": (N,), "b_re": (H, N)}
    fields |= {"b_im": (H, N), "c_re": (N, H), "c_im": (N, H), "d": (H,)}
    return _diagonal.input_shapes(spec.input_proj, H) | fields


def init(spec: LRUSpec, key: Array, input_size: int) -> LRUParams:
    """The paper's Appendix A: the ring initialisation of :math:`\\lambda`, :math:`\\gamma =
    \\sqrt{1 - |\\lambda|^2}`, complex Glorot-like ``B`` and ``C``, a standard normal ``D``."""
    H, N, dtype = spec.hidden_size, spec.state_size, spec.param_dtype
    _diagonal.check_channels(spec.name, input_size, H, spec.input_proj)
    k = jax.random.split(key, 8)
    u1, u2 = jax.random.uniform(k[0], (N,)), jax.random.uniform(k[1], (N,))
    r_min, r_max = spec.r_min, spec.r_max
    nu_log = jnp.log(-0.5 * jnp.log(u1 * (r_max**2 - r_min**2) + r_min**2))
    theta_log = jnp.log(spec.max_phase * u2)
    radius = jnp.exp(-jnp.exp(nu_log))
    gamma_log = jnp.log(jnp.sqrt(1 - radius**2))
    b_re, b_im = (normal(kk, (H, N), 1 / math.sqrt(2 * H)) for kk in k[2:4])
    c_re, c_im = (normal(kk, (N, H), 1 / math.sqrt(N)) for kk in k[4:6])
    fields = (nu_log, theta_log, gamma_log, b_re, b_im, c_re, c_im, jax.random.normal(k[6], (H,)))
    inputs = _diagonal.input_weights(spec.kernel_init, k[7], input_size, H, spec.input_proj, dtype)
    return LRUParams(*inputs.values(), *(v.astype(dtype) for v in fields))


def project(spec: LRUSpec, params: LRUParams, xs: Array) -> Array:
    """``[u, Re(γ ⊙ B u), Im(γ ⊙ B u)]`` ``[..., H + 2N]``: the input ``u [..., H]`` (projected
    with ``input_proj``) and its normalised image in the state space."""
    u = _diagonal.project_input(params, xs, spec.dtype)
    bu_re, bu_im = (
        _cell.matmul(u, b, spec.dtype).astype(u.dtype) for b in (params.b_re, params.b_im)
    )
    gamma = _blocks.along_last(jnp.exp(params.gamma_log), bu_re)
    return jnp.concatenate([u, bu_re * gamma, bu_im * gamma], axis=-1)


def update(
    spec: LRUSpec, params: LRUParams, carry: Array, x_proj: Array
) -> tuple[Array, Array, LRUGates]:
    """One LRU step, :math:`x' = \\lambda \\odot x + \\gamma \\odot B u`, :math:`y = \\mathrm{Re}(C x')
    + D \\odot u`; ``carry [*B, 2N]``: the real then imaginary parts of ``x``."""
    with jax.named_scope("gatedcells.lru"):
        u, bu = inputs(params, x_proj.astype(_blocks.wide(carry.dtype)))
        state = _diagonal.to_complex(carry.astype(u.dtype))
        x = _blocks.along_last(decay(params), state) * state + bu
        y = readout(params, x, u)
        gates = LRUGates(jnp.broadcast_to(jnp.abs(decay(params)), x.shape).astype(carry.dtype))
    return _diagonal.to_real(x).astype(carry.dtype), y.astype(carry.dtype), gates


def scan(spec, params, carry, xs, *, valid, reverse, unroll, grad, remat):
    """The whole sequence: one projection, then one :func:`gatedcells.linear_recurrence`
    of :math:`x' = \\lambda x + \\gamma B u` and the read-out of every state."""
    del remat  # the recurrence keeps its states: nothing to recompute
    u, bu = inputs(params, project(spec, params, xs).astype(_blocks.wide(carry.dtype)))
    x0, method = _diagonal.to_complex(carry.astype(u.dtype)), _linear.check_method(spec.method)
    options = {"valid": valid, "reverse": reverse, "unroll": unroll, "grad": grad}
    x, states = _linear.linear_scan(
        log_decay(params), bu, x0, method=method, chunk_size=spec.chunk_size, **options
    )
    ys = readout(params, states, u)
    ys = ys if valid is None else jnp.where(valid[..., None], ys, jnp.zeros_like(ys))  # padding
    return _diagonal.to_real(x).astype(carry.dtype), ys.astype(carry.dtype)


def normal(key: Array, shape: tuple[int, ...], scale: float) -> Array:
    """``scale * N(0, 1)`` of ``shape`` (the complex Glorot-like ``B`` and ``C``)."""
    return scale * jax.random.normal(key, shape)


def decay(params: LRUParams) -> Array:
    """:math:`\\lambda = \\exp(-e^{\\nu} + i e^{\\theta})` ``[N]``."""
    return jnp.exp(log_decay(params))


def log_decay(params: LRUParams) -> Array:
    """:math:`\\log \\lambda = -e^{\\nu} + i e^{\\theta}` ``[N]``, in float32 or wider."""
    nu = params.nu_log.astype(_blocks.wide(params.nu_log.dtype))
    return jax.lax.complex(-jnp.exp(nu), jnp.exp(params.theta_log.astype(nu.dtype)))


def inputs(params: LRUParams, x_proj: Array) -> tuple[Array, Array]:
    """``(u [..., H], γ ⊙ B u [..., N] complex)`` from the projection ``[..., H + 2N]``."""
    H = params.d.shape[-1]
    u, bu_re, bu_im = jnp.split(x_proj, [H, H + params.nu_log.shape[-1]], axis=-1)
    return u, jax.lax.complex(bu_re, bu_im)


def readout(params: LRUParams, x: Array, u: Array) -> Array:
    """:math:`y = \\mathrm{Re}(C x) + D \\odot u`."""
    c_re, c_im = params.c_re.astype(u.dtype), params.c_im.astype(u.dtype)
    return x.real @ c_re - x.imag @ c_im + _blocks.along_last(params.d, u) * u


def lru(
    hidden_size: int,
    *,
    state_size: int | None = None,
    r_min: float = 0.0,
    r_max: float = 1.0,
    max_phase: float = 6.28,
    input_proj: bool = False,
    method: str | None = None,
    chunk_size: int = _linear.CHUNK_SIZE,
    kernel_init: Callable = jax.nn.initializers.lecun_normal(),
    param_dtype: Any = jnp.float32,
    dtype: Any = None,
) -> Cell:
    r"""The Linear Recurrent Unit (Orvieto et al. 2023): a complex diagonal linear recurrence.

    .. math::

       \lambda &= \exp(-e^{\nu} + i e^{\theta}) \qquad
       x_t = \lambda \odot x_{t-1} + \gamma \odot (B u_t) \\
       y_t &= \mathrm{Re}(C x_t) + D \odot u_t

    with a complex state :math:`x \in \mathbb{C}^N` (``N = state_size``), ``u`` the input of
    ``H`` channels and :math:`\gamma = e^{\log\gamma}`, trained and initialised to
    :math:`\sqrt{1 - |\lambda|^2}` (as in the paper's Appendix A, which this cell follows
    line by line). The ring initialisation draws :math:`|\lambda|` uniformly by area on the
    ring ``[r_min, r_max]`` and the phase uniformly in ``[0, max_phase]``; ``B`` and ``C`` are
    complex Glorot-like normals, ``D`` a standard normal. No gate reads the input or the
    state: the recurrence is linear and time-invariant, and :func:`gatedcells.unroll` runs it
    as one :func:`gatedcells.linear_recurrence` (``method``) after one input projection.

    The layer maps ``H`` channels to ``H``: its input must have ``I = H``, or
    ``input_proj=True`` first projects it, :math:`u = x W_x + b_x` (the linear encoder of the
    paper's deep LRU). The carry is the state's real and imaginary parts, ``[*B, 2N]``.

    Parameter count: ``3N + 4HN + H``, plus ``I*H + H`` with ``input_proj``.

    Args:
      hidden_size: ``H``, the channels of the input and the output.
      state_size: ``N``, the complex state's size (default ``H``).
      r_min, r_max: the ring of :math:`|\lambda|` at init, ``0 <= r_min < r_max <= 1``.
      max_phase: the largest phase of :math:`\lambda` at init (``> 0``).
      input_proj: project inputs of any size ``I`` to ``H`` channels first.
      method: the sequence path, ``"sequential"``, ``"associative"``, ``"chunked"`` or
        ``None`` (:func:`gatedcells.linear_recurrence`'s measured default per backend).
      chunk_size: steps per chunk of the ``"chunked"`` path.
      kernel_init: initializer of the input projection ``w_x``.
      param_dtype: dtype of the params and of the default carry.
      dtype: compute dtype of the projections (``None``: float32 or wider); the recurrence
        runs in complex64 (or wider).

    Returns:
      A :class:`gatedcells.Cell` with :class:`LRUParams`, carry ``[*B, 2N]`` and gates
      :class:`LRUGates`.

    Raises:
      ValueError: a non-positive size, a ring outside ``[0, 1]``, a non-positive
        ``max_phase``, an unknown ``method``; at ``init``, an input size other than ``H``
        without ``input_proj``.

    Examples:
      >>> import jax, jax.numpy as jnp, gatedcells as gc
      >>> cell = gc.lru(8, state_size=16, r_min=0.9, r_max=0.999)
      >>> params = cell.init(jax.random.key(0), 8)
      >>> radius = jnp.exp(-jnp.exp(params.nu_log))
      >>> bool((radius >= 0.9).all() & (radius <= 0.999).all()), gc.count_params(params)
      (True, 568)
      >>> h, ys = gc.unroll(cell, params, jnp.ones((2, 50, 8)))
      >>> ys.shape, h.shape
      ((2, 50, 8), (2, 32))

    References:
      Orvieto, Smith, Gu, Fernando, Gulcehre, Pascanu & De, "Resurrecting Recurrent Neural
      Networks for Long Sequences", ICML 2023 (Appendix A).
    """
    H = _checks.check_positive_int("hidden_size", hidden_size)
    N = H if state_size is None else _checks.check_positive_int("state_size", state_size)
    _checks.check_factory_args(numbers={"r_min": r_min, "r_max": r_max, "max_phase": max_phase})
    options = (input_proj, method, chunk_size, kernel_init, param_dtype, dtype)
    options = _diagonal.checked_options(*options)
    if not 0 <= r_min < r_max <= 1:
        raise ValueError(f"need 0 <= r_min < r_max <= 1, got r_min={r_min}, r_max={r_max}")
    if max_phase <= 0:
        raise ValueError(f"max_phase must be positive, got {max_phase!r}")
    flags = {"state_size": N} if N != H else {}
    flags |= {"input_proj": True} if input_proj else {}
    name = _blocks.describe("lru", H, flags)
    spec = LRUSpec(name, H, N, r_min, r_max, max_phase, *options)
    return _anatomy.assemble(spec, init, project, update, scan=scan, carry=2 * N, shapes=shapes)
