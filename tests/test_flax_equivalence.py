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
