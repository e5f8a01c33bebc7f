"""The delta rule: its chunkwise form against its recurrent one, and the MQAR and parity tables.

    python benchmarks/delta.py forms                   # f+b time and XLA temp memory per form and T
    python benchmarks/delta.py forms --T 256,512 --memory-T 16384
    python benchmarks/delta.py mqar                    # gated DeltaNet against the mLSTM, equal state
    python benchmarks/delta.py parity                  # DeltaNet with and without negative eigenvalues

``forms``: ``gc.gated_delta_net(64, num_heads=4)`` (16 per head for keys and values, a
``[16, 16]`` memory per head), B=8, input size 64, float32, one process; "f+b" is one
jitted ``jax.grad`` of ``sum(ys**2)`` with respect to the params and the inputs, and the
memory XLA's temp size of it (``benchmarks/mlstm.py`` measures the same way: its
``measure`` is reused).

``mqar``: one layer of width 64 with a linear readout on ``tasks.mqar`` (``benchmarks/
mlstm.py``'s training loop: each step reads its token and the one before), the gated
DeltaNet and the mLSTM with one head each, so both hold one ``[64, 64]`` matrix memory.

``parity``: ``benchmarks/xlstm.py``'s parity table (``tasks.parity(T)``, Adam, accuracy over
every step at ``T`` and ``4T`` and at the last step) for ``delta_net`` with ``b`` in (0, 1)
and in (0, 2).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import jax
import xlstm
from mlstm import ints, measure, train_mqar

import gatedcells as gc

FORMS = ("recurrent", "chunkwise")


def forms(args) -> None:
    def setup(steps, form):
        cell = gc.gated_delta_net(64, num_heads=4, form=form, chunk_size=args.L)
        xs = jax.random.normal(jax.random.key(1), (args.B, steps, 64))
        return cell, cell.init(jax.random.key(0), 64), xs

    print(f"gated_delta_net(64, num_heads=4), chunk_size={args.L}, B={args.B}, float32\n")
    print("| T | form | f+b ms median | min | recurrent / chunkwise | compile s | XLA temp MiB |")
    print("|---|---|---|---|---|---|---|")
    for steps in ints(args.T):
        rows = {form: measure(*setup(steps, form), args.min_time) for form in FORMS}
        ratio = rows["recurrent"][0] / rows["chunkwise"][0]
        for form, (ms, low, compile_s, temp) in rows.items():
            print(f"| {steps} | {form} | {ms:.1f} | {low:.1f} | {ratio:.2f} | {compile_s:.2f} "
                  f"| {temp:.1f} |", flush=True)  # fmt: skip
    if args.memory_T:
        print("\nXLA temp MiB of the f+b, compiled only (not run):\n")
        print("| T | recurrent | chunkwise |\n|---|---|---|")
        for steps in ints(args.memory_T):
            temps = [measure(*setup(steps, form), 0, runs=False)[3] for form in FORMS]
            print(f"| {steps} | " + " | ".join(f"{t:.1f}" for t in temps) + " |", flush=True)


def mqar(args) -> None:
    import optax

    import gatedcells.tasks as tasks

    task = tasks.mqar(args.length, num_pairs=args.pairs, vocab_size=args.vocab)
    W = args.width
    models = {
        f"gated_delta_net({W})": lambda: gc.gated_delta_net(W),
        f"delta_net({W})": lambda: gc.delta_net(W),
        f"mlstm({W})": lambda: gc.mlstm(W),
    }
    print(
        f"task {task.name}: chance {task.baseline_metric:.3f}; one layer of width {W}, "
        f"AdamW {args.lr}, batch {args.batch}, {args.steps} steps, seeds {args.seeds}"
    )
    print("\n| model | params | per-query accuracy (median) | seeds | train s |")
    print("|---|---|---|---|---|")
    for name, make in models.items():
        accs, secs = [], []
        for seed in range(args.seeds):
            t0 = time.perf_counter()
            acc, count = train_mqar(make(), task, seed, args, optax)
            accs.append(acc)
            secs.append(time.perf_counter() - t0)
        seeds = ", ".join(f"{a:.3f}" for a in accs)
        print(f"| {name} | {count} | {statistics.median(accs):.3f} | {seeds} | "
              f"{statistics.median(secs):.0f} |", flush=True)  # fmt: skip


def parity(args) -> None:
    H = args.H
    args.T, args.lr = args.bits, args.parity_lr  # xlstm.py's parity reads these
    xlstm.parity(args, {
        "delta_net, b in (0, 1)": lambda: gc.delta_net(H, num_heads=args.heads),
        "delta_net, b in (0, 2)": lambda: gc.delta_net(
            H, num_heads=args.heads, negative_eigenvalues=True
        ),
    })  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("forms", "mqar", "parity"))
    parser.add_argument("--B", type=int, default=8)
    parser.add_argument("--L", type=int, default=16, help="chunk size")
    parser.add_argument("--T", default="256,1024,2048,8192")
    parser.add_argument("--memory-T", default="")
    parser.add_argument("--min-time", type=float, default=1.0)
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--length", type=int, default=64)
    parser.add_argument("--vocab", type=int, default=64)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--log-every", type=int, default=100)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--H", type=int, default=16)
    parser.add_argument("--heads", type=int, default=1)
    parser.add_argument("--bits", type=int, default=32, help="parity's length")
    parser.add_argument("--parity-lr", type=float, default=3e-3)
    args = parser.parse_args()
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"backend {jax.default_backend()} ({jax.devices()[0].device_kind}), "
          f"{os.cpu_count()} CPUs, load average {load}, jax {jax.__version__}\n")  # fmt: skip
    {"forms": forms, "mqar": mqar, "parity": parity}[args.what](args)
    print(f"\nload average at the end: {', '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
