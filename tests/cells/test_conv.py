"""Convolutional cells: the contract on frames ``[B, T, *S, I]``, Flax's ConvLSTMCell, a NumPy
ConvGRU, the combinators and adapters, and the argument errors."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads
from registry import CONV_PLUMBING
from test_contract import loop, scan_of_steps

import gatedcells as gc

B, T, I, H = 2, 4, 3, 4
SPATIAL = {1: (7,), 2: (5, 4), 3: (3, 4, 2)}
KERNELS = {1: (3,), 2: (3, 1), 3: (3, 1, 3)}  # odd, mixed sizes per axis

CASES = {
    "conv_lstm_1d": lambda **kw: gc.conv_lstm(H, KERNELS[1], **kw),
    "conv_lstm_2d": lambda **kw: gc.conv_lstm(H, KERNELS[2], forget_bias=2.0, **kw),
    "conv_lstm_3d": lambda **kw: gc.conv_lstm(H, KERNELS[3], **kw),
    "conv_lstm_2d_even_pairs": lambda **kw: gc.conv_lstm(H, (2, 2), padding=((0, 1),) * 2, **kw),
    "conv_gru_1d": lambda **kw: gc.conv_gru(H, KERNELS[1], **kw),
    "conv_gru_2d": lambda **kw: gc.conv_gru(H, KERNELS[2], **kw),
    "conv_gru_2d_reset_before": lambda **kw: gc.conv_gru(H, (3, 3), reset_after=False, **kw),
    # H + 2: XLA:CPU's float64 gradient of a scan over carries [1, 5, 4, 5] is wrong (jax
    # 0.10.2, any LSTM, dense too: check_grads fails), so no layer has 5 channels here
    "stack_conv_gru_conv_lstm": lambda **kw: gc.stack(
        gc.conv_gru(H, (3, 3), **kw), gc.conv_lstm(H + 2, (1, 3), **kw)
    ),
    "stack_conv_lstm_dense_lstm": lambda **kw: gc.stack(
        gc.conv_lstm(H, (3, 3), **kw), gc.lstm(H - 1, **kw)
    ),
}
assert CONV_PLUMBING <= set(CASES), CONV_PLUMBING - set(CASES)  # the fast tier's plumbing cases


def rank_of(name):
    return 1 if "1d" in name else 3 if "3d" in name else 2


def close(a, b, rtol=1e-5, atol=1e-5):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x, np.float64), np.asarray(y), rtol=rtol, atol=atol)


def random_carry(cell, shape, key):
    return jax.tree.map(
        lambda z: 0.5 * jax.random.normal(key, z.shape, z.dtype), cell.initial_carry(shape)
    )


@functools.cache
def built(name):
    """The case's cell, params, frames, carry and jitted unroll, made once per process."""
    cell = CASES[name]()
    S = SPATIAL[rank_of(name)]
    kp, kx, kc = jax.random.split(jax.random.key(1), 3)
    params = cell.init(kp, I)
    xs = jax.random.normal(kx, (B, T, *S, I))
    run = jax.jit(functools.partial(gc.unroll, cell), static_argnames=("reverse", "time_major"))
    return name, cell, params, xs, random_carry(cell, (B, *S), kc), run


# Cases whose tests run in `make test` only, each beside a fast one that runs its code: the
# convolution of any rank (1-D and 2-D run fast), the GRU's reset-before update (the registry's
# gru_reset_before), a stack of cells (stack_conv_lstm_dense_lstm).
FULL_ONLY = {"conv_lstm_3d", "conv_gru_2d_reset_before", "stack_conv_gru_conv_lstm"}


@pytest.fixture(
    params=[pytest.param(n, marks=[pytest.mark.slow] * (n in FULL_ONLY)) for n in sorted(CASES)]
)
def case(request):
    return built(request.param)


# --------------------------------------------------------------------------------------
# The contract, on frames.


def test_shapes_dtypes_and_feature_axes(case):
    name, cell, params, xs, carry, run = case
    S = xs.shape[2:-1]
    assert cell.feature_ndim == 1 + len(S)
    assert cell.check_params(params) == I
    new_carry, ys = run(params, xs, carry)
    assert ys.shape == (B, T, *S, cell.output_size) and ys.dtype == jnp.float32
    assert jax.tree.map(jnp.shape, new_carry) == jax.tree.map(jnp.shape, carry)
    assert all(leaf.shape[:-1] == (B, *S) for leaf in jax.tree.leaves(new_carry))
    zeros = run(params, xs, None)  # carry=None: zeros of the frames' shape
    close(zeros, run(params, xs, cell.initial_carry((B, *S))))


@pytest.mark.parametrize("reverse", [False, True])
def test_unroll_equals_python_loop_of_steps(case, reverse):
    _, cell, params, xs, carry, run = case
    step = jax.jit(cell.step)
    close(run(params, xs, carry, reverse=reverse), loop(step, params, carry, xs, reverse))


def test_step_equals_recur_of_project(case):
    _, cell, params, xs, carry, _ = case
    x = xs[:, 0]
    close(cell.step(params, carry, x), cell.recur(params, carry, cell.project(params, x)))


@pytest.mark.plumbing
def test_jit_and_vmap(case):
    _, cell, params, xs, carry, run = case
    ref = gc.unroll(cell, params, xs, carry)  # eager
    close(run(params, xs, carry), ref)
    close(jax.jit(cell.step)(params, carry, xs[:, 0]), cell.step(params, carry, xs[:, 0]))
    close(jax.jit(jax.vmap(functools.partial(run, params)))(xs, carry), ref)
    step = jax.jit(jax.vmap(cell.step, in_axes=(None, 0, 0)))
    close(step(params, carry, xs[:, 0]), cell.step(params, carry, xs[:, 0]))


@pytest.mark.plumbing
def test_unbatched_many_batch_axes_and_time_major(case):
    _, cell, params, xs, carry, run = case
    full = run(params, xs, carry)
    one = run(params, xs[1], jax.tree.map(lambda c: c[1], carry))
    close(one, jax.tree.map(lambda a: a[1], full))
    both = run(params, jnp.stack([xs, -xs]), jax.tree.map(lambda c: jnp.stack([c, c]), carry))
    close(jax.tree.map(lambda a: a[0], both), full)
    carry_tm, ys_tm = run(params, jnp.swapaxes(xs, 0, 1), carry, time_major=True)
    close((carry_tm, jnp.swapaxes(ys_tm, 0, 1)), full)


def test_gradients_equal_autodiff_of_the_steps_which_check_grads_checks(case):
    """As in the contract: ``unroll``'s gradient equals autodiff of a ``lax.scan`` of steps,
    and the step's equals finite differences."""
    name, cell, params, xs, carry, _ = case

    def loss_of(run):
        def loss(params, xs, carry):
            new_carry, ys = run(params, carry, xs)
            return jnp.sum(ys**2) + sum(jnp.sum(c) for c in jax.tree.leaves(new_carry))

        return jax.jit(jax.grad(loss, argnums=(0, 1, 2)))

    grads = loss_of(lambda p, c, xs: gc.unroll(cell, p, xs, c))(params, xs, carry)
    assert all(bool(jnp.isfinite(g).all()) for g in jax.tree.leaves(grads))
    want = loss_of(functools.partial(scan_of_steps, cell))(params, xs, carry)
    for got, ref in zip(jax.tree.leaves(grads), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5 * max(1.0, np.abs(ref).max()))
    with jax.enable_x64(True):
        to64 = lambda t: jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), t)
        p64, x64, c64 = to64(params), to64(xs[:1, 0]), to64(jax.tree.map(lambda c: c[:1], carry))
        check_grads(jax.jit(cell.step), (p64, c64, x64), order=1, modes=("rev", "fwd"))


def test_bfloat16_end_to_end(case):
    name, _, _, xs, _, run = case
    cell = CASES[name](param_dtype=jnp.bfloat16)
    params = cell.init(jax.random.key(2), I)
    assert all(leaf.dtype == jnp.bfloat16 for leaf in jax.tree.leaves(params))
    carry, ys = jax.jit(functools.partial(gc.unroll, cell))(params, xs.astype(jnp.bfloat16))
    assert ys.dtype == jnp.bfloat16
    assert all(leaf.dtype == jnp.bfloat16 for leaf in jax.tree.leaves(carry))
    ref_params = jax.tree.map(lambda a: a.astype(jnp.float32), params)
    _, ref = run(ref_params, xs.astype(jnp.bfloat16).astype(jnp.float32), None)
    np.testing.assert_allclose(ys.astype(jnp.float32), ref, atol=0.1)


def test_bfloat16_compute_dtype():
    cell, ref_cell = gc.conv_lstm(H, (3, 3), dtype=jnp.bfloat16), gc.conv_lstm(H, (3, 3))
    params = cell.init(jax.random.key(0), I)
    xs = jax.random.normal(jax.random.key(1), (B, T, 5, 4, I))
    carry, ys = gc.unroll(cell, params, xs)
    assert ys.dtype == carry.c.dtype == jnp.float32  # convolutions in bf16, state in f32
    np.testing.assert_allclose(ys, gc.unroll(ref_cell, params, xs)[1], atol=3e-2)


# --------------------------------------------------------------------------------------
# Lengths, padding, reverse, remat, combinators.

LENGTHS = jnp.array([3, 1])


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.plumbing
def test_lengths_and_nan_padding(case, reverse):
    _, cell, params, xs, carry, run = case
    pad = (jnp.arange(T)[None, :] >= LENGTHS[:, None]).reshape(B, T, *(1,) * (xs.ndim - 2))
    nan_xs = jnp.where(pad, jnp.nan, xs)

    def loss(params, xs):
        new_carry, ys = gc.unroll(cell, params, xs, carry, lengths=LENGTHS, reverse=reverse)
        return jnp.sum(ys**2) + sum(jnp.sum(c) for c in jax.tree.leaves(new_carry)), ys

    value_and_grad = jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))
    (value, ys), grads = value_and_grad(params, nan_xs)
    assert bool(jnp.isfinite(value)) and all(
        bool(jnp.isfinite(g).all()) for g in jax.tree.leaves(grads)
    )
    assert float(jnp.abs(jnp.where(pad, ys, 0)).max()) == 0.0  # outputs past the end
    assert float(jnp.abs(jnp.where(pad, grads[1], 0)).max()) == 0.0  # no gradient there
    got = run(params, nan_xs, carry, lengths=LENGTHS, reverse=reverse)
    for b, n in enumerate(LENGTHS.tolist()):  # each sequence alone, cut at its length
        pick = functools.partial(lambda b, a: a[b], b)
        want = run(params, xs[b, :n], jax.tree.map(pick, carry), reverse=reverse)
        close(jax.tree.map(pick, got[0]), want[0])
        close(got[1][b, :n], want[1])


@pytest.mark.parametrize("remat", [True, 3])
def test_remat_equals_plain(remat):
    cell = CASES["conv_lstm_2d"]()
    params = cell.init(jax.random.key(0), I)
    xs = jax.random.normal(jax.random.key(1), (B, 7, 5, 4, I))

    def loss(params, xs, remat):
        return jnp.sum(gc.unroll(cell, params, xs, lengths=jnp.array([7, 5]), remat=remat)[1] ** 2)

    close(loss(params, xs, remat), loss(params, xs, False))
    grad = jax.jit(jax.grad(loss, argnums=(0, 1)), static_argnums=2)
    close(grad(params, xs, remat), grad(params, xs, False), rtol=1e-4)
