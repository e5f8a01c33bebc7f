"""Where the time of a batch split over the CPU's cores goes: forward+backward of
``gc.unroll`` (the base LSTM by default, B=32 T=128 I=64 H=128) with the batch split over
one JAX device per core in one process, as ``gatedcells bench`` and ``fit`` run it; one
device's share of that batch alone in a process pinned to one core; one such process per
core at once (the split's work without JAX's in-process runtime: no shared thread pool, no
exchange); and PyTorch's ``nn.LSTM``/``nn.GRU`` on every core. Prints a Markdown table of
the median wall time of a call and the CPU time it took (all threads), ms. Run it on an
idle machine:

    python benchmarks/cores_overhead.py                     # base LSTM
    python benchmarks/cores_overhead.py --cell gru --rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time


def _timed(call, calls: int) -> dict:
    for _ in range(5):
        call()
    before, times = resource.getrusage(resource.RUSAGE_SELF), []
    for _ in range(calls):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return {"wall": statistics.median(times) * 1e3, "cpu": cpu / calls * 1e3}


def child(kind: str, args) -> dict:
    B, T, I, H = args.B, args.T, args.I, args.H
    cores = os.cpu_count() or 1
    if kind == "torch":
        import torch

        module = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[args.cell](I, H, batch_first=True)
        xs = torch.randn(B, T, I, requires_grad=True)

        def step():
            module.zero_grad(set_to_none=True)
            xs.grad = None
            module(xs)[0].sum().backward()

        return _timed(step, args.calls)
    import jax

    if kind == "split":
        jax.config.update("jax_num_cpu_devices", cores)
    else:  # one device's share of the batch, this process pinned to one core
        os.sched_setaffinity(0, {int(kind.split()[1])})
        B //= cores
    import jax.numpy as jnp
    import numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    import gatedcells as gc

    cell = getattr(gc, args.cell)(H)
    params = cell.init(jax.random.key(0), I)
    xs = jax.random.normal(jax.random.key(1), (B, T, I))
    f = jax.jit(jax.grad(lambda p, x: jnp.sum(gc.unroll(cell, p, x)[1]), argnums=(0, 1)))
    call = lambda: jax.block_until_ready(f(params, xs))  # noqa: E731
    if kind == "split":
        mesh = Mesh(np.asarray(jax.devices()), ("data",))
        params = jax.device_put(params, NamedSharding(mesh, PartitionSpec()))
        xs = jax.device_put(xs, NamedSharding(mesh, PartitionSpec("data")))
        call = gc._cores.under_mesh(mesh, lambda: jax.block_until_ready(f(params, xs)))
    return _timed(call, args.calls)


def run(kinds: list[str], args) -> list[dict]:
    """The children ``kinds``, all at once; their results in order."""
    env = {k: v for k, v in os.environ.items() if k != "GATEDCELLS_CPU_DEVICES"}
    argv = [sys.executable, __file__, "--cell", args.cell, "--calls", str(args.calls)]
    argv += ["--B", str(args.B), "--T", str(args.T), "--I", str(args.I), "--H", str(args.H)]
    procs = [
        subprocess.Popen([*argv, "--child", k], env=env, stdout=subprocess.PIPE, text=True)
        for k in kinds
    ]
    return [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cell", default="lstm", choices=("lstm", "gru"))
    parser.add_argument("--rounds", type=int, default=3, help="every configuration in turn")
    parser.add_argument("--calls", type=int, default=100, help="timed calls a process")
    for name, default in (("B", 32), ("T", 128), ("I", 64), ("H", 128)):
        parser.add_argument(f"--{name}", type=int, default=default)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args)))
        return 0
    if not hasattr(os, "sched_setaffinity"):
        sys.exit("this benchmark pins processes to cores: it needs Linux (os.sched_setaffinity)")
    cores = os.cpu_count() or 1
    if args.B % cores:
        sys.exit(f"--B {args.B} does not split evenly over {cores} cores")
    configs = {
        f"{cores} devices in one process, batch split": ["split"],
        "one device's share, alone, pinned to a core": ["share 0"],
        f"{cores} such processes at once, one a core": [f"share {c}" for c in range(cores)],
        f"PyTorch, {cores} threads": ["torch"],
    }
    results: dict[str, list[dict]] = {label: [] for label in configs}
    for _ in range(args.rounds):
        for label, kinds in configs.items():
            runs = run(kinds, args)  # processes at once: the slowest is the step's time
            results[label].append(max(runs, key=lambda r: r["wall"]) | {
                "cpu": sum(r["cpu"] for r in runs)
            })  # fmt: skip
    print(f"{args.cell} B={args.B} T={args.T} I={args.I} H={args.H}, forward+backward; "
          f"medians of {args.rounds} rounds")  # fmt: skip
    print("| configuration | wall ms | CPU ms (all threads) |\n|---|---:|---:|")
    for label, rows in results.items():
        wall = statistics.median(r["wall"] for r in rows)
        cpu = statistics.median(r["cpu"] for r in rows)
        print(f"| {label} | {wall:.2f} | {cpu:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
