"""Multi-query associative recall (MQAR), the recall benchmark of Zoology and the xLSTM."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from ._task import Array, Task, _check_labels, check_length, check_sample

NO_TARGET = -1  # the target of a step that is not a query


def mqar(length: int = 64, num_pairs: int = 8, vocab_size: int = 64, power_a: float = 0.01) -> Task:
    r"""Multi-query associative recall (Arora et al. 2023), as the xLSTM paper runs it.

    A sequence of ``T`` tokens starts with ``D = num_pairs`` key-value pairs
    ``k_1 v_1 k_2 v_2 ... k_D v_D``, keys drawn without replacement from ``1 .. V/2 - 1``,
    values from ``V/2 .. V - 1`` (``V = vocab_size``; token 0 is never a key). Every key is
    then queried once, in random order, at an even offset ``2g`` after the pairs, the gaps
    ``g`` drawn without replacement with probability :math:`\propto (g+1)^{a-1}` (Zoology's
    power law, ``a = power_a``: most queries come soon after the pairs, a few late); every
    other step holds a random token. At a query the model must emit the key's value; the
    other steps have no target (:data:`NO_TARGET`, ``-1``). This is Zoology's
    ``multiquery_ar`` generator (``random_non_queries=True``) as a pure, jittable sampler.

    The loss is the cross-entropy and the metric the accuracy over the queries only (the
    per-query accuracy). Chance level: a model that has not stored the pairs can at best
    guess among the ``V - V/2`` values, accuracy ``1/(V - V/2)`` and cross-entropy
    :math:`\ln(V - V/2)`; one that stores which values occurred but not their keys gets
    about ``1/D``. A state that stores ``D`` associations is what it takes: a matrix memory
    (:func:`gatedcells.mlstm`) does it, a vector state of the same width (LSTM, GRU) does
    it poorly (Arora et al.; Beck et al., Fig. 3).

    Args:
      length: ``T >= 4 * num_pairs``, the number of tokens.
      num_pairs: ``D``, the number of key-value pairs (and of queries).
      vocab_size: ``V``; ``V/2 - 1 >= D`` keys and ``V - V/2 >= D`` values.
      power_a: the exponent ``a`` in ``(0, 1]`` of the gaps' power law (1: uniform).

    Returns:
      A :class:`Task` with one-hot inputs ``[B, T, V]`` float32, int32 targets ``[B, T]``
      (the value at each query, ``-1`` elsewhere), ``V`` outputs per step.

    Raises:
      ValueError: a length below ``4 * num_pairs``, too small a vocabulary, or
        ``power_a`` outside ``(0, 1]``.

    Examples:
      >>> import jax, gatedcells.tasks as tasks
      >>> task = tasks.mqar(length=32, num_pairs=4, vocab_size=16)
      >>> xs, ys = task.sample(jax.random.key(0), 2)
      >>> xs.shape, ys.shape, int((ys >= 0).sum()), task.baseline_metric
      ((2, 32, 16), (2, 32), 8, 0.125)
      >>> tokens = xs.argmax(-1)
      >>> pairs = dict(zip(tokens[0, :8:2].tolist(), tokens[0, 1:8:2].tolist()))
      >>> all(pairs[int(tokens[0, t])] == int(ys[0, t]) for t in range(32) if ys[0, t] >= 0)
      True

    References:
      Arora, Eyuboglu, Timalsina, Johnson, Poli, Zou, Rudra & Ré, "Zoology: Measuring and
      Improving Recall in Efficient Language Models", ICLR 2024 (arXiv:2312.04927, 2023).
      Beck et al., "xLSTM: Extended Long Short-Term Memory", NeurIPS 2024.
    """
    D = _positive("num_pairs", num_pairs)
    T = check_length(length, 4 * D)
    V = _positive("vocab_size", vocab_size)
    keys_n, values_n = V // 2 - 1, V - V // 2
    if keys_n < D or values_n < D:
        raise ValueError(
            f"vocab_size={V} is too small for num_pairs={D}: it needs V/2 - 1 >= {D} keys "
            f"and V - V/2 >= {D} values (vocab_size >= {2 * D + 2})"
        )
    if isinstance(power_a, bool) or not isinstance(power_a, int | float) or not 0 < power_a <= 1:
        raise ValueError(f"power_a must be a number in (0, 1], got {power_a!r}")
    space = (T - 2 * D) // 2
    gap_p = jnp.arange(1, space + 1, dtype=jnp.float32) ** (power_a - 1)
    gap_p = gap_p / jnp.sum(gap_p)

    def sample(key: Array, batch_size: int) -> tuple[Array, Array]:
        check_sample(key, batch_size)
        kk, kv, kg, kf = jax.random.split(key, 4)

        def draw(key, n):  # D distinct draws from 0..n-1 per sequence
            return jax.vmap(lambda k: jax.random.choice(k, n, (D,), replace=False))(
                jax.random.split(key, batch_size)
            )

        keys, values = draw(kk, keys_n) + 1, draw(kv, values_n) + V // 2
        gaps = jax.vmap(lambda k: jax.random.choice(k, space, (D,), replace=False, p=gap_p))(
            jax.random.split(kg, batch_size)
        )
        where = 2 * D + 2 * gaps  # [B, D] the query steps
        rows = jnp.arange(batch_size)[:, None]
        tokens = jax.random.randint(kf, (batch_size, T), 0, V)
        tokens = tokens.at[:, 0 : 2 * D : 2].set(keys).at[:, 1 : 2 * D : 2].set(values)
        tokens = tokens.at[rows, where].set(keys)
        targets = jnp.full((batch_size, T), NO_TARGET, jnp.int32).at[rows, where].set(values)
        return jax.nn.one_hot(tokens, V, dtype=jnp.float32), targets

    return Task(
        name=f"mqar(T={T}, pairs={D}, vocab={V})",
        sample=sample,
        input_size=V,
        output_size=V,
        length=T,
        per_step=True,
        loss=query_cross_entropy,
        metric=query_accuracy,
        metric_name="accuracy",
        higher_is_better=True,
        baseline_loss=math.log(values_n),
        baseline_metric=1 / values_n,
    )


def query_cross_entropy(logits: Array, targets: Array) -> Array:
    """Mean cross-entropy (nats) of ``logits [..., C]`` over the steps whose ``targets
    [...]`` are not :data:`NO_TARGET`."""
    _check_labels(logits, targets)
    query = targets != NO_TARGET
    log_p = jax.nn.log_softmax(logits, axis=-1)
    label = jnp.where(query, targets, 0).astype(jnp.int32)
    picked = jnp.take_along_axis(log_p, label[..., None], axis=-1)[..., 0]
    count = jnp.maximum(jnp.sum(query), 1).astype(picked.dtype)
    return -jnp.sum(jnp.where(query, picked, 0)) / count


def query_accuracy(logits: Array, targets: Array) -> Array:
    """Share of the queries (``targets`` not :data:`NO_TARGET`) answered right, float32."""
    _check_labels(logits, targets)
    query = targets != NO_TARGET
    hits = (jnp.argmax(logits, axis=-1) == targets.astype(jnp.int32)) & query
    count = jnp.maximum(jnp.sum(query), 1).astype(jnp.float32)
    return jnp.sum(hits).astype(jnp.float32) / count


def _positive(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)
