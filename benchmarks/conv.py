"""Convolutional cells on this backend: speed against Flax, the measurements behind their
design, and the moving-shapes task.

    python benchmarks/conv.py speed    # gc.conv_lstm against flax's ConvLSTMCell under nn.RNN
    python benchmarks/conv.py ops      # lax.conv against patches @ kernel, hoisted or not
    python benchmarks/conv.py fused    # autodiff against the custom gradient (weight
                                       # gradient after the loop, one matmul)
    python benchmarks/conv.py shapes   # ConvLSTM against a dense LSTM on moving_shapes

The shape: B=8, T=20, 32x32 frames, 8 channels in, H=32, a 3x3 kernel. Every
timing is forward+backward (``jax.grad`` of the sum of squared outputs, with respect to the
params and the inputs) unless it says forward; the systems run interleaved, one call each in
turn, and the median is reported with the load average (the CPU may be shared).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import jax
import jax.numpy as jnp

import gatedcells as gc
from gatedcells.cells._convolution import Conv

B, T, S, C, H, K = 8, 20, (32, 32), 8, 32, (3, 3)


def load() -> str:
    return "load average " + ", ".join(f"{x:.1f}" for x in os.getloadavg())


def interleaved(fns: dict, args: dict, runs: int) -> dict[str, list[float]]:
    """Seconds per call of each ``fns[name](*args[name])``, compiled first, run in turn."""
    for name, fn in fns.items():
        jax.block_until_ready(fn(*args[name]))
    times = {name: [] for name in fns}
    for _ in range(runs):
        for name, fn in fns.items():
            start = time.perf_counter()
            jax.block_until_ready(fn(*args[name]))
            times[name].append(time.perf_counter() - start)
    return times


def report(times: dict[str, list[float]], reference: str | None = None) -> None:
    base = statistics.median(times[reference]) if reference else None
    for name, t in times.items():
        med = statistics.median(t)
        ratio = f"  {med / base:5.2f}x {reference}" if base else ""
        runs = ", ".join(f"{1e3 * x:.0f}" for x in t)
        print(f"  {name:28s} median {1e3 * med:9.1f} ms  min {1e3 * min(t):9.1f}{ratio}  [{runs}]")


def grad_of(run):
    """``jit(grad)`` of ``sum(ys**2)`` with respect to the params and the inputs."""
    return jax.jit(jax.grad(lambda p, xs: jnp.sum(run(p, xs) ** 2), argnums=(0, 1)))


def frames(steps: int = T) -> jax.Array:
    return jax.random.normal(jax.random.key(1), (B, steps, *S, C))


# --------------------------------------------------------------------------------------
# speed: against Flax.


def speed(runs: int) -> None:
    import flax.linen as nn

    xs = frames()
    flax_rnn = nn.RNN(nn.ConvLSTMCell(features=H, kernel_size=K))
    variables = flax_rnn.init(jax.random.key(0), xs)
    cell = gc.conv_lstm(H, K)
    params = cell.init(jax.random.key(0), C)
    ours = lambda p, xs: gc.unroll(cell, p, xs)[1]
    args = {"flax ConvLSTMCell": (variables, xs), "gatedcells conv_lstm": (params, xs)}
    print(f"{jax.default_backend()}, B={B} T={T} S={S} C={C} H={H} K={K}, {load()}")
    print("forward:")
    fwd = {"flax ConvLSTMCell": jax.jit(flax_rnn.apply), "gatedcells conv_lstm": jax.jit(ours)}
    report(interleaved(fwd, args, runs), "flax ConvLSTMCell")
    print(f"forward+backward ({load()}):")
    both = {"flax ConvLSTMCell": grad_of(flax_rnn.apply), "gatedcells conv_lstm": grad_of(ours)}
    report(interleaved(both, args, runs), "flax ConvLSTMCell")
    print(f"done, {load()}")


# --------------------------------------------------------------------------------------
# ops: the convolution's form, and where the input convolution runs.


def lax_conv(x, w):
    pads = tuple(((k - 1) // 2,) * 2 for k in K)
    return jax.lax.conv_general_dilated(
        x, w, (1, 1), pads, dimension_numbers=("NHWC", "HWIO", "NHWC")
    )


def im2col(x, w):
    return Conv(K, tuple(((k - 1) // 2,) * 2 for k in K))(x, w)


def shifted_sum(x, w):  # prod(K) matmuls of shifted views, no patches
    padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    out = 0
    for i in range(K[0]):
        for j in range(K[1]):
            out = out + padded[:, i : i + S[0], j : j + S[1]] @ w[i, j]
    return out


def lstm_loop(conv, hoist: bool, steps: int):
    """A ConvLSTM over ``[T, B, *S, C]`` with ``conv`` for both convolutions."""

    def run(params, xs):
        w_x, w_h = params
        if hoist:
            xs = conv(xs.reshape(-1, *S, C), w_x).reshape(steps, B, *S, 4 * H)

        def body(carry, x):
            c, h = carry
            z = (x if hoist else conv(x, w_x)) + conv(h, w_h)
            i, f, g, o = jnp.split(z, 4, axis=-1)
            c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
            h = jax.nn.sigmoid(o) * jnp.tanh(c)
            return (c, h), h

        zeros = jnp.zeros((B, *S, H))
        return jax.lax.scan(body, (zeros, zeros), xs)[1]

    return run


def ops(runs: int, steps: int) -> None:
    kx, kh = jax.random.split(jax.random.key(0))
    params = (
        0.1 * jax.random.normal(kx, (*K, C, 4 * H)),
        0.05 * jax.random.normal(kh, (*K, H, 4 * H)),
    )
    xs = jnp.moveaxis(frames(steps), 1, 0)
    forms = {"im2col": im2col, "lax.conv": lax_conv, "shifted sum": shifted_sum}
    print(f"{jax.default_backend()}, a ConvLSTM scan, T={steps}, {load()}")
    for mode in ("forward", "forward+backward"):
        fns, args = {}, {}
        for name, conv in forms.items():
            for hoist in (False, True):
                if hoist and name != "im2col":
                    continue
                run = lstm_loop(conv, hoist, steps)
                label = f"{name}{', hoisted input' if hoist else ''}"
                fns[label] = jax.jit(run) if mode == "forward" else grad_of(run)
                args[label] = (params, xs)
        print(f"{mode}:")
        report(interleaved(fns, args, runs), "im2col")
    print(f"done, {load()}")


# --------------------------------------------------------------------------------------
# fused: the custom gradient of the dense cells, generalised to the convolution.


def fused_conv_lstm(conv: Conv):
    """A ConvLSTM scan whose gradient keeps only the pointwise part and ``d h`` in the
    backward loop, and forms ``dW_h`` after it as one matmul of all the saved states'
    patches (the ``MatmulSplit`` recipe with ``hidden = patches(h)``)."""

    def pointwise(carry, z):
        c, h = carry
        i, f, g, o = jnp.split(z, 4, axis=-1)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        return (c, h), h

    def loop(w_h, carry, x_proj, save):
        def body(carry, x_t):
            z = x_t + conv(carry[1], w_h)
            new, y = pointwise(carry, z)
            return new, ((y, carry, z) if save else y)

        return jax.lax.scan(body, carry, x_proj)

    @jax.custom_vjp
    def scan(w_h, carry, x_proj):
        return loop(w_h, carry, x_proj, False)

    def fwd(w_h, carry, x_proj):
        last, (ys, carries, zs) = loop(w_h, carry, x_proj, True)
        return (last, ys), (w_h, carries, zs)

    def bwd(residuals, cotangents):
        w_h, carries, zs = residuals
        d_last, d_ys = cotangents
        w_2d = w_h.reshape(-1, w_h.shape[-1])

        def body(d_carry, inputs):
            carry_t, z_t, d_y = inputs
            _, vjp = jax.vjp(pointwise, carry_t, z_t)
            (d_c, d_h), d_z = vjp((d_carry, d_y))
            _, vjp_patches = jax.vjp(conv.patches, carry_t[1])
            (d_through,) = vjp_patches(d_z @ w_2d.T)
            return (d_c, d_h + d_through), d_z

        d_first, d_zs = jax.lax.scan(body, d_last, (carries, zs, d_ys), reverse=True)
        h_prev = conv.patches(carries[1])  # every saved state's patches, [T, B, *S, 9H]
        flat = h_prev.reshape(-1, h_prev.shape[-1])
        d_w_h = (flat.T @ d_zs.reshape(-1, d_zs.shape[-1])).reshape(w_h.shape)
        return d_w_h, d_first, d_zs

    scan.defvjp(fwd, bwd)

    def run(params, xs):
        w_x, w_h = params
        x_proj = conv(xs, w_x)
        zeros = jnp.zeros((B, *S, H))
        return scan(w_h, (zeros, zeros), x_proj)[1]

    return run


def fused(runs: int) -> None:
    conv = Conv(K, ((1, 1), (1, 1)))
    kx, kh = jax.random.split(jax.random.key(0))
    params = (
        0.1 * jax.random.normal(kx, (*K, C, 4 * H)),
        0.05 * jax.random.normal(kh, (*K, H, 4 * H)),
    )
    xs = jnp.moveaxis(frames(), 1, 0)
    autodiff, custom = grad_of(lstm_loop(im2col, True, T)), grad_of(fused_conv_lstm(conv))
    diff = jax.tree.map(lambda a, b: float(jnp.abs(a - b).max() / jnp.abs(a).max()),
                        autodiff(params, xs), custom(params, xs))  # fmt: skip
    worst = max(jax.tree.leaves(diff))
    print(f"{jax.default_backend()}, max relative gradient difference {worst:.1e}")
    print(f"forward+backward, input projection hoisted in both ({load()}):")
    fns = {"autodiff": autodiff, "custom gradient": custom}
    report(interleaved(fns, dict.fromkeys(fns, (params, xs)), runs), "autodiff")
    print(f"done, {load()}")


# --------------------------------------------------------------------------------------
# shapes: ConvLSTM against a dense LSTM on moving_shapes, at about the same parameter count.


def shapes(steps: int, seeds: int, batch: int, length: int, size: int, only: str | None) -> None:
    import optax

    from gatedcells import tasks

    task = tasks.moving_shapes(length, size)
    conv_cell, dense_cell = gc.conv_lstm(16, (3, 3)), gc.lstm(8)

    def conv_model(key):
        kc, kr = jax.random.split(key)
        w = 0.1 * jax.random.normal(kr, (16, 1))
        return {"cell": conv_cell.init(kc, 1), "w": w, "b": jnp.zeros((1,))}

    def conv_apply(params, xs):  # [B, T, size, size, 1] -> same
        ys = gc.unroll(conv_cell, params["cell"], xs)[1]
        return ys @ params["w"] + params["b"]

    def dense_model(key):
        kc, kr = jax.random.split(key)
        w = 0.1 * jax.random.normal(kr, (8, size * size))
        return {"cell": dense_cell.init(kc, size * size), "w": w, "b": jnp.zeros((size * size,))}

    def dense_apply(params, xs):  # frames flattened to size*size inputs
        ys = gc.unroll(dense_cell, params["cell"], xs.reshape(*xs.shape[:2], -1))[1]
        return (ys @ params["w"] + params["b"]).reshape(xs.shape)

    models = {"conv_lstm(16, (3, 3))": (conv_model, conv_apply),
              "lstm(8), flattened frames": (dense_model, dense_apply)}  # fmt: skip
    models = {k: v for k, v in models.items() if only is None or k.startswith(only)}
    test_xs, test_ys = task.sample(jax.random.key(10_000), 256)
    print(f"{task.name}: {steps} Adam steps of batch {batch}, {seeds} seeds, {load()}")
    print(f"copy the last frame: test MSE {task.baseline_metric:.4f}; blank frame: "
          f"{float(jnp.mean(test_ys)):.4f}")  # fmt: skip
    rows = []
    for name, (init, apply) in models.items():
        optimizer = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(3e-3))

        @jax.jit
        def step(params, opt_state, key, apply=apply, optimizer=optimizer):
            xs, ys = task.sample(key, batch)
            loss, grads = jax.value_and_grad(lambda p: task.loss(apply(p, xs), ys))(params)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return optax.apply_updates(params, updates), opt_state, loss

        results, count, seconds = [], 0, 0.0
        for seed in range(seeds):
            params = init(jax.random.key(seed))
            count = gc.count_params(params)
            opt_state = optimizer.init(params)
            start = time.perf_counter()
            for k in jax.random.split(jax.random.key(100 + seed), steps):
                params, opt_state, _ = step(params, opt_state, k)
            test = float(task.metric(apply(params, test_xs), test_ys))
            seconds += time.perf_counter() - start
            results.append(test)
            print(f"  {name} seed {seed}: test MSE {test:.4f}", flush=True)
        rows.append((name, count, statistics.median(results), results, seconds / seeds))
    print("| model | params | test MSE (median) | seeds | s/run |")
    print("| --- | ---: | ---: | --- | ---: |")
    for name, count, med, results, secs in rows:
        each = ", ".join(f"{r:.4f}" for r in results)
        print(f"| {name} | {count:,} | {med:.4f} | {each} | {secs:.0f} |")
    print(f"| copy the last frame | 0 | {task.baseline_metric:.4f} | | |")
    print(f"done, {load()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("speed", "ops", "fused", "shapes"), nargs="?",
                        default="speed")  # fmt: skip
    parser.add_argument("--runs", type=int, default=5, help="timed calls per system")
    parser.add_argument("--T", type=int, default=None, help="time steps (ops: default 5)")
    parser.add_argument("--steps", type=int, default=600, help="shapes: training steps")
    parser.add_argument("--seeds", type=int, default=3, help="shapes: seeds per model")
    parser.add_argument("--batch", type=int, default=16, help="shapes: batch size")
    parser.add_argument("--size", type=int, default=16, help="shapes: frame side")
    parser.add_argument("--only", choices=("conv", "lstm"), help="shapes: one model only")
    args = parser.parse_args()
    if args.what == "speed":
        speed(args.runs)
    elif args.what == "ops":
        ops(args.runs, args.T or 5)
    elif args.what == "fused":
        fused(args.runs)
    else:
        shapes(args.steps, args.seeds, args.batch, args.T or 10, args.size, args.only)


if __name__ == "__main__":
    main()
