"""The command's CPU devices: one per core by default, ``N`` with
``GATEDCELLS_CPU_DEVICES=N``, JAX's one with ``1``; ``fit_task`` over them equals one
device. Subprocesses: the device count is fixed when jax starts."""

import os

import pytest

import gatedcells as gc
from gatedcells._cores import splits

# one worker runs the module: its subprocess fixtures once, no worker waiting on another
pytestmark = pytest.mark.xdist_group("test_cores")

RUN = os.path.join(os.path.dirname(__file__), "cores_run.py")


@pytest.fixture(scope="module")
def cores(run_script):
    return run_script(RUN, devices=None, timeout=600, env={"GATEDCELLS_CPU_DEVICES": "2"})


@pytest.fixture(scope="module")
def default(run_script):
    return run_script(RUN, devices=None, timeout=600)


@pytest.fixture(scope="module")
def opted_out(run_script):
    return run_script(RUN, devices=None, timeout=600, env={"GATEDCELLS_CPU_DEVICES": "1"})


def test_the_variable_asks_the_command_for_devices(cores):
    assert cores["status"] == 0
    assert cores["devices"] == 2


def test_by_default_the_command_uses_a_device_per_core(default):
    assert default["status"] == 0
    assert default["devices"] == default["cpu_count"]
    split = splits(16, default["devices"])  # on 2 cores: 8 rows each, split
    assert default["params_devices"] == (default["devices"] if split else 1)


def test_the_variable_set_to_1_keeps_one_device(opted_out):
    assert opted_out["status"] == 0 and opted_out["devices"] == 1
    assert opted_out["params_devices"] == 1 and opted_out["odd_batch_warnings"] == []


def test_fit_over_the_cores_equals_one_device(cores):
    """10 Adam steps, the batch split in two: sums over the batch in another order."""
    assert cores["params_devices"] == cores["devices"] >= 2
    assert cores["params_max_abs_diff"] < 1e-5 and cores["loss_max_abs_diff"] < 1e-5


def test_a_batch_the_cores_do_not_divide_runs_on_one_with_a_warning(cores):
    assert cores["odd_batch_devices"] == 1
    assert any("a batch of 15 does not split" in w for w in cores["odd_batch_warnings"])


def test_use_cpu_cores_after_jax_started_changes_nothing(monkeypatch):
    import jax

    assert jax.device_count() >= 1  # the backend has started
    monkeypatch.delenv("GATEDCELLS_CPU_DEVICES", raising=False)
    monkeypatch.setenv("XLA_FLAGS", "")
    assert gc.use_cpu_cores(2).startswith("left as it is: JAX has already started")
    monkeypatch.setenv("GATEDCELLS_CPU_DEVICES", "1")
    assert gc.use_cpu_cores() == "left as it is: GATEDCELLS_CPU_DEVICES=1 (one CPU device)"
    monkeypatch.setenv("GATEDCELLS_CPU_DEVICES", "two")
    with pytest.raises(ValueError, match="GATEDCELLS_CPU_DEVICES must be a positive integer"):
        gc.use_cpu_cores()
    monkeypatch.delenv("GATEDCELLS_CPU_DEVICES")
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
    assert "XLA_FLAGS sets" in gc.use_cpu_cores()
    with pytest.raises(ValueError, match="n must be a positive int"):
        gc.use_cpu_cores(0)
