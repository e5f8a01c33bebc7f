"""gatedcells.tasks: shapes, dtypes, hand-checked targets and chance baselines."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gatedcells import tasks

SYNTHETIC = {
    "adding": (tasks.adding(20), (20, 2), (), jnp.float32),
    "copy": (tasks.copy_memory(6), (26, 10), (26,), jnp.int32),
    "order": (tasks.temporal_order(30), (30, 8), (), jnp.int32),
}


@pytest.mark.parametrize("name", SYNTHETIC)
def test_shapes_dtypes_purity(name):
    task, x_shape, y_shape, y_dtype = SYNTHETIC[name]
    xs, ys = task.sample(jax.random.key(0), 5)
    assert xs.shape == (5, *x_shape) and xs.dtype == jnp.float32
    assert ys.shape == (5, *y_shape) and ys.dtype == y_dtype
    assert (task.length, task.input_size) == x_shape
    # pure: jit equals eager, the same key gives the same batch, another key another
    jitted = jax.jit(task.sample, static_argnums=1)(jax.random.key(0), 5)
    for a, b in zip(jitted, (xs, ys), strict=True):
        np.testing.assert_array_equal(a, b)
    other = task.sample(jax.random.key(1), 5)[0]
    assert not np.array_equal(other, xs)


def test_adding_targets_by_hand():
    task = tasks.adding(9)
    xs, ys = map(np.asarray, task.sample(jax.random.key(3), 200))
    values, markers = xs[..., 0], xs[..., 1]
    assert set(np.unique(markers)) == {0.0, 1.0}
    assert (markers.sum(1) == 2).all()
    assert (markers[:, :4].sum(1) == 1).all() and (markers[:, 4:].sum(1) == 1).all()
    assert (0 <= values).all() and (values < 1).all()
    for v, m, y in zip(values[:20], markers[:20], ys[:20], strict=True):
        i, j = np.flatnonzero(m)
        assert y == pytest.approx(v[i] + v[j], abs=1e-6)


def test_adding_baseline():
    task = tasks.adding(10)
    _, ys = task.sample(jax.random.key(0), 100_000)
    ones = jnp.ones((ys.shape[0], 1))
    assert float(task.loss(ones, ys)) == pytest.approx(1 / 6, abs=3e-3)
    assert task.baseline_loss == task.baseline_metric == pytest.approx(1 / 6)


def test_copy_memory_by_hand():
    T = 6
    task = tasks.copy_memory(T)
    xs, ys = task.sample(jax.random.key(2), 50)
    symbols = np.asarray(xs.argmax(-1))
    ys = np.asarray(ys)
    assert (xs.sum(-1) == 1).all()  # one-hot
    data = symbols[:, :10]
    assert (1 <= data).all() and (data <= 8).all()
    assert (symbols[:, 10 : 10 + T - 1] == 0).all()  # T - 1 blanks
    assert (symbols[:, 10 + T - 1] == 9).all()  # the delimiter
    assert (symbols[:, 10 + T :] == 0).all()  # blanks while recalling
    assert (ys[:, : T + 10] == 0).all() and (ys[:, T + 10 :] == data).all()


@pytest.mark.parametrize("T", [1, 100])
def test_copy_memory_baseline(T):
    """The memoryless strategy (blank, then uniform over the 8 symbols) scores 10 ln 8/(T+20)."""
    task = tasks.copy_memory(T)
    xs, ys = task.sample(jax.random.key(0), 64)
    blank = jnp.full((T + 10, 10), -1e9).at[:, 0].set(0.0)
    guess = jnp.full((10, 10), -1e9).at[:, 1:9].set(0.0)
    logits = jnp.broadcast_to(jnp.concatenate([blank, guess]), (64, T + 20, 10))
    assert float(task.loss(logits, ys)) == pytest.approx(10 * math.log(8) / (T + 20), rel=1e-5)
    assert task.baseline_loss == pytest.approx(10 * math.log(8) / (T + 20))
    # always guessing one symbol copies about 1/8 of them
    _, many = task.sample(jax.random.key(1), 8_000)
    constant = jnp.zeros((1, T + 20, 10)).at[..., 3].set(1.0)
    assert float(task.metric(constant, many)) == pytest.approx(1 / 8, abs=0.01)


def test_temporal_order_by_hand():
    T = 100
    task = tasks.temporal_order(T)
    xs, ys = task.sample(jax.random.key(4), 300)
    symbols, ys = np.asarray(xs.argmax(-1)), np.asarray(ys)
    assert (xs.sum(-1) == 1).all()
    assert (symbols[:, 0] == 6).all() and (symbols[:, -1] == 7).all()  # B ... E
    for s, y in zip(symbols, ys, strict=True):
        (t1, t2) = np.flatnonzero((s == 4) | (s == 5))  # exactly two of X, Y
        assert 10 <= t1 <= 20 and 50 <= t2 <= 60  # the paper's windows at T = 100
        assert y == 2 * (s[t1] - 4) + (s[t2] - 4)  # XX 0, XY 1, YX 2, YY 3
        rest = np.delete(s, [0, t1, t2, T - 1])
        assert (rest <= 3).all()  # distractors a..d elsewhere
    assert set(np.unique(symbols[:, 1:-1])) == set(range(6))


def test_temporal_order_baseline():
    task = tasks.temporal_order(20)
    _, ys = task.sample(jax.random.key(0), 40_000)
    counts = np.bincount(np.asarray(ys), minlength=4) / ys.shape[0]
    np.testing.assert_allclose(counts, 0.25, atol=0.01)
    constant = jnp.zeros((1, 4)).at[0, 2].set(1.0)
    assert float(task.metric(constant, ys)) == pytest.approx(task.baseline_metric, abs=0.01)
    uniform = jnp.zeros((ys.shape[0], 4))
    assert float(task.loss(uniform, ys)) == pytest.approx(task.baseline_loss, rel=1e-6)
    assert task.baseline_loss == pytest.approx(math.log(4))


def test_digits():
    from sklearn.datasets import load_digits

    task = tasks.digits()
    x_test, y_test = task.test
    assert x_test.shape == (360, 8, 8) and y_test.shape == (360,) and y_test.dtype == jnp.int32
    raw = load_digits()
    # the fixed split: the last 360 images, in order, rows as time steps
    np.testing.assert_array_equal(x_test[0], raw.images[1437] / 16)
    np.testing.assert_array_equal(y_test, raw.target[1437:])
    xs, ys = task.sample(jax.random.key(0), 256)
    assert xs.shape == (256, 8, 8) and xs.dtype == jnp.float32
    assert 0 <= float(xs.min()) and float(xs.max()) <= 1
    train = {img.tobytes() for img in (raw.images[:1437] / 16).astype(np.float32)}
    assert all(img.tobytes() in train for img in np.asarray(xs))  # drawn from the train split
    # chance: the most frequent test class, about 1/10
    majority = np.bincount(np.asarray(y_test)).argmax()
    constant = jnp.zeros((1, 10)).at[0, majority].set(1.0)
    assert float(task.metric(constant, y_test)) == pytest.approx(task.baseline_metric)
    assert 0.09 < task.baseline_metric < 0.12


def test_get_and_errors():
    assert tasks.get("copy", 30).length == 50
    assert tasks.get("order").length == 100
    assert tasks.get("digits").name == "digits"
    with pytest.raises(ValueError, match="unknown task 'add'"):
        tasks.get("add")
    with pytest.raises(ValueError, match="fixed length of 8"):
        tasks.get("digits", 10)
    with pytest.raises(ValueError, match="fixed length of 40"):
        tasks.get("mnist1d", 10)  # before anything is generated: mnist1d need not be installed
    assert tasks.get("text", 30).length == 30  # the window, over the bundled corpus
    with pytest.raises(ValueError, match="length must be an int >= 2"):
        tasks.adding(1)
    with pytest.raises(ValueError, match="length must be an int >= 10"):
        tasks.temporal_order(9)
    with pytest.raises(ValueError, match="length must be an int >= 1"):
        tasks.copy_memory(0)
    with pytest.raises(TypeError, match="batch_size must be a Python int"):
        tasks.adding(5).sample(jax.random.key(0), 2.0)
    with pytest.raises(ValueError, match="batch_size must be positive"):
        tasks.adding(5).sample(jax.random.key(0), 0)
