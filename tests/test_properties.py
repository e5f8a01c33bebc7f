"""Property-based tests (hypothesis) of the sequence semantics, over random cells, batch
shapes (ranks 0 to 2), lengths, directions and layouts. The examples per property come from
the hypothesis profile in ``conftest.py`` (few and tiny by default; ``HYPOTHESIS_PROFILE=
thorough`` for many). They explore what the contract, padding and unroll suites check on
fixed cases, over shapes drawn anew: each example compiles, so they run in ``make test``."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import gatedcells as gc

pytestmark = pytest.mark.slow  # random shapes: every example compiles anew

I, H = 3, 6
# One of each sequence path: fused additive (LSTM), fused with a reset (Cho GRU), plain
# autodiff (JANET), a stack, a linear recurrence with a driver of its own (minGRU), Elman,
# the delta rule's chunkwise form.
FACTORIES = {
    "lstm": lambda: gc.lstm(H),
    "gru_cho": lambda: gc.gru(H, reset_after=False),
    "janet": lambda: gc.lstm_variant(H, variant="janet", chrono=20),
    "stack_gru_lstm": lambda: gc.stack(gc.gru(H), gc.lstm(H + 1)),
    "min_gru": lambda: gc.min_gru(H, method="sequential"),
    "simple_rnn": lambda: gc.simple_rnn(H),
    # a chunkwise driver of its own with a convolution window in the carry
    "gated_delta_net": lambda: gc.gated_delta_net(H, num_heads=2, qk_dim=4, chunk_size=2),
}
NAMES = sorted(FACTORIES)
_BUILT = {}


def built(name):
    """The cell ``name`` and its params, built once (cells compare by identity)."""
    if name not in _BUILT:
        cell = FACTORIES[name]()
        _BUILT[name] = cell, cell.init(jax.random.key(len(_BUILT)), I)
    return _BUILT[name]


class Problem(tuple):
    """``(name, cell, params, xs, carry, lengths)``, shown briefly by hypothesis."""

    def __repr__(self):
        name, _, _, xs, _, lengths = self
        return f"Problem({name}, xs {tuple(xs.shape)}, lengths {np.asarray(lengths).tolist()})"


@st.composite
def problems(draw, min_steps=1):
    """A cell, its params, inputs ``[*B, T, I]``, a carry and lengths ``[*B]``."""
    name = draw(st.sampled_from(NAMES))
    cell, params = built(name)
    # a few shapes, so that examples share compiled programs (values are what vary)
    batch = draw(st.sampled_from([(), (1,), (3,), (2, 2)]))
    steps = draw(st.sampled_from([n for n in (1, 2, 5) if n >= min_steps]))
    seed = draw(st.integers(0, 2**16))
    kx, kc, kl = jax.random.split(jax.random.key(seed), 3)
    xs = jax.random.normal(kx, (*batch, steps, I))
    carry = jax.tree.map(
        lambda z: 0.5 * jax.random.normal(kc, z.shape, z.dtype), cell.initial_carry(batch)
    )
    lengths = jax.random.randint(kl, batch, 0, steps + 1)
    return Problem((name, cell, params, xs, carry, lengths))


# unroll compiled once per cell, flags and shapes (eager calls would compile op by op)
unroll = jax.jit(gc.unroll, static_argnames=("cell", "reverse", "time_major"))


def steps_of(lengths, steps):
    """``[1, ..., 1, T]`` time indices broadcastable against ``lengths[..., None]``."""
    return jnp.arange(steps).reshape((1,) * np.ndim(lengths) + (steps,))


def close(a, b, **kw):
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6, **kw), a, b)


def flip_within(xs, lengths):
    """Reverse each sequence of ``xs [*B, T, F]`` within its own length (padding stays)."""
    t = steps_of(lengths, xs.shape[-2])
    lengths = lengths[..., None]
    index = jnp.where(t < lengths, lengths - 1 - t, t)  # [*B, T]
    return jnp.take_along_axis(xs, index[..., None], axis=-2)


def select(tree, mask):
    """Leaves of ``tree`` at the batch positions where ``mask [*B]`` is true."""
    return jax.tree.map(lambda a: np.asarray(a)[np.asarray(mask)], tree)


@given(problems(), st.booleans())
def test_lengths_carry_is_the_truncated_unrolls_and_outputs_past_the_end_are_zero(problem, reverse):
    name, cell, params, xs, carry, lengths = problem
    final, ys = unroll(cell, params, xs, carry, lengths=lengths, reverse=reverse)
    steps = xs.shape[-2]
    past = steps_of(lengths, steps) >= lengths[..., None]  # [*B, T]
    assert float(jnp.abs(jnp.where(past[..., None], ys, 0.0)).max(initial=0.0)) == 0.0
    for length in np.unique(np.asarray(lengths)):
        mask = np.asarray(lengths) == length
        if length == 0:  # nothing read: the carry is the initial one
            close(select(final, mask), select(carry, mask), err_msg=name)
            continue
        c, y = unroll(cell, params, xs[..., :length, :], carry, reverse=reverse)
        close(select(final, mask), select(c, mask), err_msg=name)
        close(select(ys[..., :length, :], mask), select(y, mask), err_msg=name)


@given(problems(), st.booleans())
def test_reverse_is_forward_over_sequences_flipped_within_their_lengths(problem, time_major):
    name, cell, params, xs, carry, lengths = problem
    c_rev, y_rev = unroll(cell, params, xs, carry, lengths=lengths, reverse=True)
    flipped = flip_within(xs, lengths)
    if time_major:
        flipped = jnp.moveaxis(flipped, -2, 0)
    c_fwd, y_fwd = unroll(cell, params, flipped, carry, lengths=lengths, time_major=time_major)
    if time_major:
        y_fwd = jnp.moveaxis(y_fwd, 0, -2)
    close(c_rev, c_fwd, err_msg=name)
    close(y_rev, flip_within(y_fwd, lengths), err_msg=name)


@given(problems())
def test_forward_then_flip_equals_reverse(problem):
    name, cell, params, xs, carry, _ = problem
    c_rev, y_rev = unroll(cell, params, xs, carry, reverse=True)
    c_fwd, y_fwd = unroll(cell, params, jnp.flip(xs, axis=-2), carry)
    close(c_rev, c_fwd, err_msg=name)
    close(y_rev, jnp.flip(y_fwd, axis=-2), err_msg=name)


@given(problems(), st.booleans(), st.booleans())
def test_stack_of_one_cell_is_the_cell(problem, reverse, with_lengths):
    name, cell, params, xs, carry, lengths = problem
    lengths = lengths if with_lengths else None
    one = _stack_of(name)
    c1, y1 = unroll(one, (params,), xs, (carry,), lengths=lengths, reverse=reverse)
    c, y = unroll(cell, params, xs, carry, lengths=lengths, reverse=reverse)
    close(c1, (c,), err_msg=name)
    close(y1, y, err_msg=name)
    assert one.output_size == cell.output_size


_STACKS = {}


def _stack_of(name):
    if name not in _STACKS:
        _STACKS[name] = gc.stack(built(name)[0])
    return _STACKS[name]


@given(problems())
def test_step_is_recur_of_project_and_one_step_of_unroll(problem):
    name, cell, params, xs, carry, _ = problem
    x = xs[..., 0, :]
    c_step, y_step = cell.step(params, carry, x)
    c_split, y_split = cell.recur(params, carry, cell.project(params, x))
    close((c_step, y_step), (c_split, y_split), err_msg=name)
    c_seq, y_seq = unroll(cell, params, xs[..., :1, :], carry)
    close((c_step, y_step), (c_seq, y_seq[..., 0, :]), err_msg=name)


_BIDIRECTIONAL = {}


@given(problems(), st.sampled_from(NAMES), st.booleans())
def test_bidirectional_is_forward_and_reversed_unrolls_concatenated(problem, other, lengths_on):
    name, forward, p_fwd, xs, c_fwd, lengths = problem
    backward, p_bwd = built(other)
    key = (name, other)
    if key not in _BIDIRECTIONAL:
        _BIDIRECTIONAL[key] = gc.bidirectional(forward, backward)
    layer = _BIDIRECTIONAL[key]
    lengths = lengths if lengths_on else None
    c_bwd = backward.initial_carry(xs.shape[:-2])
    (cf, cb), ys = unroll(layer, (p_fwd, p_bwd), xs, (c_fwd, c_bwd), lengths=lengths)
    cf_ref, yf = unroll(forward, p_fwd, xs, c_fwd, lengths=lengths)
    cb_ref, yb = unroll(backward, p_bwd, xs, c_bwd, lengths=lengths, reverse=True)
    close((cf, cb), (cf_ref, cb_ref), err_msg=key)
    close(ys, jnp.concatenate([yf, yb], axis=-1), err_msg=key)
    assert layer.output_size == forward.output_size + backward.output_size


@given(problems(min_steps=2), st.lists(st.integers(0, 2**16), min_size=3, max_size=5))
def test_changing_only_the_values_of_lengths_does_not_recompile(problem, seeds):
    name, cell, params, xs, carry, _ = problem
    traces = []

    @jax.jit
    def run(params, xs, lengths):
        traces.append(None)  # runs once per trace
        return gc.unroll(cell, params, xs, lengths=lengths)

    outs = set()
    for seed in seeds:
        lengths = jax.random.randint(jax.random.key(seed), xs.shape[:-2], 0, xs.shape[-2] + 1)
        _, ys = run(params, xs, lengths)
        outs.add(float(jnp.sum(jnp.abs(ys))))
    assert len(traces) == 1, name
