"""The mLSTM's three forms on this backend, and the multi-query associative recall (MQAR) table.

    python benchmarks/mlstm.py forms                # f+b time and XLA temp memory per form and T
    python benchmarks/mlstm.py forms --T 64,128 --memory-T ""    # other lengths
    python benchmarks/mlstm.py chunks               # chunk size L of the chunkwise form
    python benchmarks/mlstm.py mqar                 # mLSTM against LSTM/GRU on MQAR, 3 seeds

Shapes: B=8, 4 heads, ``qk_dim = v_dim = 64`` (over the heads, 16 per head; add
``--head-dim 64`` for 64 per head), input and output size 64, float32. "f+b" is one jitted
``jax.grad`` of ``sum(ys**2)`` with respect to the params and the inputs; the memory is
``jax.jit(f+b).lower(...).compile().memory_analysis().temp_size_in_bytes``, XLA's scratch
memory for the whole computation (arguments and outputs excluded). Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

import gatedcells as gc
from gatedcells.bench import time_thunk

FORMS = ("recurrent", "parallel", "chunkwise")


def fwd_bwd(cell, params, xs):
    def loss(p, x):
        return jnp.sum(gc.unroll(cell, p, x)[1] ** 2)

    return jax.jit(jax.grad(loss, argnums=(0, 1)))


def measure(cell, params, xs, min_time, runs=True):
    """(f+b median ms, min ms, compile s, temp MiB) of one cell at one shape."""
    f = fwd_bwd(cell, params, xs)
    t0 = time.perf_counter()
    compiled = f.lower(params, xs).compile()
    compile_s = time.perf_counter() - t0
    temp = compiled.memory_analysis().temp_size_in_bytes / 2**20
    if not runs:
        return None, None, compile_s, temp
    jax.block_until_ready(compiled(params, xs))
    times = time_thunk(
        lambda: jax.block_until_ready(compiled(params, xs)), min_time=min_time, min_runs=3
    )
    return 1e3 * statistics.median(times), 1e3 * min(times), compile_s, temp


def setup(args, steps, **flags):
    dim = args.heads * args.head_dim if args.head_dim else 64
    cell = gc.mlstm(64, num_heads=args.heads, qk_dim=dim, v_dim=dim, **flags)
    params = cell.init(jax.random.key(0), 64)
    xs = jax.random.normal(jax.random.key(1), (args.B, steps, 64))
    return cell, params, xs


def chunk(args):
    return {} if args.L is None else {"chunk_size": args.L}


def ints(text):
    return [int(t) for t in text.split(",") if t]


def forms(args):
    print("| T | form | f+b ms median | min | x fastest (median) | compile s | XLA temp MiB |")
    print("|---|---|---|---|---|---|---|")
    for steps in ints(args.T):
        rows = {}
        for form in FORMS:
            cell, params, xs = setup(args, steps, form=form, **chunk(args))
            rows[form] = measure(cell, params, xs, args.min_time)
        best = min(r[0] for r in rows.values())
        for form, (ms, low, compile_s, temp) in rows.items():
            mark = "**" if ms == best else ""
            print(f"| {steps} | {form} | {mark}{ms:.1f}{mark} | {low:.1f} | {ms / best:.2f} | "
                  f"{compile_s:.2f} | {temp:.1f} |", flush=True)  # fmt: skip
    if args.memory_T:
        print("\nXLA temp MiB of the f+b, compiled only (not run):\n")
        print("| T | " + " | ".join(FORMS) + " |\n|---|---|---|---|")
        for steps in ints(args.memory_T):
            temps = []
            for form in FORMS:
                cell, params, xs = setup(args, steps, form=form, **chunk(args))
                temps.append(measure(cell, params, xs, 0, runs=False)[3])
            print(f"| {steps} | " + " | ".join(f"{t:.1f}" for t in temps) + " |", flush=True)


def chunks(args):
    print("| T | L | f+b ms median | min | XLA temp MiB |\n|---|---|---|---|---|")
    for steps in ints(args.T):
        for size in ints(args.sizes):
            cell, params, xs = setup(args, steps, form="chunkwise", chunk_size=size)
            ms, low, _, temp = measure(cell, params, xs, args.min_time)
            print(f"| {steps} | {size} | {ms:.1f} | {low:.1f} | {temp:.1f} |", flush=True)


# --------------------------------------------------------------------------------------
# MQAR: one layer of width H reading each token with its predecessor, a linear readout at
# every step, AdamW with warmup and cosine decay, a fixed budget (docs/cells/xlstm.md).


def mqar(args):
    import optax

    import gatedcells.tasks as tasks

    task = tasks.mqar(args.length, num_pairs=args.pairs, vocab_size=args.vocab)
    width, layers = args.width, args.layers
    models = {
        f"mlstm({width}, num_heads={args.mlstm_heads})": lambda: gc.mlstm(
            width, num_heads=args.mlstm_heads
        ),
        f"lstm({width})": lambda: gc.lstm(width),
        f"gru({width})": lambda: gc.gru(width),
    }
    print(f"task {task.name}: chance {task.baseline_metric:.3f}; {layers} layer(s) of width "
          f"{width} reading each token and its predecessor, AdamW {args.lr}, "
          f"batch {args.batch}, {args.steps} steps, seeds {args.seeds}")  # fmt: skip
    print("\n| model | params | per-query accuracy (median of seeds) | seeds | train s |")
    print("|---|---|---|---|---|")
    for name, make in models.items():
        accs, secs = [], []
        for seed in range(args.seeds):
            t0 = time.perf_counter()
            cell = gc.stack(*(make() for _ in range(layers))) if layers > 1 else make()
            acc, count = train_mqar(cell, task, seed, args, optax)
            accs.append(acc)
            secs.append(time.perf_counter() - t0)
        seeds = ", ".join(f"{a:.3f}" for a in accs)
        print(f"| {name} | {count} | {statistics.median(accs):.3f} | {seeds} | "
              f"{statistics.median(secs):.0f} |", flush=True)  # fmt: skip
    print(f"| chance | - | {task.baseline_metric:.3f} | - | - |")


def train_mqar(cell, task, seed, args, optax):
    kp, kr, kd, ke = jax.random.split(jax.random.key(seed), 4)
    params = {
        "cell": cell.init(kp, 2 * task.input_size),
        "w": jax.random.normal(kr, (cell.output_size, task.output_size)) / cell.output_size**0.5,
        "b": jnp.zeros((task.output_size,)),
    }

    def logits(params, xs):
        # each step reads its token and the one before (the xLSTM block's causal
        # convolution in its simplest form): the key arrives with its value
        previous = jnp.pad(xs[:, :-1], ((0, 0), (1, 0), (0, 0)))
        ys = gc.unroll(cell, params["cell"], jnp.concatenate([xs, previous], axis=-1))[1]
        return ys @ params["w"] + params["b"]

    schedule = optax.warmup_cosine_decay_schedule(0.0, args.lr, args.steps // 10, args.steps)
    opt = optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(schedule, weight_decay=0.01))
    state = opt.init(params)

    @jax.jit
    def train(params, state, key):
        def step(carry, key):
            params, state = carry
            xs, ys = task.sample(key, args.batch)
            grads = jax.grad(lambda p: task.loss(logits(p, xs), ys))(params)
            updates, state = opt.update(grads, state, params)
            return (optax.apply_updates(params, updates), state), None

        return jax.lax.scan(step, (params, state), jax.random.split(key, args.log_every))[0]

    for k in jax.random.split(kd, args.steps // args.log_every):
        params, state = train(params, state, k)
    xs, ys = task.sample(ke, 1000)
    return float(task.metric(jax.jit(logits)(params, xs), ys)), gc.count_params(params)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("forms", "chunks", "mqar"))
    parser.add_argument("--B", type=int, default=8)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--head-dim", type=int, default=0, help="per head (0: 64 over the heads)")
    parser.add_argument("--T", default="256,1024,2048")
    parser.add_argument("--memory-T", default="4096,8192")
    parser.add_argument("--L", type=int, default=None, help="chunk size (default: the cell's)")
    parser.add_argument("--sizes", default="16,32,64,128,256", help="chunk sizes (chunks)")
    parser.add_argument("--min-time", type=float, default=2.0)
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--length", type=int, default=64)
    parser.add_argument("--vocab", type=int, default=64)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--mlstm-heads", type=int, default=1)
    parser.add_argument("--layers", type=int, default=1)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--log-every", type=int, default=100)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"backend {jax.default_backend()} ({jax.devices()[0].device_kind}), "
          f"{os.cpu_count()} CPUs, load average {load}, jax {jax.__version__}\n")  # fmt: skip
    {"forms": forms, "chunks": chunks, "mqar": mqar}[args.what](args)
    print(f"\nload average at the end: {', '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
