"""Bad input gets a clear error at the public boundary, naming the argument and the shape."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gatedcells as gc

I, H, B, T = 3, 4, 2, 5


@pytest.fixture
def lstm():
    cell = gc.lstm(H)
    return cell, cell.init(jax.random.key(0), I)


def test_xs_of_wrong_rank(lstm):
    cell, params = lstm
    with pytest.raises(
        ValueError, match=r"xs must have shape \[\*B, T, I\] with I=3.*got shape \(3,\)"
    ):
        gc.unroll(cell, params, jnp.ones(I))


def test_xs_of_wrong_input_size(lstm):
    cell, params = lstm
    with pytest.raises(
        ValueError, match=r"with I=3 \(the params' input size\), got shape \(2, 5, 7\)"
    ):
        gc.unroll(cell, params, jnp.ones((B, T, 7)))
    with pytest.raises(ValueError, match=r"\[T, \*B, I\]"):
        gc.unroll(cell, params, jnp.ones((T, B, 7)), time_major=True)


def test_xs_of_integer_dtype(lstm):
    cell, params = lstm
    with pytest.raises(TypeError, match="xs must have a floating dtype, got int32"):
        gc.unroll(cell, params, jnp.ones((B, T, I), jnp.int32))
    with pytest.raises(TypeError, match="xs must be an array, got list"):
        gc.unroll(cell, params, [[1.0, 2.0, 3.0]])


def test_carry_with_another_batch_shape(lstm):
    cell, params = lstm
    carry = cell.initial_carry((B + 1,))
    with pytest.raises(
        ValueError, match=r"carry does not match.*expected leaves of shape \(2, 4\)"
    ):
        gc.unroll(cell, params, jnp.ones((B, T, I)), carry)


def test_carry_of_another_structure(lstm):
    cell, params = lstm
    with pytest.raises(ValueError, match="carry must have the structure of cell.initial_carry"):
        gc.unroll(cell, params, jnp.ones((B, T, I)), jnp.zeros((B, H)))


def test_carry_of_integer_dtype(lstm):
    cell, params = lstm
    carry = gc.LSTMCarry(jnp.zeros((B, H), jnp.int32), jnp.zeros((B, H), jnp.int32))
    with pytest.raises(TypeError, match="carry must have a floating dtype"):
        gc.unroll(cell, params, jnp.ones((B, T, I)), carry)


def test_lengths_of_wrong_shape(lstm):
    cell, params = lstm
    with pytest.raises(
        ValueError, match=r"lengths must have shape \[\*B\]=\(2,\).*got shape \(3,\)"
    ):
        gc.unroll(cell, params, jnp.ones((B, T, I)), lengths=jnp.array([1, 2, 3]))


def test_lengths_of_float_dtype(lstm):
    cell, params = lstm
    with pytest.raises(TypeError, match="lengths must have an integer dtype, got float32"):
        gc.unroll(cell, params, jnp.ones((B, T, I)), lengths=jnp.array([1.0, 2.0]))


@pytest.mark.parametrize("lengths", [[-1, 2], [2, 6]])
def test_lengths_out_of_range(lstm, lengths):
    cell, params = lstm
    with pytest.raises(ValueError, match=r"lengths must lie in \[0, T\] = \[0, 5\]"):
        gc.unroll(cell, params, jnp.ones((B, T, I)), lengths=np.array(lengths))


def test_params_of_another_cell(lstm):
    cell, _ = lstm
    gru_params = gc.gru(H).init(jax.random.key(0), I)
    with pytest.raises(
        ValueError,
        match=r"params do not belong to this lstm\(4\).*w_x has shape \(3, 12\), expected \(3, 16\) \(params of type GRUParams\)",
    ):
        gc.unroll(cell, gru_params, jnp.ones((B, T, I)))
    with pytest.raises(ValueError, match="params do not belong to this gru"):
        gc.unroll(gc.gru(H + 1), gru_params, jnp.ones((B, T, I)))
    with pytest.raises(ValueError, match="expected a field 'w_x'"):
        gc.unroll(cell, {"kernel": jnp.ones(3)}, jnp.ones((B, T, I)))


def test_params_of_the_wrong_stack():
    deep = gc.stack(gc.lstm(H), gc.gru(H))
    params = deep.init(jax.random.key(0), I)
    with pytest.raises(ValueError, match="a tuple of 2 params, got tuple of length 1"):
        gc.unroll(deep, params[:1], jnp.ones((B, T, I)))
    bad = (params[0], gc.gru(H).init(jax.random.key(0), 7))
    with pytest.raises(ValueError, match=r"params\[1\] expect input size 7, but layer 0 outputs 4"):
        gc.unroll(deep, bad, jnp.ones((B, T, I)))


def test_step_input_of_wrong_size(lstm):
    cell, params = lstm
    with pytest.raises(
        ValueError, match=r"x must have shape \[\*B, I\] with I=3, got shape \(2, 5\)"
    ):
        cell.step(params, cell.initial_carry((B,)), jnp.ones((B, 5)))
    with pytest.raises(ValueError, match="carry does not match"):
        cell.step(params, cell.initial_carry((B + 1,)), jnp.ones((B, I)))


@pytest.mark.parametrize(
    "fixed, forget_gate, message",
    [
        ({"x": 1.0}, True, "unknown gate 'x'"),
        ({"g": 1.0}, True, "'g' is the candidate, not a gate"),
        ({"f": 0.0}, False, "no forget gate"),
        ({"i": 1.5}, True, r"fixed_gates\['i'\] must be a number in \[0, 1\], got 1.5"),
        ({"o": "open"}, True, r"fixed_gates\['o'\] must be a number"),
    ],
)
def test_lstm_fixed_gates_errors(fixed, forget_gate, message):
    with pytest.raises(ValueError, match=message):
        gc.lstm(H, fixed_gates=fixed, forget_gate=forget_gate)


@pytest.mark.parametrize("factory", [gc.lstm, gc.gru, gc.simple_rnn])
@pytest.mark.parametrize("size", [0, -3, 2.5, True])
def test_hidden_size_must_be_positive_int(factory, size):
    with pytest.raises(ValueError, match="hidden_size must be a positive int"):
        factory(size)


@pytest.mark.parametrize("n", [0, -1, 1.5, False])
def test_unroll_factor(lstm, n):
    cell, params = lstm
    with pytest.raises(ValueError, match="unroll must be a positive int, True or None"):
        gc.unroll(cell, params, jnp.ones((B, T, I)), unroll=n)


def test_combinator_arguments():
    with pytest.raises(ValueError, match="at least one cell"):
        gc.stack()
    with pytest.raises(TypeError, match="argument 1 must be a gatedcells.Cell"):
        gc.stack(gc.lstm(H), "gru")
    with pytest.raises(ValueError, match="merge must be one of"):
        gc.bidirectional(gc.lstm(H), merge="max")
    with pytest.raises(ValueError, match="must be a pair"):
        layer = gc.bidirectional(gc.lstm(H))
        gc.unroll(layer, gc.lstm(H).init(jax.random.key(0), I), jnp.ones((B, T, I)))


def test_errors_are_raised_at_trace_time_under_jit(lstm):
    cell, params = lstm
    with pytest.raises(ValueError, match="xs must have shape"):
        jax.jit(lambda xs: gc.unroll(cell, params, xs))(jnp.ones((B, T, 7)))
