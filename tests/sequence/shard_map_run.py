"""Runs every registry cell, and the sequence options and layers, inside ``jax.shard_map``
(``check_vma=True``, the batch split over every device, params replicated) and on one
device, and prints what ``tests/sequence/test_shard_map.py`` checks, as one JSON line. Run
it with several devices, e.g.

    XLA_FLAGS=--xla_force_host_platform_device_count=4 python tests/sequence/shard_map_run.py
"""

import json
import os
import sys
import time
import traceback

import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from registry import NAMES, PER_BATCH_MASKS, build  # noqa: E402

import gatedcells as gc  # noqa: E402
import gatedcells.linen as gl  # noqa: E402
import gatedcells.nnx as gnnx  # noqa: E402

I, T = 4, 7


def unrolled(cell, grads=("auto",), **kw):
    """A case running ``gc.unroll(cell, params, xs, **kw)`` under each of ``grads``."""

    def run(params, xs, lengths, grad):
        return gc.unroll(cell, params, xs, grad=grad, **kw)

    run.grads = grads

    return cell.init(jax.random.key(0), I), run


def with_lengths(cell, grads=("auto", "autodiff"), **kw):
    def run(params, xs, lengths, grad):
        return gc.unroll(cell, params, xs, lengths=lengths, grad=grad, **kw)

    run.grads = grads

    return cell.init(jax.random.key(0), I), run


def linen_rnn(cell):
    layer = gl.RNN(cell, return_carry=True, reverse=True, keep_order=True)
    variables = layer.init(jax.random.key(0), jnp.ones((2, T, I)))

    def run(variables, xs, lengths, grad):
        return layer.apply(variables, xs, seq_lengths=lengths)

    return variables, run


def nnx_rnn(cell):
    from flax import nnx

    graphdef, state = nnx.split(gnnx.RNN(cell, I, rngs=nnx.Rngs(0), return_carry=True))

    def run(state, xs, lengths, grad):
        return nnx.merge(graphdef, state)(xs, seq_lengths=lengths)

    return state, run


def cases():
    """``name -> (params, run(params, xs, lengths, grad) -> (carry, ys))``."""
    out = {name: unrolled(build(name)) for name in NAMES}
    lstm, gru, mlstm = gc.lstm(6), gc.gru(5), gc.mlstm(6, num_heads=2)
    out.update({
        "lstm_lengths_reverse": with_lengths(lstm, reverse=True),
        "lstm_autodiff": unrolled(lstm, grads=("autodiff",)),
        "lstm_remat": unrolled(lstm, grads=("auto", "autodiff"), remat=3),
        "gru_remat_lengths": with_lengths(gru, remat=True),
        "mlstm_chunkwise_lengths": with_lengths(gc.mlstm(6, form="chunkwise", chunk_size=3)),
        "mlstm_parallel_reverse": with_lengths(gc.mlstm(6, form="parallel"), reverse=True),
        "min_gru_associative_lengths": with_lengths(gc.min_gru(6), reverse=True),
        "rg_lru_sequential_remat": with_lengths(gc.rg_lru(6, input_proj=True, method="sequential"), remat=2),
        "lru_chunked_reverse": with_lengths(gc.lru(6, input_proj=True, method="chunked", chunk_size=2), reverse=True),
        "bidirectional_lstm_gru": with_lengths(gc.bidirectional(lstm, gru)),
        "stack_lstm_mlstm_lengths": with_lengths(gc.stack(lstm, mlstm, gc.min_gru(4))),
        "linen_rnn": linen_rnn(gru),
        "nnx_rnn": nnx_rnn(lstm),
    })  # fmt: skip
    return out


def check(name, params, run, mesh, xs, lengths):
    """The largest difference between the sharded and the one-device results."""

    def compute(params, xs, lengths, total):
        out = {}
        for grad in getattr(run, "grads", ("auto",)):

            def loss(params, xs, grad=grad):
                carry, ys = run(params, xs, lengths, grad)
                value = jnp.sum(jnp.sin(ys)) + sum(jnp.sum(c) for c in jax.tree.leaves(carry))
                return total(value), (carry, ys)

            (value, aux), grads = jax.value_and_grad(loss, (0, 1), has_aux=True)(params, xs)
            out[grad] = (value, aux, grads)
        return out

    one = jax.jit(lambda p, x, n: compute(p, x, n, lambda v: v))
    shapes = jax.eval_shape(one, params, xs, lengths)

    def spec(leaf):  # batch-major arrays are split, the rest (losses, params' grads) is not
        return P("b") if leaf.ndim and leaf.shape[0] == xs.shape[0] else P()

    out_specs = jax.tree.map(spec, shapes)
    for grad in out_specs:  # the params' gradients are replicated whatever their shape
        value, aux, (g_params, g_xs) = out_specs[grad]
        out_specs[grad] = (value, aux, (jax.tree.map(lambda _: P(), g_params), g_xs))
    many = jax.jit(jax.shard_map(
        lambda p, x, n: compute(p, x, n, lambda v: jax.lax.psum(v, "b")),
        mesh=mesh, in_specs=(P(), P("b"), P("b")), out_specs=out_specs,
    ))  # fmt: skip
    split = jax.sharding.NamedSharding(mesh, P("b"))  # make_mesh's axes are explicit
    got = many(params, jax.device_put(xs, split), jax.device_put(lengths, split))
    if name in PER_BATCH_MASKS:  # masks drawn per batch shape: one device runs each shard
        parts = [
            one(params, x, n) for x, n in zip(jnp.split(xs, 4), jnp.split(lengths, 4), strict=True)
        ]
        want = jax.tree.map(
            lambda s, *a: jnp.concatenate(a) if s == P("b") else sum(a), out_specs, *parts,
            is_leaf=lambda s: isinstance(s, P),
        )  # fmt: skip
    else:
        want = one(params, xs, lengths)
    diffs = [float(jnp.max(jnp.abs(a - b), initial=0.0)) for a, b in
             zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True)]  # fmt: skip
    scale = max(float(jnp.max(jnp.abs(a), initial=0.0)) for a in jax.tree.leaves(want))
    return max(diffs) / max(1.0, scale)


def main() -> None:
    start = time.perf_counter()
    mesh = jax.make_mesh((jax.device_count(),), ("b",))
    xs = jax.random.normal(jax.random.key(1), (8, T, I))
    lengths = jnp.array([7, 3, 0, 7, 5, 1, 6, 2])
    results, errors = {}, {}
    for name, (params, run) in cases().items():
        try:
            results[name] = check(name, params, run, mesh, xs, lengths)
        except Exception as err:  # noqa: BLE001 - reported per case
            errors[name] = "".join(traceback.format_exception_only(err)).strip()[:400]
    print(json.dumps({
        "devices": jax.device_count(), "diffs": results, "errors": errors,
        "seconds": time.perf_counter() - start,
    }))  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
