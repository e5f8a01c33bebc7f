"""The one sequence layout rule (``sequence/_layout.py``) and the Flax options written once
over it (``sequence/_flax_options.py``)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gatedcells as gc
from gatedcells.sequence._flax_options import processing_order
from gatedcells.sequence._layout import from_time_major, sequence_layout, to_time_major


@pytest.mark.parametrize(
    ("shape", "feature_ndim", "time_major", "want"),
    [
        ((4, 7, 3), 1, False, (1, 7, (4,), (3,))),
        ((7, 4, 3), 1, True, (0, 7, (4,), (3,))),
        ((7, 3), 1, False, (0, 7, (), (3,))),
        ((2, 4, 7, 6, 5, 3), 3, False, (2, 7, (2, 4), (6, 5, 3))),
        ((7, 2, 4, 6, 5, 3), 3, True, (0, 7, (2, 4), (6, 5, 3))),
    ],
)
def test_sequence_layout(shape, feature_ndim, time_major, want):
    layout = sequence_layout(shape, feature_ndim, time_major)
    assert tuple(layout) == want
    assert layout.carry_shape == layout.batch_shape + layout.frame_shape[:-1]
    xs = jnp.arange(np.prod(shape)).reshape(shape)
    moved = to_time_major(xs, layout)
    assert moved.shape == (layout.steps, *layout.batch_shape, *layout.frame_shape)
    assert (from_time_major(moved, layout) == xs).all()


def test_processing_order_is_flax_flip_sequences():
    recurrent = pytest.importorskip("flax.linen.recurrent")
    lengths = jnp.array([5, 2, 0, 3])
    ys = jax.random.normal(jax.random.key(0), (5, 4, 3))  # [T, B, O]
    ys = jnp.where(
        jnp.arange(5)[:, None, None] < lengths[None, :, None], ys, 0.0
    )  # zeros, as unroll's
    want = recurrent.flip_sequences(ys, lengths, num_batch_dims=1, time_major=True)
    np.testing.assert_array_equal(processing_order(ys, lengths), want)
    np.testing.assert_array_equal(processing_order(ys, None), ys[::-1])


def test_stacked_rnn_takes_seq_lengths_over_frames_with_a_dense_layer_below():
    """The lengths cover ``*B`` for every layer, a dense layer over frames included."""
    nnx = pytest.importorskip("flax.nnx")
    import gatedcells.nnx as gnnx

    xs = jax.random.normal(jax.random.key(1), (2, 5, 6, 3))  # [B, T, S, C]
    lengths = jnp.array([5, 2])
    model = gnnx.StackedRNN((gc.gru(4), gc.conv_gru(4, (3,))), 3, rngs=nnx.Rngs(0))
    want = gc.unroll(model.as_cell(), model.params(), xs, lengths=lengths)[1]
    np.testing.assert_allclose(model(xs, seq_lengths=lengths), want, atol=1e-6)
    with pytest.raises(ValueError, match=r"seq_lengths must have shape \[\*B\]=\(2,\)"):
        model(xs, seq_lengths=jnp.array([5, 2, 1]))
