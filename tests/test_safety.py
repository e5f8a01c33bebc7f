"""Careless use that used to lose work or give a wrong answer silently (issue: no lost runs,
no silent overwrites, no NaN from padding): each case with the one-line error a user sees."""

import jax
import jax.numpy as jnp
import pytest
from jax.experimental import checkify

import gatedcells as gc


def test_params_too_large_for_memory_are_refused_before_allocation():
    with pytest.raises(
        ValueError, match=r"the params of lstm\(1000000000\) would take [\d,.]+ GiB"
    ):
        gc.lstm(10**9).init(jax.random.key(0), 3)


def test_check_lengths_eager():
    assert gc.check_lengths(jnp.array([0, 5]), 5).shape == (2,)
    with pytest.raises(
        ValueError, match=r"lengths must lie in \[0, T\] = \[0, 5\], got values from -1 to 5"
    ):
        gc.check_lengths(jnp.array([-1, 5]), 5)
    with pytest.raises(TypeError, match="seq_lengths must have an integer dtype"):
        gc.check_lengths(jnp.array([1.0]), 5, "seq_lengths")


def test_check_lengths_under_jit_reports_through_checkify():
    cell = gc.gru(3)
    params = cell.init(jax.random.key(0), 2)
    xs = jnp.ones((2, 5, 2))

    @jax.jit
    def run(params, xs, lengths):
        return gc.unroll(cell, params, xs, lengths=gc.check_lengths(lengths, xs.shape[1]))[1]

    err, _ = checkify.checkify(run)(params, xs, jnp.array([5, 2]))
    assert err.get() is None
    err, _ = checkify.checkify(run)(params, xs, jnp.array([9, 2]))
    assert "lengths must lie in [0, T] = [0, 5], got values from 2 to 9" in err.get()


def test_lengths_out_of_range_under_jit_clamp_as_documented():
    cell = gc.gru(3)
    params = cell.init(jax.random.key(0), 2)
    xs = jax.random.normal(jax.random.key(1), (2, 5, 2))
    run = jax.jit(lambda lengths: gc.unroll(cell, params, xs, lengths=lengths))
    got = run(jnp.array([9, -3]))
    want = gc.unroll(cell, params, xs, lengths=jnp.array([5, 0]))
    jax.tree.map(lambda a, b: pytest.approx(b) == a, got, want)
    assert bool(jnp.allclose(got[1], want[1])) and bool(jnp.allclose(got[0], want[0]))


def test_flax_rnn_of_a_bare_cell_says_to_wrap_it():
    nn = pytest.importorskip("flax.linen")
    with pytest.raises(AttributeError, match=r"wrap it, flax.linen.RNN\(gatedcells.linen.Cell"):
        nn.RNN(gc.lstm(4)).init(jax.random.key(0), jnp.ones((2, 3, 5)))
