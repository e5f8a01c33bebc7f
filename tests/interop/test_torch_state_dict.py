"""``interop.from_torch_state_dict`` reads the architecture from the keys and refuses, in one
line, a state dict it would otherwise convert wrongly (issue #25): ``num_layers``,
``bidirectional`` and ``proj_size`` come from the keys, a wrong ``mode`` or shape is named,
and no tensor is dropped without a word.

The conversions are checked against the committed golden outputs of PyTorch (so without
torch too) and, where torch is installed, against a live torch.
"""

import re
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gatedcells as gc
from gatedcells import interop

sys.path.insert(0, str(Path(__file__).parents[1] / "fixtures"))
import make_torch_golden as golden  # noqa: E402

GOLDEN = golden.load()
ATOL = 1e-5
# sequence cases without an initial state: their outputs need only the weights and inputs
INFERRED = ["lstm_2layer_bidir", "gru_bidir", "rnn_2layer", "lstm_proj_2layer_bidir"]


def state_dict(name):
    return {k[3:]: v for k, v in GOLDEN[name].items() if k.startswith("sd.")}


def refusal(sd, error=ValueError, **kwargs):
    """The message of the error ``from_torch_state_dict(sd, **kwargs)`` raises: one line."""
    with pytest.raises(error) as info:
        interop.from_torch_state_dict(sd, **kwargs)
    message = str(info.value)
    assert "\n" not in message and "broadcast" not in message, message
    return message


def max_error(name, data):
    """Convert case ``name``'s weights given only its mode; compare with PyTorch's outputs."""
    mode, layers, bidi = golden.CASES[name][:3]
    sd = {k[3:]: v for k, v in data.items() if k.startswith("sd.")}
    cell, params = interop.from_torch_state_dict(sd, mode=mode)
    proj = golden.PROJ_SIZE.get(name, 0)
    like = interop._torch_cell(mode, golden.H, num_layers=layers, bidirectional=bidi,
                               proj_size=proj)  # fmt: skip
    like.check_params(params)  # the stacked, bidirectional, projected structure
    lengths = jnp.asarray(data["lengths"]) if "lengths" in data else None
    _, ys = gc.unroll(cell, params, jnp.asarray(data["x"]), lengths=lengths)
    assert ys.shape == data["y"].shape
    return float(np.abs(ys - data["y"]).max())


# --- (1) num_layers, bidirectional, proj_size read from the keys ----------------------------


@pytest.mark.parametrize("name", INFERRED)
def test_architecture_inferred_from_the_keys(name):
    assert max_error(name, GOLDEN[name]) < ATOL


@pytest.mark.parametrize("name", INFERRED)
def test_architecture_inferred_live_torch(name):
    pytest.importorskip("torch")
    assert max_error(name, golden.run_case(name)) < ATOL


def test_two_layer_bidirectional_lstm_of_the_issue():
    """nn.LSTM(5, 20, num_layers=2, bidirectional=True): all 16 tensors land in the params."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    module = torch.nn.LSTM(5, 20, num_layers=2, bidirectional=True, batch_first=True)
    cell, params = interop.from_torch_state_dict(module.state_dict(), mode="LSTM")
    assert len(module.state_dict()) == 16 and len(jax.tree.leaves(params)) == 12
    x = np.random.default_rng(0).normal(size=(3, 6, 5)).astype(np.float32)
    with torch.no_grad():
        y_torch = module(torch.from_numpy(x))[0].numpy()
    _, ys = gc.unroll(cell, params, x)
    assert ys.shape == (3, 6, 40)
    np.testing.assert_allclose(ys, y_torch, atol=ATOL)


def test_structure_inferred_from_numpy_arrays():
    """Without torch: shapes alone (2 layers, bidirectional, proj_size=3) give the structure."""
    H, P, I = 6, 3, 4
    sd = {}
    for k in range(2):
        for sfx in (f"_l{k}", f"_l{k}_reverse"):
            sd |= {
                f"weight_ih{sfx}": np.zeros((4 * H, I if k == 0 else 2 * P), np.float32),
                f"weight_hh{sfx}": np.zeros((4 * H, P), np.float32),
                f"bias_ih{sfx}": np.zeros(4 * H, np.float32),
                f"bias_hh{sfx}": np.zeros(4 * H, np.float32),
                f"weight_hr{sfx}": np.zeros((P, H), np.float32),
            }
    cell, params = interop.from_torch_state_dict(sd, mode="LSTM")
    assert len(params) == 2 and all(len(layer) == 2 for layer in params)
    assert all(isinstance(p, gc.LSTMPParams) for layer in params for p in layer)
    assert params[1][1].w_x.shape == (2 * P, 4 * H) and params[1][1].w_r.shape == (H, P)
    _, ys = gc.unroll(cell, params, jnp.ones((2, 5, I)))
    assert ys.shape == (2, 5, 2 * P)


def test_cells_and_explicit_matching_options_still_convert():
    sd = state_dict("lstm_2layer_bidir")
    _, explicit = interop.from_torch_state_dict(sd, mode="LSTM", num_layers=2, bidirectional=True)
    _, inferred = interop.from_torch_state_dict(sd, mode="LSTM")
    jax.tree.map(np.testing.assert_array_equal, explicit, inferred)
    cell, params = interop.from_torch_state_dict(state_dict("gru_cell"), mode="GRU")
    assert isinstance(params, gc.GRUParams) and params.w_h.shape == (golden.H, 3 * golden.H)


# --- (2) no tensor dropped without a word --------------------------------------------------


def test_unused_keys_are_named():
    sd = state_dict("lstm_2layer")
    del sd["weight_ih_l1"], sd["weight_hh_l1"]
    assert refusal(sd, mode="LSTM") == (
        "state_dict holds keys this mode='LSTM', num_layers=1 model does not use: "
        "'bias_hh_l1', 'bias_ih_l1'"
    )
    extra = state_dict("gru_bidir") | {"fc.weight": np.ones((2, 14)), "fc.bias": np.ones(2)}
    assert refusal(extra, mode="GRU") == (
        "state_dict holds keys this mode='GRU', num_layers=1, bidirectional=True model does "
        "not use: 'fc.bias', 'fc.weight'"
    )
    cell = state_dict("lstm_cell") | {"weight_ih_l0": np.ones((28, 5))}
    assert refusal(cell, mode="LSTM") == (
        "state_dict holds keys this mode='LSTM' cell does not use: 'weight_ih_l0'"
    )


# --- (3) the mode against the shapes -------------------------------------------------------

WRONG_MODES = [
    ("gru", "LSTM", "weight_ih_l0 has 21 rows, which is 3 x 7 (a GRU?), but mode='LSTM' needs "
     "4 x H = 28 (H = 7 from weight_hh_l0)"),
    ("lstm", "GRU", "weight_ih_l0 has 28 rows, which is 4 x 7 (an LSTM?), but mode='GRU' needs "
     "3 x H = 21 (H = 7 from weight_hh_l0)"),
    ("lstm_2layer_bidir", "RNN_TANH", "weight_ih_l0 has 28 rows, which is 4 x 7 (an LSTM?), "
     "but mode='RNN_TANH' needs 1 x H = 7 (H = 7 from weight_hh_l0)"),
    ("rnn_relu", "GRU", "weight_ih_l0 has 7 rows, which is 1 x 7 (an RNN?), but mode='GRU' "
     "needs 3 x H = 21 (H = 7 from weight_hh_l0)"),
    ("gru_cell", "LSTM", "weight_ih has 21 rows, which is 3 x 7 (a GRU?), but mode='LSTM' "
     "needs 4 x H = 28 (H = 7 from weight_hh)"),
    ("lstm_proj", "GRU", "weight_ih_l0 has 28 rows, which is 4 x 7 (an LSTM?), but mode='GRU' "
     "needs 3 x H = 21 (H = 7 from weight_hr_l0)"),
]  # fmt: skip


@pytest.mark.parametrize("name, mode, message", WRONG_MODES, ids=[w[0] for w in WRONG_MODES])
def test_wrong_mode_is_named(name, mode, message):
    assert refusal(state_dict(name), mode=mode) == f"state_dict's {message}"


def test_wrong_shapes_are_named():
    sd = state_dict("lstm_2layer_bidir")
    assert refusal(sd | {"bias_ih_l1_reverse": np.ones(27)}, mode="LSTM") == (
        "state_dict's bias_ih_l1_reverse has shape (27,), but a mode='LSTM' layer with "
        "H = 7 needs (28,)"
    )
    # layer 1 reads both directions of layer 0: 2 x 7 inputs
    assert refusal(sd | {"weight_ih_l1": np.ones((28, 7))}, mode="LSTM") == (
        "state_dict's weight_ih_l1 has shape (28, 7), but a mode='LSTM' layer with H = 7 "
        "needs (28, 14)"
    )
    assert refusal(sd | {"weight_hh_l0": np.ones(28)}, mode="LSTM") == (
        "state_dict's weight_hh_l0 must be 2-D, got shape (28,)"
    )


# --- (4) explicit options that contradict the keys -----------------------------------------


def test_explicit_options_contradicting_the_keys():
    sd = state_dict("lstm_2layer_bidir")
    assert refusal(sd, mode="LSTM", num_layers=1) == (
        "num_layers=1 was given, but state_dict's keys say num_layers=2 "
        "(weight_ih_l0 to weight_ih_l1)"
    )
    assert refusal(sd, mode="LSTM", bidirectional=False) == (
        "bidirectional=False was given, but state_dict's keys say bidirectional=True "
        "(they include 'weight_ih_l0_reverse')"
    )
    message = refusal(state_dict("lstm_2layer"), mode="LSTM", bidirectional=True)
    assert message == (
        "bidirectional=True was given, but state_dict's keys say bidirectional=False "
        "(no 'weight_ih_l0_reverse')"
    )
    assert refusal(sd, mode="LSTM", num_layers=3) == (
        "state_dict has no 'weight_ih_l2', 'weight_hh_l2', 'weight_ih_l2_reverse', "
        "'weight_hh_l2_reverse': num_layers=3 was given, but state_dict's keys say "
        "num_layers=2 (weight_ih_l0 to weight_ih_l1)"
    )
    assert refusal(state_dict("gru_cell"), mode="GRU", num_layers=2) == (
        "num_layers=2 was given, but state_dict's keys say num_layers=1 (a cell's: weight_ih)"
    )


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(num_layers=0), ValueError, "num_layers must be a positive int, got 0"),
        (dict(num_layers=2.0), ValueError, "num_layers must be a positive int, got 2.0"),
        (dict(bidirectional="yes"), TypeError, "bidirectional must be a bool, got 'yes'"),
    ],
)
def test_options_of_the_wrong_kind(kwargs, error, message):
    sd = state_dict("lstm")
    assert refusal(sd, error, mode="LSTM", **kwargs) == message


def test_layer_missing_between_the_keys():
    sd = state_dict("rnn_2layer")
    sd = {re.sub("_l1$", "_l2", k): v for k, v in sd.items()}
    assert refusal(sd, mode="RNN_TANH").startswith(
        "state_dict has no 'weight_ih_l1', 'weight_hh_l1' (it holds ['bias_hh_l0', "
    )
