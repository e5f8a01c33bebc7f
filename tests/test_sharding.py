"""Logical axis names for every params field (``gatedcells.sharding``), and an sLSTM/mLSTM
model sharded FSDP x TP on 8 virtual CPU devices against one (a subprocess:
``sharding_run.py``; the device count is fixed when jax starts)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import pytest
from jax.sharding import PartitionSpec as P

import gatedcells as gc
from gatedcells import sharding
from gatedcells.cells import CELLS

RUN = Path(__file__).with_name("sharding_run.py")
ROOT = Path(__file__).resolve().parents[1]
HEADS = {"slstm", "mlstm", "rg_lru", "lstm", "gru", "gru_reset_before"}


@pytest.mark.parametrize("name", sorted(CELLS))
def test_every_array_field_has_a_name_per_axis(name):
    cell = CELLS[name](8, **({"num_heads": 2} if name in HEADS else {}))
    params = jax.eval_shape(lambda: cell.init(jax.random.key(0), 4))
    names = gc.logical_axes(params)
    for field, value in params._asdict().items():
        spec = getattr(names, field)
        if value is None:
            assert spec is None
            continue
        assert isinstance(spec, P) and len(spec) == value.ndim, (field, spec, value.shape)
        assert all(isinstance(n, str) for n in spec), (field, spec)


def test_head_wise_fields_name_their_heads():
    slstm = gc.slstm(8, num_heads=2).init(jax.random.key(0), 4)
    rg = gc.rg_lru(8, num_heads=2, input_proj=True).init(jax.random.key(0), 4)
    assert gc.logical_axes(slstm).w_h == P("heads", "head_in", "head_gates")
    assert gc.logical_axes(rg).w_a[0] == "heads" and gc.logical_axes(rg).w_x == P("embed", "hidden")
    for cell in (gc.lstm(8, num_heads=2), gc.gru(8, num_heads=4, reset_after=False)):
        names = gc.logical_axes(cell.init(jax.random.key(0), 4))
        assert names.w_h == P("heads", "head_in", "head_gates") and names.w_x == P("embed", "gates")
    assert gc.logical_axes(gc.lstm(8, num_heads=1).init(jax.random.key(0), 4)).w_h == P(
        "hidden", "gates"
    )


def test_wrappers_and_convolutions():
    stacked = gc.stack(gc.gru(4), gc.learned_initial_carry(gc.lstm(4)))
    names = gc.logical_axes(stacked.init(jax.random.key(0), 3))
    assert names[0].w_h == P("hidden", "gates") and names[1].carry.c == P("hidden")
    conv = gc.conv_gru(4, kernel_size=(3, 3)).init(jax.random.key(0), 2)
    assert gc.logical_axes(conv).w_x == P(None, None, "embed", "gates")


def test_rules_map_names_to_mesh_axes():
    mesh = jax.make_mesh((1, 1), ("fsdp", "tp"))
    params = gc.lstm(8, proj_size=4).init(jax.random.key(0), 6)
    # axis by axis, the first rule whose mesh axis is still free wins: in w_h [P, 4H] "proj"
    # takes "tp", so "gates" falls back to "fsdp"; a name without a rule is replicated
    rules = [("embed", "fsdp"), ("proj", "tp"), ("gates", "tp"), ("gates", "fsdp")]
    specs = jax.tree.map(lambda s: s.spec, gc.param_shardings(params, mesh, rules))
    assert specs.w_x == P("fsdp", "tp") and specs.w_h == P("tp", "fsdp")
    assert specs.w_r == P(None, "tp") and specs.b == P("tp")
    assert gc.param_shardings(params, mesh, {"gates": ("fsdp", "tp")}).b.spec == P(("fsdp", "tp"))


def test_errors_name_the_argument():
    mesh = jax.make_mesh((1,), ("tp",))
    params = gc.gru(4).init(jax.random.key(0), 3)
    with pytest.raises(ValueError, match="not an axis of the mesh"):
        gc.param_shardings(params, mesh, [("gates", "model")])
    with pytest.raises(TypeError, match="mesh must be a jax.sharding.Mesh"):
        gc.param_shardings(params, "tp", [])
    with pytest.raises(ValueError, match="no logical axis names for field 'w_new'"):
        gc.logical_axes({"w_new": jax.numpy.ones(3)})
    with pytest.raises(ValueError, match="outside a named params field"):
        gc.logical_axes([jax.numpy.ones(3)])
    assert "w_x" in sharding.AXES


@pytest.mark.slow  # a fresh interpreter
def test_fsdp_by_tp_on_8_devices_equals_one_device():
    """sLSTM, mLSTM and RG-LRU layers, params sharded by the rules on a 2 x 4 mesh (the
    batch over "fsdp"): the loss and every gradient equal one device's."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    flags = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
    env = dict(os.environ, XLA_FLAGS=flags, PYTHONPATH=path)
    done = subprocess.run(
        [sys.executable, str(RUN)], capture_output=True, text=True, timeout=600, env=env
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["devices"] == 8
    assert out["diff"] < 1e-5
    assert out["sharded_fields"] == out["fields"]  # every gradient comes back sharded
    assert out["w_h_fraction_per_device"] == 0.25  # the sLSTM's heads over 4 devices
