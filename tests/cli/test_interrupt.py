"""Ctrl-C in ``gatedcells train``: it says whether a checkpoint was saved (its step) and the
exact command that goes on from it, and that command does."""

import json
import shlex

from gatedcells import cli
from gatedcells.training import _checkpoint

TRAIN = [
    "train", "--task", "adding", "--cell", "lstm", "--hidden", "4", "--length", "6",
    "--steps", "12", "--eval-every", "6", "--batch-size", "8", "--seed", "3", "--quiet",
]  # fmt: skip
OPTIONS = "--task adding --cell lstm --hidden 4 --length 6 --steps 12 --batch-size 8"


def stopped(monkeypatch, saved=()):
    """``train_one`` that leaves checkpoints of the steps ``saved`` (and one half-written)
    and is stopped by Ctrl-C."""

    def train_one(*args, checkpoint_dir=None, **kwargs):
        for step in saved:
            (checkpoint_dir / str(step)).mkdir(parents=True)
        if checkpoint_dir is not None:
            (checkpoint_dir / "9.orbax-checkpoint-tmp-1").mkdir(parents=True)
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "train_one", train_one)


def interrupted(argv, capsys):
    assert cli.main(argv) == 130
    captured = capsys.readouterr()
    assert captured.out == ""
    message, command = captured.err.rstrip("\n").split("\n")
    assert command.startswith("  gatedcells train ")
    return message, command.strip()


def test_ctrl_c_after_a_checkpoint_says_its_step_and_how_to_resume(tmp_path, monkeypatch, capsys):
    stopped(monkeypatch, saved=(3, 6))
    out = tmp_path / "my run"
    argv = [*TRAIN, "--checkpoint-every", "3", "--out", str(out)]
    message, command = interrupted(argv, capsys)
    assert message == (
        f"interrupted: the last checkpoint is step 6 of 12, in {out / 'checkpoints'}; "
        "go on from it with:"
    )
    quoted = shlex.quote(str(out))
    assert command == (
        f"gatedcells train {OPTIONS} --eval-every 6 --seed 3 --out {quoted} "
        "--checkpoint-every 3 --resume --quiet"
    )
    # the command is the same run, resumed: the options parse back to the same values
    again = cli.build_parser().parse_args(shlex.split(command)[1:])
    assert vars(again) == vars(cli.build_parser().parse_args(argv)) | {"resume": True}
    # --overwrite would delete the checkpoint: the command to go on has --resume instead
    message, command = interrupted([*argv, "--overwrite"], capsys)
    assert "step 6 of 12" in message and "--overwrite" not in command
    assert command.endswith("--checkpoint-every 3 --resume --quiet")


def test_ctrl_c_before_any_checkpoint_says_nothing_was_saved(tmp_path, monkeypatch, capsys):
    stopped(monkeypatch)
    out = tmp_path / "run"
    message, command = interrupted([*TRAIN, "--checkpoint-every", "3", "--out", str(out)], capsys)
    assert (
        message == "interrupted before the first checkpoint: nothing was saved; start again with:"
    )
    assert command.endswith(f"--out {out} --checkpoint-every 3 --resume --quiet")
    # without checkpoints: nothing to resume from; the command saves next time
    message, command = interrupted([*TRAIN, "--out", str(tmp_path / "plain")], capsys)
    assert message == (
        "interrupted: nothing was saved (without --checkpoint-every there is nothing to "
        "--resume from); start again, saving every 6 steps, with:"
    )
    assert command == (
        f"gatedcells train {OPTIONS} --eval-every 6 --seed 3 --out {tmp_path / 'plain'} "
        "--checkpoint-every 6 --quiet"
    )


def test_the_printed_command_goes_on_from_the_checkpoint(tmp_path, monkeypatch, capsys):
    """A real run stopped by Ctrl-C after its second save; the printed command finishes it."""
    save, calls = _checkpoint.save, []

    def save_then_stop(*args, **kwargs):
        save(*args, **kwargs)
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(_checkpoint, "save", save_then_stop)
    out = tmp_path / "run"
    message, command = interrupted([*TRAIN, "--checkpoint-every", "3", "--out", str(out)], capsys)
    assert "the last checkpoint is step 6 of 12" in message
    assert not (out / "history.json").exists()
    monkeypatch.setattr(_checkpoint, "save", save)
    assert cli.main(shlex.split(command)[1:]) == 0
    record = json.loads((out / "history.json").read_text())
    assert len(record["loss"]) == 12 and record["eval_step"] == [0, 6, 12]
