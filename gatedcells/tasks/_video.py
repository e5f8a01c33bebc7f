"""Video prediction as a pure, jittable generator: squares bouncing on a grid."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from .._checks import check_positive_int
from ._task import Array, Task, check_length, check_sample, mse

BASELINE_SAMPLES = 2048  # sequences the copy-last-frame baseline is measured on (key 0)


def moving_shapes(length: int = 20, size: int = 16, *, squares: int = 2, side: int = 4) -> Task:
    r"""Next-frame prediction of squares bouncing in a box: an offline Moving MNIST.

    Each sequence shows ``squares`` white squares of ``side`` x ``side`` pixels on a black
    ``size`` x ``size`` grid, each starting at a uniform position and moving one pixel per
    step along each axis (direction drawn uniformly), bouncing off the walls (the position
    is a triangle wave of time, so every step moves exactly one pixel per axis). Squares may
    overlap (the frame is their union). At every step the model reads frame ``t`` and
    predicts frame ``t + 1``: the first prediction cannot know the directions, every later
    one can, from two frames. This is the offline stand-in for Moving MNIST
    (Srivastava et al. 2015), the benchmark of the ConvLSTM (Shi et al. 2015).

    Baseline: copying the last frame, whose MSE (about ``squares * 2(2 side - 1) / size^2``,
    less where squares overlap) is measured once on 2048 sequences drawn from
    ``jax.random.key(0)``. Predicting a blank frame scores the mean intensity, a little more.

    Args:
      length: ``T >= 2``, the number of frames read (``T + 1`` are drawn).
      size: the side of the grid, in pixels (more than ``side``).
      squares: how many squares move.
      side: the side of each square, in pixels.

    Returns:
      A :class:`Task` with frames ``[B, T, size, size, 1]`` float32 in ``{0, 1}`` as inputs
      (a convolutional cell's ``[B, T, *S, I]``; flatten them for a dense cell), targets
      ``[B, T, size, size]`` (the next frames), ``input_size = output_size = 1`` (channels),
      ``per_step``, loss and metric the MSE of predictions ``[B, T, size, size, 1]``.

    Raises:
      ValueError: ``length < 2``, a non-positive ``squares`` or ``side``, or ``size`` not
        above ``side``.

    Examples:
      >>> import jax, gatedcells.tasks as tasks
      >>> task = tasks.moving_shapes(length=10, size=12)
      >>> xs, ys = task.sample(jax.random.key(0), 4)
      >>> xs.shape, ys.shape, task.input_size
      ((4, 10, 12, 12, 1), (4, 10, 12, 12), 1)
      >>> bool((xs[:, 1:, ..., 0] == ys[:, :-1]).all())   # the targets are the next frames
      True
      >>> round(task.baseline_metric, 2)
      0.16

    References:
      Srivastava, Mansimov & Salakhutdinov, "Unsupervised Learning of Video Representations
      using LSTMs", ICML 2015 (Moving MNIST).
      Shi et al., "Convolutional LSTM Network: A Machine Learning Approach for Precipitation
      Nowcasting", NeurIPS 2015.
    """
    T = check_length(length, 2)
    squares = check_positive_int("squares", squares)
    side = check_positive_int("side", side)
    size = check_positive_int("size", size)
    if size <= side:
        raise ValueError(f"size must be more than side={side} (room to move), got {size}")
    sample = functools.partial(_sample, T, size, squares, side)
    xs, ys = jax.jit(sample, static_argnums=1)(jax.random.key(0), BASELINE_SAMPLES)
    copy_last = float(jnp.mean(jnp.square(xs[..., 0] - ys)))
    return Task(
        name=f"moving_shapes(T={T}, size={size}, squares={squares}, side={side})",
        sample=sample,
        input_size=1,
        output_size=1,
        length=T,
        per_step=True,
        loss=mse,
        metric=mse,
        metric_name="mse",
        higher_is_better=False,
        baseline_loss=copy_last,
        baseline_metric=copy_last,
    )


def _sample(
    T: int, size: int, squares: int, side: int, key: Array, batch_size: int
) -> tuple[Array, Array]:
    """``T + 1`` frames of bouncing squares: frames ``[:T]`` as inputs, ``[1:]`` as targets."""
    check_sample(key, batch_size)
    kp, kv = jax.random.split(key)
    room = size - side  # the top-left corner moves in [0, room]
    start = jax.random.randint(kp, (batch_size, squares, 2), 0, room + 1)
    velocity = 2 * jax.random.randint(kv, (batch_size, squares, 2), 0, 2) - 1
    t = jnp.arange(T + 1)[:, None, None, None]  # [T + 1, 1, 1, 1]
    travel = jnp.mod(start[None] + velocity[None] * t, 2 * room)  # triangle wave: bounces
    corner = (room - jnp.abs(travel - room))[..., None]  # [T + 1, B, squares, 2, 1]
    pixels = jnp.arange(size).reshape(1, 1, 1, 1, size)
    inside = (pixels >= corner) & (pixels < corner + side)  # [T + 1, B, squares, 2, size]
    frames = jnp.any(inside[..., 0, :, None] & inside[..., 1, None, :], axis=2)
    frames = jnp.moveaxis(frames.astype(jnp.float32), 0, 1)  # [B, T + 1, size, size]
    return frames[:, :T, ..., None], frames[:, 1:]
