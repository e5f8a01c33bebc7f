"""The diagonal linear recurrence ``h_t = a_t * h_{t-1} + b_t``, sequential or parallel.

The engine of the gated linear recurrences (minGRU/minLSTM, RG-LRU, LRU, the selective SSM):
``a`` real or complex, a state of any trailing shape (``[*B, H]``, or ``[*B, H, N]`` with a
state axis of size ``N`` per channel), resets at segment starts, and three paths
(:mod:`._linear_paths`) that compute the same recurrence to float tolerance:

- ``"sequential"``: ``jax.lax.scan``, ``T`` dependent steps of two flops per unit. The
  default on CPU, where it is the fastest (see :func:`default_method`).
- ``"associative"``: ``jax.lax.associative_scan``, ``O(log T)`` depth; in log space for real
  ``a`` (as Feng et al. 2024 train minGRU), on the pairs ``(a, b)`` for complex ``a``. The
  default on GPU and TPU.
- ``"chunked"``: a scan over chunks of ``chunk_size`` steps, an associative scan within each.

Each path has the same custom gradient: the adjoint recurrence, run backwards by that path.
The recurrence is computed in float32 (complex64) or wider whatever the inputs' dtype, and
returned in the dtype of ``h0`` (complex when ``log_a`` or ``b`` is).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .. import _checks
from .._cell import Array
from . import _time_shards as shards
from ._linear_scan import CHUNK_SIZE as CHUNK_SIZE
from ._linear_scan import linear_scan as linear_scan
from ._linear_scan import linear_scan_with_readout as linear_scan_with_readout

METHODS = ("sequential", "associative", "chunked")


def default_method() -> str:
    """The faster path on the default backend: ``"sequential"`` on CPU, else ``"associative"``.

    Measured with ``python benchmarks/linear_recurrence.py`` (B=8, T=4096, H=128, float32)
    and ``python benchmarks/linear_cells.py`` (``benchmarks/results/linear-cells-cpu.md``):
    on this project's 2-core CPU the associative scan is 1.3-2.5x slower than the
    sequential one (it pays ``O(T log T)`` work for a depth two cores cannot use), and the
    chunked one is slower for real decays (the RG-LRU's: 2x at T=4096) and within the
    machine's noise for complex ones (the LRU's: 1.09x slower at T=1024, 1.24x faster at
    T=4096); on an NVIDIA H200 the associative scan took 0.33 ms forward+backward against
    136 ms sequentially (minGRU's recurrence; the chunked path is unmeasured there).
    """
    return "sequential" if jax.default_backend() == "cpu" else "associative"


def check_method(method: str | None) -> str:
    if method is None:
        return default_method()
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS} or None (per backend), got {method!r}")
    return method


def check_chunk_size(chunk_size: int) -> int:
    return _checks.check_positive_int("chunk_size", chunk_size)


def linear_recurrence(
    log_a: Array,
    b: Array,
    h0: Array | None = None,
    *,
    resets: Array | None = None,
    lengths: Array | None = None,
    reverse: bool = False,
    time_major: bool = False,
    feature_axes: int = 1,
    method: str | None = None,
    chunk_size: int = CHUNK_SIZE,
    axis_name: str | None = None,
) -> tuple[Array, Array]:
    r"""The diagonal linear recurrence :math:`h_t = a_t \odot h_{t-1} + b_t`, all ``t`` at once.

    .. math::

       h_t = e^{\log a_t} \odot h_{t-1} + b_t

    The recurrence of the gated linear cells (:func:`gatedcells.min_gru`,
    :func:`gatedcells.min_lstm`, :func:`gatedcells.rg_lru`, :func:`gatedcells.lru`,
    :func:`gatedcells.selective_ssm`), whose gates read only the input. ``log_a`` is real
    (:math:`a > 0`) or complex (:math:`a = e^{\log a}` anywhere but 0); ``b`` real or complex.

    ``method="sequential"`` runs ``jax.lax.scan``; ``"associative"`` runs
    ``jax.lax.associative_scan``: for real ``log_a`` on the pairs :math:`(\log a, \log b)`
    composed by :math:`(\alpha_1, \beta_1) \circ (\alpha_2, \beta_2) = (\alpha_1 + \alpha_2,
    \mathrm{logaddexp}(\beta_1 + \alpha_2, \beta_2))`, with the positive and negative parts of
    ``b`` and ``h0`` carried separately, so any sign works and nothing overflows over long
    sequences (checked to ``T = 100000``); for complex ``log_a`` on the pairs :math:`(a, b)`
    composed by :math:`(a_1 a_2, a_2 b_1 + b_2)`. ``"chunked"`` scans over chunks of
    ``chunk_size`` steps, each an associative scan on :math:`(a, b)`. The paths agree to float
    tolerance, gradients included (each path's gradient is the adjoint recurrence
    :math:`g_t = \partial L / \partial h_t + a_{t+1} g_{t+1}` run by the same path). Every
    path takes a symbolic ``T`` (``jax.export``): ``"chunked"`` then pads time to whole
    chunks, and ``"associative"``, whose ``jax.lax.associative_scan`` needs ``T``, runs a
    doubling scan of the same compositions (``ceil(log2 T)`` rounds over the sequence).

    ``resets`` marks segment starts (several sequences packed in one row): the state is
    zeroed before each marked step, :math:`h_t = b_t` there. ``lengths``, ``reverse`` and the
    layout follow :func:`gatedcells.unroll`: the state stops changing after each sequence's
    end (the returned state is the one at its last valid step), outputs past the end are
    zero, and ``reverse=True`` runs each sequence backwards from its last valid step (each
    segment too: backwards, a segment starts at the step before a marked one, and at each
    row's last valid step, so that with ``resets`` a reverse run never reads ``h0``).

    ``axis_name`` runs it sequence-parallel inside ``jax.shard_map``: the arrays are this
    device's block of consecutive time steps of a sequence whose time axis is sharded over
    the mesh axis ``axis_name`` (block ``i`` on the device of index ``i``, as
    ``PartitionSpec(..., axis_name, ...)`` lays it out). Each device scans its block from a
    zero state, the block summaries (the product of the decays and the last state, one
    state's size whatever ``T``) are combined across devices in ``ceil(log2 D)`` rounds of
    ``jax.lax.ppermute``, and each block corrects its states with the state it receives;
    the gradient runs through the same collectives. ``lengths`` count steps of the whole
    sequence, ``h0`` is the state before the first block, and the returned ``h_last`` is
    the state after the last one on every device (replicated over ``axis_name``).

    Args:
      log_a: the logarithm of the decay ``a_t``, ``[*B, T, *F]`` (or ``[T, *B, *F]`` with
        ``time_major``; ``*F`` the ``feature_axes`` trailing axes: ``[H]``, or ``[H, N]``),
        or any shape that broadcasts to ``b`` (a decay constant in time, e.g. ``[H]``).
      b: the input ``b_t``, ``[*B, T, *F]`` (``[T, *B, *F]``).
      h0: the initial state ``[*B, *F]`` (default zeros).
      resets: boolean ``[*B, T]`` (``[T, *B]``), true at the first step of a segment.
      lengths: integer ``[*B]``, valid lengths of right-padded sequences.
      reverse: run from the last step to the first.
      time_major: the layout of ``log_a``, ``b``, ``resets`` and the outputs.
      feature_axes: how many trailing axes of ``b`` follow the time axis (1 or more).
      method: ``"sequential"``, ``"associative"``, ``"chunked"`` or ``None``
        (:func:`default_method`: the measured faster path of the default backend).
      chunk_size: steps per chunk of the ``"chunked"`` path.
      axis_name: the mesh axis the time axis is sharded over, inside ``jax.shard_map``;
        ``None``: the arrays hold the whole sequence.

    Returns:
      ``(h_last, hs)``: the final state ``[*B, *F]`` and every state, in the layout of ``b``.

    Raises:
      ValueError: a ``log_a`` that does not broadcast to ``b``, an ``h0``, ``resets`` or
        ``lengths`` that does not match, an unknown ``method``, or an ``axis_name`` that is
        not an axis of an enclosing ``jax.shard_map``.
      TypeError: arrays that are not floating or complex, an ``axis_name`` not a str.

    Examples:
      >>> import jax.numpy as jnp, gatedcells as gc
      >>> log_a = jnp.log(jnp.full((2, 5, 3), 0.5))
      >>> h, hs = gc.linear_recurrence(log_a, jnp.ones((2, 5, 3)), method="sequential")
      >>> [round(float(v), 4) for v in hs[0, :, 0]]   # 1, 1.5, 1.75, ...
      [1.0, 1.5, 1.75, 1.875, 1.9375]
      >>> starts = jnp.zeros((2, 5), bool).at[:, 3].set(True)   # a second segment at t=3
      >>> h, hs = gc.linear_recurrence(log_a, jnp.ones((2, 5, 3)), resets=starts)
      >>> [round(float(v), 4) for v in hs[0, :, 0]]
      [1.0, 1.5, 1.75, 1.0, 1.5]
      >>> rotation = jnp.full((4, 1), 0.5j * jnp.pi)             # a = i: a quarter turn
      >>> h, hs = gc.linear_recurrence(rotation, jnp.ones((4, 1), jnp.complex64))
      >>> [(round(float(v.real)), round(float(v.imag))) for v in hs[:, 0]]
      [(1, 0), (1, 1), (0, 1), (0, 0)]

    References:
      Feng, Tung, Ahmed, Bengio & Hajimirsadeghi, "Were RNNs All We Needed?", 2024.
      Blelloch, "Prefix Sums and Their Applications", 1990.
      Martin & Cundy, "Parallelizing Linear Recurrent Neural Nets Over Sequence Length",
      ICLR 2018.
      Heinsen, "Efficient Parallelization of a Ubiquitous Sequential Computation", 2023.
    """
    method = check_method(method)
    chunk_size = check_chunk_size(chunk_size)
    feature_axes = _checks.check_positive_int("feature_axes", feature_axes)
    axis_name = shards.check_axis_name(axis_name)
    log_a, b = _check_inexact("log_a", log_a), _check_inexact("b", b)
    if b.ndim < feature_axes + 1:
        raise ValueError(
            f"b must have shape [*B, T, *F] with {feature_axes} feature axes, got {b.shape}"
        )
    try:
        log_a = jnp.broadcast_to(log_a, b.shape)
    except ValueError:
        raise ValueError(
            f"log_a must have the shape of b {tuple(b.shape)} or broadcast to it, got "
            f"{tuple(log_a.shape)}"
        ) from None
    time = b.ndim - feature_axes - 1
    if not time_major:
        log_a, b = jnp.moveaxis(log_a, time, 0), jnp.moveaxis(b, time, 0)
    steps, batch_shape = b.shape[0], tuple(b.shape[1 : b.ndim - feature_axes])
    if h0 is None:
        h0 = jnp.zeros(b.shape[1:], b.dtype)
    h0 = _check_inexact("h0", h0)
    if tuple(h0.shape) != tuple(b.shape[1:]):
        want = "[*B, *F]=" + str(tuple(b.shape[1:]))
        raise ValueError(f"h0 must have shape {want}, got {tuple(h0.shape)}")
    valid = shards.valid_mask(lengths, steps, batch_shape, axis_name)
    if resets is not None:
        want = (steps, *batch_shape)
        if not hasattr(resets, "shape") or tuple(jnp.shape(resets)) != (
            want if time_major else (*batch_shape, steps)
        ):
            layout = "[T, *B]" if time_major else "[*B, T]"
            raise ValueError(
                f"resets must have shape {layout}="
                f"{want if time_major else (*batch_shape, steps)}, got {jnp.shape(resets)}"
            )
        resets = jnp.asarray(resets).astype(bool)
        resets = resets if time_major else jnp.moveaxis(resets, -1, 0)
        resets = reset_flags(resets, valid, reverse, axis_name)
    h, hs = linear_scan(
        log_a,
        b,
        h0,
        valid=valid,
        reverse=reverse,
        method=method,
        resets=resets,
        chunk_size=chunk_size,
        axis_name=axis_name,
    )
    return h, (hs if time_major else jnp.moveaxis(hs, 0, time))


def reset_flags(
    starts: Array, valid: Array | None, reverse: bool, axis_name: str | None = None
) -> Array:
    """Where the state is zeroed before a step, ``[T, *B]``, from the segment ``starts``.

    Forwards, at each start. Backwards each segment is read from its last step: the step
    before a (valid) start, and each row's last valid step, where the backward run begins
    (so that the last segment of a row is read as the others are: packed rows give the
    results of separate runs in both directions). With time sharded (``axis_name``, or a
    cell traced sharded), the step after a block's last is the next block's first."""
    if not reverse:
        return starts
    axis_name = shards.claim(axis_name)
    valid = jnp.ones(starts.shape, bool) if valid is None else valid
    if axis_name is None:
        start_after = valid_after = jnp.zeros_like(starts[:1])
    else:
        start_after = shards.next_first(starts & valid, axis_name)[None]
        valid_after = shards.next_first(valid, axis_name)[None]
    nxt = jnp.concatenate([starts[1:] & valid[1:], start_after], axis=0)
    last = valid & ~jnp.concatenate([valid[1:], valid_after], axis=0)
    return nxt | last


def _check_inexact(name: str, x) -> Array:
    if not hasattr(x, "dtype") or not hasattr(x, "shape"):
        raise TypeError(f"{name} must be an array, got {type(x).__name__}")
    if not jnp.issubdtype(x.dtype, jnp.inexact):
        raise TypeError(f"{name} must have a floating or complex dtype, got {x.dtype}")
    return x
