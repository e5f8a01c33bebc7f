"""The sLSTM: its speed against an LSTM of the same width, and the parity table.

    python benchmarks/xlstm.py speed                    # B=32, T=128, I=64, H=128
    python benchmarks/xlstm.py speed --B 8 --T 1024
    python benchmarks/xlstm.py parity                   # 3 cells x 3 seeds, a few minutes

``speed`` times forward and forward+backward (``jax.value_and_grad`` of a loss of every
output) of ``gc.lstm(H)`` and ``gc.slstm(H)`` with 1 and 4 heads in the same process, the
cells taking turns for ``--rounds`` rounds (the median is reported, so a busy machine slows
them alike); the sLSTM runs on the fused custom-gradient scan (``grad="auto"``), and once
with plain autodiff through ``lax.scan`` (``grad="autodiff"``) for comparison. Wall-clock
and CPU time (``time.process_time``, all threads) are both reported: on a shared machine the
CPU time is the steadier figure, and with ``XLA_FLAGS="--xla_cpu_multi_thread_eigen=false
intra_op_parallelism_threads=1"`` (one thread) the two agree.

``parity`` trains each cell (the sLSTM, the LSTM, minGRU alone and two of them stacked)
with a linear readout on ``tasks.parity(32)`` (the running
parity of 32 bits, every step predicted) for a fixed budget and reports, as the median over
3 seeds, the accuracy over every step at the training length and at 4x that length (chance
1/2 each), and at the last step.
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp

import gatedcells as gc
from gatedcells.bench import time_thunk


def speed(args) -> None:
    B, T, I, H = args.B, args.T, args.I, args.H
    xs = jax.random.normal(jax.random.key(1), (B, T, I))
    cells = {
        "lstm": (gc.lstm(H), "auto"),
        "slstm": (gc.slstm(H), "auto"),
        "slstm heads=4": (gc.slstm(H, num_heads=4), "auto"),
        "slstm heads=4, autodiff": (gc.slstm(H, num_heads=4), "autodiff"),
    }
    fns = {}
    for name, (cell, grad) in cells.items():
        params = cell.init(jax.random.key(0), I)

        def loss(params, xs, cell=cell, grad=grad):
            return jnp.mean(gc.unroll(cell, params, xs, grad=grad)[1] ** 2)

        forward = jax.jit(lambda p, xs, cell=cell: gc.unroll(cell, p, xs)[1])
        both = jax.jit(jax.value_and_grad(loss))
        for fn in (forward, both):
            jax.block_until_ready(fn(params, xs))  # compile
        fns[name] = (params, forward, both)
    times = {name: ([], [], []) for name in fns}  # forward, fwd+bwd wall; fwd+bwd CPU
    for _ in range(args.rounds):
        for name, (params, *pair) in fns.items():
            for k, fn in enumerate(pair):
                run = lambda fn=fn, params=params: jax.block_until_ready(fn(params, xs))
                cpu = time.process_time()
                wall = time_thunk(run, min_time=0.5, min_runs=3)
                times[name][k].append(statistics.median(wall))
                if k:
                    times[name][2].append((time.process_time() - cpu) / len(wall))
    print(f"backend {jax.default_backend()} ({jax.devices()[0].device_kind}), "
          f"B={B} T={T} I={I} H={H}, float32, median of {args.rounds} rounds")  # fmt: skip
    print("| cell | forward (ms) | fwd+bwd (ms) | / LSTM's | fwd+bwd CPU time (ms) | / LSTM's |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    base = [statistics.median(t) for t in times["lstm"]]
    for name, columns in times.items():
        fwd, both, cpu = (statistics.median(t) for t in columns)
        print(f"| {name} | {1e3 * fwd:.1f} | {1e3 * both:.1f} | {both / base[1]:.2f}x "
              f"| {1e3 * cpu:.1f} | {cpu / base[2]:.2f}x |")  # fmt: skip


def parity(args, cells=None) -> None:
    """The parity table of ``cells`` (name -> factory; default the sLSTM's comparison)."""
    import optax

    import gatedcells.tasks as tasks
    from gatedcells import training

    H, T = args.H, args.T
    cells = cells or {
        "slstm(heads=4)": lambda: gc.slstm(H, num_heads=4),
        "lstm": lambda: gc.lstm(H),
        "min_gru": lambda: gc.min_gru(H),
        "min_gru x2 (stack)": lambda: gc.stack(gc.min_gru(H), gc.min_gru(H)),
    }
    train, long = tasks.parity(T), tasks.parity(4 * T)
    test = {task: task.sample(jax.random.key(10_000), 1000) for task in (train, long)}
    print(f"parity(T={T}), H={H}, {args.steps} steps of batch 64, adam({args.lr}), "
          f"seeds 0..{args.seeds - 1}: median accuracy (chance 0.5)")  # fmt: skip
    print(f"| cell | params | every step, T={T} | last step, T={T} | every step, T={4 * T} "
          f"| seconds per run |")  # fmt: skip
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, make in cells.items():
        rows = []
        for seed in range(args.seeds):
            start = time.perf_counter()
            cell = make()
            params, _ = training.fit_task(cell, train, optax.adam(args.lr), steps=args.steps,
                                          key=jax.random.key(seed), progress=False)  # fmt: skip
            scores = []
            for task in (train, long):
                xs, ys = test[task]
                pred = training.task_model(cell, task).apply(params, xs)
                scores.append(float(task.metric(pred, ys)))
                if task is train:
                    scores.append(float(task.metric(pred[:, -1], ys[:, -1])))
            rows.append((*scores, time.perf_counter() - start))
        size = gc.count_params(params["cell"])
        med = [statistics.median(col) for col in zip(*rows, strict=True)]
        print(f"| {name} | {size} | {med[0]:.3f} | {med[1]:.3f} | {med[2]:.3f} | {med[3]:.0f} |",
              flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("speed", help="forward(+backward) against an LSTM of the same width")
    for name, default in (("B", 32), ("T", 128), ("I", 64), ("H", 128), ("rounds", 5)):
        p.add_argument(f"--{name}", type=int, default=default)
    p = sub.add_parser("parity", help="train sLSTM, LSTM and minGRU on running parity")
    for name, default in (("H", 32), ("T", 32), ("steps", 1000), ("seeds", 3)):
        p.add_argument(f"--{name}", type=int, default=default)
    p.add_argument("--lr", type=float, default=3e-3)
    args = parser.parse_args()
    {"speed": speed, "parity": parity}[args.command](args)


if __name__ == "__main__":
    main()
