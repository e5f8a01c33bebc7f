"""State tracking tasks as pure, jittable generators: what a recurrence with memory mixing
(the LSTM, the sLSTM) solves and a linear (diagonal, positive) recurrence cannot."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from ._task import Array, Task, accuracy, check_length, check_sample, cross_entropy


def parity(length: int = 32) -> Task:
    r"""Running parity: after every bit, whether the bits so far hold an odd number of ones.

    Each step reads one bit, one-hot (``[1, 0]`` for 0, ``[0, 1]`` for 1), drawn uniformly;
    the target at step ``t`` is :math:`b_0 \oplus b_1 \oplus \dots \oplus b_t`. It is the
    simplest regular language that needs a state that flips: a recurrence whose transition
    is diagonal with entries in :math:`[0, 1]` (minGRU, Mamba, the mLSTM) cannot flip a
    sign, and does not solve it beyond a few steps (Grazzi et al. 2025); an LSTM or an
    sLSTM, whose gates read the previous state (memory mixing), can (Beck et al. 2024,
    after Delétang et al. 2023, the "parity check" task). Every step is predicted
    (``per_step``): a model trained at one length can be scored at a longer one, as the
    xLSTM paper does to test length generalisation.

    Chance level: to a model that misses any one of the bits so far, every target is a fair
    coin: an accuracy of 1/2 and a cross-entropy of :math:`\ln 2`.

    Args:
      length: ``T >= 1``, the number of bits.

    Returns:
      A :class:`Task` with one-hot inputs ``[B, T, 2]`` float32, int32 targets ``[B, T]``
      in ``{0, 1}``, 2 outputs per step, loss the cross-entropy and metric the accuracy over
      every step, baseline ``ln 2`` and 1/2.

    Raises:
      ValueError: for ``length < 1``.

    Examples:
      >>> import jax, gatedcells.tasks as tasks
      >>> task = tasks.parity(length=6)
      >>> xs, ys = task.sample(jax.random.key(0), 2)
      >>> xs.shape, ys.shape, task.per_step, task.baseline_metric
      ((2, 6, 2), (2, 6), True, 0.5)
      >>> bits = xs[..., 1].astype(int)
      >>> bool((ys == bits.cumsum(axis=1) % 2).all())
      True

    References:
      Beck et al., "xLSTM: Extended Long Short-Term Memory", NeurIPS 2024 (§4.1, Fig. 4).
      Delétang et al., "Neural Networks and the Chomsky Hierarchy", ICLR 2023.
      Grazzi et al., "Unlocking State-Tracking in Linear RNNs Through Negative Eigenvalues",
      ICLR 2025.
    """
    T = check_length(length, 1)

    def sample(key: Array, batch_size: int) -> tuple[Array, Array]:
        check_sample(key, batch_size)
        bits = jax.random.bernoulli(key, 0.5, (batch_size, T)).astype(jnp.int32)
        targets = jnp.cumsum(bits, axis=1) % 2
        return jax.nn.one_hot(bits, 2, dtype=jnp.float32), targets

    return Task(
        name=f"parity(T={T})",
        sample=sample,
        input_size=2,
        output_size=2,
        length=T,
        per_step=True,
        loss=cross_entropy,
        metric=accuracy,
        metric_name="accuracy",
        higher_is_better=True,
        baseline_loss=math.log(2),
        baseline_metric=0.5,
    )
