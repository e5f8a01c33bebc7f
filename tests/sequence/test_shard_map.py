"""Every registry cell, and the sequence options and layers, inside ``jax.shard_map``
(``check_vma=True``) over 4 virtual CPU devices, against one device (issue #24). A
subprocess: the device count is fixed when jax starts."""

from pathlib import Path

import pytest
from registry import NAMES

# one worker runs the module: its subprocess fixture once, no worker waiting on another
pytestmark = pytest.mark.xdist_group("test_shard_map")

RUN = Path(__file__).with_name("shard_map_run.py")
# bfloat16 matmuls; the mLSTM's exponential gates (gate_init normal(0.5), gradients up to
# 1e2) round differently at another batch shape on ONE device too: one device over the
# whole batch against the sum over its four quarters differs by 6.5e-5 (mlstm) and 1.0e-5
# (mlstm_recurrent) of the largest gradient, as measured.
TOLERANCE = {"lstm_bf16_compute": 2e-2, "mlstm": 1e-4, "mlstm_recurrent": 1e-4}


@pytest.fixture(scope="module")
def result(run_script):
    return run_script(RUN, devices=4)


def test_runs_over_4_devices(result):
    assert result["devices"] == 4


def test_every_case_traces_and_runs_under_check_vma(result):
    assert result["errors"] == {}
    assert set(NAMES) <= set(result["diffs"])
    assert {"bidirectional_lstm_gru", "lstm_remat", "linen_rnn", "nnx_rnn"} <= set(result["diffs"])


def test_values_and_gradients_equal_one_devices(result):
    """Forward values, the carry, and the gradients of a psum-ed loss w.r.t. replicated
    params and split inputs, relative to the largest value; sums over the batch run in
    another order."""
    far = {name: d for name, d in result["diffs"].items() if not d < TOLERANCE.get(name, 1e-5)}
    assert far == {}
