"""The diagonal linear recurrence ``h_t = a_t * h_{t-1} + b_t``, sequential or parallel.

Two paths compute the same recurrence (to float tolerance):

- ``"sequential"``: ``jax.lax.scan``, ``T`` dependent steps of two flops per unit. The
  default on CPU, where it is the fastest (see :func:`default_method`).
- ``"associative"``: ``jax.lax.associative_scan`` in log space, ``O(log T)`` depth, as Feng
  et al. (2024) train minGRU and minLSTM. The default on GPU and TPU.

The log-space path keeps ``log a`` (never forming products of many ``a``) and splits ``b``
and ``h_0`` into positive and negative parts, each a positive linear recurrence whose
logarithm composes with ``logaddexp``; ``h = exp(P) - exp(N)``. It needs ``a > 0`` only,
which is why the recurrence takes ``log a``. The two parts travel as one stacked array, which
halves the compile time of the unrolled tree of ``associative_scan`` (about 5 s forward and
10 s with its gradient at ``T = 4096`` on a 2-core CPU; the sequential path compiles in
well under a second).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from .. import _checks
from .._cell import Array
from ._masks import valid_mask

METHODS = ("sequential", "associative")


def default_method() -> str:
    """The faster path on the default backend: ``"sequential"`` on CPU, else ``"associative"``.

    Measured with ``python benchmarks/linear_recurrence.py`` (B=8, T=4096, H=128, float32):
    on this project's 2-core CPU the associative scan is several times slower than the
    sequential one (it pays ``O(T log T)`` work for a depth two cores cannot use); on an
    NVIDIA H200 it took 0.33 ms forward+backward against 136 ms sequentially.
    """
    return "sequential" if jax.default_backend() == "cpu" else "associative"


def check_method(method: str | None) -> str:
    if method is None:
        return default_method()
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS} or None (per backend), got {method!r}")
    return method


def linear_recurrence(
    log_a: Array,
    b: Array,
    h0: Array | None = None,
    *,
    lengths: Array | None = None,
    reverse: bool = False,
    time_major: bool = False,
    method: str | None = None,
) -> tuple[Array, Array]:
    r"""The diagonal linear recurrence :math:`h_t = a_t \odot h_{t-1} + b_t`, all ``t`` at once.

    .. math::

       h_t = e^{\log a_t} \odot h_{t-1} + b_t, \qquad a_t > 0

    The recurrence of the minimal gated cells (:func:`gatedcells.min_gru`,
    :func:`gatedcells.min_lstm`), whose gates read only the input. ``method="sequential"`` runs
    ``jax.lax.scan``; ``method="associative"`` runs ``jax.lax.associative_scan`` on the pairs
    :math:`(\log a, \log b)` composed by
    :math:`(\alpha_1, \beta_1) \circ (\alpha_2, \beta_2) = (\alpha_1 + \alpha_2,
    \mathrm{logaddexp}(\beta_1 + \alpha_2, \beta_2))`, with the positive and negative parts of
    ``b`` and ``h0`` carried separately, so any sign works and nothing overflows over long
    sequences (checked to ``T = 100000``). The two paths agree to float tolerance, gradients
    included. Computation of the associative path is in at least float32.

    ``lengths``, ``reverse`` and the layout follow :func:`gatedcells.unroll`: the state stops
    changing after each sequence's end (the returned state is the one at its last valid step),
    outputs past the end are zero, and ``reverse=True`` runs each sequence backwards from its
    last valid step.

    Args:
      log_a: ``[*B, T, H]`` (or ``[T, *B, H]`` with ``time_major``): the logarithm of the
        decay ``a_t`` (any real; ``a = exp(log_a) > 0``).
      b: the input ``b_t``, same shape.
      h0: the initial state ``[*B, H]`` (default zeros).
      lengths: integer ``[*B]``, valid lengths of right-padded sequences.
      reverse: run from the last step to the first.
      time_major: the layout of ``log_a``, ``b`` and the outputs.
      method: ``"sequential"``, ``"associative"`` or ``None`` (:func:`default_method`: the
        measured faster path of the default backend).

    Returns:
      ``(h_last, hs)``: the final state ``[*B, H]`` and every state, in the layout of ``b``.

    Raises:
      ValueError: ``log_a`` and ``b`` of different shapes, an ``h0`` or ``lengths`` that does
        not match, or an unknown ``method``.

    Examples:
      >>> import jax.numpy as jnp, gatedcells as gc
      >>> log_a = jnp.log(jnp.full((2, 5, 3), 0.5))
      >>> h, hs = gc.linear_recurrence(log_a, jnp.ones((2, 5, 3)), method="sequential")
      >>> [round(float(v), 4) for v in hs[0, :, 0]]   # 1, 1.5, 1.75, ...
      [1.0, 1.5, 1.75, 1.875, 1.9375]

    References:
      Feng, Tung, Ahmed, Bengio & Hajimirsadeghi, "Were RNNs All We Needed?", 2024.
      Blelloch, "Prefix Sums and Their Applications", 1990.
      Heinsen, "Efficient Parallelization of a Ubiquitous Sequential Computation", 2023.
    """
    method = check_method(method)
    log_a = _checks.check_float_array("log_a", log_a)
    b = _checks.check_float_array("b", b)
    if log_a.shape != b.shape or b.ndim < 2:
        raise ValueError(
            f"log_a and b must have the same shape [*B, T, H] (or [T, *B, H]), got "
            f"{tuple(log_a.shape)} and {tuple(b.shape)}"
        )
    if not time_major:
        log_a, b = jnp.moveaxis(log_a, -2, 0), jnp.moveaxis(b, -2, 0)
    steps, batch_shape = b.shape[0], tuple(b.shape[1:-1])
    if h0 is None:
        h0 = jnp.zeros(b.shape[1:], b.dtype)
    h0 = _checks.check_float_array("h0", h0)
    if tuple(h0.shape) != tuple(b.shape[1:]):
        raise ValueError(f"h0 must have shape [*B, H]={tuple(b.shape[1:])}, got {tuple(h0.shape)}")
    valid = None if lengths is None else valid_mask(lengths, steps, batch_shape)
    h, hs = linear_scan(log_a, b, h0, valid=valid, reverse=reverse, method=method)
    return h, (hs if time_major else jnp.moveaxis(hs, 0, -2))


def linear_scan(
    log_a: Array,
    b: Array,
    h0: Array,
    *,
    valid: Array | None = None,
    reverse: bool = False,
    method: str = "sequential",
    unroll: int | bool = 1,
    grad: str = "auto",
) -> tuple[Array, Array]:
    """The time-major driver of :func:`linear_recurrence`, without its checks.

    Args:
      log_a, b: ``[T, *B, H]``. h0: ``[*B, H]``. valid: boolean ``[T, *B]`` or ``None``.
      grad: ``"auto"``: the gradient is the adjoint recurrence, run by the same ``method``;
        ``"autodiff"``: plain autodiff (needed for forward mode).

    Returns:
      ``(h_last, hs [T, *B, H])`` in ``h0``'s dtype; outputs at invalid steps are zero.
    """
    dtype = h0.dtype
    if b.shape[0] == 0:
        return h0, jnp.zeros(b.shape, dtype)
    log_a, b = log_a.astype(dtype), b.astype(dtype)
    if valid is not None:  # an invalid step leaves the state alone: a = 1, b = 0
        keep = valid[..., None]
        log_a = jnp.where(keep, log_a, jnp.zeros_like(log_a))
        b = jnp.where(keep, b, jnp.zeros_like(b))
    if reverse:
        log_a, b = log_a[::-1], b[::-1]
    run = _recurrence if grad == "auto" else _forward
    hs = run(method, unroll, log_a, b, h0)
    if reverse:
        hs = hs[::-1]
    h_last = hs[0] if reverse else hs[-1]
    if valid is not None:
        hs = jnp.where(valid[..., None], hs, jnp.zeros_like(hs))
    return h_last, hs


def _forward(method: str, unroll, log_a: Array, b: Array, h0: Array) -> Array:
    """Every ``h_t`` of ``h_t = exp(log_a_t) * h_{t-1} + b_t`` from ``h_{-1} = h0``."""
    with jax.named_scope("gatedcells.linear_recurrence"):
        if method == "sequential":
            return _sequential(log_a, b, h0, unroll)
        return _associative(log_a, b, h0)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _recurrence(method: str, unroll, log_a: Array, b: Array, h0: Array) -> Array:
    """:func:`_forward` whose gradient is its adjoint, another linear recurrence run
    backwards by the same method: ``g_t = dL/dh_t + a_{t+1} g_{t+1}``. Autodiff through the
    associative scan's tree costs twice the compile time and memory."""
    return _forward(method, unroll, log_a, b, h0)


def _recurrence_fwd(method, unroll, log_a, b, h0):
    hs = _forward(method, unroll, log_a, b, h0)
    return hs, (log_a, hs, h0)


def _recurrence_bwd(method, unroll, residuals, d_hs):
    log_a, hs, h0 = residuals
    # g_t = d_hs_t + a_{t+1} g_{t+1}: the same recurrence, time reversed, a shifted by one
    log_a_next = jnp.concatenate([log_a[1:], jnp.zeros_like(log_a[:1])], axis=0)
    g = _forward(method, unroll, log_a_next[::-1], d_hs[::-1], jnp.zeros_like(h0))[::-1]
    h_prev = jnp.concatenate([h0[None], hs[:-1]], axis=0)
    d_log_a = g * jnp.exp(log_a) * h_prev  # dh_t / dlog a_t = a_t h_{t-1}
    return d_log_a, g, jnp.exp(log_a[0]) * g[0]


_recurrence.defvjp(_recurrence_fwd, _recurrence_bwd)


def _sequential(log_a: Array, b: Array, h0: Array, unroll) -> Array:
    def body(h, inputs):
        a_t, b_t = inputs
        h = a_t * h + b_t
        return h, h

    _, hs = jax.lax.scan(body, h0, (jnp.exp(log_a), b), unroll=unroll)
    return hs


def _associative(log_a: Array, b: Array, h0: Array) -> Array:
    dtype = h0.dtype
    wide = dtype if jnp.finfo(dtype).bits >= 32 else jnp.float32
    log_a, b, h0 = log_a.astype(wide), b.astype(wide), h0.astype(wide)
    # h_0 enters through the first step: b_1 <- a_1 * h_0 + b_1
    b = b.at[0].add(jnp.exp(log_a[0]) * h0)
    log_b = jnp.stack([_log_or_floor(b), _log_or_floor(-b)], axis=1)  # [T, 2, *B, H]
    _, log_h = jax.lax.associative_scan(_compose, (log_a, log_b), axis=0)
    return (jnp.exp(log_h[:, 0]) - jnp.exp(log_h[:, 1])).astype(dtype)


def _compose(earlier, later):
    """``(log a, [log b+, log b-])`` of two consecutive segments composed into one."""
    la1, lb1 = earlier
    la2, lb2 = later
    return la1 + la2, _logaddexp(lb1 + la2[:, None], lb2)


# log(0): a finite floor instead of -inf keeps every gradient finite (exp(_LOG_ZERO) == 0).
_LOG_ZERO = -1e30


def _log_or_floor(v: Array) -> Array:
    """``log(v)`` where ``v > 0``, ``_LOG_ZERO`` elsewhere (with zero gradient there)."""
    pos = v > 0
    return jnp.where(pos, jnp.log(jnp.where(pos, v, jnp.ones_like(v))), _LOG_ZERO)


def _logaddexp(x: Array, y: Array) -> Array:
    """``log(exp(x) + exp(y))`` for finite ``x``, ``y``: one ``exp`` and one ``log1p``."""
    return jnp.maximum(x, y) + jnp.log1p(jnp.exp(-jnp.abs(x - y)))
