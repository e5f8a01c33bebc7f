"""Combinators that take cells and return cells: deep stacks and bidirectional layers."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from .. import _checks
from .._cell import Array, Cell
from ..sequence import unroll_time_major


def stack(*cells: Cell) -> Cell:
    r"""A deep RNN: ``cells`` applied one on top of the other, itself a cell.

    Layer ``k`` reads the output of layer ``k-1``; the stack's output is the last layer's.
    Params and carries are tuples with one entry per layer. The stack is steppable
    (``stack.step`` runs every layer for one time step, for streaming), and
    :func:`gatedcells.unroll` runs it layer by layer over the whole sequence, each layer with
    its own hoisted input projection. Cell types may be mixed (e.g. GRU layers under an LSTM
    on top, as the lecture advises), and layers may be :func:`bidirectional` (then the stack
    runs whole sequences only, like PyTorch's ``nn.LSTM(num_layers, bidirectional=True)``).

    Args:
      *cells: the layers, bottom first. Input sizes chain through ``cell.output_size`` (the
        channels, for convolutional cells). Convolutional and dense layers mix: a dense
        layer over frames ``[*B, *S, I]`` runs on every position, ``S`` as batch axes.

    Returns:
      A :class:`gatedcells.Cell` with params ``tuple`` of the layers' params, carry ``tuple``
      of their carries, and gates ``tuple`` of their gates.

    Examples:
      >>> import jax, jax.numpy as jnp, gatedcells as gc
      >>> deep = gc.stack(gc.gru(16), gc.lstm(8))
      >>> params = deep.init(jax.random.key(0), 3)
      >>> [p.w_x.shape for p in params]
      [(3, 48), (16, 32)]
      >>> carry, ys = gc.unroll(deep, params, jnp.ones((2, 5, 3)))
      >>> ys.shape, deep.output_size
      ((2, 5, 8), 8)
    """
    if not cells:
        raise ValueError("stack needs at least one cell")
    for k, cell in enumerate(cells):
        if not isinstance(cell, Cell):
            raise TypeError(f"stack: argument {k} must be a gatedcells.Cell, got {cell!r}")

    def init(key: Array, input_size: int) -> tuple:
        params = []
        for cell, k in zip(cells, jax.random.split(key, len(cells)), strict=True):
            params.append(cell.init(k, input_size))
            input_size = cell.output_size
        return tuple(params)

    def initial_carry(batch_shape: tuple[int, ...] = (), dtype=None) -> tuple:
        return tuple(cell.initial_carry(batch_shape, dtype) for cell in cells)

    def check_params(params) -> int:
        if not isinstance(params, tuple | list) or len(params) != len(cells):
            raise ValueError(
                f"params of a stack of {len(cells)} layers must be a tuple of {len(cells)} "
                f"params, got {type(params).__name__}"
                + (f" of length {len(params)}" if isinstance(params, tuple | list) else "")
            )
        size = cells[0].check_params(params[0])
        below = cells[0].output_size
        for k in range(1, len(cells)):
            got = cells[k].check_params(params[k])
            if got != below:
                raise ValueError(
                    f"params[{k}] expect input size {got}, but layer {k - 1} outputs {below}"
                )
            below = cells[k].output_size
        return size

    def project(params, xs: Array) -> Array:
        return cells[0].project(params[0], xs)

    def update(params, carry, x_proj: Array):
        new_carry, all_gates, y = [], [], None
        for k, cell in enumerate(cells):
            x_proj_k = x_proj if k == 0 else cell.project(params[k], y)
            c, y, g = cell.update(params[k], carry[k], x_proj_k)
            new_carry.append(c)
            all_gates.append(g)
        return tuple(new_carry), y, tuple(all_gates)

    def scan(params, carry, xs, *, valid, reverse, unroll, grad, remat):
        options = {"valid": valid, "unroll": unroll, "grad": grad, "remat": remat}
        new_carry = []
        for k, cell in enumerate(cells):
            c, xs = unroll_time_major(cell, params[k], carry[k], xs, reverse=reverse, **options)
            new_carry.append(c)
        return tuple(new_carry), xs

    return Cell(
        init_fn=init,
        carry_fn=initial_carry,
        project=project,
        update=update,
        check_params=check_params,
        output_size=cells[-1].output_size,
        name="stack(" + ", ".join(c.name for c in cells) + ")",
        scan=scan,
        feature_ndim=max(cell.feature_ndim for cell in cells),  # dense layers: S is batch
    )


_MERGES: dict[str, Callable[[Array, Array], Array]] = {
    "concat": lambda a, b: jnp.concatenate([a, b], axis=-1),
    "sum": lambda a, b: a + b,
    "mean": lambda a, b: (a + b) / 2,
}


def bidirectional(
    forward: Cell,
    backward: Cell | None = None,
    *,
    merge: str | Callable[[Array, Array], Array] = "concat",
) -> Cell:
    r"""A bidirectional layer: ``forward`` reads the sequence forwards, ``backward`` backwards.

    Both directions read the same input; their outputs, aligned with the input steps, are
    merged: concatenated (``[*B, T, O_f + O_b]``, PyTorch's layout) by default. With
    ``lengths``, the backward direction starts at each sequence's own last valid step, not on
    the padding. The layer is a cell that :func:`gatedcells.unroll` runs whole sequences with
    (``init``, ``initial_carry``, stacking all work); it cannot be stepped, since its backward
    direction needs the future.

    Args:
      forward: the forward cell.
      backward: the backward cell (default: the same architecture as ``forward``, with its
        own params).
      merge: ``"concat"``, ``"sum"``, ``"mean"``, or a function ``(y_fwd, y_bwd) -> y``.

    Returns:
      A :class:`gatedcells.Cell` with params and carry ``(forward's, backward's)``.

    Examples:
      >>> import jax, jax.numpy as jnp, gatedcells as gc
      >>> layer = gc.bidirectional(gc.lstm(4))
      >>> params = layer.init(jax.random.key(0), 3)
      >>> (c_fwd, c_bwd), ys = gc.unroll(layer, params, jnp.ones((2, 5, 3)),
      ...                                lengths=jnp.array([5, 3]))
      >>> ys.shape
      (2, 5, 8)
    """
    _checks.check_cell("forward", forward)
    backward = forward if backward is None else _checks.check_cell("backward", backward)
    if isinstance(merge, str):
        if merge not in _MERGES:
            raise ValueError(f"merge must be one of {sorted(_MERGES)} or a function, got {merge!r}")
        merge_fn = _MERGES[merge]
    elif callable(merge):
        merge_fn = merge
    else:
        raise TypeError(f"merge must be a string or a function, got {merge!r}")
    out = jax.eval_shape(
        merge_fn,
        jax.ShapeDtypeStruct((forward.output_size,), jnp.float32),
        jax.ShapeDtypeStruct((backward.output_size,), jnp.float32),
    )

    def init(key: Array, input_size: int) -> tuple:
        kf, kb = jax.random.split(key)
        return forward.init(kf, input_size), backward.init(kb, input_size)

    def initial_carry(batch_shape: tuple[int, ...] = (), dtype=None) -> tuple:
        return forward.initial_carry(batch_shape, dtype), backward.initial_carry(batch_shape, dtype)

    def check_params(params) -> int:
        if not isinstance(params, tuple | list) or len(params) != 2:
            raise ValueError(
                "params of a bidirectional layer must be a pair (forward's, backward's), got "
                f"{type(params).__name__}"
            )
        size, size_b = forward.check_params(params[0]), backward.check_params(params[1])
        if size != size_b:
            raise ValueError(f"params: forward expects input size {size}, backward {size_b}")
        return size

    def not_steppable(*args, **kwargs):
        raise TypeError(
            f"{name} runs whole sequences only (its backward direction needs the future); "
            "use gatedcells.unroll"
        )

    def scan(params, carry, xs, *, valid, reverse, unroll, grad, remat):
        options = {"valid": valid, "unroll": unroll, "grad": grad, "remat": remat}
        cf, yf = unroll_time_major(forward, params[0], carry[0], xs, reverse=reverse, **options)
        cb, yb = unroll_time_major(
            backward, params[1], carry[1], xs, reverse=not reverse, **options
        )
        return (cf, cb), merge_fn(yf, yb)

    name = f"bidirectional({forward.name}" + (")" if backward is forward else f", {backward.name})")
    return Cell(
        init_fn=init,
        carry_fn=initial_carry,
        project=not_steppable,
        update=not_steppable,
        check_params=check_params,
        output_size=out.shape[-1],
        name=name,
        scan=scan,
        feature_ndim=max(getattr(c, "feature_ndim", 1) for c in (forward, backward)),
    )
