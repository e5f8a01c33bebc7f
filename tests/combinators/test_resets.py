"""Resets (packed sequences) against separate runs of the unpacked sequences, and the learned
initial carry."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gatedcells as gc

I, H = 2, 4
SEGMENTS = [(3, 4, 2), (5, 1)]  # row 0 packs three sequences, row 1 two (then padding)
T = 10
LENGTHS = np.array([sum(s) for s in SEGMENTS])


def packed():
    """Inputs ``[2, T, I + 1]`` (the last channel flags each sequence's first step) and the
    unpacked sequences of each row."""
    xs = np.asarray(jax.random.normal(jax.random.key(0), (len(SEGMENTS), T, I)))
    flags = np.zeros((len(SEGMENTS), T, 1), np.float32)
    pieces = []
    for row, sizes in enumerate(SEGMENTS):
        starts = np.cumsum((0, *sizes[:-1]))
        flags[row, starts] = 1.0
        pieces.append([xs[row, s : s + n] for s, n in zip(starts, sizes, strict=True)])
    flags[1, LENGTHS[1] :] = 1.0  # flags on the padding are ignored
    return jnp.asarray(np.concatenate([xs, flags], -1)), pieces


def run_steps(cell, params, xs, reverse=False):
    """A separate run of one sequence ``xs [n, I]`` by a loop of steps (no compilation per
    sequence length)."""
    carry, ys = cell.initial_carry(), [None] * len(xs)
    for t in range(len(xs) - 1, -1, -1) if reverse else range(len(xs)):
        carry, ys[t] = cell.step(params, carry, xs[t])
    return carry, jnp.stack(ys)


def close(a, b):
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6), a, b)


@pytest.mark.parametrize("name", ["min_gru", "stack"])
@pytest.mark.parametrize("reverse", [False, True])
def test_packed_rows_equal_separate_runs(name, reverse):
    inner = {"min_gru": gc.min_gru(H), "stack": gc.stack(gc.gru(H), gc.lstm(3))}[name]
    cell = gc.resettable(inner)
    params = cell.init(jax.random.key(1), I + 1)
    xs, pieces = packed()
    carry, ys = gc.unroll(cell, params, xs, lengths=jnp.asarray(LENGTHS), reverse=reverse)
    for row, row_pieces in enumerate(pieces):
        runs = [run_steps(inner, params, p, reverse) for p in row_pieces]
        close(ys[row, : LENGTHS[row]], jnp.concatenate([y for _, y in runs]))
        assert not np.any(ys[row, LENGTHS[row] :])
        # the carry after the last step read: the last sequence's, or backwards the first's
        close(jax.tree.map(lambda c, r=row: c[r], carry), runs[0 if reverse else -1][0])


def test_bidirectional_layer_on_packed_rows():
    inner = gc.gru(H)
    layer = gc.bidirectional(gc.resettable(inner))
    params = layer.init(jax.random.key(1), I + 1)
    xs, pieces = packed()
    _, ys = gc.unroll(layer, params, xs, lengths=jnp.asarray(LENGTHS))
    for row, row_pieces in enumerate(pieces):
        forward = [run_steps(inner, params[0], p)[1] for p in row_pieces]
        backward = [run_steps(inner, params[1], p, reverse=True)[1] for p in row_pieces]
        want = jnp.concatenate(
            [jnp.concatenate(fb, -1) for fb in zip(forward, backward, strict=True)]
        )
        close(ys[row, : LENGTHS[row]], want)


def test_reset_applies_before_the_step_reads_the_carry():
    cell = gc.resettable(gc.gru(H))
    params = cell.init(jax.random.key(1), I + 1)
    carry = jnp.ones((H,))
    x = jnp.array([0.5, -0.5, 1.0])  # flag set: the step reads the initial carry (zeros)
    close(cell.step(params, carry, x), gc.gru(H).step(params, jnp.zeros(H), x[:I]))
    x = x.at[I].set(0.0)
    close(cell.step(params, carry, x), gc.gru(H).step(params, carry, x[:I]))


def test_learned_initial_carry_starts_every_row_and_learns():
    inner = gc.lstm(H)
    cell = gc.learned_initial_carry(inner, init=jax.nn.initializers.normal(1.0))
    params = cell.init(jax.random.key(1), I)
    assert gc.count_params(params) == gc.count_params(params.cell) + 2 * H
    xs = jax.random.normal(jax.random.key(2), (3, T, I))
    lengths = jnp.array([T, 4, 0])
    carry0 = jax.tree.map(lambda c: jnp.broadcast_to(c, (3, H)), params.carry)
    carry, ys = gc.unroll(cell, params, xs, lengths=lengths)
    want_carry, want_ys = gc.unroll(inner, params.cell, xs, carry0, lengths=lengths)
    close((carry.carry, ys), (want_carry, want_ys))
    np.testing.assert_array_equal(carry.started[:, 0], [1, 1, 0])
    # one step at a time gives the same (rows 0 and 1 have at least 3 valid steps)
    c = cell.initial_carry((3,))
    for t in range(3):
        c, y = cell.step(params, c, xs[:, t])
        close(y[:2], want_ys[:2, t])
    # the gradient reaches the learned carry: the batch sum of the carry's gradient

    def loss(params):
        return jnp.sum(gc.unroll(cell, params, xs, lengths=lengths)[1] ** 2)

    def loss_explicit(carry0):
        return jnp.sum(gc.unroll(inner, params.cell, xs, carry0, lengths=lengths)[1] ** 2)

    d_learned = jax.grad(loss)(params).carry
    d_explicit = jax.tree.map(lambda g: g.sum(0), jax.grad(loss_explicit)(carry0))
    close(d_learned, d_explicit)
    assert float(jnp.abs(d_learned.h).sum()) > 0


def test_resets_start_from_the_learned_carry():
    inner = gc.learned_initial_carry(gc.gru(H), init=jax.nn.initializers.normal(1.0))
    cell = gc.resettable(inner)
    params = cell.init(jax.random.key(1), I + 1)
    xs, pieces = packed()
    _, ys = gc.unroll(cell, params, xs, lengths=jnp.asarray(LENGTHS))
    for row, row_pieces in enumerate(pieces):
        want = jnp.concatenate([run_steps(inner, params, p)[1] for p in row_pieces])
        close(ys[row, : LENGTHS[row]], want)


def test_learned_carry_params_are_checked():
    cell = gc.learned_initial_carry(gc.gru(H))
    with pytest.raises(ValueError, match="LearnedCarryParams"):
        cell.check_params(gc.gru(H).init(jax.random.key(0), I))
    params = cell.init(jax.random.key(0), I)
    with pytest.raises(ValueError, match="params.carry"):
        cell.check_params(params._replace(carry=jnp.zeros(H + 1)))
