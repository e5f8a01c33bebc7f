"""Sequential against associative scan for ``gatedcells.linear_recurrence`` on this backend.

    python benchmarks/linear_recurrence.py                 # B=8, T=4096, H=128
    python benchmarks/linear_recurrence.py --T 512 --B 64

Prints forward and forward+backward medians of both methods and which one
``gatedcells.linear_recurrence`` picks by default here (``method=None``).
"""

import argparse
import statistics

import jax
import jax.numpy as jnp

import gatedcells as gc
from gatedcells.bench import time_thunk
from gatedcells.sequence._linear import default_method


def median_ms(fn, *args):
    jax.block_until_ready(fn(*args))  # compile
    times = time_thunk(lambda: jax.block_until_ready(fn(*args)), min_time=0.3, min_runs=5)
    return 1e3 * statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name, default in (("B", 8), ("T", 4096), ("H", 128)):
        parser.add_argument(f"--{name}", type=int, default=default)
    args = parser.parse_args()
    k1, k2 = jax.random.split(jax.random.key(0))
    shape = (args.B, args.T, args.H)
    log_a = jax.nn.log_sigmoid(jax.random.normal(k1, shape))
    b = jax.random.normal(k2, shape)
    print(
        f"backend {jax.default_backend()} ({jax.devices()[0].device_kind}), "
        f"B={args.B} T={args.T} H={args.H}, default method: {default_method()}"
    )
    hs = {}
    for method in ("sequential", "associative"):
        fwd = jax.jit(lambda a, x, m=method: gc.linear_recurrence(a, x, method=m)[1])
        loss = lambda a, x, m=method: jnp.sum(gc.linear_recurrence(a, x, method=m)[1])
        fb = jax.jit(jax.grad(loss, argnums=(0, 1)))
        hs[method] = fwd(log_a, b)
        print(
            f"{method:>11}: forward {median_ms(fwd, log_a, b):8.2f} ms, "
            f"forward+backward {median_ms(fb, log_a, b):8.2f} ms"
        )
    diff = float(jnp.max(jnp.abs(hs["sequential"] - hs["associative"])))
    print(f"max |sequential - associative| = {diff:.2e}")


if __name__ == "__main__":
    main()
