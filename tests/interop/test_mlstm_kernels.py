"""The mLSTM's carry against ``mlstm_kernels``' convention (queries scaled, ``C [DK, DV]``):
a state handed across either way continues into the outputs of one uninterrupted run.

The reference is a NumPy transcription (float64) of ``mlstm_kernels``' recurrent step
(``mlstm_kernels/torch/recurrent/native_step.py``, ``mlstm_recurrent_step__native_fw``, the
step xLSTM-large runs when it generates): ``m' = max(log σ(f̃) + m, ĩ)``, ``C' = f C + i k v^T``,
``n' = f n + i k``, ``h = (q/√DK)^T C' / (max(|(q/√DK)^T n'|, e^{-m'}) + ε)``.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gatedcells as gc
from gatedcells import interop

H, NH, QK, I, B, T, SPLIT = 6, 2, 4, 5, 3, 11, 4  # DK = 2, DV = 3
DK, DV = QK // NH, H // NH
TOL = dict(rtol=2e-5, atol=2e-5)


def kernels_step(state, q, k, v, i_pre, f_pre, eps=1e-6):
    """One step of mlstm_kernels' recurrent form, in its convention: ``state = (C [B, NH, DK,
    DV], n [B, NH, DK], m [B, NH, 1])``, ``q, k [B, NH, DK]`` unscaled, ``v [B, NH, DV]``,
    ``i_pre, f_pre [B, NH, 1]`` the gates' pre-activations. Returns ``(h [B, NH, DV], state)``."""
    c, n, m = state
    log_f = -np.logaddexp(0.0, -f_pre)  # log sigmoid
    m_new = np.maximum(log_f + m, i_pre)
    f, i = np.exp(log_f + m - m_new), np.exp(i_pre - m_new)
    c = f[..., None] * c + i[..., None] * (k[..., :, None] * v[..., None, :])
    n = f * n + i * k
    q_scaled = q / np.sqrt(q.shape[-1])
    num = np.einsum("...d,...dv->...v", q_scaled, c)
    qn = np.sum(q_scaled * n, axis=-1, keepdims=True)
    return num / (np.maximum(np.abs(qn), np.exp(-m_new)) + eps), (c, n, m_new)


def kernels_run(params, xs, state):
    """The cell's projection fed to :func:`kernels_step` over ``xs [B, T, I]``, each output
    gated by ``sigmoid(o)`` as the cell does: ``(ys [B, T, H], state)``."""
    z = np.asarray(xs, np.float64) @ np.asarray(params.w_x, np.float64) + np.asarray(params.b)
    q, k, v, i_pre, f_pre, o = np.split(z, np.cumsum([QK, QK, H, NH, NH]), axis=-1)
    heads = lambda a: a.reshape(*a.shape[:-1], NH, -1)  # noqa: E731
    ys = []
    for t in range(xs.shape[1]):
        h, state = kernels_step(
            state, heads(q[:, t]), heads(k[:, t]), heads(v[:, t]),
            i_pre[:, t, :, None], f_pre[:, t, :, None],
        )  # fmt: skip
        ys.append(h.reshape(B, H) / (1 + np.exp(-o[:, t])))
    return np.stack(ys, axis=1), state


@pytest.fixture(scope="module")
def run():
    cell = gc.mlstm(H, num_heads=NH, qk_dim=QK, gate_init=jax.nn.initializers.normal(0.5))
    params = cell.init(jax.random.key(0), I)
    xs = jax.random.normal(jax.random.key(1), (B, T, I))
    carry, ys = gc.unroll(cell, params, xs)  # the uninterrupted run
    return cell, params, xs, carry, ys


def as_np(state):
    return tuple(np.asarray(a, np.float64) for a in state)


def test_our_state_continues_in_their_step(run):
    cell, params, xs, carry, ys = run
    half, _ = gc.unroll(cell, params, xs[:, :SPLIT])
    theirs = as_np(interop.to_mlstm_kernels(half))
    ys_rest, end = kernels_run(params, xs[:, SPLIT:], theirs)
    np.testing.assert_allclose(ys_rest, ys[:, SPLIT:], **TOL)
    for got, want in zip(end, interop.to_mlstm_kernels(carry), strict=True):
        np.testing.assert_allclose(got, want, **TOL)


def test_their_state_continues_in_our_cell(run):
    cell, params, xs, carry, ys = run
    zeros = (np.zeros((B, NH, DK, DV)), np.zeros((B, NH, DK)), np.zeros((B, NH, 1)))
    ys_first, theirs = kernels_run(params, xs[:, :SPLIT], zeros)
    np.testing.assert_allclose(ys_first, ys[:, :SPLIT], **TOL)
    ours = interop.from_mlstm_kernels(jax.tree.map(jnp.float32, theirs))
    end, ys_rest = gc.unroll(cell, params, xs[:, SPLIT:], ours)
    np.testing.assert_allclose(ys_rest, ys[:, SPLIT:], **TOL)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, **TOL), end, carry)


def test_round_trip_layouts_and_errors(run):
    carry = run[3]
    c, n, m = interop.to_mlstm_kernels(carry)
    assert (c.shape, n.shape, m.shape) == ((B, NH, DK, DV), (B, NH, DK), (B, NH, 1))
    # C per head is ours transposed, times sqrt(DK): the queries carry the scale in theirs
    ours_c = np.asarray(carry.C).reshape(B, NH, DV, DK)
    np.testing.assert_allclose(c, np.sqrt(DK) * ours_c.swapaxes(-1, -2), rtol=1e-6)
    for state in ((c, n, m), (c, n, m[..., 0])):  # m [*B, NH, 1] or [*B, NH]
        back = interop.from_mlstm_kernels(state)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), back, carry)
    single = jax.tree.map(lambda a: a[0], carry)  # no batch axis
    back = interop.from_mlstm_kernels(interop.to_mlstm_kernels(single))
    assert jax.tree.map(jnp.shape, back) == jax.tree.map(jnp.shape, single)
    with pytest.raises(TypeError, match="carry must be a gatedcells.MLSTMCarry"):
        interop.to_mlstm_kernels((carry.C, carry.n, carry.m))
    with pytest.raises(ValueError, match="carry has shapes"):
        interop.to_mlstm_kernels(carry._replace(n=carry.n[..., :3]))
    with pytest.raises(ValueError, match="state has shapes"):
        interop.from_mlstm_kernels((c, n[..., :1], m))
    with pytest.raises(ValueError, match="three arrays"):
        interop.from_mlstm_kernels((c, n))
