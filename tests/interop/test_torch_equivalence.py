"""Equivalence with PyTorch's nn.RNN/LSTM/GRU and their cells, to 1e-5 in float32.

The committed golden outputs (tests/fixtures/torch_golden.npz) are checked everywhere; where
torch is installed the same comparisons also run against a live torch, and the converters
``from_torch``/``to_torch`` are checked on real modules.
"""

import importlib.util
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
HAS_TORCH = importlib.util.find_spec("torch") is not None
ATOL = 1e-5


def torch_state(carry, mode, layers, bidi):
    """Our final carry in PyTorch's ``h_n`` (and ``c_n``) layout ``[layers*dirs, B, H]``."""
    per_layer = [carry] if layers == 1 else list(carry)
    flat = [d for layer in per_layer for d in (layer if bidi else (layer,))]
    if mode == "LSTM":
        return np.stack([c.h for c in flat]), np.stack([c.c for c in flat])
    return np.stack(flat), None


def initial_carry(cell, data, mode, layers, bidi):
    if "h0" not in data:
        return None
    h0, c0 = data["h0"], data.get("c0")
    carries = [gc.LSTMCarry(c0[k], h0[k]) if mode == "LSTM" else h0[k] for k in range(len(h0))]
    if bidi:
        carries = [tuple(carries[2 * k : 2 * k + 2]) for k in range(layers)]
    return carries[0] if layers == 1 else tuple(carries)


def check_case(name, data):
    """Convert case ``name``'s weights, run gatedcells, compare with torch's outputs."""
    mode, layers, bidi, _, _, kind = golden.CASES[name]
    sd = {k[3:]: v for k, v in data.items() if k.startswith("sd.")}
    cell, params = interop.from_torch_state_dict(
        sd, mode=mode, num_layers=layers, bidirectional=bidi
    )
    x = jnp.asarray(data["x"])
    if kind == "cell":
        carry = gc.LSTMCarry(data["c0"], data["h0"]) if mode == "LSTM" else data["h0"]
        carry, _ = cell.step(params, carry, x)
        h, c = (carry.h, carry.c) if mode == "LSTM" else (carry, None)
        errs = [np.abs(h - data["h_n"]).max()]
        if c is not None:
            errs.append(np.abs(c - data["c_n"]).max())
        return max(errs)
    lengths = jnp.asarray(data["lengths"]) if "lengths" in data else None
    carry0 = initial_carry(cell, data, mode, layers, bidi)
    carry, ys = gc.unroll(cell, params, x, carry0, lengths=lengths)
    h_n, c_n = torch_state(carry, mode, layers, bidi)
    errs = [np.abs(ys - data["y"]).max(), np.abs(h_n - data["h_n"]).max()]
    if c_n is not None:
        errs.append(np.abs(c_n - data["c_n"]).max())
    if bidi and layers == 1:
        # the backward half of torch's bidirectional layer is our reverse=True unroll
        backward = interop._torch_cell(mode, golden.H)
        _, ys_back = gc.unroll(backward, params[1], x, lengths=lengths, reverse=True)
        errs.append(np.abs(ys_back - data["y"][..., golden.H :]).max())
    return max(errs)


@pytest.mark.parametrize("name", sorted(golden.CASES))
def test_golden(name):
    err = check_case(name, GOLDEN[name])
    assert err < ATOL, f"{name}: max abs difference {err:.2e}"


@pytest.mark.slow  # the fast tier checks the same cases against the golden fixtures
@pytest.mark.skipif(not HAS_TORCH, reason="torch not installed (golden fixtures still checked)")
@pytest.mark.parametrize("name", sorted(golden.CASES))
def test_live_torch(name):
    err = check_case(name, golden.run_case(name))
    assert err < ATOL, f"{name}: max abs difference {err:.2e}"


def test_golden_fixtures_match_live_torch():
    if not HAS_TORCH:
        pytest.skip("torch not installed")
    for name in ("lstm", "gru_packed", "lstm_2layer_bidir"):
        live = golden.run_case(name)
        for key, value in GOLDEN[name].items():
            np.testing.assert_allclose(live[key], value, atol=1e-6, err_msg=f"{name}/{key}")


@pytest.mark.skipif(not HAS_TORCH, reason="torch not installed")
@pytest.mark.parametrize("name", ["lstm_2layer_bidir", "gru_bidir", "rnn_relu", "gru_cell"])
def test_from_torch_module_and_round_trip(name):
    import torch

    module = golden.build_module(name)
    cell, params = interop.from_torch(module)
    assert check_case(name, golden.run_case(name, module)) < ATOL
    # fresh gatedcells params into the module: torch now computes what we compute
    new = cell.init(jax.random.key(3), golden.I)
    interop.to_torch(new, module)
    cell2, back = interop.from_torch(module)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-7), back, new)
    x = np.random.default_rng(0).normal(size=(2, 4, golden.I)).astype(np.float32)
    if isinstance(module, torch.nn.RNNBase):
        with torch.no_grad():
            y_torch = module(torch.from_numpy(x))[0].numpy()
        np.testing.assert_allclose(gc.unroll(cell, new, x)[1], y_torch, atol=ATOL)


@pytest.mark.skipif(not HAS_TORCH, reason="torch not installed")
def test_to_torch_refuses_other_architectures():
    import torch

    module = torch.nn.LSTM(golden.I, 8, num_layers=2)
    with pytest.raises(ValueError, match="stack of 2 layers"):
        interop.to_torch(gc.lstm(8).init(jax.random.key(0), golden.I), module)
    with pytest.raises(ValueError, match="params do not belong"):
        interop.to_torch(gc.lstm(7).init(jax.random.key(0), golden.I), torch.nn.LSTM(5, 8))
    no_bias = torch.nn.GRU(golden.I, 4, bias=False)
    with pytest.raises(ValueError, match="bias=False"):
        interop.to_torch(gc.gru(4).init(jax.random.key(0), golden.I), no_bias)
    with pytest.raises(TypeError, match="got Linear"):
        interop.from_torch(torch.nn.Linear(2, 2))
