"""The minimal gated cells of Feng et al. (2024): minGRU and minLSTM.

Their gates read only the input, so the recurrence is linear in ``h``,
``h_t = a_t * h_{t-1} + b_t``, and a whole sequence runs as one
:func:`gatedcells.linear_recurrence` (sequential or parallel) after one input projection.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from .. import _checks
from .._cell import Array, Cell
from ..sequence import _linear
from . import _anatomy, _blocks


class MinimalParams(NamedTuple):
    """Weights of a minimal gated cell: the input projection only (no recurrent kernel).

    Attributes:
      w_x: input kernel ``[I, G*H]``, blocks ``(z, n)`` for minGRU, ``(i, f, g)`` for minLSTM.
      b: bias ``[G*H]``.
    """

    w_x: Array
    b: Array


class MinGRUGates(NamedTuple):
    """minGRU gate activations, each ``[*B, H]``: update ``z`` (the share of the candidate
    taken) and candidate ``n``."""

    z: Array
    n: Array


class MinLSTMGates(NamedTuple):
    """minLSTM gate activations, each ``[*B, H]``: the normalised input and forget gates
    ``i = i'/(i'+f')``, ``f = f'/(i'+f')`` (they sum to one) and the candidate ``g``."""

    i: Array
    f: Array
    g: Array


class MinimalSpec(NamedTuple):
    """The static flags of a minimal cell (:func:`min_gru`, :func:`min_lstm`)."""

    name: str
    hidden_size: int
    coefficients: Callable  # (positive, x_proj) -> (log a, b, gates) of h' = a h + b
    blocks: tuple[str, ...]
    positive: bool
    method: str | None
    kernel_init: Callable
    bias_init: Callable
    param_dtype: Any
    dtype: Any


def positive_candidate(v: Array) -> Array:
    r"""Feng et al.'s :math:`g(v) = v + 1/2` for :math:`v \ge 0`, :math:`\sigma(v)` otherwise:
    continuous, increasing and positive, so the state stays positive."""
    return jnp.where(v >= 0, v + 0.5, jax.nn.sigmoid(v))


def min_gru_coefficients(positive: bool, x_proj: Array) -> tuple[Array, Array, MinGRUGates]:
    """``(log a, b, gates)`` of minGRU's recurrence ``h' = a*h + b``. See :func:`min_gru`."""
    k = _blocks.split(x_proj, ("z", "n"))
    z = jax.nn.sigmoid(k["z"])
    n = positive_candidate(k["n"]) if positive else k["n"]
    return -jax.nn.softplus(k["z"]), z * n, MinGRUGates(z, n)  # log(1 - z) = -softplus(k_z)


def min_lstm_coefficients(positive: bool, x_proj: Array) -> tuple[Array, Array, MinLSTMGates]:
    """``(log a, b, gates)`` of minLSTM's recurrence ``h' = a*h + b``. See :func:`min_lstm`."""
    k = _blocks.split(x_proj, ("i", "f", "g"))
    log_i, log_f = -jax.nn.softplus(-k["i"]), -jax.nn.softplus(-k["f"])  # log sigmoid
    log_sum = jnp.logaddexp(log_i, log_f)
    i, log_a = jnp.exp(log_i - log_sum), log_f - log_sum
    g = positive_candidate(k["g"]) if positive else k["g"]
    return log_a, i * g, MinLSTMGates(i, jnp.exp(log_a), g)


def update(
    spec: MinimalSpec, params: MinimalParams, h: Array, x_proj: Array
) -> tuple[Array, Array, Any]:
    """One step of a minimal cell, ``h' = a h + b`` from its coefficients (:func:`min_gru`'s
    ``h' = (1 - z) h + z n``, :func:`min_lstm`'s ``h' = f h + i g``)."""
    del params
    with jax.named_scope(f"gatedcells.{spec.name.partition('(')[0]}"):
        log_a, b, gates = spec.coefficients(spec.positive, x_proj.astype(h.dtype))
        h = jnp.exp(log_a) * h + b
    return h, h, gates


def init(spec: MinimalSpec, key: Array, input_size: int) -> MinimalParams:
    """``w_x`` block by block and ``b``, by their initializers."""
    H, n, dtype = spec.hidden_size, len(spec.blocks), spec.param_dtype
    kx, kb = jax.random.split(key)
    return MinimalParams(
        w_x=_blocks.init_blocks(spec.kernel_init, kx, input_size, H, n, dtype),
        b=_blocks.gate_biases(spec.bias_init, kb, H, spec.blocks, {}, dtype),
    )


def scan(spec, params, carry, xs, *, valid, reverse, unroll, grad, remat):
    """The whole sequence: one projection, then one :func:`gatedcells.linear_recurrence`."""
    del remat  # the recurrence keeps its states: nothing to recompute
    x_proj = _blocks.project(spec, params, xs).astype(carry.dtype)
    log_a, b, _ = spec.coefficients(spec.positive, x_proj)
    method = _linear.check_method(spec.method)
    return _linear.linear_scan(
        log_a, b, carry, valid=valid, reverse=reverse, method=method, unroll=unroll, grad=grad
    )


def minimal_cell(
    factory: str, H: int, coefficients: Callable, blocks: tuple[str, ...], *flags: Any
) -> Cell:
    """A minimal cell of ``H`` units from ``coefficients``, with ``flags`` (``positive``,
    ``method``, ``kernel_init``, ``bias_init``, ``param_dtype``, ``dtype``) checked."""
    H = _checks.check_positive_int("hidden_size", H)
    positive, method, kernel_init, bias_init, param_dtype, dtype = flags
    _checks.check_flag("positive", positive)
    _checks.check_factory_args(
        functions={"kernel_init": kernel_init, "bias_init": bias_init},
        dtypes={"param_dtype": param_dtype, "dtype": dtype},
    )
    if method is not None:
        _linear.check_method(method)
    name = f"{factory}({H})" if positive else f"{factory}({H}, positive=False)"
    spec = MinimalSpec(name, H, coefficients, blocks, *flags)
    shapes = {"w_x": (None, len(blocks) * H), "b": (len(blocks) * H,)}
    return _anatomy.assemble(spec, init, _blocks.project, update, scan=scan, shapes=shapes)


def min_gru(
    hidden_size: int,
    *,
    positive: bool = True,
    method: str | None = None,
    kernel_init: Callable = jax.nn.initializers.lecun_normal(),
    bias_init: Callable = jax.nn.initializers.zeros,
    param_dtype: Any = jnp.float32,
    dtype: Any = None,
) -> Cell:
    r"""minGRU (Feng et al. 2024): a GRU whose gates read only the input.

    .. math::

       z &= \sigma(x W_{xz} + b_z) \qquad \tilde h = g(x W_{xn} + b_n) \\
       h' &= (1 - z) \odot h + z \odot \tilde h

    with :math:`g` the paper's positive candidate map (``positive_candidate``, used by
    its log-space implementation; ``positive=False`` takes :math:`\tilde h` linear, as in
    the paper's section 3). ``z`` is the share of the candidate taken (the paper's
    convention; our :func:`gatedcells.gru`'s ``z`` is the share kept). No gate reads ``h``,
    so ``h' = a \odot h + b`` with :math:`a = 1 - z`, :math:`b = z \odot \tilde h` is a
    linear recurrence: :func:`gatedcells.unroll` projects the whole sequence in one matmul
    and runs :func:`gatedcells.linear_recurrence`, sequentially or as a parallel scan in log
    space (``method``); ``step`` runs one step. The output is ``h``.

    Parameter count: ``2*(I*H + H)``, no recurrent weights (a GRU has ``3*(I*H + H*H + H)``).

    Args:
      hidden_size: size ``H`` of the state.
      positive: apply :math:`g` to the candidate (default, the paper's log-space model).
      method: the sequence path, ``"sequential"``, ``"associative"`` or ``None`` for the
        measured faster one on the default backend (:func:`gatedcells.linear_recurrence`).
      kernel_init: initializer of each ``[I, H]`` block of ``w_x``.
      bias_init: initializer of ``b``.
      param_dtype: dtype of the params and of the default carry.
      dtype: compute dtype of the input projection (``None``: the params' dtype).

    Returns:
      A :class:`gatedcells.Cell` with :class:`MinimalParams` (blocks ``(z, n)``), carry
      ``h [*B, H]`` and gates :class:`MinGRUGates`.

    Raises:
      ValueError: a non-positive ``hidden_size`` or an unknown ``method``.
      TypeError: an initializer not a function, a dtype not floating, ``positive`` not a
        bool.

    Examples:
      >>> import jax, jax.numpy as jnp, gatedcells as gc
      >>> cell = gc.min_gru(8)          # method="associative" for the parallel scan
      >>> params = cell.init(jax.random.key(0), 3)
      >>> h, ys = gc.unroll(cell, params, jnp.ones((2, 50, 3)))
      >>> ys.shape, gc.count_params(params)
      ((2, 50, 8), 64)

    References:
      Feng, Tung, Ahmed, Bengio & Hajimirsadeghi, "Were RNNs All We Needed?", 2024.
    """
    flags = (positive, method, kernel_init, bias_init, param_dtype, dtype)
    return minimal_cell("min_gru", hidden_size, min_gru_coefficients, ("z", "n"), *flags)


def min_lstm(
    hidden_size: int,
    *,
    positive: bool = True,
    method: str | None = None,
    kernel_init: Callable = jax.nn.initializers.lecun_normal(),
    bias_init: Callable = jax.nn.initializers.zeros,
    param_dtype: Any = jnp.float32,
    dtype: Any = None,
) -> Cell:
    r"""minLSTM (Feng et al. 2024): an LSTM whose gates read only the input, no output gate.

    .. math::

       f' &= \sigma(x W_{xf} + b_f) \qquad i' = \sigma(x W_{xi} + b_i) \qquad
       \tilde h = g(x W_{xg} + b_g) \\
       f &= \frac{f'}{f' + i'} \qquad i = \frac{i'}{f' + i'} \\
       h' &= f \odot h + i \odot \tilde h

    The gates are normalised to sum to one (the paper's length-independent scaling), so the
    state stays on the scale of the candidates. :math:`g` and ``positive`` as in
    :func:`min_gru`. A linear recurrence with :math:`a = f`, :math:`b = i \odot \tilde h`,
    run by :func:`gatedcells.linear_recurrence` (``method``). The output is ``h``.

    Parameter count: ``3*(I*H + H)``.

    Args:
      hidden_size, positive, method, kernel_init, bias_init, param_dtype, dtype: as
        :func:`min_gru`'s.

    Returns:
      A :class:`gatedcells.Cell` with :class:`MinimalParams` (blocks ``(i, f, g)``), carry
      ``h [*B, H]`` and gates :class:`MinLSTMGates`.

    Raises:
      ValueError, TypeError: as :func:`min_gru`.

    Examples:
      >>> import jax, jax.numpy as jnp, gatedcells as gc
      >>> cell = gc.min_lstm(8)
      >>> params = cell.init(jax.random.key(0), 3)
      >>> gates = cell.gates(params, cell.initial_carry(), jnp.ones(3))
      >>> bool(jnp.allclose(gates.i + gates.f, 1.0)), gc.count_params(params)
      (True, 96)

    References:
      Feng, Tung, Ahmed, Bengio & Hajimirsadeghi, "Were RNNs All We Needed?", 2024.
    """
    flags = (positive, method, kernel_init, bias_init, param_dtype, dtype)
    return minimal_cell("min_lstm", hidden_size, min_lstm_coefficients, ("i", "f", "g"), *flags)
