"""Convolutional cells among the rest: the combinators (bidirectional, stack, resets, learned
carry), the diagnostics, the linen and NNX layers, Flax's ConvLSTMCell, a NumPy ConvGRU, the
argument errors and the moving-shapes task."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view
from test_conv import CASES, LENGTHS, B, H, I, T, close

import gatedcells as gc
from gatedcells import diagnostics as gd


def test_bidirectional_of_conv_cells():
    layer = gc.bidirectional(gc.conv_lstm(H, (3, 3)), gc.conv_gru(H + 1, (1, 3)))
    assert layer.feature_ndim == 3
    params = layer.init(jax.random.key(0), I)
    xs = jax.random.normal(jax.random.key(1), (B, T, 5, 4, I))
    (cf, cb), ys = gc.unroll(layer, params, xs, lengths=LENGTHS)
    assert ys.shape == (B, T, 5, 4, 2 * H + 1) and cb.shape == (B, 5, 4, H + 1)
    fwd = gc.unroll(gc.conv_lstm(H, (3, 3)), params[0], xs, lengths=LENGTHS)
    bwd = gc.unroll(gc.conv_gru(H + 1, (1, 3)), params[1], xs, lengths=LENGTHS, reverse=True)
    close(ys, jnp.concatenate([fwd[1], bwd[1]], axis=-1))
    deep = gc.stack(layer, gc.conv_lstm(H, (3, 3)))  # a deep bidirectional ConvRNN
    assert gc.unroll(deep, deep.init(jax.random.key(2), I), xs)[1].shape == (B, T, 5, 4, H)


def test_stack_chains_channels_and_steps():
    deep = CASES["stack_conv_gru_conv_lstm"]()
    params = deep.init(jax.random.key(0), I)
    assert [p.w_x.shape for p in params] == [(3, 3, I, 3 * H), (1, 3, H, 4 * (H + 2))]
    assert deep.output_size == H + 2 and deep.feature_ndim == 3


def test_gate_trace():
    cell = gc.conv_lstm(H, (3, 3), forget_bias=5.0)
    params = cell.init(jax.random.key(0), I)
    xs = jax.random.normal(jax.random.key(1), (B, T, 5, 4, I))
    tr = gd.gate_trace(cell, params, xs, lengths=LENGTHS)
    assert tr.gates._fields == ("i", "f", "g", "o")
    assert tr.gates.f.shape == tr.carry.c.shape == (B, T, 5, 4, H) and tr.valid.shape == (B, T)
    close(tr.ys, gc.unroll(cell, params, xs, lengths=LENGTHS)[1])
    assert float(jnp.abs(tr.gates.f[1, 1:]).max()) == 0.0  # past the end of sequence 1
    gru = gc.conv_gru(H, (3,))
    trace = gd.gate_trace(gru, gru.init(jax.random.key(0), I), xs[:, :, 0])
    assert trace.gates._fields == ("r", "z", "n") and trace.gates.z.shape == (B, T, 4, H)


def test_linen_rnn():
    gl = pytest.importorskip("gatedcells.linen")
    cell = gc.conv_gru(H, (3, 3))
    xs = jax.random.normal(jax.random.key(1), (B, T, 5, 4, I))
    model = gl.RNN(cell, return_carry=True)
    variables = model.init(jax.random.key(0), xs)
    params = variables["params"]["cell"]
    assert isinstance(params, gc.ConvGRUParams)
    close(
        model.apply(variables, xs, seq_lengths=LENGTHS),
        gc.unroll(cell, params, xs, lengths=LENGTHS),
    )
    # reverse, in processing order (flax's keep_order=False): sequence 0 read backwards
    back = gl.RNN(cell, reverse=True).apply(variables, xs, seq_lengths=LENGTHS)
    want = gc.unroll(cell, params, xs, lengths=LENGTHS, reverse=True)[1]
    close(back[0, :3], want[0, :3][::-1])
    assert float(jnp.abs(back[1, 1:]).max()) == 0.0
    bi = gl.Bidirectional(cell)
    assert bi.apply(bi.init(jax.random.key(0), xs), xs).shape == (B, T, 5, 4, 2 * H)
    # the adapter in flax's own RNN, which finds time from num_feature_axes
    nn = pytest.importorskip("flax.linen")
    flax_rnn = nn.RNN(gl.Cell(cell))
    flax_vars = flax_rnn.init(jax.random.key(0), xs)
    want = gc.unroll(cell, flax_vars["params"]["cell"]["cell"], xs)[1]
    close(flax_rnn.apply(flax_vars, xs), want)


def test_nnx_rnn():
    nnx_layers = pytest.importorskip("gatedcells.nnx")
    from flax import nnx

    cell = gc.conv_lstm(H, (3, 3))
    xs = jax.random.normal(jax.random.key(1), (B, T, 5, 4, I))
    layer = nnx_layers.RNN(cell, I, rngs=nnx.Rngs(0))
    ys = layer(xs)
    assert ys.shape == (B, T, 5, 4, H)


# --------------------------------------------------------------------------------------
# References: Flax's ConvLSTMCell and a NumPy ConvGRU.


def _ifgo_from_igfo(a):
    i, g, f, o = jnp.split(a, 4, axis=-1)
    return jnp.concatenate([i, f, g, o], axis=-1)


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_conv_lstm_equals_flax_conv_lstm_cell(rank):
    nn = pytest.importorskip("flax.linen")
    K, S = {1: ((5,), (9,)), 2: ((3, 5), (7, 6)), 3: ((3, 1, 3), (4, 5, 3))}[rank]
    xs = jax.random.normal(jax.random.key(1), (B, 6, *S, I))
    flax_rnn = nn.RNN(nn.ConvLSTMCell(features=H, kernel_size=K), return_carry=True)
    variables = flax_rnn.init(jax.random.key(0), xs)
    variables = jax.tree.map(  # non-zero biases, so that their mapping is checked
        lambda a: a + 0.1 * jax.random.normal(jax.random.key(3), a.shape), variables
    )
    (c_flax, h_flax), ys_flax = flax_rnn.apply(variables, xs)
    p = variables["params"]["cell"]
    b = _ifgo_from_igfo(p["ih"]["bias"] + p["hh"]["bias"]).at[H : 2 * H].add(1.0)  # flax's +1
    params = gc.ConvLSTMParams(
        _ifgo_from_igfo(p["ih"]["kernel"]), _ifgo_from_igfo(p["hh"]["kernel"]), b
    )
    carry, ys = gc.unroll(gc.conv_lstm(H, K), params, xs)
    close((carry.c, carry.h, ys), (c_flax, h_flax, ys_flax), rtol=1e-5, atol=1e-5)


def _np_conv(x, w, pads):
    """Cross-correlation of ``x [N, *S, I]`` with ``w [*K, I, O]``, ``pads`` per axis."""
    rank = w.ndim - 2
    x = np.pad(x, [(0, 0), *pads, (0, 0)])
    win = sliding_window_view(x, w.shape[:rank], axis=tuple(range(1, rank + 1)))
    k = "abc"[:rank]
    return np.einsum(f"n{'xyz'[:rank]}i{k},{k}io->n{'xyz'[:rank]}o", win, w)


def _np_conv_gru(params, xs, h, pads, reset_after):
    """A NumPy loop of ConvGRU steps in float64, written from the equations."""
    sig = lambda v: 1 / (1 + np.exp(-v))
    p = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
    n_h, ys = h.shape[-1], []
    for t in range(xs.shape[1]):
        gx = _np_conv(xs[:, t], p.w_x, pads) + p.b
        xr, xz, xn = np.split(gx, 3, axis=-1)
        ur, uz, un = np.split(p.w_h, 3, axis=-1)
        r = sig(xr + _np_conv(h, ur, pads))
        z = sig(xz + _np_conv(h, uz, pads))
        if reset_after:
            n = np.tanh(xn + r * (_np_conv(h, un, pads) + p.b_hn))
        else:
            n = np.tanh(xn + _np_conv(r * h, un, pads))
        h = (1 - z) * n + z * h
        assert h.shape[-1] == n_h
        ys.append(h)
    return h, np.stack(ys, axis=1)


@pytest.mark.parametrize(
    "reset_after, K, S", [(True, (3, 5), (6, 7)), (False, (3, 3), (5, 4)), (True, (5,), (8,))]
)
def test_conv_gru_equals_numpy_loop(reset_after, K, S):
    cell = gc.conv_gru(H, K, reset_after=reset_after, bias_init=jax.nn.initializers.normal(0.5))
    params = cell.init(jax.random.key(0), I)
    xs = jax.random.normal(jax.random.key(1), (B, 5, *S, I))
    h0 = 0.5 * jax.random.normal(jax.random.key(2), (B, *S, H))
    pads = [((k - 1) // 2,) * 2 for k in K]
    want = _np_conv_gru(params, np.asarray(xs, np.float64), np.asarray(h0, np.float64), pads,
                        reset_after)  # fmt: skip
    close(gc.unroll(cell, params, xs, h0), want, rtol=1e-5, atol=1e-5)


def test_explicit_padding_pairs_shift_like_flax_same_for_even_kernels():
    nn = pytest.importorskip("flax.linen")
    xs = jax.random.normal(jax.random.key(1), (B, 3, 6, 5, I))
    flax_rnn = nn.RNN(nn.ConvLSTMCell(features=H, kernel_size=(2, 4)))
    variables = flax_rnn.init(jax.random.key(0), xs)
    p = variables["params"]["cell"]
    b = _ifgo_from_igfo(p["ih"]["bias"] + p["hh"]["bias"]).at[H : 2 * H].add(1.0)
    params = gc.ConvLSTMParams(
        _ifgo_from_igfo(p["ih"]["kernel"]), _ifgo_from_igfo(p["hh"]["kernel"]), b
    )
    cell = gc.conv_lstm(H, (2, 4), padding=((0, 1), (1, 2)))  # Flax's 'SAME' for (2, 4)
    close(gc.unroll(cell, params, xs)[1], flax_rnn.apply(variables, xs))


def test_param_count_and_names():
    cell = gc.conv_lstm(8, (3, 3), forget_bias=5.0)
    params = cell.init(jax.random.key(0), 2)
    assert gc.count_params(params) == 4 * (9 * (2 + 8) * 8 + 8)
    assert float(params.b[8]) == 5.0 and float(params.b[0]) == 0.0
    gru = gc.conv_gru(8, (3,), reset_after=False)
    assert gc.count_params(gru.init(jax.random.key(0), 2)) == 3 * (3 * (2 + 8) * 8 + 8)
    assert "kernel_size=(3,)" in gru.name and "reset_after=False" in gru.name


# --------------------------------------------------------------------------------------
# Bad arguments: one-line errors naming the argument.


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(kernel_size=(3.0, 3)), TypeError, "kernel_size must be a tuple of 1, 2 or 3 ints"),
        (dict(kernel_size=3), TypeError, "kernel_size must be a tuple"),
        (dict(kernel_size=(True,)), TypeError, "kernel_size"),
        (dict(kernel_size=(3, 3, 3, 3)), ValueError, "kernel_size must be a tuple of 1, 2 or 3"),
        (dict(kernel_size=(3, 0)), ValueError, "positive ints"),
        (dict(kernel_size=()), ValueError, "kernel_size"),
        (dict(kernel_size=(4, 4)), ValueError, r"padding='SAME' with the even kernel_size"),
        (dict(kernel_size=(3, 3), padding="VALID"), ValueError, "padding='VALID' shrinks"),
        (dict(kernel_size=(3, 3), padding=((1, 1),)), ValueError, "padding must be"),
        (dict(kernel_size=(3,), padding=((2, 1),)), ValueError, "low \\+ high = K - 1"),
        (dict(kernel_size=(3,), padding="FULL"), ValueError, "padding must be"),
        (dict(kernel_size=(3, 3), strides=2), ValueError, "strides must be 1"),
        (dict(kernel_size=(3, 3), strides=(1, 2)), ValueError, "strides must be 1"),
        (dict(kernel_size=(3, 3), strides=(1,)), ValueError, "strides must be 1"),
        (dict(kernel_size=(3, 3), dtype=jnp.int32), TypeError, "dtype"),
    ],
)
@pytest.mark.parametrize("factory", [gc.conv_lstm, gc.conv_gru])
def test_bad_factory_arguments(factory, kwargs, error, match):
    with pytest.raises(error, match=match) as info:
        factory(4, **kwargs)
    assert "\n" not in str(info.value)


def test_accepted_paddings():
    assert gc.conv_lstm(4, (1, 1), padding="VALID").feature_ndim == 3
    assert gc.conv_gru(4, (3,), padding="same", strides=(1,)).feature_ndim == 2
    causal = gc.conv_gru(4, (3,), padding=((2, 0),))  # a causal 1-D kernel
    params = causal.init(jax.random.key(0), 1)
    xs = jnp.zeros((1, 2, 6, 1)).at[0, 0, 3].set(1.0)  # one pulse at position 3
    _, ys = gc.unroll(causal, params, xs)
    base = gc.unroll(causal, params, jnp.zeros_like(xs))[1]
    assert float(jnp.abs(ys - base)[0, 0, :3].max()) == 0.0  # nothing left of the pulse


def test_bad_inputs_name_the_argument():
    cell = gc.conv_lstm(H, (3, 3))
    params = cell.init(jax.random.key(0), I)
    with pytest.raises(ValueError, match=r"xs must have shape \[\*B, T, \*S, I\] with 2 spatial"):
        gc.unroll(cell, params, jnp.ones((T, 5, I)))  # a 1-D sequence for a 2-D kernel
    with pytest.raises(ValueError, match=r"I=3"):
        gc.unroll(cell, params, jnp.ones((B, T, 5, 4, I + 1)))
    with pytest.raises(ValueError, match=r"x must have shape \[\*B, \*S, I\] with 2 spatial"):
        cell.step(params, cell.initial_carry((5,)), jnp.ones((5, I)))
    with pytest.raises(ValueError, match="carry does not match"):  # frames of another size
        gc.unroll(cell, params, jnp.ones((B, T, 5, 4, I)), cell.initial_carry((B, 5, 5)))
    with pytest.raises(ValueError, match=r"params do not belong to this conv_lstm.*w_x of shape"):
        gc.unroll(cell, gc.conv_lstm(H, (3,)).init(jax.random.key(0), I), jnp.ones((B, T, 5, 4, I)))
    with pytest.raises(ValueError, match=r"params do not belong"):
        gc.unroll(cell, gc.lstm(H).init(jax.random.key(0), I), jnp.ones((B, T, 5, 4, I)))
    with pytest.raises(ValueError, match=r"lengths must have shape \[\*B\]=\(2,\)"):
        gc.unroll(cell, params, jnp.ones((B, T, 5, 4, I)), lengths=jnp.array([1, 2, 3]))
    with pytest.raises(ValueError, match="a 2-D convolutional cell needs inputs"):
        cell.update(params, cell.initial_carry((5,)), jnp.ones((5, I)))  # unchecked path


# --------------------------------------------------------------------------------------
# The moving-shapes task.


def test_moving_shapes_task():
    from gatedcells import tasks

    task = tasks.moving_shapes(6, 10, squares=1, side=3)
    assert tasks.get("shapes", 6).name == tasks.moving_shapes(6).name
    xs, ys = jax.jit(task.sample, static_argnums=1)(jax.random.key(0), 5)
    assert xs.shape == (5, 6, 10, 10, 1) and ys.shape == (5, 6, 10, 10)
    assert xs.dtype == ys.dtype == jnp.float32
    again = task.sample(jax.random.key(0), 5)
    assert bool((again[0] == xs).all())  # pure: the key decides everything
    assert bool((xs[:, 1:, ..., 0] == ys[:, :-1]).all())  # targets: the next frames
    assert bool((xs.sum(axis=(2, 3, 4)) == 9).all())  # one 3x3 square in every frame
    rows = jnp.argmax(xs[..., 0].max(axis=3), axis=2)  # the square's top row per frame
    assert bool((jnp.abs(jnp.diff(rows, axis=1)) == 1).all())  # one pixel per step, bouncing
    copy_last = float(task.loss(xs, ys))  # predicting the frame just read
    assert 0 < task.baseline_metric < 1 and copy_last == pytest.approx(task.baseline_loss, 0.2)
    assert task.per_step and task.input_size == task.output_size == 1


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(length=1), "length must be an int >= 2"),
        (dict(size=4, side=4), "size must be more than side=4"),
        (dict(squares=0), "squares must be a positive int"),
        (dict(side=2.5), "side must be a positive int"),
    ],
)
def test_moving_shapes_bad_arguments(kwargs, match):
    from gatedcells import tasks

    with pytest.raises(ValueError, match=match):
        tasks.moving_shapes(**kwargs)


def test_resets_and_learned_carry_keep_the_frame_axes():
    cell = gc.conv_lstm(H, (3, 3))
    params = cell.init(jax.random.key(0), I)
    xs = jax.random.normal(jax.random.key(1), (B, T, 5, 4, I))
    reset = gc.resettable(cell)
    assert reset.feature_ndim == gc.learned_initial_carry(cell).feature_ndim == 3
    flags = jnp.zeros((B, T, 5, 4, 1)).at[:, 2].set(1.0)  # a new segment at step 2
    ys = gc.unroll(reset, params, jnp.concatenate([xs, flags], axis=-1))[1]
    close(ys[:, :2], gc.unroll(cell, params, xs[:, :2])[1])
    close(ys[:, 2:], gc.unroll(cell, params, xs[:, 2:])[1])
    learned = gc.learned_initial_carry(cell, init=jax.nn.initializers.constant(0.5))
    lp = learned.init(jax.random.key(0), I)
    assert lp.carry.c.shape == (H,)  # one carry, broadcast over the batch and the frame
    start = jax.tree.map(lambda c: jnp.broadcast_to(c, (B, 5, 4, H)), lp.carry)
    close(gc.unroll(learned, lp, xs)[1], gc.unroll(cell, lp.cell, xs, start)[1])


def test_gradient_flow_of_frames_needs_a_loss():
    cell = gc.conv_lstm(H, (3, 3))
    params = cell.init(jax.random.key(0), I)
    xs = jax.random.normal(jax.random.key(1), (B, T, 5, 4, I))
    flow = gd.gradient_flow(cell, params, xs, loss=lambda y: jnp.sum(y**2) / 2)
    assert flow.carry.shape == flow.inputs.shape == (B, T)
    one = gd.gradient_flow(cell, params, xs[1], loss=lambda y: jnp.sum(y**2) / 2)
    close(one.carry, flow.carry[1], rtol=1e-4)  # each example's gradient is its own
    with pytest.raises(ValueError, match=r"loss=None .* outputs frames \[\*S, H\]"):
        gd.gradient_flow(cell, params, xs)


def test_stacked_layers_of_conv_cells():
    gl = pytest.importorskip("gatedcells.linen")
    gn = pytest.importorskip("gatedcells.nnx")
    from flax import nnx

    layers = [gc.conv_lstm(H, (3, 3)), gc.conv_gru(H + 1, (1, 3))]
    xs = jax.random.normal(jax.random.key(1), (B, T, 5, 4, I))
    deep = gc.stack(*layers)
    module = gl.StackedRNN(layers)
    variables = module.init(jax.random.key(0), xs)
    ys = module.apply(variables, xs, seq_lengths=LENGTHS)
    close(ys, gc.unroll(deep, variables["params"]["cell"], xs, lengths=LENGTHS)[1])
    model = gn.StackedRNN(layers, I, rngs=nnx.Rngs(0))
    ys = model(jnp.moveaxis(xs, 1, 0), time_major=True)
    close(ys, jnp.moveaxis(gc.unroll(deep, model.params(), xs)[1], 1, 0))
