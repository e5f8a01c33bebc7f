"""An sLSTM/mLSTM model with params sharded FSDP x TP on a 2 x 4 mesh of 8 virtual CPU
devices against one device, for ``tests/test_sharding.py``, as one JSON line:

    XLA_FLAGS=--xla_force_host_platform_device_count=8 python tests/sharding_run.py
"""

import json
import sys

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, SingleDeviceSharding
from jax.sharding import PartitionSpec as P

import gatedcells as gc

RULES = [("embed", "fsdp"), ("heads", "tp"), ("gates", "tp"), ("hidden", "tp")]


def main() -> None:
    auto = (jax.sharding.AxisType.Auto,) * 2  # GSPMD places the communication
    mesh = jax.make_mesh((2, 4), ("fsdp", "tp"), axis_types=auto)
    model = gc.stack(
        gc.slstm(16, num_heads=4), gc.mlstm(16, num_heads=4), gc.rg_lru(16, num_heads=4)
    )
    k = jax.random.split(jax.random.key(0), 3)
    params = model.init(k[0], 8)
    xs = jax.random.normal(k[1], (8, 12, 8))
    target = jax.random.normal(k[2], (8, 12, 16))

    def loss(params, xs, target):
        _, ys = gc.unroll(model, params, xs)
        return jnp.mean((ys - target) ** 2)

    step = jax.value_and_grad(loss)
    one = jax.devices()[0]
    single = jax.jit(step)(*jax.device_put((params, xs, target), SingleDeviceSharding(one)))
    shardings = gc.param_shardings(params, mesh, RULES)
    batch = NamedSharding(mesh, P("fsdp"))
    sharded = jax.jit(step, out_shardings=(NamedSharding(mesh, P()), shardings))(
        jax.device_put(params, shardings), jax.device_put(xs, batch), jax.device_put(target, batch)
    )
    diffs = [
        float(
            np.max(np.abs(np.asarray(a) - np.asarray(b)))
            / max(np.max(np.abs(np.asarray(b))), 1e-30)
        )
        for a, b in zip(jax.tree.leaves(sharded), jax.tree.leaves(single), strict=True)
    ]
    specs = {
        str(path): str(s.spec) for path, s in jax.tree_util.tree_flatten_with_path(shardings)[0]
    }
    split = [
        leaf.sharding.spec != P() and leaf.sharding.spec != P(*[None] * leaf.ndim)
        for leaf in jax.tree.leaves(sharded[1])
    ]
    per_device = max(
        max(s.data.nbytes for s in leaf.addressable_shards) / leaf.nbytes
        for leaf in jax.tree.leaves(sharded[1])
        if leaf.ndim == 3
    )
    print(json.dumps({
        "devices": jax.device_count(), "diff": max(diffs), "loss": float(single[0]),
        "specs": specs, "sharded_fields": sum(split), "fields": len(split),
        "w_h_fraction_per_device": per_device,
    }))  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
