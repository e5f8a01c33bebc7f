"""The mLSTM's three forms on this backend, and the multi-query associative recall (MQAR) table.

    python benchmarks/mlstm.py forms                # f+b time and XLA temp memory per form and T
    python benchmarks/mlstm.py forms --T 64,128 --memory-T ""    # other lengths
    python benchmarks/mlstm.py chunks               # chunk size L of the chunkwise form
    python benchmarks/mlstm.py mqar                 # mLSTM against LSTM/GRU on MQAR, 3 seeds
    python benchmarks/mlstm.py kernels --kernels-path /tmp/mk/src    # against mlstm_kernels
    python benchmarks/mlstm.py kernels --kernels-path /tmp/mk/src --T 256,1024,2048,4096,8192

Shapes: B=8, 4 heads, ``qk_dim = v_dim = 64`` (over the heads, 16 per head; add
``--head-dim 64`` for 64 per head), input and output size 64, float32. "f+b" is one jitted
``jax.grad`` of ``sum(ys**2)`` with respect to the params and the inputs; the memory is
``jax.jit(f+b).lower(...).compile().memory_analysis().temp_size_in_bytes``, XLA's scratch
memory for the whole computation (arguments and outputs excluded). Prints Markdown tables.

``kernels`` times gatedcells' forms against mlstm_kernels' plain-JAX forms (loaded without
Triton, ``benchmarks/mlstm_reference.py`` says how to install them apart) in one process,
both from the same projected inputs to the same outputs (B=8, ``hidden = qk_dim = v_dim =
128``, 4 heads, float32 by default; f+b is the gradient of ``sum(ys**2)`` with respect to
the projected inputs), after checking that both compute the same values and gradients at a
small shape. The systems take turns, one call each per round (A, B, A, B, ...), and the
median over ``--rounds`` rounds is reported with its ratio, so that a shared machine slows
both alike.
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


def kernels(args):
    import mlstm_reference as ref

    found = ref.load(args.kernels_path) if args.kernels_path else {}
    if not found:
        raise SystemExit(f"mlstm_kernels not found under --kernels-path {args.kernels_path!r}")
    pairs = {"chunkwise": (args.L, args.their_L), "recurrent": (None, None)}
    pairs |= {"parallel": (None, None)} if args.parallel else {}
    setup = ref.Setup(2, args.hidden, args.heads)  # the check, at a small shape
    params, x_proj = setup.inputs(128)
    for form, (ours_L, theirs_L) in pairs.items():
        small = {"ours": ref.ours(setup, form, ours_L and min(ours_L, 32)),
                 "theirs": ref.theirs(setup, found[form], theirs_L and min(theirs_L, 32))}  # fmt: skip
        (ya, ga), (yb, gb) = (value_and_grad(fn)(params, x_proj) for fn in small.values())
        errors = [
            float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(b))) for a, b in ((ya, yb), (ga, gb))
        ]
        print(f"check {form}: max |ours - theirs| / max |theirs| = {errors[0]:.1e} (values), "
              f"{errors[1]:.1e} (gradients)")  # fmt: skip
    setup = ref.Setup(args.B, args.hidden, args.heads)
    print(f"\nB={args.B}, hidden = qk_dim = v_dim = {args.hidden}, {args.heads} heads, float32, "
          f"f+b, median of {args.rounds} interleaved rounds\n")  # fmt: skip
    print("| T | form (ours L, theirs L) | gatedcells ms | mlstm_kernels ms | ratio | "
          "ratio range |\n|---|---|---|---|---|---|")  # fmt: skip
    for steps in ints(args.T):
        params, x_proj = setup.inputs(steps)
        for form, (ours_L, theirs_L) in pairs.items():
            if form == "parallel" and steps > 2048:
                continue
            fns = [jax.jit(value_and_grad(ref.ours(setup, form, ours_L))),
                   jax.jit(value_and_grad(ref.theirs(setup, found[form], theirs_L)))]  # fmt: skip
            times = interleaved(fns, (params, x_proj), args.rounds)
            ratios = sorted(a / b for a, b in zip(*times, strict=True))
            ms = [1e3 * statistics.median(t) for t in times]
            sizes = f" ({setup.cell(form, ours_L).scan.spec.chunk_size}, {theirs_L or 64})"
            print(f"| {steps} | {form}{sizes if form == 'chunkwise' else ''} | {ms[0]:.1f} | "
                  f"{ms[1]:.1f} | {ms[0] / ms[1]:.2f}x | {ratios[0]:.2f}-{ratios[-1]:.2f} |",
                  flush=True)  # fmt: skip


def value_and_grad(fn):
    """``(params, x_proj) -> (ys, d sum(ys**2) / d x_proj)``."""

    def both(params, x_proj):
        ys, vjp = jax.vjp(lambda x: fn(params, x), x_proj)
        return ys, vjp(2 * ys)[0]

    return both


def interleaved(fns, args, rounds):
    """Seconds of each of ``fns(*args)`` per round, the functions taking turns."""
    for fn in fns:
        jax.block_until_ready(fn(*args))  # compile
    times = [[] for _ in fns]
    for _ in range(rounds):
        for fn, ts in zip(fns, times, strict=True):
            t0 = time.perf_counter()
            jax.block_until_ready(fn(*args))
            ts.append(time.perf_counter() - t0)
    return times


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
    parser.add_argument("what", choices=("forms", "chunks", "mqar", "kernels"))
    parser.add_argument("--B", type=int, default=8)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--head-dim", type=int, default=0, help="per head (0: 64 over the heads)")
    parser.add_argument("--T", default=None, help="lengths (default 256,1024,2048; kernels 1024)")
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
    parser.add_argument("--kernels-path", default="", help="the unpacked mlstm_kernels (kernels)")
    parser.add_argument("--hidden", type=int, default=128, help="qk_dim = v_dim (kernels)")
    parser.add_argument("--their-L", type=int, default=None, help="their chunk size (kernels)")
    parser.add_argument("--rounds", type=int, default=9, help="interleaved rounds (kernels)")
    parser.add_argument("--parallel", action="store_true", help="also the parallel form (kernels)")
    args = parser.parse_args()
    args.T = args.T or ("1024" if args.what == "kernels" else "256,1024,2048")
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"backend {jax.default_backend()} ({jax.devices()[0].device_kind}), "
          f"{os.cpu_count()} CPUs, load average {load}, jax {jax.__version__}\n")  # fmt: skip
    {"forms": forms, "chunks": chunks, "mqar": mqar, "kernels": kernels}[args.what](args)
    print(f"\nload average at the end: {', '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
