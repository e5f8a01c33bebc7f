"""gatedcells.linen: every module equals the pure path it adapts (never gate values)."""

import flax.linen as nn
import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gatedcells as gc
import gatedcells.linen as gl

B, T, I = 3, 7, 5
LENGTHS = jnp.array([7, 4, 1])
CELLS = {
    "lstm": gc.lstm(6),
    "gru": gc.gru(6),
    "simple": gc.simple_rnn(6),
    "lstm1997": gc.lstm(6, forget_gate=False),
}


def close(a, b, atol=1e-6):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=atol, rtol=1e-6)


@pytest.fixture
def xs():
    return jax.random.normal(jax.random.key(1), (B, T, I))


def valid(lengths, like):
    """Boolean [B, T, 1] mask of the valid steps of batch-major outputs."""
    return (jnp.arange(like.shape[1])[None, :] < lengths[:, None])[..., None]


@pytest.mark.parametrize(
    "name, lengths, reverse",
    [
        ("lstm", None, False),
        ("lstm", LENGTHS, True),
        ("gru", LENGTHS, False),
        ("gru", None, True),
        ("simple", LENGTHS, True),
        ("lstm1997", LENGTHS, False),
    ],
)
def test_rnn_equals_unroll(name, lengths, reverse, xs):
    cell = CELLS[name]
    model = gl.RNN(cell, reverse=reverse, keep_order=True, return_carry=True)
    variables = model.init(jax.random.key(0), xs)
    params = variables["params"]["cell"]
    assert jax.tree.structure(params) == jax.tree.structure(cell.init(jax.random.key(0), I))
    got = model.apply(variables, xs, seq_lengths=lengths)
    close(got, gc.unroll(cell, params, xs, lengths=lengths, reverse=reverse))


def test_rnn_params_are_cell_init(xs):
    cell = CELLS["lstm"]
    variables = gl.RNN(cell).init(jax.random.key(0), xs)
    params = variables["params"]["cell"]
    assert isinstance(params, gc.LSTMParams)
    assert list(variables["params"]) == ["cell"]
    # init is called with the module's own param key: the same pytree structure and shapes
    assert jax.tree.map(jnp.shape, params) == jax.tree.map(
        jnp.shape, cell.init(jax.random.key(0), I)
    )


def test_rnn_time_major_and_initial_carry(xs):
    cell = CELLS["gru"]
    model = gl.RNN(cell, time_major=True, return_carry=True)
    xs_tm = jnp.swapaxes(xs, 0, 1)
    variables = model.init(jax.random.key(0), xs_tm)
    params = variables["params"]["cell"]
    h0 = jax.random.normal(jax.random.key(2), (B, 6))
    carry, ys = model.apply(variables, xs_tm, initial_carry=h0, seq_lengths=LENGTHS)
    ref_carry, ref_ys = gc.unroll(cell, params, xs, h0, lengths=LENGTHS)
    close((carry, ys), (ref_carry, jnp.swapaxes(ref_ys, 0, 1)))
    # call-time overrides, as flax.linen.RNN accepts them
    ys_bm = model.apply(variables, xs, time_major=False, return_carry=False)
    close(ys_bm, gc.unroll(cell, params, xs)[1])


@pytest.mark.parametrize("lengths", [None, LENGTHS], ids=["full", "padded"])
def test_reverse_order_matches_flax(lengths, xs):
    """keep_order=False returns outputs in processing order, exactly as flax.linen.RNN."""
    cell = CELLS["lstm"]
    ours = gl.RNN(cell, reverse=True, return_carry=True)
    variables = ours.init(jax.random.key(0), xs)
    theirs = nn.RNN(gl.Cell(cell), reverse=True, return_carry=True)
    flax_vars = {"params": {"cell": {"cell": variables["params"]["cell"]}}}
    carry, ys = ours.apply(variables, xs, seq_lengths=lengths)
    ref_carry, ref_ys = theirs.apply(flax_vars, xs, seq_lengths=lengths)
    if lengths is not None:  # plain lists work too
        close(ours.apply(variables, xs, seq_lengths=lengths.tolist()), (carry, ys))
    close(carry, ref_carry)
    mask = jnp.ones_like(ys, bool) if lengths is None else valid(lengths, ys)
    close(jnp.where(mask, ys, 0), jnp.where(mask, ref_ys, 0))
    assert bool((jnp.where(mask, 0, ys) == 0).all())  # padding outputs are zero, not garbage
    # and processing order is the aligned order flipped within each length
    aligned = gl.RNN(cell, reverse=True, keep_order=True).apply(variables, xs, seq_lengths=lengths)
    if lengths is None:
        close(ys, aligned[:, ::-1])
    else:
        for b, n in enumerate(lengths.tolist()):
            close(ys[b, :n], aligned[b, :n][::-1])


@pytest.mark.parametrize("name", ["lstm", "gru", "simple"])
def test_cell_adapter_in_flax_rnn_equals_unroll(name, xs):
    cell = CELLS[name]
    model = nn.RNN(gl.Cell(cell), return_carry=True)
    variables = model.init(jax.random.key(0), xs)
    params = variables["params"]["cell"]["cell"]
    carry, ys = model.apply(variables, xs, seq_lengths=LENGTHS)
    ref_carry, ref_ys = gc.unroll(cell, params, xs, lengths=LENGTHS)
    close(carry, ref_carry)
    mask = valid(LENGTHS, ys)
    close(jnp.where(mask, ys, 0), ref_ys)


def test_cell_adapter_carry_and_axes():
    adapter = gl.Cell(CELLS["lstm"])
    carry = adapter.initialize_carry(jax.random.key(0), (4, 2, I))
    assert isinstance(carry, gc.LSTMCarry) and carry.h.shape == (4, 2, 6)
    assert adapter.num_feature_axes == 1
    assert isinstance(adapter, nn.RNNCellBase)


def test_flax_bidirectional_with_adapter_equals_ours(xs):
    fwd, bwd = CELLS["gru"], CELLS["lstm"]
    ours = gl.Bidirectional(fwd, bwd, return_carry=True)
    variables = ours.init(jax.random.key(0), xs)
    p_fwd, p_bwd = variables["params"]["cell"]
    carry, ys = ours.apply(variables, xs, seq_lengths=LENGTHS)
    close((carry, ys), gc.unroll(gc.bidirectional(fwd, bwd), (p_fwd, p_bwd), xs, lengths=LENGTHS))

    theirs = nn.Bidirectional(nn.RNN(gl.Cell(fwd)), nn.RNN(gl.Cell(bwd)), return_carry=True)
    flax_vars = {
        "params": {
            "forward_rnn": {"cell": {"cell": p_fwd}},
            "backward_rnn": {"cell": {"cell": p_bwd}},
        }
    }
    ref_carry, ref_ys = theirs.apply(flax_vars, xs, seq_lengths=LENGTHS)
    close(carry, ref_carry)
    mask = valid(LENGTHS, ys)
    close(ys, jnp.where(mask, ref_ys, 0))

    # our RNN also satisfies flax's RNNBase protocol, so flax's Bidirectional drives it
    mixed = nn.Bidirectional(gl.RNN(fwd), gl.RNN(bwd), return_carry=True)
    mixed_vars = {"params": {"forward_rnn": {"cell": p_fwd}, "backward_rnn": {"cell": p_bwd}}}
    close(mixed.apply(mixed_vars, xs, seq_lengths=LENGTHS), (carry, ys))


def test_bidirectional_respects_seq_lengths(xs):
    """A padded sequence gives the outputs of the same sequence run alone, at its length."""
    layer = gl.Bidirectional(CELLS["lstm"], return_carry=True)
    variables = layer.init(jax.random.key(0), xs)
    garbage = xs.at[1, 4:].set(1e3)  # whatever lies past the end must not matter
    carry, ys = layer.apply(variables, garbage, seq_lengths=LENGTHS)
    alone_carry, alone = layer.apply(variables, xs[1:2, :4])
    close(ys[1:2, :4], alone, atol=1e-5)
    close(jax.tree.map(lambda c: c[1:2], carry), alone_carry, atol=1e-5)
    assert bool((ys[1, 4:] == 0).all())
    # the backward half starts at step 3 (the last valid one), not at the padding
    unpadded = layer.apply(variables, garbage)[1]
    assert not np.allclose(ys[1, :4, 6:], unpadded[1, :4, 6:])


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
def test_stacked_equals_functional_stack(bidirectional, xs):
    cells = (CELLS["gru"], CELLS["simple"], CELLS["lstm"])  # mixed types per layer
    model = gl.StackedRNN(cells, bidirectional=bidirectional, dropout=0.5, return_carry=True)
    variables = model.init(jax.random.key(0), xs, deterministic=True)
    params = variables["params"]["cell"]
    layers = [gc.bidirectional(c) if bidirectional else c for c in cells]
    deep = gc.stack(*layers)
    assert jax.tree.structure(params) == jax.tree.structure(deep.init(jax.random.key(0), I))
    got = model.apply(variables, xs, seq_lengths=LENGTHS, deterministic=True)
    close(got, gc.unroll(deep, params, xs, lengths=LENGTHS), atol=1e-5)
    close(got, gc.unroll(model.as_cell(), params, xs, lengths=LENGTHS), atol=1e-5)
    assert got[1].shape == (B, T, 12 if bidirectional else 6)


def test_stacked_num_layers_and_time_major(xs):
    model = gl.StackedRNN(CELLS["lstm"], num_layers=3, time_major=True)
    xs_tm = jnp.swapaxes(xs, 0, 1)
    variables = model.init(jax.random.key(0), xs_tm)
    params = variables["params"]["cell"]
    assert [p.w_x.shape[0] for p in params] == [I, 6, 6]
    deep = gc.stack(*(CELLS["lstm"],) * 3)
    ref = gc.unroll(deep, params, xs_tm, time_major=True)[1]
    close(model.apply(variables, xs_tm), ref, atol=1e-5)


def test_stacked_dropout(xs):
    model = gl.StackedRNN((CELLS["gru"], CELLS["lstm"]), dropout=0.5)
    variables = model.init(jax.random.key(0), xs, deterministic=True)
    off = model.apply(variables, xs, deterministic=True)
    no_dropout = gl.StackedRNN((CELLS["gru"], CELLS["lstm"])).apply(variables, xs)
    close(off, no_dropout)

    def noisy(k, **kw):
        return model.apply(
            variables, xs, deterministic=False, rngs={"dropout": jax.random.key(k)}, **kw
        )

    a, b = noisy(1), noisy(2)
    assert not np.allclose(a, b) and not np.allclose(a, off)
    close(noisy(1), a)  # the same key, the same mask
    # padded steps stay zero through dropout
    padded = noisy(1, seq_lengths=LENGTHS)
    assert bool((jnp.where(valid(LENGTHS, padded), 0, padded) == 0).all())
    # the deterministic attribute works too, and dropout is never after the last layer
    det = gl.StackedRNN((CELLS["gru"], CELLS["lstm"]), dropout=0.5, deterministic=True)
    close(det.apply(variables, xs), off)
    single = gl.StackedRNN(CELLS["gru"], dropout=0.5)
    v1 = single.init(jax.random.key(0), xs, deterministic=True)
    close(
        single.apply(v1, xs, deterministic=False, rngs={"dropout": jax.random.key(3)}),
        single.apply(v1, xs, deterministic=True),
    )


def test_stacked_errors(xs):
    with pytest.raises(ValueError, match="deterministic"):
        gl.StackedRNN(CELLS["gru"], num_layers=2, dropout=0.5).init(jax.random.key(0), xs)
    with pytest.raises(ValueError, match="dropout must lie in"):
        gl.StackedRNN(CELLS["gru"], dropout=1.0).init(jax.random.key(0), xs)
    with pytest.raises(ValueError, match="num_layers must be a positive int"):
        gl.StackedRNN(CELLS["gru"], num_layers=0).init(jax.random.key(0), xs)
    with pytest.raises(ValueError, match="num_layers=3 but 2 cells"):
        gl.StackedRNN((CELLS["gru"], CELLS["lstm"]), num_layers=3).init(jax.random.key(0), xs)
    with pytest.raises(TypeError, match="cells must be"):
        gl.StackedRNN(("gru",)).init(jax.random.key(0), xs)
    with pytest.raises(ValueError, match="initial_carry must be a tuple of 2"):
        model = gl.StackedRNN(CELLS["gru"], num_layers=2)
        model.init(jax.random.key(0), xs, initial_carry=jnp.zeros((B, 6)))
    with pytest.raises(ValueError, match="xs must have shape"):
        gl.RNN(CELLS["gru"]).init(jax.random.key(0), xs[0, 0])
    with pytest.raises(TypeError, match="xs must have a floating dtype"):
        gl.RNN(CELLS["gru"]).init(jax.random.key(0), jnp.ones((B, T, I), jnp.int32))


def test_jit_and_nn_jit(xs):
    cell = CELLS["lstm"]
    model = gl.RNN(cell)
    variables = model.init(jax.random.key(0), xs)
    eager = model.apply(variables, xs, seq_lengths=LENGTHS)
    close(jax.jit(model.apply)(variables, xs, seq_lengths=LENGTHS), eager)
    jitted = nn.jit(gl.RNN)(cell)
    jit_vars = jitted.init(jax.random.key(0), xs)  # nn.jit folds the init RNG its own way
    assert jax.tree.structure(jit_vars) == jax.tree.structure(variables)
    close(jitted.apply(variables, xs, seq_lengths=LENGTHS), eager)
    # dropout under nn.jit: deterministic is an attribute there (call arguments are traced)
    cells = (CELLS["gru"], CELLS["lstm"])
    noisy = nn.jit(gl.StackedRNN)(cells, dropout=0.5, deterministic=False)
    stack_vars = gl.StackedRNN(cells).init(jax.random.key(0), xs)
    a = noisy.apply(stack_vars, xs, rngs={"dropout": jax.random.key(1)})
    b = noisy.apply(stack_vars, xs, rngs={"dropout": jax.random.key(2)})
    assert a.shape == (B, T, 6) and not np.allclose(a, b)


def test_tabulate_and_serialization(xs):
    model = gl.StackedRNN((CELLS["gru"], CELLS["lstm"]), bidirectional=True)
    variables = model.init(jax.random.key(0), xs)
    table = model.tabulate(jax.random.key(0), xs, console_kwargs={"width": 200})
    n = gc.count_params(variables)
    assert f"{n:,}" in table and "StackedRNN" in table
    restored = flax.serialization.from_bytes(variables, flax.serialization.to_bytes(variables))
    assert jax.tree.structure(restored) == jax.tree.structure(variables)
    close(restored, variables)
    state = flax.serialization.to_state_dict(variables)
    close(flax.serialization.from_state_dict(variables, state), variables)


def test_inside_a_flax_model(xs):
    """The modules compose with ordinary Flax layers and take gradients."""

    class Classifier(nn.Module):
        @nn.compact
        def __call__(self, xs, lengths):
            ys = gl.Bidirectional(gc.gru(8))(xs, seq_lengths=lengths)
            return nn.Dense(3)(ys.mean(axis=1))

    model = Classifier()
    variables = model.init(jax.random.key(0), xs, LENGTHS)
    grads = jax.jit(jax.grad(lambda v: model.apply(v, xs, LENGTHS).sum()))(variables)
    norms = jax.tree.leaves(jax.tree.map(lambda g: float(jnp.abs(g).sum()), grads))
    assert all(np.isfinite(norms)) and all(v > 0 for v in norms)


# --------------------------------------------------------------------------------------
# Flax users' spellings: a plain (c, h) carry, nn.Bidirectional's arguments, path masks.


def test_lstm_cell_takes_flax_tuple_carry():
    """Flax's ``linen_test.test_lstm``, ported: a plain ``(c, h)`` tuple in and out."""
    lstm = gl.Cell(gc.lstm(4))
    rng = jax.random.key(0)
    key1, key2 = jax.random.split(rng)
    x = jax.random.normal(key1, (2, 3))
    c0, h0 = nn.LSTMCell(features=4).initialize_carry(rng, x.shape)
    assert c0.shape == (2, 4) and h0.shape == (2, 4)
    (carry, y), initial_params = lstm.init_with_output(key2, (c0, h0), x)
    assert type(carry) is tuple and carry[0].shape == (2, 4) and carry[1].shape == (2, 4)
    np.testing.assert_allclose(y, carry[1])
    param_shapes = jax.tree.map(np.shape, initial_params["params"])
    assert param_shapes == {"cell": gc.LSTMParams(w_x=(3, 16), w_h=(4, 16), b=(16,))}


def test_flax_encoder_carry_feeds_gatedcells_decoder(xs):
    encoder = nn.RNN(nn.LSTMCell(6), return_carry=True)
    enc_vars = encoder.init(jax.random.key(0), xs)
    carry, _ = encoder.apply(enc_vars, xs)  # a plain (c, h) tuple
    cell = gc.lstm(6)
    decoder = gl.RNN(cell, return_carry=True)
    dec_vars = decoder.init(jax.random.key(1), xs, initial_carry=carry)
    params = dec_vars["params"]["cell"]
    out_carry, ys = decoder.apply(dec_vars, xs, initial_carry=carry)
    ref_carry, ref_ys = gc.unroll(cell, params, xs, gc.LSTMCarry(*carry))
    assert type(out_carry) is tuple  # the container given
    close((out_carry, ys), (tuple(ref_carry), ref_ys))
    # Flax's scan needs the same carry type in and out: our Cell hands back a tuple
    flax_rnn = nn.RNN(gl.Cell(cell), return_carry=True)
    got = flax_rnn.apply({"params": {"cell": {"cell": params}}}, xs, initial_carry=carry)
    close(got, (tuple(ref_carry), ref_ys))
    # the functional path takes it too
    close(gc.unroll(cell, params, xs, carry), (ref_carry, ref_ys))


def test_cell_step_takes_flax_tuple_carry(xs):
    cell = CELLS["lstm"]
    params = cell.init(jax.random.key(0), I)
    c0 = (jnp.full((B, 6), 0.3), jnp.full((B, 6), -0.2))
    carry, y = cell.step(params, c0, xs[:, 0])
    ref_carry, ref_y = cell.step(params, gc.LSTMCarry(*c0), xs[:, 0])
    assert type(carry) is tuple
    close((carry, y), (tuple(ref_carry), ref_y))


def test_bidirectional_takes_a_flax_users_call(xs):
    fwd, bwd = CELLS["gru"], CELLS["lstm"]
    ours = gl.Bidirectional(fwd, bwd)
    variables = ours.init(jax.random.key(0), xs)
    ref_carry, ref_ys = ours.apply(variables, xs, seq_lengths=LENGTHS, return_carry=True)
    spellings = [
        gl.Bidirectional(forward_rnn=gl.RNN(fwd), backward_rnn=gl.RNN(bwd)),
        gl.Bidirectional(gl.RNN(fwd), gl.RNN(bwd)),
        gl.Bidirectional(nn.RNN(gl.Cell(fwd)), nn.RNN(gl.Cell(bwd))),
    ]
    for layer in spellings:
        close(
            layer.apply(variables, xs, seq_lengths=LENGTHS, return_carry=True), (ref_carry, ref_ys)
        )
    summed = gl.Bidirectional(
        forward_rnn=gl.RNN(fwd), backward_rnn=gl.RNN(gc.gru(6)), merge_fn=jnp.add
    )
    sum_vars = summed.init(jax.random.key(0), xs)
    concat = gl.Bidirectional(fwd, gc.gru(6)).apply(sum_vars, xs)  # [B, T, 12]
    close(summed.apply(sum_vars, xs), concat[..., :6] + concat[..., 6:])
    # call-time time_major, as flax.linen.Bidirectional takes it
    xs_tm = jnp.swapaxes(xs, 0, 1)
    close(
        ours.apply(variables, xs_tm, time_major=True), jnp.swapaxes(ours.apply(variables, xs), 0, 1)
    )
    with pytest.raises(
        TypeError, match=r"got RNN\(LSTMCell\): write .*gc.lstm\(H, forget_bias=0.0\)"
    ):
        gl.Bidirectional(nn.RNN(nn.LSTMCell(6)), nn.RNN(nn.LSTMCell(6))).init(jax.random.key(0), xs)
    with pytest.raises(TypeError, match="give merge or merge_fn"):
        gl.Bidirectional(fwd, merge="sum", merge_fn=jnp.add).init(jax.random.key(0), xs)


def test_mask_by_field_with_flax_paths(xs):
    """flatten_dict / path_aware_map see a cell's params as one leaf; JAX key paths reach the
    fields: the recipe of the package docstring, weight decay on w_x and w_h only."""
    import flax.traverse_util as tu
    import optax

    model = gl.StackedRNN((CELLS["gru"], CELLS["lstm"]))
    params = model.init(jax.random.key(0), xs)["params"]
    assert list(tu.flatten_dict(params)) == [("cell",)]  # one leaf: the tuple of NamedTuples
    seen = []
    tu.path_aware_map(lambda path, leaf: seen.append((path, type(leaf).__name__)), params)
    assert seen == [(("cell",), "tuple")]

    def kernels(tree):
        return jax.tree_util.tree_map_with_path(
            lambda path, _: getattr(path[-1], "name", None) in ("w_x", "w_h"), tree
        )

    tx = optax.adamw(1e-2, weight_decay=0.5, mask=kernels)
    with jax.numpy_dtype_promotion("standard"):  # optax's adam: decay ** int32 count
        updates, _ = tx.update(jax.tree.map(jnp.zeros_like, params), tx.init(params), params)
    moved = jax.tree.map(lambda u: bool(u.any()), updates)["cell"]
    assert moved[0] == gc.GRUParams(w_x=True, w_h=True, b=False, b_hn=False)
    assert moved[1] == gc.LSTMParams(w_x=True, w_h=True, b=False)
