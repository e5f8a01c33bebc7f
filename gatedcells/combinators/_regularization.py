"""Recurrent regularisation as cell combinators: variational (recurrent) dropout, zoneout and
weight-drop. Each takes a cell and returns a cell with the same params, so the same params
train with the regulariser and evaluate without it.

Randomness comes from the ``key`` the combinator is built with: build the regularised cell
inside the loss, with a fresh key per training step (as a Flax module does with its
``dropout`` stream). Masks are pure functions of that key and of the shapes they cover (and,
for zoneout, of the step count it carries), so a jitted, scanned or stepped cell draws the
same masks. Under ``jax.vmap`` a cell sees one example, so every example draws the same
masks: split the key per example yourself where that matters.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from .. import _cell, _checks
from .._cell import Array, Cell
from ..sequence import unroll_time_major
from ..sequence._vma import like


def _check_key(name: str, key, deterministic: bool) -> None:
    if not deterministic and key is None:
        raise ValueError(f"{name}: key is required unless deterministic=True")


def _keep_mask(key: Array, rate: float, shape: tuple[int, ...], dtype: Any) -> Array:
    """Inverted-dropout mask: ``Bernoulli(1 - rate) / (1 - rate)``."""
    keep = jax.random.bernoulli(key, 1.0 - rate, shape)
    return keep.astype(dtype) / jnp.asarray(1.0 - rate, dtype)


def recurrent_dropout(
    cell: Cell, rate: float, *, key: Array | None = None, deterministic: bool = False
) -> Cell:
    r"""Variational (recurrent) dropout (Gal & Ghahramani 2016) on the state that meets ``w_h``.

    .. math:: \tilde h = m \odot h / (1 - p), \qquad m \sim \mathrm{Bernoulli}(1 - p)^{[*B, H]}

    ``h`` is replaced by :math:`\tilde h` in the recurrent matmul only (the memory path of an
    LSTM or the interpolation of a GRU keep the true ``h``), with one mask per sequence: the
    same at every step, drawn once from ``key`` for the batch shape the cell sees. ``unroll``
    draws it before the scan and keeps the cell's fast gradient (:class:`~gatedcells.MatmulSplit`).

    Args:
      cell: a cell with a :class:`~gatedcells.MatmulSplit` split (simple RNN, LSTM and its fused variants,
        GRU with ``reset_after=True``), where the recurrent matmul's input is known.
      rate: the dropout probability :math:`p` in ``[0, 1)``.
      key: a PRNG key (required unless ``deterministic``).
      deterministic: no dropout; the cell itself is returned.

    Returns:
      A :class:`gatedcells.Cell` with the params and carry of ``cell``.

    Raises:
      ValueError: ``rate`` outside ``[0, 1)``, a missing ``key``, or a cell without a
        :class:`~gatedcells.MatmulSplit` split (use :func:`weight_drop` or :func:`zoneout` there).

    Examples:
      >>> import jax, jax.numpy as jnp, gatedcells as gc
      >>> cell = gc.lstm(8)
      >>> params = cell.init(jax.random.key(0), 3)
      >>> train = gc.recurrent_dropout(cell, 0.25, key=jax.random.key(1))
      >>> _, ys = gc.unroll(train, params, jnp.ones((2, 5, 3)))
      >>> gc.recurrent_dropout(cell, 0.25, deterministic=True) is cell
      True

    References:
      Gal & Ghahramani, "A Theoretically Grounded Application of Dropout in Recurrent Neural
      Networks", NeurIPS 2016.
    """
    _checks.check_cell("cell", cell)
    rate = _checks.check_rate("recurrent_dropout: rate", rate)
    _check_key("recurrent_dropout", key, deterministic)
    if deterministic or rate == 0:
        return cell
    if cell.split is None:
        raise ValueError(
            f"recurrent_dropout needs a cell with a MatmulSplit (its recurrent matmul's input); "
            f"{cell.name} has none: use weight_drop or zoneout"
        )
    inner = cell.split

    def step_hidden(carry):  # a step draws the mask of its batch shape from the key
        h = inner.hidden(carry)
        return h * _keep_mask(key, rate, h.shape, h.dtype)

    stepped = inner._replace(hidden=step_hidden)

    # unroll: the mask is drawn once, before the scan, and travels in the carry (a cell that
    # closed over it would hide a traced value in a static argument of the fused scan)
    def masked_update(params, carry: _MaskedCarry, x_proj, h_proj):
        new, y, gates = inner.pointwise(params, carry.carry, x_proj, h_proj)
        return _MaskedCarry(new, carry.mask), y, gates

    masked = inner._replace(
        hidden=lambda carry: inner.hidden(carry.carry) * carry.mask,  # also stacked over time
        pointwise=masked_update,
    )
    masked_cell = dataclasses.replace(
        cell, update=_cell.split_update(masked), split=masked, scan=None
    )

    def scan(params, carry, xs, *, valid, reverse, unroll, grad, remat):
        options = dict(valid=valid, reverse=reverse, unroll=unroll, grad=grad, remat=remat)
        h = inner.hidden(carry)
        mask = _keep_mask(key, rate, h.shape, h.dtype)
        new, ys = unroll_time_major(masked_cell, params, _MaskedCarry(carry, mask), xs, **options)
        return new.carry, ys

    # The cell declares no MatmulSplit of its own: its step draws a mask per batch shape,
    # which a scan over carries stacked in time cannot; its scan takes the fused path.
    return dataclasses.replace(
        cell,
        update=_cell.split_update(stepped),
        name=f"recurrent_dropout({cell.name}, {rate})",
        split=None,
        scan=scan,
    )


class _MaskedCarry(NamedTuple):
    """Inside :func:`recurrent_dropout`'s scan: the cell's carry and its dropout mask."""

    carry: Any
    mask: Array


def weight_drop(
    cell: Cell, rate: float, *, key: Array | None = None, deterministic: bool = False
) -> Cell:
    r"""Weight-drop (DropConnect on the recurrent kernel; Merity et al. 2018's AWD-LSTM).

    .. math:: \tilde W_h = M \odot W_h / (1 - p), \qquad M \sim \mathrm{Bernoulli}(1 - p)^{[H, G H]}

    One mask on ``params.w_h`` per call (per batch and sequence, shared by every example and
    step), drawn from ``key``. ``unroll`` runs ``cell``'s own driver on the masked params, so
    the fast paths of ``cell`` are kept.

    Args:
      cell: a cell whose params have a recurrent kernel ``w_h``.
      rate: the drop probability :math:`p` in ``[0, 1)``.
      key: a PRNG key (required unless ``deterministic``).
      deterministic: no dropping; the cell itself is returned.

    Returns:
      A :class:`gatedcells.Cell` with the params and carry of ``cell``.

    Raises:
      ValueError: ``rate`` outside ``[0, 1)`` or a missing ``key``; at use, params without
        ``w_h``.

    Examples:
      >>> import jax, jax.numpy as jnp, gatedcells as gc
      >>> cell = gc.gru(8)
      >>> params = cell.init(jax.random.key(0), 3)
      >>> train = gc.weight_drop(cell, 0.5, key=jax.random.key(1))
      >>> _, ys = gc.unroll(train, params, jnp.ones((2, 5, 3)))
      >>> ys.shape
      (2, 5, 8)

    References:
      Wan, Zeiler, Zhang, LeCun & Fergus, "Regularization of Neural Networks using
      DropConnect", ICML 2013.
      Merity, Keskar & Socher, "Regularizing and Optimizing LSTM Language Models", ICLR 2018.
    """
    _checks.check_cell("cell", cell)
    rate = _checks.check_rate("weight_drop: rate", rate)
    _check_key("weight_drop", key, deterministic)
    if deterministic or rate == 0:
        return cell

    def drop(params):
        w_h = getattr(params, "w_h", None)
        if w_h is None or not hasattr(params, "_replace"):
            raise ValueError(
                f"weight_drop needs params with a recurrent kernel w_h; {cell.name} has "
                f"params of type {type(params).__name__} (wrap each layer of a stack)"
            )
        return params._replace(w_h=w_h * _keep_mask(key, rate, w_h.shape, w_h.dtype))

    def check_params(params) -> int:
        drop(params)
        return cell.check_params(params)

    def scan(params, carry, xs, *, valid, reverse, unroll, grad, remat):
        options = dict(valid=valid, reverse=reverse, unroll=unroll, grad=grad, remat=remat)
        return unroll_time_major(cell, drop(params), carry, xs, **options)

    return dataclasses.replace(
        cell,
        update=lambda params, carry, x_proj: cell.update(drop(params), carry, x_proj),
        check_params=check_params,
        name=f"weight_drop({cell.name}, {rate})",
        split=None,
        scan=scan,
    )


class ZoneoutCarry(NamedTuple):
    """Carry of a :func:`zoneout` cell: the cell's own ``carry`` and ``step [*B, 1]``, the
    number of steps taken (float32), which draws a fresh mask at every step."""

    carry: Any
    step: Array


def zoneout(
    cell: Cell, rate: Any, *, key: Array | None = None, deterministic: bool = False
) -> Cell:
    r"""Zoneout (Krueger et al. 2017): each unit of the state keeps its old value at random.

    .. math::

       s' = d \odot s + (1 - d) \odot \tilde s', \qquad d \sim \mathrm{Bernoulli}(p)

    for every leaf :math:`s` of the carry (``c`` and ``h`` of an LSTM, with their own rates),
    :math:`\tilde s'` the cell's update, with a fresh mask at every step and unit. With
    ``deterministic=True`` the expectation, :math:`s' = p\, s + (1 - p)\, \tilde s'`, as the
    paper evaluates. The output is the zoned-out ``h``. The mask of step ``t`` is drawn for
    the whole batch from ``fold_in(key, t)``, ``t`` counted in the carry
    (:class:`ZoneoutCarry`), so ``unroll`` and a loop of ``step`` agree.

    Args:
      cell: a cell whose carry is the array ``h`` or has a field ``h`` (its output).
      rate: the zoneout probability :math:`p` in ``[0, 1)``, or a pytree of them with the
        carry's structure (e.g. ``gc.LSTMCarry(c=0.5, h=0.05)``, the paper's best LSTM).
      key: a PRNG key (required unless ``deterministic``).
      deterministic: use the expectation instead of random masks.

    Returns:
      A :class:`gatedcells.Cell` with the params of ``cell`` and carry
      :class:`ZoneoutCarry`. With ``deterministic=True`` it keeps ``cell``'s :class:`~gatedcells.MatmulSplit`
      split; with random masks it runs on the generic scan (the cell closes over its key).

    Raises:
      ValueError: a rate outside ``[0, 1)``, a rate tree of another structure, a missing
        ``key``, or a cell whose output is not its state ``h``.

    Examples:
      >>> import jax, jax.numpy as jnp, gatedcells as gc
      >>> cell = gc.lstm(8)
      >>> params = cell.init(jax.random.key(0), 3)
      >>> train = gc.zoneout(cell, gc.LSTMCarry(c=0.5, h=0.05), key=jax.random.key(1))
      >>> carry, ys = gc.unroll(train, params, jnp.ones((2, 5, 3)))
      >>> carry.step[:, 0].tolist()
      [5.0, 5.0]

    References:
      Krueger, Maharaj, Kramár, Pezeshki, Ballas, Ke, Goyal, Bengio, Courville & Pal,
      "Zoneout: Regularizing RNNs by Randomly Preserving Hidden Activations", ICLR 2017.
    """
    _checks.check_cell("cell", cell)
    _check_key("zoneout", key, deterministic)
    shape = jax.eval_shape(lambda: cell.initial_carry(()))
    if not (hasattr(shape, "shape") or hasattr(shape, "h")):
        raise ValueError(
            f"zoneout needs a cell whose carry is h or has a field h (its output); {cell.name} "
            "has another carry (wrap each layer of a stack, and put zoneout inside "
            "learned_initial_carry and resettable)"
        )
    structure = jax.tree.structure(shape)
    if isinstance(rate, int | float) and not isinstance(rate, bool):
        rate = jax.tree.unflatten(structure, [rate] * structure.num_leaves)
    try:
        rates = structure.flatten_up_to(rate)
    except (ValueError, TypeError):
        raise ValueError(
            f"zoneout: rate must be a number or a pytree with the carry's structure "
            f"{structure}, got {rate!r}"
        ) from None
    rates = [_checks.check_rate("zoneout: rate", r) for r in rates]

    def zone(carry: ZoneoutCarry, new):
        """Mix the cell's new carry with the old one; the output is the mixed ``h``."""
        old, new = structure.flatten_up_to(carry.carry), structure.flatten_up_to(new)
        if deterministic:
            mixed = [p * o + (1 - p) * n for p, o, n in zip(rates, old, new, strict=True)]
        else:
            t = jnp.floor(jnp.max(carry.step)).astype(jnp.int32)
            k = jax.random.fold_in(key, jnp.maximum(t, 0))
            mixed = []
            for j, (p, o, n) in enumerate(zip(rates, old, new, strict=True)):
                d = like(jax.random.bernoulli(jax.random.fold_in(k, j), p, n.shape), n)
                mixed.append(jnp.where(d, o, n))
        mixed = jax.tree.unflatten(structure, mixed)
        y = mixed if hasattr(shape, "shape") else mixed.h
        return ZoneoutCarry(mixed, carry.step + 1), y

    def initial_carry(batch_shape: tuple[int, ...] = (), dtype=None) -> ZoneoutCarry:
        step = jnp.zeros((*tuple(batch_shape), 1), jnp.float32)
        return ZoneoutCarry(cell.initial_carry(batch_shape, dtype), step)

    # With random masks the cell closes over its key, often a traced value (a fresh key per
    # training step): it must not reach the fused scan, which takes the cell as a static
    # argument. The deterministic cell keeps the fused split of ``cell``.
    if cell.split is not None and deterministic:
        inner = cell.split

        def pointwise(params, carry, x_proj, h_proj):
            new, _, gates = inner.pointwise(params, carry.carry, x_proj, h_proj)
            return (*zone(carry, new), gates)

        split = inner._replace(hidden=lambda carry: inner.hidden(carry.carry), pointwise=pointwise)
        update = _cell.split_update(split)
    else:
        split = None

        def update(params, carry, x_proj):
            new, _, gates = cell.update(params, carry.carry, x_proj)
            return (*zone(carry, new), gates)

    mode = "deterministic" if deterministic else "random"
    return dataclasses.replace(
        cell,
        carry_fn=initial_carry,
        update=update,
        name=f"zoneout({cell.name}, {jax.tree.unflatten(structure, rates)}, {mode})",
        split=split,
        scan=None,
    )
