"""Sequence parallelism: the linear recurrences with time sharded over 8 virtual CPU devices,
against one device (issue #24). The devices are counted when jax starts: the comparisons run
in a subprocess (``time_shards_run.py``); the argument checks run here, on one device."""

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest

import gatedcells as gc

# one worker runs the module: its subprocess fixture once, no worker waiting on another
pytestmark = pytest.mark.xdist_group("test_time_shards")

RUN = Path(__file__).with_name("time_shards_run.py")
ROOT = Path(__file__).resolve().parents[2]
# Relative to each array's largest value. The sequential path runs each block's steps as
# one device does (given the state it receives): float32 rounding, 3e-7 measured at
# T = 65,536. The associative and chunked paths group a block's steps into other trees
# than one device's, as a length does: 3.5e-6 measured (their own error against float64 is
# of that order).
TOLERANCE = 1e-6
TREES = 1e-5


def run(*flags):
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    flags8 = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
    env = dict(os.environ, XLA_FLAGS=flags8, PYTHONPATH=path)
    done = subprocess.run(
        [sys.executable, str(RUN), *flags], capture_output=True, text=True, timeout=900, env=env
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def far(diffs):
    return {
        name: d
        for name, d in diffs.items()
        if not d < (TREES if "associative" in name or "chunked" in name else TOLERANCE)
    }


@pytest.fixture(scope="module")
def result():
    return run()


@pytest.mark.slow  # a fresh interpreter
def test_runs_over_8_devices(result):
    assert result["devices"] == 8


@pytest.mark.slow  # a fresh interpreter
def test_linear_recurrence_at_65536_steps_equals_one_device(result):
    """Values, final state and gradients (log_a, b, h0), resets, lengths and a drawn h0,
    forwards and backwards, and complex decays."""
    assert {"sequential_65536", "sequential_65536_reverse"} <= set(result["linear"])
    assert far(result["linear"]) == {}


@pytest.mark.slow  # a fresh interpreter
def test_the_registry_linear_cells_equal_their_unroll(result):
    assert len(result["cells"]) == 5
    assert far(result["cells"]) == {}


@pytest.mark.slow  # a fresh interpreter
def test_memory_per_device_is_a_fraction_of_one_devices(result):
    """The compiled gradient's buffers: 21.1 MB on one device, 3.2 MB on each of 8."""
    for memory in (result["memory"], result["memory_reverse"]):
        assert memory["each_of_many"] < memory["one"] / 5


@pytest.mark.slow  # a fresh interpreter
def test_cells_with_no_linear_recurrence_are_refused_in_one_line(result):
    for name, message in result["refused"].items():
        assert message is not None and "no sequence-parallel form" in message, name
        assert "\n" not in message


@pytest.mark.slow
def test_every_path_and_combinator_equals_one_device():
    """The associative and chunked paths, stacks, a bidirectional layer, the S6's fused
    paths, a 2 x 4 mesh splitting the batch too."""
    out = run("--all")
    assert len(out["cells"]) == 13 and len(out["linear"]) == 8
    assert far(out["linear"]) == {} and far(out["cells"]) == {}


def test_one_device_mesh_equals_unroll():
    mesh = jax.make_mesh((1,), ("t",))
    cell = gc.min_gru(4, method="sequential")
    params = cell.init(jax.random.key(0), 3)
    xs = jax.random.normal(jax.random.key(1), (2, 6, 3))
    lengths = jnp.array([6, 2])
    h, ys = gc.sharded_unroll(cell, params, xs, mesh=mesh, axis_name="t", lengths=lengths)
    h1, ys1 = gc.unroll(cell, params, xs, lengths=lengths)
    assert jnp.allclose(ys, ys1, atol=1e-6) and jnp.allclose(h, h1, atol=1e-6)


def test_argument_errors():
    mesh = jax.make_mesh((1,), ("t",))
    cell = gc.min_gru(4, method="sequential")
    params = cell.init(jax.random.key(0), 3)
    xs = jnp.ones((2, 6, 3))
    with pytest.raises(ValueError, match="not a mesh axis of an enclosing jax.shard_map"):
        gc.unroll(cell, params, xs, axis_name="t")
    with pytest.raises(ValueError, match="not a mesh axis"):
        gc.linear_recurrence(jnp.zeros((6, 4)), jnp.ones((6, 4)), axis_name="t")
    with pytest.raises(TypeError, match="axis_name must be a str"):
        gc.linear_recurrence(jnp.zeros((6, 4)), jnp.ones((6, 4)), axis_name=0)
    with pytest.raises(TypeError, match="mesh must be a jax.sharding.Mesh"):
        gc.sharded_unroll(cell, params, xs, mesh="t", axis_name="t")
    with pytest.raises(ValueError, match="axis_name must be one of the mesh's axes"):
        gc.sharded_unroll(cell, params, xs, mesh=mesh, axis_name="time")
    with pytest.raises(ValueError, match="batch_axis_name must be one of"):
        gc.sharded_unroll(cell, params, xs, mesh=mesh, axis_name="t", batch_axis_name="b")
    with pytest.raises(ValueError, match="batch_axis_name needs xs with a batch axis"):
        gc.sharded_unroll(cell, params, xs[0], mesh=mesh, axis_name="t", batch_axis_name="t")


def test_learned_initial_carry_is_refused_and_the_way_round_it_works():
    """A learned initial carry is refused in one line before any scan runs; its advice (the
    inner cell, the learned carry broadcast as ``carry``) gives ``unroll``'s result."""
    mesh = jax.make_mesh((1,), ("t",))
    inner = gc.min_gru(4, method="sequential")
    cell = gc.learned_initial_carry(inner, init=jax.nn.initializers.normal(1.0))
    params = cell.init(jax.random.key(0), 3)
    xs = jax.random.normal(jax.random.key(1), (2, 6, 3))
    with pytest.raises(ValueError, match=r"^cell learned_initial_carry\(min_gru\(4\)\) starts"):
        gc.sharded_unroll(cell, params, xs, mesh=mesh, axis_name="t")
    with pytest.raises(ValueError, match="learned initial carry"):
        stacked = gc.stack(inner, cell)
        gc.sharded_unroll(stacked, stacked.init(jax.random.key(0), 3), xs, mesh=mesh, axis_name="t")
    carry = jax.tree.map(lambda c: jnp.broadcast_to(c, (2, *c.shape)), params.carry)
    h, ys = gc.sharded_unroll(inner, params.cell, xs, carry, mesh=mesh, axis_name="t")
    learned, ys1 = gc.unroll(cell, params, xs)
    assert jnp.allclose(ys, ys1, atol=1e-6) and jnp.allclose(h, learned.carry, atol=1e-6)
