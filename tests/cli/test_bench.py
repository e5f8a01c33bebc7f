"""The benchmark harness runs end to end on a tiny shape and reports every system it has."""

import json

import pytest

from gatedcells import bench


@pytest.fixture
def tiny(monkeypatch):
    monkeypatch.setitem(bench.SHAPES, "tiny", dict(B=2, T=5, I=3, H=4))


def test_run_and_report(tiny):
    systems = ["gatedcells", "flax OptimizedLSTMCell", "flax GRUCell", "flax SimpleCell"]
    results = bench.run(
        ["tiny"], bench.CELLS, systems, min_time=0.0, min_runs=2, log=lambda s: None
    )
    got = {(r.cell, r.system, r.mode) for r in results}
    for cell in bench.CELLS:
        for mode in ("fwd", "f+b"):
            assert (cell, "gatedcells", mode) in got
    assert ("lstm", "flax OptimizedLSTMCell", "f+b") in got
    assert ("lstm", "flax GRUCell", "fwd") not in got  # a peer without that cell is skipped
    assert all(r.median_ms > 0 and r.gflops > 0 for r in results)
    table = bench.markdown(results, peak=100.0)
    assert "### tiny: B=2, T=5, I=3, H=4" in table and "**1.00**" in table


def test_command_line(tiny, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(bench, "matmul_peak", lambda: 100.0)
    out = tmp_path / "r.json"
    code = bench.main(["--shapes", "tiny", "--cells", "simple_rnn", "--systems", "gatedcells",
                       "--min-time", "0", "--out", str(out)])  # fmt: skip
    assert code == 0
    payload = json.loads(out.read_text())
    assert payload["matmul_peak_gflops"] > 0 and payload["results"][0]["system"] == "gatedcells"
    assert "| simple_rnn | gatedcells |" in capsys.readouterr().out


def test_unknown_names_are_one_line_errors(capsys):
    with pytest.raises(SystemExit):
        bench.main(["--cells", "transformer"])
    assert "unknown cell 'transformer'" in capsys.readouterr().err


def test_the_gatedcells_command_dispatches_bench(tiny, monkeypatch, capsys):
    from gatedcells import cli

    monkeypatch.setattr(bench, "matmul_peak", lambda: 100.0)
    argv = ["bench", "--shapes", "tiny", "--cells", "lstm", "--systems", "gatedcells"]
    assert cli.main([*argv, "--min-time", "0"]) == 0
    assert "| lstm | gatedcells |" in capsys.readouterr().out


def test_gpu_only_peers_are_skipped_and_said_so_elsewhere(tiny, monkeypatch, capsys):
    import jax

    monkeypatch.setattr(bench, "matmul_peak", lambda: 100.0)
    have, missing = bench.available(["gatedcells", "jax cuDNN LSTM"])
    on_gpu = jax.default_backend() == "gpu"
    assert have == (["gatedcells", "jax cuDNN LSTM"] if on_gpu else ["gatedcells"])
    if not on_gpu:
        assert missing == ["jax cuDNN LSTM"]
        argv = ["--shapes", "tiny", "--cells", "lstm", "--systems", "gatedcells,jax cuDNN LSTM"]
        assert bench.main([*argv, "--min-time", "0"]) == 0
        assert "skipping jax cuDNN LSTM: needs a JAX GPU backend" in capsys.readouterr().err
