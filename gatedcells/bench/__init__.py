"""Speed of gatedcells against the peers that are installed, side by side in one process.

For each shape and cell (simple RNN, LSTM, GRU) it times the forward pass and the forward
plus backward pass (the gradient of ``sum(ys)`` with respect to the params *and* the inputs)
of: gatedcells ``unroll``; Flax ``nn.RNN`` with ``LSTMCell``, ``OptimizedLSTMCell``,
``GRUCell``, ``SimpleCell``; Equinox's ``LSTMCell``/``GRUCell`` under ``lax.scan``; and
PyTorch ``nn.LSTM/GRU/RNN`` (on CUDA when torch sees a GPU); on a JAX GPU backend also
``jax.experimental.rnn.lstm`` (cuDNN). Each runs at its library's default float32 matmul
precision (on recent NVIDIA GPUs XLA and cuDNN may use TF32). JAX systems are jit-compiled
(the first call, compile time, is reported apart), warmed up, and timed with
``block_until_ready``; every figure is the median of repeated runs. Missing peers are
skipped and said so.

Run it with ``gatedcells bench`` (``--help`` for options) or ``python benchmarks/run.py``.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .._cores import use_cpu_cores
from ._systems import SYSTEMS, available, missing_reason

SHAPES = {
    "base": dict(B=32, T=128, I=64, H=128),
    "long": dict(B=32, T=512, I=64, H=256),
    "latency": dict(B=1, T=1024, I=32, H=128),
    "throughput": dict(B=256, T=64, I=128, H=512),
}
CELLS = ("lstm", "gru", "simple_rnn")
GATES = {"lstm": 4, "gru": 3, "simple_rnn": 1}


@dataclasses.dataclass
class Result:
    shape: str
    cell: str
    system: str
    mode: str  # "fwd" or "f+b"
    median_ms: float
    min_ms: float
    max_ms: float
    compile_s: float | None
    gflops: float
    note: str = ""


def flops(cell: str, B: int, T: int, I: int, H: int, mode: str) -> float:
    """Matmul FLOPs: ``2*T*B*(I+H)*G*H`` forward, 3x that forward plus backward."""
    fwd = 2.0 * T * B * (I + H) * GATES[cell] * H
    return fwd if mode == "fwd" else 3 * fwd


def time_thunk(fn: Callable[[], Any], *, min_time: float, min_runs: int) -> list[float]:
    """Seconds of each call of ``fn()``, called at least ``min_runs`` times and for at least
    ``min_time`` seconds in all (at most 200 calls). ``fn`` must wait for its own result
    (``jax.block_until_ready``, ``torch.cuda.synchronize``).

    Examples:
      >>> times = time_thunk(lambda: sum(range(100)), min_time=0.0, min_runs=3)
      >>> len(times), all(t >= 0 for t in times)
      (3, True)
    """
    times = []
    start = time.perf_counter()
    while len(times) < min_runs or time.perf_counter() - start < min_time:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if len(times) >= 200:
            break
    return times


def matmul_peak(n: int = 2048, runs: int = 5) -> float:
    """GFLOP/s of one large ``jnp.dot`` (``n^3``) on the default device: the machine's peak."""
    a = jax.random.normal(jax.random.key(0), (n, n))
    dot = jax.jit(jnp.dot)
    jax.block_until_ready(dot(a, a))
    times = time_thunk(lambda: jax.block_until_ready(dot(a, a)), min_time=0.3, min_runs=runs)
    return 2 * n**3 / statistics.median(times) / 1e9


def run(
    shapes=tuple(SHAPES),
    cells=CELLS,
    systems=tuple(SYSTEMS),
    modes=("fwd", "f+b"),
    *,
    min_time: float = 0.4,
    min_runs: int = 7,
    rounds: int = 1,
    log: Callable[[str], None] = lambda s: print(s, file=sys.stderr, flush=True),
) -> list[Result]:
    """Time every (shape, cell, system, mode); return the results (see :class:`Result`).

    With ``rounds > 1`` the systems of a (shape, cell) are timed in turn, ``rounds`` times
    over, and each figure is the median of the rounds' medians: a load that comes and goes
    then hits every system alike instead of whichever ran at that moment.
    """
    have, _ = available(systems)
    results = []
    for shape in shapes:
        dims = SHAPES[shape]
        for cell in cells:
            entries = []  # (system, mode, thunk, compile seconds)
            for system in have:
                try:
                    thunks = SYSTEMS[system][1](cell, **dims)
                except NotImplementedError:
                    continue
                for mode in modes:
                    t0 = time.perf_counter()
                    thunks[mode]()
                    entries.append((system, mode, thunks[mode], time.perf_counter() - t0))
                    thunks[mode]()  # warm-up
            runs = {(system, mode): [] for system, mode, _, _ in entries}
            for _ in range(rounds):
                for system, mode, thunk, _ in entries:
                    runs[system, mode].append(
                        time_thunk(thunk, min_time=min_time, min_runs=min_runs)
                    )
            for system, mode, _, compile_s in entries:
                med = float(np.median([np.median(ts) for ts in runs[system, mode]]))
                every = np.concatenate(runs[system, mode])
                res = Result(
                    shape,
                    cell,
                    system,
                    mode,
                    med * 1e3,
                    every.min() * 1e3,
                    every.max() * 1e3,
                    None if system == "torch" else compile_s,
                    flops(cell, **dims, mode=mode) / med / 1e9,
                )
                results.append(res)
                log(f"{shape:>10} {cell:>10} {mode:>3} {system:<24} {res.median_ms:9.2f} ms")
    return results


def environment() -> dict[str, Any]:
    versions = {"python": platform.python_version(), "jax": jax.__version__}
    for module in ("jaxlib", "flax", "equinox", "torch", "numpy"):
        try:
            versions[module] = __import__(module).__version__
        except ImportError:
            pass
    try:
        import torch

        versions["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            versions["torch_cuda"] = f"{torch.version.cuda} on {torch.cuda.get_device_name()}"
    except ImportError:
        pass
    return {
        "machine": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "device": f"{jax.devices()[0]} ({jax.devices()[0].device_kind})",
        "devices": jax.device_count(),
        "jax_default_matmul_precision": jax.config.jax_default_matmul_precision,
        "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "versions": versions,
    }


def _ms(r: Result | None) -> str:
    return f"{r.median_ms:.2f}" if r else "-"


def _ratio(r: Result | None, best: float) -> str:
    if not r:
        return "-"
    x = r.median_ms / best
    return "**1.00**" if x == 1 else f"{x:.2f}"


def markdown(results: list[Result], peak: float) -> str:
    """One table per shape: medians, ratio to the fastest system, GFLOP/s and % of peak."""
    lines = []
    for shape in dict.fromkeys(r.shape for r in results):
        dims = ", ".join(f"{k}={v}" for k, v in SHAPES[shape].items())
        lines += [f"### {shape}: {dims}", ""]
        lines += [
            "| cell | system | fwd ms | fwd x fastest | f+b ms | f+b x fastest | f+b GFLOP/s "
            "(% peak) | compile s fwd / f+b |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for cell in dict.fromkeys(r.cell for r in results if r.shape == shape):
            rows = [r for r in results if r.shape == shape and r.cell == cell]
            best = {
                m: min((r.median_ms for r in rows if r.mode == m), default=None)
                for m in ("fwd", "f+b")
            }
            for system in dict.fromkeys(r.system for r in rows):
                by = {r.mode: r for r in rows if r.system == system}
                f, b = by.get("fwd"), by.get("f+b")
                gf = f"{b.gflops:.0f} ({100 * b.gflops / peak:.0f}%)" if b else "-"
                comp = " / ".join(
                    "-" if (r is None or r.compile_s is None) else f"{r.compile_s:.2f}"
                    for r in (f, b)
                )
                lines.append(
                    f"| {cell} | {system} | {_ms(f)} | {_ratio(f, best['fwd'])} | {_ms(b)} | "
                    f"{_ratio(b, best['f+b'])} | {gf} | {comp} |"
                )
        lines.append("")
    return "\n".join(lines)


def _torch_first(argv: list[str]) -> int | None:
    """Re-run the benchmark in a fresh interpreter that imports torch before jax.

    Measured here (2 cores, torch 2.13, jax 0.10): torch imported *after* jax ran its
    LSTM 3x slower (57 vs 18 ms forward+backward at the base shape) than torch imported
    first, the order in which both run at full speed. ``import gatedcells`` has imported jax
    by the time this module runs, so a fair side-by-side run needs a new process.
    """
    if "torch" in sys.modules or importlib.util.find_spec("torch") is None:
        return None
    if os.environ.get("GATEDCELLS_BENCH_CHILD"):
        return None
    import subprocess

    code = "import torch, sys; from gatedcells.bench import main; sys.exit(main(sys.argv[1:]))"
    env = dict(os.environ, GATEDCELLS_BENCH_CHILD="1")
    return subprocess.call([sys.executable, "-c", code, *argv], env=env)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gatedcells bench",
        description="Time gatedcells against Flax, Equinox and PyTorch on this machine.",
    )
    parser.add_argument(
        "--shapes",
        default=",".join(SHAPES),
        help=f"comma-separated, from {list(SHAPES)} (default: all)",
    )
    parser.add_argument(
        "--cells", default=",".join(CELLS), help=f"comma-separated: {','.join(CELLS)}"
    )
    parser.add_argument("--systems", default=None, help="comma-separated system names")
    parser.add_argument("--min-time", type=float, default=0.4, help="seconds per timing")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="time every system this many times in turn; report the median",
    )
    parser.add_argument("--out", default=None, help="write results as JSON to this file")
    parser.add_argument("--markdown", default=None, help="write the tables to this file")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark with ``argv`` (default: ``sys.argv[1:]``); return the exit status.

    :func:`gatedcells.use_cpu_cores` first asks for one CPU device per core (``N`` with
    ``GATEDCELLS_CPU_DEVICES=N``, one with ``1``), and gatedcells splits each batch over
    them where it pays; the other JAX systems run on the first device, as they would."""
    cores = use_cpu_cores()
    parser = _parser()
    args = parser.parse_args(argv)
    shapes, cells = args.shapes.split(","), args.cells.split(",")
    systems = args.systems.split(",") if args.systems else list(SYSTEMS)
    for name, values, known in (
        ("shape", shapes, SHAPES),
        ("cell", cells, CELLS),
        ("system", systems, SYSTEMS),
    ):
        bad = [v for v in values if v not in known]
        if bad:
            parser.error(f"unknown {name} {bad[0]!r}; choose from {list(known)}")
    if args.rounds < 1:
        parser.error(f"--rounds must be a positive integer, got {args.rounds}")
    if "torch" in systems:
        code = _torch_first(list(sys.argv[1:] if argv is None else argv))
        if code is not None:
            return code
    _, missing = available(systems)
    for name in missing:
        print(f"skipping {name}: {missing_reason(name)}", file=sys.stderr)
    env = environment()
    peak = matmul_peak()
    print(f"matmul peak: {peak:.0f} GFLOP/s; CPU devices: {cores}; {env}", file=sys.stderr)
    results = run(shapes, cells, systems, min_time=args.min_time, rounds=args.rounds)
    table = markdown(results, peak)
    print(table)
    if args.markdown:
        Path(args.markdown).write_text(table)
    if args.out:
        payload = {
            "environment": env,
            "matmul_peak_gflops": peak,
            "results": [dataclasses.asdict(r) for r in results],
        }
        Path(args.out).write_text(json.dumps(payload, indent=1))
    return 0
