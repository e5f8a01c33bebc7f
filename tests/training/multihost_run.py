"""One process of a two-process ``fit`` (``jax.distributed`` on this machine, CPU devices
talking over gloo), or the one-device reference, for ``tests/training/test_multihost.py``:

    python tests/training/multihost_run.py <process id> <coordinator port>   # 2 processes
    python tests/training/multihost_run.py single                            # 1 device

Prints the trained params and the losses as one JSON line.
"""

import json
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax

import gatedcells as gc
from gatedcells.training import fit


def start(argv: list[str]) -> None:
    """Join the two-process job (before any other use of jax, as JAX documents); importing
    this file (pytest's doctest collection does) starts nothing."""
    if argv[1] != "single":
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(
            coordinator_address=f"localhost:{argv[2]}", num_processes=2, process_id=int(argv[1])
        )


def main() -> None:
    start(sys.argv)
    cell = gc.lstm(8)
    params = cell.init(jax.random.key(0), 2)

    def loss_fn(params, batch, key):
        xs, target = batch
        _, ys = gc.unroll(cell, params, xs)
        return jnp.mean((ys[:, -1, :1] - target) ** 2), {}

    def sample(key):  # the global batch, built inside the compiled step: each host its shard
        xs = jax.random.normal(key, (8, 5, 2))
        return xs, 0.5 * xs[:, 0, :1]

    mesh = None if sys.argv[1] == "single" else "auto"
    params, history = fit(loss_fn, params, optax.adam(1e-2), sample, steps=20,
                          key=jax.random.key(1), log_every=10, progress=False, mesh=mesh)  # fmt: skip
    print(json.dumps({
        "processes": jax.process_count(), "devices": jax.device_count(),
        "local_devices": jax.local_device_count(),
        "params": [np.asarray(leaf).ravel().tolist() for leaf in jax.tree.leaves(params)],
        "loss": np.asarray(history.train["loss"]).tolist(),
    }))  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
