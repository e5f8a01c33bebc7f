"""Data-parallel ``fit`` over 4 virtual CPU devices (a subprocess: the device count is fixed
when jax starts) against one device."""

import re
from pathlib import Path

import pytest

import gatedcells

# one worker runs the module: its subprocess fixture once, no worker waiting on another
pytestmark = pytest.mark.xdist_group("test_multidevice")

RUN = Path(__file__).with_name("multidevice_run.py")


@pytest.fixture(scope="module")
def result(run_script):
    return run_script(RUN, devices=4, timeout=600)


def test_batch_is_split_over_4_devices_params_replicated(result):
    assert result["devices"] == 4
    assert result["batch_shards"] == 4 and "P('data'," in result["many_layout"]
    assert result["params_devices"] == 4


def test_same_results_as_one_device_up_to_float_rounding(result):
    """20 Adam steps: sums over the batch run in another order. Measured: 1.2e-7."""
    assert result["params_max_abs_diff"] < 1e-5 * max(1.0, result["params_max_abs"])
    assert result["loss_max_abs_diff"] < 1e-5
    assert result["iterable_max_abs_diff"] < 1e-5


def test_sharded_run_resumes_bit_identical(result):
    assert result["resumed_bit_identical"]


def test_batch_the_devices_do_not_divide(result):
    """``mesh="auto"`` trains on one device and says so; a mesh of your own refuses."""
    assert (
        "a batch of 34 does not split over 4 devices; training on one"
        in result["uneven_batch_warning"]
    )
    assert result["uneven_max_abs_diff"] == 0.0
    assert "a batch of 34" in result["uneven_batch_error"]
    assert "does not split over 4 devices" in result["uneven_batch_error"]


@pytest.mark.parametrize("name", ["lstm", "gru", "slstm", "peepholes"])
def test_a_split_batch_exchanges_nothing_inside_the_loops(result, name):
    """The fused gradient of a batch split over 4 devices equals one device's, and XLA
    places no collective inside its loops: the gradients of params the step reads (the
    GRU's ``b_hn``, peepholes) are summed per row in the loop and over rows after it, not
    exchanged at every step."""
    assert result["split_grad_max_rel_diff"][name] < 1e-6
    assert result["split_loop_collectives"][name] == []


def test_library_never_sets_xla_flags_or_threads():
    """Device counts and threads are the user's: no module of the library writes the
    environment, and only ``gc.use_cpu_cores`` asks for a CPU device count (through
    ``jax.config``, when the user has not chosen one)."""
    root = Path(gatedcells.__file__).parent
    for path in root.rglob("*.py"):
        text = path.read_text()
        assert not re.search(r"environ\[[^]]*\]\s*=|environ\.setdefault|putenv", text), path
        if path.name != "_cores.py":
            assert "jax_num_cpu_devices" not in text, path
