"""Careless use that used to lose work or give a wrong answer silently (issue: no lost runs,
no silent overwrites, no NaN from padding): each case with the one-line error a user sees."""

import contextlib
import importlib
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import checkify

import gatedcells as gc
from gatedcells.training._history import Recorder


def test_params_too_large_for_memory_are_refused_before_allocation():
    with pytest.raises(
        ValueError, match=r"the params of lstm\(1000000000\) would take [\d,.]+ GiB"
    ):
        gc.lstm(10**9).init(jax.random.key(0), 3)


def test_check_lengths_eager():
    assert gc.check_lengths(jnp.array([0, 5]), 5).shape == (2,)
    with pytest.raises(
        ValueError, match=r"lengths must lie in \[0, T\] = \[0, 5\], got values from -1 to 5"
    ):
        gc.check_lengths(jnp.array([-1, 5]), 5)
    with pytest.raises(TypeError, match="seq_lengths must have an integer dtype"):
        gc.check_lengths(jnp.array([1.0]), 5, "seq_lengths")


def test_check_lengths_under_jit_reports_through_checkify():
    cell = gc.gru(3)
    params = cell.init(jax.random.key(0), 2)
    xs = jnp.ones((2, 5, 2))

    @jax.jit
    def run(params, xs, lengths):
        return gc.unroll(cell, params, xs, lengths=gc.check_lengths(lengths, xs.shape[1]))[1]

    err, _ = checkify.checkify(run)(params, xs, jnp.array([5, 2]))
    assert err.get() is None
    err, _ = checkify.checkify(run)(params, xs, jnp.array([9, 2]))
    assert "lengths must lie in [0, T] = [0, 5], got values from 2 to 9" in err.get()


def test_lengths_out_of_range_under_jit_clamp_as_documented():
    cell = gc.gru(3)
    params = cell.init(jax.random.key(0), 2)
    xs = jax.random.normal(jax.random.key(1), (2, 5, 2))
    run = jax.jit(lambda lengths: gc.unroll(cell, params, xs, lengths=lengths))
    got = run(jnp.array([9, -3]))
    want = gc.unroll(cell, params, xs, lengths=jnp.array([5, 0]))
    jax.tree.map(lambda a, b: pytest.approx(b) == a, got, want)
    assert bool(jnp.allclose(got[1], want[1])) and bool(jnp.allclose(got[0], want[0]))


def test_flax_rnn_of_a_bare_cell_says_to_wrap_it():
    nn = pytest.importorskip("flax.linen")
    with pytest.raises(AttributeError, match=r"wrap it, flax.linen.RNN\(gatedcells.linen.Cell"):
        nn.RNN(gc.lstm(4)).init(jax.random.key(0), jnp.ones((2, 3, 5)))


# --------------------------------------------------------------------------------------
# The commands under careless input, run as the user runs them: one line on stderr, exit
# status 2, nothing printed, nothing written, before any training.

TRAIN = [
    "train", "--task", "adding", "--cell", "gru", "--hidden", "4", "--length", "6",
    "--steps", "6", "--eval-every", "3", "--batch-size", "8", "--quiet",
]  # fmt: skip
DEMO = ["demo", "--quick", "--steps", "2", "--quiet"]
RESULTS = ("history.json", "params.npz", "curves.png", "timing.json")


def command(*argv, module="gatedcells.cli", cwd=None):
    """``python -m module *argv`` run in this process (its ``main``, with stdout, stderr and
    the working folder redirected): the exit status and output the user sees, without a
    fresh interpreter per case. :func:`test_a_real_process_sees_the_same` runs one case as
    a subprocess."""
    out, err, here = io.StringIO(), io.StringIO(), os.getcwd()
    try:
        os.chdir(cwd or here)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                status = importlib.import_module(module).main(list(argv))
            except SystemExit as exit:  # argparse's own errors
                status = exit.code
    finally:
        os.chdir(here)
    return subprocess.CompletedProcess(argv, status or 0, out.getvalue(), err.getvalue())


def test_a_real_process_sees_the_same(tmp_path):
    argv = [*TRAIN, "--clip", "-1", "--out", "run"]
    done = subprocess.run([sys.executable, "-m", "gatedcells.cli", *argv], capture_output=True,
                          text=True, timeout=600, cwd=tmp_path)  # fmt: skip
    assert refused(done, "--clip") == refused(command(*argv, cwd=tmp_path), "--clip")
    assert list(tmp_path.iterdir()) == []


def refused(done, *words):
    """``done`` exited with status 2 and one line on stderr holding each of ``words``."""
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr[-2000:]
    assert lines[0].startswith("error: ") and done.stdout == "", (lines, done.stdout)
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def snapshot(folder: Path) -> dict:
    """Every path under ``folder`` with its bytes (``None`` for a folder)."""
    return {
        str(p.relative_to(folder)): None if p.is_dir() else p.read_bytes()
        for p in sorted(folder.rglob("*"))
    }


def can_write(folder: Path) -> bool:
    try:
        (folder / "probe").write_bytes(b"")
    except OSError:
        return False
    (folder / "probe").unlink()
    return True


@pytest.fixture
def read_only(tmp_path, request):
    """An empty folder no one can write into: permission bits, and for root (whom they do
    not stop) the immutable attribute; skipped where neither works."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    request.addfinalizer(lambda: folder.chmod(0o755))
    if can_write(folder) and shutil.which("chattr"):
        if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode == 0:
            request.addfinalizer(lambda: subprocess.run(["chattr", "-i", str(folder)]))
    if can_write(folder):
        pytest.skip("no way to make a folder read-only here (root without chattr +i)")
    return folder


def bad_out(case: str, tmp_path: Path) -> tuple[str, str]:
    """``(--out, a word of the message)`` for each way an output folder can be unusable."""
    (tmp_path / "a-file").write_text("not a folder")
    for system in ("/proc", "/sys"):
        if case == system and not Path(system).is_dir():
            pytest.skip(f"no {system} here")
    return {
        "file": ("a-file", "is a file, not a folder"),
        "under a file": ("a-file/run", "lies under a-file, a file"),
        "/proc": ("/proc/gatedcells-run", "cannot create --out /proc/gatedcells-run"),
        "/sys": ("/sys/gatedcells-run", "cannot create --out /sys/gatedcells-run"),
        "empty": ("", "--out is empty"),
    }[case]


@pytest.mark.parametrize(
    "argv, case",
    [(TRAIN, c) for c in ("file", "under a file", "/proc", "/sys", "empty")]
    + [(DEMO, c) for c in ("under a file", "empty")],
    ids=lambda v: v[0] if isinstance(v, list) else v,
)
def test_unusable_out_is_refused_before_training(argv, case, tmp_path):
    out, message = bad_out(case, tmp_path)
    before = snapshot(tmp_path)
    refused(command(*argv, "--out", out, cwd=tmp_path), f"gatedcells {argv[0]}: ", message)
    assert snapshot(tmp_path) == before
    assert not Path(out).is_absolute() or not Path(out).exists()


@pytest.mark.parametrize("argv", [TRAIN, DEMO], ids=["train", "demo"])
def test_read_only_out_is_refused_before_training(argv, read_only, tmp_path):
    for out in (read_only, read_only / "run"):
        refused(command(*argv, "--out", str(out), cwd=tmp_path), "cannot ", str(out))
        assert list(read_only.iterdir()) == []


@pytest.fixture
def finished(tmp_path):
    """A folder holding a run's results (stand-ins: only their names matter)."""
    out = tmp_path / "run"
    out.mkdir()
    for name in RESULTS:
        (out / name).write_text(f"the old {name}")
    return out


def test_out_with_results_is_refused_without_resume_or_overwrite(finished, tmp_path):
    before = snapshot(tmp_path)
    line = refused(command(*TRAIN, "--out", str(finished)), "holds a run's results")
    assert "(history.json, params.npz, curves.png, timing.json)" in line
    assert "pass --overwrite to replace them" in line and "--resume" not in line
    refused(command(*TRAIN, "--out", str(finished), "--resume"), "no checkpoints to resume")
    assert snapshot(tmp_path) == before
    (finished / "checkpoints" / "3").mkdir(parents=True)
    before = snapshot(tmp_path)
    refused(command(*TRAIN, "--out", str(finished)), "timing.json, checkpoints/", "pass --resume")
    refused(command(*TRAIN, "--out", str(finished), "--resume", "--overwrite"), "not allowed")
    assert snapshot(tmp_path) == before


def test_overwrite_replaces_the_run(finished):
    (finished / "checkpoints" / "3").mkdir(parents=True)
    done = command(*TRAIN, "--out", str(finished), "--overwrite", "--checkpoint-every", "3")
    assert done.returncode == 0, done.stderr
    assert json.loads((finished / "history.json").read_text())["eval_step"] == [0, 3, 6]
    assert sorted(p.name for p in (finished / "checkpoints").iterdir()) == ["3", "6"]
    assert "overwrite" not in json.loads((finished / "history.json").read_text())["config"]


@pytest.mark.parametrize("clip", ["-1", "-0.5", "nan"])
def test_negative_clip_is_refused(clip, tmp_path):
    line = refused(command(*TRAIN, "--clip", clip, "--out", "run", cwd=tmp_path), "--clip")
    assert "a positive number, or 0 for no clipping" in line
    assert list(tmp_path.iterdir()) == []


def test_demo_too_short_is_one_line(tmp_path):
    refused(command(*DEMO, "--length", "1", "--out", "demo", cwd=tmp_path), ">= 2, got 1")
    assert list(tmp_path.iterdir()) == []


def test_zoo_unknown_name_lists_the_known_ones():
    line = refused(command("--only", "gruu", module="gatedcells.zoo"), "unknown variant 'gruu'")
    assert "did you mean 'gru'?" in line
    assert "known: simple_rnn, lstm, lstm1997, lstm_vanilla" in line and "min_lstm" in line


# --------------------------------------------------------------------------------------
# The progress bar


def test_progress_bar_shows_each_number_once_and_marks_old_evaluations():
    evals = iter([{"loss": 0.5, "mse": 0.5}, {"loss": 0.25, "mse": 0.25}])
    recorder = Recorder(lambda params: next(evals))
    recorder.evaluate(0, None)  # before training: not shown while training
    recorder.train({"loss": np.array([2.0, 1.0]), "mse": np.array([2.0, 1.0]), "grad_norm": [3]})
    assert recorder.postfix() == {"loss": "1.5"}
    recorder.evaluate(2, None)
    assert recorder.postfix() == {"loss": "1.5", "eval_loss": "0.25"}
    recorder.train({"loss": np.array([0.5]), "mse": np.array([0.5]), "grad_norm": [1]})
    assert recorder.postfix() == {"loss": "0.5", "eval_loss@2": "0.25"}
    recorder.train({"loss": np.array([1.0]), "accuracy": np.array([0.75])})
    assert recorder.postfix() == {"loss": "1", "accuracy": "0.75", "eval_loss@2": "0.25"}
