"""Sequence parallelism: the diagonal linear recurrence with its time axis sharded over a mesh.

Inside ``jax.shard_map``, each device holds one block of ``T / D`` consecutive steps (block
``i`` on the device of index ``i`` along the mesh axis). A block of the recurrence
``h_t = a_t h_{t-1} + b_t`` is an affine map of its incoming state,
``h -> A h + B`` with ``A`` the product of the block's decays and ``B`` its last state from
a zero start, and affine maps compose associatively. So:

1. each device scans its block from a zero state (its last state ``B``) and sums its
   log-decays (their product ``A``);
2. the block summaries ``(A, B)``, of the size of one state whatever ``T``, are composed
   across devices by a Hillis-Steele prefix over ``jax.lax.ppermute``: ``ceil(log2 D)``
   rounds, each device sending one summary per round (the initial state enters with
   block 0, so each prefix is the true state at the end of its block);
3. each block corrects its states with the state ``h_in`` it receives (the last state of
   the block before): ``h_t + A_t h_in``, ``A_t`` the product of its decays up to ``t``,
   which is the block's recurrence run again from ``h_in``, and is computed so (by the
   same path, the same operations as on one device given ``h_in``). On this project's
   2-core CPU (8192 steps, B=4, H=64, forward and backward) the second run costs 1.5x one
   local run in all, against 2.5x for forming ``A_t`` by a second run from ``h = 1`` and
   3.5x by a cumulative sum of ``log a`` (XLA:CPU's cumulative sums are associative scans,
   slower than the sequential loop). The all-gather form of step 2 (every summary to every
   device, a local prefix over ``D``) ran as fast at ``D = 8`` (T = 512 and 65,536): the
   rounds are kept, as their payload per device is ``log2 D`` summaries rather than ``D``.

The gradient is autodiff of the same program: the local scan's adjoint recurrence
(:func:`._linear_paths.recurrence`), and the transposes of the collectives (a ``ppermute``
backwards). Reverse runs order the blocks from the last device to the first.

A cell's ``scan`` reaches the recurrence through :func:`._linear.linear_scan` or
:func:`._linear.linear_scan_with_readout` without an argument for this: :func:`gatedcells.unroll` with
``axis_name`` runs the cell inside :func:`sharded`, which those two read (:func:`claim`).
A scan that claims none (a cell with no linear recurrence) raises: its steps would not
see the other blocks.
"""

from __future__ import annotations

import contextlib
import threading

import jax
import jax.numpy as jnp

from .. import _checks
from .._cell import Array
from . import _linear_paths as paths
from . import _masks as masks
from ._vma import match_vma

# The mesh axis time is sharded over while a cell's scan is traced, innermost last, per
# thread (threads trace on their own): each frame is [axis_name, claimed] (see `sharded`).
_LOCAL = threading.local()


def _frames() -> list[list]:
    if not hasattr(_LOCAL, "frames"):
        _LOCAL.frames = []
    return _LOCAL.frames


@contextlib.contextmanager
def sharded(axis_name: str, owner: str):
    """Trace the body with time sharded over ``axis_name``: the linear recurrences inside
    :func:`claim` it; if none does, raise a one-line ``ValueError`` naming ``owner``."""
    frames, frame = _frames(), [axis_name, False]
    frames.append(frame)
    try:
        yield
    finally:
        frames.pop()
    if not frame[1]:
        raise ValueError(refusal(owner))
    if frames:  # a layer of a stack ran sharded: so did the stack
        frames[-1][1] = True


def claim(axis_name: str | None = None) -> str | None:
    """``axis_name``, or else the mesh axis of the innermost :func:`sharded` (marked as
    used), or ``None``: the axis the time axis of a linear recurrence is sharded over."""
    frames = _frames()
    if axis_name is not None or not frames:
        return axis_name
    frames[-1][1] = True
    return frames[-1][0]


def current() -> str | None:
    """The mesh axis of the innermost :func:`sharded`, or ``None`` outside any."""
    frames = _frames()
    return frames[-1][0] if frames else None


def check_time_shardable(cell) -> None:
    """Refuse, in one line, a ``cell`` a time-sharded run cannot serve."""
    if "learned_initial_carry(" in cell.name:
        raise ValueError(
            f"cell {cell.name} starts from a learned initial carry, which a time-sharded run "
            "does not support: pass its inner cell and params.cell, and the learned carry "
            "broadcast over the batch as carry= (jax.tree.map(lambda c: jnp.broadcast_to(c, "
            "(*B, *c.shape)), params.carry))"
        )
    if cell.scan is None:
        raise ValueError(refusal(cell.name))


def refusal(owner: str) -> str:
    return (
        f"{owner} has no sequence-parallel form: axis_name (time sharded over a mesh axis) "
        "runs the diagonal linear recurrences (min_gru, min_lstm, rg_lru, lru, "
        "selective_ssm), alone, stacked or bidirectional"
    )


def check_axis_name(axis_name) -> str | None:
    """``None`` or a mesh axis name bound by an enclosing ``jax.shard_map``."""
    if axis_name is None:
        return None
    if not isinstance(axis_name, str):
        raise TypeError(f"axis_name must be a str (a mesh axis name) or None, got {axis_name!r}")
    try:
        jax.lax.axis_index(axis_name)
    except NameError:
        raise ValueError(
            f"axis_name={axis_name!r} is not a mesh axis of an enclosing jax.shard_map"
        ) from None
    return axis_name


def valid_mask(
    lengths,
    steps: int,
    batch_shape: tuple[int, ...],
    axis_name: str | None,
    name: str = "lengths",
) -> Array | None:
    """``[T_local, *B]`` booleans ``t < lengths`` for this device's block of ``steps`` steps,
    ``t`` counted over the whole sequence (``lengths`` checked against ``D * steps``);
    ``None`` without ``lengths``, :func:`._masks.valid_mask` without ``axis_name``."""
    if lengths is None or axis_name is None:
        return None if lengths is None else masks.valid_mask(lengths, steps, batch_shape, name)
    size = jax.lax.axis_size(axis_name)
    lengths = _checks.checked_lengths(lengths, size * steps, name, batch_shape)
    t = jnp.arange(steps) + jax.lax.axis_index(axis_name) * steps
    t = t.reshape((steps,) + (1,) * len(batch_shape))
    return t < jnp.asarray(lengths).astype(t.dtype)[None]


def next_first(x: Array, axis_name: str) -> Array:
    """``x[0]`` of the next block (``[*B]`` from ``[T_local, *B]``); zeros on the last."""
    size = jax.lax.axis_size(axis_name)
    return jax.lax.ppermute(x[0], axis_name, [(i, i - 1) for i in range(1, size)])


def carry_in(a: Array, b: Array, h0: Array, axis_name: str, reverse: bool):
    """``(h_in, h_last)`` from this block's summary: the state before its first step and
    the state after the last block, each ``[*S]`` (``h_last`` the same on every device).

    Args:
      a: the product of the block's decays ``[*S]``. b: its last state from zero ``[*S]``.
      h0: the state before the first block ``[*S]``.
      reverse: blocks run from the last device to the first.
    """
    size, index = jax.lax.axis_size(axis_name), jax.lax.axis_index(axis_name)
    pos = size - 1 - index if reverse else index  # the block's place in the run
    first = pos == 0
    b = jnp.where(first, a * h0 + b, b)  # block 0 starts from h0: b is then its true end
    shift = 1
    while shift < size:  # Hillis-Steele: after round k, the prefix of 2**(k+1) blocks
        a_prev, b_prev = jax.lax.ppermute((a, b), axis_name, _shifted(size, shift, reverse))
        reach = pos >= shift
        a, b = jnp.where(reach, a_prev * a, a), jnp.where(reach, a * b_prev + b, b)
        shift *= 2
    h_in = jax.lax.ppermute(b, axis_name, _shifted(size, 1, reverse))
    h_in = jnp.where(first, h0, h_in)
    h_last = jax.lax.psum(jnp.where(pos == size - 1, b, jnp.zeros_like(b)), axis_name)
    return h_in, h_last


def _shifted(size: int, shift: int, reverse: bool) -> list[tuple[int, int]]:
    """The ``ppermute`` pairs sending each block's value ``shift`` blocks down the run."""
    step = -shift if reverse else shift
    return [(i, i + step) for i in range(size) if 0 <= i + step < size]


def block_decay(log_a: Array) -> Array:
    """The product of a block's decays ``[*S]`` from ``log_a [T, *S]``: ``exp(sum(log a))``
    for real decays (0 after a reset's ``log a = -1e30``), the product of ``a`` for complex
    ones (a sum of phases would lose their precision over a long block)."""
    if jnp.iscomplexobj(log_a):
        return jnp.prod(jnp.exp(log_a), axis=0)
    return jnp.exp(jnp.sum(log_a, axis=0))


def recurrence(run, log_a: Array, b: Array, h0: Array, axis_name: str, reverse: bool):
    """``(hs, h_last)`` of the time-sharded recurrence, ``hs [T_local, *S]`` in run order.

    Args:
      run: ``run(log_a, b, h0) -> hs``, the local path (its custom gradient or autodiff).
      log_a, b: this block, time-major and in run order (flipped when ``reverse``).
    """
    last = run(log_a, b, jnp.zeros_like(h0))[-1]
    h_in, h_last = carry_in(block_decay(log_a), last, h0, axis_name, reverse)
    return run(log_a, b, h_in), h_last


def fused(run, coefficients, method: str, params, inputs, h0: Array, axis_name: str, reverse):
    """``(h_last, ys)`` of the fused recurrence (:func:`._linear_paths.fused`) time-sharded:
    the block's summary first (:func:`summary`), then ``run(inputs, h_in) -> (h, ys)`` from
    the state the block receives (twice the forward work, the states never held)."""
    a, b = summary(coefficients, method, params, inputs, h0)
    h_in, h_last = carry_in(a, b, h0, axis_name, reverse)
    return h_last, run(inputs, h_in)[1]


def summary(coefficients, method: str, params, inputs, h0: Array) -> tuple[Array, Array]:
    """``(A, B)``: the product of the block's decays and its last state from zero, ``[*S]``,
    with ``(log_a_t, b_t) = coefficients(params, x_t)``: a checkpointed scan (one state
    per step kept for the backward pass), or, for ``"associative"``, the block's
    coefficients at once (as that path forms them anyway)."""
    zeros = match_vma(jnp.zeros_like(h0), inputs, params)
    if method == "associative":
        log_a, b = coefficients(params, inputs)
        return block_decay(log_a), paths.forward(method, 1, 1, log_a, b, zeros)[-1]

    def step(params, carry, x_t):
        a, h = carry
        log_a, b = coefficients(params, x_t)
        a_t = jnp.exp(log_a)
        return a * a_t, a_t * h + b

    step = jax.checkpoint(step, prevent_cse=False)  # inside a scan, CSE cannot defeat it
    ones = match_vma(jnp.ones_like(h0), inputs, params)
    return jax.lax.scan(lambda c, x_t: (step(params, c, x_t), None), (ones, zeros), inputs)[0]
