"""gatedcells.training: the train step, fit, determinism, and a real data set."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gatedcells as gc
from gatedcells import tasks, training


def quadratic(params, batch, key):
    del key
    return jnp.sum((params["w"] - batch) ** 2), {"w0": params["w"][0]}


def test_train_step_is_one_optax_update():
    optimizer = optax.adam(0.1)
    params = {"w": jnp.array([0.5, -1.0])}
    state = training.TrainState.create(params, optimizer, jax.random.key(0))
    batch = jnp.array([1.0, 2.0])
    new, metrics = jax.jit(training.train_step(quadratic, optimizer))(state, batch)
    grads = jax.grad(lambda p: quadratic(p, batch, None)[0])(params)
    with jax.numpy_dtype_promotion("standard"):  # optax's adam is not strict-promotion clean
        updates, opt_state = optimizer.update(grads, optimizer.init(params), params)
    np.testing.assert_allclose(
        new.params["w"], optax.apply_updates(params, updates)["w"], rtol=1e-6
    )
    assert jax.tree.structure(new.opt_state) == jax.tree.structure(opt_state)
    assert int(new.step) == 1 and not np.array_equal(
        jax.random.key_data(new.key), jax.random.key_data(state.key)
    )
    assert set(metrics) == {"loss", "w0", "grad_norm"}
    assert float(metrics["loss"]) == pytest.approx(0.25 + 9.0)
    assert float(metrics["grad_norm"]) == pytest.approx(float(jnp.linalg.norm(grads["w"])))


def test_fit_history_and_clipping():
    params = {"w": jnp.zeros(2)}
    target = jnp.array([3.0, 4.0])  # the first gradient has norm 10
    seen = []

    def eval_fn(p):
        seen.append(None)  # traced once: eval_fn is jitted
        return {"dist": jnp.linalg.norm(p["w"] - target)}

    trained, history = training.fit(
        quadratic, params, optax.sgd(1.0), lambda key: target, steps=10, key=jax.random.key(0),
        eval_fn=eval_fn, eval_every=4, clip_norm=0.5, log_every=3, progress=False,
    )  # fmt: skip
    # clipped to norm 0.5, plain SGD moves exactly 0.5 per step toward the target
    np.testing.assert_allclose(history.eval["dist"], [5.0, 3.0, 1.0, 0.0], atol=1e-5)
    np.testing.assert_array_equal(history.eval_step, [0, 4, 8, 10])
    np.testing.assert_array_equal(history.step, np.arange(1, 11))
    assert set(history.train) == {"loss", "w0", "grad_norm"}
    assert all(v.shape == (10,) for v in history.train.values())
    assert history.train["grad_norm"][0] == pytest.approx(10.0)
    assert len(seen) == 1 and history.seconds.shape == (4,)
    flat = json.loads(json.dumps(history.to_dict()))
    assert len(flat["loss"]) == 10 and flat["eval_dist"][0] == pytest.approx(5.0)


def test_fit_with_an_iterable_of_batches():
    batches = [jnp.full(2, float(k)) for k in range(12)]
    _, history = training.fit(
        quadratic, {"w": jnp.zeros(2)}, optax.sgd(0.0), iter(batches),
        steps=12, key=jax.random.key(0), log_every=5, progress=False,
    )  # fmt: skip
    # with a zero learning rate, step k's loss shows it saw batch k
    np.testing.assert_allclose(history.train["loss"], [2.0 * k**2 for k in range(12)])
    with pytest.raises(ValueError, match="data ran out after 12 batches"):
        training.fit(quadratic, {"w": jnp.zeros(2)}, optax.sgd(0.1), batches, steps=13,
                     key=jax.random.key(0), progress=False)  # fmt: skip


def test_fit_errors():
    args = (quadratic, {"w": jnp.zeros(2)}, optax.sgd(0.1), lambda key: jnp.zeros(2))
    with pytest.raises(ValueError, match="steps must be a positive int"):
        training.fit(*args, steps=0, key=jax.random.key(0))
    with pytest.raises(ValueError, match="clip_norm must be positive"):
        training.fit(*args, steps=1, key=jax.random.key(0), clip_norm=0.0)
    with pytest.raises(TypeError, match="data must be a sampler"):
        training.fit(*args[:3], 3, steps=1, key=jax.random.key(0))


def tiny_run(seed):
    """40 steps of a small GRU on a short temporal-order task."""
    return training.fit_task(
        gc.gru(16), tasks.temporal_order(10), optax.adam(2e-2), key=jax.random.key(seed),
        steps=40, batch_size=16, eval_size=64, eval_every=20, progress=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def first_run():
    return tiny_run(0)


def test_loss_goes_down_on_a_tiny_task(first_run):
    _, history = first_run
    loss = history.train["loss"]
    assert loss[-10:].mean() < 0.5 * loss[:5].mean()
    assert history.eval["accuracy"][-1] > 0.9 > 0.5 > history.eval["accuracy"][0]


def test_same_seed_bit_identical(first_run):
    a, ha = first_run
    b, hb = tiny_run(0)
    c, _ = tiny_run(1)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(ha.train["loss"], hb.train["loss"])
    assert not np.array_equal(a["cell"].w_h, c["cell"].w_h)


def test_fit_on_digits_reaches_stated_accuracy():
    """A GRU reading the 8x8 digits row by row, tested on the last 360 images (writers it
    never saw). Measured: 0.928 test accuracy (seeds 1, 2: 0.919, 0.925); required: 0.88."""
    task = tasks.digits()
    cell = gc.gru(64)
    params, history = training.fit_task(
        cell, task, optax.adam(5e-3), steps=400, batch_size=128, eval_every=100,
        key=jax.random.key(0), progress=False,
    )  # fmt: skip
    assert history.eval["accuracy"][-1] >= 0.88
    assert history.eval["accuracy"][0] < 0.2  # it starts at chance
    logits = training.task_model(cell, task).apply(params, task.test[0])
    assert float(task.metric(logits, task.test[1])) == pytest.approx(history.eval["accuracy"][-1])


def test_save_and_load_params(tmp_path):
    model = training.task_model(gc.stack(gc.gru(4, reset_after=False), gc.lstm(3)), tasks.adding(5))
    params = model.init(jax.random.key(0))
    path = tmp_path / "params.npz"
    training.save_params(path, params)
    with np.load(path) as saved:
        assert "cell/0/w_x" in saved.files
    back = training.load_params(path, params)
    assert jax.tree.structure(back) == jax.tree.structure(params)
    for x, y in zip(jax.tree.leaves(back), jax.tree.leaves(params), strict=True):
        np.testing.assert_array_equal(x, y)
    other = training.task_model(gc.gru(4), tasks.adding(5)).init(jax.random.key(0))
    with pytest.raises(ValueError, match="params expect"):
        training.load_params(path, other)


def test_fit_compiles_one_chunk_length_when_periods_allow():
    from gatedcells.training._schedule import chunk_length

    assert chunk_length(50, 60, 60) == 30  # not 50, 10, 40, 20, 30, ... compiled anew
    assert chunk_length(50, 100, 100) == 50
    assert chunk_length(50, 10, 10) == 10
    assert chunk_length(50, 97, 97) == 50  # a prime period: chunks end at each boundary
