"""Running a cell over a sequence: the ``unroll`` driver."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from .. import _checks
from .._cell import Array, Carry, Cell, Params
from . import _time_shards as shards
from ._dims import chunk_layout, padded, require_known
from ._fused import fused_scan
from ._layout import check_sequence, from_time_major, to_time_major
from ._masks import broadcast_valid, mask_inputs, mask_step
from ._vma import match_vma, shard_like_batch

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
    unroll: int | bool | None = None,
    grad: str = "auto",
    remat: bool | int = False,
    axis_name: str | None = None,
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
        empty. Any floating dtype; the cell computes in its own dtypes. A convolutional
        cell (``cell.feature_ndim = 1 + len(S)``) reads frames: ``[*B, T, *S, I]`` (or
        ``[T, *B, *S, I]``), time just before the frame's axes.
      carry: initial carry (``cell.initial_carry(B)``; ``cell.initial_carry((*B, *S))`` for
        a convolutional cell); ``None`` starts from zeros.
      lengths: integer ``[*B]``, the valid length of each sequence, in ``[0, T]``. Inputs
        past a sequence's length never reach a value or a gradient (NaN padding is safe).
        Concrete lengths outside ``[0, T]`` raise; under ``jax.jit`` their values are
        unknown and a length above ``T`` counts as ``T``, one below 0 as 0: check them
        with :func:`gatedcells.check_lengths` under ``checkify``. So it is with a symbolic
        ``T`` (``jax.export``): concrete lengths are checked against 0 only.
      reverse: run from the last step to the first.
      time_major: ``xs`` and ``ys`` are ``[T, *B, ...]`` instead of ``[*B, T, ...]``.
      unroll: steps per loop iteration of the scan (``jax.lax.scan``'s ``unroll``; ``True``
        unrolls the whole loop). ``None``: :func:`gatedcells.default_unroll`, the factor
        measured fastest on the default backend (1 on CPU, 8 on GPU).
      grad: how reverse-mode autodiff goes through the loop. ``"auto"``: cells with a
        :class:`~gatedcells.MatmulSplit` split (LSTM, GRU, simple RNN) use a custom gradient that
        keeps only the pointwise part of the step in the backward loop and forms the
        weight gradients as single large matmuls after it (faster, same math); other cells
        use plain autodiff. ``"autodiff"``: plain autodiff of the scan everywhere, needed
        for forward-mode ``jax.jvp``/``jax.jacfwd`` of ``unroll`` itself (``jvp`` of
        ``grad``, e.g. Hessian-vector products, works with either).
      remat: gradient checkpointing over time, for sequences whose backward pass would not
        fit in memory. ``False``: the backward pass keeps what every step needs (``O(T)``
        memory beyond the inputs and outputs). ``True``: time is split into chunks of
        ``ceil(sqrt(T))`` steps; the forward pass keeps only the carry at each chunk's
        start, and the backward pass recomputes one chunk at a time (``O(sqrt(T))``
        memory, about one more forward pass of time). An int: the chunk length. The result
        and the gradient are the same (float rounding aside; ``T`` need not be a multiple
        of the chunk: the last chunk is padded with steps masked as past every sequence's
        end). ``True`` needs a concrete ``T``: under ``jax.export`` with a symbolic length,
        pass the chunk length. Each chunk runs the same per-step engine as ``remat=False``
        (the custom gradient of ``grad="auto"`` included). Cells with a sequence driver of their own
        pass ``remat`` to their layers (stacks, bidirectional layers, the regularisers and
        resets); ``min_gru``/``min_lstm``'s linear recurrence runs whole, its residuals
        being its inputs. See the README for measured memory and time.
      axis_name: sequence parallelism inside ``jax.shard_map``: ``xs`` is this device's
        block of consecutive time steps, the time axis being sharded over the mesh axis
        ``axis_name`` (see :func:`gatedcells.linear_recurrence`). For the cells whose
        recurrence is diagonal and linear (``min_gru``, ``min_lstm``, ``rg_lru``, ``lru``,
        ``selective_ssm``, and stacks and bidirectional layers of them); ``lengths`` count
        the steps of the whole sequence, ``carry`` is the state before the first block and
        the returned carry the state after the last one, replicated over ``axis_name``.
        :func:`gatedcells.sharded_unroll` builds the ``shard_map`` for you.

    Returns:
      ``(carry, ys)``: the final carry and the outputs ``[*B, T, O]`` (or ``[T, *B, O]``;
      ``[*B, T, *S, O]`` for a convolutional cell).

    Raises:
      TypeError: ``cell`` not a :class:`gatedcells.Cell`, ``xs`` or ``carry`` not floating,
        ``lengths`` not integer, or ``reverse``/``time_major`` not a bool.
      ValueError: ``xs`` of the wrong rank or input size, ``carry`` or ``lengths`` whose shape
        does not match the batch shape, concrete ``lengths`` outside ``[0, T]``, params
        that do not belong to ``cell``, an unknown ``grad``, an ``unroll`` that is not a
        positive int, ``True`` or ``None``, a ``remat`` that is not a positive int or
        a bool, ``remat=True`` with a symbolic ``T`` (``jax.export``), or an ``axis_name``
        that is not a mesh axis of an enclosing ``jax.shard_map`` or a ``cell`` with no
        sequence-parallel form.

    Examples:
      >>> import jax, jax.numpy as jnp, gatedcells as gc
      >>> cell = gc.gru(4)
      >>> params = cell.init(jax.random.key(0), 2)
      >>> xs = jnp.ones((3, 6, 2))                       # [B, T, I]
      >>> h, ys = gc.unroll(cell, params, xs, lengths=jnp.array([6, 2, 0]))
      >>> ys.shape, bool((ys[1, 2:] == 0).all()), bool((h[2] == 0).all())
      ((3, 6, 4), True, True)
    """
    return named_unroll(
        "lengths",
        cell,
        params,
        xs,
        carry,
        lengths=lengths,
        reverse=reverse,
        time_major=time_major,
        unroll=unroll,
        grad=grad,
        remat=remat,
        axis_name=axis_name,
    )


def named_unroll(
    lengths_name: str,
    cell: Cell,
    params: Params,
    xs: Array,
    carry: Carry | None,
    *,
    lengths: Array | None,
    reverse: bool,
    time_major: bool,
    unroll: int | bool | None,
    grad: str = "auto",
    remat: bool | int = False,
    axis_name: str | None = None,
) -> tuple[Carry, Array]:
    """:func:`unroll`, whose messages call ``lengths`` ``lengths_name`` (Flax's modules say
    ``seq_lengths``): every argument checked once."""
    xs, carry, layout = check_sequence(cell, params, xs, carry, time_major)
    _checks.check_flag("reverse", reverse)
    _checks.check_unroll(unroll)
    _checks.check_choice("grad", grad, GRADS)
    _checks.check_remat(remat)
    axis_name = shards.check_axis_name(axis_name)
    steps, batch_shape = layout.steps, layout.batch_shape
    valid = shards.valid_mask(lengths, steps, batch_shape, axis_name, lengths_name)
    xs = to_time_major(xs, layout)
    carry, ys = unroll_time_major(
        cell,
        params,
        carry,
        xs,
        valid=valid,
        reverse=reverse,
        unroll=unroll,
        grad=grad,
        remat=remat,
        axis_name=axis_name,
    )
    return carry, from_time_major(ys, layout)


def unroll_time_major(
    cell: Cell,
    params: Params,
    carry: Carry,
    xs: Array,
    *,
    valid: Array | None = None,
    reverse: bool = False,
    unroll: int | bool | None = None,
    grad: str = "auto",
    remat: bool | int = False,
    axis_name: str | None = None,
) -> tuple[Carry, Array]:
    """The time-major driver behind :func:`unroll`, without its argument checks.

    Args:
      xs: ``[T, *B, I]`` (``[T, *B, *S, I]``). valid: boolean ``[T, *B]`` (``t < length``)
        or ``None``. Over frames it is broadcast to ``[T, *B, *S]``, one flag per position
        of the carry, so that every cell and layer (a dense layer over frames too) masks its
        ``[*B, *S, H]`` carry as it masks ``[*B, H]``.
      reverse, unroll, grad, remat, axis_name: as in :func:`unroll` (``axis_name=None``
        inside a time-sharded run: the run's axis, so that combinators' layers inherit it).

    Returns:
      ``(carry, ys [T, *B, O])``. Combinators call this for their layers; a cell's own
      ``scan`` receives ``valid``, ``reverse``, ``unroll``, ``grad`` and ``remat`` as
      keywords. Checkpointing (``remat``) applies to cells without a ``scan`` of their own,
      so that combinators that read the whole sequence (bidirectional layers, resets read
      backwards) see it whole and checkpoint their layers.
    """
    if unroll is None:
        unroll = default_unroll()
    valid = broadcast_valid(valid, xs.shape)  # [T, *B, *S] for frames [T, *B, *S, I]
    xs = mask_inputs(valid, xs)  # padding reaches no value and no gradient
    carry = match_vma(carry, xs, params)  # inside shard_map: as varying as what reaches it
    carry = shard_like_batch(carry, xs)  # Explicit mesh axes: split over the batch as xs
    axis_name = axis_name or shards.current()
    if axis_name is not None:  # time sharded: the linear recurrences inside take the axis
        shards.check_time_shardable(cell)
        with shards.sharded(axis_name, cell.name):
            return cell.scan(
                params,
                carry,
                xs,
                valid=valid,
                reverse=reverse,
                unroll=unroll,
                grad=grad,
                remat=remat,
            )
    if cell.scan is not None:
        return cell.scan(
            params, carry, xs, valid=valid, reverse=reverse, unroll=unroll, grad=grad, remat=remat
        )
    if remat is not False and xs.shape[0] > 0:
        return _remat_scan(cell, params, carry, xs, valid, reverse, unroll, grad, remat)
    if cell.split is not None and grad == "auto":
        return fused_scan(cell, params, carry, xs, valid, reverse, unroll)
    x_proj = cell.project(params, xs)

    def body(carry, inputs):
        x_proj_t, valid_t = inputs
        new_carry, y = cell.recur(params, carry, x_proj_t)
        if valid_t is not None:
            new_carry, y = mask_step(valid_t, new_carry, carry, y)
        return new_carry, y

    return jax.lax.scan(body, carry, (x_proj, valid), reverse=reverse, unroll=unroll)


def default_unroll() -> int:
    """The scan unroll factor that ``unroll=None`` means: 1 on CPU, 8 on GPU and TPU.

    Measured with ``python benchmarks/unroll_sweep.py`` (forward+backward, LSTM, GRU and
    simple RNN at the benchmark shapes): on a 2-core CPU a factor above 1 gains nothing and
    compiles longer; on an NVIDIA H200 a factor of 8 ran 1.5-2.5x faster than 1 (LSTM
    B=32/T=128/I=64/H=128: 2.08 against 3.81 ms; B=1/T=1024: 10.3 against 18.0 ms), where
    each loop iteration costs a fixed launch overhead, and 16 gained little more at twice
    the compile time. TPU follows GPU, unmeasured here. The choice follows
    ``jax.default_backend()``; pass ``unroll`` to choose yourself.
    """
    return 1 if jax.default_backend() == "cpu" else 8


def _remat_scan(cell, params, carry, xs, valid, reverse, unroll, grad, remat):
    """``unroll_time_major`` over chunks of time, each checkpointed (see ``remat`` in :func:`unroll`).

    An outer ``lax.scan`` runs the chunks; its body, ``jax.checkpoint`` of the inner
    ``unroll_time_major``, saves nothing but its arguments, so the backward pass keeps the carry at
    each chunk's start and recomputes the chunk's own residuals when it gets there.
    """
    steps = xs.shape[0]
    if remat is True:
        require_known(
            steps, "remat=True (chunks of ceil(sqrt(T)) steps)", "pass remat=<chunk length>"
        )
        size, chunks, pad = chunk_layout(steps, math.isqrt(steps - 1) + 1)
    else:
        size, chunks, pad = chunk_layout(steps, int(remat))
    if padded(pad):  # padded steps are invalid: they keep the carry and output zeros
        if valid is None:
            valid = jnp.ones((steps, *xs.shape[1:-1]), bool)
        xs = jnp.concatenate([xs, jnp.zeros((pad, *xs.shape[1:]), xs.dtype)])
        valid = jnp.concatenate([valid, jnp.zeros((pad, *valid.shape[1:]), bool)])

    def chunked(a):
        return None if a is None else a.reshape(chunks, size, *a.shape[1:])

    def body(params, carry, inputs):
        xs_c, valid_c = inputs
        return unroll_time_major(
            cell, params, carry, xs_c, valid=valid_c, reverse=reverse, unroll=unroll, grad=grad
        )

    body = jax.checkpoint(body, prevent_cse=False)  # inside a scan, CSE cannot defeat it
    carry, ys = jax.lax.scan(
        lambda c, inputs: body(params, c, inputs),
        carry,
        (chunked(xs), chunked(valid)),
        reverse=reverse,
    )
    ys = ys.reshape(chunks * size, *ys.shape[2:])
    return carry, ys[:steps] if padded(pad) else ys
