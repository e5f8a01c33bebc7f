"""Trains the same model on one device and data-parallel on every device, and prints what
``tests/training/test_multidevice.py`` checks, as one JSON line. Run it with several devices, e.g.

    XLA_FLAGS=--xla_force_host_platform_device_count=4 python tests/training/multidevice_run.py
"""

import json
import sys
import tempfile
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import AxisType, Mesh

import gatedcells as gc
from gatedcells import tasks, training

COLLECTIVES = ("all-reduce", "all-gather", "reduce-scatter", "all-to-all", "collective-permute")


def split_gradients(cell) -> tuple[float, list[str]]:
    """A cell's gradient over a batch split on every device under ``jax.set_mesh`` (as
    ``fit`` runs it), against one device: the largest difference (relative to the largest
    gradient), and the collectives XLA placed inside a computation other than the entry
    one (a loop's body, run every step: a per-step exchange)."""
    params = cell.init(jax.random.key(0), 6)
    xs = jax.random.normal(jax.random.key(1), (4 * jax.device_count(), 10, 6))

    def loss(params, xs):
        return jnp.sum(gc.unroll(cell, params, xs)[1] ** 2)

    one = jax.jit(jax.grad(loss))(params, xs)
    mesh = jax.make_mesh((jax.device_count(),), ("data",), axis_types=(AxisType.Auto,))
    split = jax.device_put(xs, jax.NamedSharding(mesh, jax.P("data")))
    grad = jax.jit(jax.grad(loss))
    with jax.set_mesh(mesh):  # as fit and the bench split a batch
        compiled, inside, entry = grad.lower(params, split).compile().as_text(), [], True
        many = grad(params, split)
    for line in compiled.splitlines():
        if line and not line.startswith(" ") and line.rstrip().endswith("{"):
            entry = line.startswith("ENTRY")
        elif not entry and any(f" {op}(" in line or f" {op}-start(" in line for op in COLLECTIVES):
            inside.append(line.split("=")[0].strip())
    scale = max(1.0, max(float(jnp.max(jnp.abs(g))) for g in jax.tree.leaves(one)))
    return diff(one, many) / scale, inside


def diff(a, b):
    return max(float(jnp.max(jnp.abs(x - y))) for x, y in
               zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))  # fmt: skip


def main() -> None:
    task, cell = tasks.adding(12), gc.lstm(8)
    model = training.task_model(cell, task)
    task_loss = training.task_loss(model, task)
    shardings = []

    def loss_fn(params, batch, key):  # records how the batch reaching the loss is laid out
        jax.debug.inspect_array_sharding(batch[0], callback=shardings.append)
        return task_loss(params, batch, key)

    def run(mesh, data=lambda key: task.sample(key, 32), **kwargs):
        return training.fit(
            loss_fn, model.init(jax.random.key(0)), optax.adam(1e-2), data, steps=20,
            key=jax.random.key(1), log_every=5, progress=False, mesh=mesh, **kwargs,
        )  # fmt: skip

    one, h_one = run(None)
    one_layout = shardings[-1]
    many, h_many = run("auto")
    many_layout = shardings[-1]
    batches = [task.sample(jax.random.key(k), 32) for k in range(20)]
    it_one, _ = run(None, batches)
    it_many, _ = run("auto", batches)
    with tempfile.TemporaryDirectory() as folder:  # checkpoints of a sharded state
        run("auto", checkpoint_dir=folder, checkpoint_every=5)
        resumed, h_resumed = run("auto", checkpoint_dir=folder, resume=True)
    with warnings.catch_warnings(record=True) as caught:  # one device, and a warning
        warnings.simplefilter("always")
        uneven_auto, _ = run("auto", data=lambda key: task.sample(key, 34))
    uneven_one, _ = run(None, data=lambda key: task.sample(key, 34))
    try:
        run(Mesh(np.asarray(jax.devices()), ("data",)), data=lambda key: task.sample(key, 34))
        uneven = None
    except ValueError as err:
        uneven = str(err)

    cells = {"lstm": gc.lstm(8), "gru": gc.gru(8), "slstm": gc.slstm(8, num_heads=2),
             "peepholes": gc.lstm_variant(8, peepholes=True)}  # fmt: skip
    split = {name: split_gradients(cell) for name, cell in cells.items()}
    print(json.dumps({
        "devices": jax.device_count(),
        "one_layout": str(one_layout),
        "many_layout": str(many_layout),
        "batch_shards": len(many_layout.device_set),
        "params_devices": len(jax.tree.leaves(many)[0].sharding.device_set),
        "params_max_abs_diff": diff(one, many),
        "params_max_abs": max(float(jnp.max(jnp.abs(x))) for x in jax.tree.leaves(one)),
        "loss_max_abs_diff": float(np.max(np.abs(h_one.train["loss"] - h_many.train["loss"]))),
        "iterable_max_abs_diff": diff(it_one, it_many),
        "resumed_bit_identical": diff(resumed, many) == 0.0
        and bool(np.array_equal(h_resumed.train["loss"], h_many.train["loss"])),
        "uneven_batch_error": uneven,
        "uneven_batch_warning": " ".join(str(w.message) for w in caught),
        "uneven_max_abs_diff": diff(uneven_auto, uneven_one),
        "split_grad_max_rel_diff": {name: d for name, (d, _) in split.items()},
        "split_loop_collectives": {name: ops for name, (_, ops) in split.items()},
    }))  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
