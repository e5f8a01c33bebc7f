"""What :func:`~gatedcells.training.fit` records: a :class:`History`, built by a Recorder."""

from __future__ import annotations

import time
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ._state import EvalFn, Params

_NOTHING = {"train": {}, "train_dtype": {}, "eval": [], "eval_step": [], "seconds": []}


class History(NamedTuple):
    """What :func:`fit` recorded: NumPy arrays, ready to plot.

    Attributes:
      step: ``[N]`` the step number (1..N) of each training record.
      train: ``"loss"``, ``"grad_norm"`` (global norm of the gradient before clipping) and
        the loss function's metrics, each ``[N]``: one value per step, on its own batch.
      eval_step: ``[M]`` the steps at which ``eval_fn`` ran (0 is before training).
      eval: ``eval_fn``'s metrics, each ``[M]``.
      seconds: ``[M]`` wall-clock seconds from the start of ``fit`` to each evaluation
        (compilation included).
    """

    step: np.ndarray
    train: dict[str, np.ndarray]
    eval_step: np.ndarray
    eval: dict[str, np.ndarray]
    seconds: np.ndarray

    def to_dict(self) -> dict[str, list]:
        """A flat, JSON-ready dict of lists: ``step``, the train records by name (``loss``,
        ...), ``eval_step``, the evaluations as ``eval_<name>``, and ``seconds``."""
        out: dict[str, list] = {"step": self.step.tolist()}
        out.update({k: v.tolist() for k, v in self.train.items()})
        out["eval_step"] = self.eval_step.tolist()
        out.update({f"eval_{k}": v.tolist() for k, v in self.eval.items()})
        out["seconds"] = self.seconds.tolist()
        return out


class Recorder:
    """A run's history as it grows: the train metrics of each chunk of steps, and each
    evaluation with its step and its seconds since the start. With ``saved`` (what
    :meth:`to_json` returned, as a checkpoint holds it), it goes on from there, clock included.
    """

    def __init__(self, evaluate: EvalFn | None, saved: dict | None = None):
        self._evaluate = evaluate
        saved = _NOTHING if saved is None else saved  # exact: dtypes kept, floats' reprs
        dtypes = saved["train_dtype"]
        train = {k: np.asarray(v, jnp.dtype(dtypes[k])) for k, v in saved["train"].items()}
        self.chunks: list[dict[str, np.ndarray]] = [train] if train else []
        self.evals: list[dict[str, float]] = [dict(e) for e in saved["eval"]]
        self.eval_steps: list[int] = list(saved["eval_step"])
        self.seconds: list[float] = list(saved["seconds"])
        self._start = time.perf_counter() - (self.seconds[-1] if self.seconds else 0.0)

    def train(self, metrics: dict[str, Any]) -> None:
        """Record a chunk's metrics, each ``[n]``."""
        self.chunks.append(jax.tree.map(np.asarray, metrics))

    def evaluate(self, step: int, params: Params) -> None:
        """Run ``evaluate(params)`` (if any) and record it at ``step``."""
        if self._evaluate is None:
            return
        values = self._evaluate(params)
        if not isinstance(values, dict):
            raise TypeError(f"eval_fn must return a dict of scalars, got {type(values).__name__}")
        self.evals.append({k: float(v) for k, v in values.items()})
        self.eval_steps.append(step)
        self.seconds.append(time.perf_counter() - self._start)

    def postfix(self) -> dict[str, str]:
        """The progress bar's: the last chunk's mean loss and metrics, and the last evaluation
        after step 0 (the one before training is left out), as ``eval_<name>`` when made at
        the last step, ``eval_<name>@<step>`` when older. A metric equal to the loss (the
        ``mse`` of a regression task) is not shown again.

        Examples:
          >>> import numpy as np
          >>> r = Recorder(lambda params: {"loss": 0.5, "mse": 0.5})
          >>> r.evaluate(0, None)
          >>> r.train({"loss": np.array([1.0, 2.0]), "mse": np.array([1.0, 2.0])})
          >>> r.postfix()
          {'loss': '1.5'}
          >>> r.evaluate(2, None)
          >>> r.postfix()
          {'loss': '1.5', 'eval_loss': '0.5'}
          >>> r.train({"loss": np.array([1.0]), "mse": np.array([1.0])})
          >>> r.postfix()
          {'loss': '1', 'eval_loss@2': '0.5'}
        """
        chunk = self.chunks[-1]
        train = _once({k: v for k, v in chunk.items() if k != "grad_norm"}, np.array_equal)
        values = {k: v.mean() for k, v in train.items()}
        if self.eval_steps and self.eval_steps[-1] > 0:
            step, done = self.eval_steps[-1], sum(len(c["loss"]) for c in self.chunks)
            mark = "" if step == done else f"@{step}"
            last = _once(self.evals[-1], lambda a, b: a == b)
            values.update({f"eval_{k}{mark}": v for k, v in last.items()})
        return {k: f"{float(v):.4g}" for k, v in values.items()}

    def to_json(self) -> dict:
        """The history so far as JSON, exact (a float32 or bfloat16 value survives a round
        trip through a Python float and its repr), with the dtypes kept."""
        train = self._train()
        return {
            "train": {k: v.tolist() for k, v in train.items()},
            "train_dtype": {k: str(v.dtype) for k, v in train.items()},
            "eval": self.evals,
            "eval_step": list(self.eval_steps),
            "seconds": list(self.seconds),
        }

    def history(self, steps: int) -> History:
        """The :class:`History` of a run of ``steps`` steps."""
        names = self.evals[0] if self.evals else {}
        return History(
            step=np.arange(1, steps + 1),
            train=self._train(),
            eval_step=np.asarray(self.eval_steps, np.int64),
            eval={k: np.asarray([e[k] for e in self.evals]) for k in names},
            seconds=np.asarray(self.seconds),
        )

    def _train(self) -> dict[str, np.ndarray]:
        names = self.chunks[0] if self.chunks else {}
        return {k: np.concatenate([c[k] for c in self.chunks]) for k in names}


def _once(values: dict[str, Any], equal) -> dict[str, Any]:
    """``values`` without the metrics (other than ``"loss"``) equal to its ``"loss"``."""
    if "loss" not in values:
        return values
    return {k: v for k, v in values.items() if k == "loss" or not equal(v, values["loss"])}
