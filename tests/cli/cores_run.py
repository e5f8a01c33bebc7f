"""Runs ``gatedcells train`` as the command does (``gatedcells.cli.main``, first thing in a
fresh process), then ``fit_task`` over the devices it chose and on one, and prints what
``tests/cli/test_cores.py`` checks, as one JSON line:

    python tests/cli/cores_run.py                            # a device per core (the default)
    GATEDCELLS_CPU_DEVICES=1 python tests/cli/cores_run.py   # JAX's one CPU device
    GATEDCELLS_CPU_DEVICES=2 python tests/cli/cores_run.py   # two, the batch split over them
"""

import json
import os
import sys
import tempfile
import warnings

from gatedcells.cli import main as command  # noqa: I001 - nothing may start JAX before it


def run() -> None:
    with tempfile.TemporaryDirectory() as out:
        argv = ["train", "--task", "adding", "--cell", "lstm", "--hidden", "4", "--length", "8",
                "--steps", "2", "--batch-size", "16", "--out", out, "--quiet"]  # fmt: skip
        status = command(argv)

    import jax
    import jax.numpy as jnp
    import optax

    import gatedcells as gc
    from gatedcells import tasks, training

    def fit(mesh, batch_size=16):
        params, history = training.fit_task(
            gc.lstm(4), tasks.adding(8), optax.adam(1e-2), steps=10, key=jax.random.key(0),
            batch_size=batch_size, eval_every=10, progress=False, mesh=mesh,
        )  # fmt: skip
        return params, history.train["loss"]

    def diff(a, b):
        pairs = zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
        return max(float(jnp.max(jnp.abs(x - y))) for x, y in pairs)

    (one, loss_one), (many, loss_many) = fit(None), fit("auto")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        odd, _ = fit("auto", batch_size=15)
    print(json.dumps({
        "status": status,
        "cpu_count": os.cpu_count(),
        "devices": jax.device_count(),
        "params_devices": len(jax.tree.leaves(many)[0].sharding.device_set),
        "params_max_abs_diff": diff(one, many),
        "loss_max_abs_diff": float(jnp.max(jnp.abs(loss_one - loss_many))),
        "odd_batch_warnings": [str(w.message) for w in caught],
        "odd_batch_devices": len(jax.tree.leaves(odd)[0].sharding.device_set),
    }))  # fmt: skip


if __name__ == "__main__":
    sys.exit(run())
