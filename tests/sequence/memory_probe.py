"""Peak memory and time of one training gradient through a long sequence, with and without
``unroll(..., remat=...)``. Run one configuration per process (peak RSS is per process):

    python tests/sequence/memory_probe.py --steps 100000 --batch 8 --hidden 128 --remat true
    python tests/sequence/memory_probe.py --steps 100000 --batch 8 --hidden 128 --remat false

prints one JSON line: the process's resident memory before the gradient runs (compiled,
inputs ready), its peak while the gradient runs (``VmHWM``, reset after compilation), the
difference (what the gradient adds), the temporary buffers XLA assigned to the
compiled gradient (``memory_analysis``), and seconds per gradient step (compiled, best of
``--repeat``). ``tests/sequence/test_remat.py`` runs it in subprocesses.
"""

import argparse
import json
import resource
import time


def peak_mib() -> float:
    """The process's peak resident memory: ``VmHWM`` (resettable, see ``reset_peak``), or
    ``ru_maxrss`` where ``/proc`` is absent."""
    try:
        return _status_kib("VmHWM") / 1024
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def rss_mib() -> float:
    try:
        return _status_kib("VmRSS") / 1024
    except OSError:
        return peak_mib()


def reset_peak() -> None:
    """Reset the peak to the current resident memory (Linux: ``5 > /proc/self/clear_refs``),
    so that the compiler's own peak does not hide the gradient's."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _status_kib(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return float(line.split()[1])
    raise OSError(field)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=100_000, help="sequence length T")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--input", type=int, default=8)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--cell", default="lstm", choices=("lstm", "gru", "simple_rnn"))
    parser.add_argument("--remat", default="true", help="true, false or a chunk length")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument(
        "--compile-only",
        action="store_true",
        help="report XLA's buffer assignment without running (no memory used)",
    )
    args = parser.parse_args()
    remat = {"true": True, "false": False}.get(args.remat.lower())
    remat = int(args.remat) if remat is None else remat

    import jax
    import jax.numpy as jnp

    import gatedcells as gc

    cell = getattr(gc, args.cell)(args.hidden)
    params = cell.init(jax.random.key(0), args.input)
    shape = (args.batch, args.steps, args.input)
    if args.compile_only:  # abstract inputs: nothing allocated
        xs = jax.ShapeDtypeStruct(shape, jnp.float32)
    else:
        xs = jax.random.normal(jax.random.key(1), shape)
    targets = jax.random.normal(jax.random.key(2), (args.batch, args.hidden))

    def loss(params, xs):  # read out at the last step, as the long-range tasks do
        _, ys = gc.unroll(cell, params, xs, remat=remat)
        return jnp.mean(jnp.square(ys[:, -1] - targets))

    grad = jax.jit(jax.value_and_grad(loss))
    compiled = grad.lower(params, xs).compile()
    stats = compiled.memory_analysis()  # XLA's own buffer assignment (None where unsupported)
    temp = None if stats is None else round(stats.temp_size_in_bytes / 2**20, 1)
    if args.compile_only:
        print(json.dumps(dict(vars(args), remat=remat, xla_temp_mib=temp)))
        return
    jax.block_until_ready((params, xs, targets))
    reset_peak()
    before = rss_mib()
    value, grads = compiled(params, xs)
    jax.block_until_ready(grads)
    after = peak_mib()
    finite = bool(jnp.isfinite(value)) and all(
        bool(jnp.isfinite(g).all()) for g in jax.tree.leaves(grads)
    )
    times = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        jax.block_until_ready(compiled(params, xs))
        times.append(time.perf_counter() - start)
    record = dict(vars(args), remat=remat, rss_before_mib=round(before, 1),
                  peak_mib=round(after, 1), grad_peak_mib=round(after - before, 1),
                  seconds_per_step=round(min(times), 4), finite=finite, xla_temp_mib=temp,
                  ys_mib=round(args.batch * args.steps * args.hidden * 4 / 2**20, 1))  # fmt: skip
    print(json.dumps(record))


if __name__ == "__main__":
    main()
