"""The selective copying task of Gu & Dao (2023): recall tokens scattered among noise."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from ._task import Array, Task, accuracy, check_length, check_sample, cross_entropy


def selective_copy(length: int = 4096, tokens: int = 16, symbols: int = 14) -> Task:
    r"""Selective copying (Gu & Dao 2023, section 3.1): recall the tokens, skip the noise.

    The first ``T = length`` steps hold ``tokens`` data symbols (drawn uniformly from
    ``1..symbols``) at random distinct positions, in order, and the blank symbol 0 (the
    noise) everywhere else; ``tokens`` recall markers (symbol ``symbols + 1``) follow. At the
    markers the target is the data symbols in the order they appeared; elsewhere blank. Unlike
    :func:`copy_memory`, where the tokens sit at fixed positions (a time-invariant model can
    solve it by counting), the positions vary from sequence to sequence: a model must decide
    from each input whether to remember it, which is what input-dependent gates and the
    selective SSM's input-dependent :math:`\Delta` do and a linear time-invariant recurrence
    (the LRU, S4) cannot. Mamba's paper reports S6 at 99.8% against S4's 18.3%.

    The defaults are the paper's setting as we read it: length 4096, 16 tokens, a vocabulary
    of 16 (14 data symbols, the blank and the marker). Every step is predicted
    (``per_step``); the loss is the cross-entropy averaged over all ``T + tokens`` steps; the
    metric is the accuracy on the recalled tokens.

    Chance level: a model that outputs blank until the markers and then guesses uniformly
    scores a cross-entropy of :math:`n \ln S / (T + n)` (``n`` tokens, ``S`` symbols) and
    recalls :math:`1/S` of the tokens.

    Args:
      length: ``T >= tokens``, the steps holding the tokens and the noise.
      tokens: ``n >= 1``, the tokens to recall.
      symbols: ``S >= 2``, the data symbols.

    Returns:
      A :class:`Task` with one-hot inputs ``[B, T+n, S+2]`` float32, int32 targets
      ``[B, T+n]``, ``S + 2`` outputs per step.

    Raises:
      ValueError: for ``tokens < 1``, ``symbols < 2`` or ``length < tokens``.

    Examples:
      >>> import jax, gatedcells.tasks as tasks
      >>> task = tasks.selective_copy(length=12, tokens=3, symbols=4)
      >>> xs, ys = task.sample(jax.random.key(0), 2)
      >>> xs.shape, ys.shape, task.output_size
      ((2, 15, 6), (2, 15), 6)
      >>> symbols = xs[0].argmax(-1)
      >>> bool((symbols[:12][symbols[:12] > 0] == ys[0, -3:]).all()), int((symbols == 5).sum())
      (True, 3)

    References:
      Gu & Dao, "Mamba: Linear-Time Sequence Modeling with Selective State Spaces", 2023.
      Jing, Gulcehre, Peurifoy, Shen, Tegmark, Soljacic & Bengio, "Gated Orthogonal
      Recurrent Units", 2019 (the variable-position copy task).
    """
    n = check_length(tokens, 1)
    S = check_length(symbols, 2)
    T = check_length(length, n)
    marker = S + 1

    def sample(key: Array, batch_size: int) -> tuple[Array, Array]:
        check_sample(key, batch_size)
        k_data, k_pos = jax.random.split(key)
        data = jax.random.randint(k_data, (batch_size, n), 1, S + 1)
        # n distinct positions in order: the n smallest of T random keys' ranks
        ranks = jnp.argsort(jax.random.uniform(k_pos, (batch_size, T)), axis=-1)
        positions = jnp.sort(ranks[:, :n], axis=-1)
        rows = jnp.arange(batch_size)[:, None]
        body = jnp.zeros((batch_size, T), jnp.int32).at[rows, positions].set(data)
        symbols_ = jnp.concatenate([body, jnp.full((batch_size, n), marker, jnp.int32)], axis=1)
        targets = jnp.concatenate([jnp.zeros((batch_size, T), jnp.int32), data], axis=1)
        return jax.nn.one_hot(symbols_, S + 2, dtype=jnp.float32), targets

    def recalled_accuracy(logits: Array, labels: Array) -> Array:
        return accuracy(logits[..., -n:, :], labels[..., -n:])

    return Task(
        name=f"selective_copy(T={T}, tokens={n}, symbols={S})",
        sample=sample,
        input_size=S + 2,
        output_size=S + 2,
        length=T + n,
        per_step=True,
        loss=cross_entropy,
        metric=recalled_accuracy,
        metric_name="accuracy",
        higher_is_better=True,
        baseline_loss=n * math.log(S) / (T + n),
        baseline_metric=1 / S,
    )
