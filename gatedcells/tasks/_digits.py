"""scikit-learn's 8x8 digits, read row by row: a real sequence data set that ships offline."""

from __future__ import annotations

import numpy as np

from ._task import Task, classification

DIGITS_TEST = 360  # the last 360 of the 1797 images are the test set (about 20%)


def digits() -> Task:
    r"""scikit-learn's bundled 8x8 handwritten digits, read row by row: 8 steps of 8 pixels.

    The 1,797 images of the UCI optical-recognition data set ship inside scikit-learn
    (``sklearn.datasets.load_digits``); nothing is downloaded. Pixels ``0..16`` are scaled
    to ``[0, 1]``. The split is fixed and unshuffled: the first 1,437 images train, the last
    360 test (as scikit-learn's own digits example splits in order, so test digits come
    largely from other writers). ``sample`` draws training images uniformly with
    replacement; ``test`` holds the test set.

    Chance level: accuracy of the most frequent test class (about 1/10) and cross-entropy
    ``ln 10``.

    Returns:
      A :class:`Task` with inputs ``[B, 8, 8]`` float32, int32 labels ``[B]``, 10 outputs,
      ``test = (inputs [360, 8, 8], labels [360])``.

    Raises:
      ImportError: when scikit-learn is not installed (``pip install gatedcells[train]``).

    Examples:
      >>> import jax, gatedcells.tasks as tasks
      >>> task = tasks.digits()
      >>> xs, ys = task.sample(jax.random.key(0), 5)
      >>> xs.shape, task.test[0].shape, float(task.test[0].max())
      ((5, 8, 8), (360, 8, 8), 1.0)

    References:
      Alpaydin & Kaynak, "Optical Recognition of Handwritten Digits", UCI Machine Learning
      Repository, 1998.
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "gatedcells.tasks.digits needs scikit-learn: pip install 'gatedcells[train]'"
        ) from err
    bunch = load_digits()
    images = np.asarray(bunch.images, np.float32) / np.float32(16.0)  # [N, 8, 8]
    labels = np.asarray(bunch.target, np.int32)
    train = images[:-DIGITS_TEST], labels[:-DIGITS_TEST]
    return classification("digits", *train, (images[-DIGITS_TEST:], labels[-DIGITS_TEST:]))
