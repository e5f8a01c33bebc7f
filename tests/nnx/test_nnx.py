"""gatedcells.nnx: parity with Flax NNX's cells, the pure path it adapts, and NNX's transforms."""

import importlib
import sys
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from registry import CELLS as REGISTRY

import gatedcells as gc

nnx = pytest.importorskip("flax.nnx")
optax = pytest.importorskip("optax")
gnnx = importlib.import_module("gatedcells.nnx")

B, T, I, H = 3, 6, 5, 7
LENGTHS = jnp.array([6, 4, 1])
CELLS = {"lstm": gc.lstm(H), "gru": gc.gru(H), "simple": gc.simple_rnn(H)}


def close(a, b, atol=1e-6):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=atol, rtol=1e-6)


def valid(lengths, like):
    """Boolean [B, T, 1] mask of the valid steps of batch-major outputs."""
    return (jnp.arange(like.shape[1])[None, :] < lengths[:, None])[..., None]


def perturbed(layer, scale=0.3):
    """Every param of ``layer`` moved by noise: non-zero biases check their placement."""
    state = nnx.state(layer, nnx.Param)
    leaves, treedef = jax.tree.flatten(state)
    keys = jax.random.split(jax.random.key(7), len(leaves))
    noisy = [a + scale * jax.random.normal(k, a.shape) for a, k in zip(leaves, keys, strict=True)]
    nnx.update(layer, treedef.unflatten(noisy))
    return layer


@pytest.fixture
def xs():
    return jax.random.normal(jax.random.key(1), (B, T, I))


# --------------------------------------------------------------------------------------
# Parity with Flax NNX's cells under nnx.RNN, weights copied.


def copy_into(kind, theirs, p):
    """Our params ``p`` into Flax NNX cell ``theirs`` (its layout: recurrent.py)."""
    if kind == "LSTMCell":
        wx, wh, b = (jnp.split(w, 4, axis=-1) for w in (p.w_x, p.w_h, p.b))
        for k, gate in enumerate("ifgo"):
            getattr(theirs, "i" + ("f_" if gate == "f" else gate)).kernel[...] = wx[k]
            getattr(theirs, "h" + gate).kernel[...] = wh[k]
            getattr(theirs, "h" + gate).bias[...] = b[k]
    elif kind == "OptimizedLSTMCell":
        theirs.dense_i.kernel[...] = p.w_x
        theirs.dense_h.kernel[...] = p.w_h
        theirs.dense_h.bias[...] = p.b
    else:  # GRUCell (r, z, n blocks; no b_hn) and SimpleCell: input bias, no recurrent one
        theirs.dense_i.kernel[...] = p.w_x
        theirs.dense_i.bias[...] = p.b
        theirs.dense_h.kernel[...] = p.w_h


NNX_CELLS = {
    "LSTMCell": ("lstm", lambda: nnx.LSTMCell(I, H, rngs=nnx.Rngs(0))),
    "OptimizedLSTMCell": ("lstm", lambda: nnx.OptimizedLSTMCell(I, H, rngs=nnx.Rngs(0))),
    "GRUCell": ("gru", lambda: nnx.GRUCell(I, H, rngs=nnx.Rngs(0))),
    "SimpleCell": ("simple", lambda: nnx.SimpleCell(I, H, rngs=nnx.Rngs(0))),
}


@pytest.mark.parametrize("kind", sorted(NNX_CELLS))
def test_parity_with_flax_nnx_cells(kind, xs):
    name, make = NNX_CELLS[kind]
    ours = perturbed(gnnx.RNN(CELLS[name], I, rngs=nnx.Rngs(0), return_carry=True))
    if kind == "GRUCell":  # NNX's GRU has no recurrent candidate bias
        ours.b_hn[...] = jnp.zeros_like(ours.b_hn[...])
    theirs = make()
    copy_into(kind, theirs, ours.params())
    carry, ys = ours(xs)
    ref_carry, ref_ys = nnx.RNN(theirs, return_carry=True)(xs)
    close(ys, ref_ys)
    close(carry, ref_carry)
    # padded: Flax runs over the padding, we freeze; the valid steps and carries agree
    carry, ys = ours(xs, seq_lengths=LENGTHS)
    ref_carry, ref_ys = nnx.RNN(theirs, return_carry=True)(xs, seq_lengths=LENGTHS)
    close(carry, ref_carry)
    close(ys, jnp.where(valid(LENGTHS, ys), ref_ys, 0))
    # our Cell under Flax's RNN, from the same params
    adapter = gnnx.Cell(CELLS[name], I, rngs=nnx.Rngs(1))
    nnx.update(adapter, nnx.state(ours, nnx.Param))
    close(nnx.RNN(adapter, return_carry=True)(xs), nnx.RNN(theirs, return_carry=True)(xs))


def test_cell_adapter_is_an_rnn_cell(xs):
    adapter = gnnx.Cell(CELLS["lstm"], I, rngs=nnx.Rngs(0))
    assert isinstance(adapter, nnx.RNNCellBase) and adapter.num_feature_axes == 1
    zeros = adapter.initialize_carry((4, 2, I))  # no rngs needed for zeros (NNX's raise)
    assert isinstance(zeros, gc.LSTMCarry) and zeros.h.shape == (4, 2, H)
    assert not np.asarray(zeros.c).any()
    drawn = adapter.initialize_carry((2, I), nnx.Rngs(carry=1), jax.nn.initializers.normal(1.0))
    assert drawn.c.shape == (2, H) and np.asarray(drawn.c).std() > 0.1
    with pytest.raises(ValueError, match="needs rngs"):
        adapter.initialize_carry((2, I), carry_init=jax.nn.initializers.normal(1.0))
    # one step equals cell.step; a plain (c, h) carry comes back a plain tuple
    c0 = (jnp.full((B, H), 0.3), jnp.full((B, H), -0.2))
    carry, y = adapter(c0, xs[:, 0])
    ref_carry, ref_y = CELLS["lstm"].step(adapter.params(), gc.LSTMCarry(*c0), xs[:, 0])
    assert type(carry) is tuple
    close((carry, y), (tuple(ref_carry), ref_y))


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_cell_in_flax_rnn_and_bidirectional_equals_unroll(name, xs):
    cell = CELLS[name]
    adapter = gnnx.Cell(cell, I, rngs=nnx.Rngs(0))
    carry, ys = nnx.RNN(adapter, return_carry=True)(xs, seq_lengths=LENGTHS)
    ref_carry, ref_ys = gc.unroll(cell, adapter.params(), xs, lengths=LENGTHS)
    close(carry, ref_carry)
    close(jnp.where(valid(LENGTHS, ys), ys, 0), ref_ys)
    backward = gnnx.Cell(gc.simple_rnn(4), I, rngs=nnx.Rngs(1))
    bi = nnx.Bidirectional(nnx.RNN(adapter), nnx.RNN(backward), return_carry=True)
    carry, ys = bi(xs, seq_lengths=LENGTHS)
    both = gc.bidirectional(cell, gc.simple_rnn(4))
    ref = gc.unroll(both, (adapter.params(), backward.params()), xs, lengths=LENGTHS)
    close(carry, ref[0])
    close(jnp.where(valid(LENGTHS, ys), ys, 0), ref[1])


# --------------------------------------------------------------------------------------
# The layers equal the pure path they adapt.


@pytest.mark.parametrize(
    "name, lengths, reverse",
    [("lstm", None, False), ("lstm", LENGTHS, True), ("gru", LENGTHS, False)],
)
def test_rnn_equals_unroll(name, lengths, reverse, xs):
    cell = CELLS[name]
    layer = gnnx.RNN(cell, I, rngs=nnx.Rngs(0), reverse=reverse, keep_order=True)
    params = layer.params()
    assert jax.tree.structure(params) == jax.tree.structure(cell.init(jax.random.key(0), I))
    assert type(params) is type(cell.init(jax.random.key(0), I))
    got = layer(xs, seq_lengths=lengths, return_carry=True)
    close(got, gc.unroll(layer.cell, params, xs, lengths=lengths, reverse=reverse))
    # seq_lengths: exactly gc.unroll(lengths=...): zero outputs, frozen carry
    if lengths is not None:
        assert not np.asarray(jnp.where(valid(lengths, got[1]), 0, got[1])).any()


def test_params_are_one_param_per_array_named_by_field():
    layer = gnnx.RNN(gc.gru(H), I, rngs=nnx.Rngs(0))
    flat = dict(nnx.to_flat_state(nnx.state(layer, nnx.Param)))
    assert sorted(flat) == [("b",), ("b_hn",), ("w_h",), ("w_x",)]
    assert flat[("w_x",)][...].shape == (I, 3 * H)
    plain = gnnx.RNN(gc.gru(H, layer_norm=False), I, rngs=nnx.Rngs(0)).params()
    assert plain._fields == ("w_x", "w_h", "b", "b_hn")  # no layer norm, no None field
    stacked = gnnx.StackedRNN((gc.gru(H), gc.lstm(H)), I, bidirectional=True, rngs=nnx.Rngs(0))
    paths = [p for p, _ in nnx.to_flat_state(nnx.state(stacked, nnx.Param))]
    assert ("layers", 1, 0, "w_x") in paths and ("layers", 0, 1, "b_hn") in paths
    bi = gnnx.Bidirectional(gc.lstm(H), I, rngs=nnx.Rngs(0))
    assert ("forward", "w_h") in dict(nnx.to_flat_state(nnx.state(bi, nnx.Param)))
    # the same seed, the same params as cell.init with the stream's first key
    assert np.array_equal(layer.params().w_x, gc.gru(H).init(nnx.Rngs(0).params(), I).w_x)
    # metadata per field reaches the nnx.Param (sharding annotations travel this way)
    tagged = gnnx.RNN(gc.gru(H), I, rngs=nnx.Rngs(0), param_metadata={"w_h": {"tag": "rec"}})
    assert tagged.w_h.get_metadata()["tag"] == "rec"


# registry cells of every params structure: None fields, projections, stacks, nested
# NamedTuples (learned_initial_carry's field ``cell`` goes under ``cell_params``), wrappers
STRUCTURES = ["gru_reset_before", "lstm_proj", "stack_gru_lstm", "resettable_learned_lstm",
              "zoneout_recurrent_dropout_lstm", "mutants_mgu_indrnn", "mlstm",
              "lstm_cifg_peepholes_layer_norm", "delta_net", "gated_delta_net_resets_recurrent"]  # fmt: skip


@pytest.mark.parametrize("name", [n for n in STRUCTURES if n in REGISTRY])
def test_params_round_trip_for_registry_cells(name):
    """``layer.params()`` is ``cell.init``'s pytree: the same types, the same arrays."""
    cell = REGISTRY[name]()
    layer = gnnx.RNN(cell, I, rngs=nnx.Rngs(0))
    ref = cell.init(nnx.Rngs(0).params(), I)
    assert jax.tree.structure(layer.params()) == jax.tree.structure(ref)
    for a, b in zip(jax.tree.leaves(layer.params()), jax.tree.leaves(ref), strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    n = len(nnx.to_flat_state(nnx.state(layer, nnx.Param)))
    assert n == len(jax.tree.leaves(ref))  # one nnx.Param per array


def test_no_rng_key_is_stored(xs):
    models = [
        gnnx.RNN(gc.lstm(H), I, rngs=nnx.Rngs(0)),
        gnnx.Cell(gc.lstm(H), I, rngs=nnx.Rngs(0)),
        gnnx.Bidirectional(gc.lstm(H), I, rngs=nnx.Rngs(0)),
        gnnx.StackedRNN(gc.lstm(H), I, num_layers=2, dropout=0.5, rngs=nnx.Rngs(0)),
    ]
    for model in models:
        assert not nnx.to_flat_state(nnx.state(model, nnx.RngState)), type(model).__name__
    assert nnx.to_flat_state(nnx.state(nnx.RNN(models[1]), nnx.RngState))  # NNX's does


@pytest.mark.parametrize("lengths", [None, LENGTHS], ids=["full", "padded"])
def test_reverse_order_matches_flax_rnn(lengths, xs):
    """keep_order=False returns outputs in processing order, as flax.nnx.RNN does."""
    layer = gnnx.RNN(gc.lstm(H), I, rngs=nnx.Rngs(0), reverse=True, return_carry=True)
    adapter = gnnx.Cell(gc.lstm(H), I, rngs=nnx.Rngs(0))
    carry, ys = layer(xs, seq_lengths=lengths)
    ref_carry, ref_ys = nnx.RNN(adapter, reverse=True, return_carry=True)(xs, seq_lengths=lengths)
    mask = jnp.ones_like(ys, bool) if lengths is None else valid(lengths, ys)
    close(carry, ref_carry)
    close(ys, jnp.where(mask, ref_ys, 0))


def test_time_major_and_initial_carry(xs):
    layer = gnnx.RNN(gc.lstm(H), I, rngs=nnx.Rngs(0), time_major=True, return_carry=True)
    xs_tm = jnp.swapaxes(xs, 0, 1)
    c0 = (jnp.full((B, H), 0.1), jnp.full((B, H), -0.4))  # Flax's plain (c, h)
    carry, ys = layer(xs_tm, initial_carry=c0, seq_lengths=LENGTHS)
    ref_carry, ref_ys = gc.unroll(
        layer.cell, layer.params(), xs, gc.LSTMCarry(*c0), lengths=LENGTHS
    )
    assert type(carry) is tuple  # the container given
    close((carry, ys), (tuple(ref_carry), jnp.swapaxes(ref_ys, 0, 1)))
    close(
        layer(xs, time_major=False, return_carry=False),
        gc.unroll(layer.cell, layer.params(), xs)[1],
    )


def test_flax_nnx_lstm_encoder_feeds_our_decoder(xs):
    encoder = nnx.RNN(nnx.LSTMCell(I, H, rngs=nnx.Rngs(0)), return_carry=True)
    carry, _ = encoder(xs)  # a plain (c, h) tuple
    decoder = gnnx.RNN(gc.lstm(H), I, rngs=nnx.Rngs(1), return_carry=True)
    out_carry, ys = decoder(xs, initial_carry=carry)
    ref = gc.unroll(decoder.cell, decoder.params(), xs, gc.LSTMCarry(*carry))
    assert type(out_carry) is tuple
    close((out_carry, ys), (tuple(ref[0]), ref[1]))
    # and our Cell under Flax's RNN hands the scan the type it was given
    adapter = gnnx.Cell(gc.lstm(H), I, rngs=nnx.Rngs(1))
    close(nnx.RNN(adapter, return_carry=True)(xs, initial_carry=carry), (tuple(ref[0]), ref[1]))


def test_bidirectional_equals_unroll_and_flax_bidirectional(xs):
    layer = gnnx.Bidirectional(gc.gru(H), I, rngs=nnx.Rngs(0), backward=gc.lstm(4))
    carry, ys = layer(xs, seq_lengths=LENGTHS, return_carry=True)
    ref = gc.unroll(layer.as_cell(), layer.params(), xs, lengths=LENGTHS)
    close((carry, ys), ref)
    assert ys.shape == (B, T, H + 4)
    # our RNN satisfies flax's RNNBase protocol: nnx.Bidirectional drives two of them
    fwd = gnnx.RNN(gc.gru(H), I, rngs=nnx.Rngs(2))
    bwd = gnnx.RNN(gc.lstm(4), I, rngs=nnx.Rngs(3))
    nnx.update(fwd, nnx.state(layer.forward, nnx.Param))
    nnx.update(bwd, nnx.state(layer.backward, nnx.Param))
    theirs = nnx.Bidirectional(fwd, bwd, return_carry=True)
    close(theirs(xs, seq_lengths=LENGTHS), (carry, ys))
    with pytest.raises(TypeError, match=r"flax.nnx.Bidirectional\(forward_rnn, backward_rnn\)"):
        gnnx.Bidirectional(fwd, I, rngs=nnx.Rngs(0))


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
def test_stacked_equals_functional_stack(bidirectional, xs):
    cells = (gc.gru(H), gc.simple_rnn(H), gc.lstm(H))  # mixed types per layer
    model = gnnx.StackedRNN(
        cells, I, rngs=nnx.Rngs(0), bidirectional=bidirectional, dropout=0.5, return_carry=True
    )
    deep = gc.stack(*(gc.bidirectional(c) if bidirectional else c for c in cells))
    params = model.params()
    assert jax.tree.structure(params) == jax.tree.structure(deep.init(jax.random.key(0), I))
    got = model(xs, seq_lengths=LENGTHS, deterministic=True)
    close(got, gc.unroll(model.as_cell(), params, xs, lengths=LENGTHS), atol=1e-5)
    assert got[1].shape == (B, T, 2 * H if bidirectional else H)


def test_stacked_dropout(xs):
    model = gnnx.StackedRNN((gc.gru(H), gc.lstm(H)), I, rngs=nnx.Rngs(0), dropout=0.5)
    off = model(xs, deterministic=True)
    close(off, gc.unroll(model.as_cell(), model.params(), xs)[1])
    a = model(xs, rngs=nnx.Rngs(dropout=1))
    b = model(xs, rngs=nnx.Rngs(dropout=2))
    assert not np.allclose(a, b) and not np.allclose(a, off)
    close(model(xs, rngs=nnx.Rngs(dropout=1)), a)  # the same seed, the same masks
    padded = model(xs, seq_lengths=LENGTHS, rngs=nnx.Rngs(dropout=1))
    assert not np.asarray(jnp.where(valid(LENGTHS, padded), 0, padded)).any()
    with pytest.raises(ValueError, match=r"rngs=nnx.Rngs\(dropout=seed\)"):
        model(xs)
    model.eval()  # NNX's switches drive the dropout
    close(model(xs), off)
    close(nnx.view(model, deterministic=False)(xs, rngs=nnx.Rngs(dropout=1)), a)
    model.train()
    close(model(xs, rngs=nnx.Rngs(dropout=1)), a)


def test_rnn_regularizer_from_call_rngs(xs):
    reg = partial(gc.recurrent_dropout, rate=0.5)
    layer = gnnx.RNN(gc.lstm(H), I, rngs=nnx.Rngs(0), regularizer=reg)
    a, b = layer(xs, rngs=nnx.Rngs(dropout=1)), layer(xs, rngs=nnx.Rngs(dropout=2))
    assert not np.allclose(a, b)
    close(layer(xs, deterministic=True), gc.unroll(layer.cell, layer.params(), xs)[1])
    with pytest.raises(ValueError, match="needs a key"):
        layer(xs)
    layer.eval()
    close(layer(xs), layer(xs, deterministic=True))


# --------------------------------------------------------------------------------------
# NNX's transforms, optimizer and checkpoints.


def loss_fn(model, xs):
    return jnp.mean(model(xs) ** 2)


def test_jit_grad_value_and_grad(xs):
    layer = gnnx.RNN(gc.lstm(H), I, rngs=nnx.Rngs(0))
    eager = layer(xs, seq_lengths=LENGTHS)
    close(nnx.jit(lambda m, x, n: m(x, seq_lengths=n))(layer, xs, LENGTHS), eager)
    grads = nnx.grad(loss_fn)(layer, xs)
    value, grads2 = nnx.value_and_grad(loss_fn)(layer, xs)
    cell = layer.cell
    ref_value, ref = jax.value_and_grad(lambda p: jnp.mean(gc.unroll(cell, p, xs)[1] ** 2))(
        layer.params()
    )
    close(value, ref_value)
    for field in ("w_x", "w_h", "b"):
        close(grads[field][...], getattr(ref, field), atol=1e-7)
        close(grads2[field][...], getattr(ref, field), atol=1e-7)


def test_optimizer_step_lowers_the_loss(xs):
    model = gnnx.StackedRNN((gc.gru(H), gc.lstm(H)), I, rngs=nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)

    @nnx.jit
    def step(model, optimizer, xs):
        loss, grads = nnx.value_and_grad(loss_fn)(model, xs)
        with jax.numpy_dtype_promotion("standard"):  # optax's adam: decay ** int32 count
            optimizer.update(model, grads)
        return loss

    before = step(model, optimizer, xs)
    assert float(loss_fn(model, xs)) < float(before)


def test_optax_mask_by_field_via_param_paths():
    model = gnnx.StackedRNN((gc.gru(H), gc.lstm(H)), I, rngs=nnx.Rngs(0))

    def kernels(state):
        return nnx.map_state(lambda path, _: path[-1] in ("w_x", "w_h"), state)

    tx = optax.adamw(1e-2, weight_decay=0.5, mask=kernels)
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
    before = model.params()
    with jax.numpy_dtype_promotion("standard"):  # optax's adam: decay ** int32 count
        optimizer.update(model, jax.tree.map(jnp.zeros_like, nnx.state(model, nnx.Param)))
    moved = jax.tree.map(lambda a, b: bool((a != b).any()), before, model.params())
    assert moved[0] == gc.GRUParams(w_x=True, w_h=True, b=False, b_hn=False)
    assert moved[1] == gc.LSTMParams(w_x=True, w_h=True, b=False)


def test_split_merge_and_remat(xs):
    layer = gnnx.Bidirectional(gc.lstm(H), I, rngs=nnx.Rngs(0))
    graphdef, state = nnx.split(layer)
    close(jax.jit(lambda s, x: nnx.merge(graphdef, s)(x))(state, xs), layer(xs))
    plain = nnx.grad(loss_fn)(layer, xs)
    remat = nnx.grad(lambda m, x: jnp.mean(nnx.remat(lambda m, x: m(x))(m, x) ** 2))(layer, xs)
    close(remat, plain, atol=1e-7)


def test_scan_over_identical_layers(xs):
    cell = gc.gru(I)  # I -> I, so that layers chain

    @nnx.vmap(in_axes=0, out_axes=0)
    def make(key):
        return gnnx.RNN(cell, I, rngs=nnx.Rngs(key))

    layers = make(jax.random.split(jax.random.key(0), 3))

    @nnx.scan(in_axes=(nnx.Carry, 0), out_axes=nnx.Carry)
    def forward(x, layer):
        return layer(x)

    got = forward(xs, layers)
    ref = xs
    for k in range(3):
        ref = gc.unroll(cell, jax.tree.map(lambda a, k=k: a[k], layers.params()), ref)[1]
    close(got, ref, atol=1e-5)


def test_orbax_round_trip(tmp_path, xs):
    ocp = pytest.importorskip("orbax.checkpoint")

    class Model(nnx.Module):
        def __init__(self, rngs):
            self.rnn = gnnx.StackedRNN(gc.lstm(H), I, num_layers=2, dropout=0.1,
                                       bidirectional=True, rngs=rngs)  # fmt: skip
            self.head = nnx.Linear(2 * H, 3, rngs=rngs)

        def __call__(self, xs):
            return self.head(self.rnn(xs, deterministic=True).mean(axis=1))

    model = Model(nnx.Rngs(0))
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(tmp_path / "state", nnx.state(model))
    checkpointer.wait_until_finished()
    graphdef, abstract = nnx.split(nnx.eval_shape(lambda: Model(nnx.Rngs(1))))
    restored = nnx.merge(graphdef, checkpointer.restore(tmp_path / "state", abstract))
    checkpointer.close()
    assert not np.allclose(Model(nnx.Rngs(1))(xs), model(xs))
    close(restored(xs), model(xs))
    close(restored.rnn.params(), model.rnn.params())


# --------------------------------------------------------------------------------------
# Errors.


def test_bad_input_errors(xs):
    with pytest.raises(TypeError, match="cell must be a gatedcells.Cell"):
        gnnx.RNN("lstm", I, rngs=nnx.Rngs(0))
    with pytest.raises(TypeError, match="run Flax's cells with flax.nnx.RNN"):
        gnnx.RNN(nnx.LSTMCell(I, H, rngs=nnx.Rngs(0)), I, rngs=nnx.Rngs(0))
    for bad in (0, 2.5, True, "5"):
        with pytest.raises(ValueError, match="in_features must be a positive int"):
            gnnx.Cell(gc.lstm(H), bad, rngs=nnx.Rngs(0))
    with pytest.raises(TypeError, match=r"rngs must be an nnx.Rngs"):
        gnnx.RNN(gc.lstm(H), I, rngs=0)
    layer = gnnx.RNN(gc.lstm(H), I, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"seq_lengths must have shape \[\*B\]=\(3,\)"):
        layer(xs, seq_lengths=jnp.array([1, 2]))
    with pytest.raises(ValueError, match="xs must have shape"):
        layer(xs[..., :2])
    with pytest.raises(ValueError, match="carry must have the structure"):
        layer(xs, initial_carry=(jnp.zeros((B, H)),))
    with pytest.raises(ValueError, match="initial_carry must be a tuple of 2"):
        gnnx.StackedRNN(gc.gru(H), I, num_layers=2, rngs=nnx.Rngs(0))(xs, initial_carry=xs)
    with pytest.raises(ValueError, match="dropout must be a number in"):
        gnnx.StackedRNN(gc.gru(H), I, num_layers=2, dropout=1.0, rngs=nnx.Rngs(0))
    with pytest.raises(TypeError, match="param_metadata must map field names"):
        gnnx.RNN(gc.gru(H), I, rngs=nnx.Rngs(0), param_metadata={"w_x": "model"})


def test_import_without_flax_says_what_to_install(monkeypatch):
    for name in [
        m for m in sys.modules if m == "gatedcells.nnx" or m.startswith("gatedcells.nnx.")
    ]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "flax", None)
    monkeypatch.setitem(sys.modules, "flax.nnx", None)
    with pytest.raises(ImportError, match=r"pip install 'gatedcells\[flax\]'"):
        importlib.import_module("gatedcells.nnx")
