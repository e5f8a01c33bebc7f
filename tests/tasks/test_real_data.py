"""The real data sets: MNIST-1D (generated offline by the mnist1d package) and character-level
language modelling (``tasks.text``, Tiny Shakespeare bundled), with quick training runs that
must beat chance by far. The full runs are ``benchmarks/real_data.py``."""

import importlib.util
import math
import random
import sys
import tomllib
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gatedcells as gc
from gatedcells import tasks, training

HAS_MNIST1D = importlib.util.find_spec("mnist1d") is not None
needs_mnist1d = pytest.mark.skipif(
    not HAS_MNIST1D, reason="mnist1d is not installed (pip install 'gatedcells[data]')"
)
ROOT = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------------------
# MNIST-1D


@needs_mnist1d
def test_mnist1d_data():
    py_state, np_state = random.getstate(), np.random.get_state()  # noqa: NPY002 (mnist1d's)
    task = tasks.mnist1d()
    # the generator reseeds the global random states: they are put back
    assert random.getstate() == py_state
    np.testing.assert_array_equal(np.random.get_state()[1], np_state[1])  # noqa: NPY002
    x_test, y_test = task.test
    assert x_test.shape == (1000, 40, 1) and x_test.dtype == jnp.float32
    assert y_test.shape == (1000,) and y_test.dtype == jnp.int32
    assert (task.length, task.input_size, task.output_size, task.per_step) == (40, 1, 10, False)
    assert set(np.unique(y_test)) == set(range(10))
    # the standard data set: mnist1d's own generator with its default arguments
    from mnist1d.data import get_dataset_args, make_dataset

    reference = make_dataset(get_dataset_args())
    random.setstate(py_state)
    np.random.set_state(np_state)  # noqa: NPY002
    np.testing.assert_allclose(x_test[..., 0], reference["x_test"], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(y_test, reference["y_test"])
    xs, ys = task.sample(jax.random.key(0), 64)
    assert xs.shape == (64, 40, 1) and ys.shape == (64,) and ys.dtype == jnp.int32
    train = {row.tobytes() for row in reference["x"].astype(np.float32)}
    assert all(row.tobytes() in train for row in np.asarray(xs[..., 0]))  # the train split
    majority = np.bincount(np.asarray(y_test)).max() / 1000
    assert task.baseline_metric == pytest.approx(majority) and 0.09 < majority < 0.12
    assert task.baseline_loss == pytest.approx(math.log(10))


@needs_mnist1d
def test_mnist1d_shuffled_is_one_permutation_of_the_steps():
    plain, shuffled = tasks.mnist1d().test[0][..., 0], tasks.mnist1d(shuffle=True).test[0][..., 0]
    assert tasks.mnist1d(shuffle=True).name == "mnist1d(shuffled)"
    assert not np.allclose(plain, shuffled)
    # one permutation of the 40 positions for every sequence: find it from the first one
    perm = [int(np.argmin(np.abs(plain[0] - shuffled[0][j]))) for j in range(40)]
    assert sorted(perm) == list(range(40))
    assert perm == np.random.RandomState(42).permutation(40).tolist()  # the paper's notebook
    np.testing.assert_allclose(plain[:, perm], shuffled, atol=1e-5)
    with pytest.raises(TypeError, match="shuffle must be a bool"):
        tasks.mnist1d(shuffle=1)


@pytest.mark.slow
@needs_mnist1d
def test_mnist1d_gru_beats_chance():
    """A GRU of 32 with the last step's readout, 300 Adam steps: far above the 10% of chance."""
    task = tasks.mnist1d()
    _, history = training.fit_task(
        gc.gru(32), task, optax.adam(1e-2), steps=300, key=jax.random.key(0), batch_size=100,
        eval_every=300, progress=False, mesh=None,
    )  # fmt: skip
    assert float(history.eval["accuracy"][-1]) > 0.4


def test_mnist1d_missing_package(monkeypatch):
    from gatedcells.tasks import _mnist1d

    monkeypatch.setitem(sys.modules, "mnist1d", None)
    monkeypatch.setitem(sys.modules, "mnist1d.data", None)
    with pytest.raises(ImportError, match=r"pip install 'gatedcells\[data\]'"):
        _mnist1d._generate.__wrapped__(False)  # uncached


# --------------------------------------------------------------------------------------
# Character-level language modelling


def write(tmp_path, content: str | bytes, name: str = "corpus.txt") -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def test_text_on_a_tiny_file(tmp_path):
    content = "the cat sat on the mat. " * 20 + "é!\n"  # 483 characters, non-ASCII included
    path = write(tmp_path, content)
    task = tasks.text(path, seq_len=8, test_fraction=0.25)
    vocab = tasks.text_vocabulary(path)
    assert vocab == "".join(sorted(set(content))) and len(vocab) == 14
    V = len(vocab)
    assert task.name == "text(corpus.txt, T=8)"
    assert (task.input_size, task.output_size, task.length, task.per_step) == (V, V, 8, True)
    assert task.metric_name == "bits_per_char" and not task.higher_is_better
    assert task.baseline_metric == pytest.approx(math.log2(V))
    assert task.baseline_loss == pytest.approx(math.log(V))

    def decode(classes) -> str:
        return "".join(vocab[int(k)] for k in np.asarray(classes))

    xs, ys = task.sample(jax.random.key(0), 16)
    assert xs.shape == (16, 8, V) and xs.dtype == jnp.float32 and (xs.sum(-1) == 1).all()
    assert ys.shape == (16, 8) and ys.dtype == jnp.int32
    split = round(len(content) * 0.75)  # the training part
    for x, y in zip(xs.argmax(-1), ys, strict=True):
        window = decode(x) + decode(y)[-1]
        assert decode(x)[1:] == decode(y)[:-1]  # the targets: the inputs shifted by one
        assert window in content[:split]  # drawn from the training part only
    # the test windows: the held-out tail, in order, every character but the last few
    x_test, y_test = task.test
    tail = content[split:]
    windows = (len(tail) - 1) // 8
    assert x_test.shape == (windows, 8, V) and y_test.shape == (windows, 8)
    assert "".join(decode(x) for x in x_test.argmax(-1)) == tail[: windows * 8]
    assert "".join(decode(y) for y in y_test) == tail[1 : windows * 8 + 1]
    # uniform logits score chance exactly; the metric is the loss in bits
    uniform = jnp.zeros((windows, 8, V))
    assert float(task.loss(uniform, y_test)) == pytest.approx(math.log(V), rel=1e-6)
    assert float(task.metric(uniform, y_test)) == pytest.approx(math.log2(V), rel=1e-6)
    logits = jax.random.normal(jax.random.key(1), (windows, 8, V))
    loss, bits = task.loss(logits, y_test), task.metric(logits, y_test)
    assert float(bits) == pytest.approx(float(loss) / math.log(2), rel=1e-6)
    # pure: jit equals eager, another key another batch
    jitted = jax.jit(task.sample, static_argnums=1)(jax.random.key(0), 16)
    for a, b in zip(jitted, (xs, ys), strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(task.sample(jax.random.key(2), 16)[1], ys)


def test_text_bundled_shakespeare():
    assert tasks.TINY_SHAKESPEARE.is_file()
    task = tasks.text(seq_len=50)
    assert task.name == "text(tinyshakespeare.txt, T=50)"
    assert task.input_size == task.output_size == 65
    assert task.baseline_metric == pytest.approx(math.log2(65))
    x_test, y_test = task.test
    # the last 10% of 1,115,394 characters, in windows of 50
    assert x_test.shape == (2230, 50, 65) and y_test.shape == (2230, 50)
    vocab = tasks.text_vocabulary()
    head = tasks.TINY_SHAKESPEARE.read_text(encoding="utf-8")[-111539:][:51]
    assert "".join(vocab[k] for k in np.asarray(x_test[0].argmax(-1))) == head[:50]
    assert "".join(vocab[k] for k in np.asarray(y_test[0])) == head[1:]
    assert tasks.get("text").name == "text(tinyshakespeare.txt, T=100)"
    assert tasks.get("text", 20).length == 20


def test_text_shipped_in_the_wheel():
    """pyproject.toml ships the bundled corpus as package data."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["gatedcells.tasks"]
    package = ROOT / "gatedcells" / "tasks"
    shipped = {p for pattern in patterns for p in package.glob(pattern)}
    assert package / "data" / "tinyshakespeare.txt" in shipped
    assert "mnist1d" in str(config["project"]["optional-dependencies"]["data"])


@pytest.mark.slow
def test_text_training_beats_chance():
    """A GRU of 64 on Shakespeare, 300 steps: far below the 6.02 bits per character of chance,
    and below the 4.8 of the characters' frequencies alone (it reads its context)."""
    task = tasks.text(seq_len=32)
    _, history = training.fit_task(
        gc.gru(64), task, optax.adam(1e-2), steps=300, key=jax.random.key(0), batch_size=32,
        eval_every=300, progress=False, mesh=None,
    )  # fmt: skip
    bits = float(history.eval["bits_per_char"][-1])  # 2.96 on CPU
    counts = np.bincount(np.asarray(task.test[1]).ravel(), minlength=65)
    p = counts[counts > 0] / counts.sum()
    unigram = float(-(p * np.log2(p)).sum())  # 4.81 on the tail
    assert bits < 0.6 * task.baseline_metric and bits < unigram - 1


def test_text_bad_arguments(tmp_path):
    def one_line(match: str, error=ValueError):
        return pytest.raises(error, match=match)

    good = write(tmp_path, "abcdefgh" * 10)
    for seq_len in (1, 0, -3, 2.5, True):
        with one_line(r"seq_len must be an int >= 2") as err:
            tasks.text(good, seq_len=seq_len)
        assert "\n" not in str(err.value)
    with one_line(r"path: no such file: '.*missing\.txt'", FileNotFoundError):
        tasks.text(tmp_path / "missing.txt")
    with one_line(r"path: no such file", FileNotFoundError):
        tasks.text(tmp_path)  # a folder
    latin1 = write(tmp_path, "caf\xe9 au lait".encode("latin-1") * 20, "latin1.txt")
    with one_line(r"path: '.*latin1\.txt' is not UTF-8 text \(invalid .* at byte 3\)") as err:
        tasks.text(latin1)
    assert "\n" not in str(err.value)
    with one_line(r"path: '.*latin1\.txt' is not UTF-8"):
        tasks.text_vocabulary(latin1)
    with one_line(r"path: '.*empty\.txt' is empty"):
        tasks.text(write(tmp_path, "", "empty.txt"))
    with one_line(r"seq_len=40 needs at least 41 characters .* got 72 to train and 8 held out"):
        tasks.text(good, seq_len=40)
    for fraction in (0, 1, 1.5, -0.1):
        with one_line(r"test_fraction must be in \(0, 1\)"):
            tasks.text(good, seq_len=4, test_fraction=fraction)
    with one_line(r"test_fraction must be a float", TypeError):
        tasks.text(good, seq_len=4, test_fraction="0.1")
    with one_line(r"path must be a file path or None", TypeError):
        tasks.text(123)


def test_registry():
    assert {"mnist1d", "text"} <= set(tasks.TASKS)
    with pytest.raises(ValueError, match="fixed length of 40"):
        tasks.get("mnist1d", 41)
    with pytest.raises(ValueError, match="seq_len must be an int >= 2"):
        tasks.get("text", 1)
