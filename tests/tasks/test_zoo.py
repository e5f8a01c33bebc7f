"""gatedcells.zoo: every variant by name, and the comparison table."""

import pytest

import gatedcells as gc
from gatedcells import tasks, zoo


def test_every_factory_and_greff_variant_is_in_the_zoo():
    cells = zoo.variants(4)
    factories = {c.name.split("(")[0] for c in cells.values()}
    assert factories == {
        "simple_rnn", "lstm", "lstm_variant", "gru", "mgu", "mut1", "mut2", "mut3", "indrnn",
        "min_gru", "min_lstm", "slstm", "mlstm", "rg_lru", "lru", "selective_ssm",
        "delta_net", "gated_delta_net",
    }  # fmt: skip
    assert {f"lstm_{name}" for name in gc.GREFF_VARIANTS} <= set(cells)
    assert (
        cells["lstm_proj"].output_size == 2
        and cells["lstm_np"].name == "lstm_variant(4, variant='np')"
    )


def test_table_marks_the_best_and_the_baseline():
    task = tasks.adding(5)
    rows = [zoo.Row("gru", 100, 0.01, 0.01, 3.2), zoo.Row("simple_rnn", 40, 0.15, 0.15, 2.0)]
    lines = zoo.table(rows, task).splitlines()
    assert lines[0] == "adding(T=5): mse (chance level 0.1667)"
    assert lines[4] == "| gru | 100 | **0.01** | 0.01 | 3 |"
    assert lines[5] == "| simple_rnn | 40 | 0.15 | 0.15 | 2 |"


def test_compare_refuses_unknown_names():
    with pytest.raises(ValueError, match="unknown variants"):
        zoo.compare(tasks.adding(5), names=["lstm", "gruu"])


def test_compare_trains_the_named_variants_with_the_same_budget():
    import math

    rows = zoo.compare(tasks.adding(5), hidden_size=4, steps=4, eval_every=4,
                       names=["gru", "min_gru"])  # fmt: skip
    assert [r.name for r in rows] == ["gru", "min_gru"]
    assert rows[0].params > rows[1].params > 0
    assert all(math.isfinite(r.metric) and r.metric == r.loss and r.seconds > 0 for r in rows)


def test_help_is_plain_text(capsys):
    with pytest.raises(SystemExit) as exit_:
        zoo.main(["--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert "--steps" in text and "gatedcells.cells.CELLS" in text
    for markup in (":func:", ":mod:", ":data:", "``"):  # Sphinx's, for the docs site only
        assert markup not in text, markup


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--steps", "-5"], "argument --steps: expected a positive integer, got '-5'"),
        (["--steps", "0"], "argument --steps: expected a positive integer, got '0'"),
        (["--hidden", "0"], "argument --hidden: expected a positive integer, got '0'"),
        (["--batch-size", "x"], "argument --batch-size: expected a positive integer, got 'x'"),
        (["--length", "-1"], "argument --length: expected a positive integer, got '-1'"),
        (["--lr", "-0.1"], "argument --lr: expected a positive number, got '-0.1'"),
        (["--task", "smnist", "--length", "50"], "the smnist task has a fixed length of 784 or 28, got length=50"),
        (["--task", "digits", "--length", "50"], "the digits task has a fixed length of 8, got length=50"),
    ],
)  # fmt: skip
def test_bad_numbers_are_one_line_before_any_training(argv, message, capsys, monkeypatch):
    monkeypatch.setattr(zoo, "compare", lambda *a, **k: pytest.fail("trained"))
    with pytest.raises(SystemExit) as exit_:
        zoo.main(argv)
    assert exit_.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        f"error: python -m gatedcells.zoo: {message} (see python -m gatedcells.zoo --help)\n"
    )


def test_fixed_length_tasks_take_their_own_length(monkeypatch, capsys):
    """Without --length a fixed-length task keeps its own (50 is the others' default)."""
    seen = []
    monkeypatch.setattr(zoo, "compare", lambda task, **k: seen.append(task.length) or [])
    monkeypatch.setattr(zoo, "table", lambda *a, **k: "")
    for argv in (["--task", "digits"], ["--task", "adding"]):
        assert zoo.main([*argv, "--only", "gru"]) == 0
    assert seen == [8, 50]
