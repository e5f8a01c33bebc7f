"""The Real-Gated Linear Recurrent Unit of Griffin and Hawk (De et al. 2024)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from .. import _checks
from .._cell import Array, Cell
from ..sequence import _linear
from . import _anatomy, _blocks, _diagonal


class RGLRUParams(NamedTuple):
    """RG-LRU weights; the gates are block-diagonal, one ``[D, D]`` block per head
    (``D = H / num_heads``), as recurrentgemma's ``BlockDiagonalLinear`` stores them.

    Attributes:
      w_x: ``[I, H]``, the input projection (``input_proj=True`` only; ``None`` otherwise).
      b_x: ``[H]``, its bias (likewise).
      w_a: ``[NH, D, D]``, the recurrence gate's blocks (recurrentgemma's ``a_gate.w``).
      b_a: ``[H]``, its bias (``a_gate.b`` flattened).
      w_i: ``[NH, D, D]``, the input gate's blocks (``input_gate.w``).
      b_i: ``[H]``, its bias (``input_gate.b`` flattened).
      lam: ``[H]``, :math:`\\Lambda` (recurrentgemma's ``a_param``):
        :math:`\\log a = -c\\, r \\operatorname{softplus}(\\Lambda)`.
    """

    w_x: Array | None
    b_x: Array | None
    w_a: Array
    b_a: Array
    w_i: Array
    b_i: Array
    lam: Array


class RGLRUGates(NamedTuple):
    """RG-LRU gate activations of one step, each ``[*B, H]``: the recurrence gate ``r``, the
    input gate ``i`` and the decay ``a`` they give (0 at a segment start)."""

    r: Array
    i: Array
    a: Array


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def sqrt_bound_derivative(x: Array, max_gradient: float) -> Array:
    """``sqrt(x)`` whose derivative is clipped at ``max_gradient`` (near ``x = 0``), as in
    recurrentgemma: without it ``sqrt(1 - a^2)`` gives NaN gradients in bfloat16 as
    ``a -> 1``. (recurrentgemma's is a ``custom_vjp``; the same derivative as a
    ``custom_jvp`` also serves forward mode.)"""
    return jnp.sqrt(x)


@sqrt_bound_derivative.defjvp
def _sqrt_jvp(max_gradient, primals, tangents):
    (x,), (dx,) = primals, tangents
    floor = jnp.asarray(1 / (4 * max_gradient**2), x.dtype)
    return jnp.sqrt(x), dx * 0.5 / jnp.sqrt(jnp.maximum(x, floor))


class RGLRUSpec(NamedTuple):
    """The static flags of an RG-LRU (:func:`rg_lru`); ``resets`` adds a last input channel."""

    name: str
    hidden_size: int
    num_heads: int
    c: float
    min_rad: float
    max_rad: float
    resets: bool
    gate_init: Callable
    input_proj: bool
    method: str | None
    chunk_size: int
    kernel_init: Callable
    param_dtype: Any
    dtype: Any


def shapes(spec: RGLRUSpec) -> dict[str, tuple]:
    """The shapes of :class:`RGLRUParams`' fields (``None``: the input size)."""
    H, NH = spec.hidden_size, spec.num_heads
    D = H // NH
    fields = {"w_a": (NH, D, D), "b_a": (H,), "w_i": (NH, D, D), "b_i": (H,), "lam": (H,)}
    return _diagonal.input_shapes(spec.input_proj, H) | fields


def init(spec: RGLRUSpec, key: Array, input_size: int) -> RGLRUParams:
    """recurrentgemma's initialisation: :math:`e^{-\\operatorname{softplus}(\\Lambda)}` uniform
    by area on the ring ``[min_rad, max_rad]``, zero gate biases."""
    H, dtype = spec.hidden_size, spec.param_dtype
    channels = input_size - spec.resets
    _diagonal.check_channels(spec.name, channels, H, spec.input_proj)
    kx, ka, ki, kl = jax.random.split(key, 4)
    unif = jax.random.uniform(kl, (H,))
    min_rad, max_rad = spec.min_rad, spec.max_rad
    log_rad = 0.5 * jnp.log(unif * (max_rad**2 - min_rad**2) + min_rad**2 + 1e-8)
    lam = jnp.log(jnp.expm1(-log_rad))  # softplus(lam) = -log_rad
    zeros = jnp.zeros((H,), dtype)
    inputs = _diagonal.input_weights(spec.kernel_init, kx, channels, H, spec.input_proj, dtype)
    w_a, w_i = (gate_blocks(spec, k) for k in (ka, ki))
    return RGLRUParams(*inputs.values(), w_a, zeros, w_i, zeros, lam.astype(dtype))


def gate_blocks(spec: RGLRUSpec, key: Array) -> Array:
    """A gate's ``[NH, D, D]`` blocks, each drawn by ``gate_init``."""
    D, keys = spec.hidden_size // spec.num_heads, jax.random.split(key, spec.num_heads)
    return jnp.stack(
        [_blocks.init_param(spec.gate_init, k, (D, D), spec.param_dtype) for k in keys]
    )


def project(spec: RGLRUSpec, params: RGLRUParams, xs: Array) -> Array:
    """``[x, W_a x + b_a, W_x x + b_x (, flag)]`` ``[..., 3H (+ 1)]``: the input ``x [..., H]``
    (projected with ``input_proj``) and the pre-activations of the recurrence and input gates
    (and the segment-start flag with ``resets``)."""
    x = _diagonal.project_input(params, xs[..., : xs.shape[-1] - spec.resets], spec.dtype)
    r_pre = block_diagonal(x, params.w_a, params.b_a)
    i_pre = block_diagonal(x, params.w_i, params.b_i)
    flag = [xs[..., -1:].astype(x.dtype)] if spec.resets else []
    return jnp.concatenate([x, r_pre, i_pre, *flag], axis=-1)


def update(
    spec: RGLRUSpec, params: RGLRUParams, h: Array, x_proj: Array
) -> tuple[Array, Array, RGLRUGates]:
    """One RG-LRU step: :math:`h' = a \\odot h + \\sqrt{1 - a^2} \\odot (i \\odot x)`."""
    x_proj = x_proj.astype(_blocks.wide(h.dtype))
    reset = x_proj[..., -1] > 0.5 if spec.resets else None
    log_a, b, gates = coefficients(spec, params, x_proj[..., : 3 * h.shape[-1]], reset)
    h_new = gates.a * h.astype(b.dtype) + b
    gates = jax.tree.map(lambda g: g.astype(h.dtype), gates)
    return h_new.astype(h.dtype), h_new.astype(h.dtype), gates


def scan(spec, params, carry, xs, *, valid, reverse, unroll, grad, remat):
    """The whole sequence: one projection, then one :func:`gatedcells.linear_recurrence` of
    :math:`h' = a h + b`; with ``resets``, segment starts read in ``reverse`` too."""
    del remat  # the recurrence keeps its states: nothing to recompute
    x_proj = project(spec, params, xs)
    starts = None
    if spec.resets:
        starts = _linear.reset_flags(x_proj[..., -1] > 0.5, valid, reverse)
    log_a, b, _ = coefficients(spec, params, x_proj[..., : 3 * spec.hidden_size], starts)
    method, options = _linear.check_method(spec.method), {"unroll": unroll, "grad": grad}
    options |= {"valid": valid, "reverse": reverse, "resets": starts}
    return _linear.linear_scan(
        log_a, b, carry, method=method, chunk_size=spec.chunk_size, **options
    )


def coefficients(
    spec: RGLRUSpec, params: RGLRUParams, x_proj: Array, reset: Array | None
) -> tuple[Array, Array, RGLRUGates]:
    """``(log a, b, gates)`` of the RG-LRU's recurrence ``h' = a h + b``. See :func:`rg_lru`.

    ``x_proj [..., 3H]`` holds ``(x, r, i)`` before their sigmoids; ``reset [...]`` (or
    ``None``) marks segment starts, where ``a = 0`` and the input is not normalised."""
    with jax.named_scope("gatedcells.rg_lru"):
        x, r_pre, i_pre = jnp.split(x_proj, 3, axis=-1)
        r, i = jax.nn.sigmoid(r_pre), jax.nn.sigmoid(i_pre)
        log_a = -spec.c * r * _blocks.along_last(jax.nn.softplus(params.lam), r)
        scale = sqrt_bound_derivative(-jnp.expm1(2 * log_a), 1000.0)  # sqrt(1 - a^2)
        a = jnp.exp(log_a)
        if reset is not None:
            scale = jnp.where(reset[..., None], jnp.ones_like(scale), scale)
            a = jnp.where(reset[..., None], jnp.zeros_like(a), a)
    return log_a, scale * (i * x), RGLRUGates(r, i, a)


def block_diagonal(x: Array, w: Array, b: Array) -> Array:
    """``x [..., H]`` through the blocks ``w [NH, D, D]`` (one per head) plus ``b [H]``."""
    heads, d = w.shape[0], w.shape[-1]
    y = jnp.einsum("...hi,hij->...hj", x.reshape(*x.shape[:-1], heads, d), w.astype(x.dtype))
    return y.reshape(x.shape) + _blocks.along_last(b, x)


def rg_lru(
    hidden_size: int,
    *,
    num_heads: int = 1,
    c: float = 8.0,
    min_rad: float = 0.9,
    max_rad: float = 0.999,
    resets: bool = False,
    input_proj: bool = False,
    method: str | None = None,
    chunk_size: int = _linear.CHUNK_SIZE,
    kernel_init: Callable = jax.nn.initializers.lecun_normal(),
    gate_init: Callable = jax.nn.initializers.lecun_normal(),
    param_dtype: Any = jnp.float32,
    dtype: Any = None,
) -> Cell:
    r"""The Real-Gated Linear Recurrent Unit (De et al. 2024), the recurrence of Griffin/Hawk.

    .. math::

       r_t &= \sigma(W_a x_t + b_a) \qquad i_t = \sigma(W_x x_t + b_x) \\
       \log a_t &= -c\, r_t \odot \operatorname{softplus}(\Lambda) \\
       h_t &= a_t \odot h_{t-1} + \sqrt{1 - a_t^2} \odot (i_t \odot x_t)

    The recurrence gate ``r`` and the input gate ``i`` read only the input, through
    block-diagonal weights (one ``[D, D]`` block per head, ``D = H / num_heads``), so the
    recurrence is linear in ``h`` and :func:`gatedcells.unroll` runs it as one
    :func:`gatedcells.linear_recurrence` (``method``) after the projections. The output is
    ``h``. :math:`\Lambda` starts so that :math:`a^{1/c r} = e^{-\operatorname{softplus}
    (\Lambda)}` lies uniformly by area on the ring ``[min_rad, max_rad]`` (``[0.9, 0.999]``,
    as recurrentgemma). The square root's derivative is clipped at 1000 (recurrentgemma's
    ``sqrt_bound_derivative``, against NaNs in bfloat16), and the recurrence accumulates in
    float32 whatever the params' dtype.

    ``resets=True`` packs several sequences in one row: the input gains a last channel, the
    flag ``x[..., I] > 0.5`` marking the first step of a segment (recurrentgemma's
    ``segment_pos == 0``), where :math:`h_t = i_t \odot x_t` (``a = 0``, no normalisation);
    with ``reverse=True`` each segment is read backwards from its last step: the step
    before a flagged one, and each row's last valid step (a reverse run starts a segment
    there, not reading the carry), so packed rows give the results of separate runs in both
    directions and ``bidirectional`` layers read packed rows correctly.

    The layer maps ``H`` channels to ``H``: its input must have ``I = H``, or
    ``input_proj=True`` first projects it, :math:`x = u W_x + b_x` (the linear layer of
    Griffin's recurrent block). With ``input_proj=False`` the params map one-to-one to
    recurrentgemma's ``RGLRU`` layer (``tests/fixtures/make_rglru_golden.py``); it treats
    every ``segment_pos == 0``, the first token of a sequence included, as a segment start,
    so reproducing it takes ``resets=True`` and that flag (docs/cells/linear.md, "Porting
    from Griffin").

    Parameter count: ``2*(H*H/num_heads + H) + H``, plus ``I*H + H`` with ``input_proj``.

    Args:
      hidden_size: ``H``, the channels (the RG-LRU's width).
      num_heads: the number of diagonal blocks of the gates; it must divide ``H``.
      c: the constant :math:`c` (8 in the paper).
      min_rad, max_rad: the ring of :math:`e^{-\operatorname{softplus}(\Lambda)}` at init.
      resets: read a segment-start flag as the input's last channel.
      input_proj, method, chunk_size, kernel_init, param_dtype: as :func:`gatedcells.lru`'s.
      gate_init: initializer of each ``[D, D]`` block of ``w_a`` and ``w_i``.
      dtype: compute dtype of the input projection (``None``: the params' dtype).

    Returns:
      A :class:`gatedcells.Cell` with :class:`RGLRUParams`, carry ``h [*B, H]`` and gates
      :class:`RGLRUGates`.

    Raises:
      ValueError: a non-positive size, ``num_heads`` not dividing ``H``, a non-positive
        ``c``, a ring outside ``(0, 1)``, an unknown ``method``; at ``init``, an input size
        other than ``H`` without ``input_proj``.

    Examples:
      >>> import jax, jax.numpy as jnp, gatedcells as gc
      >>> cell = gc.rg_lru(8, num_heads=2)
      >>> params = cell.init(jax.random.key(0), 8)
      >>> params.w_a.shape, gc.count_params(params)
      ((2, 4, 4), 88)
      >>> a = jnp.exp(-jax.nn.softplus(params.lam))
      >>> bool((a >= 0.9).all() & (a <= 0.999).all())
      True
      >>> h, ys = gc.unroll(cell, params, jnp.ones((2, 50, 8)))
      >>> ys.shape, bool(jnp.allclose(h, ys[:, -1]))
      ((2, 50, 8), True)

    References:
      De, Smith, Fernando, Botev, Cristian-Muraru, Gu, Haroun, Berrada, Chen, Srinivasan,
      Desjardins, Doucet, Budden, Teh, Pascanu, de Freitas & Gulcehre, "Griffin: Mixing
      Gated Linear Recurrences with Local Attention for Efficient Language Models", 2024.
      ``google-deepmind/recurrentgemma``, ``recurrentgemma/jax/layers.py`` (``RGLRU``).
    """
    H = _checks.check_positive_int("hidden_size", hidden_size)
    NH = _checks.check_heads(num_heads, H)
    numbers = {"c": c, "min_rad": min_rad, "max_rad": max_rad}
    _checks.check_factory_args(numbers=numbers, functions={"gate_init": gate_init})
    options = (input_proj, method, chunk_size, kernel_init, param_dtype, dtype)
    options = _diagonal.checked_options(*options)
    if c <= 0:
        raise ValueError(f"c must be positive, got {c!r}")
    if not 0 < min_rad < max_rad < 1:
        raise ValueError(f"need 0 < min_rad < max_rad < 1, got {min_rad=}, {max_rad=}")
    _checks.check_flag("resets", resets)
    flags = {"num_heads": NH} if NH != 1 else {}
    flags |= {"c": c} if c != 8.0 else {}
    flags |= {"resets": True} if resets else {}
    flags |= {"input_proj": True} if input_proj else {}
    name = _blocks.describe("rg_lru", H, flags)
    spec = RGLRUSpec(name, H, NH, c, min_rad, max_rad, resets, gate_init, *options)
    return _anatomy.assemble(
        spec, init, project, update, scan=scan, shapes=shapes, extra=int(resets)
    )
