"""The linear recurrence h_t = a_t h_{t-1} + b_t: the sequential and the associative (log
space) paths against a numpy loop and each other, and the minimal cells that run on it."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gatedcells as gc
from gatedcells.sequence import _linear

B, T, H = 3, 9, 4
LENGTHS = np.array([9, 4, 0])
METHODS = ("sequential", "associative")


def numpy_recurrence(log_a, b, h0, lengths, reverse):
    """The recurrence by a Python loop, each sequence within its own length."""
    hs = np.zeros_like(b)
    h_last = h0.copy()
    for row, n in enumerate(lengths):
        h = h0[row]
        for t in range(n - 1, -1, -1) if reverse else range(n):
            h = np.exp(log_a[row, t]) * h + b[row, t]
            hs[row, t] = h
        h_last[row] = h
    return h_last, hs


@pytest.fixture
def data():
    k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
    log_a = -jax.nn.softplus(jax.random.normal(k1, (B, T, H)))
    b = jax.random.normal(k2, (B, T, H))  # both signs
    h0 = jax.random.normal(k3, (B, H))
    return log_a, b, h0


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("method", METHODS)
def test_both_paths_equal_a_loop(data, method, reverse):
    log_a, b, h0 = data
    got = gc.linear_recurrence(
        log_a, b, h0, lengths=jnp.asarray(LENGTHS), reverse=reverse, method=method
    )
    want = numpy_recurrence(*map(np.asarray, data), LENGTHS, reverse)
    jax.tree.map(lambda g, w: np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5), got, want)
    # time-major layout, no lengths, default h0 = 0
    got = gc.linear_recurrence(
        jnp.swapaxes(log_a, 0, 1), jnp.swapaxes(b, 0, 1), time_major=True, method=method
    )
    want = numpy_recurrence(*map(np.asarray, data[:2]), np.zeros((B, H), np.float32), [T] * B,
                            False)  # fmt: skip
    np.testing.assert_allclose(jnp.swapaxes(got[1], 0, 1), want[1], rtol=1e-5, atol=1e-5)


def test_gradients_of_both_paths_agree(data):
    valid = jnp.asarray(np.arange(T)[:, None] < LENGTHS[None])

    def loss(method, grad, log_a, b, h0, reverse):
        h, hs = _linear.linear_scan(
            log_a, b, h0, valid=valid, reverse=reverse, method=method, grad=grad
        )
        return jnp.sum(jnp.sin(hs)) + jnp.sum(h**2)

    log_a, b, h0 = jnp.swapaxes(data[0], 0, 1), jnp.swapaxes(data[1], 0, 1), data[2]

    def grads(method, grad, reverse):
        return jax.grad(loss, (2, 3, 4))(method, grad, log_a, b, h0, reverse)

    def agree(x, y):
        jax.tree.map(lambda s, a: np.testing.assert_allclose(s, a, rtol=1e-4, atol=1e-5), x, y)

    # forwards, the adjoint recurrences of the two paths; backwards, the associative path's
    # adjoint against plain autodiff of the sequential scan
    agree(grads("sequential", "auto", False), grads("associative", "auto", False))
    agree(grads("associative", "auto", True), grads("sequential", "autodiff", True))
    # all-zero inputs and state: log(0) is floored, no NaN gradient
    zeros = jax.grad(loss, (2, 3, 4))("associative", "autodiff", log_a, 0 * b, 0 * h0, False)
    assert all(bool(jnp.isfinite(g).all()) for g in zeros)


def test_hundred_thousand_steps_without_overflow():
    steps = 100_000
    k1, k2 = jax.random.split(jax.random.key(1))
    log_a = -jax.nn.softplus(jax.random.normal(k1, (steps, 2, 3)) - 4.0)  # a close to 1
    b = jax.random.normal(k2, (steps, 2, 3))
    h0 = jnp.ones((2, 3))

    def run(method):
        fn = jax.jit(jax.value_and_grad(
            lambda la, b: jnp.sum(_linear.linear_scan(la, b, h0, method=method)[1] ** 2) / steps,
            argnums=(0, 1)))  # fmt: skip
        return fn(log_a, b)

    (v_seq, g_seq), (v_par, g_par) = run("sequential"), run("associative")
    assert np.isfinite(v_par) and all(bool(jnp.isfinite(g).all()) for g in g_par)
    np.testing.assert_allclose(v_par, v_seq, rtol=1e-4)
    jax.tree.map(lambda s, a: np.testing.assert_allclose(s, a, rtol=2e-3, atol=2e-5), g_seq, g_par)


def test_method_is_chosen_per_backend_and_checked():
    assert _linear.default_method() == (
        "sequential" if jax.default_backend() == "cpu" else "associative"
    )
    with pytest.raises(ValueError, match="method must be one of"):
        gc.linear_recurrence(jnp.zeros((2, 3)), jnp.zeros((2, 3)), method="parallel")
    with pytest.raises(ValueError, match="same shape"):
        gc.linear_recurrence(jnp.zeros((2, 3)), jnp.zeros((2, 4)))
    with pytest.raises(ValueError, match="h0 must have shape"):
        gc.linear_recurrence(jnp.zeros((2, 3)), jnp.zeros((2, 3)), jnp.zeros(4))


@pytest.mark.parametrize("factory", [gc.min_gru, gc.min_lstm])
def test_minimal_cells_unroll_on_both_paths_equals_steps(factory):
    """``unroll`` runs the linear recurrence; a loop of ``step`` runs the cell's equations."""
    xs = jax.random.normal(jax.random.key(2), (B, T, 2))
    cells = {m: factory(H, method=m) for m in METHODS}
    params = cells["sequential"].init(jax.random.key(3), 2)
    h0 = jax.random.normal(jax.random.key(4), (B, H))
    lengths = jnp.asarray(LENGTHS)
    for reverse in (False, True):
        runs = [gc.unroll(c, params, xs, h0, lengths=lengths, reverse=reverse)
                for c in cells.values()]  # fmt: skip
        for row, n in enumerate(LENGTHS):  # a loop of steps over each sequence
            h, ys = h0[row], []
            for t in range(n - 1, -1, -1) if reverse else range(n):
                h, y = cells["sequential"].step(params, h, xs[row, t])
                ys.append(y)
            ys = ys[::-1] if reverse else ys
            for h_run, ys_run in runs:
                np.testing.assert_allclose(h_run[row], h, rtol=1e-5, atol=1e-6)
                if n:
                    np.testing.assert_allclose(ys_run[row, :n], jnp.stack(ys), rtol=1e-5,
                                               atol=1e-6)  # fmt: skip
                assert not np.any(ys_run[row, n:])
