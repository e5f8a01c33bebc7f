"""The cell contract, run over every cell and flag combination of the registry."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads
from registry import CELLS, LOOSE, PER_BATCH_MASKS, REBUILD, REVERSE_INPUTS

import gatedcells as gc

I, B, T = 4, 3, 7
TOL = {}  # set per cell by the ``case`` fixture


@pytest.fixture(params=sorted(CELLS))
def case(request):
    cell = CELLS[request.param]()
    kp, kx, kc = jax.random.split(jax.random.key(1), 3)
    params = cell.init(kp, I)
    xs = jax.random.normal(kx, (B, T, I))
    carry = jax.tree.map(
        lambda z: 0.5 * jax.random.normal(kc, z.shape, z.dtype), cell.initial_carry((B,))
    )
    global TOL
    TOL = LOOSE.get(request.param, dict(rtol=1e-5, atol=1e-5))
    return request.param, cell, params, xs, carry


def close(a, b):
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, **TOL), a, b)


def loop(cell, params, carry, xs, reverse=False):
    """A Python loop of ``cell.step``: the reference for ``unroll``."""
    ys = [None] * xs.shape[1]
    order = range(xs.shape[1] - 1, -1, -1) if reverse else range(xs.shape[1])
    for t in order:
        carry, ys[t] = cell.step(params, carry, xs[:, t])
    return carry, jnp.stack(ys, axis=1)


def test_shapes_and_dtypes(case):
    _, cell, params, xs, carry = case
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(params))
    new_carry, ys = gc.unroll(cell, params, xs, carry)
    assert ys.shape == (B, T, cell.output_size) and ys.dtype == jnp.float32
    assert jax.tree.map(jnp.shape, new_carry) == jax.tree.map(jnp.shape, carry)
    assert cell.check_params(params) == I


@pytest.mark.parametrize("reverse", [False, True])
def test_unroll_equals_python_loop_of_steps(case, reverse):
    name, cell, params, xs, carry = case
    xs_loop = REVERSE_INPUTS[name](xs) if reverse and name in REVERSE_INPUTS else xs
    close(
        gc.unroll(cell, params, xs, carry, reverse=reverse),
        loop(cell, params, carry, xs_loop, reverse),
    )


def test_step_equals_recur_of_project(case):
    _, cell, params, xs, carry = case
    x = xs[:, 0]
    close(cell.step(params, carry, x), cell.recur(params, carry, cell.project(params, x)))
    new_carry, y, _ = cell.update(params, carry, cell.project(params, x))
    close((new_carry, y), cell.step(params, carry, x))


def test_jit_equals_eager(case):
    _, cell, params, xs, carry = case
    run = functools.partial(gc.unroll, cell)
    close(jax.jit(run)(params, xs, carry), run(params, xs, carry))
    close(jax.jit(cell.step)(params, carry, xs[:, 0]), cell.step(params, carry, xs[:, 0]))


def test_vmap_equals_batched(case):
    name, cell, params, xs, carry = case
    if name in PER_BATCH_MASKS:
        pytest.skip("masks are drawn per batch shape: a vmapped cell draws other masks")
    step = jax.vmap(cell.step, in_axes=(None, 0, 0))
    close(step(params, carry, xs[:, 0]), cell.step(params, carry, xs[:, 0]))
    run = jax.vmap(functools.partial(gc.unroll, cell, params))
    close(run(xs, carry), gc.unroll(cell, params, xs, carry))


def test_unbatched_and_many_batch_axes(case):
    name, cell, params, xs, carry = case
    if name in PER_BATCH_MASKS:
        pytest.skip("masks are drawn per batch shape: one example draws other masks")
    full = gc.unroll(cell, params, xs, carry)
    one = gc.unroll(cell, params, xs[1], jax.tree.map(lambda c: c[1], carry))
    close(one, jax.tree.map(lambda a: a[1], full))
    # [2, B, T, I]: two leading batch axes
    xs2 = jnp.stack([xs, -xs])
    carry2 = jax.tree.map(lambda c: jnp.stack([c, c]), carry)
    both = gc.unroll(cell, params, xs2, carry2)
    close(jax.tree.map(lambda a: a[0], both), full)


def test_time_major_equals_batch_major(case):
    _, cell, params, xs, carry = case
    carry_tm, ys_tm = gc.unroll(cell, params, jnp.swapaxes(xs, 0, 1), carry, time_major=True)
    close((carry_tm, jnp.swapaxes(ys_tm, 0, 1)), gc.unroll(cell, params, xs, carry))


def test_gradients_finite_and_checked(case):
    name, cell, params, xs, carry = case

    def loss(params, xs, carry):
        new_carry, ys = gc.unroll(cell, params, xs, carry)
        return jnp.sum(ys**2) + sum(jnp.sum(c) for c in jax.tree.leaves(new_carry))

    grads = jax.grad(loss, argnums=(0, 1, 2))(params, xs, carry)
    assert all(bool(jnp.isfinite(g).all()) for g in jax.tree.leaves(grads))
    if name == "lstm_bf16_compute":
        return  # finite differences through bfloat16 matmuls are not meaningful
    with jax.enable_x64(True):
        to64 = lambda t: jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), t)
        p64, x64, c64 = to64(params), to64(xs[:2, :4]), to64(jax.tree.map(lambda c: c[:2], carry))
        # jitted: finite differences call them many times (compiled once, not traced each time)
        check_grads(jax.jit(loss), (p64, x64, c64), order=1, modes=("rev",), atol=1e-5, rtol=1e-5)
        check_grads(jax.jit(cell.step), (p64, c64, x64[:, 0]), order=1, modes=("rev", "fwd"))


def test_bfloat16_end_to_end(case):
    name, _, _, xs, _ = case
    cell = _rebuild(name, param_dtype=jnp.bfloat16)
    if cell is None:
        pytest.skip("no rebuild with another param_dtype (combinator, or see registry)")
    params = cell.init(jax.random.key(2), I)
    assert all(leaf.dtype == jnp.bfloat16 for leaf in jax.tree.leaves(params))
    carry, ys = gc.unroll(cell, params, xs.astype(jnp.bfloat16))
    assert ys.dtype == jnp.bfloat16
    assert all(leaf.dtype == jnp.bfloat16 for leaf in jax.tree.leaves(carry))
    ref_params = jax.tree.map(lambda a: a.astype(jnp.float32), params)
    _, ref = gc.unroll(_rebuild(name), ref_params, xs.astype(jnp.bfloat16).astype(jnp.float32))
    np.testing.assert_allclose(ys.astype(jnp.float32), ref, atol=0.1)


def _rebuild(name, **kw):
    """The registry cell ``name`` rebuilt with extra factory keywords (None for stacks)."""
    if name in REBUILD:
        return REBUILD[name](**kw)
    factory = {"simple": gc.simple_rnn, "lstm": gc.lstm, "gru": gc.gru}.get(name.split("_")[0])
    if name.startswith("stack") or factory is None:
        return None
    base = CELLS[name]()
    flags = {
        "simple_rnn_relu": dict(activation=jax.nn.relu),
        "lstm_forget_bias5": dict(forget_bias=5.0),
        "lstm_no_forget_gate": dict(forget_gate=False),
        "lstm_identity_output": dict(output_activation=jax.nn.identity),
        "lstm_fixed_io": dict(fixed_gates={"i": 1.0, "o": 1.0}),
        "lstm_simple_regime": dict(
            fixed_gates={"i": 1.0, "f": 0.0, "o": 1.0}, output_activation=jax.nn.identity
        ),
        "gru_reset_before": dict(reset_after=False),
        "gru_update_bias0": dict(update_bias=0.0),
    }.get(name, {})
    return factory(base.output_size, **flags, **kw)
