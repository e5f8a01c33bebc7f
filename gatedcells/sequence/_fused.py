"""The scan of a cell with a :class:`~gatedcells.MatmulSplit` split, with a gradient of its own.

Plain autodiff through ``lax.scan`` keeps every intermediate of every step and forms the
weight gradients inside the backward loop, one small matmul per step. For a cell whose step
is ``update(params, carry, x_proj, hidden(carry) @ w_h)`` with a pointwise ``update``, the
backward pass needs much less:

1. the forward loop saves only the state before each step and the pre-activations
   ``x_proj_t`` and ``h_proj_t`` it computed anyway (their sum alone for an ``additive``
   cell such as the LSTM);
2. the backward loop runs ``update``'s VJP and one ``d h_proj_t @ w_h^T`` per step, nothing
   else;
3. ``dw_h = sum_t h_{t-1}^T d h_proj_t`` and the input-side gradients (``w_x``, ``b``, ``xs``,
   through ``cell.project``'s VJP) are single large matmuls after the loop.

A cell whose ``pointwise`` holds a backward of its own (:class:`~gatedcells._cell.PointwiseVJP`,
the sLSTM's) has the forward loop save what that backward reads instead of the state and
``z``, and the backward loop run it instead of autodiff's VJP of ``pointwise``: the
sLSTM's recomputed ``log sigmoid``, ``tanh`` and ``sigmoid`` then leave the backward loop.

A block-diagonal ``w_h [NH, H/NH, G*H/NH]`` (one block per head, the sLSTM) runs the same
recipe with per-head products: ``d h_proj_t @ w_h^T`` per step and ``dw_h`` after the loop
are each one matmul batched over the heads.

This is the cuDNN/PyTorch recipe, written in JAX so that it runs unchanged on CPU, GPU and
TPU. It is exact: the same math as autodiff, in another order (float rounding aside).

Two layout choices come from measurements on XLA:CPU (``gatedcells bench``): the input
projection is computed inside the loop rather than hoisted before it (a hoisted
``[T, *B, G*H]`` buffer was slower at every shape but the smallest), and arrays the loops
read per step are fed as ``G`` per-gate slabs ``[T, *B, H]`` rather than one split
``[T, *B, G*H]`` array, whose per-step slicing XLA:CPU compiles 1.3-1.8x slower.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from .._cell import Array, Carry, Cell, Params, PointwiseVJP, matmul, recurrent_matmul
from ._dims import is_known
from ._masks import mask_step
from ._vma import explicit, match_vma, partitioned, sum_to_vma


def fused_scan(
    cell: Cell,
    params: Params,
    carry: Carry,
    xs: Array,
    valid: Array | None,
    reverse: bool,
    unroll: int | bool,
) -> tuple[Carry, Array]:
    """``unroll_time_major`` for a cell with ``cell.split``, differentiated by the recipe above.

    The custom gradient takes the cell as a static argument, so it cannot serve a cell whose
    functions close over traced values (a cell built inside ``jit`` around a traced key or
    mask): such a cell runs the same loop under plain autodiff.
    """
    if _closes_over_tracers(cell, params, carry, xs):
        carry, ys = _loop(cell, reverse, unroll, params, carry, xs, valid, save=False)
        return carry, ys
    return _scan(cell, reverse, unroll, params, carry, xs, valid)


def _closes_over_tracers(cell, params, carry, xs) -> bool:
    """Whether ``cell.project``, ``split.pointwise`` or ``split.hidden`` close over tracers."""
    split = cell.split
    x = jax.ShapeDtypeStruct(xs.shape[1:], xs.dtype)
    x_proj = jax.eval_shape(cell.project, params, x)
    h_proj = jax.ShapeDtypeStruct(x_proj.shape, x_proj.dtype)
    consts = []
    for fn, args in (
        (cell.project, (params, x)),
        (split.pointwise, (params, carry, x_proj, h_proj)),
        (split.hidden, (carry,)),
    ):
        args = jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype), args)
        consts += jax.closure_convert(fn, *args)[1]
    return any(isinstance(c, jax.core.Tracer) for c in consts)


def _slabs(z: Array, n: int) -> tuple[Array, ...]:
    return tuple(jnp.split(z, n, axis=-1))


def _n_slabs(params: Params) -> int:
    rows, cols = params.w_h.shape[-2:]  # a block-diagonal w_h: G = cols // rows per head
    return cols // rows if cols % rows == 0 else 1


def _per_head(z: Array, shape: tuple[int, int, int]) -> Array:
    """Gate-major ``z [..., G*H]`` as ``[..., NH, G*H/NH]``, each head's columns of every
    gate: the layout of the blocks of a block-diagonal ``w_h`` of ``shape``
    ``(NH, H/NH, G*H/NH)`` (the inverse of :func:`~gatedcells._cell.recurrent_matmul`'s)."""
    heads, rows, cols = shape
    lead = z.shape[:-1]
    z = jnp.swapaxes(z.reshape(*lead, cols // rows, heads, rows), -3, -2)
    return z.reshape(*lead, heads, cols)


def _recurrent_matmul_t(d_h_proj: Array, w_h: Array, dtype) -> Array:
    """``d_h_proj [*B, G*H] @ w_h^T -> [*B, H]``, the cotangent of ``h`` through
    :func:`~gatedcells._cell.recurrent_matmul`; ``w_h`` given transposed (per head)."""
    if w_h.ndim == 2 or w_h.shape[0] == 1:  # dense, or one head: a plain matmul
        return matmul(d_h_proj, w_h.reshape(w_h.shape[-2:]), dtype)
    heads, cols, rows = w_h.shape
    dtype = w_h.dtype if dtype is None else dtype
    d = _per_head(d_h_proj.astype(dtype), (heads, rows, cols))
    d_h = jnp.einsum("...nk,nkj->...nj", d, w_h.astype(dtype))
    return d_h.reshape(*d_h.shape[:-2], heads * rows)


def _recurrent_weight_grad(h_prev: Array, d_h_proj: Array, w_h: Array) -> Array:
    """``dw_h = sum h_prev^T d_h_proj`` over all steps and batch rows: one matmul, batched
    over the heads for a block-diagonal ``w_h`` (dense where the loops multiply by it
    dense, :func:`_dense`); in ``w_h``'s dtype."""
    if _in_place(h_prev):  # T and *B contracted in place (see _rows)
        heads = 1 if w_h.ndim == 2 else w_h.shape[0]
        h_prev = h_prev.reshape(*h_prev.shape[:-1], heads, -1).astype(d_h_proj.dtype)
        d = _per_head(d_h_proj, (heads, *w_h.shape[-2:]))
        kw = {}
        if explicit(h_prev):
            kw["out_sharding"] = jax.typeof(h_prev).sharding.update(
                spec=jax.typeof(w_h).sharding.spec
            )
        d_w_h = jnp.einsum("...nj,...nk->njk", h_prev, d, **kw)
        return d_w_h.reshape(w_h.shape).astype(w_h.dtype)
    h_prev = h_prev.reshape(-1, h_prev.shape[-1])  # [T*B, H]
    dense = _dense(w_h)
    if dense.ndim == 2 or dense.shape[0] == 1:  # [H, T*B] @ [T*B, G*H]
        d_w_h = matmul(h_prev.T, d_h_proj.reshape(-1, d_h_proj.shape[-1]), None)
        if dense is not w_h:  # the heads' blocks on the diagonal (see _dense)
            d_w_h = _diagonal_blocks(d_w_h, w_h.shape)
        return d_w_h.reshape(w_h.shape).astype(w_h.dtype)
    heads, rows, _ = w_h.shape
    h_prev = h_prev.reshape(-1, heads, rows).astype(d_h_proj.dtype)  # [T*B, NH, H/NH]
    d = _per_head(d_h_proj.reshape(-1, d_h_proj.shape[-1]), w_h.shape)  # [T*B, NH, G*H/NH]
    return jnp.einsum("rnj,rnk->njk", h_prev, d).astype(w_h.dtype)


def _in_place(a: Array) -> bool:
    """Whether the time and batch axes of ``a [T, *B, K]`` are contracted where they are,
    not merged into rows: under a mesh with ``Explicit`` axes (a merged sharded axis has no
    sharding to name) and under ``jax.set_mesh`` of a mesh jit may split the batch over
    (jit gathers a merged one: base LSTM f+b over 2 CPU devices 29.8 ms merged, 14.9 ms in
    place, 23.7 ms on one). Elsewhere merging pays: XLA:CPU contracts two axes at once in a
    slow loop (an unsplit batch in place took 1.25x one device's time at B=256, H=512)."""
    return explicit(a) or partitioned()


def _rows(a: Array) -> Array:
    """``a [T, *B, K]`` as rows ``[T*B, K]``, or as it is (:func:`_in_place`)."""
    return a if _in_place(a) else a.reshape(-1, a.shape[-1])


HOIST_BYTES = 4 << 20  # see _hoist


DENSE_BYTES = 1 << 20  # see _dense


def _dense(w_h: Array) -> Array:
    """A block-diagonal ``w_h [NH, H/NH, G*H/NH]`` as the dense ``[H, G*H]`` it stands for
    (zeros off the blocks, columns gate-major as :func:`~gatedcells._cell.recurrent_matmul`
    returns them), while that is at most ``DENSE_BYTES``; else ``w_h`` as it is.

    On XLA:CPU one plain matmul a step beats the batched matmul over the heads and the
    transposes around it, though it multiplies by the zeros: the sLSTM with 4 heads at B=8,
    T=1024, H=128 (256 KiB dense) runs forward and backward 1.3x faster (102.6 -> 80.7 ms,
    benchmarks/xlstm.py speed --B 8 --T 1024). So does the weight gradient after the loop:
    one dense product, whose diagonal blocks are kept (:func:`_diagonal_blocks`), beats
    the batched product over the heads and the transposes of its ``[T*B, G*H]`` operand
    (2 ms of 94 there). Only in a process of one device:
    params sharded over their heads (tensor parallelism, :mod:`gatedcells.sharding`) keep
    the blocks, which need no communication per step.
    """
    if w_h.ndim == 2 or w_h.shape[0] == 1 or jax.device_count() > 1:
        return w_h
    if w_h.size * w_h.shape[0] * w_h.dtype.itemsize > DENSE_BYTES:
        return w_h
    heads, rows, cols = w_h.shape
    blocks = w_h.reshape(heads, rows, cols // rows, rows)  # [n, j, g, k]
    dense = jnp.einsum("njgk,nm->njgmk", blocks, jnp.eye(heads, dtype=w_h.dtype))
    return dense.reshape(heads * rows, heads * cols)


def _diagonal_blocks(dense: Array, shape: tuple[int, int, int]) -> Array:
    """The blocks ``[NH, H/NH, G*H/NH]`` of shape ``shape`` on the diagonal of a dense
    ``[H, G*H]`` (gate-major columns): the inverse of :func:`_dense`."""
    heads, rows, cols = shape
    dense = dense.reshape(heads, rows, cols // rows, heads, rows)  # [n, j, g, m, k]
    return jnp.einsum("njgnk->njgk", dense).reshape(shape)


def _hoist(params, xs) -> bool:
    """Whether to compute the input projection for all steps before the loop.

    On XLA:CPU a hoisted ``[T, *B, G*H]`` buffer pays off only while it is small: 1.2x
    faster at B=1/T=1024 (2 MiB), even at B=32/T=128 (8 MiB), slower above (a fresh
    buffer is page-faulted on every call). A symbolic batch or length (``jax.export``) is
    a size unknown until the call: the projection then stays in the loop, whatever the size.
    """
    if not all(is_known(n) for n in xs.shape):
        return False
    rows, cols = xs.size // xs.shape[-1], params.w_h.size // params.w_h.shape[-2]
    return rows * cols * 4 <= HOIST_BYTES


def _loop(cell, reverse, unroll, params, carry, xs, valid, save):
    split, n, vjp = cell.split, _n_slabs(params), _own_vjp(cell.split)
    hoist = _hoist(params, xs)
    if hoist:  # fed as per-gate slabs: XLA:CPU slices a split scanned array slowly
        xs = _slabs(cell.project(params, xs), n)

    w_h = _dense(params.w_h)

    def body(carry, inputs):
        x_t, valid_t = inputs
        x_proj = jnp.concatenate(x_t, axis=-1) if hoist else cell.project(params, x_t)
        h_proj = recurrent_matmul(split.hidden(carry), w_h, split.dtype)
        new_carry, y, _ = split.pointwise(params, carry, x_proj, h_proj)
        if valid_t is not None:
            new_carry, y = mask_step(valid_t, new_carry, carry, y)
        if not save:
            return new_carry, y
        if split.additive:  # summed in the carry's dtype, as `update` does
            h = split.hidden(carry)
            z = x_proj.astype(h.dtype) + h_proj.astype(h.dtype)
            if vjp is not None:  # the cell's own residuals; h for the weight gradient
                return new_carry, (y, h, vjp.residuals(params, carry, z), ())
            return new_carry, (y, carry, _slabs(z, n), ())
        return new_carry, (y, carry, _slabs(x_proj, n), _slabs(h_proj, n))

    return jax.lax.scan(body, carry, (xs, valid), reverse=reverse, unroll=unroll)


def _own_vjp(split) -> PointwiseVJP | None:
    """The backward ``split.pointwise`` holds (:class:`~gatedcells._cell.PointwiseVJP`), if
    any: then the loops save its residuals and run it, not autodiff of ``pointwise``."""
    return getattr(split.pointwise, "vjp", None) if split.additive else None


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2))
def _scan(cell, reverse, unroll, params, carry, xs, valid):
    return _loop(cell, reverse, unroll, params, carry, xs, valid, save=False)


def _scan_fwd(cell, reverse, unroll, params, carry, xs, valid):
    carry_T, (ys, carries, x_proj, h_proj) = _loop(
        cell, reverse, unroll, params, carry, xs, valid, save=True
    )
    return (carry_T, ys), (params, carry, xs, valid, carries, x_proj, h_proj)


def _step_vjp(split, vjp: PointwiseVJP | None, pointwise: Params, rows: int):
    """``(carry_t, x_proj_t, h_proj_t, d_carry, d_y) -> (d pointwise, d carry, d x_proj,
    d h_proj)``, one backward step but ``d h``; vmapped over ``rows`` batch axes, whose
    gradient of ``pointwise`` is then one per row."""

    def update(p, c, x_proj_t, h_proj_t):
        new_carry, y, _ = split.pointwise(p, c, x_proj_t, h_proj_t)
        return new_carry, y

    def step_vjp(carry_t, x_proj_t, h_proj_t, d_carry, d_y):
        if vjp is not None:  # x_proj_t holds the residuals of the cell's own backward
            d_p, d_prev, d_x_proj = vjp.backward(pointwise, x_proj_t, d_carry, d_y)
            return d_p, d_prev, d_x_proj, d_x_proj
        if split.additive:  # x_proj_t holds the sum; one cotangent serves both halves
            z_t = jnp.concatenate(x_proj_t, -1)
            additive = lambda p, c, z: update(p, c, z, jnp.zeros_like(z))  # noqa: E731
            d_p, d_prev, d_x_proj = jax.vjp(additive, pointwise, carry_t, z_t)[1]((d_carry, d_y))
            return d_p, d_prev, d_x_proj, d_x_proj
        x_proj_t, h_proj_t = (jnp.concatenate(a, axis=-1) for a in (x_proj_t, h_proj_t))
        return jax.vjp(update, pointwise, carry_t, x_proj_t, h_proj_t)[1]((d_carry, d_y))

    for _ in range(rows):
        step_vjp = jax.vmap(step_vjp)
    return step_vjp


def _scan_bwd(cell, reverse, unroll, residuals, cotangents):
    # carries: the carry before each step, or its hidden part h where the cell's own
    # backward (`vjp`) reads its residuals (in x_proj) instead
    params, carry0, xs, valid, carries, x_proj, h_proj = residuals
    d_carry, d_ys = cotangents
    split, vjp = cell.split, _own_vjp(cell.split)
    # What `update` may read: everything but the two kernels (the Fused contract).
    pointwise = params._replace(w_x=None, w_h=None)
    # Inside shard_map: read as varying, so that the loop accumulates each device's own
    # gradient (no psum per step) and one psum after it sums them.
    pointwise_v = match_vma(pointwise, xs, carries)
    w_h_t = jnp.swapaxes(_dense(params.w_h), -1, -2)  # per head if it stays block-diagonal
    if vjp is not None:  # d h -> d carry: hidden selects a part of the carry (any serves)
        hidden_vjp = jax.vjp(split.hidden, match_vma(carry0, carries))[1]
    # Under jit's partitioner, the gradient of `pointwise` is one per row, summed after the
    # loop: a sum over a split batch at every step would be an exchange at every step.
    rows = d_ys.ndim - 2 if _in_place(d_ys) and jax.tree.leaves(pointwise) else 0
    step_vjp = _step_vjp(split, vjp, pointwise_v, rows)

    def body(acc, inputs):
        d_carry, d_pointwise = acc
        carry_t, x_proj_t, h_proj_t, d_y, valid_t = inputs
        if valid_t is None:
            d_skip = None
        else:  # a padded step passes the carry through and outputs zero
            keep = valid_t[..., None]
            d_skip = jax.tree.map(lambda d: jnp.where(keep, jnp.zeros_like(d), d), d_carry)
            d_carry = jax.tree.map(lambda d: jnp.where(keep, d, jnp.zeros_like(d)), d_carry)
            d_y = jnp.where(keep, d_y, jnp.zeros_like(d_y))
        d_p, d_prev, d_x_proj, d_h_proj = step_vjp(carry_t, x_proj_t, h_proj_t, d_carry, d_y)
        d_h = _recurrent_matmul_t(d_h_proj, w_h_t, split.dtype)
        through_h = hidden_vjp if vjp is not None else jax.vjp(split.hidden, carry_t)[1]
        (d_through_h,) = through_h(d_h.astype(split.hidden(carry0).dtype))
        d_prev = jax.tree.map(jnp.add, d_prev, d_through_h)
        if d_skip is not None:
            d_prev = jax.tree.map(jnp.add, d_prev, d_skip)
        d_pointwise = jax.tree.map(jnp.add, d_pointwise, d_p)
        return (d_prev, d_pointwise), (d_x_proj, () if split.additive else d_h_proj)

    row = jnp.zeros_like(d_ys[0, ..., 0])  # [*B]: gives its axes and their sharding

    def per_row(p):  # zeros [*B, *p.shape] in p's dtype
        zero = jnp.zeros(row.ndim * (1,) + p.shape, p.dtype)
        return row[(..., *[None] * p.ndim)].astype(p.dtype) * zero

    zeros = jax.tree.map(per_row if rows else jnp.zeros_like, pointwise_v)
    acc = (match_vma(d_carry, carries, d_ys), zeros)
    (d_carry0, d_pointwise), (d_x_proj, d_h_proj) = jax.lax.scan(
        body,
        acc,
        (() if vjp is not None else carries, x_proj, h_proj, d_ys, valid),
        reverse=not reverse,
        unroll=unroll,
    )
    d_pointwise = jax.tree.map(lambda d: d.sum(tuple(range(rows))), d_pointwise)
    if split.additive:
        d_h_proj = d_x_proj
    # Weight and input gradients after the loop, as single large matmuls.
    h_prev = carries if vjp is not None else split.hidden(carries)  # [T, *B, H]: each step read
    d_w_h = _recurrent_weight_grad(h_prev, d_h_proj, params.w_h)
    # project's VJP on flattened leading axes: a matmul contracting two axes at once (T and
    # B) lowers to a slow loop on XLA:CPU (2.7x slower at the base shape).
    flat_xs = _rows(xs)
    x_proj, vjp_project = jax.vjp(cell.project, params, flat_xs)
    d_params, d_xs = vjp_project(d_x_proj.reshape(x_proj.shape).astype(x_proj.dtype))
    d_xs = d_xs.reshape(xs.shape)
    # Inside shard_map, sums over the axes the params are replicated on (project's VJP did)
    d_pointwise, d_w_h = sum_to_vma((d_pointwise, d_w_h), (pointwise, params.w_h))
    d_params = jax.tree.map(
        jnp.add, d_params, d_pointwise._replace(w_x=jnp.zeros_like(params.w_x), w_h=d_w_h)
    )
    d_carry0 = sum_to_vma(d_carry0, carry0)
    return d_params, d_carry0, d_xs, None


_scan.defvjp(_scan_fwd, _scan_bwd)
