"""The cell contract, run over every cell and flag combination of the registry.

Each cell, its inputs and its compiled functions are made once per process (:func:`case`)
and shared by the tests: a test compares, it does not re-trace. The reference of every
sequence path is a Python loop of ``cell.step``; of every gradient, autodiff of a plain
``lax.scan`` of steps, whose step ``check_grads`` checks against finite differences.
"""

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads
from registry import LOOSE, NAMES, PER_BATCH_MASKS, REVERSE_INPUTS, build, rebuild

import gatedcells as gc

I, B, T = 4, 3, 7


class Case(NamedTuple):
    """A registry cell with its params, inputs ``[B, T, I]``, a drawn carry, its tolerance,
    and its jitted ``unroll`` (static ``reverse``, ``time_major``) and ``step``."""

    name: str
    cell: gc.Cell
    params: Any
    xs: jax.Array
    carry: Any
    tol: dict
    unroll: Any
    step: Any

    def close(self, a, b):
        jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, **self.tol), a, b)

    def close_scaled(self, a, b):
        """``close`` with ``atol`` relative to each leaf's largest entry (gradients summed
        in another order, by another algorithm, differ by float32 rounding of their scale)."""

        def check(x, y):
            atol = self.tol["atol"] * max(1.0, float(np.abs(y).max(initial=0.0)))
            np.testing.assert_allclose(x, y, rtol=self.tol["rtol"], atol=atol)

        jax.tree.map(check, a, b)

    def loop(self, params, carry, xs, reverse=False):
        """A Python loop of steps: the reference for ``unroll``."""
        return loop(self.step, params, carry, xs, reverse)


def loop(step, params, carry, xs, reverse=False):
    """A Python loop of ``step`` over ``xs [B, T, I]``."""
    ys = [None] * xs.shape[1]
    order = range(xs.shape[1] - 1, -1, -1) if reverse else range(xs.shape[1])
    for t in order:
        carry, ys[t] = step(params, carry, xs[:, t])
    return carry, jnp.stack(ys, axis=1)


def scan_of_steps(cell, params, carry, xs):
    """``lax.scan`` of ``cell.step`` over ``xs [B, T, I]``: none of ``unroll``'s paths."""
    carry, ys = jax.lax.scan(lambda c, x: cell.step(params, c, x), carry, jnp.swapaxes(xs, 0, 1))
    return carry, jnp.swapaxes(ys, 0, 1)


@functools.cache
def case(name: str) -> Case:
    cell = build(name)
    kp, kx, kc = jax.random.split(jax.random.key(1), 3)
    carry = jax.tree.map(
        lambda z: 0.5 * jax.random.normal(kc, z.shape, z.dtype), cell.initial_carry((B,))
    )
    unroll = jax.jit(functools.partial(gc.unroll, cell), static_argnames=("reverse", "time_major"))
    return Case(
        name, cell, init(cell, kp), jax.random.normal(kx, (B, T, I)), carry,
        LOOSE.get(name, dict(rtol=1e-5, atol=1e-5)), unroll, jax.jit(cell.step),
    )  # fmt: skip


cases = pytest.mark.parametrize("name", NAMES)


def init(cell, key):
    """``cell.init(key, I)`` as one compiled program (eagerly, each of its random draws and
    casts would be a program of its own)."""
    return jax.jit(cell.init, static_argnums=1)(key, I)


def loss_of(run):
    """A loss that every output and every leaf of the final carry feed."""

    def loss(params, xs, carry):
        new_carry, ys = run(params, carry, xs)
        return jnp.sum(ys**2) + sum(jnp.sum(c) for c in jax.tree.leaves(new_carry))

    return loss


@cases
def test_shapes_and_dtypes(name):
    c = case(name)
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(c.params))
    new_carry, ys = c.unroll(c.params, c.xs, c.carry)
    assert ys.shape == (B, T, c.cell.output_size) and ys.dtype == jnp.float32
    assert jax.tree.map(jnp.shape, new_carry) == jax.tree.map(jnp.shape, c.carry)
    assert c.cell.check_params(c.params) == I


@cases
@pytest.mark.parametrize("reverse", [False, True])
def test_unroll_equals_python_loop_of_steps(name, reverse):
    c = case(name)
    xs_loop = REVERSE_INPUTS[name](c.xs) if reverse and name in REVERSE_INPUTS else c.xs
    c.close(
        c.unroll(c.params, c.xs, c.carry, reverse=reverse),
        c.loop(c.params, c.carry, xs_loop, reverse),
    )


@cases
def test_step_equals_recur_of_project(name):
    c = case(name)

    def halves(params, carry, x):
        x_proj = c.cell.project(params, x)
        new_carry, y, _ = c.cell.update(params, carry, x_proj)
        return c.cell.recur(params, carry, x_proj), (new_carry, y)

    step = c.step(c.params, c.carry, c.xs[:, 0])
    by_recur, by_update = jax.jit(halves)(c.params, c.carry, c.xs[:, 0])
    c.close(step, by_recur)
    c.close(by_update, step)


@cases
@pytest.mark.plumbing
def test_jit_equals_eager(name):
    c = case(name)
    c.close(c.unroll(c.params, c.xs, c.carry), gc.unroll(c.cell, c.params, c.xs, c.carry))
    x = c.xs[:, 0]
    c.close(c.step(c.params, c.carry, x), c.cell.step(c.params, c.carry, x))


@cases
@pytest.mark.plumbing
def test_vmap_equals_batched(name):
    c = case(name)
    if name in PER_BATCH_MASKS:
        pytest.skip("masks are drawn per batch shape: a vmapped cell draws other masks")
    step = jax.jit(jax.vmap(c.cell.step, in_axes=(None, 0, 0)))
    c.close(step(c.params, c.carry, c.xs[:, 0]), c.step(c.params, c.carry, c.xs[:, 0]))
    run = jax.jit(jax.vmap(functools.partial(gc.unroll, c.cell), in_axes=(None, 0, 0)))
    c.close(run(c.params, c.xs, c.carry), c.unroll(c.params, c.xs, c.carry))


@cases
@pytest.mark.plumbing
def test_unbatched_and_many_batch_axes(name):
    c = case(name)
    if name in PER_BATCH_MASKS:
        pytest.skip("masks are drawn per batch shape: one example draws other masks")
    full = c.unroll(c.params, c.xs, c.carry)
    one = c.unroll(c.params, c.xs[1], jax.tree.map(lambda a: a[1], c.carry))
    c.close(one, jax.tree.map(lambda a: a[1], full))
    # [2, B, T, I]: two leading batch axes
    xs2 = jnp.stack([c.xs, -c.xs])
    carry2 = jax.tree.map(lambda a: jnp.stack([a, a]), c.carry)
    both = c.unroll(c.params, xs2, carry2)
    c.close(jax.tree.map(lambda a: a[0], both), full)


@cases
@pytest.mark.plumbing
def test_time_major_equals_batch_major(name):
    c = case(name)
    carry_tm, ys_tm = c.unroll(c.params, jnp.swapaxes(c.xs, 0, 1), c.carry, time_major=True)
    c.close((carry_tm, jnp.swapaxes(ys_tm, 0, 1)), c.unroll(c.params, c.xs, c.carry))


@cases
def test_gradients_equal_autodiff_of_the_steps_which_check_grads_checks(name):
    """The gradient of ``unroll`` (fused, a custom scan's own, or autodiff: whatever path
    the cell takes) equals autodiff of a plain ``lax.scan`` of steps (whose values the
    loop test pins); the step's own gradient equals finite differences (``check_grads``,
    float64, both modes)."""
    c = case(name)
    by_unroll = loss_of(lambda p, carry, xs: gc.unroll(c.cell, p, xs, carry))
    by_steps = loss_of(lambda p, carry, xs: scan_of_steps(c.cell, p, carry, xs))
    args = (c.params, c.xs, c.carry)
    got = jax.jit(jax.grad(by_unroll, argnums=(0, 1, 2)))(*args)
    assert all(bool(jnp.isfinite(g).all()) for g in jax.tree.leaves(got))
    c.close_scaled(got, jax.jit(jax.grad(by_steps, argnums=(0, 1, 2)))(*args))
    if name == "lstm_bf16_compute":
        return  # finite differences through bfloat16 matmuls are not meaningful
    with jax.enable_x64(True):
        to64 = lambda t: jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), t)
        p64, x64, c64 = (
            to64(c.params),
            to64(c.xs[:2, 0]),
            to64(jax.tree.map(lambda a: a[:2], c.carry)),
        )
        check_grads(jax.jit(c.cell.step), (p64, c64, x64), order=1, modes=("rev", "fwd"))


@cases
@pytest.mark.plumbing
def test_bfloat16_end_to_end(name):
    c = case(name)
    cell = rebuild(name, param_dtype=jnp.bfloat16)
    if cell is None:
        pytest.skip("no rebuild with another param_dtype (see registry.NO_REBUILD)")
    params = init(cell, jax.random.key(2))
    assert all(leaf.dtype == jnp.bfloat16 for leaf in jax.tree.leaves(params))
    carry, ys = jax.jit(functools.partial(gc.unroll, cell))(params, c.xs.astype(jnp.bfloat16))
    assert ys.dtype == jnp.bfloat16
    assert all(leaf.dtype == jnp.bfloat16 for leaf in jax.tree.leaves(carry))
    ref_params = jax.tree.map(lambda a: a.astype(jnp.float32), params)
    _, ref = c.unroll(ref_params, c.xs.astype(jnp.bfloat16).astype(jnp.float32), None)
    np.testing.assert_allclose(ys.astype(jnp.float32), ref, atol=0.1)


@pytest.mark.slow
def test_contract_holds_under_xla_default_flags():
    """The suite compiles with XLA:CPU's classic emitters (``conftest.py``): the contract of
    the cells with the most delicate numbers (the mLSTM's forms, the sLSTM's exponential
    gates, layer norm) holds under XLA's own defaults too."""
    import os
    import subprocess
    import sys

    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "0", "-m",
            "not slow", __file__, "-k", "mlstm or slstm_exp_heads or lstm_layer_norm"]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, env=dict(os.environ, XLA_FLAGS=""))
    assert done.returncode == 0, done.stdout[-4000:]
    assert " passed" in done.stdout.splitlines()[-1]


@pytest.mark.parametrize("name", ["lstm"])
def test_a_registry_cells_tests_are_one_xdist_group(name, request):
    """Under ``--dist loadgroup`` (``make test``) a cell's tests run on one worker, which
    compiles its programs once: xdist names the group in the test's id (pytest 9.2 lost it
    silently, pytest-xdist#1386; constraints.txt pins 9.1.1)."""
    if getattr(request.config.option, "loadgroup", False):  # set on xdist's workers
        assert request.node.nodeid.endswith(f"@{name}")
