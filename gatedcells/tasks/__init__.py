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

from ._digits import DIGITS_TEST as DIGITS_TEST
from ._digits import digits as digits
from ._registry import TASKS as TASKS
from ._registry import get as get
from ._synthetic import COPY_LENGTH as COPY_LENGTH
from ._synthetic import COPY_SYMBOLS as COPY_SYMBOLS
from ._synthetic import adding as adding
from ._synthetic import copy_memory as copy_memory
from ._synthetic import temporal_order as temporal_order
from ._task import Task as Task
from ._task import accuracy as accuracy
from ._task import cross_entropy as cross_entropy
from ._task import mse as mse

__all__ = [
    "TASKS",
    "Task",
    "accuracy",
    "adding",
    "copy_memory",
    "cross_entropy",
    "digits",
    "get",
    "mse",
    "temporal_order",
]
