"""The host's CPU cores as JAX devices: gatedcells on one CPU device, gatedcells on
one device per core (``gc.use_cpu_cores``, the batch split over them where it pays), and
PyTorch, at every bench shape, each configuration in a process of its own (the device
count is fixed when JAX starts; torch and jax share no process). Prints a Markdown table.

    python benchmarks/cores.py                              # every shape and cell
    python benchmarks/cores.py --shapes base --cells lstm --min-time 0.2

Each process runs ``python -m gatedcells.bench`` (medians of repeated timed calls); run it
on an idle machine: the configurations run one after another, so a load that comes and
goes favours whichever ran while it was gone (``--rounds`` repeats the three in turn).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

# label: (bench systems, GATEDCELLS_CPU_DEVICES)
CONFIGS = {
    "1 device": ("gatedcells", "1"),
    "cores": ("gatedcells", str(os.cpu_count() or 1)),
    "torch": ("torch", "1"),
}


def bench(systems: str, devices: str | None, args, folder: Path) -> tuple[dict, list[dict]]:
    """One ``gatedcells bench`` process: its environment and results."""
    out = folder / f"{systems}-{devices}.json"
    env = {k: v for k, v in os.environ.items() if k not in ("GATEDCELLS_CPU_DEVICES",)}
    if "xla_force_host_platform_device_count" in env.get("XLA_FLAGS", ""):
        sys.exit("unset XLA_FLAGS' --xla_force_host_platform_device_count: this script sets it")
    if devices is not None:
        env["GATEDCELLS_CPU_DEVICES"] = devices
    argv = [sys.executable, "-m", "gatedcells.bench", "--systems", systems, "--out", str(out)]
    argv += ["--shapes", args.shapes, "--cells", args.cells, "--min-time", str(args.min_time)]
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL)
    payload = json.loads(out.read_text())
    return payload["environment"], payload["results"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", default="base,long,latency,throughput")
    parser.add_argument("--cells", default="lstm,gru,simple_rnn")
    parser.add_argument("--min-time", type=float, default=0.4, help="seconds per timing")
    parser.add_argument("--rounds", type=int, default=1, help="the three configurations in turn")
    parser.add_argument("--markdown", default=None, help="also write the table to this file")
    args = parser.parse_args(argv)
    times: dict[tuple, list[float]] = {}
    devices = 1
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(args.rounds):
            for label, (systems, count) in CONFIGS.items():
                env, results = bench(systems, count, args, Path(folder))
                if label == "cores":
                    devices = env.get("devices", 1)
                for r in results:
                    key = (r["shape"], r["cell"], r["mode"], label)
                    times.setdefault(key, []).append(r["median_ms"])
    rows = sorted({k[:3] for k in times}, key=lambda k: (k[0], k[1], k[2] != "fwd"))
    lines = [
        f"| shape | cell | mode | 1 device ms | {devices} devices ms | speed-up | torch ms | "
        f"{devices} devices / torch |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for shape, cell, mode in rows:
        ms = {
            label: statistics.median(times[shape, cell, mode, label])
            if (shape, cell, mode, label) in times
            else None
            for label in CONFIGS
        }
        one, cores, torch = ms["1 device"], ms["cores"], ms["torch"]
        lines.append(
            f"| {shape} | {cell} | {mode} | {_f(one)} | {_f(cores)} | "
            f"{_f(one / cores if one and cores else None)}x | {_f(torch)} | "
            f"{_f(cores / torch if cores and torch else None)} |"
        )
    table = "\n".join(lines)
    print(table)
    if args.markdown:
        Path(args.markdown).write_text(table + "\n")
    return 0


def _f(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


if __name__ == "__main__":
    sys.exit(main())
