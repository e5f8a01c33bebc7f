"""``interop.from_flax`` / ``to_flax`` with Flax linen: a cell's variables or an ``nn.RNN``'s,
and exact round trips (the outputs themselves are checked in test_flax_equivalence.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gatedcells as gc
from gatedcells import interop

nn = pytest.importorskip("flax.linen")

from test_flax_equivalence import FLAX_CELLS as LINEN_CELLS  # noqa: E402
from test_flax_equivalence import B, I, T  # noqa: E402


def _rnn_variables(kind):
    """An ``nn.RNN``'s variables, every param shifted (non-zero biases)."""
    rnn = nn.RNN(LINEN_CELLS[kind]())
    xs = jax.random.normal(jax.random.key(0), (B, T, I))
    variables = rnn.init(jax.random.key(1), xs)
    shift = lambda a: a + jnp.linspace(-0.2, 0.3, a.size, dtype=a.dtype).reshape(a.shape)
    return rnn, jax.tree.map(shift, variables), xs


def _assert_same(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        assert x.dtype == y.dtype
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("kind", sorted(LINEN_CELLS))
def test_from_flax_takes_a_cells_or_an_rnns_variables(kind):
    rnn, variables, xs = _rnn_variables(kind)
    assert set(variables["params"]) == {"cell"}
    cell_params = variables["params"]["cell"]
    results = [
        interop.from_flax(rnn.cell, variables),  # the nn.RNN's variables
        interop.from_flax(rnn, variables),  # the nn.RNN itself
        interop.from_flax(rnn.cell, {"params": cell_params}),  # the cell's variables
        interop.from_flax(rnn.cell, cell_params),  # the cell's params
    ]
    for _, params in results:
        _assert_same(params, results[0][1])
    cell, params = results[0]
    np.testing.assert_allclose(gc.unroll(cell, params, xs)[1], rnn.apply(variables, xs), atol=1e-6)


@pytest.mark.parametrize("kind", sorted(LINEN_CELLS))
def test_linen_round_trips_are_exact(kind):
    rnn, variables, xs = _rnn_variables(kind)
    _, params = interop.from_flax(rnn, variables)
    _assert_same(interop.to_flax(params, rnn), variables)  # an nn.RNN's variables back
    _assert_same(interop.to_flax(params, rnn.cell), {"params": variables["params"]["cell"]})
    _assert_same(interop.from_flax(rnn.cell, interop.to_flax(params, rnn.cell))[1], params)
