"""The linear recurrence h_t = a_t h_{t-1} + b_t: the sequential, associative (log space for
real a, pairs for complex a) and chunked paths against a numpy loop and each other, with
complex decays, a state axis, resets and the fused form; and the minimal cells on it."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gatedcells as gc
from gatedcells.sequence import _linear

B, T, H = 3, 9, 4
LENGTHS = np.array([9, 4, 0])
METHODS = ("sequential", "associative", "chunked")


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
            log_a, b, h0, valid=valid, reverse=reverse, method=method, grad=grad, chunk_size=4
        )
        return jnp.sum(jnp.sin(hs)) + jnp.sum(h**2)

    log_a, b, h0 = jnp.swapaxes(data[0], 0, 1), jnp.swapaxes(data[1], 0, 1), data[2]

    grad_of = jax.jit(jax.grad(loss, (2, 3, 4)), static_argnums=(0, 1, 5))

    def grads(method, grad, reverse):
        return grad_of(method, grad, log_a, b, h0, reverse)

    def agree(x, y):
        jax.tree.map(lambda s, a: np.testing.assert_allclose(s, a, rtol=1e-4, atol=1e-5), x, y)

    # forwards, the adjoint recurrences of the two paths; backwards, the associative path's
    # adjoint against plain autodiff of the sequential scan
    agree(grads("sequential", "auto", False), grads("associative", "auto", False))
    agree(grads("associative", "auto", True), grads("sequential", "autodiff", True))
    agree(grads("chunked", "auto", True), grads("sequential", "autodiff", True))
    agree(grads("chunked", "autodiff", False), grads("sequential", "auto", False))
    # all-zero inputs and state: log(0) is floored, no NaN gradient
    zeros = grad_of("associative", "autodiff", log_a, 0 * b, 0 * h0, False)
    assert all(bool(jnp.isfinite(g).all()) for g in zeros)


@pytest.mark.parametrize("steps", [10_000, pytest.param(100_000, marks=pytest.mark.slow)])
def test_long_sequences_without_overflow(steps):
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
    with pytest.raises(ValueError, match="log_a must have the shape of b"):
        gc.linear_recurrence(jnp.zeros((2, 3)), jnp.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"resets must have shape \[\*B, T\]=\(2,\)"):
        gc.linear_recurrence(jnp.zeros((2, 3)), jnp.zeros((2, 3)), resets=jnp.zeros(3, bool))
    with pytest.raises(ValueError, match="b must have shape"):
        gc.linear_recurrence(jnp.zeros((2, 3)), jnp.zeros((2, 3)), feature_axes=2)
    with pytest.raises(ValueError, match="chunk_size must be a positive int"):
        gc.linear_recurrence(jnp.zeros((2, 3)), jnp.zeros((2, 3)), chunk_size=0)
    with pytest.raises(TypeError, match="floating or complex"):
        gc.linear_recurrence(jnp.zeros((2, 3), int), jnp.zeros((2, 3)))
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


def numpy_general(a, b, h0, starts, reverse):
    """``h_t = a_t h_{t-1} + b_t`` over ``[T, *S]`` (complex allowed), the state zeroed before
    each segment start (backwards: before each segment's last step, the row's end included)."""
    hs, h = np.zeros_like(b), h0.copy()
    steps = range(len(b) - 1, -1, -1) if reverse else range(len(b))
    for t in steps:
        if reverse:
            fresh = t == len(b) - 1 or starts[t + 1]
        else:
            fresh = starts[t]
        h = a[t] * np.where(fresh, 0, h) + b[t]
        hs[t] = h
    return h, hs


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("method", METHODS)
def test_complex_decay_state_axis_and_resets_equal_a_loop(method, reverse):
    """LRU-like complex decays constant in time (broadcast), on a ``[B, H, N]`` state, with
    segment starts; the gradient of every path against autodiff of the sequential scan."""
    rng = np.random.default_rng(0)
    T, N = 10, 3
    log_a = -np.exp(rng.normal(size=(H, N))) + 1j * rng.normal(size=(H, N))  # constant [H, N]
    b = rng.normal(size=(B, T, H, N)) + 1j * rng.normal(size=(B, T, H, N))
    h0 = rng.normal(size=(B, H, N)) + 1j * rng.normal(size=(B, H, N))
    starts = np.zeros((B, T), bool)
    starts[0, [0, 4]] = starts[1, 7] = True
    c64 = lambda v: jnp.asarray(v, jnp.complex64)  # noqa: E731
    h, hs = gc.linear_recurrence(c64(log_a), c64(b), c64(h0), resets=jnp.asarray(starts),
                                 reverse=reverse, feature_axes=2, method=method, chunk_size=3)  # fmt: skip
    for row in range(B):
        a_row = np.broadcast_to(np.exp(log_a), (T, H, N))
        want_h, want_hs = numpy_general(a_row, b[row], h0[row], starts[row], reverse)
        np.testing.assert_allclose(hs[row], want_hs, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(h[row], want_h, rtol=1e-5, atol=1e-5)

    def loss(method, grad, log_a, b, h0):
        resets = _linear.reset_flags(jnp.asarray(starts.T), None, reverse)
        h, hs = _linear.linear_scan(log_a, b, h0, reverse=reverse, method=method, grad=grad,
                                    resets=resets, chunk_size=3)  # fmt: skip
        return jnp.sum(jnp.abs(jnp.sin(hs)) ** 2) + jnp.sum(jnp.abs(h) ** 2)

    args = (c64(np.broadcast_to(log_a, (T, B, H, N))), c64(np.swapaxes(b, 0, 1)), c64(h0))
    grad = jax.jit(jax.grad(loss, (2, 3, 4)), static_argnums=(0, 1))
    want = grad("sequential", "autodiff", *args)
    got = grad(method, "auto", *args)
    jax.tree.map(lambda g, w: np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5), got, want)


def test_resets_with_lengths_in_both_directions():
    """Real decays: packed segments give the states of separate runs, also backwards within
    each row's length (the padding never starts a segment)."""
    k1, k2 = jax.random.split(jax.random.key(5))
    log_a = -jax.nn.softplus(jax.random.normal(k1, (2, 9, 3)))
    b = jax.random.normal(k2, (2, 9, 3))
    starts = jnp.zeros((2, 9), bool).at[:, 0].set(True).at[:, 3].set(True)
    lengths = jnp.array([9, 6])
    run = jax.jit(gc.linear_recurrence, static_argnames=("reverse", "method", "chunk_size"))
    for method in METHODS:
        for reverse in (False, True):
            _, hs = run(log_a, b, resets=starts, lengths=lengths, reverse=reverse,
                        method=method, chunk_size=2)  # fmt: skip
            for row, n in enumerate(lengths):
                for lo, hi in ((0, 3), (3, int(n))):
                    _, part = run(log_a[row, lo:hi], b[row, lo:hi], reverse=reverse,
                                  method="sequential")  # fmt: skip
                    np.testing.assert_allclose(hs[row, lo:hi], part, rtol=1e-5, atol=1e-6)
                assert not np.any(hs[row, int(n) :])


@pytest.mark.parametrize("method", METHODS)
def test_linear_scan_with_readout_equals_the_materialised_recurrence(method):
    """The fused form (coefficients and read-out inside the loop, as the selective SSM runs)
    against linear_scan on the formed coefficients, values and gradients, with lengths,
    resets and reverse."""
    T, N = 11, 4
    k = jax.random.split(jax.random.key(6), 4)
    delta = jax.nn.softplus(jax.random.normal(k[0], (T, B, H)))
    bx = jax.random.normal(k[1], (T, B, H, N))
    c = jax.random.normal(k[2], (T, B, N))
    a = -jnp.exp(jax.random.normal(k[3], (H, N)))
    valid = jnp.asarray(np.arange(T)[:, None] < np.array([11, 5, 0])[None])
    resets = jnp.zeros((T, B), bool).at[4].set(True)
    h0 = jnp.ones((B, H, N))

    def coefficients(a, x):
        delta, bx, _ = x
        return delta[..., None] * a.reshape((1,) * (delta.ndim - 1) + a.shape), bx

    def readout(a, h, x):
        return jnp.einsum("...hn,...n->...h", h, x[2])

    def fused(a, delta, bx, c, reverse):
        h, ys = _linear.linear_scan_with_readout(coefficients, readout, a, (delta, bx, c), h0, valid=valid,
                                   resets=resets, reverse=reverse, method=method, chunk_size=3)  # fmt: skip
        return jnp.sum(jnp.sin(ys)) + jnp.sum(h**2), ys

    def formed(a, delta, bx, c, reverse):
        log_a, b = coefficients(a, (delta, bx, c))
        h, hs = _linear.linear_scan(log_a, b, h0, valid=valid, resets=resets, reverse=reverse,
                                    method="sequential", grad="autodiff")  # fmt: skip
        ys = readout(a, hs, (delta, bx, c))
        return jnp.sum(jnp.sin(ys)) + jnp.sum(h**2), ys

    def both(a, delta, bx, c, reverse):
        grads = [jax.value_and_grad(f, (0, 1, 2, 3), has_aux=True) for f in (fused, formed)]
        return [g(a, delta, bx, c, reverse) for g in grads]

    both = jax.jit(both, static_argnums=4)
    for reverse in (False, True):
        ((v1, ys1), g1), ((v2, ys2), g2) = both(a, delta, bx, c, reverse)
        np.testing.assert_allclose(ys1, ys2, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(v1, v2, rtol=1e-5)
        jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-5), g1, g2)


def test_bfloat16_accumulates_in_float32():
    """bfloat16 inputs and state: every path accumulates in float32 and returns bfloat16."""
    log_a = jnp.full((4000, 1, 2), -1e-3, jnp.bfloat16)
    b = jnp.full((4000, 1, 2), 1e-2, jnp.bfloat16)
    run = jax.jit(gc.linear_recurrence, static_argnames=("time_major", "method"))
    for method in METHODS:
        h, hs = run(log_a, b, time_major=True, method=method)
        assert hs.dtype == jnp.bfloat16
        want = 1e-2 * (1 - np.exp(-1e-3 * 4000)) / (1 - np.exp(-1e-3))  # the geometric sum
        np.testing.assert_allclose(float(h[0, 0]), want, rtol=1e-2)
