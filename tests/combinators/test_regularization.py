"""Recurrent dropout, zoneout and weight-drop: off means off, and the masks are the ones the
papers describe (one per sequence; fresh per step and unit; one per weight)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gatedcells as gc

B, T, H = 64, 6, 32
RATE = 0.3
KEY = jax.random.key(3)


def linear_rnn(w_x, w_h):
    """A simple RNN with identity activation and the given kernels: its state is readable."""
    cell = gc.simple_rnn(H, activation=jax.nn.identity)
    return cell, gc.SimpleRNNParams(w_x, w_h, jnp.zeros(H))


def loop(cell, params, carry, xs):
    ys = []
    for t in range(xs.shape[1]):
        carry, y = cell.step(params, carry, xs[:, t])
        ys.append(y)
    return carry, jnp.stack(ys, axis=1)


def close(a, b):
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6), a, b)


def test_off_means_the_cell_itself():
    cell = gc.lstm(4)
    for combinator in (gc.recurrent_dropout, gc.weight_drop):
        assert combinator(cell, RATE, deterministic=True) is cell
        assert combinator(cell, 0.0, key=KEY) is cell
    params = cell.init(jax.random.key(0), 2)
    xs = jax.random.normal(jax.random.key(1), (3, T, 2))
    zoned = gc.zoneout(cell, gc.LSTMCarry(c=0.0, h=0.0), key=KEY)
    carry, ys = gc.unroll(zoned, params, xs)
    close((carry.carry, ys), gc.unroll(cell, params, xs))


def test_recurrent_dropout_mask_is_one_per_sequence():
    # h_t = (m * h_{t-1} / (1-p)) @ I: the state is the product of the masks so far
    cell, params = linear_rnn(jnp.zeros((H, H)), jnp.eye(H))
    drop = gc.recurrent_dropout(cell, RATE, key=KEY)
    h0 = jnp.ones((B, H))
    _, ys = gc.unroll(drop, params, jnp.zeros((B, T, H)), h0)
    mask = ys[:, 0]  # m / (1-p), one per example and unit
    np.testing.assert_allclose(np.unique(mask), [0.0, 1 / (1 - RATE)], rtol=1e-6)
    for t in range(T):  # the same mask at every step
        np.testing.assert_allclose(ys[:, t], mask ** (t + 1), rtol=1e-5)
    assert abs(float(jnp.mean(mask == 0)) - RATE) < 0.05
    assert not np.all(mask[0] == mask[1])  # each example its own mask
    close(loop(drop, params, h0, jnp.zeros((B, T, H)))[1], ys)  # steps draw the same mask


def test_zoneout_masks_are_fresh_per_step_and_unit():
    # w_h = 0, w_x = I: the candidate is x_t, so h_t is x_t or, zoned out, h_{t-1}
    cell, params = linear_rnn(jnp.eye(H), jnp.zeros((H, H)))
    xs = jnp.broadcast_to(jnp.arange(1.0, T + 1)[None, :, None], (B, T, H))
    zoned = gc.zoneout(cell, RATE, key=KEY)
    carry, ys = gc.unroll(zoned, params, xs)
    kept = np.asarray(ys != xs)  # [B, T, H]: units that kept their old value
    assert abs(kept.mean() - RATE) < 0.05
    assert not np.all(kept[:, 1] == kept[:, 2]) and not np.all(kept[0] == kept[1])
    np.testing.assert_array_equal(carry.step, T)
    close(loop(zoned, params, zoned.initial_carry((B,)), xs), (carry, ys))
    # deterministic: the expectation p * h + (1 - p) * x, as the paper evaluates
    _, ys = gc.unroll(gc.zoneout(cell, RATE, deterministic=True), params, xs)
    h = np.zeros((B, H))
    for t in range(T):
        h = RATE * h + (1 - RATE) * np.asarray(xs[:, t])
        np.testing.assert_allclose(ys[:, t], h, rtol=1e-5)


def test_weight_drop_masks_w_h_once_and_blocks_its_gradient():
    cell = gc.gru(H)
    params = cell.init(jax.random.key(0), 3)
    xs = jax.random.normal(jax.random.key(1), (4, T, 3))
    drop = gc.weight_drop(cell, RATE, key=KEY)

    def loss(params):
        return jnp.sum(gc.unroll(drop, params, xs)[1] ** 2)

    d_w_h = jax.grad(loss)(params).w_h
    dropped = np.asarray(d_w_h == 0)
    assert abs(dropped.mean() - RATE) < 0.05
    # the same as the cell on explicitly masked weights, for every step and example
    masked = params._replace(w_h=jnp.where(dropped, 0.0, params.w_h / (1 - RATE)))
    close(gc.unroll(drop, params, xs), gc.unroll(cell, masked, xs))
    close(loop(drop, params, cell.initial_carry((4,)), xs), gc.unroll(cell, masked, xs))


def test_regularised_scans_keep_the_fused_gradient():
    """recurrent_dropout's scan runs the masked cell's fused gradient; deterministic zoneout
    keeps the Fused split of its cell: both equal plain autodiff."""
    cell = gc.recurrent_dropout(gc.zoneout(gc.lstm(5), 0.2, deterministic=True), RATE, key=KEY)
    params = cell.init(jax.random.key(0), 3)
    xs = jax.random.normal(jax.random.key(1), (4, T, 3))

    def loss(params, xs, grad):
        carry, ys = gc.unroll(cell, params, xs, lengths=jnp.array([T, 3, 1, 0]),
                              reverse=True, grad=grad)  # fmt: skip
        return jnp.sum(jnp.sin(ys)) + jnp.sum(carry.carry.c**2)

    grads = [jax.grad(loss, (0, 1))(params, xs, g) for g in gc.GRADS]
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), *grads)


def test_built_inside_jit_with_a_traced_key():
    """The documented use: a regularised cell built in the loss, a fresh key per step."""
    cell = gc.lstm(5)
    params = cell.init(jax.random.key(0), 3)
    xs = jax.random.normal(jax.random.key(1), (4, T, 3))
    builds = [
        lambda k: gc.recurrent_dropout(cell, RATE, key=k),
        lambda k: gc.zoneout(cell, RATE, key=k),
        lambda k: gc.weight_drop(cell, RATE, key=k),
    ]
    for build in builds:

        def loss(params, key, build=build):
            return jnp.sum(gc.unroll(build(key), params, xs)[1] ** 2)

        step = jax.jit(jax.value_and_grad(loss))
        (a, _), (b, _) = step(params, jax.random.key(2)), step(params, jax.random.key(3))
        assert np.isfinite(a) and a != b  # other keys, other masks
        np.testing.assert_allclose(step(params, jax.random.key(2))[0], a)


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: gc.recurrent_dropout(gc.lstm(4), 1.0, key=KEY), "rate must be a number"),
        (lambda: gc.zoneout(gc.lstm(4), -0.1, key=KEY), "rate must be a number"),
        (lambda: gc.weight_drop(gc.lstm(4), 0.5), "key is required"),
        (lambda: gc.recurrent_dropout(gc.mgu(4), 0.5, key=KEY), "use weight_drop or zoneout"),
        (lambda: gc.zoneout(gc.stack(gc.gru(4)), 0.5, key=KEY), "wrap each layer"),
        (lambda: gc.zoneout(gc.lstm(4), {"h": 0.1}, key=KEY), "pytree with the carry"),
    ],
)
def test_errors_name_the_argument(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_weight_drop_refuses_params_without_a_recurrent_kernel():
    cell = gc.weight_drop(gc.indrnn(4), 0.5, key=KEY)  # IndRNN's recurrence is a vector u
    params = cell.init(jax.random.key(0), 2)
    with pytest.raises(ValueError, match="recurrent kernel w_h"):
        gc.unroll(cell, params, jnp.ones((1, 3, 2)))


def test_flax_rnn_draws_the_regulariser_key_from_the_dropout_stream():
    import functools

    gl = pytest.importorskip("gatedcells.linen")
    cell = gc.lstm(8)
    model = gl.RNN(cell, regularizer=functools.partial(gc.zoneout, rate=RATE))
    xs = jax.random.normal(jax.random.key(1), (2, T, 3))
    variables = model.init(jax.random.key(0), xs, deterministic=True)
    params = variables["params"]["cell"]
    assert isinstance(params, gc.LSTMParams)  # the regulariser keeps the cell's params
    # off: zoneout's expectation; on: masks from the "dropout" stream, the same key twice
    close(model.apply(variables, xs, deterministic=True),
          gc.unroll(gc.zoneout(cell, RATE, deterministic=True), params, xs)[1])  # fmt: skip
    run = functools.partial(model.apply, variables, xs, deterministic=False)
    a, b = run(rngs={"dropout": jax.random.key(5)}), run(rngs={"dropout": jax.random.key(5)})
    close(a, b)
    assert not np.allclose(a, run(rngs={"dropout": jax.random.key(6)}))
    with pytest.raises(ValueError, match="deterministic"):
        model.apply(variables, xs)
