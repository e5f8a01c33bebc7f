"""Where splitting a batch over CPU devices pays: forward+backward of ``gc.unroll`` for the
LSTM and the GRU on one device, on 2 devices with the batch split (traced under
``jax.set_mesh``, as ``fit`` does), and on 2 devices unsplit, at batch and hidden sizes
around ``gatedcells._cores.splits``' bounds (8 to 64 rows a device). Each configuration
runs in a process of its own (the device count is fixed when JAX starts); prints a
Markdown table of medians, ms. Run it on an idle machine:

    python benchmarks/split_sweep.py                 # T=64, I=128, 2 devices
    python benchmarks/split_sweep.py --devices 4 --rounds 15
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

SIZES = [(32, 128), (32, 512), (64, 128), (64, 512), (128, 128), (128, 256), (256, 128), (256, 512)]


def child(devices: int, split: bool, rounds: int, T: int, I: int) -> dict:
    import jax

    if devices > 1:
        jax.config.update("jax_num_cpu_devices", devices)
    import jax.numpy as jnp
    import numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    import gatedcells as gc

    mesh = Mesh(np.asarray(jax.devices()), ("data",)) if split else None
    out = {}
    for name in ("lstm", "gru"):
        for B, H in SIZES:
            cell = getattr(gc, name)(H)
            params = cell.init(jax.random.key(0), I)
            xs = jax.random.normal(jax.random.key(1), (B, T, I))
            f = jax.jit(jax.grad(lambda p, x, c=cell: jnp.mean(gc.unroll(c, p, x)[1] ** 2)))
            call = lambda f=f, p=params, x=xs: jax.block_until_ready(f(p, x))  # noqa: E731
            if mesh is not None:
                params = jax.device_put(params, NamedSharding(mesh, PartitionSpec()))
                xs = jax.device_put(xs, NamedSharding(mesh, PartitionSpec("data")))
                call = gc._cores.under_mesh(
                    mesh, lambda f=f, p=params, x=xs: jax.block_until_ready(f(p, x))
                )
            call()
            times = []
            for _ in range(rounds):
                start = time.perf_counter()
                call()
                times.append(time.perf_counter() - start)
            out[f"{name} {B} {H}"] = sorted(times)[len(times) // 2] * 1e3
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--T", type=int, default=64)
    parser.add_argument("--I", type=int, default=128)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        devices, split = (int(v) for v in args.child.split(","))
        print(json.dumps(child(devices, bool(split), args.rounds, args.T, args.I)))
        return 0
    env = {k: v for k, v in os.environ.items() if k != "GATEDCELLS_CPU_DEVICES"}
    runs = {}
    for label, spec in (
        ("1 device", "1,0"),
        ("split", f"{args.devices},1"),
        ("unsplit", f"{args.devices},0"),
    ):
        argv = [sys.executable, __file__, "--child", spec, "--rounds", str(args.rounds)]
        argv += ["--T", str(args.T), "--I", str(args.I)]
        done = subprocess.run(argv, env=env, capture_output=True, text=True, check=True)
        runs[label] = json.loads(done.stdout.strip().splitlines()[-1])
    print(
        "| cell | B | H | rows a device | 1 device ms | split ms | speed-up | unsplit ms | speed-up |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for key, one in runs["1 device"].items():
        name, B, H = key.split()
        split, unsplit = runs["split"][key], runs["unsplit"][key]
        print(f"| {name} | {B} | {H} | {int(B) // args.devices} | {one:.2f} | {split:.2f} | "
              f"{one / split:.2f}x | {unsplit:.2f} | {one / unsplit:.2f}x |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
