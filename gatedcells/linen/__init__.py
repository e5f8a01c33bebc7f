r"""Flax linen modules for gatedcells cells: adapters with no math of their own.

Every module here fetches the whole params pytree of its cell once, with
``self.param("cell", cell.init, input_size)``, and calls the pure functions
(:func:`gatedcells.unroll`). So ``variables["params"]["cell"]`` is exactly what the cell's
``init`` returns (an :class:`gatedcells.LSTMParams`, a tuple of them for a stack), the
functional and the module paths share weights, and the time loop is a plain
``jax.lax.scan``: no ``nn.scan``, no ``variable_broadcast``, no ``split_rngs``.

- :class:`RNN`: a cell over a sequence, with the options of ``flax.linen.RNN``.
- :class:`Bidirectional`: a bidirectional layer of two cells.
- :class:`StackedRNN`: PyTorch's ``nn.LSTM(num_layers, bidirectional, dropout)`` for any
  cells, mixed types per layer allowed, dropout between layers.
- :class:`Cell`: a ``flax.linen.RNNCellBase``, so a gatedcells cell also runs inside
  ``flax.linen.RNN`` and ``flax.linen.Bidirectional`` unchanged.

Each sequence module has ``as_cell()``, the :class:`gatedcells.Cell` whose params are its
``variables["params"]["cell"]``: ``gatedcells.unroll(module.as_cell(), params, xs)`` computes
what the module computes (without dropout).

``import gatedcells`` does not import this module; it needs flax
(``pip install 'gatedcells[flax]'``).

Shape legend: ``B`` batch (``*B`` any number of axes), ``T`` time, ``I`` input, ``O`` output.

Examples:
  Masks by field: Flax's path utilities (``flax.traverse_util.flatten_dict``,
  ``path_aware_map``) walk dicts only, so they see a cell's params (a NamedTuple) as one
  leaf. JAX's key paths reach its fields (``GetAttrKey("w_x")``): weight decay on the
  kernels only, with optax,

  >>> import jax, jax.numpy as jnp, optax, flax, gatedcells as gc, gatedcells.linen as gl
  >>> variables = gl.RNN(gc.lstm(8)).init(jax.random.key(0), jnp.ones((2, 5, 3)))
  >>> list(flax.traverse_util.flatten_dict(variables["params"]))  # one leaf
  [('cell',)]
  >>> def kernels(params):  # True on w_x and w_h, at any depth (stacks, dicts, ...)
  ...     return jax.tree_util.tree_map_with_path(
  ...         lambda path, _: getattr(path[-1], "name", None) in ("w_x", "w_h"), params)
  >>> kernels(variables["params"])["cell"]
  LSTMParams(w_x=True, w_h=True, b=False)
  >>> tx = optax.adamw(1e-3, weight_decay=1e-4, mask=kernels)
"""

try:
    import flax.linen  # noqa: F401
except ImportError as err:  # pragma: no cover - depends on the environment
    raise ImportError("gatedcells.linen needs flax: pip install 'gatedcells[flax]'") from err

from ._adapter import Cell as Cell
from ._bidirectional import Bidirectional as Bidirectional
from ._rnn import RNN as RNN
from ._stacked import StackedRNN as StackedRNN

__all__ = ["RNN", "Bidirectional", "Cell", "StackedRNN"]
