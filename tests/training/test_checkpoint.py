"""Checkpoint and resume: a run killed at any moment (in the middle of a save included) goes
on and ends bit-identical to a run never stopped; checkpoints of another run are refused."""

import os
import random
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gatedcells as gc
from gatedcells import tasks, training

# A tiny run with a save every 3 steps: 10 saves, 3 evaluations.
TRAIN = [
    "train", "--task", "adding", "--cell", "lstm", "--hidden", "4", "--length", "6",
    "--steps", "30", "--eval-every", "10", "--batch-size", "8", "--seed", "3",
    "--checkpoint-every", "3", "--quiet",
]  # fmt: skip


def command(out, *extra):
    return [sys.executable, "-m", "gatedcells.cli", *TRAIN, "--out", str(out), *extra]


def entries(folder):
    try:
        return os.listdir(folder)
    except FileNotFoundError:
        return []


def kill_in_save(out, rng, *extra):
    """Start a run and SIGKILL it while its k-th save (k random) is being written."""
    k, seen = rng.randint(1, 4), set()
    proc = subprocess.Popen(command(out, *extra), stdout=subprocess.DEVNULL)
    while proc.poll() is None:
        writing = {n for n in entries(out / "checkpoints") if "tmp" in n}
        if writing - seen:
            seen |= writing
            if len(seen) >= k:
                time.sleep(rng.uniform(0, 0.02))
                proc.send_signal(signal.SIGKILL)
                break
        time.sleep(0.0005)
    proc.wait()
    return proc.returncode, seen


def kill_at_random(out, rng, *extra):
    """Start a run and SIGKILL it after a random delay (in the imports, compilation,
    training or a save: wherever it is)."""
    proc = subprocess.Popen(command(out, *extra), stdout=subprocess.DEVNULL)
    try:
        proc.wait(timeout=rng.uniform(0.5, 8.0))
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    return proc.returncode


@pytest.mark.slow  # a fresh interpreter
def test_killed_at_any_moment_resumes_bit_identical(tmp_path):
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    reference = subprocess.Popen(command(tmp_path / "ref"), stdout=subprocess.DEVNULL)
    out = tmp_path / "run"
    code, seen = kill_in_save(out, rng)
    assert code == -signal.SIGKILL and seen, f"seed {seed}: not killed in a save"
    assert any("tmp" in n for n in entries(out / "checkpoints"))  # a half-written save
    kill_at_random(out, rng, "--resume")
    done = subprocess.run(command(out, "--resume"), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert reference.wait(timeout=300) == 0
    ref = tmp_path / "ref"
    assert (out / "history.json").read_bytes() == (ref / "history.json").read_bytes(), seed
    with np.load(out / "params.npz") as a, np.load(ref / "params.npz") as b:
        assert sorted(a.files) == sorted(b.files)
        for name in a.files:
            assert a[name].tobytes() == b[name].tobytes(), (seed, name)
    assert not any("tmp" in n for n in entries(out / "checkpoints"))
    assert sorted(entries(out / "checkpoints")) == ["27", "30"]


def test_command_refuses_another_configuration(tmp_path, capsys):
    from gatedcells import cli

    out = tmp_path / "run"
    argv = [*TRAIN, "--steps", "6", "--out", str(out)]
    assert cli.main(argv) == 0
    assert cli.main(argv) == 2  # would overwrite the run
    assert "pass --resume" in capsys.readouterr().err
    other = [*argv, "--resume"]
    other[other.index("lstm")] = "gru"
    assert cli.main(other) == 2
    err = capsys.readouterr().err
    assert "belongs to another run" in err and "cell='lstm' there, 'gru' here" in err
    bigger = [*argv, "--resume"]
    bigger[bigger.index("--hidden") + 1] = "5"
    assert cli.main(bigger) == 2
    assert "hidden=4 there, 5 here" in capsys.readouterr().err


class Crash(Exception):
    pass


def batches(stop=None):
    """Deterministic batches of the adding problem; raises at batch ``stop`` (a crash)."""
    task = tasks.adding(5)
    for k in range(1000):
        if k == stop:
            raise Crash
        yield task.sample(jax.random.key(k), 4)


def run_fit(folder, data, steps=14, **kwargs):
    model = training.task_model(gc.gru(3), tasks.adding(5))
    loss = training.task_loss(model, tasks.adding(5))
    kwargs = dict(checkpoint_dir=folder, checkpoint_every=4, eval_every=5, log_every=3) | kwargs
    return training.fit(
        loss, model.init(jax.random.key(0)), optax.adam(1e-2), data, steps=steps,
        key=jax.random.key(1), progress=False,
        eval_fn=lambda p: {"norm": jnp.sum(jnp.square(p["cell"].w_h))}, **kwargs,
    )  # fmt: skip


def test_fit_resumes_after_a_crash(tmp_path):
    """In process, with an iterable of batches: a crash at step 10, then resume."""
    ref_params, ref = run_fit(tmp_path / "ref", batches())
    with pytest.raises(Crash):
        run_fit(tmp_path / "run", batches(stop=10))
    assert sorted(entries(tmp_path / "run")) == ["4", "8"]
    params, history = run_fit(tmp_path / "run", batches(), resume=True)
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(ref_params), strict=True):
        assert np.asarray(a).tobytes() == np.asarray(b).tobytes()
    for k in ref.train:
        np.testing.assert_array_equal(history.train[k], ref.train[k])
        assert history.train[k].dtype == ref.train[k].dtype
    np.testing.assert_array_equal(history.eval_step, [0, 5, 10, 14])
    np.testing.assert_array_equal(history.eval["norm"], ref.eval["norm"])
    assert history.seconds.shape == (4,) and np.all(np.diff(history.seconds) >= 0)
    # resuming a finished run returns it as it is
    again, history2 = run_fit(tmp_path / "run", batches(stop=0), resume=True)
    np.testing.assert_array_equal(again["readout"]["w"], params["readout"]["w"])
    np.testing.assert_array_equal(history2.train["loss"], history.train["loss"])


def test_fit_refuses_checkpoints_of_another_model(tmp_path):
    run_fit(tmp_path, batches(), steps=4)
    with pytest.raises(ValueError, match="pass resume=True"):
        run_fit(tmp_path, batches(), steps=8)
    model = training.task_model(gc.gru(5), tasks.adding(5))  # other sizes
    loss = training.task_loss(model, tasks.adding(5))
    with pytest.raises(
        ValueError,
        match=r"belongs to another model: state.params\[.cell.\].w_x has shape \(2, 9\) and dtype float32 "
        r"there, shape \(2, 15\)",
    ):
        training.fit(loss, model.init(jax.random.key(0)), optax.adam(1e-2), batches(), steps=8,
                     key=jax.random.key(1), progress=False, checkpoint_dir=tmp_path,
                     resume=True)  # fmt: skip
    with pytest.raises(ValueError, match=r"config=None there|another run"):
        run_fit(tmp_path, batches(), steps=8, resume=True, config={"lr": 1e-2})
    with pytest.raises(ValueError, match="is at step 4, past steps=2"):
        run_fit(tmp_path, batches(), steps=2, resume=True)
    with pytest.raises(ValueError, match="resume=True needs a checkpoint_dir"):
        run_fit(None, batches(), resume=True)
    with pytest.raises(ValueError, match="checkpoint_every must be a positive int"):
        run_fit(tmp_path / "x", batches(), checkpoint_every=0)


def test_fit_closes_the_checkpoint_manager_on_every_path(tmp_path, monkeypatch):
    """Errors included: an unclosed orbax manager may print a traceback at exit."""
    from gatedcells.training import _checkpoint

    opened, closed, make = [], [], _checkpoint.manager

    def tracked(directory):
        mngr = make(directory)
        opened.append(mngr)
        original = mngr.close

        def close():
            closed.append(mngr)
            original()

        monkeypatch.setattr(mngr, "close", close)
        return mngr

    def loss_fn(params, batch, key):
        return jnp.sum((params - batch) ** 2), {}

    def quick(data, steps=4, **kwargs):
        return training.fit(
            loss_fn,
            jnp.zeros(2),
            optax.sgd(0.1),
            data,
            steps=steps,
            key=jax.random.key(0),
            progress=False,
            checkpoint_dir=tmp_path,
            **kwargs,
        )

    monkeypatch.setattr(_checkpoint, "manager", tracked)

    quick(lambda key: jnp.ones(2))
    with pytest.raises(ValueError, match="pass resume=True"):
        quick(lambda key: jnp.ones(2), steps=8)
    with pytest.raises(ValueError, match="another run"):
        quick(lambda key: jnp.ones(2), steps=8, resume=True, config={"lr": 1})
    with pytest.raises(ValueError, match="past steps=2"):
        quick(lambda key: jnp.ones(2), steps=2, resume=True)
    with pytest.raises(ValueError, match="data ran out"):
        quick([jnp.ones(2)] * 5, steps=8, resume=True)
    assert len(opened) == 5 and closed == opened
