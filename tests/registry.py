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
# code paths; the equations of each variant are checked one by one in tests/test_variants.py.
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
    # tests/test_linear_recurrence.py (its compile time would dominate this suite)
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
