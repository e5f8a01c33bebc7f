"""Weight converters between gatedcells and PyTorch (``nn.RNN/LSTM/GRU`` and their cells),
Flax linen and Flax NNX (``LSTMCell``, ``OptimizedLSTMCell``, ``GRUCell``, ``SimpleCell``).

The layouts, written once (``I`` input, ``H`` hidden, ``G`` gates: 4 for an LSTM, 3 for a GRU,
1 for a simple RNN):

===================  ===========================  ===================  =======================
gatedcells           PyTorch (``weight_ih_l0``)   Flax linen           Flax NNX
===================  ===========================  ===================  =======================
``w_x [I, G*H]``     ``weight_ih.T``              ``i?`` kernels       ``ii, if_, ig, io`` or
                                                                       ``dense_i`` kernel
``w_h [H, G*H]``     ``weight_hh.T``              ``h?`` kernels       ``h?`` or ``dense_h``
                                                                       kernel
LSTM ``b [4H]``      ``bias_ih + bias_hh``        ``h?`` biases        ``h?`` or ``dense_h``
                                                                       bias
LSTM ``w_r [H, P]``  ``weight_hr.T`` (``P``)      (none)               (none)
GRU ``b [3H]``       ``bias_ih +``                ``i?`` biases        ``dense_i`` bias
                     ``(bias_hh[:2H], 0)``
GRU ``b_hn [H]``     ``bias_hh[2H:]``             ``hn`` bias          (none: must be 0)
simple ``b [H]``     ``bias_ih + bias_hh``        ``i`` bias           ``dense_i`` bias
===================  ===========================  ===================  =======================

Gate orders: LSTM ``(i, f, g, o)`` and GRU ``(r, z, n)`` everywhere; ``?`` runs over the gate
letters, and a multi-gate array (``w_x``, ...) is the per-gate arrays concatenated on its last
axis in that order, which NNX's fused cells (``OptimizedLSTMCell``, ``GRUCell``) hold as one
array. NNX's ``LSTMCell`` and ``OptimizedLSTMCell`` compute the same function from differently
named state (per-gate ``ii, if_, ..., ho`` against fused ``dense_i``/``dense_h``).

Round trips. Flax (linen and NNX): exact in both directions, array for array: each Flax array
is one gatedcells array or one gate block of it (with equal dtypes; NNX's ``GRUCell`` needs
``b_hn == 0``, see :func:`to_flax`). PyTorch: gatedcells -> torch -> gatedcells is exact;
torch -> gatedcells -> torch gives a module with the same outputs but not the same tensors:
``bias_ih``/``bias_hh`` come back as their sum and zeros.

The mLSTM's carry converts to and from the state of ``mlstm_kernels`` and xLSTM-large
(:func:`to_mlstm_kernels`, :func:`from_mlstm_kernels`): they scale the queries where
gatedcells scales the keys and hold the memory transposed.

torch and flax are imported only inside the functions that take their modules:
``import gatedcells.interop`` needs only jax and numpy.
"""

from ._flax import from_flax as from_flax
from ._flax import to_flax as to_flax
from ._mlstm import from_mlstm_kernels as from_mlstm_kernels
from ._mlstm import to_mlstm_kernels as to_mlstm_kernels
from ._torch import from_torch as from_torch
from ._torch import to_torch as to_torch
from ._torch_state_dict import _torch_cell as _torch_cell  # a torch module's cell (tests)
from ._torch_state_dict import from_torch_state_dict as from_torch_state_dict

__all__ = [
    "from_flax",
    "from_mlstm_kernels",
    "from_torch",
    "from_torch_state_dict",
    "to_flax",
    "to_mlstm_kernels",
    "to_torch",
]
