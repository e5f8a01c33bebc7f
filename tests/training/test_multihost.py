"""``fit`` over a mesh of two processes (``jax.distributed.initialize`` with a local
coordinator, 2 CPU devices each), as JAX documents multi-host runs, against one device."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

# one worker runs the module: its subprocess fixture once, no worker waiting on another
pytestmark = [pytest.mark.xdist_group("test_multihost"), pytest.mark.slow]  # fresh interpreters

RUN = Path(__file__).with_name("multihost_run.py")
ROOT = Path(__file__).resolve().parents[2]


def launch(*args, devices):
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={devices}"
    env = dict(os.environ, XLA_FLAGS=flags, PYTHONPATH=path)
    return subprocess.Popen(
        [sys.executable, str(RUN), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=env,
    )  # fmt: skip


def result(process):
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def runs():
    with socket.socket() as s:  # a free port for the coordinator
        s.bind(("localhost", 0))
        port = str(s.getsockname()[1])
    hosts = [launch(str(i), port, devices=2) for i in range(2)]
    single = launch("single", devices=1)
    return [result(p) for p in hosts], result(single)


def test_two_processes_see_four_devices(runs):
    hosts, _ = runs
    assert [(h["processes"], h["devices"], h["local_devices"]) for h in hosts] == [(2, 4, 2)] * 2


def test_both_processes_end_with_the_same_params_as_one_device(runs):
    """20 Adam steps of an LSTM, the batch split over the 4 devices of the 2 processes:
    the hosts agree exactly, and with one device up to float rounding."""
    hosts, single = runs
    first, second = hosts
    assert first["params"] == second["params"] and first["loss"] == second["loss"]
    for got, want in zip(first["params"], single["params"], strict=True):
        np.testing.assert_allclose(got, want, atol=1e-5)
    np.testing.assert_allclose(first["loss"], single["loss"], atol=1e-5)
