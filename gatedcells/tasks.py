r"""Long-range sequence tasks as pure, jittable generators, and a real offline data set.

Each factory returns a :class:`Task`: a pure sampler ``task.sample(key, batch_size) ->
(inputs, targets)`` with batch-major inputs ``[B, T, I]``, plus what a training loop needs to
know: the loss and the metric of the task's predictions, the sizes of the readout, and the
chance-level baseline a model that learned nothing reaches.

- :func:`adding`: inputs ``[B, T, 2]``, targets ``[B]`` float (the sum); chance MSE ``1/6``.
- :func:`copy_memory`: inputs ``[B, T+20, 10]``, targets ``[B, T+20]`` int; chance
  cross-entropy ``10 ln 8 / (T+20)``.
- :func:`temporal_order`: inputs ``[B, T, 8]``, targets ``[B]`` int in ``0..3``; chance
  accuracy ``1/4``.
- :func:`digits`: inputs ``[B, 8, 8]``, targets ``[B]`` int in ``0..9``; chance accuracy
  about ``1/10``.

The synthetic tasks need only jax; :func:`digits` reads scikit-learn's bundled copy of the
UCI 8x8 digits (shipped inside the package: nothing is ever downloaded).

Shape legend: ``B`` batch, ``T`` time, ``I`` input size, ``C`` classes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array

COPY_SYMBOLS = 8  # copy memory: symbols 1..8 are copied; 0 is blank, 9 the delimiter
COPY_LENGTH = 10  # copy memory: how many symbols are copied


class Task(NamedTuple):
    """A supervised sequence task: a pure sampler and what a training loop needs.

    A model reads ``inputs [B, T, I]`` and emits ``predictions``: ``[B, O]`` read out after the
    last step, or ``[B, T, O]`` at every step when ``per_step`` is true (``O`` =
    ``output_size``). ``loss`` and ``metric`` take ``(predictions, targets)``.

    Attributes:
      name: short name, e.g. ``"adding(T=100)"``.
      sample: ``(key, batch_size) -> (inputs, targets)``, pure and jittable; ``batch_size``
        must be static (a Python int).
      input_size: ``I``.
      output_size: ``O``, the size of the readout (1 for regression, ``C`` classes).
      length: ``T``, the number of time steps of the inputs.
      per_step: predictions at every step (``[B, T, O]``) instead of after the last one.
      loss: ``(predictions, targets) -> scalar``, the training objective (mean over the batch).
      metric: ``(predictions, targets) -> scalar``, the figure reported.
      metric_name: e.g. ``"mse"`` or ``"accuracy"``.
      higher_is_better: whether the metric improves upwards (accuracy) or downwards (MSE).
      baseline_loss: the loss at chance level (the best a model that ignores the
        long-range dependency can do).
      baseline_metric: the metric at chance level.
      test: a fixed held-out ``(inputs, targets)`` for data sets, or ``None`` for generated
        tasks (evaluate on fresh samples).
    """

    name: str
    sample: Callable[[Array, int], tuple[Array, Array]]
    input_size: int
    output_size: int
    length: int
    per_step: bool
    loss: Callable[[Array, Array], Array]
    metric: Callable[[Array, Array], Array]
    metric_name: str
    higher_is_better: bool
    baseline_loss: float
    baseline_metric: float
    test: tuple[Array, Array] | None = None


# --------------------------------------------------------------------------------------
# Losses and metrics (pure, mean over every leading axis).


def mse(predictions: Array, targets: Array) -> Array:
    """Mean squared error of ``predictions [..., 1]`` against ``targets [...]``."""
    return jnp.mean(jnp.square(predictions[..., 0] - targets.astype(predictions.dtype)))


def cross_entropy(logits: Array, labels: Array) -> Array:
    """Mean softmax cross-entropy (nats) of ``logits [..., C]`` against int ``labels [...]``."""
    log_p = jax.nn.log_softmax(logits, axis=-1)
    picked = jnp.take_along_axis(log_p, labels[..., None].astype(jnp.int32), axis=-1)
    return -jnp.mean(picked)


def accuracy(logits: Array, labels: Array) -> Array:
    """Share of ``argmax(logits [..., C]) == labels [...]``, as float32."""
    hits = jnp.argmax(logits, axis=-1) == labels.astype(jnp.int32)
    return jnp.mean(hits.astype(jnp.float32))


def _check_batch_size(batch_size: int) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer):
        raise TypeError(f"batch_size must be a Python int (static), got {batch_size!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")


def _check_length(length: int, minimum: int) -> int:
    if isinstance(length, bool) or not isinstance(length, int | np.integer) or length < minimum:
        raise ValueError(f"length must be an int >= {minimum}, got {length!r}")
    return int(length)


# --------------------------------------------------------------------------------------
# The adding problem.


def adding(length: int = 100) -> Task:
    r"""The adding problem, in the form of Le et al. (2015) and Arjovsky et al. (2016).

    Each step reads two channels: a value drawn from :math:`U[0, 1]` and a marker. Exactly two
    steps are marked (marker 1, every other step 0), the first uniformly in the first half of
    the sequence (steps ``[0, T//2)``), the second in the second half (``[T//2, T)``). The
    target, read out after the last step, is the sum of the two marked values.

    Chance level: predicting the constant 1 (the mean of the sum) gives an MSE of
    :math:`\mathrm{Var}(u_1 + u_2) = 2/12 = 1/6 \approx 0.167`; a model counts as having solved
    the task when its MSE falls well below that (Le et al. report runs near 0).

    Args:
      length: ``T >= 2``, the number of steps.

    Returns:
      A :class:`Task` with inputs ``[B, T, 2]`` float32 (value, marker), targets ``[B]``
      float32, one output, loss and metric the MSE, baseline ``1/6``.

    Raises:
      ValueError: for ``length < 2``.

    Examples:
      >>> import jax, gatedcells.tasks as tasks
      >>> task = tasks.adding(length=50)
      >>> xs, ys = task.sample(jax.random.key(0), 4)
      >>> xs.shape, ys.shape, xs.dtype, float(xs[..., 1].sum())
      ((4, 50, 2), (4,), dtype('float32'), 8.0)
      >>> round(task.baseline_loss, 4)
      0.1667

    References:
      Hochreiter & Schmidhuber, "Long Short-Term Memory", Neural Computation 1997.
      Le, Jaitly & Hinton, "A Simple Way to Initialize Recurrent Networks of Rectified Linear
      Units", arXiv:1504.00941, 2015.
      Arjovsky, Shah & Bengio, "Unitary Evolution Recurrent Neural Networks", ICML 2016.
    """
    T = _check_length(length, 2)

    def sample(key: Array, batch_size: int) -> tuple[Array, Array]:
        _check_batch_size(batch_size)
        kv, k1, k2 = jax.random.split(key, 3)
        values = jax.random.uniform(kv, (batch_size, T), jnp.float32)
        first = jax.random.randint(k1, (batch_size,), 0, T // 2)
        second = jax.random.randint(k2, (batch_size,), T // 2, T)
        steps = jnp.arange(T)[None, :]
        markers = (steps == first[:, None]) | (steps == second[:, None])
        markers = markers.astype(jnp.float32)
        targets = jnp.sum(values * markers, axis=-1)
        return jnp.stack([values, markers], axis=-1), targets

    return Task(
        name=f"adding(T={T})",
        sample=sample,
        input_size=2,
        output_size=1,
        length=T,
        per_step=False,
        loss=mse,
        metric=mse,
        metric_name="mse",
        higher_is_better=False,
        baseline_loss=1 / 6,
        baseline_metric=1 / 6,
    )


# --------------------------------------------------------------------------------------
# Copy memory.


def copy_memory(delay: int = 100) -> Task:
    r"""The copy-memory task of Arjovsky et al. (2016): recall 10 symbols after a delay.

    The alphabet has 10 symbols: 0 blank, 1..8 data, 9 delimiter. The input is 10 data
    symbols drawn uniformly from 1..8, then ``delay - 1`` blanks, the delimiter, and 10 more
    blanks: ``T + 20`` steps for ``delay = T``. The target is blank for the first ``T + 10``
    steps and the 10 data symbols, in order, for the last 10. Every step is predicted
    (``per_step``); the loss is the cross-entropy averaged over all ``T + 20`` steps.

    Chance level: a memoryless model that outputs blank until the delimiter and then guesses
    uniformly among the 8 symbols scores a cross-entropy of
    :math:`10 \ln 8 / (T + 20)` and copies 1/8 of the symbols. The metric is the accuracy
    on the 10 recalled symbols only.

    Args:
      delay: ``T >= 1``, the number of steps between the last data symbol and the delimiter
        plus one (Arjovsky et al. use 100 to 2000).

    Returns:
      A :class:`Task` with one-hot inputs ``[B, T+20, 10]`` float32, int32 targets
      ``[B, T+20]``, 10 outputs per step.

    Raises:
      ValueError: for ``delay < 1``.

    Examples:
      >>> import jax, gatedcells.tasks as tasks
      >>> task = tasks.copy_memory(delay=5)
      >>> xs, ys = task.sample(jax.random.key(0), 2)
      >>> xs.shape, ys.shape, task.length
      ((2, 25, 10), (2, 25), 25)
      >>> bool((xs[:, :10].argmax(-1) == ys[:, -10:]).all())
      True

    References:
      Arjovsky, Shah & Bengio, "Unitary Evolution Recurrent Neural Networks", ICML 2016.
      Hochreiter & Schmidhuber, "Long Short-Term Memory", Neural Computation 1997.
    """
    T = _check_length(delay, 1)
    n, total = COPY_LENGTH, T + 2 * COPY_LENGTH
    delimiter = COPY_SYMBOLS + 1

    def sample(key: Array, batch_size: int) -> tuple[Array, Array]:
        _check_batch_size(batch_size)
        data = jax.random.randint(key, (batch_size, n), 1, COPY_SYMBOLS + 1)
        blanks = jnp.zeros((batch_size, T - 1), jnp.int32)
        mark = jnp.full((batch_size, 1), delimiter, jnp.int32)
        tail = jnp.zeros((batch_size, n), jnp.int32)
        symbols = jnp.concatenate([data, blanks, mark, tail], axis=1)
        targets = jnp.concatenate([jnp.zeros((batch_size, T + n), jnp.int32), data], axis=1)
        return jax.nn.one_hot(symbols, delimiter + 1, dtype=jnp.float32), targets

    def recalled_accuracy(logits: Array, labels: Array) -> Array:
        return accuracy(logits[..., -n:, :], labels[..., -n:])

    return Task(
        name=f"copy_memory(T={T})",
        sample=sample,
        input_size=delimiter + 1,
        output_size=delimiter + 1,
        length=total,
        per_step=True,
        loss=cross_entropy,
        metric=recalled_accuracy,
        metric_name="accuracy",
        higher_is_better=True,
        baseline_loss=n * math.log(COPY_SYMBOLS) / total,
        baseline_metric=1 / COPY_SYMBOLS,
    )


# --------------------------------------------------------------------------------------
# Temporal order.

_ORDER_SYMBOLS = ("a", "b", "c", "d", "X", "Y", "B", "E")


def temporal_order(length: int = 100) -> Task:
    r"""The temporal-order task of Hochreiter & Schmidhuber (1997, experiment 6a).

    A sequence of ``T`` symbols from ``a, b, c, d, X, Y, B, E`` (one-hot, in that order)
    starts with ``B``, ends with ``E``, and is otherwise made of distractors ``a..d`` drawn
    uniformly, except at two steps that hold ``X`` or ``Y``: ``t1`` drawn uniformly from
    ``[T//10, 2T//10]`` and ``t2`` from ``[5T//10, 6T//10]`` (for ``T = 100``, the paper's
    ``[10, 20]`` and ``[50, 60]``). The class, read out after the last step, is the order of
    the two: ``XX = 0``, ``XY = 1``, ``YX = 2``, ``YY = 3``.

    The paper draws the length from 100 to 110 per sequence; here it is fixed so that a batch
    is one array and the sampler stays jittable.

    Chance level: the four classes are equally likely, so accuracy ``1/4`` and cross-entropy
    :math:`\ln 4`.

    Args:
      length: ``T >= 10``.

    Returns:
      A :class:`Task` with one-hot inputs ``[B, T, 8]`` float32, int32 targets ``[B]``,
      4 outputs, loss the cross-entropy, metric the accuracy.

    Raises:
      ValueError: for ``length < 10``.

    Examples:
      >>> import jax, gatedcells.tasks as tasks
      >>> task = tasks.temporal_order(length=20)
      >>> xs, ys = task.sample(jax.random.key(0), 3)
      >>> xs.shape, ys.shape, task.output_size
      ((3, 20, 8), (3,), 4)
      >>> [int(s) for s in xs[0, ::19].argmax(-1)]    # steps 0 and 19: B first, E last
      [6, 7]

    References:
      Hochreiter & Schmidhuber, "Long Short-Term Memory", Neural Computation 1997.
    """
    T = _check_length(length, 10)

    def sample(key: Array, batch_size: int) -> tuple[Array, Array]:
        _check_batch_size(batch_size)
        kd, k1, k2, kc = jax.random.split(key, 4)
        symbols = jax.random.randint(kd, (batch_size, T), 0, 4)
        t1 = jax.random.randint(k1, (batch_size,), T // 10, 2 * T // 10 + 1)
        t2 = jax.random.randint(k2, (batch_size,), 5 * T // 10, 6 * T // 10 + 1)
        labels = jax.random.randint(kc, (batch_size,), 0, 4)
        first, second = 4 + labels // 2, 4 + labels % 2  # 4 is X, 5 is Y
        steps = jnp.arange(T)[None, :]
        symbols = jnp.where(steps == t1[:, None], first[:, None], symbols)
        symbols = jnp.where(steps == t2[:, None], second[:, None], symbols)
        symbols = symbols.at[:, 0].set(6).at[:, -1].set(7)  # B ... E
        return jax.nn.one_hot(symbols, len(_ORDER_SYMBOLS), dtype=jnp.float32), labels

    return Task(
        name=f"temporal_order(T={T})",
        sample=sample,
        input_size=len(_ORDER_SYMBOLS),
        output_size=4,
        length=T,
        per_step=False,
        loss=cross_entropy,
        metric=accuracy,
        metric_name="accuracy",
        higher_is_better=True,
        baseline_loss=math.log(4),
        baseline_metric=1 / 4,
    )


# --------------------------------------------------------------------------------------
# scikit-learn's 8x8 digits, read row by row.

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
    x_train, y_train = jnp.asarray(images[:-DIGITS_TEST]), jnp.asarray(labels[:-DIGITS_TEST])
    x_test, y_test = jnp.asarray(images[-DIGITS_TEST:]), jnp.asarray(labels[-DIGITS_TEST:])
    majority = float(np.bincount(labels[-DIGITS_TEST:]).max() / DIGITS_TEST)

    def sample(key: Array, batch_size: int) -> tuple[Array, Array]:
        _check_batch_size(batch_size)
        idx = jax.random.randint(key, (batch_size,), 0, x_train.shape[0])
        return x_train[idx], y_train[idx]

    return Task(
        name="digits",
        sample=sample,
        input_size=8,
        output_size=10,
        length=8,
        per_step=False,
        loss=cross_entropy,
        metric=accuracy,
        metric_name="accuracy",
        higher_is_better=True,
        baseline_loss=math.log(10),
        baseline_metric=majority,
        test=(x_test, y_test),
    )


TASKS: dict[str, Callable[..., Task]] = {
    "adding": adding,
    "copy": copy_memory,
    "order": temporal_order,
    "digits": digits,
}
"""The tasks by the names the ``gatedcells`` command uses."""


def get(name: str, length: int | None = None) -> Task:
    """The task called ``name`` (a key of :data:`TASKS`) at ``length`` (its default if None).

    ``length`` is the sequence length ``T`` (the delay for ``"copy"``); ``"digits"`` has a
    fixed length of 8 and accepts only ``None`` or 8.

    Raises:
      ValueError: for an unknown name, or a length the task does not accept.

    Examples:
      >>> import gatedcells.tasks as tasks
      >>> tasks.get("adding", 30).name
      'adding(T=30)'
    """
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}")
    if name == "digits":
        if length not in (None, 8):
            raise ValueError(f"the digits task has a fixed length of 8, got length={length}")
        return digits()
    return TASKS[name]() if length is None else TASKS[name](length)
