"""The :class:`Task` value, and the losses and metrics of the tasks."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .._checks import check_key

Array = jax.Array


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


def classification(name: str, x_train, y_train, test: tuple, classes: int = 10) -> Task:
    """A classification task over a fixed data set, read out after the last step.

    ``sample`` draws training examples uniformly with replacement; chance level is the share
    of the most frequent test class (accuracy) and ``ln classes`` (cross-entropy).

    Args:
      name: the task's name.
      x_train: inputs ``[N, T, I]``.
      y_train: int labels ``[N]`` in ``0..classes-1``.
      test: the held-out ``(inputs [M, T, I], labels [M])``.
      classes: ``C``, the number of classes (the readout's size).

    Returns:
      A :class:`Task` with ``test`` as jax arrays.
    """
    x_train, y_train = jnp.asarray(x_train), jnp.asarray(y_train)
    x_test, y_test = (jnp.asarray(a) for a in test)

    def sample(key: Array, batch_size: int) -> tuple[Array, Array]:
        check_sample(key, batch_size)
        idx = jax.random.randint(key, (batch_size,), 0, x_train.shape[0])
        return x_train[idx], y_train[idx]

    return Task(
        name=name,
        sample=sample,
        input_size=x_train.shape[2],
        output_size=classes,
        length=x_train.shape[1],
        per_step=False,
        loss=cross_entropy,
        metric=accuracy,
        metric_name="accuracy",
        higher_is_better=True,
        baseline_loss=math.log(classes),
        baseline_metric=float(np.bincount(np.asarray(y_test)).max() / y_test.shape[0]),
        test=(x_test, y_test),
    )


# --------------------------------------------------------------------------------------
# Losses and metrics (pure, mean over every leading axis).


def mse(predictions: Array, targets: Array) -> Array:
    """Mean squared error of ``predictions [..., 1]`` against ``targets [...]``."""
    _check_pair("predictions", predictions, "targets", targets, "[..., 1]")
    if predictions.shape[-1] != 1:
        raise ValueError(
            f"predictions must have shape [..., 1] (one value per target), got "
            f"{tuple(predictions.shape)}"
        )
    return jnp.mean(jnp.square(predictions[..., 0] - targets.astype(predictions.dtype)))


def cross_entropy(logits: Array, labels: Array) -> Array:
    """Mean softmax cross-entropy (nats) of ``logits [..., C]`` against int ``labels [...]``."""
    _check_labels(logits, labels)
    log_p = jax.nn.log_softmax(logits, axis=-1)
    picked = jnp.take_along_axis(log_p, labels[..., None].astype(jnp.int32), axis=-1)
    return -jnp.mean(picked)


def accuracy(logits: Array, labels: Array) -> Array:
    """Share of ``argmax(logits [..., C]) == labels [...]``, as float32."""
    _check_labels(logits, labels)
    hits = jnp.argmax(logits, axis=-1) == labels.astype(jnp.int32)
    return jnp.mean(hits.astype(jnp.float32))


def _check_pair(name: str, predictions, other: str, targets, layout: str) -> None:
    """``predictions [..., X]`` against ``targets [...]``: equal or broadcastable leading
    shapes (a constant prediction ``[1, X]`` scores a whole set)."""
    p_shape, t_shape = tuple(jnp.shape(predictions)), tuple(jnp.shape(targets))
    try:
        ok = len(p_shape) >= 1 and len(p_shape) - 1 == len(t_shape)
        if ok:
            np.broadcast_shapes(p_shape[:-1], t_shape)
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(
            f"{name} must have shape {layout} matching {other} [...]: got {name} {p_shape} "
            f"and {other} {t_shape}"
        )


def _check_labels(logits, labels) -> None:
    _check_pair("logits", logits, "labels", labels, "[..., C]")
    if not jnp.issubdtype(jnp.result_type(labels), jnp.integer):
        raise TypeError(f"labels must have an integer dtype, got {jnp.result_type(labels)}")


def check_sample(key, batch_size: int) -> None:
    """The arguments of a task's ``sample(key, batch_size)``."""
    check_key("key", key)
    check_batch_size(batch_size)


def check_batch_size(batch_size: int) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer):
        raise TypeError(f"batch_size must be a Python int (static), got {batch_size!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")


def check_length(length: int, minimum: int) -> int:
    if isinstance(length, bool) or not isinstance(length, int | np.integer) or length < minimum:
        raise ValueError(f"length must be an int >= {minimum}, got {length!r}")
    return int(length)
