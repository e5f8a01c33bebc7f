"""Running a cell over a sequence: the ``unroll`` driver."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from . import _cell
from ._cell import Array, Carry, Cell, Params
from ._fused_scan import fused_scan

GRADS = ("auto", "autodiff")


def unroll(
    cell: Cell,
    params: Params,
    xs: Array,
    carry: Carry | None = None,
    *,
    lengths: Array | None = None,
    reverse: bool = False,
    time_major: bool = False,
    unroll: int | bool = 1,
    grad: str = "auto",
) -> tuple[Carry, Array]:
    r"""Run ``cell`` over the sequence ``xs``; return the final carry and every output.

    The input projection ``cell.project`` runs once for the whole sequence before
    ``jax.lax.scan`` runs the recurrent half (``cell.recur``) step by step. Stacks run layer
    by layer, each layer with its own hoisted projection.

    ``lengths`` describes right-padded sequences: the carry stops changing after each
    sequence's end (the returned carry is the one at its last valid step), outputs past the
    end are exactly zero, and with ``reverse=True`` each sequence is read backwards within
    its own length, starting at its last valid step (as the backward half of a bidirectional
    layer must). Outputs stay aligned with their inputs: ``ys[..., t, :]`` is the output at
    input step ``t`` in both directions.

    Args:
      cell: a :class:`gatedcells.Cell`.
      params: the cell's params (``cell.init``).
      xs: inputs ``[*B, T, I]``, or ``[T, *B, I]`` with ``time_major=True``; ``*B`` may be
        empty. Any floating dtype; the cell computes in its own dtypes.
      carry: initial carry (``cell.initial_carry(B)``); ``None`` starts from zeros.
      lengths: integer ``[*B]``, the valid length of each sequence, in ``[0, T]``.
      reverse: run from the last step to the first.
      time_major: ``xs`` and ``ys`` are ``[T, *B, ...]`` instead of ``[*B, T, ...]``.
      unroll: steps per loop iteration of the scan (``jax.lax.scan``'s ``unroll``).
      grad: how reverse-mode autodiff goes through the loop. ``"auto"``: cells with a
        :class:`gatedcells.Fused` split (LSTM, GRU, simple RNN) use a custom gradient that
        keeps only the pointwise part of the step in the backward loop and forms the
        weight gradients as single large matmuls after it (faster, same math); other cells
        use plain autodiff. ``"autodiff"``: plain autodiff of the scan everywhere, needed
        for forward-mode ``jax.jvp``/``jax.jacfwd`` of ``unroll`` itself (``jvp`` of
        ``grad``, e.g. Hessian-vector products, works with either).

    Returns:
      ``(carry, ys)``: the final carry and the outputs ``[*B, T, O]`` (or ``[T, *B, O]``).

    Raises:
      TypeError: ``xs`` or ``carry`` not floating, or ``lengths`` not integer.
      ValueError: ``xs`` of the wrong rank or input size, ``carry`` or ``lengths`` whose shape
        does not match the batch shape, concrete ``lengths`` outside ``[0, T]``, or params
        that do not belong to ``cell``.

    Examples:
      >>> import jax, jax.numpy as jnp, gatedcells as gc
      >>> cell = gc.gru(4)
      >>> params = cell.init(jax.random.key(0), 2)
      >>> xs = jnp.ones((3, 6, 2))                       # [B, T, I]
      >>> h, ys = gc.unroll(cell, params, xs, lengths=jnp.array([6, 2, 0]))
      >>> ys.shape, bool((ys[1, 2:] == 0).all()), bool((h[2] == 0).all())
      ((3, 6, 4), True, True)
    """
    input_size = cell.input_size(params)
    xs = _cell.check_float_array("xs", xs)
    layout = "[T, *B, I]" if time_major else "[*B, T, I]"
    if xs.ndim < 2 or xs.shape[-1] != input_size:
        raise ValueError(
            f"xs must have shape {layout} with I={input_size} (the params' input size), "
            f"got shape {tuple(xs.shape)}"
        )
    if unroll is not True and (
        isinstance(unroll, bool) or not isinstance(unroll, int | np.integer) or unroll < 1
    ):
        raise ValueError(f"unroll must be a positive int or True, got {unroll!r}")
    steps = xs.shape[0] if time_major else xs.shape[-2]
    batch_shape = tuple(xs.shape[1:-1] if time_major else xs.shape[:-2])
    if carry is None:
        carry = cell.initial_carry(batch_shape)
    else:
        _cell.check_carry(cell, carry, batch_shape)
    valid = None if lengths is None else valid_mask(lengths, steps, batch_shape)
    if not time_major:
        xs = jnp.moveaxis(xs, -2, 0)
    carry, ys = scan_cell(
        cell, params, carry, xs, valid=valid, reverse=reverse, unroll=unroll, grad=grad
    )
    if not time_major:
        ys = jnp.moveaxis(ys, 0, -2)
    return carry, ys


def scan_cell(
    cell: Cell,
    params: Params,
    carry: Carry,
    xs: Array,
    *,
    valid: Array | None = None,
    reverse: bool = False,
    unroll: int | bool = 1,
    grad: str = "auto",
) -> tuple[Carry, Array]:
    """The time-major driver behind :func:`unroll`, without its argument checks.

    Args:
      xs: ``[T, *B, I]``. valid: boolean ``[T, *B]`` (``t < length``) or ``None``.
      reverse, unroll, grad: as in :func:`unroll`.

    Returns:
      ``(carry, ys [T, *B, O])``. Combinators call this for their layers; a cell's own
      ``scan`` receives ``valid``, ``reverse``, ``unroll`` and ``grad`` as keywords.
    """
    if cell.scan is not None:
        return cell.scan(params, carry, xs, valid=valid, reverse=reverse, unroll=unroll, grad=grad)
    if cell.fused is not None and grad == "auto":
        return fused_scan(cell, params, carry, xs, valid, reverse, unroll)
    x_proj = cell.project(params, xs)

    def body(carry, inputs):
        x_proj_t, valid_t = inputs
        new_carry, y = cell.recur(params, carry, x_proj_t)
        if valid_t is not None:
            new_carry, y = mask_step(valid_t, new_carry, carry, y)
        return new_carry, y

    return jax.lax.scan(body, carry, (x_proj, valid), reverse=reverse, unroll=unroll)


def mask_step(valid_t: Array, new_carry: Carry, carry: Carry, y: Array) -> tuple[Carry, Array]:
    """Keep the old carry and output zeros where ``valid_t [*B]`` is false."""
    keep = valid_t[..., None]
    new_carry = jax.tree.map(lambda n, o: jnp.where(keep, n, o), new_carry, carry)
    return new_carry, jnp.where(keep, y, jnp.zeros_like(y))


def valid_mask(lengths: Array, steps: int, batch_shape: tuple[int, ...]) -> Array:
    """``[T, *B]`` booleans ``t < lengths``, after checking ``lengths``."""
    if not hasattr(lengths, "dtype"):
        lengths = np.asarray(lengths)
    if not jnp.issubdtype(lengths.dtype, jnp.integer):
        raise TypeError(f"lengths must have an integer dtype, got {lengths.dtype}")
    if tuple(lengths.shape) != tuple(batch_shape):
        raise ValueError(
            f"lengths must have shape [*B]={tuple(batch_shape)} (the batch shape of xs), "
            f"got shape {tuple(lengths.shape)}"
        )
    if not isinstance(lengths, jax.core.Tracer) and np.size(lengths):
        concrete = np.asarray(lengths)
        low, high = int(concrete.min()), int(concrete.max())
        if low < 0 or high > steps:
            raise ValueError(
                f"lengths must lie in [0, T] = [0, {steps}], got values from {low} to {high}"
            )
    t = jnp.arange(steps).reshape((steps,) + (1,) * len(batch_shape))
    return t < jnp.asarray(lengths).astype(t.dtype)[None]
