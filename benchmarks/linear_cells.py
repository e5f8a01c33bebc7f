"""Speed of the gated linear recurrences (RG-LRU, LRU, selective SSM) on this backend, and
which cells solve the selective copying task.

    python benchmarks/linear_cells.py rglru      # RG-LRU vs recurrentgemma's own layer
    python benchmarks/linear_cells.py paths      # LRU and S6: every path, S6's memory
    python benchmarks/linear_cells.py copy       # the selective copying table

``rglru`` needs recurrentgemma, which pins numpy<2.4: run it where recurrentgemma is
installed, with gatedcells on the path, e.g.
``PYTHONPATH=. /tmp/rg-venv/bin/python benchmarks/linear_cells.py rglru``. Each figure is the
median of repeated runs after a compile, in milliseconds; forward+backward is the gradient of
``sum(ys)`` with respect to the params and the inputs. Markdown tables go to stdout.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import jax
import jax.numpy as jnp

import gatedcells as gc
from gatedcells.cells import _ssm
from gatedcells.sequence import _linear

METHODS = ("sequential", "associative", "chunked")


def median_ms(fn, *args, min_time=1.0, min_runs=5) -> float:
    jax.block_until_ready(fn(*args))  # compile
    times, start = [], time.perf_counter()
    while len(times) < min_runs or time.perf_counter() - start < min_time:
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def header() -> str:
    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",) * 3
    return (f"backend {jax.default_backend()} ({jax.devices()[0].device_kind}), jax "
            f"{jax.__version__}, {os.cpu_count()} cores, load average at start "
            f"{', '.join(f'{v:.1f}' for v in load)}")  # fmt: skip


def grad_of_sum(apply):
    return jax.jit(jax.grad(lambda p, x: jnp.sum(apply(p, x)), argnums=(0, 1)))


# --------------------------------------------------------------------------------------


def rglru(shapes=((8, 1024, 256), (8, 4096, 256)), heads=4) -> None:
    """RG-LRU forward+backward against recurrentgemma's ``RGLRU`` layer, float32."""
    from recurrentgemma.common import ScanType
    from recurrentgemma.jax import layers

    print(header())
    print("\n| B | T | width | system | fwd+bwd ms | vs faster recurrentgemma |")
    print("|---|---|---|---|---|---|")
    for B, T, W in shapes:
        x = jax.random.normal(jax.random.key(0), (B, T, W))
        pos = jnp.broadcast_to(jnp.arange(T), (B, T))
        times = {}
        for scan, tag in ((ScanType.LINEAR_NATIVE, "linear"),
                          (ScanType.ASSOCIATIVE_NATIVE, "associative")):  # fmt: skip
            layer = layers.RGLRU(width=W, num_heads=heads, scan_type=scan)
            variables = layer.init(jax.random.key(1), x, pos)
            fn = grad_of_sum(lambda v, x, layer=layer, pos=pos: layer.apply(v, x, pos)[0])
            times[f"recurrentgemma {tag}"] = median_ms(fn, variables, x)
        xs = jnp.concatenate([x, (pos == 0)[..., None].astype(x.dtype)], -1)  # same resets
        for method in (None, *METHODS):
            cell = gc.rg_lru(W, num_heads=heads, resets=True, method=method)
            params = cell.init(jax.random.key(1), W + 1)
            fn = grad_of_sum(lambda p, xs, cell=cell: gc.unroll(cell, p, xs)[1])
            label = f"gatedcells {method or 'default (' + _linear.default_method() + ')'}"
            times[label] = median_ms(fn, params, xs)
        best = min(v for k, v in times.items() if k.startswith("recurrentgemma"))
        for label, ms in times.items():
            print(f"| {B} | {T} | {W} | {label} | {ms:.1f} | {ms / best:.2f}x |")


def paths(lru_shapes=((8, 1024, 256, 256), (8, 4096, 256, 256)),
          ssm_shapes=((4, 256, 128, 16), (4, 1024, 128, 16))) -> None:  # fmt: skip
    """LRU and S6: forward and forward+backward per path; the compiled gradient's temporary
    memory (``memory_analysis``), also in units of the states (S6's ``[B, T, H, N]`` float32,
    the LRU's ``[B, T, N]`` complex64)."""
    print(header())
    print("\n| cell | B | T | H | N | path | fwd ms | fwd+bwd ms | fwd+bwd / best | "
          "bwd temp MiB | temp / states |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    runs = [("lru", s) for s in lru_shapes] + [("selective_ssm", s) for s in ssm_shapes]
    for name, (B, T, H, N) in runs:
        x = jax.random.normal(jax.random.key(0), (B, T, H))
        default = _ssm.default_method() if name == "selective_ssm" else _linear.default_method()
        # the states: S6's [B, T, H, N] float32, the LRU's [B, T, N] complex64
        rows, states = {}, B * T * H * N * 4 if name == "selective_ssm" else B * T * N * 8
        for method in METHODS:
            factory = gc.lru if name == "lru" else gc.selective_ssm
            cell = factory(H, state_size=N, method=method)
            params = cell.init(jax.random.key(1), H)
            apply = lambda p, x, cell=cell: gc.unroll(cell, p, x)[1]  # noqa: E731
            fb = grad_of_sum(apply)
            temp = fb.lower(params, x).compile().memory_analysis().temp_size_in_bytes
            rows[method] = (median_ms(jax.jit(apply), params, x), median_ms(fb, params, x), temp)
        best = min(r[1] for r in rows.values())
        for method, (fwd, fb, temp) in rows.items():
            tag = f"{method} (default)" if method == default else method
            print(f"| {name} | {B} | {T} | {H} | {N} | {tag} | {fwd:.1f} | {fb:.1f} | "
                  f"{fb / best:.2f}x | {temp / 2**20:.0f} | {temp / states:.2f} |")  # fmt: skip


def copy(steps=800, seeds=(0, 1, 2), length=32, tokens=4, symbols=4, hidden=32) -> None:
    """Which cells solve selective copying: recalled-token accuracy, median of seeds."""
    import optax

    from gatedcells import tasks, training

    task = tasks.selective_copy(length, tokens=tokens, symbols=symbols)
    H = hidden
    cells = {
        "lstm": lambda: gc.lstm(H),
        "gru": lambda: gc.gru(H),
        "min_gru": lambda: gc.min_gru(H),
        "lru": lambda: gc.stack(gc.lru(H, input_proj=True), gc.lru(H)),
        "rg_lru": lambda: gc.stack(gc.rg_lru(H, num_heads=4, input_proj=True), gc.rg_lru(H, num_heads=4)),
        "selective_ssm": lambda: gc.stack(gc.selective_ssm(H, input_proj=True), gc.selective_ssm(H)),
    }  # fmt: skip
    print(header())
    print(f"\n{task.name}, hidden {H}, Adam 3e-3, batch 64, {steps} steps, seeds {seeds}; "
          f"chance accuracy {task.baseline_metric:.2f}\n")  # fmt: skip
    print("| cell | params | accuracy (median) | per seed | seconds (median) |")
    print("|---|---|---|---|---|")
    for name, build in cells.items():
        accs, secs = [], []
        for seed in seeds:
            t0 = time.perf_counter()
            params, history = training.fit_task(
                build(), task, optax.adam(3e-3), steps=steps, key=jax.random.key(seed),
                batch_size=64, eval_every=steps, progress=False,
            )  # fmt: skip
            secs.append(time.perf_counter() - t0)
            accs.append(float(history.eval["accuracy"][-1]))
        count = gc.count_params(params["cell"])
        print(f"| {name} | {count} | {statistics.median(accs):.3f} | "
              f"{', '.join(f'{a:.2f}' for a in accs)} | {statistics.median(secs):.0f} |")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("rglru", "paths", "copy"))
    parser.add_argument("--steps", type=int, default=800, help="copy: training steps")
    args = parser.parse_args()
    if args.what == "copy":
        copy(steps=args.steps)
    else:
        {"rglru": rglru, "paths": paths}[args.what]()


if __name__ == "__main__":
    main()
