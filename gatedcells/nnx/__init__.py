r"""Flax NNX layers for gatedcells cells: adapters with no math of their own.

Every layer here holds its cell's params as one ``nnx.Param`` per array, named by the cell's
fields (``layer.w_x``, ``layer.w_h``, ``layer.b``; a stack's under ``layer.layers[k]``), so
``nnx.state(layer, nnx.Param)``, ``nnx.display``, path filters, optax masks and sharding
annotations see them per array; ``layer.params()`` hands back exactly the pytree
``cell.init`` returns, and ``gatedcells.unroll(layer.as_cell(), layer.params(), xs)``
computes what the layer computes (without dropout). The time loop is
:func:`gatedcells.unroll`'s (the input projection hoisted out of the scan, the fused
gradient, a frozen carry and zero outputs past ``seq_lengths``). No RNG key is stored in a
layer: keys for dropout come with the call (``rngs=nnx.Rngs(dropout=seed)``), so
``nnx.state(model)`` saves with orbax as it is.

- :class:`RNN`: a cell over a sequence, with the options of ``flax.nnx.RNN``.
- :class:`Bidirectional`: a bidirectional layer of two cells.
- :class:`StackedRNN`: PyTorch's ``nn.LSTM(num_layers, bidirectional, dropout)`` for any
  cells, mixed types per layer allowed, dropout between layers.
- :class:`Cell`: a ``flax.nnx.RNNCellBase``, so a gatedcells cell also runs inside
  ``flax.nnx.RNN`` and ``flax.nnx.Bidirectional`` unchanged; :class:`RNN` also satisfies
  the protocol of ``flax.nnx.Bidirectional``'s RNNs.

Every layer is built as NNX layers are, ``Layer(cell, in_features, *, rngs)`` (so the second
argument of :class:`StackedRNN` is ``in_features``, not linen's ``num_layers``: with a single
cell it takes ``num_layers=`` by name), and works under ``nnx.jit``, ``nnx.grad``, ``nnx.value_and_grad``, ``nnx.Optimizer``,
``nnx.split``/``nnx.merge``, ``nnx.scan`` over stacked layers and ``nnx.remat``.

``import gatedcells`` does not import this module; it needs flax
(``pip install 'gatedcells[flax]'``).

Shape legend: ``B`` batch (``*B`` any number of axes), ``T`` time, ``I`` input, ``O`` output.

Examples:
  Weight decay on the kernels only, by the last name of each param's path (optax calls the
  mask with ``nnx.State`` trees, whose leaves ``nnx.map_state`` sees with their paths):

  >>> import jax, jax.numpy as jnp, optax, gatedcells as gc, gatedcells.nnx as gnnx
  >>> from flax import nnx
  >>> layer = gnnx.StackedRNN(gc.lstm(8), 3, num_layers=2, rngs=nnx.Rngs(0))
  >>> def kernels(state):
  ...     return nnx.map_state(lambda path, _: path[-1] in ("w_x", "w_h"), state)
  >>> tx = optax.adamw(1e-2, weight_decay=0.5, mask=kernels)
  >>> optimizer = nnx.Optimizer(layer, tx, wrt=nnx.Param)
  >>> before = layer.params()
  >>> zero = jax.tree.map(jnp.zeros_like, nnx.state(layer, nnx.Param))
  >>> with jax.numpy_dtype_promotion("standard"):  # optax mixes Python floats and int32
  ...     _ = optimizer.update(layer, zero)  # only the decay moves the params
  >>> jax.tree.map(lambda a, b: bool((a != b).any()), before, layer.params())[1]
  LSTMParams(w_x=True, w_h=True, b=False)
"""

try:
    import flax.nnx  # noqa: F401
except ImportError as err:  # pragma: no cover - depends on the environment
    raise ImportError("gatedcells.nnx needs flax: pip install 'gatedcells[flax]'") from err

from ._adapter import Cell as Cell
from ._bidirectional import Bidirectional as Bidirectional
from ._rnn import RNN as RNN
from ._stacked import StackedRNN as StackedRNN

__all__ = ["RNN", "Bidirectional", "Cell", "StackedRNN"]
