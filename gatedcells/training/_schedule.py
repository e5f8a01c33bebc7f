"""When :func:`~gatedcells.training.fit` ends a compiled chunk of steps, evaluates and saves."""

from __future__ import annotations

import math
from typing import NamedTuple

from .._checks import check_positive_int


class Schedule(NamedTuple):
    """Where a run of ``steps`` steps evaluates, saves and ends its compiled chunks.

    Chunk boundaries depend on the step number only: a resumed run compiles and runs the
    same chunks as an uninterrupted one, hence the same bits.
    """

    steps: int
    eval_every: int
    checkpoint_every: int
    chunk: int

    @classmethod
    def create(
        cls, steps: int, eval_every: int | None, log_every: int, checkpoint_every: int | None
    ) -> Schedule:
        """``fit``'s periods checked (in the order of its arguments), with the defaults:
        ``eval_every = steps // 10`` (at least 1), ``checkpoint_every = eval_every``."""
        check_positive_int("steps", steps)
        eval_every = max(1, steps // 10) if eval_every is None else eval_every
        check_positive_int("eval_every", eval_every)
        check_positive_int("log_every", log_every)
        checkpoint_every = eval_every if checkpoint_every is None else checkpoint_every
        check_positive_int("checkpoint_every", checkpoint_every)
        chunk = chunk_length(log_every, eval_every, checkpoint_every)
        return cls(steps, eval_every, checkpoint_every, chunk)

    def next_chunk(self, done: int) -> int:
        """The length of the chunk after step ``done``: up to the next boundary."""
        return min(
            self.chunk - done % self.chunk,
            self.eval_every - done % self.eval_every,
            self.checkpoint_every - done % self.checkpoint_every,
            self.steps - done,
        )

    def evaluates(self, done: int) -> bool:
        """Whether ``fit`` evaluates after step ``done``: every ``eval_every`` and at the end."""
        return done % self.eval_every == 0 or done == self.steps

    def saves(self, done: int) -> bool:
        """Whether ``fit`` saves a checkpoint after step ``done`` (when it has a folder)."""
        return done % self.checkpoint_every == 0 or done == self.steps


def chunk_length(log_every: int, eval_every: int, checkpoint_every: int) -> int:
    """Steps per compiled call: one length for the whole run where possible.

    Each distinct length is compiled once, so the chunks should all be equal: the largest
    divisor of both the evaluation and the checkpoint periods that is at most ``log_every``
    (e.g. ``eval_every=60, log_every=50`` runs chunks of 30, not 50, 10, 40, 20, 30, ...
    each compiled anew). When the periods share no divisor that large, chunks of up to
    ``min(log_every, eval_every)`` steps end at each boundary instead.
    """
    period = math.gcd(eval_every, checkpoint_every)
    upper = min(log_every, eval_every)
    chunk = max(d for d in range(1, min(log_every, period) + 1) if period % d == 0)
    return chunk if 2 * chunk >= upper else upper
