"""The fused custom gradient of ``unroll`` equals plain autodiff of the scan."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from registry import LOOSE, NAMES, build

import gatedcells as gc

I, B, T = 3, 4, 8
LENGTHS = jnp.array([8, 5, 1, 0])


# cells whose unroll takes the fused path (directly, or in a stack's layers); for the others
# both grad options run the same autodiff
FUSED = [n for n in NAMES if build(n).split is not None or n.startswith("stack")]
# the scan direction is the driver's, the same for every cell: the three base cells run both
# directions, the variants one each (alternating), which covers each cell's pointwise VJP
BOTH = {"lstm", "gru", "simple_rnn"}
CASES = [(n, r) for i, n in enumerate(FUSED) for r in (False, True) if n in BOTH or r == i % 2]


@pytest.mark.parametrize("name, reverse", CASES)
def test_fused_gradient_equals_autodiff(name, reverse):
    cell = build(name)
    params = cell.init(jax.random.key(0), I)
    xs = jax.random.normal(jax.random.key(1), (B, T, I))
    carry = jax.tree.map(lambda z: z + 0.3, cell.initial_carry((B,)))

    def loss(params, xs, carry, grad):
        new_carry, ys = gc.unroll(cell, params, xs, carry, lengths=LENGTHS, reverse=reverse,
                                  grad=grad)  # fmt: skip
        weights = jnp.linspace(-1, 1, ys.size).reshape(ys.shape)
        return jnp.sum(weights * ys) + sum(jnp.sum(c**2) for c in jax.tree.leaves(new_carry))

    grad = jax.jit(jax.grad(loss, argnums=(0, 1, 2)), static_argnums=3)
    grads = {g: grad(params, xs, carry, g) for g in gc.GRADS}
    tol = LOOSE.get(name, dict(rtol=1e-5, atol=1e-6))
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, **tol), *grads.values())


@pytest.mark.parametrize(  # 3 does not divide T; 8 is the GPU default; True unrolls it all
    "make, unroll", [(gc.lstm, 3), (gc.gru, 8), (gc.simple_rnn, True)], ids=["lstm", "gru", "rnn"]
)
def test_fused_gradient_with_scan_unroll(make, unroll):
    cell = make(5)
    params = cell.init(jax.random.key(0), I)
    xs = jax.random.normal(jax.random.key(1), (B, T, I))

    def loss(params, xs, unroll, grad):
        _, ys = gc.unroll(cell, params, xs, lengths=LENGTHS, reverse=True, unroll=unroll,
                          grad=grad)  # fmt: skip
        return jnp.sum(jnp.linspace(-1, 1, ys.size).reshape(ys.shape) * ys)

    grad = jax.jit(jax.grad(loss, argnums=(0, 1)), static_argnums=(2, 3))
    fused = grad(params, xs, unroll, "auto")
    plain = grad(params, xs, 1, "autodiff")
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
                 fused, plain)  # fmt: skip


def test_fused_gradient_through_bidirectional_stack_under_jit_and_vmap():
    deep = gc.stack(gc.bidirectional(gc.lstm(4), gc.gru(3)), gc.simple_rnn(5))
    params = deep.init(jax.random.key(0), I)
    xs = jax.random.normal(jax.random.key(1), (2, B, T, I))

    def loss(params, xs, grad):
        return jnp.sum(gc.unroll(deep, params, xs, lengths=LENGTHS, grad=grad)[1] ** 2)

    fused = jax.jit(jax.vmap(jax.grad(loss), in_axes=(None, 0, None)), static_argnums=2)
    auto = jax.jit(jax.vmap(jax.grad(loss), in_axes=(None, 0, None)), static_argnums=2)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
        fused(params, xs, "auto"),
        auto(params, xs, "autodiff"),
    )


def test_second_order_and_forward_mode():
    cell = gc.lstm(4)
    params = cell.init(jax.random.key(0), I)
    xs = jax.random.normal(jax.random.key(1), (B, T, I))
    loss = lambda xs, grad: jnp.sum(gc.unroll(cell, params, xs, grad=grad)[1] ** 2)
    # Hessian-vector products (forward over reverse) work through the fused gradient
    hvp = lambda g: jax.jvp(jax.grad(lambda x: loss(x, g)), (xs,), (jnp.ones_like(xs),))[1]
    np.testing.assert_allclose(hvp("auto"), hvp("autodiff"), rtol=1e-4, atol=1e-5)
    # pure forward mode of unroll itself needs grad="autodiff"
    tangent = jax.jvp(lambda x: loss(x, "autodiff"), (xs,), (jnp.ones_like(xs),))[1]
    np.testing.assert_allclose(tangent, jnp.sum(jax.grad(lambda x: loss(x, "auto"))(xs)), rtol=1e-4)


def test_cell_closing_over_a_traced_value_falls_back_to_autodiff():
    """A cell built inside jit around a traced value cannot be a static argument of the
    fused gradient; it must still differentiate, by plain autodiff of the same loop."""
    import dataclasses

    from gatedcells._cell import split_update

    base = gc.simple_rnn(4)
    params = base.init(jax.random.key(0), I)
    xs = jax.random.normal(jax.random.key(1), (B, T, I))

    def scaled(scale):  # the input pre-activation scaled by a (traced) number
        f = base.split
        split = f._replace(pointwise=lambda p, c, xp, hp: f.pointwise(p, c, xp * scale, hp))
        return dataclasses.replace(base, split=split, update=split_update(split))

    def loss(params, scale, grad):
        return jnp.sum(gc.unroll(scaled(scale), params, xs, grad=grad)[1] ** 2)

    got = jax.jit(jax.grad(loss, argnums=(0, 1)), static_argnums=2)(params, 2.0, "auto")
    want = jax.grad(loss, argnums=(0, 1))(params, 2.0, "autodiff")
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), got, want)


def test_block_diagonal_w_h_as_one_dense_matmul_equals_the_heads():
    """The fused loop multiplies by a block-diagonal ``w_h`` as one dense matmul (one device,
    small enough): the same products as the batched matmul over the heads."""
    from gatedcells._cell import recurrent_matmul
    from gatedcells.sequence import _fused

    w_h = jax.random.normal(jax.random.key(0), (4, 3, 12))  # 4 heads of 3, 4 gates
    h = jax.random.normal(jax.random.key(1), (2, 5, 12))
    dense = _fused._dense(w_h)
    assert dense.shape == (12, 48) and jnp.count_nonzero(dense) == w_h.size
    np.testing.assert_allclose(h @ dense, recurrent_matmul(h, w_h), rtol=1e-6, atol=1e-6)
    assert _fused._dense(jnp.zeros((1, 3, 12))).shape == (1, 3, 12)  # one head: a plain matmul
    # the weight gradient takes the blocks back off the diagonal of a dense product
    np.testing.assert_array_equal(_fused._diagonal_blocks(dense, w_h.shape), w_h)
