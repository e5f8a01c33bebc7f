"""The ``gatedcells`` command."""

from __future__ import annotations

import argparse
import sys


def _showcase() -> None:
    import jax
    import jax.numpy as jnp

    import gatedcells as gc

    I, H, T = 8, 32, 50
    xs = jax.random.normal(jax.random.key(0), (4, T, I))
    simple = gc.count_params(gc.simple_rnn(H).init(jax.random.key(0), I))
    print(f"{'cell':<34}{'params':>8}{'x simple':>10}{'|y_T|':>8}")
    for cell in (gc.simple_rnn(H), gc.lstm(H, forget_gate=False), gc.lstm(H), gc.gru(H)):
        params = cell.init(jax.random.key(1), I)
        _, ys = jax.jit(lambda p, xs, cell=cell: gc.unroll(cell, p, xs))(params, xs)
        n = gc.count_params(params)
        norm = float(jnp.linalg.norm(ys[:, -1], axis=-1).mean())
        print(f"{cell.name:<34}{n:>8}{n / simple:>10.2f}{norm:>8.3f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gatedcells", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="show the cells: parameter counts and a forward pass")
    args = parser.parse_args(argv)
    if args.command == "demo":
        _showcase()
    return 0


if __name__ == "__main__":
    sys.exit(main())
