"""The public surface: names exported, and ``import gatedcells`` needs only jax."""

import inspect
import subprocess
import sys
import typing

import pytest

import gatedcells as gc


@pytest.mark.slow  # a fresh interpreter
def test_import_needs_only_jax():
    code = (
        "import sys, gatedcells; "
        "print(sorted(m for m in ('flax', 'optax', 'orbax', 'torch', 'sklearn', 'matplotlib') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_exported_names():
    assert set(gc.__all__) == {
        "Cell", "MatmulSplit", "GRADS",
        # the types of the cell's fields
        "InitFn", "CarryFn", "ProjectFn", "UpdateFn", "CheckParamsFn", "ScanFn", "GRUGates", "GRUParams", "GRULayerNormParams", "LSTMCarry", "LSTMGates", "LSTMParams",
        "SimpleRNNGates", "SimpleRNNParams", "bidirectional", "count_params", "gru", "lstm",
        "simple_rnn", "stack", "unroll", "default_unroll",
        # the variant zoo
        "FullGateCarry", "GREFF_VARIANTS", "IndRNNGates", "IndRNNParams", "LSTM_VARIANTS",
        "LSTMPParams", "LSTMVariantParams", "lstm_variant",
        "LearnedCarry", "LearnedCarryParams", "MGUGates", "MGUParams", "MUTGates", "MUTParams",
        "MinGRUGates", "MinLSTMGates", "MinimalParams", "ZoneoutCarry", "indrnn",
        "learned_initial_carry", "linear_recurrence", "mgu", "min_gru", "min_lstm", "mut1",
        "mut2", "mut3", "recurrent_dropout", "resettable", "weight_drop", "zoneout",
        # robustness
        "check_finite",
        "check_lengths",
        # the xLSTM's sLSTM (issue 14)
        "SLSTMCarry", "SLSTMGates", "SLSTMParams", "slstm",
        # the xLSTM's mLSTM (issue 14)
        "MLSTMCarry", "MLSTMGates", "MLSTMParams", "mlstm",
        # the gated linear recurrences (issue 13)
        "LRUGates", "LRUParams", "lru", "RGLRUGates", "RGLRUParams", "rg_lru",
        "SSMGates", "SSMParams", "selective_ssm",
        # the delta rule (issue 26)
        "DeltaCarry", "DeltaGates", "DeltaParams", "delta_net", "gated_delta_net",
        # convolutional cells (issue 18)
        "ConvGRUParams", "ConvLSTMParams", "conv_gru", "conv_lstm",
        # sequence parallelism (issue 24)
        "sharded_unroll", "logical_axes", "param_shardings", "use_cpu_cores",
    }  # fmt: skip
    # constants documented by the pages (a read-only mapping cannot carry a docstring)
    for name in set(gc.__all__) - {"GRADS", "LSTM_VARIANTS"}:
        assert getattr(gc, name).__doc__, f"{name} has no docstring"


def test_the_cell_contract_is_shown_by_its_public_names():
    """Signatures, type hints and the docs name ``gatedcells.InitFn``, not ``gatedcells._cell``."""
    hints = typing.get_type_hints(gc.Cell.__init__)
    fields = {"init_fn": gc.InitFn, "carry_fn": gc.CarryFn, "project": gc.ProjectFn,
              "update": gc.UpdateFn, "check_params": gc.CheckParamsFn}  # fmt: skip
    for field, kind in fields.items():
        assert hints[field] is kind
    assert hints["scan"] == gc.ScanFn | None and hints["split"] == gc.MatmulSplit | None
    for kind in (gc.Cell, gc.MatmulSplit, *fields.values(), gc.ScanFn):
        assert kind.__module__ == "gatedcells"
        assert getattr(gc, kind.__name__) is kind
    sig = str(inspect.signature(gc.Cell, eval_str=True))
    assert "gatedcells.InitFn" in sig and "_cell" not in sig
