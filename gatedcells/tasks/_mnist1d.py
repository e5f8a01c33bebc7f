"""MNIST-1D (Greydanus 2020): 40-step one-dimensional digits, generated offline."""

from __future__ import annotations

import functools
import random

import numpy as np

from ._task import Task, classification

MNIST1D_LENGTH = 40  # the standard sequence length (``final_seq_length``)
MNIST1D_TRAIN = 4000  # the standard split: 5,000 examples, the first 80% train
MNIST1D_TEST = 1000
SHUFFLE_SEED = 42  # the permutation of the shuffled variant: RandomState(42).permutation(40)


def mnist1d(shuffle: bool = False) -> Task:
    r"""MNIST-1D: the ten digits as 40-step one-dimensional signals (Greydanus 2020).

    The ``mnist1d`` package generates the standard data set from the ten 12-point templates
    it ships (``mnist1d.data.make_dataset`` with ``get_dataset_args()``: padding,
    translation, shear, scaling, correlated and i.i.d. noise, seed 42), so nothing is
    downloaded: 5,000 sequences of 40 steps, standardised, the first 4,000 to train and
    the last 1,000 to test. ``sample`` draws training sequences uniformly with replacement;
    ``test`` holds the test set. The data set is generated once per process and cached
    (about a second); Python's and NumPy's global random states are left as they were.

    With ``shuffle=True`` the 40 positions of every sequence are permuted by one fixed
    permutation, the one of the mnist1d notebook that measured the published shuffled
    figures (``notebooks/mnist1d-classification.ipynb``: ``np.random.seed(42);
    np.random.permutation(40)``): the same examples with their spatial structure destroyed,
    on which the published GRU drops from 91% to 57% test accuracy.

    Chance level: accuracy of the most frequent test class (about 1/10) and cross-entropy
    ``ln 10``.

    Args:
      shuffle: permute the time steps by one fixed permutation.

    Returns:
      A :class:`Task` with inputs ``[B, 40, 1]`` float32, int32 labels ``[B]``, 10 outputs,
      ``test = (inputs [1000, 40, 1], labels [1000])``.

    Raises:
      ImportError: when the ``mnist1d`` package is not installed
        (``pip install 'gatedcells[data]'``).
      TypeError: ``shuffle`` not a bool.

    Examples:
      >>> import jax, gatedcells.tasks as tasks
      >>> task = tasks.mnist1d()
      >>> xs, ys = task.sample(jax.random.key(0), 5)
      >>> xs.shape, ys.shape, task.test[0].shape, task.output_size
      ((5, 40, 1), (5,), (1000, 40, 1), 10)

    References:
      Greydanus, "Scaling Down Deep Learning", arXiv:2011.14439, 2020
      (https://github.com/greydanus/mnist1d).
    """
    if not isinstance(shuffle, bool):
        raise TypeError(f"shuffle must be a bool, got {shuffle!r}")
    x_train, y_train, x_test, y_test = _generate(shuffle)
    name = "mnist1d(shuffled)" if shuffle else "mnist1d"
    return classification(name, x_train, y_train, (x_test, y_test))


@functools.cache
def _generate(shuffle: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x_train [4000, 40, 1], y_train [4000], x_test [1000, 40, 1], y_test [1000])``."""
    if shuffle:
        x_train, y_train, x_test, y_test = _generate(False)
        order = np.random.RandomState(SHUFFLE_SEED).permutation(MNIST1D_LENGTH)
        return _frozen(x_train[:, order], y_train, x_test[:, order], y_test)
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError as err:
        raise ImportError(
            "gatedcells.tasks.mnist1d needs the mnist1d package: pip install 'gatedcells[data]'"
        ) from err
    args = get_dataset_args()  # the paper's: 5,000 examples, 80% train, 40 steps, seed 42
    # make_dataset reseeds Python's and NumPy's global generators: put them back afterwards
    py_state, np_state = random.getstate(), np.random.get_state()  # noqa: NPY002 (mnist1d's)
    try:
        data = make_dataset(args)  # from the bundled templates; get_dataset would download
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)  # noqa: NPY002
    return _frozen(
        np.asarray(data["x"], np.float32)[..., None],  # [N, 40] -> [N, 40, 1]
        np.asarray(data["y"], np.int32),
        np.asarray(data["x_test"], np.float32)[..., None],
        np.asarray(data["y_test"], np.int32),
    )


def _frozen(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    """The arrays, read-only: cached, they are shared by every task built in this process."""
    for a in arrays:
        a.flags.writeable = False
    return arrays
