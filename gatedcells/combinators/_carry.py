"""Combinators over where a carry starts: resets inside a sequence (packing, episode
boundaries) and a learned initial carry."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from .. import _checks
from .._cell import Array, Cell
from ..sequence import unroll_time_major
from ..sequence._vma import like


def resettable(cell: Cell) -> Cell:
    r"""``cell`` with its carry reset to its initial value wherever a per-step flag is set.

    The input gains one last channel, the reset flag: ``x [*B, I + 1]`` with
    ``x[..., I] > 0.5`` (pass booleans as 0/1 in the input's dtype) marking **the first step
    of a new segment**. Before step ``t`` reads the carry, rows whose flag is set replace it
    with ``cell.initial_carry`` (zeros, or the learned carry of
    :func:`learned_initial_carry`):

    .. math:: s_{t-1} \leftarrow \mathrm{init} \text{ where } \mathrm{reset}_t, \qquad
              (s_t, y_t) = \mathrm{step}(s_{t-1}, x_t)

    So several sequences packed in one row (flags at each one's first step) give exactly the
    outputs of separate runs, and an RL rollout resets with ``reset_t = done_{t-1}`` (the
    flag of the step that *starts* an episode). With ``lengths`` the padding is untouched as
    by :func:`gatedcells.unroll`; the returned carry is the state after the last valid step.

    With ``reverse=True`` the same flags still mark segment starts: each segment is read
    backwards from its last step, so the carry is reset before step ``t`` where the flag of
    step ``t + 1`` is set (``unroll`` shifts the flags; a backward loop of ``step`` would need
    them shifted the same way). ``bidirectional(resettable(cell))`` is therefore correct on
    packed rows.

    Args:
      cell: any steppable cell (a stack resets all its layers; wrap each direction of a
        bidirectional layer, not the layer).

    Returns:
      A :class:`gatedcells.Cell` with ``cell``'s params and carry and input size ``I + 1``.

    Examples:
      >>> import jax, jax.numpy as jnp, gatedcells as gc
      >>> cell = gc.resettable(gc.gru(4))
      >>> params = cell.init(jax.random.key(0), 3)             # 2 features + the flag
      >>> xs = jnp.ones((1, 6, 2))
      >>> resets = jnp.array([[0, 0, 0, 1, 0, 0]], xs.dtype)   # two sequences of 3 in a row
      >>> _, ys = gc.unroll(cell, params, jnp.concatenate([xs, resets[..., None]], -1))
      >>> bool(jnp.allclose(ys[:, :3], ys[:, 3:]))
      True

    References:
      Haiku's ``hk.ResetCore`` (the same semantics: reset before the step whose flag is set).
    """
    _checks.check_cell("cell", cell)

    def reset(carry, flag: Array):
        batch_shape = flag.shape[:-1]
        dtype = jax.tree.leaves(carry)[0].dtype
        init = cell.initial_carry(batch_shape, dtype)
        on = flag > 0.5
        # `like`: under Explicit mesh axes, the fresh carry split over the batch as `carry`
        return jax.tree.map(
            lambda c, c0: jnp.where(on, like(c0.astype(c.dtype), c), c), carry, init
        )

    def project(params, xs: Array) -> Array:
        x_proj = cell.project(params, xs[..., :-1])
        return jnp.concatenate([x_proj, xs[..., -1:].astype(x_proj.dtype)], axis=-1)

    def update(params, carry, x_proj: Array):
        return cell.update(params, reset(carry, x_proj[..., -1:]), x_proj[..., :-1])

    stepped = Cell(
        init_fn=lambda key, input_size: cell.init(key, input_size - 1),
        carry_fn=cell.initial_carry,
        project=project,
        update=update,
        check_params=lambda params: cell.check_params(params) + 1,
        output_size=cell.output_size,
        name=f"resettable({cell.name})",
        feature_ndim=cell.feature_ndim,
    )

    def scan(params, carry, xs, *, valid, reverse, unroll, grad, remat):
        options = {"unroll": unroll, "grad": grad, "remat": remat}
        if reverse:  # read backwards, a segment ends where the next one starts
            flags = xs[1:, ..., -1]
            if valid is not None:
                flags = jnp.where(valid[1:], flags, jnp.zeros_like(flags))
            flags = jnp.concatenate([flags, jnp.zeros_like(xs[:1, ..., -1])], axis=0)
            xs = jnp.concatenate([xs[..., :-1], flags[..., None]], axis=-1)
        return unroll_time_major(
            stepped, params, carry, xs, valid=valid, reverse=reverse, **options
        )

    return dataclasses.replace(stepped, scan=scan)


class LearnedCarryParams(NamedTuple):
    """Params of :func:`learned_initial_carry`: the cell's own and its initial carry.

    Attributes:
      cell: the wrapped cell's params.
      carry: the learned initial carry, the structure of ``cell.initial_carry()`` without
        batch axes (``[H]`` per leaf), broadcast over the batch.
    """

    cell: Any
    carry: Any


class LearnedCarry(NamedTuple):
    """Carry of :func:`learned_initial_carry`: the cell's ``carry`` and ``started [*B, 1]``,
    0 until the first step, which starts from the learned carry instead of ``carry``."""

    carry: Any
    started: Array


def learned_initial_carry(
    cell: Cell, *, init: Callable = jax.nn.initializers.zeros, param_dtype: Any = jnp.float32
) -> Cell:
    r"""``cell`` whose initial carry is a parameter, broadcast over the batch.

    .. math:: s_0 = \theta_{s_0} \quad (\text{the same for every example, learned})

    ``initial_carry`` stays parameter-free (``unroll``, Flax modules and resets call it
    without params): it returns zeros and ``started = 0``, and the first step replaces such
    a carry by the learned one, so every driver starts from :math:`\theta_{s_0}` and its
    gradient reaches it. A carry passed explicitly with ``started = 1`` is used as is. With
    :func:`resettable` outside, a reset starts the next segment from the learned carry too.

    Parameter count: the wrapped cell's, plus one carry (``H`` for a GRU, ``2H`` for an LSTM).

    Args:
      cell: any cell.
      init: initializer of the learned carry (default zeros: training starts as without it).
      param_dtype: its dtype.

    Returns:
      A :class:`gatedcells.Cell` with :class:`LearnedCarryParams` and carry
      :class:`LearnedCarry`.

    Examples:
      >>> import jax, jax.numpy as jnp, gatedcells as gc
      >>> cell = gc.learned_initial_carry(gc.lstm(4))
      >>> params = cell.init(jax.random.key(0), 3)
      >>> params.carry.h.shape, gc.count_params(params) - gc.count_params(params.cell)
      ((4,), 8)
      >>> carry, ys = gc.unroll(cell, params, jnp.ones((2, 5, 3)))
      >>> carry.started[:, 0].tolist()
      [1.0, 1.0]

    References:
      The request of google/flax#868 ("Initialize an RNN's carry with learnable parameters").
    """
    _checks.check_cell("cell", cell)
    template = jax.eval_shape(lambda: cell.initial_carry((), param_dtype))

    def init_params(key: Array, input_size: int) -> LearnedCarryParams:
        kc, ks = jax.random.split(key)
        leaves, tree = jax.tree.flatten(template)
        keys = jax.random.split(ks, len(leaves))
        carry = [init(k, s.shape, s.dtype) for k, s in zip(keys, leaves, strict=True)]
        return LearnedCarryParams(cell.init(kc, input_size), jax.tree.unflatten(tree, carry))

    def initial_carry(batch_shape: tuple[int, ...] = (), dtype=None) -> LearnedCarry:
        inner = cell.initial_carry(batch_shape, dtype)
        started_dtype = jax.tree.leaves(inner)[0].dtype
        return LearnedCarry(inner, jnp.zeros((*tuple(batch_shape), 1), started_dtype))

    def check_params(params) -> int:
        if not isinstance(params, LearnedCarryParams):
            raise ValueError(
                f"params of {name} must be LearnedCarryParams(cell, carry), got "
                f"{type(params).__name__}"
            )
        got = jax.tree.map(jnp.shape, params.carry)
        if got != jax.tree.map(jnp.shape, template):
            raise ValueError(
                f"params.carry of {name} must have the shapes "
                f"{jax.tree.map(jnp.shape, template)}, got {got}"
            )
        return cell.check_params(params.cell)

    def start(params: LearnedCarryParams, carry: LearnedCarry):
        """The carry to step from: the learned one in rows that have not started."""
        on = carry.started > 0.5

        def pick(c, c0):
            return jnp.where(on, c, jnp.broadcast_to(c0.astype(c.dtype), c.shape))

        return jax.tree.map(pick, carry.carry, params.carry)

    def update(params, carry, x_proj):
        new, y, gates = cell.update(params.cell, start(params, carry), x_proj)
        return LearnedCarry(new, jnp.ones_like(carry.started)), y, gates

    def scan(params, carry, xs, *, valid, reverse, unroll, grad, remat):
        options = {"reverse": reverse, "unroll": unroll, "grad": grad, "remat": remat}
        new, ys = unroll_time_major(
            cell, params.cell, start(params, carry), xs, valid=valid, **options
        )
        if valid is None:
            started = jnp.ones_like(carry.started)
        else:  # a row without any valid step has not started
            any_valid = jnp.any(valid, axis=0)[..., None]
            started = jnp.where(any_valid, jnp.ones_like(carry.started), carry.started)
        return LearnedCarry(new, started), ys

    name = f"learned_initial_carry({cell.name})"
    return Cell(
        init_fn=init_params,
        carry_fn=initial_carry,
        project=lambda params, xs: cell.project(params.cell, xs),
        update=update,
        check_params=check_params,
        output_size=cell.output_size,
        name=name,
        scan=scan,
        feature_ndim=cell.feature_ndim,
    )
