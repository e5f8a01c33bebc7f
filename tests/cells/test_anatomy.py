"""Every family in one anatomy (DESIGN section 6): a factory's cell is a value of its flags,
so two calls with the same flags give equal, hashable cells; params pickled by older code
still load."""

import inspect
import pickle
from pathlib import Path

import jax
import numpy as np
import pytest
from fixtures import make_params_pickle

import gatedcells as gc
from gatedcells import cells

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


@pytest.mark.parametrize("name", sorted(cells.CELLS))
def test_same_flags_give_equal_cells(name):
    a, b = cells.make(name, 8), cells.make(name, 8)
    assert a == b and hash(a) == hash(b)
    assert a != cells.make(name, 9)


def test_convolutional_and_flagged_cells_are_values_too():
    pairs = [
        (lambda: gc.conv_lstm(4, (3, 3)), lambda: gc.conv_lstm(4, (3, 3), forget_bias=2.0)),
        (lambda: gc.conv_gru(4, (3,)), lambda: gc.conv_gru(4, (3,), reset_after=False)),
        (lambda: gc.lstm(4, fixed_gates={"o": 1.0}), lambda: gc.lstm(4, fixed_gates={"o": 0.5})),
        (lambda: gc.gru(4, layer_norm=True), lambda: gc.gru(4, layer_norm=True, chrono=5.0)),
    ]
    for make, other in pairs:
        assert make() == make() and hash(make()) == hash(make()) and make() != other()


def test_jit_with_the_cell_static_traces_once_across_factory_calls():
    traces = []

    def run(cell, params, x):
        traces.append(cell.name)
        return cell.step(params, cell.initial_carry(x.shape[:-1]), x)[1]

    step = jax.jit(run, static_argnums=0)
    params = gc.gru(4).init(jax.random.key(0), 3)
    for _ in range(2):
        step(gc.gru(4), params, np.ones((2, 3), np.float32))
    assert traces == ["gru(4)"]


def test_params_pickled_by_older_code_load_into_todays_types():
    """``tests/fixtures/params_main_264b4fd.pkl`` (``make_params_pickle.py``; main at 367b98d
    writes the same bytes): the variants' params load as :class:`gc.LSTMVariantParams`, the
    GRU's as :class:`gc.GRUParams` or :class:`gc.GRULayerNormParams`, with the same fields
    and values as today's ``init`` gives."""
    with open(FIXTURES / "params_main_264b4fd.pkl", "rb") as f:
        old = pickle.load(f)
    key = jax.random.key(0)
    today = make_params_pickle.cases()
    assert set(old) == set(today)
    for name, cell in today.items():
        new = cell.init(key, 2)
        assert type(old[name]) is type(new) and old[name]._fields == new._fields, name
        jax.tree.map(np.testing.assert_array_equal, old[name], jax.tree.map(np.asarray, new))
    assert type(old["vanilla"]) is gc.LSTMVariantParams
    # GRUParams held ln_x, ln_h (None without layer norm): a GRU with layer norm loads as
    # GRULayerNormParams, the others as GRUParams without the layer norm's fields
    assert type(old["gru_layer_norm"]) is gc.GRULayerNormParams
    assert (
        old["gru"]._fields == ("w_x", "w_h", "b", "b_hn") and old["gru_reset_before"].b_hn is None
    )


def test_variant_params_are_one_fixed_pytree_type():
    p = gc.lstm_variant(3, variant="nig").init(jax.random.key(0), 2)
    q = gc.lstm_variant(3, variant="fgr").init(jax.random.key(0), 2)
    assert type(p) is type(q) is gc.LSTMVariantParams
    assert p._fields == ("w_x", "w_h", "b", "p_f", "p_o") and len(p) == 5
    assert p._replace(p_f=p.p_o).p_f is p.p_o and list(p._asdict()) == list(p._fields)
    paths = [jax.tree_util.keystr(k) for k, _ in jax.tree_util.tree_flatten_with_path(p)[0]]
    assert paths == [".w_x", ".w_h", ".b", ".p_f", ".p_o"]
    with pytest.raises(AttributeError, match="p_i"):
        _ = p.p_i
    with pytest.raises(TypeError, match="no field 'p_x'"):
        gc.LSTMVariantParams(p_x=p.b)


@pytest.mark.parametrize("name", [n for n in sorted(cells.CELLS) if cells.CELLS[n](6).scan])
def test_sequence_drivers_take_the_keywords_scanfn_declares(name):
    """Each ``Cell.scan`` takes exactly :class:`gatedcells.ScanFn`'s keywords (no ``**``)."""
    declared = inspect.signature(gc.ScanFn.__call__).parameters
    want = {n for n, p in declared.items() if p.kind is p.KEYWORD_ONLY}
    scan = cells.CELLS[name](6).scan
    got = inspect.signature(getattr(scan, "fn", scan)).parameters
    assert {n for n, p in got.items() if p.kind is p.KEYWORD_ONLY} == want
    assert not any(p.kind is p.VAR_KEYWORD for p in got.values())
