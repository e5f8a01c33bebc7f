"""Numerical robustness: every cell of the registry over long sequences of inputs up to
|x| = 1e3, in float32 and bfloat16, gives finite outputs, carries and gradients; a run under
``jax.debug_nans``; non-finite inputs reported by ``gatedcells.check_finite``.

T = 10,000 for the cells whose numbers can grow without bound (exponential gating, the
linear recurrences, the minimal cells' log-space coefficients: ``registry.OVERFLOW_PRONE``);
T = 1,000 for the saturating ones (sigmoid and tanh gates bound every value of their carry).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import registry
from registry import NAMES, OVERFLOW_PRONE, build, rebuild

import gatedcells as gc

B, I = 2, 4
SCALE = 1e3


def steps(name):
    return 10_000 if name in OVERFLOW_PRONE else 1_000


def inputs(name, dtype, T=10_000):
    xs = jax.random.uniform(jax.random.key(3), (B, T, I), jnp.float32, -SCALE, SCALE)
    if name.startswith("resettable"):  # the last channel is the reset flag: 0 or 1
        flags = jax.random.bernoulli(jax.random.key(4), 0.01, (B, T, 1)).astype(xs.dtype)
        xs = jnp.concatenate([xs, flags], axis=-1)
    return xs.astype(dtype)


def finite(tree):  # in NumPy: eagerly, each leaf's check would be programs of its own
    return all(np.isfinite(np.asarray(leaf, np.float32)).all() for leaf in jax.tree.leaves(tree))


@pytest.mark.parametrize("name", NAMES)
def test_long_large_inputs_float32_values_and_gradients_finite(name):
    cell = build(name)
    xs = inputs(name, jnp.float32, steps(name))
    params = registry.params(name, xs.shape[-1])

    @jax.jit
    def run(params, xs):
        def loss(params, xs):
            carry, ys = gc.unroll(cell, params, xs)
            # every output and the final carry feed the loss: the gradient crosses all steps
            total = sum(jnp.sum(leaf) for leaf in jax.tree.leaves(carry))
            return jnp.mean(ys) + total, (carry, ys)

        return jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(params, xs)

    (value, (carry, ys)), grads = run(params, xs)
    assert ys.shape == (B, steps(name), cell.output_size)
    assert finite(ys) and finite(carry), name
    assert finite(value) and finite(grads), name


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_associative_linear_recurrence_finite(dtype):
    """The log-space parallel path of min_gru/min_lstm (the registry runs the sequential
    one) over the same long, large inputs."""
    cell = gc.stack(gc.min_gru(6, method="associative"), gc.min_lstm(6, method="associative"))
    xs = inputs("minimal", dtype)
    params = cell.init(jax.random.key(0), I)
    carry, ys = jax.jit(lambda p, xs: gc.unroll(cell, p, xs))(params, xs)
    assert finite(ys) and finite(carry)


# bfloat16 keeps float32's range: only the cells whose numbers can grow (registry.
# OVERFLOW_PRONE) can overflow it; the others' bfloat16 runs are in `make test`, and the
# plumbing representatives' in both tiers.
BF16_FAST = registry.OVERFLOW_PRONE | registry.PLUMBING


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=[pytest.mark.slow] * (n not in BF16_FAST)) for n in NAMES]
)
def test_long_large_inputs_bfloat16_finite(name):
    """bfloat16 params (cells the registry can rebuild so) and bfloat16 inputs."""
    cell = rebuild(name, param_dtype=jnp.bfloat16) or build(name)
    xs = inputs(name, jnp.bfloat16, steps(name))
    params = jax.jit(cell.init, static_argnums=1)(jax.random.key(0), xs.shape[-1])
    carry, ys = jax.jit(lambda p, xs: gc.unroll(cell, p, xs, reverse=True))(params, xs)
    assert finite(ys) and finite(carry), name


def test_debug_nans_clean():
    """Values and gradients of the cells with the most delicate arithmetic (layer norm,
    log-space recurrences, peepholes) under ``jax.debug_nans``: any NaN raises."""
    cells = [
        gc.lstm_variant(6, peepholes=True, layer_norm=True),
        gc.min_lstm(6, method="associative"),
    ]
    with jax.debug_nans(True):
        for cell in cells:
            name = cell.name
            xs = inputs(name, jnp.float32)[:, :200]
            params = cell.init(jax.random.key(0), I)
            loss = lambda p, x, cell=cell: jnp.mean(gc.unroll(cell, p, x)[1])
            assert finite(jax.jit(jax.grad(loss))(params, xs)), name
    with pytest.raises(FloatingPointError), jax.debug_nans(True):  # it does catch one
        jax.jit(jax.grad(loss))(params, xs[:, :5].at[0, 3, 1].set(jnp.nan))


def test_check_finite_reports_non_finite_inputs():
    xs = jnp.ones((2, 5, I))
    assert gc.check_finite(xs, "xs") is xs
    with pytest.raises(ValueError, match=r"xs holds 2 non-finite values \(NaN or Inf\), "
                       r"the first at index \(0, 3, 1\)"):  # fmt: skip
        gc.check_finite(xs.at[0, 3, 1].set(jnp.nan).at[1, 0, 0].set(jnp.inf), "xs")
    params = gc.lstm(3).init(jax.random.key(0), I)
    with pytest.raises(ValueError, match=r"params.w_h holds 1 non-finite value"):
        gc.check_finite(params._replace(w_h=params.w_h.at[0, 0].set(-jnp.inf)), "params")
    bf16 = xs.astype(jnp.bfloat16).at[1, 1, 1].set(jnp.nan)
    with pytest.raises(ValueError, match=r"index \(1, 1, 1\)"):
        gc.check_finite({"x": bf16, "n": jnp.arange(3)}, "batch")
    # under jit: a checkify check, reported as a value
    from jax.experimental import checkify

    f = jax.jit(lambda xs: gc.check_finite(xs, "xs") * 2)
    err, _ = checkify.checkify(f)(xs)
    assert err.get() is None
    err, _ = checkify.checkify(f)(xs.at[1, 1, 1].set(jnp.nan))
    assert "xs holds 1 non-finite values" in err.get()
    with pytest.raises(ValueError, match="checkify.checkify"):  # jax's own message
        f(xs)
