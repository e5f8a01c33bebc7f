"""The cells every contract test runs over: each factory with each of its flags."""

import jax
import jax.numpy as jnp

import gatedcells as gc

H = 6  # hidden size used by the registry

CELLS = {
    "simple_rnn": lambda: gc.simple_rnn(H),
    "simple_rnn_relu": lambda: gc.simple_rnn(H, activation=jax.nn.relu),
    "lstm": lambda: gc.lstm(H),
    "lstm_forget_bias5": lambda: gc.lstm(H, forget_bias=5.0),
    "lstm_no_forget_gate": lambda: gc.lstm(H, forget_gate=False),
    "lstm_identity_output": lambda: gc.lstm(H, output_activation=jax.nn.identity),
    "lstm_fixed_io": lambda: gc.lstm(H, fixed_gates={"i": 1.0, "o": 1.0}),
    "lstm_simple_regime": lambda: gc.lstm(
        H, fixed_gates={"i": 1.0, "f": 0.0, "o": 1.0}, output_activation=jax.nn.identity
    ),
    "lstm_bf16_compute": lambda: gc.lstm(H, dtype=jnp.bfloat16),
    "gru": lambda: gc.gru(H),
    "gru_reset_before": lambda: gc.gru(H, reset_after=False),
    "gru_update_bias0": lambda: gc.gru(H, update_bias=0.0),
    "stack_gru_lstm": lambda: gc.stack(gc.gru(H), gc.lstm(H + 1)),
    "stack_single": lambda: gc.stack(gc.simple_rnn(H)),
}

# Cells whose matmuls run in bfloat16 agree with themselves only to bfloat16 precision.
LOOSE = {"lstm_bf16_compute": dict(rtol=2e-2, atol=2e-2)}
# Layer norm divides by the spread of its inputs: its gradients agree to a few ulps less.
LOOSE["lstm_cifg_peepholes_layer_norm"] = dict(rtol=1e-4, atol=1e-5)
LOOSE["gru_layer_norm_chrono"] = dict(rtol=1e-4, atol=1e-5)

# The variant zoo (issue 7): factories taking the keywords the bfloat16 test rebuilds them
# with (param_dtype). Flags and combinators are combined so that each entry covers several
# code paths; the equations of each variant are checked one by one in tests/cells/test_variants.py.
_KEY = jax.random.key(42)
_PEEP = jax.nn.initializers.normal(0.5)  # non-zero peepholes and initial carries
REBUILD = {
    "lstm_cifg_peepholes_layer_norm": lambda **kw: gc.lstm_variant(  # JANET's coupling
        H,
        cifg=True,
        cifg_shift=1.0,
        peepholes=True,
        layer_norm=True,
        chrono=20,
        peephole_init=_PEEP,
        **kw,
    ),  # fmt: skip
    "lstm_fgr_proj": lambda **kw: gc.lstm_variant(
        H, variant="fgr", proj_size=H - 2, peephole_init=_PEEP, **kw
    ),
    "lstm_proj": lambda **kw: gc.lstm(H, proj_size=H - 3, chrono=20, **kw),
    "gru_layer_norm_chrono": lambda **kw: gc.gru(H, layer_norm=True, chrono=20, **kw),
    "resettable_learned_lstm": lambda **kw: gc.resettable(
        gc.learned_initial_carry(gc.lstm(H, **kw), init=_PEEP, **kw)
    ),
}
CELLS.update(
    REBUILD,
    # stacks of cells without a fused form (not named stack_*: no fused layer to check);
    # the minimal cells' associative path is checked against the sequential one in
    # tests/sequence/test_linear_recurrence.py (its compile time would dominate this suite)
    minimal_cells=lambda: gc.stack(gc.min_gru(H, method="sequential"), gc.min_lstm(H)),
    mutants_mgu_indrnn=lambda: gc.stack(
        gc.mut1(H), gc.mut2(H), gc.mut3(H), gc.weight_drop(gc.mgu(H), 0.3, key=_KEY), gc.indrnn(H)
    ),
    # zoneout's step counter stays float32 (exact to 2**24 steps): no bfloat16 rebuild
    zoneout_recurrent_dropout_lstm=lambda: gc.zoneout(
        gc.recurrent_dropout(gc.lstm(H), 0.3, key=_KEY), gc.LSTMCarry(0.5, 0.1), key=_KEY
    ),
)

# Random masks are drawn for the batch shape a cell sees, so a cell applied to one example
# (vmapped, or unbatched) draws other masks than the batched cell.
PER_BATCH_MASKS = {"zoneout_recurrent_dropout_lstm"}


def _shift_resets(xs):
    """The reset flags (last input channel, ``[B, T, I]``) of a backward loop of steps: a
    segment read backwards starts where the next one (forwards) starts."""
    flags = jnp.concatenate([xs[:, 1:, -1], jnp.zeros_like(xs[:, :1, -1])], axis=1)
    return jnp.concatenate([xs[..., :-1], flags[..., None]], axis=-1)


# unroll(reverse=True) equals a backward loop of steps on these inputs.
REVERSE_INPUTS = {"resettable_learned_lstm": _shift_resets}

# The mLSTM (issue 14): gate weights drawn (the factory starts them at zero) so that the
# stabiliser meets real exponential gates. Every form: "mlstm" runs the one chosen by length
# (the parallel form at the contract's T=7, the chunkwise form at the robustness suite's
# T=10,000), the chunkwise form is forced with chunks that do not divide T, the recurrent
# form in a stack. The forms are checked against each other in tests/cells/test_mlstm.py.
_GATES = jax.nn.initializers.normal(0.5)
REBUILD["mlstm"] = lambda **kw: gc.mlstm(H, num_heads=2, qk_dim=4, gate_init=_GATES, **kw)
REBUILD["mlstm_chunkwise_out_proj"] = lambda **kw: gc.mlstm(
    H, num_heads=3, v_dim=9, form="chunkwise", chunk_size=3, gate_init=_GATES, **kw
)
CELLS.update(
    mlstm=REBUILD["mlstm"],
    mlstm_chunkwise_out_proj=REBUILD["mlstm_chunkwise_out_proj"],
    mlstm_recurrent_stack_lstm=lambda: gc.stack(
        gc.mlstm(H, num_heads=2, form="recurrent", gate_init=_GATES), gc.lstm(H)
    ),
)

# The sLSTM (issue 14): the default (sigmoid forget gate, xlstm's power-law forget bias, one
# head) and the exponential forget gate with three heads of a block-diagonal w_h and drawn
# biases, so that the stabiliser meets real exponential gates; both on the fused scan. The
# contract draws carries with n of either sign, which no step from the zero carry reaches
# (n >= 1 after the first): a forget bias of -1 lets the input gate outweigh such an n
# within a step, or h = o c / n with n near 0 defeats the finite differences of check_grads.
_BIASES = jax.nn.initializers.normal(0.5)
REBUILD["slstm"] = lambda **kw: gc.slstm(H, **kw)
REBUILD["slstm_exp_heads"] = lambda **kw: gc.slstm(
    H, num_heads=3, forget_gate="exp", forget_bias=-1.0, bias_init=_BIASES, **kw
)
CELLS.update(
    slstm=REBUILD["slstm"],
    slstm_exp_heads=REBUILD["slstm_exp_heads"],
    stack_slstm_lstm=lambda: gc.stack(gc.slstm(H, num_heads=2), gc.lstm(H)),
)

# The gated linear recurrences (issue 13): every path of the engine, resets, heads, the input
# projection (the layers read I = H channels without it: the stack's later layers), complex
# state (LRU), a state axis per channel (S6). Checked against their references in
# tests/cells/test_linear_cells.py.
REBUILD["rg_lru"] = lambda **kw: gc.rg_lru(H, num_heads=2, input_proj=True, **kw)
REBUILD["rg_lru_resets_chunked"] = lambda **kw: gc.rg_lru(
    H, num_heads=3, resets=True, input_proj=True, method="chunked", chunk_size=3, **kw
)
REBUILD["lru"] = lambda **kw: gc.lru(H, state_size=5, input_proj=True, **kw)
REBUILD["selective_ssm"] = lambda **kw: gc.selective_ssm(H, state_size=4, input_proj=True, **kw)
REBUILD["selective_ssm_chunked"] = lambda **kw: gc.selective_ssm(
    H, state_size=3, input_proj=True, method="chunked", chunk_size=3, **kw
)
CELLS.update(
    rg_lru=REBUILD["rg_lru"],
    rg_lru_resets_chunked=REBUILD["rg_lru_resets_chunked"],
    lru=REBUILD["lru"],
    selective_ssm=REBUILD["selective_ssm"],
    selective_ssm_chunked=REBUILD["selective_ssm_chunked"],
    # one S6 only: its output is cubic in its input (B, C and the step all read it), so two
    # in a row overflow float32 on the robustness suite's |x| = 1e3, as they would in Mamba
    # without the block's normalisation
    lru_ssm_rg_lru_stack_paths=lambda: gc.stack(
        gc.lru(H, input_proj=True, method="associative"),
        gc.selective_ssm(H, state_size=2, method="associative"),
        gc.rg_lru(H, method="chunked", chunk_size=4),
    ),
)
# backwards, the RG-LRU's segments also start at the row's last step (its first step read)
REVERSE_INPUTS["rg_lru_resets_chunked"] = lambda xs: _shift_resets(xs).at[:, -1, -1].set(1.0)
