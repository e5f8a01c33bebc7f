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

import dataclasses
import importlib.util
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import gatedcells as gc

SHAPES = {
    "base": dict(B=32, T=128, I=64, H=128),
    "long": dict(B=32, T=512, I=64, H=256),
    "latency": dict(B=1, T=1024, I=32, H=128),
    "throughput": dict(B=256, T=64, I=128, H=512),
}
CELLS = ("lstm", "gru", "rnn")
GATES = {"lstm": 4, "gru": 3, "rnn": 1}


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


def _time(fn: Callable[[], Any], *, min_time: float, min_runs: int) -> list[float]:
    times = []
    start = time.perf_counter()
    while len(times) < min_runs or time.perf_counter() - start < min_time:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if len(times) >= 200:
            break
    return times


# --------------------------------------------------------------------------------------
# Systems: each returns {"fwd": thunk, "f+b": thunk} for a (cell, shape), or raises
# NotImplementedError when it has no such cell. JAX thunks return after block_until_ready.


def _jax_thunks(apply, variables, xs):
    fwd = jax.jit(apply)
    loss = lambda v, x: jnp.sum(apply(v, x))
    fb = jax.jit(jax.grad(loss, argnums=(0, 1)))
    return {
        "fwd": lambda: jax.block_until_ready(fwd(variables, xs)),
        "f+b": lambda: jax.block_until_ready(fb(variables, xs)),
    }


def gatedcells_system(cell: str, B, T, I, H, *, grad: str = "auto", **factory):
    make = {"lstm": gc.lstm, "gru": gc.gru, "rnn": gc.simple_rnn}[cell]
    c = make(H, **factory)
    params = c.init(jax.random.key(0), I)
    xs = jax.random.normal(jax.random.key(1), (B, T, I))
    return _jax_thunks(lambda p, x: gc.unroll(c, p, x, grad=grad)[1], params, xs)


def flax_system(kind: str):
    def build(cell, B, T, I, H):
        import flax.linen as nn

        wanted = {"lstm": ("LSTMCell", "OptimizedLSTMCell"), "gru": ("GRUCell",)}
        if kind not in wanted.get(cell, ("SimpleCell",)):
            raise NotImplementedError
        model = nn.RNN(getattr(nn, kind)(H))
        xs = jax.random.normal(jax.random.key(1), (B, T, I))
        variables = model.init(jax.random.key(0), xs)
        return _jax_thunks(model.apply, variables, xs)

    return build


def equinox_system(cell, B, T, I, H):
    import equinox as eqx

    if cell == "rnn":
        raise NotImplementedError
    module = {"lstm": eqx.nn.LSTMCell, "gru": eqx.nn.GRUCell}[cell](I, H, key=jax.random.key(0))
    params, static = eqx.partition(module, eqx.is_array)
    xs = jax.random.normal(jax.random.key(1), (B, T, I))

    def apply(params, xs):
        m = eqx.combine(params, static)
        h = jnp.zeros((B, H))
        carry = (h, h) if cell == "lstm" else h

        def body(carry, x):
            carry = jax.vmap(m)(x, carry)
            return carry, carry[0] if cell == "lstm" else carry

        return jax.lax.scan(body, carry, jnp.swapaxes(xs, 0, 1))[1]

    return _jax_thunks(apply, params, xs)


def torch_system(cell, B, T, I, H):
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    module = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[cell](
        I, H, batch_first=True, device=device
    )
    xs = torch.randn(B, T, I, device=device)

    def fwd():
        with torch.no_grad():
            module(xs)
        sync()

    xg = xs.clone().requires_grad_(True)

    def fb():
        module.zero_grad(set_to_none=True)
        xg.grad = None
        module(xg)[0].sum().backward()
        sync()

    return {"fwd": fwd, "f+b": fb}


def cudnn_system(cell, B, T, I, H):
    """``jax.experimental.rnn.lstm``: JAX's binding of the cuDNN LSTM (GPU only, LSTM only)."""
    from jax.experimental import rnn

    if cell != "lstm":
        raise NotImplementedError
    weights = rnn.init_lstm_weight(jax.random.key(0), I, H, 1, False)
    xs = jax.random.normal(jax.random.key(1), (B, T, I))
    h0 = jnp.zeros((1, B, H))
    lengths = jnp.full((B,), T, jnp.int32)

    def apply(w, x):
        return rnn.lstm(x, h0, h0, w, lengths, I, H, 1, 0.0, False)[0]

    return _jax_thunks(apply, weights, xs)


SYSTEMS: dict[str, tuple[str | None, Callable]] = {
    # name: (module it needs, or "gpu" for a JAX GPU backend; builder)
    "gatedcells": (None, gatedcells_system),
    "flax LSTMCell": ("flax", flax_system("LSTMCell")),
    "flax OptimizedLSTMCell": ("flax", flax_system("OptimizedLSTMCell")),
    "flax GRUCell": ("flax", flax_system("GRUCell")),
    "flax SimpleCell": ("flax", flax_system("SimpleCell")),
    "equinox": ("equinox", equinox_system),
    "torch": ("torch", torch_system),
    "jax cuDNN LSTM": ("gpu", cudnn_system),
}


def matmul_peak(n: int = 2048, runs: int = 5) -> float:
    """GFLOP/s of one large ``jnp.dot`` (``n^3``) on the default device: the machine's peak."""
    a = jax.random.normal(jax.random.key(0), (n, n))
    dot = jax.jit(jnp.dot)
    jax.block_until_ready(dot(a, a))
    times = _time(lambda: jax.block_until_ready(dot(a, a)), min_time=0.3, min_runs=runs)
    return 2 * n**3 / statistics.median(times) / 1e9


def missing_reason(system: str) -> str | None:
    """Why ``system`` cannot run here (``None`` when it can)."""
    need = SYSTEMS[system][0]
    if need == "gpu":
        return None if jax.default_backend() == "gpu" else "needs a JAX GPU backend"
    if need is None or importlib.util.find_spec(need) is not None:
        return None
    return f"{need} is not installed"


def available(systems) -> tuple[list[str], list[str]]:
    have, missing = [], []
    for name in systems:
        (missing if missing_reason(name) else have).append(name)
    return have, missing


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
                    runs[system, mode].append(_time(thunk, min_time=min_time, min_runs=min_runs))
            for system, mode, _, compile_s in entries:
                med = float(np.median([np.median(ts) for ts in runs[system, mode]]))
                every = np.concatenate(runs[system, mode])
                res = Result(
                    shape, cell, system, mode, med * 1e3, every.min() * 1e3, every.max() * 1e3,
                    None if system == "torch" else compile_s,
                    flops(cell, **dims, mode=mode) / med / 1e9,
                )  # fmt: skip
                results.append(res)
                log(f"{shape:>10} {cell:>4} {mode:>3} {system:<24} {res.median_ms:9.2f} ms")
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
            best = {m: min((r.median_ms for r in rows if r.mode == m), default=None)
                    for m in ("fwd", "f+b")}  # fmt: skip
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


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="gatedcells bench",
        description="Time gatedcells against Flax, Equinox and PyTorch on this machine.",
    )
    parser.add_argument("--shapes", default=",".join(SHAPES),
                        help=f"comma-separated, from {list(SHAPES)} (default: all)")  # fmt: skip
    parser.add_argument("--cells", default=",".join(CELLS), help="comma-separated: lstm,gru,rnn")
    parser.add_argument("--systems", default=None, help="comma-separated system names")
    parser.add_argument("--min-time", type=float, default=0.4, help="seconds per timing")
    parser.add_argument("--rounds", type=int, default=1,
                        help="time every system this many times in turn; report the median")  # fmt: skip
    parser.add_argument("--out", default=None, help="write results as JSON to this file")
    parser.add_argument("--markdown", default=None, help="write the tables to this file")
    args = parser.parse_args(argv)
    systems = args.systems.split(",") if args.systems else list(SYSTEMS)
    if "torch" in systems:
        code = _torch_first(list(sys.argv[1:] if argv is None else argv))
        if code is not None:
            return code
    for name, values, known in (("shape", args.shapes.split(","), SHAPES),
                                ("cell", args.cells.split(","), CELLS),
                                ("system", systems, SYSTEMS)):  # fmt: skip
        bad = [v for v in values if v not in known]
        if bad:
            parser.error(f"unknown {name} {bad[0]!r}; choose from {list(known)}")
    if args.rounds < 1:
        parser.error(f"--rounds must be a positive integer, got {args.rounds}")
    _, missing = available(systems)
    for name in missing:
        print(f"skipping {name}: {missing_reason(name)}", file=sys.stderr)
    env = environment()
    peak = matmul_peak()
    print(f"matmul peak: {peak:.0f} GFLOP/s; {env}", file=sys.stderr)
    results = run(args.shapes.split(","), args.cells.split(","), systems,
                  min_time=args.min_time, rounds=args.rounds)  # fmt: skip
    table = markdown(results, peak)
    print(table)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(table)
    if args.out:
        with open(args.out, "w") as f:
            payload = {"environment": env, "matmul_peak_gflops": peak,
                       "results": [dataclasses.asdict(r) for r in results]}  # fmt: skip
            json.dump(payload, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
