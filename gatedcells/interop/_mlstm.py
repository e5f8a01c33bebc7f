r"""The mLSTM's carry in the convention of ``mlstm_kernels`` and ``xlstm`` (xLSTM-large).

The conversion is :func:`to_mlstm_kernels` and back :func:`from_mlstm_kernels`, documented
there; ``tests/interop/test_mlstm_kernels.py`` pins it against a NumPy transcription of
``mlstm_kernels``' recurrent step.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax.numpy as jnp

from .._cell import Array
from ..cells import MLSTMCarry


def _sizes(carry: MLSTMCarry) -> tuple[int, int, int]:
    """``(NH, DK, DV)`` read from the flat leaves of an :class:`MLSTMCarry`."""
    if not isinstance(carry, MLSTMCarry):
        raise TypeError(f"carry must be a gatedcells.MLSTMCarry, got {type(carry).__name__}")
    heads = carry.m.shape[-1] if carry.m.ndim else 0
    if not heads or carry.n.shape[-1] % heads or carry.C.shape[-1] % carry.n.shape[-1]:
        raise ValueError(
            f"carry has shapes C {carry.C.shape}, n {carry.n.shape}, m {carry.m.shape}; "
            "expected C [*B, NH*DV*DK], n [*B, NH*DK], m [*B, NH]"
        )
    dk = carry.n.shape[-1] // heads
    return heads, dk, carry.C.shape[-1] // carry.n.shape[-1]


def to_mlstm_kernels(carry: MLSTMCarry) -> tuple[Array, Array, Array]:
    r"""An mLSTM carry of :func:`gatedcells.mlstm` as ``mlstm_kernels``' state ``(C, n, m)``.

    Both compute the same mLSTM and hold the same stabiliser ``m``; they differ in where the
    :math:`1/\sqrt{d_k}` sits and in the memory's layout:

    - gatedcells (:class:`~gatedcells.MLSTMCarry`) scales the keys, :math:`k/\sqrt{d_k}`, and
      holds :math:`C = \sum v k^\top` per head as ``[DV, DK]``, in flat leaves:
      ``C [*B, NH*DV*DK]``, ``n [*B, NH*DK]``, ``m [*B, NH]``;
    - mlstm_kernels and xLSTM-large scale the queries, :math:`q/\sqrt{d_k}`, and hold
      :math:`C = \sum k v^\top` per head as ``[DK, DV]``: ``C [*B, NH, DK, DV]``,
      ``n [*B, NH, DK]``, ``m [*B, NH, 1]``;

    so theirs is ours transposed per head and times :math:`\sqrt{d_k}` (``C`` and ``n``; ``m``
    is the same). Their inputs ``q, k, v, i, f`` are the blocks of the cell's input projection
    ``x @ w_x + b`` (:class:`~gatedcells.MLSTMParams`) before any scaling: the raw query, key
    and value, the gates' pre-activations; their output times ``sigmoid`` of the ``o`` block is
    the cell's output.

    The result is the state to pass as ``c_initial, n_initial, m_initial`` to
    ``mlstm_kernels`` (its recurrent step, its sequence kernels, ``mLSTMBackend``) or as an
    xLSTM-large layer's state, to continue what the cell started.

    Args:
      carry: :class:`~gatedcells.MLSTMCarry` with ``C [*B, NH*DV*DK]``, ``n [*B, NH*DK]``,
        ``m [*B, NH]``.

    Returns:
      ``(C [*B, NH, DK, DV], n [*B, NH, DK], m [*B, NH, 1])``, in the carry's dtype.

    Raises:
      TypeError: ``carry`` is not an :class:`~gatedcells.MLSTMCarry`.
      ValueError: its leaves' shapes do not fit one another.

    Examples:
      >>> import gatedcells as gc
      >>> from gatedcells import interop
      >>> carry = gc.mlstm(8, num_heads=2, qk_dim=4).initial_carry((5,))
      >>> c, n, m = interop.to_mlstm_kernels(carry)
      >>> c.shape, n.shape, m.shape                       # 2 heads, DK = 2, DV = 4
      ((5, 2, 2, 4), (5, 2, 2), (5, 2, 1))
    """
    heads, dk, dv = _sizes(carry)
    lead = carry.m.shape[:-1]
    scale = jnp.asarray(math.sqrt(dk), carry.C.dtype)
    c = jnp.swapaxes(carry.C.reshape(*lead, heads, dv, dk), -1, -2) * scale
    return c, carry.n.reshape(*lead, heads, dk) * scale, carry.m[..., None]


def from_mlstm_kernels(state: Sequence[Array]) -> MLSTMCarry:
    r"""``mlstm_kernels``' (or xLSTM-large's) mLSTM state ``(C, n, m)`` as a carry of
    :func:`gatedcells.mlstm`: the inverse of :func:`to_mlstm_kernels`.

    Args:
      state: ``(C [*B, NH, DK, DV], n [*B, NH, DK], m [*B, NH, 1])`` (``m [*B, NH]``, as
        their sequence kernels return it, too).

    Returns:
      :class:`~gatedcells.MLSTMCarry` ``(C [*B, NH*DV*DK], n [*B, NH*DK], m [*B, NH])`` with
      ``C = C'^\top / \sqrt{d_k}`` and ``n = n' / \sqrt{d_k}`` per head.

    Raises:
      ValueError: ``state`` is not three arrays of those shapes.

    Examples:
      >>> import jax, gatedcells as gc
      >>> from gatedcells import interop
      >>> carry = gc.mlstm(8, num_heads=2, qk_dim=4).initial_carry((5,))
      >>> back = interop.from_mlstm_kernels(interop.to_mlstm_kernels(carry))
      >>> jax.tree.map(lambda a, b: a.shape == b.shape, back, carry)
      MLSTMCarry(C=True, n=True, m=True)
    """
    if not isinstance(state, Sequence) or len(state) != 3:
        raise ValueError("state must be the three arrays (C, n, m) of mlstm_kernels")
    c, n, m = (jnp.asarray(a) for a in state)
    m = m[..., 0] if m.ndim == n.ndim and m.shape[-1:] == (1,) else m
    if c.ndim < 3 or n.shape != c.shape[:-1] or m.shape != c.shape[:-2]:
        raise ValueError(
            f"state has shapes C {c.shape}, n {n.shape}, m {m.shape}; expected "
            "C [*B, NH, DK, DV], n [*B, NH, DK], m [*B, NH, 1]"
        )
    *lead, heads, dk, dv = c.shape
    scale = jnp.asarray(1 / math.sqrt(dk), c.dtype)
    flat_c = (jnp.swapaxes(c, -1, -2) * scale).reshape(*lead, heads * dv * dk)
    return MLSTMCarry(flat_c, (n * scale).reshape(*lead, heads * dk), m)
