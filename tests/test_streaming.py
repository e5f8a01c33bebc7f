"""Streaming through the Flax layers, over every cell of the registry: feeding the carry
forward, in chunks of 1, 2 and 4 steps (``initial_carry=``, ``return_carry=True``) or one
step at a time (``step``), gives the outputs and the final carry of one long call, for the
NNX ``RNN`` and ``StackedRNN`` and the linen ``RNN`` and ``StackedRNN``.

Each layer's call and step are jitted once per cell over the cell's params; a chunk length is
a shape, so each cell compiles the lengths 7, 4, 3, 2 and 1 and one step, once for both
frontends (they trace the same programs: the compilation cache serves the second).
"""

import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from registry import LOOSE, NAMES, build

import gatedcells as gc

nnx = pytest.importorskip("flax.nnx")
gnnx = importlib.import_module("gatedcells.nnx")
gl = importlib.import_module("gatedcells.linen")

B, T, I = 2, 7, 4
XS = jax.random.normal(jax.random.key(3), (B, T, I))
TOL = dict(rtol=1e-5, atol=1e-5)


def close(a, b, name):
    tol = LOOSE.get(name, TOL)
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x, np.float32), np.asarray(y, np.float32), **tol)


def stream(chunk, step, carry, xs, size):
    """``(carry, ys)`` of ``xs`` fed in chunks of ``size`` steps (``step`` when ``size`` is
    None), the carry handed forward."""
    ys = []
    if size is None:
        for t in range(xs.shape[1]):
            carry, y = step(xs[:, t], carry)
            ys.append(y[:, None])
    else:
        for start in range(0, xs.shape[1], size):
            carry, y = chunk(xs[:, start : start + size], carry)
            ys.append(y)
    return carry, jnp.concatenate(ys, axis=1)


def check_streams(name, full, chunk, step, carry0):
    """Chunks of 1, 2 and 4 steps, and ``step``, against the long call ``full``."""
    want = full(XS, carry0)
    for size in (1, 2, 4, None):
        close(stream(chunk, step, carry0, XS, size), want, name)


def jitted(make):
    """The long (or chunk) call and the step of ``make(params) -> module``, jitted over the
    cell's params: the NNX and linen layers trace the same program, which the compilation
    cache then compiles once for both."""

    def call(params, xs, carry):
        return make(params, xs, carry, None)

    def step(params, x, carry):
        return make(params, x, carry, "step")

    return jax.jit(call), jax.jit(step)


def nnx_functions(layer):
    """The layer's call (long or chunk) and step, closed over its params."""
    graphdef, state = nnx.split(layer)
    params = layer.params()
    leaves, tree = jax.tree.flatten(state)
    where = {id(leaf): i for i, leaf in enumerate(jax.tree.leaves(params))}
    order = [where[id(leaf)] for leaf in leaves]  # state leaves are the params' arrays

    def make(params, x, carry, method):
        leaves = jax.tree.leaves(params)
        layer = nnx.merge(graphdef, tree.unflatten([leaves[i] for i in order]))
        if method == "step":
            return layer.step(x, carry)
        return layer(x, initial_carry=carry, return_carry=True)

    call, step = jitted(make)
    return (lambda xs, c: call(params, xs, c)), (lambda x, c: step(params, x, c))


def linen_functions(model, method):
    """The module's call (long or chunk) and step, closed over its params."""
    params = model.init(jax.random.key(0), XS[:, 0], method=method)["params"]["cell"]

    def make(params, x, carry, how):
        variables = {"params": {"cell": params}}
        if how == "step":
            return model.apply(variables, x, carry, method=method)
        return model.apply(variables, x, initial_carry=carry)

    call, step = jitted(make)
    return (lambda xs, c: call(params, xs, c)), (lambda x, c: step(params, x, c))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.plumbing
def test_nnx_rnn_streams_as_one_call(name):
    layer = gnnx.RNN(build(name), I, rngs=nnx.Rngs(0))
    call, step = nnx_functions(layer)
    check_streams(name, call, call, step, layer.initial_carry((B,)))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.plumbing
def test_linen_rnn_streams_as_one_call(name):
    model = gl.RNN(build(name), return_carry=True)
    call, step = linen_functions(model, gl.RNN.step)
    check_streams(name, call, call, step, model.initial_carry((B,)))


CELLS = (gc.gru(5), gc.lstm(6))  # built once: the stacks share their compiled programs


def test_nnx_stacked_rnn_streams_as_one_call():
    model = gnnx.StackedRNN(CELLS, I, dropout=0.5, deterministic=True, rngs=nnx.Rngs(0))
    call, step = nnx_functions(model)
    carry0 = model.initial_carry((B,))
    assert len(carry0) == 2 and isinstance(carry0[1], gc.LSTMCarry)
    check_streams("stack", call, call, step, carry0)


def test_linen_stacked_rnn_streams_as_one_call():
    model = gl.StackedRNN(CELLS, dropout=0.5, deterministic=True, return_carry=True)
    call, step = linen_functions(model, gl.StackedRNN.step)
    check_streams("stack", call, call, step, model.initial_carry((B,)))


def test_step_starts_from_zeros_and_keeps_the_callers_containers():
    layer = gnnx.RNN(gc.lstm(3), I, rngs=nnx.Rngs(0))
    carry, y = layer.step(XS[:, 0])
    close((carry, y), layer.step(XS[:, 0], layer.initial_carry((B,))), "lstm")
    plain, _ = layer.step(XS[:, 1], tuple(carry))  # Flax's (c, h) stays a plain tuple
    assert type(plain) is tuple
    model = gl.RNN(gc.lstm(3))
    variables = model.init(jax.random.key(0), XS)
    linen_carry, _ = model.apply(variables, XS[:, 0], method=gl.RNN.step)
    assert isinstance(linen_carry, gc.LSTMCarry) and linen_carry.h.shape == (B, 3)


def test_stacked_step_drops_out_between_layers_in_training_mode():
    model = gnnx.StackedRNN(CELLS, I, dropout=0.5, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="needs a key"):
        model.step(XS[:, 0])
    _, dropped = model.step(XS[:, 0], rngs=nnx.Rngs(dropout=1))
    _, kept = model.step(XS[:, 0], deterministic=True)
    assert not np.allclose(dropped, kept)


def test_bidirectional_layers_refuse_to_step():
    x, why = XS[:, 0], "a bidirectional layer cannot stream"
    for layer in (
        gnnx.Bidirectional(gc.gru(3), I, rngs=nnx.Rngs(0)),
        gnnx.StackedRNN(gc.gru(3), I, num_layers=2, bidirectional=True, rngs=nnx.Rngs(0)),
        gl.Bidirectional(gc.gru(3)),
    ):
        with pytest.raises(TypeError, match=why):
            layer.step(x)
    model = gl.StackedRNN(gc.gru(3), num_layers=2, bidirectional=True)
    variables = model.init(jax.random.key(0), XS)
    with pytest.raises(TypeError, match=why):
        model.apply(variables, x, method=gl.StackedRNN.step)


def test_a_carry_that_is_not_one_per_layer_is_refused():
    model = gnnx.StackedRNN(CELLS, I, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="carry must be a tuple of 2 carries"):
        model.step(XS[:, 0], model.initial_carry((B,))[:1])
