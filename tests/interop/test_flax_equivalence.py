"""Equivalence with Flax linen's cells through ``interop.from_flax`` / ``to_flax``."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gatedcells as gc
from gatedcells import interop

nn = pytest.importorskip("flax.linen")

I, H, B, T = 5, 7, 3, 6
FLAX_CELLS = {
    "LSTMCell": lambda: nn.LSTMCell(H),
    "OptimizedLSTMCell": lambda: nn.OptimizedLSTMCell(H),
    "GRUCell": lambda: nn.GRUCell(H),
    "SimpleCell": lambda: nn.SimpleCell(H),
}


@pytest.mark.parametrize("kind", sorted(FLAX_CELLS))
def test_flax_cell_equals_gatedcells(kind):
    module = FLAX_CELLS[kind]()
    kx, kc = jax.random.split(jax.random.key(0))
    xs = jax.random.normal(kx, (B, T, I))
    # non-zero biases so that bias placement is checked too
    init = module.init(jax.random.key(1), module.initialize_carry(kc, (B, I)), xs[:, 0])
    variables = jax.tree.map(lambda a: a + jnp.linspace(0, 0.1, a.size).reshape(a.shape), init)
    y_flax = nn.RNN(module).apply({"params": {"cell": variables["params"]}}, xs)
    cell, params = interop.from_flax(module, variables)
    _, ys = gc.unroll(cell, params, xs)
    np.testing.assert_allclose(ys, y_flax, atol=1e-5)
    # one step from a non-zero carry, carries compared field by field
    carry_flax = jax.tree.map(lambda a: 0.3 + 0 * a, module.initialize_carry(kc, (B, I)))
    (c_flax, y1_flax) = module.apply(variables, carry_flax, xs[:, 0])
    carry = gc.LSTMCarry(*carry_flax) if "LSTM" in kind else carry_flax
    c_ours, y1 = cell.step(params, carry, xs[:, 0])
    np.testing.assert_allclose(y1, y1_flax, atol=1e-5)
    for ours, theirs in zip(jax.tree.leaves(c_ours), jax.tree.leaves(c_flax), strict=True):
        np.testing.assert_allclose(ours, theirs, atol=1e-5)
    # and back: to_flax gives the same variables
    back = interop.to_flax(params, module)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-7), back, variables)


def test_from_flax_refuses_other_activations():
    with pytest.raises(ValueError, match="gate_fn or activation_fn"):
        interop.from_flax(nn.LSTMCell(H, activation_fn=jax.nn.relu), {})
    with pytest.raises(TypeError, match="got Dense"):
        interop.from_flax(nn.Dense(3), {})


# --------------------------------------------------------------------------------------
# Flax's initialisation: gc.lstm(H, forget_bias=0.0) and gc.gru(H, update_bias=0.0).

FLAX_INIT = {
    "LSTMCell": (lambda: gc.lstm(H, forget_bias=0.0), lambda: nn.LSTMCell(H), "ifgo"),
    "GRUCell": (lambda: gc.gru(H, update_bias=0.0), lambda: nn.GRUCell(H), "rzn"),
}


def _orthogonal(w):
    return np.allclose(np.asarray(w).T @ np.asarray(w), np.eye(w.shape[1]), atol=1e-5)


@pytest.mark.parametrize("kind", sorted(FLAX_INIT))
def test_flax_init_reproduced(kind):
    """The same initialisers, drawn per gate block as Flax draws per gate: LeCun-normal
    kernels, orthogonal recurrent kernels, zero biases; then, weights copied, the same
    outputs."""
    import inspect

    make_ours, make_theirs, gates = FLAX_INIT[kind]
    factory = gc.lstm if kind == "LSTMCell" else gc.gru
    defaults = inspect.signature(factory).parameters
    module = make_theirs()
    key = jax.random.key(3)
    for ours, theirs, shape in [
        ("kernel_init", module.kernel_init, (I, H)),
        ("recurrent_init", module.recurrent_kernel_init, (H, H)),
        ("bias_init", module.bias_init, (H,)),
    ]:  # the same distributions: the same draws from the same key
        np.testing.assert_array_equal(
            defaults[ours].default(key, shape, jnp.float32), theirs(key, shape, jnp.float32)
        )
    params = make_ours().init(jax.random.key(0), I)
    xs = jax.random.normal(jax.random.key(1), (B, T, I))
    variables = module.init(jax.random.key(2), module.initialize_carry(key, (B, I)), xs[:, 0])
    theirs = variables["params"]
    assert not np.asarray(params.b).any()  # every bias exactly zero, as Flax's
    assert all(not np.asarray(v).any() for k, v in jax.tree_util.tree_leaves_with_path(theirs)
               if "bias" in jax.tree_util.keystr(k))  # fmt: skip
    n = len(gates)
    assert params.w_x.shape == (I, n * H) and params.w_x.dtype == jnp.float32
    for k, gate in enumerate(gates):  # per block: Flax's per-gate shapes, dtypes, law
        w_h = params.w_h[:, k * H : (k + 1) * H]
        flax_h = theirs["h" + gate]["kernel"]
        assert w_h.shape == flax_h.shape and w_h.dtype == flax_h.dtype
        assert _orthogonal(w_h) and _orthogonal(flax_h)
        assert params.w_x[:, k * H : (k + 1) * H].shape == theirs["i" + gate]["kernel"].shape
    if kind == "GRUCell":
        assert not np.asarray(params.b_hn).any()
    # weights copied into Flax's layout, the same outputs
    copied = jax.tree.map(lambda a: a, theirs)
    for k, gate in enumerate(gates):
        block = slice(k * H, (k + 1) * H)
        copied["i" + gate]["kernel"] = params.w_x[:, block]
        copied["h" + gate]["kernel"] = params.w_h[:, block]
        bias_side = "h" if kind == "LSTMCell" or gate == "n" else "i"
        b = params.b_hn if (kind == "GRUCell" and gate == "n") else params.b[block]
        copied[bias_side + gate]["bias"] = b
    if kind == "GRUCell":
        copied["in"]["bias"] = params.b[2 * H :]
    y_flax = nn.RNN(module).apply({"params": {"cell": copied}}, xs)
    np.testing.assert_allclose(gc.unroll(make_ours(), params, xs)[1], y_flax, atol=1e-6)
