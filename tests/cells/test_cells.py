"""Each cell's equations, initialisation and parameter count, checked by hand in numpy."""

import inspect

import jax
import numpy as np
import pytest

import gatedcells as gc

I, H, B = 3, 5, 4


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


@pytest.fixture
def inputs():
    kx, kh, kc = jax.random.split(jax.random.key(7), 3)
    return (
        np.asarray(jax.random.normal(kx, (B, I))),
        np.asarray(jax.random.normal(kh, (B, H))),
        np.asarray(jax.random.normal(kc, (B, H))),
    )


def numpy_params(cell):
    return jax.tree.map(np.asarray, cell.init(jax.random.key(0), I))


def blocks(a, n):
    return np.split(np.asarray(a), n, axis=-1)


def test_lstm_gates_and_step_by_hand(inputs):
    x, h, c = inputs
    cell = gc.lstm(H)
    p = numpy_params(cell)
    zi, zf, zg, zo = blocks(x @ p.w_x + h @ p.w_h + p.b, 4)
    i, f, g, o = sigmoid(zi), sigmoid(zf), np.tanh(zg), sigmoid(zo)
    c_new = f * c + i * g
    carry, y = cell.step(p, gc.LSTMCarry(c, h), x)
    np.testing.assert_allclose(carry.c, c_new, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(y, o * np.tanh(c_new), rtol=1e-5, atol=1e-6)
    gates = cell.gates(p, gc.LSTMCarry(c, h), x)
    for got, want in zip(gates, (i, f, g, o), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_lstm_without_forget_gate_is_the_1997_lstm(inputs):
    x, h, c = inputs
    cell = gc.lstm(H, forget_gate=False)
    p = numpy_params(cell)
    assert p.w_x.shape == (I, 3 * H)  # blocks i, g, o
    zi, zg, zo = blocks(x @ p.w_x + h @ p.w_h + p.b, 3)
    c_new = c + sigmoid(zi) * np.tanh(zg)
    carry, y = cell.step(p, gc.LSTMCarry(c, h), x)
    np.testing.assert_allclose(carry.c, c_new, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(y, sigmoid(zo) * np.tanh(c_new), rtol=1e-5, atol=1e-6)
    assert np.all(cell.gates(p, gc.LSTMCarry(c, h), x).f == 1)


def test_lstm_with_input_and_output_open_and_forget_closed_is_a_simple_rnn(inputs):
    """The lecture's regime: i = o = 1, f = 0 (and h = o*c) computes a simple RNN exactly."""
    x, h, c = inputs
    regime = gc.lstm(
        H, fixed_gates={"i": 1.0, "f": 0.0, "o": 1.0}, output_activation=jax.nn.identity
    )
    p = numpy_params(regime)
    simple = gc.simple_rnn(H)
    sp = gc.SimpleRNNParams(p.w_x, p.w_h, p.b)  # the same V, W, b: only the g block exists
    assert gc.count_params(p) == gc.count_params(simple.init(jax.random.key(0), I))
    xs = jax.random.normal(jax.random.key(1), (B, 11, I))
    carry, ys = gc.unroll(regime, p, xs, gc.LSTMCarry(c, h))
    h_simple, ys_simple = gc.unroll(simple, sp, xs, h)
    np.testing.assert_allclose(ys, ys_simple, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(carry.h, h_simple, rtol=1e-6, atol=1e-6)


def test_fixed_gates_show_their_constants(inputs):
    x, h, c = inputs
    cell = gc.lstm(H, fixed_gates={"i": 0.25, "o": 1})
    p = numpy_params(cell)
    assert p.w_x.shape == (I, 2 * H)  # blocks f, g
    gates = cell.gates(p, gc.LSTMCarry(c, h), x)
    assert np.all(gates.i == 0.25) and np.all(gates.o == 1.0)
    zf, zg = blocks(x @ p.w_x + h @ p.w_h + p.b, 2)
    c_new = sigmoid(zf) * c + 0.25 * np.tanh(zg)
    np.testing.assert_allclose(cell.step(p, gc.LSTMCarry(c, h), x)[1], np.tanh(c_new), atol=1e-6)


def test_gru_reset_after_by_hand(inputs):
    x, h, _ = inputs
    cell = gc.gru(H)
    p = numpy_params(cell)
    p = p._replace(b_hn=np.linspace(-1, 1, H, dtype=np.float32))
    xr, xz, xn = blocks(x @ p.w_x + p.b, 3)
    hr, hz, hn = blocks(h @ p.w_h, 3)
    r, z = sigmoid(xr + hr), sigmoid(xz + hz)
    n = np.tanh(xn + r * (hn + np.asarray(p.b_hn)))
    np.testing.assert_allclose(cell.step(p, h, x)[1], (1 - z) * n + z * h, rtol=1e-5, atol=1e-6)
    for got, want in zip(cell.gates(p, h, x), (r, z, n), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_gru_reset_before_by_hand(inputs):
    x, h, _ = inputs
    cell = gc.gru(H, reset_after=False)
    p = numpy_params(cell)
    assert p.b_hn is None
    xr, xz, xn = blocks(x @ p.w_x + p.b, 3)
    ur, uz, un = blocks(p.w_h, 3)
    r, z = sigmoid(xr + h @ ur), sigmoid(xz + h @ uz)
    n = np.tanh(xn + (r * h) @ un)
    np.testing.assert_allclose(cell.step(p, h, x)[1], (1 - z) * n + z * h, rtol=1e-5, atol=1e-6)


def test_simple_rnn_by_hand(inputs):
    x, h, _ = inputs
    cell = gc.simple_rnn(H, activation=jax.nn.relu)
    p = numpy_params(cell)
    want = np.maximum(x @ p.w_x + h @ p.w_h + p.b, 0)
    np.testing.assert_allclose(cell.step(p, h, x)[1], want, rtol=1e-5, atol=1e-6)


def test_gate_bias_offsets_are_in_the_params():
    b = gc.lstm(H, forget_bias=5.0).init(jax.random.key(0), I).b
    np.testing.assert_array_equal(np.split(np.asarray(b), 4), [[0] * H, [5] * H, [0] * H, [0] * H])
    b = gc.gru(H, update_bias=2.0).init(jax.random.key(0), I).b
    np.testing.assert_array_equal(np.split(np.asarray(b), 3), [[0] * H, [2] * H, [0] * H])
    assert float(gc.gru(H).init(jax.random.key(0), I).b[H]) == 1.0  # documented default


def test_default_initializers():
    p = gc.lstm(H).init(jax.random.key(0), I)
    for block in blocks(p.w_h, 4):  # each gate's recurrent block is orthogonal
        np.testing.assert_allclose(block @ block.T, np.eye(H), atol=1e-5)
    p = gc.gru(H, recurrent_init=jax.nn.initializers.zeros).init(jax.random.key(0), I)
    assert not np.any(p.w_h)


def test_parameter_counts_match_the_lecture():
    n_simple = I * H + H * H + H
    count = lambda cell: gc.count_params(cell.init(jax.random.key(0), I))
    assert count(gc.simple_rnn(H)) == n_simple
    assert count(gc.lstm(H)) == 4 * n_simple
    assert count(gc.lstm(H, forget_gate=False)) == 3 * n_simple
    assert count(gc.gru(H, reset_after=False)) == 3 * n_simple
    assert count(gc.gru(H)) == 3 * n_simple + H  # PyTorch's extra recurrent candidate bias


def test_cells_describe_themselves():
    assert repr(gc.lstm(8)) == "Cell(lstm(8))"
    assert "forget_gate=False" in gc.lstm(8, forget_gate=False).name
    assert gc.stack(gc.gru(4), gc.lstm(2)).name == "stack(gru(4), lstm(2))"
    assert gc.bidirectional(gc.lstm(3)).output_size == 6


def test_plain_lstm_params_hold_exactly_w_x_w_h_b():
    assert gc.LSTMParams._fields == ("w_x", "w_h", "b")
    assert gc.LSTMPParams._fields == ("w_x", "w_h", "b", "w_r")
    assert type(gc.lstm(H).init(jax.random.key(0), I)) is gc.LSTMParams
    assert type(gc.lstm(H, proj_size=2).init(jax.random.key(0), I)) is gc.LSTMPParams
    # the research flags are lstm_variant's
    flags = set(inspect.signature(gc.lstm).parameters) - {"hidden_size"}
    assert flags == {"forget_gate", "forget_bias", "chrono", "fixed_gates", "output_activation",
                     "proj_size", "num_heads", "kernel_init", "recurrent_init", "bias_init", "param_dtype",
                     "dtype"}  # fmt: skip
    assert gc.lstm(H, proj_size=2, output_activation=jax.nn.identity).name == (
        "lstm(5, output_activation=identity, proj_size=2)"
    )
