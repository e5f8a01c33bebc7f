"""Garbage padding (NaN, Inf, 1e30) past ``lengths`` reaches no value and no gradient: every
cell of the registry under both gradient paths and remat, the linear recurrence, the
diagnostics and the linen layer (issue: no NaN from padding). One jitted function per case
is fed the clean inputs and the three paddings."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import registry
from registry import NAMES, build

import gatedcells as gc
from gatedcells import diagnostics as gd

B, T, I = 3, 7, 4
LENGTHS = jnp.array([7, 4, 0])
PAD = {"nan": jnp.nan, "inf": jnp.inf, "big": 1e30}


def padded(xs, value):
    t = jnp.arange(xs.shape[1])[None, :, None]
    return jnp.where(t < LENGTHS[:, None, None], xs, value)


def inputs(name):
    xs = jax.random.normal(jax.random.key(1), (B, T, I))
    if name.startswith("resettable"):  # the last channel is a reset flag
        flags = jax.random.bernoulli(jax.random.key(2), 0.3, (B, T, 1)).astype(xs.dtype)
        xs = jnp.concatenate([xs, flags], axis=-1)
    return xs


def value_and_grads(cell, **options):
    """``(params, xs) -> ((loss, (carry, ys)), (d_params, d_xs))``, jitted once."""

    def loss(params, xs):
        carry, ys = gc.unroll(cell, params, xs, lengths=LENGTHS, **options)
        return jnp.sum(ys**2) + sum(jnp.sum(c) for c in jax.tree.leaves(carry)), (carry, ys)

    return jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))


def assert_same(got, want):
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6), got, want)


# the default gradient path for every entry; autodiff and remat (plumbing) for all in `make test`
PATHS = [
    {},
    *(pytest.param(o, marks=pytest.mark.plumbing) for o in ({"grad": "autodiff"}, {"remat": 3})),
]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("options", PATHS, ids=str)
def test_padding_reaches_no_value_and_no_gradient(name, options):
    cell = build(name)
    xs = inputs(name)
    params = registry.params(name, xs.shape[-1])
    run = value_and_grads(cell, **options)
    want = run(params, padded(xs, 0.0))
    (_, _), (_, d_xs) = want
    assert not np.asarray(d_xs)[2].any()  # a sequence of length 0 has no gradient
    for value in PAD.values():
        assert_same(run(params, padded(xs, value)), want)


@pytest.mark.parametrize("reverse", [False, True])
def test_padding_in_bidirectional_and_reverse(reverse):
    cell = gc.bidirectional(gc.lstm(5), gc.gru(5))
    xs = inputs("bidirectional")
    params = cell.init(jax.random.key(0), I)
    run = value_and_grads(cell, reverse=reverse)
    assert_same(run(params, padded(xs, jnp.nan)), run(params, padded(xs, 0.0)))


@pytest.mark.parametrize("method", ["sequential", "associative"])
def test_padding_in_linear_recurrence(method):
    log_a = -jax.nn.softplus(inputs("linear"))
    b = inputs("linear") * 0.5

    def loss(log_a, b):
        h, hs = gc.linear_recurrence(log_a, b, lengths=LENGTHS, method=method)
        return jnp.sum(hs**2) + jnp.sum(h)

    run = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
    want = run(padded(log_a, 0.0), padded(b, 0.0))
    for value in PAD.values():
        assert_same(run(padded(log_a, value), padded(b, value)), want)


def test_padding_in_gate_trace():
    cell = gc.lstm(5)
    params = cell.init(jax.random.key(0), I)
    xs = inputs("trace")
    want = gd.gate_trace(cell, params, padded(xs, 0.0), lengths=LENGTHS)
    assert_same(gd.gate_trace(cell, params, padded(xs, jnp.nan), lengths=LENGTHS), want)


def test_padding_in_linen_rnn():
    from gatedcells import linen as gl

    model = gl.RNN(gc.gru(5))
    xs = inputs("linen")
    variables = model.init(jax.random.key(0), xs)

    def loss(variables, xs):
        return jnp.sum(model.apply(variables, xs, seq_lengths=LENGTHS) ** 2)

    grad = jax.jit(jax.value_and_grad(loss))
    assert_same(grad(variables, padded(xs, jnp.nan)), grad(variables, padded(xs, 0.0)))
