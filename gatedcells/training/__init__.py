r"""Training with optax: a pure train step, a ``fit`` loop, and models for the tasks.

The pieces, from the bottom up:

- :class:`TrainState` ``(params, opt_state, step, key)`` is everything a training run
  carries from one step to the next: a pytree, so it can be jitted over, sharded and saved.
- :func:`train_step` builds a pure, jittable ``step(state, batch) -> (state, metrics)`` from
  a loss function and an optax optimizer.
- :func:`fit` runs that step (many steps per compiled call, with ``jax.lax.scan``) with a
  tqdm progress bar, periodic evaluation and optional gradient clipping, and returns the
  trained params and a :class:`History` of arrays ready to plot. It is deterministic: the
  same ``key`` gives bit-identical params.
- :func:`task_model` and :func:`fit_task` train any cell on any :mod:`gatedcells.tasks`
  task with a linear readout: what ``gatedcells train`` and ``gatedcells demo`` run.

A loss function has the signature ``loss_fn(params, batch, key) -> (loss, metrics)``: a
scalar loss to minimise, a dict of scalar metrics to record (may be empty), and a fresh
PRNG key per step for dropout (ignore it when unused). With a Flax module::

    def loss_fn(params, batch, key):
        xs, ys = batch
        logits = model.apply({"params": params}, xs, rngs={"dropout": key})
        return task.loss(logits, ys), {"accuracy": task.metric(logits, ys)}

``import gatedcells`` does not import this module; it needs optax and tqdm
(``pip install 'gatedcells[train]'``).
"""

try:
    import optax  # noqa: F401
except ImportError as err:  # pragma: no cover - depends on the environment
    raise ImportError("gatedcells.training needs optax: pip install 'gatedcells[train]'") from err

from ._fit import fit as fit
from ._history import History as History
from ._io import load_params as load_params
from ._io import save_params as save_params
from ._models import Model as Model
from ._models import fit_task as fit_task
from ._models import task_eval as task_eval
from ._models import task_loss as task_loss
from ._models import task_model as task_model
from ._state import TrainState as TrainState
from ._state import train_step as train_step

__all__ = [
    "History",
    "Model",
    "TrainState",
    "fit",
    "fit_task",
    "load_params",
    "save_params",
    "task_eval",
    "task_loss",
    "task_model",
    "train_step",
]
