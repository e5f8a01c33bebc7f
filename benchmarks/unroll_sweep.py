"""Time ``gatedcells.unroll`` at several ``jax.lax.scan`` unroll factors on this backend.

    python benchmarks/unroll_sweep.py                          # base and latency shapes
    python benchmarks/unroll_sweep.py --shapes base --factors 1,2,4,8

Prints forward and forward+backward medians (ms) per cell, shape and factor, and the
compile time of the forward+backward, so the factor can be chosen per backend and shape.
"""

import argparse
import statistics
import time

import jax
import jax.numpy as jnp

import gatedcells as gc
from gatedcells.bench import SHAPES, time_thunk

MAKE = {"lstm": gc.lstm, "gru": gc.gru, "simple_rnn": gc.simple_rnn}


def measure(cell, params, xs, factor, min_time):
    """(forward ms, forward+backward ms, forward+backward compile s) at one unroll factor."""

    def apply(p, x):
        return gc.unroll(cell, p, x, unroll=factor)[1]

    fwd = jax.jit(apply)
    fb = jax.jit(jax.grad(lambda p, x: jnp.sum(apply(p, x)), argnums=(0, 1)))
    jax.block_until_ready(fwd(params, xs))
    t0 = time.perf_counter()
    jax.block_until_ready(fb(params, xs))
    compile_s = time.perf_counter() - t0
    ms = []
    for f in (fwd, fb):
        times = time_thunk(
            lambda f=f: jax.block_until_ready(f(params, xs)), min_time=min_time, min_runs=7
        )
        ms.append(1e3 * statistics.median(times))
    return ms[0], ms[1], compile_s


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default="base,latency")
    parser.add_argument("--cells", default=",".join(MAKE))
    parser.add_argument("--factors", default="1,2,4,8,16")
    parser.add_argument("--min-time", type=float, default=0.15)
    args = parser.parse_args()
    print(f"backend {jax.default_backend()} ({jax.devices()[0].device_kind})")
    print(f"{'shape':>10} {'cell':>10} {'unroll':>6} {'fwd ms':>8} {'f+b ms':>8} {'compile s':>9}")
    for shape in args.shapes.split(","):
        d = SHAPES[shape]
        for name in args.cells.split(","):
            cell = MAKE[name](d["H"])
            params = cell.init(jax.random.key(0), d["I"])
            xs = jax.random.normal(jax.random.key(1), (d["B"], d["T"], d["I"]))
            for k in map(int, args.factors.split(",")):
                f, b, c = measure(cell, params, xs, k, args.min_time)
                print(f"{shape:>10} {name:>10} {k:>6} {f:8.2f} {b:8.2f} {c:9.2f}", flush=True)


if __name__ == "__main__":
    main()
