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
