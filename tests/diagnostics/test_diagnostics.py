"""gatedcells.diagnostics, each function against an independent computation: gates and carries
recomputed by hand in numpy, Jacobians from ``jax.jacobian`` of ``step``, gradient norms from
``jax.grad`` of ``unroll``, regimes on gates clamped with ``fixed_gates``."""

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gatedcells as gc
from gatedcells import diagnostics as gd

I, H, B, T = 3, 4, 2, 7


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def blocks(a, n):
    return np.split(a, n, axis=-1)


def random_params(cell, seed=0):
    """Params of ``cell`` with every leaf drawn from N(0, 0.7^2), biases too (numpy's RNG:
    no per-shape compilation, unlike ``cell.init``)."""
    shapes = jax.eval_shape(lambda: cell.init(jax.random.key(0), I))
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda s: normal(s.shape, rng, 0.7), shapes)


def normal(shape, rng=None, scale=1.0):
    rng = np.random.default_rng(0) if rng is None else rng
    return jnp.asarray(scale * rng.standard_normal(shape), jnp.float32)


def sequence(shape=(B, T, I), seed=3):
    return normal(shape, np.random.default_rng(seed))


# --------------------------------------------------------------------------------------
# gate_trace


def test_lstm_trace_equals_gates_recomputed_by_hand():
    cell = gc.lstm(H)
    p = random_params(cell)
    xs = sequence()
    w_x, w_h, b = (np.asarray(a, np.float64) for a in (p.w_x, p.w_h, p.b))
    c, h = np.zeros((B, H)), np.zeros((B, H))
    want = {name: [] for name in ("i", "f", "g", "o", "c", "h")}
    for t in range(T):
        zi, zf, zg, zo = blocks(np.asarray(xs[:, t], np.float64) @ w_x + h @ w_h + b, 4)
        i, f, g, o = sigmoid(zi), sigmoid(zf), np.tanh(zg), sigmoid(zo)
        c = f * c + i * g
        h = o * np.tanh(c)
        for name, value in zip(want, (i, f, g, o, c, h), strict=True):
            want[name].append(value)
    tr = gd.gate_trace(cell, p, xs)
    got = {**tr.gates._asdict(), "c": tr.carry.c, "h": tr.carry.h}
    for name, value in want.items():
        np.testing.assert_allclose(got[name], np.stack(value, axis=1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(tr.ys, tr.carry.h)
    assert tr.valid.shape == (B, T) and bool(tr.valid.all())


@pytest.mark.parametrize("reset_after", [True, False])
def test_gru_trace_equals_gates_recomputed_by_hand(reset_after):
    cell = gc.gru(H, reset_after=reset_after)
    p = random_params(cell)
    xs = sequence()
    w_x, w_h, b = (np.asarray(a, np.float64) for a in (p.w_x, p.w_h, p.b))
    h = np.zeros((B, H))
    want = {name: [] for name in ("r", "z", "n", "h")}
    for t in range(T):
        xr, xz, xn = blocks(np.asarray(xs[:, t], np.float64) @ w_x + b, 3)
        hr, hz, hn = blocks(h @ w_h, 3)
        r, z = sigmoid(xr + hr), sigmoid(xz + hz)
        if reset_after:
            n = np.tanh(xn + r * (hn + np.asarray(p.b_hn, np.float64)))
        else:
            n = np.tanh(xn + (r * h) @ w_h[:, 2 * H :])
        h = (1 - z) * n + z * h
        for name, value in zip(want, (r, z, n, h), strict=True):
            want[name].append(value)
    tr = gd.gate_trace(cell, p, xs)
    got = {**tr.gates._asdict(), "h": tr.carry}
    for name, value in want.items():
        np.testing.assert_allclose(got[name], np.stack(value, axis=1), rtol=1e-5, atol=1e-6)


def test_trace_with_lengths_masks_like_unroll_and_runs_under_jit():
    cell = gc.lstm(H)
    p = random_params(cell)
    xs, lengths = sequence(), jnp.array([T, 3])
    tr = jax.jit(gd.gate_trace, static_argnums=0)(cell, p, xs, lengths=lengths)
    carry, ys = gc.unroll(cell, p, xs, lengths=lengths)
    np.testing.assert_allclose(tr.ys, ys, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(tr.valid, np.arange(T)[None] < np.array([[T], [3]]))
    assert np.all(np.asarray(tr.gates.f)[1, 3:] == 0)  # past the end: zeros
    np.testing.assert_allclose(tr.carry.c[1, 3:], np.broadcast_to(tr.carry.c[1, 2], (T - 3, H)))
    np.testing.assert_allclose(tr.carry.c[:, -1], carry.c, rtol=1e-6, atol=1e-6)
    eager = gd.gate_trace(cell, p, xs, lengths=lengths)
    np.testing.assert_allclose(tr.gates.i, eager.gates.i, rtol=1e-6, atol=1e-6)


def test_trace_reverse_is_the_trace_of_the_flipped_sequence():
    cell = gc.gru(H)
    p = random_params(cell)
    xs = sequence()
    backward = gd.gate_trace(cell, p, xs, reverse=True)
    flipped = gd.gate_trace(cell, p, xs[:, ::-1])
    np.testing.assert_allclose(backward.gates.z, flipped.gates.z[:, ::-1], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(backward.ys, gc.unroll(cell, p, xs, reverse=True)[1], atol=1e-6)


def test_trace_of_a_stack_has_each_layers_gates_and_an_unbatched_sequence_works():
    lower, upper = gc.gru(5), gc.lstm(H)
    deep = gc.stack(lower, upper)
    params = random_params(deep)
    xs = sequence((T, I))
    tr = gd.gate_trace(deep, params, xs)
    first = gd.gate_trace(lower, params[0], xs)
    second = gd.gate_trace(upper, params[1], first.ys)
    np.testing.assert_allclose(tr.gates[0].z, first.gates.z, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(tr.gates[1].f, second.gates.f, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(tr.carry[1].c, second.carry.c, rtol=1e-6, atol=1e-6)
    assert tr.ys.shape == (T, H) and tr.valid.shape == (T,)


def test_trace_errors_name_the_argument():
    cell = gc.lstm(H)
    p = random_params(cell)
    with pytest.raises(ValueError, match=r"xs must have shape \[\*B, T, I\] with I=3"):
        gd.gate_trace(cell, p, jnp.ones((B, T, I + 1)))
    with pytest.raises(ValueError, match="xs must have shape"):
        gd.gate_trace(cell, p, jnp.ones((I,)))
    with pytest.raises(TypeError, match="xs must have a floating dtype"):
        gd.gate_trace(cell, p, jnp.ones((T, I), jnp.int32))
    with pytest.raises(TypeError, match="cell must be a gatedcells.Cell"):
        gd.gate_trace("lstm", p, jnp.ones((T, I)))
    with pytest.raises(ValueError, match="carry"):
        gd.gate_trace(cell, p, jnp.ones((B, T, I)), cell.initial_carry((B + 1,)))
    layer = gc.bidirectional(cell)
    with pytest.raises(TypeError, match="whole sequences only"):
        gd.gate_trace(layer, random_params(layer), jnp.ones((T, I)))


# --------------------------------------------------------------------------------------
# carry_jacobian


def lstm_state():
    rng = np.random.default_rng(5)
    return gc.LSTMCarry(normal((B, H), rng), normal((B, H), rng)), normal((B, I), rng)


def test_lstm_memory_jacobian_is_diag_f_and_full_is_jax_jacobian():
    cell = gc.lstm(H)
    p = random_params(cell)
    carry, x = lstm_state()
    jac = gd.carry_jacobian(cell, p, carry, x)
    f = cell.gates(p, carry, x).f
    assert jac.memory.shape == (B, H, H) and jac.full.shape == (B, 2 * H, 2 * H)
    # jax.jacobian of step as a pytree of blocks: rows new (c, h), columns old (c, h)
    blocks_ = jax.jit(jax.vmap(jax.jacobian(lambda c, x: cell.step(p, c, x)[0])))(carry, x)
    for k in range(B):
        np.testing.assert_allclose(jac.memory[k], np.diag(f[k]), rtol=1e-6, atol=1e-7)
        want = np.block([[blocks_.c.c[k], blocks_.c.h[k]], [blocks_.h.c[k], blocks_.h.h[k]]])
        np.testing.assert_allclose(jac.full[k], want, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(jac.memory[k], blocks_.c.c[k], rtol=1e-6, atol=1e-7)


def test_memory_jacobian_without_a_forget_gate_is_the_identity():
    cell = gc.lstm(H, forget_gate=False)
    carry, x = lstm_state()
    jac = gd.carry_jacobian(cell, random_params(cell), carry, x)
    np.testing.assert_array_equal(jac.memory, np.broadcast_to(np.eye(H), (B, H, H)))
    assert not np.allclose(jac.full[:, H:, H:], 0)  # the h path is not trivial


@pytest.mark.parametrize("factory", [gc.gru, gc.simple_rnn])
def test_single_array_carry_jacobian_is_dh_dh(factory):
    cell = factory(H)
    p = random_params(cell)
    h, x = normal((B, H)), normal((B, I))
    jac = gd.carry_jacobian(cell, p, h, x)
    want = jax.jit(jax.vmap(jax.jacobian(lambda h, x: cell.step(p, h, x)[0])))(h, x)
    np.testing.assert_allclose(jac.full, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(jac.memory, jac.full)


def test_jacobian_of_an_unbatched_step_and_bad_input():
    cell = gc.simple_rnn(H)
    p = random_params(cell)
    jac = gd.carry_jacobian(cell, p, jnp.zeros(H), jnp.ones(I))
    w = np.asarray(p.w_h)
    z = np.asarray(p.w_x).sum(0) + np.asarray(p.b)
    np.testing.assert_allclose(jac.full, (w * (1 - np.tanh(z) ** 2)[None]).T, rtol=1e-5)
    jitted = jax.jit(gd.carry_jacobian, static_argnums=0)(cell, p, jnp.zeros(H), jnp.ones(I))
    np.testing.assert_allclose(jitted.full, jac.full, rtol=1e-6)
    with pytest.raises(ValueError, match=r"x must have shape \[\*B, I\] with I=3"):
        gd.carry_jacobian(cell, p, jnp.zeros(H), jnp.ones(I + 1))


# --------------------------------------------------------------------------------------
# gradient_flow


def carry_gradient_norm(cell, p, xs, t, loss):
    """||dL/d carry entering step t||, by ``jax.grad`` of two ``unroll`` calls."""
    carry_t = gc.unroll(cell, p, xs[:, :t])[0] if t else cell.initial_carry((B,))

    def from_t(carry):
        return loss(gc.unroll(cell, p, xs[:, t:], carry)[1][:, -1])

    g = jax.jit(jax.grad(from_t))(carry_t)
    return np.sqrt(sum(np.sum(np.square(leaf), axis=-1) for leaf in jax.tree.leaves(g)))


@pytest.mark.parametrize("factory", [gc.lstm, gc.gru])
def test_gradient_flow_equals_jax_grad_of_unroll(factory):
    cell = factory(H)
    p = random_params(cell)
    xs = sequence()
    v = normal((B, H))

    def loss(y):
        return jnp.sum(v * y) + jnp.sum(y**2)

    flow = gd.gradient_flow(cell, p, xs, loss=loss)
    assert flow.carry.shape == flow.inputs.shape == (B, T)
    g_xs = jax.jit(jax.grad(lambda xs: loss(gc.unroll(cell, p, xs)[1][:, -1])))(xs)
    np.testing.assert_allclose(flow.inputs, np.linalg.norm(g_xs, axis=-1), rtol=1e-4, atol=1e-6)
    for t in (0, 4):
        want = carry_gradient_norm(cell, p, xs, t, loss)
        np.testing.assert_allclose(flow.carry[:, t], want, rtol=1e-4, atol=1e-6)
    if factory is gc.lstm:
        parts = np.sqrt(np.square(flow.parts.c) + np.square(flow.parts.h))
        np.testing.assert_allclose(flow.carry, parts, rtol=1e-5)


def test_gradient_flow_default_is_the_frobenius_norm_of_the_jacobian():
    cell = gc.simple_rnn(H)
    p = random_params(cell)
    xs = sequence((T, I))
    flow = gd.gradient_flow(cell, p, xs)
    jac_x = jax.jacobian(lambda xs: gc.unroll(cell, p, xs, grad="autodiff")[1][-1])(xs)
    np.testing.assert_allclose(flow.inputs, np.sqrt((jac_x**2).sum(axis=(0, 2))), rtol=1e-4)
    jac_h0 = jax.jacobian(lambda h: gc.unroll(cell, p, xs, h)[1][-1])(jnp.zeros(H))
    np.testing.assert_allclose(flow.carry[0], np.linalg.norm(jac_h0), rtol=1e-4)
    assert flow.carry.shape == (T,)
    jitted = jax.jit(gd.gradient_flow, static_argnums=0)(cell, p, xs)
    np.testing.assert_allclose(jitted.inputs, flow.inputs, rtol=1e-5)


def test_gradients_vanish_in_the_simple_rnn_and_not_with_a_high_forget_bias():
    """At the default initialisation; the forget bias is the forget block of ``b`` (zeros plus
    ``forget_bias``), so one init serves both biases."""
    xs = sequence((B, 30, I))

    def decay(cell, params):
        flow = gd.gradient_flow(cell, params, xs)
        return float(np.mean(flow.carry[:, 0] / flow.carry[:, -1]))

    rnn, lstm = gc.simple_rnn(8), gc.lstm(8, forget_bias=0.0)
    assert decay(rnn, jax.jit(rnn.init, static_argnums=1)(jax.random.key(0), I)) < 1e-4
    params = jax.jit(lstm.init, static_argnums=1)(jax.random.key(0), I)
    assert not np.any(params.b[8:16])
    assert decay(lstm, params) < 1e-4
    assert decay(lstm, params._replace(b=params.b.at[8:16].set(5.0))) > 0.3


def test_gradient_flow_rejects_a_loss_that_is_not_scalar():
    cell = gc.gru(H)
    with pytest.raises(ValueError, match="loss must return a scalar"):
        gd.gradient_flow(cell, random_params(cell), sequence(), loss=lambda y: y)


# --------------------------------------------------------------------------------------
# regimes

CLAMPED = {
    "read_and_store": {"i": 1.0, "f": 1.0, "o": 0.0},
    "carry_and_release": {"i": 0.0, "f": 1.0, "o": 1.0},
    "no_read_write": {"i": 0.0, "o": 0.0},  # the forget gate stays learned
    "simple_rnn": {"i": 1.0, "f": 0.0, "o": 1.0},
}


@pytest.mark.parametrize("regime", list(CLAMPED))
def test_regimes_of_clamped_gates(regime):
    cell = gc.lstm(H, fixed_gates=CLAMPED[regime])
    summary = gd.regimes(gd.gate_trace(cell, random_params(cell), sequence()))
    assert set(summary.regimes) == set(CLAMPED)
    for name, share in summary.regimes.items():
        np.testing.assert_array_equal(share, np.full(H, 1.0 if name == regime else 0.0))
    for gate, value in CLAMPED[regime].items():
        np.testing.assert_array_equal(summary.open[gate], np.full(H, float(value == 1)))
        np.testing.assert_array_equal(summary.closed[gate], np.full(H, float(value == 0)))
    assert "g" not in summary.open  # the candidate is not a gate


def test_regimes_count_per_unit_over_valid_steps_only():
    # unit 0: i and f open, o closed at every step: read and store; unit 1: all half-open
    on = np.zeros((B, T, 2), np.float32)
    on[..., 0] = 1.0
    half = np.full((B, T, 2), 0.5, np.float32)
    i = f = np.where(np.arange(2) == 0, 0.95, 0.5).astype(np.float32) * np.ones((B, T, 2))
    o = np.where(np.arange(2) == 0, 0.05, 0.5).astype(np.float32) * np.ones((B, T, 2))
    o[:, 5:, 0] = 0.95  # steps 5, 6 release instead; they lie past the end of sequence 1
    gates = gc.LSTMGates(jnp.asarray(i), jnp.asarray(f), jnp.asarray(half), jnp.asarray(o))
    valid = jnp.asarray(np.arange(T)[None] < np.array([[T], [5]]))
    summary = gd.regimes(gates, valid)
    # unit 0: 12 valid steps, 2 of them (sequence 0, steps 5-6) with o open
    np.testing.assert_allclose(summary.regimes["read_and_store"], [10 / 12, 0.0])
    np.testing.assert_allclose(summary.open["o"], [2 / 12, 0.0])
    np.testing.assert_allclose(summary.closed["o"], [10 / 12, 0.0])
    np.testing.assert_allclose(gd.regimes(gates).open["o"], [4 / 14, 0.0])
    jitted = jax.jit(gd.regimes)(gates, valid)
    np.testing.assert_allclose(jitted.regimes["read_and_store"], [10 / 12, 0.0])
    strict = gd.regimes(gates, valid, open_above=0.96)
    np.testing.assert_allclose(strict.regimes["read_and_store"], [0.0, 0.0])


def test_gru_regimes():
    z = jnp.asarray(np.array([[[0.99, 0.01, 0.01]]], np.float32))  # [1, 1, 3]
    r = jnp.asarray(np.array([[[0.5, 0.99, 0.01]]], np.float32))
    summary = gd.regimes(gc.GRUGates(r, z, jnp.zeros_like(z)))
    assert sorted(summary.regimes) == ["keep", "reset", "simple_rnn"]
    np.testing.assert_array_equal(summary.regimes["keep"], [1, 0, 0])
    np.testing.assert_array_equal(summary.regimes["simple_rnn"], [0, 1, 0])
    np.testing.assert_array_equal(summary.regimes["reset"], [0, 0, 1])
    # minGRU's z is the share of the candidate: the GRU's regimes would mislabel it
    other = gd.regimes(gc.MinGRUGates(z, jnp.zeros_like(z)))
    assert other.regimes == {} and other.open["z"].tolist() == [1, 0, 0]


def test_regimes_errors():
    cell = gc.stack(gc.lstm(H), gc.lstm(H))
    tr = gd.gate_trace(cell, random_params(cell), sequence())
    with pytest.raises(ValueError, match=r"trace.gates\[k\]"):
        gd.regimes(tr)
    assert set(gd.regimes(tr.gates[1], tr.valid).regimes) == set(CLAMPED)
    rnn = gc.simple_rnn(H)
    with pytest.raises(ValueError, match="no gate"):
        gd.regimes(gd.gate_trace(rnn, random_params(rnn), sequence()))
    with pytest.raises(ValueError, match="closed_below < open_above"):
        gd.regimes(tr.gates[0], open_above=0.1, closed_below=0.9)
    with pytest.raises(ValueError, match=r"valid must have shape \[\*B, T\]"):
        gd.regimes(tr.gates[0], jnp.ones((T,), bool))
    with pytest.raises(TypeError, match="valid must be a boolean array"):
        gd.regimes(tr.gates[0], jnp.ones((B, T)))
    with pytest.raises(ValueError, match="valid must be None"):
        gd.regimes(gd.GateTrace(tr.gates[0], None, None, tr.valid), tr.valid)


# --------------------------------------------------------------------------------------
# param_counts


def test_param_counts_and_ratios():
    cells = {
        "rnn": gc.simple_rnn(8),
        "lstm": gc.lstm(8),
        "lstm1997": gc.lstm(8, forget_gate=False),
        "gru": gc.gru(8),
        "gru_cho": gc.gru(8, reset_after=False),
    }
    table = gd.param_counts(cells, 5)
    n = 5 * 8 + 8 * 8 + 8
    assert list(table) == list(cells)
    for name, cell in cells.items():
        shapes = jax.eval_shape(lambda cell=cell: cell.init(jax.random.key(0), 5))
        assert table[name].params == gc.count_params(shapes)
        assert table[name].simple_rnn == n
    assert [table[k].ratio for k in ("rnn", "lstm", "lstm1997", "gru_cho")] == [1, 4, 3, 3]
    assert table["gru"].ratio == (3 * n + 8) / n
    assert list(gd.param_counts([gc.lstm(4)], 2)) == ["lstm(4)"]


def test_param_counts_errors():
    with pytest.raises(ValueError, match="input_size must be a positive int"):
        gd.param_counts([gc.lstm(4)], 0)
    with pytest.raises(ValueError, match="share a name"):
        gd.param_counts([gc.lstm(4), gc.lstm(4)], 2)
    with pytest.raises(TypeError, match="cell must be a gatedcells.Cell"):
        gd.param_counts({"x": "lstm"}, 2)


def test_diagnostics_needs_only_jax():
    """``gc.count_params`` lives in diagnostics, so ``import gatedcells`` loads it: it must
    stay as light as the rest of the package."""
    code = (
        "import sys, gatedcells.diagnostics; "
        "print(sorted(m for m in ('flax', 'optax', 'torch', 'sklearn', 'matplotlib') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
