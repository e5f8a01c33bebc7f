"""gatedcells.nnx's constructors: the signatures they show, and ``StackedRNN``'s arguments
beside linen's (``StackedRNN(cell, 3)`` is 3 layers in linen, never silently one in NNX)."""

import importlib
import inspect

import pytest

import gatedcells as gc

nnx = pytest.importorskip("flax.nnx")
gnnx = importlib.import_module("gatedcells.nnx")
gl = importlib.import_module("gatedcells.linen")


@pytest.mark.parametrize("name", ["RNN", "Bidirectional", "StackedRNN", "Cell"])
def test_layers_show_their_init_signature(name):
    """Not NNX's metaclass's ``(*args, **kwargs)``: what Sphinx, IDEs and help() show."""
    layer = getattr(gnnx, name)
    sig = inspect.signature(layer)
    params = list(sig.parameters.values())
    assert [p.name for p in params[1:3]] == ["in_features", "rngs"]
    assert params[1].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params[2:])
    assert "gatedcells.Cell" in str(sig) and "_cell" not in str(sig)  # the public name
    # an instance's signature stays its __call__'s
    instance = layer(gc.lstm(4), 3, **({"num_layers": 2} if name == "StackedRNN" else {}),
                     rngs=nnx.Rngs(0))  # fmt: skip
    assert "in_features" not in inspect.signature(instance).parameters


def test_stacked_rnn_with_one_cell_takes_num_layers_by_name():
    with pytest.raises(
        ValueError,
        match=r"^num_layers must be given with a single cell: "
        r"StackedRNN\(cell, in_features, num_layers=N, rngs=rngs\)",
    ):
        gnnx.StackedRNN(gc.lstm(8), 3, rngs=nnx.Rngs(0))  # linen's spelling of 3 layers
    with pytest.raises(TypeError):  # everything after in_features is keyword-only
        gnnx.StackedRNN(gc.lstm(8), 5, 3, rngs=nnx.Rngs(0))
    model = gnnx.StackedRNN(gc.lstm(8), 5, num_layers=3, rngs=nnx.Rngs(0))
    assert len(model.layer_cells) == 3 and model.layers[0].w_x.shape == (5, 32)
    assert gl.StackedRNN(gc.lstm(8), 3).num_layers == 3  # linen: the same layers
    # one cell per layer needs no num_layers, the docs' spelling
    assert len(gnnx.StackedRNN((gc.gru(8), gc.lstm(8)), 2, rngs=nnx.Rngs(0)).layer_cells) == 2
