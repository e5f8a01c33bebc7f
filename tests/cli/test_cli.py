"""The ``gatedcells`` command: train end to end in a subprocess, the quick demo, bad input."""

import functools
import json
import subprocess
import sys

import jax
import pytest

import gatedcells as gc
from gatedcells import cli, tasks, training

PNG = b"\x89PNG\r\n\x1a\n"
KEY = jax.random.key(0)


@pytest.mark.slow  # a fresh interpreter
def test_train_end_to_end(tmp_path):
    out = tmp_path / "run"
    argv = [
        "train", "--task", "adding", "--cell", "lstm", "--hidden", "4", "--length", "6",
        "--steps", "12", "--eval-every", "6", "--batch-size", "8", "--lr", "0.01",
        "--forget-bias", "2", "--seed", "3", "--out", str(out), "--quiet",
    ]  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "gatedcells.cli", *argv], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert "lstm(4) on adding(T=6): mse" in done.stdout
    record = json.loads((out / "history.json").read_text())
    assert len(record["loss"]) == 12 and record["eval_step"] == [0, 6, 12]
    assert record["config"]["forget_bias"] == 2.0 and record["cell"] == "lstm(4)"
    assert record["final"] == record["eval_mse"][-1] and record["baseline"] == pytest.approx(1 / 6)
    assert (out / "curves.png").read_bytes()[:8] == PNG
    like = training.task_model(gc.lstm(4), tasks.adding(6)).init(jax.random.key(0))
    params = training.load_params(out / "params.npz", like)
    assert float(params["cell"].b[4]) != 0.0  # the forget block, trained from 2.0
    assert gc.count_params(params) == record["params"]


@pytest.mark.slow
def test_demo_quick(tmp_path, capsys, monkeypatch):
    from matplotlib.figure import Figure

    figures, savefig = [], Figure.savefig

    def keep(figure, *args, **kwargs):
        figures.append(figure)
        savefig(figure, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", keep)
    (tmp_path / "history.json").write_text("{}")  # a train run's results do not stop the demo
    assert cli.main(["demo", "--quick", "--out", str(tmp_path), "--quiet"]) == 0
    printed = capsys.readouterr().out
    rows = [line for line in printed.splitlines() if line.startswith("| ") and "(" in line]
    assert [r.split("|")[1].strip() for r in rows] == ["simple_rnn(16)", "lstm(8)", "gru(9)"]
    assert all("0.1667" in r for r in rows)
    assert (tmp_path / "demo.png").read_bytes()[:8] == PNG
    summary = json.loads((tmp_path / "demo.json").read_text())
    assert summary["config"]["length"] == cli.QUICK.length
    assert {len(r["loss"]) for r in summary["runs"].values()} == {cli.QUICK.steps}
    # the plot: a legend on each panel; the held-out panel draws where "solved" begins
    (figure,) = figures
    runs = ["simple_rnn(16), 321 params", "lstm(8), 361 params", "gru(9), 343 params"]
    for ax in figure.axes:
        assert [t.get_text() for t in ax.get_legend().get_texts()][:3] == runs
    solved = [line for line in figure.axes[1].lines if line.get_label().startswith("solved")]
    assert [list(line.get_ydata()) for line in solved] == [pytest.approx([1 / 60, 1 / 60])]


def test_demo_models_are_of_similar_size():
    cells = [cli.make_cell(name, hidden) for name, hidden in cli.DEMO.hidden]
    shapes = [jax.eval_shape(functools.partial(c.init, KEY, 2)) for c in cells]
    counts = [gc.count_params(s) for s in shapes]
    assert max(counts) < 1.1 * min(counts)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--task", "adding", "--cell", "lsmt", "--out", "x"], "invalid choice: 'lsmt'"),
        (["train", "--task", "sum", "--cell", "lstm", "--out", "x"], "argument --task"),
        (["train", "--task", "adding", "--cell", "gru"], "required: --out"),
        (["train", "--task", "adding", "--cell", "gru", "--steps", "0", "--out", "x"], "--steps"),
        (["train", "--task", "adding", "--cell", "gru", "--lr", "fast", "--out", "x"], "--lr"),
        (["train", "--task", "adding", "--cell", "gru", "--clip", "-1", "--out", "x"], "--clip"),
        (["train", "--task", "digits", "--cell", "gru", "--length", "9", "--out", "x"], "fixed length of 8"),
        (["train", "--task", "order", "--cell", "gru", "--length", "5", "--out", "x"], "length must be"),
        (["dance"], "invalid choice: 'dance'"),
        ([], "required: COMMAND"),
    ],
)  # fmt: skip
def test_bad_arguments_one_line(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and lines[0].startswith("error: ")
    assert captured.out == "" and not (tmp_path / "x").exists()


def test_help(capsys):
    for argv in (["--help"], ["train", "--help"], ["demo", "--help"]):
        with pytest.raises(SystemExit) as exit_:
            cli.main(argv)
        assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert "gatedcells train --task adding --cell lstm" in text
    assert "--forget-bias" in text and "lstm1997" in text and "--quick" in text


def test_clip_zero_turns_clipping_off(capsys):
    argv = ["train", "--task", "adding", "--cell", "gru", "--out", "x"]
    assert cli.build_parser().parse_args([*argv, "--clip", "0"]).clip == 0.0
    assert cli.build_parser().parse_args(argv).clip == 1.0
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    assert "0 for no clipping" in " ".join(capsys.readouterr().out.split())
