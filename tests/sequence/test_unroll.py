"""Sequence semantics of ``unroll``, ``stack`` and ``bidirectional``."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gatedcells as gc

I, B, T = 3, 4, 9
LENGTHS = np.array([9, 5, 1, 0])
CELLS = {
    "lstm": lambda: gc.lstm(5),
    "gru": lambda: gc.gru(5),
    "gru_reset_before": lambda: gc.gru(5, reset_after=False),
    "simple_rnn": lambda: gc.simple_rnn(5),
    "stack": lambda: gc.stack(gc.lstm(5), gc.gru(4)),
}


# unroll compiled per cell and shape (eagerly, each operation around its scan is a program)
unroll = jax.jit(gc.unroll, static_argnums=0, static_argnames=("reverse", "time_major", "unroll"))


@pytest.fixture(params=sorted(CELLS))
def setup(request):
    cell = CELLS[request.param]()
    params = jax.jit(cell.init, static_argnums=1)(jax.random.key(0), I)
    xs = jax.random.normal(jax.random.key(1), (B, T, I))
    return cell, params, xs


def close(a, b, atol=1e-5):
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, atol=atol, rtol=1e-5), a, b)


def row(tree, b):
    return jax.tree.map(lambda a: a[b], tree)


def flip_within(xs, lengths):
    """Reverse each sequence ``xs[b, :lengths[b]]`` in place, padding left where it is."""
    out = np.array(xs)
    for b, n in enumerate(lengths):
        out[b, :n] = out[b, :n][::-1]
    return out


def test_lengths_freeze_carry_and_zero_outputs(setup):
    cell, params, xs = setup
    carry, ys = unroll(cell, params, xs, lengths=jnp.asarray(LENGTHS))
    for b, n in enumerate(LENGTHS):
        carry_n, ys_n = unroll(cell, params, xs[b, :n])  # the sequence truncated at n
        close(row(carry, b), carry_n)
        close(ys[b, :n], ys_n)
        assert not np.any(ys[b, n:]), "outputs past the end must be exactly zero"


def test_reverse_reads_each_sequence_within_its_length(setup):
    cell, params, xs = setup
    carry, ys = unroll(cell, params, xs, lengths=jnp.asarray(LENGTHS), reverse=True)
    carry_f, ys_f = unroll(cell, params, flip_within(xs, LENGTHS), lengths=jnp.asarray(LENGTHS))
    close(carry, carry_f)
    close(ys, flip_within(ys_f, LENGTHS))  # outputs stay aligned with their inputs
    # without lengths, reverse is a plain flip of the time axis
    carry_r, ys_r = unroll(cell, params, xs, reverse=True)
    carry_f, ys_f = unroll(cell, params, xs[:, ::-1])
    close((carry_r, ys_r), (carry_f, ys_f[:, ::-1]))


def test_time_major_with_lengths(setup):
    cell, params, xs = setup
    lengths = jnp.asarray(LENGTHS)
    carry, ys = unroll(cell, params, xs, lengths=lengths)
    carry_tm, ys_tm = unroll(cell, params, xs.swapaxes(0, 1), lengths=lengths, time_major=True)
    close((carry, ys), (carry_tm, ys_tm.swapaxes(0, 1)))


@pytest.mark.parametrize("n", [2, 4, True])
@pytest.mark.plumbing
def test_scan_unroll_factor_does_not_change_results(setup, n):
    cell, params, xs = setup
    close(unroll(cell, params, xs, unroll=n), unroll(cell, params, xs))


@pytest.mark.plumbing
def test_default_unroll_follows_the_backend(setup, monkeypatch):
    assert gc.default_unroll() == (1 if jax.default_backend() == "cpu" else 8)
    cell, params, xs = setup
    expected = gc.unroll(cell, params, xs, unroll=1)
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    assert gc.default_unroll() == 8
    run = lambda p, x: gc.unroll(cell, p, x)  # unroll=None
    assert "unroll=8" in str(jax.make_jaxpr(run)(params, xs))
    close(jax.jit(run)(params, xs), expected)


def test_no_recompilation_when_only_length_values_change():
    cell = gc.lstm(5)
    params = cell.init(jax.random.key(0), I)
    traces = []

    @jax.jit
    def run(xs, lengths):
        traces.append(1)
        return gc.unroll(cell, params, xs, lengths=lengths)[1]

    xs = jnp.ones((B, T, I))
    for lengths in ([9, 5, 1, 0], [1, 2, 3, 4], [9, 9, 9, 9]):
        run(xs, jnp.asarray(lengths))
    assert len(traces) == 1


def test_stack_equals_its_layers_composed():
    cells = (gc.gru(6), gc.lstm(5), gc.simple_rnn(4))
    deep = gc.stack(*cells)
    params = deep.init(jax.random.key(0), I)
    xs = jax.random.normal(jax.random.key(1), (B, T, I))
    lengths = jnp.asarray(LENGTHS)
    carry, ys = gc.unroll(deep, params, xs, lengths=lengths, reverse=True)
    inputs, carries = xs, []
    for cell, p in zip(cells, params, strict=True):
        c, inputs = gc.unroll(cell, p, inputs, lengths=lengths, reverse=True)
        carries.append(c)
    close((carry, ys), (tuple(carries), inputs))
    # a stack of one cell is the cell
    single = gc.stack(cells[0])
    carry1, ys1 = gc.unroll(single, (params[0],), xs)
    carry0, ys0 = gc.unroll(cells[0], params[0], xs)
    close((carry1, ys1), ((carry0,), ys0))


def test_stack_is_steppable_for_streaming():
    deep = gc.stack(gc.gru(6), gc.lstm(5))
    params = deep.init(jax.random.key(0), I)
    xs = jax.random.normal(jax.random.key(1), (B, T, I))
    carry = deep.initial_carry((B,))
    outs = []
    for t in range(T):
        carry, y = deep.step(params, carry, xs[:, t])
        outs.append(y)
    close((carry, jnp.stack(outs, 1)), gc.unroll(deep, params, xs))
    gates = deep.gates(params, deep.initial_carry((B,)), xs[:, 0])
    assert isinstance(gates[0], gc.GRUGates) and isinstance(gates[1], gc.LSTMGates)


@pytest.mark.parametrize("merge", ["concat", "sum", "mean", lambda a, b: a * b])
def test_bidirectional_is_forward_and_reversed_unrolls_merged(merge):
    fwd, bwd = gc.lstm(5), gc.gru(5)
    layer = gc.bidirectional(fwd, bwd, merge=merge)
    params = layer.init(jax.random.key(0), I)
    xs = jax.random.normal(jax.random.key(1), (B, T, I))
    lengths = jnp.asarray(LENGTHS)
    (cf, cb), ys = gc.unroll(layer, params, xs, lengths=lengths)
    cf_ref, yf = gc.unroll(fwd, params[0], xs, lengths=lengths)
    cb_ref, yb = gc.unroll(bwd, params[1], xs, lengths=lengths, reverse=True)
    merge_fn = {"concat": lambda a, b: jnp.concatenate([a, b], -1), "sum": jnp.add,
                "mean": lambda a, b: (a + b) / 2}.get(merge, merge)  # fmt: skip
    close(((cf, cb), ys), ((cf_ref, cb_ref), merge_fn(yf, yb)))
    assert ys.shape[-1] == layer.output_size == (10 if merge == "concat" else 5)


def test_bidirectional_cannot_be_stepped_and_stacks():
    layer = gc.bidirectional(gc.lstm(4))
    params = layer.init(jax.random.key(0), I)
    with pytest.raises(TypeError, match="whole sequences only"):
        layer.step(params, layer.initial_carry(), jnp.ones(I))
    deep = gc.stack(layer, gc.bidirectional(gc.gru(3)))
    params = deep.init(jax.random.key(0), I)
    assert params[1][0].w_x.shape == (8, 9)
    _, ys = jax.jit(functools.partial(gc.unroll, deep))(params, jnp.ones((2, T, I)))
    assert ys.shape == (2, T, 6)


def test_empty_sequences_keep_the_initial_carry():
    cell = gc.lstm(4)
    params = cell.init(jax.random.key(0), I)
    carry0 = gc.LSTMCarry(jnp.ones((2, 4)), -jnp.ones((2, 4)))
    carry, ys = gc.unroll(cell, params, jnp.ones((2, T, I)), carry0, lengths=jnp.array([0, 0]))
    close(carry, carry0)
    assert not np.any(ys)
