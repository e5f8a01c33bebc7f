"""Equivalence with Flax NNX's cells under ``nnx.RNN`` through ``interop.from_flax`` /
``to_flax``, both directions, and exact round trips."""

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gatedcells as gc
from gatedcells import interop

nnx = pytest.importorskip("flax.nnx")

I, H, B, T = 5, 7, 3, 6
TOL = 1e-6  # float32, outputs and final carry
NNX_CELLS = {
    "LSTMCell": lambda **kw: nnx.LSTMCell(I, H, **kw),
    "OptimizedLSTMCell": lambda **kw: nnx.OptimizedLSTMCell(I, H, **kw),
    "GRUCell": lambda **kw: nnx.GRUCell(I, H, **kw),
    "SimpleCell": lambda **kw: nnx.SimpleCell(I, H, **kw),
    "SimpleCell-relu": lambda **kw: nnx.SimpleCell(I, H, activation_fn=nnx.relu, **kw),
}
GC_CELLS = {  # the gatedcells cell of each kind, and the NNX class to_flax builds
    "LSTMCell": (lambda: gc.lstm(H), nnx.LSTMCell),
    "OptimizedLSTMCell": (lambda: gc.lstm(H), nnx.OptimizedLSTMCell),
    "GRUCell": (lambda: gc.gru(H), nnx.GRUCell),
    "SimpleCell": (lambda: gc.simple_rnn(H), nnx.SimpleCell),
}


def _nnx_cell(kind, seed=1):
    """An NNX cell with every param shifted, so that non-zero biases are checked too."""
    module = NNX_CELLS[kind](rngs=nnx.Rngs(seed))
    state = nnx.state(module, nnx.Param)
    shifted = jax.tree.map(
        lambda a: a + jnp.linspace(-0.2, 0.3, a.size, dtype=a.dtype).reshape(a.shape),
        nnx.to_pure_dict(state),
    )
    nnx.replace_by_pure_dict(state, shifted)
    nnx.update(module, state)
    return module


def _gc_params(kind):
    """gatedcells params with non-zero biases (a GRU's ``b_hn`` zero: NNX has none)."""
    make, _ = GC_CELLS[kind]
    params = make().init(jax.random.key(2), I)
    params = params._replace(b=params.b + jnp.linspace(-0.5, 0.5, params.b.size))
    return params


def _inputs():
    kx, kc = jax.random.split(jax.random.key(0))
    xs = jax.random.normal(kx, (B, T, I))
    return xs, 0.5 * jax.random.normal(kc, (2, B, H))


def _nnx_carry(kind, c0):
    return (c0[0], c0[1]) if "LSTM" in kind else c0[1]


def _gc_carry(kind, c0):
    return gc.LSTMCarry(c0[0], c0[1]) if "LSTM" in kind else c0[1]


def max_errors(cell, params, module, kind):
    """``(output error, final-carry error)`` of gatedcells against ``nnx.RNN(module)``."""
    xs, c0 = _inputs()
    carry_nnx, ys_nnx = nnx.RNN(module, return_carry=True)(xs, initial_carry=_nnx_carry(kind, c0))
    carry_gc, ys_gc = gc.unroll(cell, params, xs, _gc_carry(kind, c0))
    err_y = float(jnp.max(jnp.abs(ys_gc - ys_nnx)))
    leaves_gc, leaves_nnx = jax.tree.leaves(carry_gc), jax.tree.leaves(carry_nnx)
    assert len(leaves_gc) == len(leaves_nnx)
    err_c = max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(leaves_gc, leaves_nnx, strict=True))
    return err_y, err_c


def _assert_same(a, b):
    """Array for array, bitwise, dtypes included."""
    leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(leaves_a, leaves_b, strict=True):
        assert x.dtype == y.dtype
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("kind", sorted(NNX_CELLS))
def test_nnx_to_gatedcells(kind):
    module = _nnx_cell(kind)
    cell, params = interop.from_flax(module)
    err_y, err_c = max_errors(cell, params, module, kind)
    assert err_y <= TOL and err_c <= TOL, (err_y, err_c)


@pytest.mark.parametrize("kind", sorted(GC_CELLS))
def test_gatedcells_to_nnx(kind):
    make, cls = GC_CELLS[kind]
    params = _gc_params(kind)
    module = interop.to_flax(params, cls)  # built
    assert type(module) is cls
    err_y, err_c = max_errors(make(), params, module, kind)
    assert err_y <= TOL and err_c <= TOL, (err_y, err_c)
    filled = cls(I, H, rngs=nnx.Rngs(9))  # and filled in place
    assert interop.to_flax(params, filled) is filled
    _assert_same(nnx.to_pure_dict(nnx.state(filled)), nnx.to_pure_dict(nnx.state(module)))


@pytest.mark.parametrize("kind", sorted(NNX_CELLS))
def test_round_trip_from_nnx_is_exact(kind):
    module = _nnx_cell(kind)
    _, params = interop.from_flax(module)
    fresh = NNX_CELLS[kind](rngs=nnx.Rngs(7))
    interop.to_flax(params, fresh)
    _assert_same(nnx.to_pure_dict(nnx.state(fresh)), nnx.to_pure_dict(nnx.state(module)))


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize("kind", sorted(GC_CELLS))
def test_round_trip_from_gatedcells_is_exact(kind, dtype):
    params = jax.tree.map(lambda a: a.astype(dtype), _gc_params(kind))
    _, back = interop.from_flax(interop.to_flax(params, GC_CELLS[kind][1]))
    _assert_same(back, params)


@pytest.mark.parametrize("kind", sorted(NNX_CELLS))
def test_from_nnx_state_forms(kind):
    """The cell, its state (with or without the module), nnx.split's state, an nnx.RNN and
    its state all read the same params; a state alone names its cell by its paths."""
    module = _nnx_cell(kind)
    expected_cell, expected = interop.from_flax(module)
    assert expected_cell.name.startswith("lstm" if "LSTM" in kind else kind[:3].lower())
    _, state = nnx.split(module)
    rnn = nnx.RNN(module)
    forms = [
        (module, nnx.state(module)),
        (module, state),
        (module, nnx.to_pure_dict(state)),
        (rnn, None),
        (rnn, nnx.state(rnn)),
    ]
    if kind != "SimpleCell-relu":  # a state alone stands for the default options
        forms += [(state, None), (nnx.to_pure_dict(state), None), (nnx.state(rnn), None)]
    for m, p in forms:
        cell, params = interop.from_flax(m, p)
        _assert_same(params, expected)
        assert cell.name == expected_cell.name


def test_lstm_state_paths_differ_but_convert_alike():
    """NNX's LSTMCell holds per-gate ``ii, if_, ..., ho``, its OptimizedLSTMCell fused
    ``dense_i``/``dense_h``: the same gatedcells params from either."""
    per_gate = _nnx_cell("LSTMCell")
    assert {"ii", "if_", "ho"} <= set(nnx.to_pure_dict(nnx.state(per_gate)))
    _, params = interop.from_flax(per_gate)
    fused = interop.to_flax(params, nnx.OptimizedLSTMCell)
    assert set(nnx.to_pure_dict(nnx.state(fused))) == {"dense_i", "dense_h"}
    _assert_same(interop.from_flax(fused)[1], params)


def test_gru_b_hn_nnx_cannot_hold():
    params = _gc_params("GRUCell")
    assert not params.b_hn.any()  # from_flax gives zeros: an NNX GRU converts back
    bad = params._replace(b_hn=params.b_hn.at[3].set(0.25))
    for target in (nnx.GRUCell, nnx.GRUCell(I, H, rngs=nnx.Rngs(0))):
        with pytest.raises(ValueError, match=r"params.b_hn is not zero \(max \|b_hn\| = 0.25\)"):
            interop.to_flax(bad, target)
    try:
        interop.to_flax(bad, nnx.GRUCell)
    except ValueError as e:
        assert "\n" not in str(e) and "flax.nnx.GRUCell has no b_hn" in str(e)


def test_nnx_errors():
    with pytest.raises(ValueError, match="gate_fn or activation_fn"):
        interop.from_flax(nnx.LSTMCell(I, H, activation_fn=nnx.relu, rngs=nnx.Rngs(0)))
    with pytest.raises(ValueError, match="residual=True"):
        interop.from_flax(nnx.SimpleCell(I, H, residual=True, rngs=nnx.Rngs(0)))
    with pytest.raises(ValueError, match="residual=True"):
        interop.to_flax(_gc_params("SimpleCell"), nnx.SimpleCell(I, H, residual=True, rngs=nnx.Rngs(0)))  # fmt: skip
    with pytest.raises(TypeError, match="flax.nnx LSTMCell.*got Linear"):
        interop.from_flax(nnx.Linear(I, H, rngs=nnx.Rngs(0)))
    with pytest.raises(TypeError, match="got Linear"):
        interop.to_flax(_gc_params("GRUCell"), nnx.Linear)
    with pytest.raises(TypeError, match="cannot tell which flax.nnx cell.*'kernel'"):
        interop.from_flax(nnx.state(nnx.Linear(I, H, rngs=nnx.Rngs(0))))
    with pytest.raises(ValueError, match=r"in_features=4"):
        interop.to_flax(_gc_params("LSTMCell"), nnx.LSTMCell(4, H, rngs=nnx.Rngs(0)))
    with pytest.raises(ValueError, match=r"params do not belong to this lstm\(8\)"):
        interop.to_flax(_gc_params("LSTMCell"), nnx.LSTMCell(I, 8, rngs=nnx.Rngs(0)))
    with pytest.raises(ValueError, match=r"params do not belong to this gru.*LSTMParams"):
        interop.to_flax(_gc_params("LSTMCell"), nnx.GRUCell)
    gru_state = nnx.state(nnx.GRUCell(I, H, rngs=nnx.Rngs(0)))
    with pytest.raises(ValueError, match=r"params hold no kernel for ii, if_.*flax.nnx.LSTMCell"):
        interop.from_flax(nnx.LSTMCell(I, H, rngs=nnx.Rngs(0)), gru_state)


def test_import_needs_neither_flax_nor_torch():
    code = (
        "import sys, gatedcells.interop; "
        "print(sorted(m for m in ('flax', 'torch') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
