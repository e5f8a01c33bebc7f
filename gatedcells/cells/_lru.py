"""The Linear Recurrent Unit of Orvieto et al. (2023): a complex diagonal linear recurrence,
and the plumbing the gated linear cells (LRU, RG-LRU, selective SSM) share: the optional
input projection to ``H`` channels, the carry of a complex state, the engine call."""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from .. import _cell, _checks
from .._cell import Array, Cell
from ..sequence import _linear
from . import _blocks


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


def lru_update(params: LRUParams, carry: Array, x_proj: Array) -> tuple[Array, Array, LRUGates]:
    """One LRU step. See :func:`lru`. ``carry [*B, 2N]``: the real then imaginary parts."""
    with jax.named_scope("gatedcells.lru"):
        u, bu = lru_inputs(params, x_proj.astype(wide(carry.dtype)))
        state = to_complex(carry.astype(u.dtype))
        x = _blocks.along_last(lru_decay(params), state) * state + bu
        y = lru_readout(params, x, u)
        gates = LRUGates(jnp.broadcast_to(jnp.abs(lru_decay(params)), x.shape).astype(carry.dtype))
    return to_real(x).astype(carry.dtype), y.astype(carry.dtype), gates


def lru_decay(params: LRUParams) -> Array:
    """:math:`\\lambda = \\exp(-e^{\\nu} + i e^{\\theta})` ``[N]``."""
    return jnp.exp(lru_log_decay(params))


def lru_log_decay(params: LRUParams) -> Array:
    nu, theta = params.nu_log.astype(wide(params.nu_log.dtype)), params.theta_log
    theta = theta.astype(nu.dtype)
    return jax.lax.complex(-jnp.exp(nu), jnp.exp(theta))


def lru_inputs(params: LRUParams, x_proj: Array) -> tuple[Array, Array]:
    """``(u [..., H], B_norm u [..., N] complex)`` from the projection ``[..., H + 2N]``."""
    H = params.d.shape[-1]
    u, bu_re, bu_im = jnp.split(x_proj, [H, H + params.nu_log.shape[-1]], axis=-1)
    return u, jax.lax.complex(bu_re, bu_im)


def lru_readout(params: LRUParams, x: Array, u: Array) -> Array:
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
    _checks.check_factory_args(
        numbers={"r_min": r_min, "r_max": r_max, "max_phase": max_phase},
        functions={"kernel_init": kernel_init},
        dtypes={"param_dtype": param_dtype, "dtype": dtype},
    )
    if not 0 <= r_min < r_max <= 1:
        raise ValueError(f"need 0 <= r_min < r_max <= 1, got r_min={r_min}, r_max={r_max}")
    if max_phase <= 0:
        raise ValueError(f"max_phase must be positive, got {max_phase!r}")
    _checks.check_flag("input_proj", input_proj)
    method = None if method is None else _linear.check_method(method)
    chunk_size = _linear.check_chunk_size(chunk_size)

    def init(key: Array, input_size: int) -> LRUParams:
        check_channels(name, input_size, H, input_proj)
        k = jax.random.split(key, 8)
        u1 = jax.random.uniform(k[0], (N,))
        u2 = jax.random.uniform(k[1], (N,))
        nu_log = jnp.log(-0.5 * jnp.log(u1 * (r_max**2 - r_min**2) + r_min**2))
        theta_log = jnp.log(max_phase * u2)
        radius = jnp.exp(-jnp.exp(nu_log))
        gamma_log = jnp.log(jnp.sqrt(1 - radius**2))
        normal = lambda key, shape, scale: scale * jax.random.normal(key, shape)  # noqa: E731
        fields = dict(
            nu_log=nu_log, theta_log=theta_log, gamma_log=gamma_log,
            b_re=normal(k[2], (H, N), 1 / math.sqrt(2 * H)),
            b_im=normal(k[3], (H, N), 1 / math.sqrt(2 * H)),
            c_re=normal(k[4], (N, H), 1 / math.sqrt(N)),
            c_im=normal(k[5], (N, H), 1 / math.sqrt(N)),
            d=jax.random.normal(k[6], (H,)),
        )  # fmt: skip
        fields = {f: v.astype(param_dtype) for f, v in fields.items()}
        return LRUParams(**input_weights(kernel_init, k[7], input_size, H, input_proj,
                                         param_dtype), **fields)  # fmt: skip

    shapes = {"nu_log": (N,), "theta_log": (N,), "gamma_log": (N,), "b_re": (H, N),
              "b_im": (H, N), "c_re": (N, H), "c_im": (N, H), "d": (H,)}  # fmt: skip
    flags = {"state_size": N} if N != H else {}
    flags |= {"input_proj": True} if input_proj else {}
    name = _blocks.describe("lru", H, flags)

    def project(params: LRUParams, xs: Array) -> Array:
        u = project_input(params, xs, dtype)
        bu_re = _cell.matmul(u, params.b_re, dtype).astype(u.dtype)
        bu_im = _cell.matmul(u, params.b_im, dtype).astype(u.dtype)
        g = _blocks.along_last(jnp.exp(params.gamma_log), bu_re)
        bu_re, bu_im = bu_re * g, bu_im * g
        return jnp.concatenate([u, bu_re, bu_im], axis=-1)

    def scan(params, carry, xs, *, valid, reverse, unroll, grad, **_):
        u, bu = lru_inputs(params, project(params, xs).astype(wide(carry.dtype)))
        h, hs = _linear.linear_scan(
            lru_log_decay(params), bu, to_complex(carry.astype(u.dtype)), valid=valid,
            reverse=reverse, method=_linear.check_method(method), unroll=unroll, grad=grad,
            chunk_size=chunk_size,
        )  # fmt: skip
        ys = mask_outputs(valid, lru_readout(params, hs, u))
        return to_real(h).astype(carry.dtype), ys.astype(carry.dtype)

    cell = Cell(
        init_fn=init,
        carry_fn=_blocks.zeros_carry(2 * N, param_dtype),
        project=project,
        update=lru_update,
        check_params=functools.partial(check_params, name, shapes, H, input_proj),
        output_size=H,
        name=name,
    )
    return dataclasses.replace(cell, scan=scan)


# --------------------------------------------------------------------------------------
# Shared by the gated linear cells (lru, rg_lru, selective_ssm).


def check_channels(name: str, input_size: int, hidden_size: int, input_proj: bool) -> None:
    """A layer of ``H`` channels reads inputs of size ``H`` unless it projects them."""
    if not input_proj and input_size != hidden_size:
        raise ValueError(
            f"{name} reads inputs of size hidden_size={hidden_size} (one per channel), got "
            f"input_size={input_size}: build it with input_proj=True to project them first"
        )


def input_weights(init: Callable, key: Array, input_size: int, H: int, input_proj: bool,
                  dtype: Any) -> dict[str, Array | None]:  # fmt: skip
    """``{"w_x": [I, H], "b_x": [H]}`` with ``input_proj``, else both ``None``."""
    if not input_proj:
        return {"w_x": None, "b_x": None}
    return {"w_x": _blocks.init_param(init, key, (input_size, H), dtype),
            "b_x": jnp.zeros((H,), dtype)}  # fmt: skip


def project_input(params: Any, xs: Array, dtype: Any) -> Array:
    """``xs @ w_x + b_x`` (or ``xs``), ``[..., H]``, in float32 or wider."""
    if params.w_x is None:
        return xs.astype(wide(xs.dtype))
    out = _cell.matmul(xs, params.w_x, dtype)
    out = out + _blocks.along_last(params.b_x, out)
    return out.astype(wide(out.dtype))


def check_params(name: str, shapes: dict, H: int, input_proj: bool, params: Any) -> int:
    """The fields of ``shapes`` (and ``w_x``, ``b_x`` with ``input_proj``); return ``I``."""
    if input_proj:
        return _checks.check_param_shapes(name, params, {"w_x": (None, H), "b_x": (H,)} | shapes)
    _checks.check_param_shapes(name, params, shapes)
    _checks.check_absent(name, params, ("w_x", "b_x"))
    return H


def wide(dtype: Any) -> Any:
    """float32 (or wider): the dtype the gated linear cells compute in."""
    return dtype if jnp.finfo(dtype).bits >= 32 else jnp.float32


def to_complex(carry: Array) -> Array:
    """``[*B, 2N]`` real then imaginary parts -> ``[*B, N]`` complex."""
    re, im = jnp.split(carry, 2, axis=-1)
    return jax.lax.complex(re, im)


def to_real(x: Array) -> Array:
    """``[*B, N]`` complex -> ``[*B, 2N]``, the real then the imaginary parts."""
    return jnp.concatenate([x.real, x.imag], axis=-1)


def mask_outputs(valid: Array | None, ys: Array) -> Array:
    """``ys [T, *B, O]`` with zeros at the invalid steps."""
    if valid is None:
        return ys
    return jnp.where(valid[..., None], ys, jnp.zeros_like(ys))
