"""The sequence-parallel linear recurrence against one device: time and memory per device.

    python benchmarks/sequence_parallel.py                       # T = 65,536 and 1,048,576
    python benchmarks/sequence_parallel.py --T 65536 --devices 1 8 --out results.md

Each configuration (``T``, ``D`` devices) runs in a process of its own, with
``XLA_FLAGS=--xla_force_host_platform_device_count=D`` (the device count is fixed when jax
starts): ``gc.linear_recurrence(log_a, b, h0, resets=..., method="sequential")`` over
``[B, T, H]``, on one device, or inside ``jax.shard_map`` with time split over ``D``
devices (``axis_name="t"``). Prints the forward and forward+backward medians, the compile
time, and the compiled gradient's buffers per device (``memory_analysis()``: arguments,
outputs and temporaries).

On a CPU the ``D`` devices are threads of one process sharing its cores: on this project's
2-core machine, 8 devices measure the algorithm's overhead (every block runs twice, plus
``log2 D`` rounds of ``ppermute``) and its memory per device, not a speed-up; a speed-up
needs devices with cores (or chips) of their own.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

PARAMS = dict(B=1, H=16)


def worker(steps: int) -> dict:
    import jax
    import jax.numpy as jnp
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    import gatedcells as gc
    from gatedcells.bench import time_thunk

    devices = jax.device_count()
    B, H = PARAMS["B"], PARAMS["H"]
    k = jax.random.split(jax.random.key(0), 4)
    log_a = -jax.nn.softplus(jax.random.normal(k[0], (B, steps, H)) - 4)
    b = jax.random.normal(k[1], (B, steps, H))
    h0 = jax.random.normal(k[2], (B, H))
    resets = jax.random.uniform(k[3], (B, steps)) < 1e-4
    axis = "t" if devices > 1 else None

    def recurrence(log_a, b, h0, resets):
        return gc.linear_recurrence(log_a, b, h0, resets=resets, method="sequential",
                                    axis_name=axis)  # fmt: skip

    def loss(log_a, b, h0, resets):
        h, hs = recurrence(log_a, b, h0, resets)
        value = jnp.sum(hs**2)
        return (value if axis is None else jax.lax.psum(value, axis)) + jnp.sum(h)

    forward, grad = recurrence, jax.grad(loss, (0, 1, 2))
    args = (log_a, b, h0, resets)
    if axis is not None:
        mesh = jax.make_mesh((devices,), ("t",))
        time_split = P(None, "t")
        specs = (time_split, time_split, P(), time_split)
        forward = jax.shard_map(forward, mesh=mesh, in_specs=specs,
                                out_specs=(P(), time_split))  # fmt: skip
        grad = jax.shard_map(grad, mesh=mesh, in_specs=specs,
                             out_specs=(time_split, time_split, P()))  # fmt: skip
        args = [jax.device_put(v, NamedSharding(mesh, s)) for v, s in zip(args, specs, strict=True)]
    out = {"T": steps, "devices": devices}
    for name, fn in (("forward", forward), ("forward_backward", grad)):
        start = time.perf_counter()
        compiled = jax.jit(fn).lower(*args).compile()
        out[f"{name}_compile_s"] = time.perf_counter() - start
        stats = compiled.memory_analysis()
        out[f"{name}_mib_per_device"] = (
            stats.argument_size_in_bytes + stats.output_size_in_bytes + stats.temp_size_in_bytes
        ) / 2**20
        jax.block_until_ready(compiled(*args))
        runs = time_thunk(lambda c=compiled: jax.block_until_ready(c(*args)), min_time=2.0,
                          min_runs=3)  # fmt: skip
        out[f"{name}_ms"] = 1e3 * statistics.median(runs)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--T", type=int, nargs="+", default=[65536, 1048576])
    parser.add_argument("--devices", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--out", help="also write the table (markdown) here")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker)))
        return
    rows = []
    for steps in args.T:
        for devices in args.devices:
            flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={devices}"
            done = subprocess.run(
                [sys.executable, __file__, "--worker", str(steps)], capture_output=True,
                text=True, check=True, env=dict(os.environ, XLA_FLAGS=flags.strip()),
            )  # fmt: skip
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), file=sys.stderr)
    table = [
        f"`gc.linear_recurrence`, sequential path, B={PARAMS['B']}, H={PARAMS['H']}, float32, "
        "resets; one process per row",
        "",
        "| T | devices | forward ms | fwd+bwd ms | fwd+bwd MiB per device | compile s (fwd+bwd) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        table.append(
            f"| {r['T']:,} | {r['devices']} | {r['forward_ms']:.1f} | "
            f"{r['forward_backward_ms']:.1f} | {r['forward_backward_mib_per_device']:.1f} | "
            f"{r['forward_backward_compile_s']:.1f} |"
        )
    print("\n".join(table))
    if args.out:
        with open(args.out, "w") as f:
            f.write("\n".join(table) + "\n")


if __name__ == "__main__":
    main()
