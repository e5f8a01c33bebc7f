"""``gatedcells sample``: text from a tiny character LM trained by ``gatedcells train --task
text`` (seconds), from its params.npz or its checkpoint alone; greedy draws equal the
argmax of one long call of the model; one-line errors for a folder that holds no such run."""

import json
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gatedcells import cli, tasks, training
from gatedcells.cli import _sample

TEXT = "the cat sat on the mat. " * 40


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sample")
    path = folder / "cats.txt"
    path.write_text(TEXT)
    argv = ["train", "--task", "text", "--path", str(path), "--cell", "gru", "--hidden", "16",
            "--length", "12", "--steps", "60", "--batch-size", "16", "--lr", "0.03",
            "--checkpoint-every", "60", "--out", str(folder / "run"), "--quiet"]  # fmt: skip
    assert cli.main(argv) == 0
    return folder / "run", path


def sample(capsys, *argv):
    assert cli.main(["sample", *argv]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    return captured.out.removesuffix("\n")


def test_sample_is_seeded_and_starts_with_the_prompt(run, capsys):
    folder, _ = run
    text = sample(capsys, "--run", str(folder), "--prompt", "the ", "--length", "40")
    assert text.startswith("the ") and len(text) == 44 and set(text) <= set(TEXT)
    again = sample(capsys, "--run", str(folder), "--prompt", "the ", "--length", "40")
    other = sample(capsys, "--run", str(folder), "--prompt", "the ", "--length", "40",
                   "--seed", "1", "--temperature", "2")  # fmt: skip
    assert again == text and other != text


def test_greedy_draws_are_the_argmax_of_one_long_call(run, capsys):
    """top-k 1: each drawn character is the argmax of the model run over everything before
    it in one call (the prompt fed through the step, the carry kept across the draws)."""
    folder, path = run
    text = sample(capsys, "--run", str(folder), "--prompt", "the c", "--length", "30",
                  "--top-k", "1", "--temperature", "0.5")  # fmt: skip
    cell, params, vocab = _sample.load_run(str(folder))
    model = training.task_model(cell, tasks.text(path, seq_len=12))
    ids = jnp.asarray([vocab.index(ch) for ch in text])
    logits = model.apply(params, jax.nn.one_hot(ids[None, :-1], len(vocab)))[0]
    np.testing.assert_array_equal(np.argmax(logits, -1)[4:], ids[5:])
    assert "the cat sat on the mat" in text  # 60 steps learn the sentence


def test_a_stopped_run_samples_from_its_checkpoint(run, capsys, tmp_path):
    folder, _ = run
    argv = ("--prompt", "on ", "--length", "25")
    want = sample(capsys, "--run", str(folder), *argv)
    shutil.copytree(folder / "checkpoints", tmp_path / "stopped" / "checkpoints")
    assert sample(capsys, "--run", str(tmp_path / "stopped"), *argv) == want


def test_help(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["sample", "--help"])
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--temperature" in text and "--top-k K" in text and "gatedcells sample --run" in text
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert "gatedcells sample --run" in capsys.readouterr().out


@pytest.mark.parametrize(
    "case, argv, message",
    [
        ("missing", [], "no such folder"),
        ("empty", [], "holds no run of gatedcells train"),
        ("adding", [], "is a run of --task adding, not a character LM"),
        ("run", ["--prompt", "dog"], "characters not in the run's vocabulary: 'dg'"),
        ("run", ["--prompt", ""], "--prompt: is empty"),
        ("run", ["--top-k", "-1"], "--top-k: must be 0 (all) or positive"),
        ("run", ["--temperature", "0"], "--temperature"),
        ("moved", [], "cannot rebuild its model"),
    ],
)
def test_not_a_char_lm_run_one_line(run, case, argv, message, tmp_path, capsys):
    folder, path = run
    target = tmp_path / case
    if case == "empty":
        target.mkdir()
    elif case == "adding":
        target.mkdir()
        config = {"task": "adding", "cell": "lstm", "hidden": 4}
        (target / "history.json").write_text(json.dumps({"config": config}))
        (target / "params.npz").write_bytes(b"")
    elif case == "run":
        target = folder
    elif case == "moved":  # its text file is gone: the vocabulary with it
        shutil.copytree(folder, target, ignore=shutil.ignore_patterns("checkpoints"))
        record = json.loads((target / "history.json").read_text())
        record["config"]["path"] = str(tmp_path / "gone.txt")
        (target / "history.json").write_text(json.dumps(record))
    assert cli.main(["sample", "--run", str(target), *argv]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert captured.out == ""
