"""Runs ``gc.unroll`` and its gradient on inputs split over the batch under a mesh with
``Explicit`` axes (``jax.sharding.AxisType.Explicit``, ``jax.set_mesh``: the sharding is
part of each array's type) and on one device, and prints what
``tests/sequence/test_explicit_sharding.py`` checks, as one JSON line: each case's largest
difference relative to the largest value. Run it with 2 devices or more, e.g.

    XLA_FLAGS=--xla_force_host_platform_device_count=2 python tests/sequence/explicit_sharding_run.py

``--all`` runs every dense registry cell; by default a few that reach every code path
the mesh's types touch (the fused custom gradient, dense and per head, against autodiff;
the linear recurrence's custom gradient and its chunked path; resets to a learned carry).
"""

import contextlib
import json
import os
import sys

import jax
import jax.numpy as jnp
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from registry import NAMES, build  # noqa: E402

import gatedcells as gc  # noqa: E402

FEW = ("lstm", "gru_heads", "lru", "selective_ssm_chunked", "resettable_learned_lstm")


def main(names) -> None:
    devices = jax.device_count()
    mesh = jax.make_mesh((devices,), ("b",), axis_types=(AxisType.Explicit,))
    xs = jax.random.normal(jax.random.key(1), (2 * devices, 5, 3))
    diffs, errors = {}, {}
    for name in names:
        cell = build(name)
        params = cell.init(jax.random.key(0), 3)
        grads = ("auto", "autodiff") if name in ("lstm", "gru_heads") else ("auto",)
        cases = [(grad, "set_mesh") for grad in grads]
        if name == "lstm":  # no mesh set: the arrays' shardings alone (Explicit by default)
            cases.append(("auto", "device_put"))
        for grad, context in cases:

            def loss(params, xs, grad=grad, cell=cell):
                carry, ys = gc.unroll(cell, params, xs, grad=grad)
                return jnp.sum(ys**2) + sum(jnp.sum(c) for c in jax.tree.leaves(carry))

            run = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
            one = run(params, xs)
            try:
                with jax.set_mesh(mesh) if context == "set_mesh" else contextlib.nullcontext():
                    split = jax.device_put(xs, NamedSharding(mesh, P("b")))
                    if context == "device_put":  # params on the mesh too, as JAX requires
                        params = jax.device_put(params, NamedSharding(mesh, P()))
                    many = run(params, split)
                    layout = str(jax.typeof(many[1][1]))
            except Exception as err:  # noqa: BLE001 - reported, not raised
                errors[f"{name}/{grad}/{context}"] = (
                    f"{type(err).__name__}: {str(err).splitlines()[0]}"
                )
                continue
            scale = max(1.0, *(float(jnp.max(jnp.abs(a))) for a in jax.tree.leaves(one)))
            diffs[f"{name}/{grad}/{context}"] = max(
                float(jnp.max(jnp.abs(a - b))) / scale
                for a, b in zip(jax.tree.leaves(one), jax.tree.leaves(many), strict=True)
            )
    print(json.dumps({"devices": devices, "diffs": diffs, "errors": errors, "layout": layout}))


if __name__ == "__main__":
    every = [n for n in NAMES if getattr(build(n), "feature_ndim", 1) == 1]
    sys.exit(main(every if "--all" in sys.argv else FEW))
