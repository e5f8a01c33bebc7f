"""Sequence parallelism against one device, as one JSON line for
``tests/sequence/test_time_shards.py``: the time axis sharded over every device. Run it with
8 devices:

    XLA_FLAGS=--xla_force_host_platform_device_count=8 python tests/sequence/time_shards_run.py [--all]

- ``linear``: ``gc.linear_recurrence(..., axis_name="t")`` at T = 65,536 (B = 2, H = 4),
  with resets, lengths and a non-zero initial state, forwards and backwards, and every path
  and complex decays at T = 512 (every path with ``--all``): the largest difference of the values, the final state and
  the gradients from one device's, relative to each array's largest value;
- ``cells``: ``gc.sharded_unroll`` of the registry's linear cells against ``gc.unroll``
  (with ``--all``, also their other paths, stacks, a bidirectional layer and a 2 x 4 mesh
  with the batch split too);
- ``refused``: the message of each cell with no sequence-parallel form;
- ``memory``: the compiled gradient's buffers per device (``memory_analysis()``) at
  T = 65,536, one device against each of 8.
"""

import json
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from registry import build  # noqa: E402

import gatedcells as gc  # noqa: E402

D = jax.device_count()
MESH = jax.make_mesh((D,), ("t",))
TIME = P(None, "t")


def relative(got, want) -> float:
    """The largest difference of the leaves, each relative to its largest value."""
    diffs = []
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        g, w = np.asarray(g, np.complex128), np.asarray(w, np.complex128)
        diffs.append(float(np.max(np.abs(g - w), initial=0.0)) / max(np.max(np.abs(w)), 1e-30))
    return max(diffs)


def recurrence_grads(steps, reverse, method, dtype=jnp.float32, memory=False):
    """One device against D of the values and gradients of a loss of the recurrence."""
    k = jax.random.split(jax.random.key(steps), 4)
    log_a = -jax.nn.softplus(jax.random.normal(k[0], (2, steps, 4)) - 4)  # a in (0.5, 1)
    if jnp.issubdtype(dtype, jnp.complexfloating):
        log_a = log_a + 1j * jax.random.uniform(k[0], (2, steps, 4), minval=-3, maxval=3)
    b = jax.random.normal(k[1], (2, steps, 4)).astype(dtype)
    h0 = jax.random.normal(k[2], (2, 4)).astype(dtype)
    resets = jax.random.uniform(k[3], (2, steps)) < 1e-3  # about 65 segments a row
    lengths = jnp.array([steps, steps - steps // 5 - 3])
    options = dict(reverse=reverse, method=method, chunk_size=16)

    def loss(log_a, b, h0, resets, lengths, axis_name=None):
        h, hs = gc.linear_recurrence(
            log_a, b, h0, resets=resets, lengths=lengths, axis_name=axis_name, **options
        )
        value = jnp.sum(jnp.sin(jnp.real(hs)) + jnp.cos(jnp.imag(hs)))
        value = value if axis_name is None else jax.lax.psum(value, axis_name)
        return value + jnp.sum(jnp.abs(h)), (h, hs)

    grad = jax.value_and_grad(loss, (0, 1, 2), has_aux=True)
    one = jax.jit(grad)
    specs = (TIME, TIME, P(), TIME, P())
    many = jax.jit(jax.shard_map(
        lambda *args: grad(*args, axis_name="t"), mesh=MESH, in_specs=specs,
        out_specs=((P(), (P(), TIME)), (TIME, TIME, P())),
    ))  # fmt: skip
    args = (log_a, b, h0, resets, lengths)
    split = [jax.device_put(v, NamedSharding(MESH, s)) for v, s in zip(args, specs, strict=True)]
    diff = relative(many(*split), one(*args))
    if not memory:
        return diff

    def buffers(fn, args):
        stats = fn.lower(*args).compile().memory_analysis()
        return stats.temp_size_in_bytes + stats.argument_size_in_bytes + stats.output_size_in_bytes

    return diff, {"one": buffers(one, args), "each_of_many": buffers(many, split)}


def cell_cases(full: bool):
    """``name -> (cell, input size, sharded_unroll options)``: the registry's linear cells,
    and with ``full`` the other paths, combinators and a 2 x 4 mesh."""
    rg, lru, ssm = build("rg_lru"), build("lru"), build("selective_ssm")
    cases = {
        "rg_lru_resets_reverse": (
            gc.rg_lru(6, num_heads=2, resets=True, input_proj=True),
            4,
            dict(reverse=True),
        ),
        "lru": (lru, 4, {}),
        "selective_ssm": (ssm, 4, {}),
        "min_gru": (build("min_gru"), 4, {}),
        "min_lstm_reverse": (build("min_lstm"), 4, dict(reverse=True)),
    }
    if not full:
        return cases
    return cases | {
        "rg_lru": (rg, 4, {}),
        "lru_chunked_reverse": (gc.lru(6, input_proj=True, method="chunked", chunk_size=4), 4,
                                dict(reverse=True)),
        "selective_ssm_reverse": (ssm, 4, dict(reverse=True)),
        "selective_ssm_associative": (gc.selective_ssm(6, state_size=3, input_proj=True,
                                                       method="associative"), 4, {}),
        "min_gru_associative": (gc.min_gru(6, method="associative"), 4, {}),
        "stack_rg_lru_min_gru": (gc.stack(rg, build("min_gru")), 4, {}),
        "bidirectional_lru_ssm": (gc.bidirectional(lru, ssm), 4, {}),
        "rg_lru_batch_split": (rg, 4, dict(mesh=jax.make_mesh((2, D // 2), ("b", "t")),
                                           batch_axis_name="b")),
    }  # fmt: skip


def check_cell(cell, input_size, options, steps=64):
    """``gc.sharded_unroll`` against ``gc.unroll``: values, carry and the gradients with
    respect to the params and the inputs, with lengths and a drawn initial carry."""
    k = jax.random.split(jax.random.key(7), 4)
    params = cell.init(k[0], input_size)
    xs = jax.random.normal(k[1], (4, steps, input_size))
    if cell.name.startswith("rg_lru") and "resets=True" in cell.name:  # flags on channel -1
        flags = (jax.random.uniform(k[3], (4, steps, 1)) < 0.1).astype(xs.dtype)
        xs = jnp.concatenate([xs[..., :-1], flags], axis=-1)
    carry = jax.tree.map(lambda c: jax.random.normal(k[2], c.shape, c.dtype),
                         cell.initial_carry((4,)))  # fmt: skip
    lengths = jnp.array([steps, steps - 5, 17, 0])
    mesh = options.pop("mesh", MESH)
    reverse = options.pop("reverse", False)

    def loss(run):
        def value(params, xs, carry):
            h, ys = run(params, xs, carry)
            return jnp.sum(jnp.sin(ys)) + sum(jnp.sum(c**2) for c in jax.tree.leaves(h)), (h, ys)

        return jax.jit(jax.value_and_grad(value, (0, 1, 2), has_aux=True))

    one = loss(lambda p, x, c: gc.unroll(cell, p, x, c, lengths=lengths, reverse=reverse))
    many = loss(lambda p, x, c: gc.sharded_unroll(
        cell, p, x, c, mesh=mesh, axis_name="t", lengths=lengths, reverse=reverse, **options
    ))  # fmt: skip
    return relative(many(params, xs, carry), one(params, xs, carry))


def refusal(cell):
    xs = jnp.ones((2, 8, 3))
    try:
        gc.sharded_unroll(cell, cell.init(jax.random.key(0), 3), xs, mesh=MESH, axis_name="t")
    except ValueError as err:
        return str(err)
    return None


def main(full: bool) -> None:
    start = time.perf_counter()
    out = {"devices": D, "linear": {}, "cells": {}}
    for reverse in (False, True):
        name = "sequential_65536" + ("_reverse" if reverse else "")
        out["linear"][name], memory = recurrence_grads(65536, reverse, "sequential", memory=True)
        out["memory" + ("_reverse" if reverse else "")] = memory
    for method in ("sequential", "associative", "chunked") if full else ("sequential",):
        for dtype in (jnp.float32, jnp.complex64):
            name = f"{method}_512_{jnp.dtype(dtype).name}"
            out["linear"][name] = recurrence_grads(512, method == "chunked", method, dtype)
    for name, case in cell_cases(full).items():
        out["cells"][name] = check_cell(*case)
    out["refused"] = {
        name: refusal(cell)
        for name, cell in {"lstm": gc.lstm(4), "mlstm": gc.mlstm(4, num_heads=2),
                           "resettable_min_gru": gc.resettable(gc.min_gru(4)),
                           "stack_min_gru_gru": gc.stack(gc.min_gru(4), gc.gru(4))}.items()
    }  # fmt: skip
    out["seconds"] = time.perf_counter() - start
    print(json.dumps(out))


if __name__ == "__main__":
    sys.exit(main(full="--all" in sys.argv))
