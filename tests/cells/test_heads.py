"""``lstm(num_heads=NH)`` and ``gru(num_heads=NH)``: a block-diagonal ``w_h [NH, H/NH,
G*H/NH]`` equals the dense cell whose ``w_h`` is the block-diagonal matrix (values and
gradients, fused and autodiff), on the fused path; one head is today's dense cell. The
contract, padding, robustness and bad-input suites run ``lstm_heads``/``gru_heads`` through
tests/registry.py."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gatedcells as gc
from gatedcells.sequence import _fused

H, NH, I, B, T = 6, 3, 2, 3, 5
TOL = dict(rtol=1e-5, atol=1e-6)
CASES = {
    "lstm": lambda **kw: gc.lstm(H, **kw),
    "gru": lambda **kw: gc.gru(H, **kw),
    "gru_reset_before": lambda **kw: gc.gru(H, reset_after=False, **kw),
}


def dense_of(w_h):
    """The ``[H, G*H]`` block-diagonal matrix of ``w_h [NH, D, G*D]``, gate-major columns."""
    heads, D, cols = w_h.shape
    G, H = cols // D, heads * D
    dense = jnp.zeros((H, G * H), w_h.dtype)
    for n in range(heads):
        for g in range(G):
            block = w_h[n][:, g * D : (g + 1) * D]
            dense = dense.at[n * D : (n + 1) * D, g * H + n * D : g * H + (n + 1) * D].set(block)
    return dense


@pytest.mark.parametrize("name", sorted(CASES))
def test_heads_equal_the_dense_block_diagonal_cell(name, monkeypatch):
    heads, dense = CASES[name](num_heads=NH), CASES[name]()
    params = jax.jit(heads.init, static_argnums=1)(jax.random.key(0), I)
    to_dense = jax.jit(dense_of)  # one program, not a scatter per block
    assert params.w_h.shape == (NH, H // NH, params.b.shape[0] // NH)
    as_dense = params._replace(w_h=to_dense(params.w_h))
    dense.check_params(as_dense)
    xs = jax.random.normal(jax.random.key(1), (B, T, I))
    lengths = jnp.array([T, 3, 0])
    fused = []  # the custom-gradient scan, counted where the fused path takes it
    scan = _fused._scan
    monkeypatch.setattr(_fused, "_scan", lambda *a: fused.append(1) or scan(*a))

    def loss(cell, params, xs, grad):
        carry, ys = gc.unroll(cell, params, xs, lengths=lengths, grad=grad)
        weights = jnp.linspace(-1, 1, ys.size).reshape(ys.shape)
        return jnp.sum(weights * ys) + sum(jnp.sum(c**2) for c in jax.tree.leaves(carry))

    grad = jax.jit(jax.value_and_grad(loss, argnums=(1, 2)), static_argnums=(0, 3))
    mask = to_dense(jnp.ones_like(params.w_h))
    for g in gc.GRADS:
        (v, (d_p, d_x)), (v0, (d_p0, d_x0)) = (
            grad(cell, p, xs, g) for cell, p in ((heads, params), (dense, as_dense))
        )
        np.testing.assert_allclose(v, v0, **TOL)
        np.testing.assert_allclose(d_x, d_x0, **TOL)
        # the dense cell's gradient of w_h, read on the blocks, is the heads' gradient
        np.testing.assert_allclose(to_dense(d_p.w_h), d_p0.w_h * mask, **TOL)
        close = functools.partial(np.testing.assert_allclose, **TOL)
        jax.tree.map(close, d_p._replace(w_h=None), d_p0._replace(w_h=None))
    # the LSTM and the reset-after GRU take the fused custom gradient (the dense cell too)
    assert (heads.split is not None) == (name != "gru_reset_before") == bool(fused)


@pytest.mark.parametrize("name", sorted(CASES))
def test_one_head_is_the_dense_cell(name):
    one, dense = CASES[name](num_heads=1), CASES[name]()
    assert one == dense and one.name == dense.name
    key = jax.random.key(3)
    jax.tree.map(np.testing.assert_array_equal, one.init(key, I), dense.init(key, I))
    assert "num_heads=2" in CASES[name](num_heads=2).name


def test_heads_do_not_mix():
    """Head 0's slice of ``h`` reaches no other head's columns of any gate."""
    cell = gc.gru(H, num_heads=NH, reset_after=False)
    params = cell.init(jax.random.key(0), I)
    h = jax.random.normal(jax.random.key(1), (B, H))
    x = jax.random.normal(jax.random.key(2), (B, I))
    D = H // NH
    moved = cell.step(params, h.at[:, :D].add(1.0), x)[1] - cell.step(params, h, x)[1]
    assert bool((moved[:, D:] == 0).all()) and bool((moved[:, :D] != 0).any())


def test_flags_are_checked():
    with pytest.raises(ValueError, match="num_heads=4 must divide hidden_size=6"):
        gc.lstm(H, num_heads=4)
    with pytest.raises(ValueError, match="num_heads must be a positive int"):
        gc.gru(H, num_heads=0)
    with pytest.raises(ValueError, match="proj_size must be None with num_heads > 1"):
        gc.lstm(H, num_heads=2, proj_size=3)
    with pytest.raises(ValueError, match=r"w_h has shape \(2, 3, 12\), expected \(6, 24\)"):
        gc.unroll(gc.lstm(H), gc.lstm(H, num_heads=2).init(jax.random.key(0), I), jnp.ones((T, I)))


def test_to_torch_refuses_heads():
    torch = pytest.importorskip("torch")
    from gatedcells import interop

    params = gc.lstm(H, num_heads=2).init(jax.random.key(0), I)
    with pytest.raises(ValueError, match="num_heads > 1"):
        interop.to_torch(params, torch.nn.LSTM(I, H))
