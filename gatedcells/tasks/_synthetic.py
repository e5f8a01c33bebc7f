"""The classic long-range benchmarks as pure, jittable generators."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from ._task import Array, Task, accuracy, check_length, check_sample, cross_entropy, mse

COPY_SYMBOLS = 8  # copy memory: symbols 1..8 are copied; 0 is blank, 9 the delimiter
COPY_LENGTH = 10  # copy memory: how many symbols are copied


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
    T = check_length(length, 2)

    def sample(key: Array, batch_size: int) -> tuple[Array, Array]:
        check_sample(key, batch_size)
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
    T = check_length(delay, 1)
    n, total = COPY_LENGTH, T + 2 * COPY_LENGTH
    delimiter = COPY_SYMBOLS + 1

    def sample(key: Array, batch_size: int) -> tuple[Array, Array]:
        check_sample(key, batch_size)
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
    T = check_length(length, 10)

    def sample(key: Array, batch_size: int) -> tuple[Array, Array]:
        check_sample(key, batch_size)
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
