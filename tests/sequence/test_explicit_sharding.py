"""``gc.unroll`` and its gradients on inputs split over the batch of a mesh with ``Explicit``
axes (``jax.set_mesh``; the sharding is part of each array's type), against one device
(issue #24). A subprocess on 2 virtual CPU devices: the device count is fixed when jax
starts."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# one worker runs the module: its subprocess fixture once, no worker waiting on another
pytestmark = pytest.mark.xdist_group("test_explicit_sharding")

RUN = Path(__file__).with_name("explicit_sharding_run.py")
# Relative to the largest value or gradient: sums over the batch run in another order
# (measured: 1.1e-7 at most).
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def result(run_script):
    return run_script(RUN, devices=2)


def test_inputs_are_split_over_the_explicit_axis(result):
    assert result["devices"] == 2 and result["layout"] == "float32[4@b,5,3]"


def test_fused_gradient_autodiff_and_linear_paths_equal_one_device(result):
    """Failed on main: the zero initial carry (replicated) against the scan's batch-split
    output carry, the fused gradient's rows merging time with a split batch, the linear
    recurrence's broadcast coefficients, the chunked path's padding, the reset's carry."""
    assert result["errors"] == {}
    cases = {"lstm/auto/set_mesh", "lstm/autodiff/set_mesh", "lstm/auto/device_put"}
    assert cases | {"gru_heads/auto/set_mesh", "lru/auto/set_mesh"} <= set(result["diffs"])
    assert {k: d for k, d in result["diffs"].items() if not d < TOLERANCE} == {}


@pytest.mark.slow
def test_every_dense_registry_cell_equals_one_device():
    root = Path(__file__).resolve().parents[2]
    flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=2"
    env = dict(os.environ, XLA_FLAGS=flags, PYTHONPATH=str(root))
    done = subprocess.run([sys.executable, str(RUN), "--all"], capture_output=True, text=True,
                          timeout=900, env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["errors"] == {}
    # bfloat16 matmuls round as one device's at another batch split would
    tolerance = {"lstm_bf16_compute/auto/set_mesh": 2e-2}
    assert {k: d for k, d in out["diffs"].items() if not d < tolerance.get(k, 1e-4)} == {}
