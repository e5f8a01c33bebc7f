"""The cells every registry suite runs over (contract, padding, robustness, fused gradient,
bad input, shard_map): each factory of :data:`gatedcells.cells.CELLS`, plus the few code
paths it does not reach (combinators, forms, methods, a compute dtype).

Each entry is ``**kw -> Cell``: the suites call it with no keyword, and the bfloat16 suites
with ``param_dtype`` (entries in ``NO_REBUILD`` take none). :func:`build` makes each cell
once per process: two factory calls give unequal cells, and a cell reused is a program
compiled once.
"""

import functools

import jax
import jax.numpy as jnp

import gatedcells as gc
from gatedcells import cells

H = 6  # hidden size used by the registry

_KEY = jax.random.key(42)
_PEEP = jax.nn.initializers.normal(0.5)  # non-zero peepholes and learned initial carries
_GATES = jax.nn.initializers.normal(0.5)  # real exponential gates for the xLSTM stabilisers

# Flags for the entries of gatedcells.cells.CELLS, where a default would hide a term: zero
# peepholes (their gradient through c), zero mLSTM gate weights, a single head, a forget
# gate init that keeps every unit alike. The min_gru runs the sequential path here (the
# associative one is checked against it in tests/sequence/test_linear_recurrence.py; its
# compile time would dominate these suites).
FLAGS = {
    **{f"lstm_{v}": dict(peephole_init=_PEEP) for v in cells.GREFF_VARIANTS if v != "np"},
    "lstm_fgr": dict(proj_size=H - 2, peephole_init=_PEEP),  # a variant with LSTMP
    "lstm_janet": dict(chrono=20),
    # layer norm with JANET's coupling and peepholes: every optional term of the variant step
    "lstm_layer_norm": dict(cifg=True, cifg_shift=1.0, peepholes=True, peephole_init=_PEEP),
    "lstm_proj": dict(chrono=20),
    "gru_layer_norm": dict(chrono=20),
    "min_gru": dict(method="sequential"),
    "mlstm": dict(num_heads=2, qk_dim=4, gate_init=_GATES),
    "rg_lru": dict(num_heads=2),
    "lru": dict(state_size=5),
    "selective_ssm": dict(state_size=4),
    # chunks that do not divide T, the short convolution (default), two heads
    "delta_net": dict(num_heads=2, qk_dim=8, chunk_size=3),
    "gated_delta_net": dict(
        num_heads=2, qk_dim=4, v_dim=4, chunk_size=4, negative_eigenvalues=True
    ),
}
CELLS = {name: functools.partial(factory, H, **FLAGS.get(name, {}))
         for name, factory in cells.CELLS.items()}  # fmt: skip

# The code paths no entry of gatedcells.cells.CELLS reaches.
CELLS.update(
    # matmuls in bfloat16 over float32 params
    lstm_bf16_compute=lambda **kw: gc.lstm(H, dtype=jnp.bfloat16, **kw),
    # clamped gates (fixed_gates) with an identity output: the lecture's simple-RNN regime
    lstm_simple_regime=lambda **kw: gc.lstm(
        H, fixed_gates={"i": 1.0, "f": 0.0, "o": 1.0}, output_activation=jax.nn.identity, **kw
    ),
    # a stack of fused layers, a wider second layer
    stack_gru_lstm=lambda **kw: gc.stack(gc.gru(H, **kw), gc.lstm(H + 1, **kw)),
    # the carry combinators: resets (the last input channel) and a learned initial carry
    resettable_learned_lstm=lambda **kw: gc.resettable(
        gc.learned_initial_carry(gc.lstm(H, **kw), init=_PEEP, **kw)
    ),
    # the regularisers (random masks drawn from a key)
    weight_drop_mgu=lambda **kw: gc.weight_drop(gc.mgu(H, **kw), 0.3, key=_KEY),
    zoneout_recurrent_dropout_lstm=lambda: gc.zoneout(
        gc.recurrent_dropout(gc.lstm(H), 0.3, key=_KEY), gc.LSTMCarry(0.5, 0.1), key=_KEY
    ),
    # the mLSTM's other forms: chunkwise with chunks that do not divide T and an output
    # size of its own, and the recurrent form (the default picks parallel or chunkwise by T)
    mlstm_chunkwise_out_proj=lambda **kw: gc.mlstm(
        H, num_heads=3, v_dim=9, form="chunkwise", chunk_size=3, gate_init=_GATES, **kw
    ),
    mlstm_recurrent=lambda **kw: gc.mlstm(H, num_heads=2, form="recurrent", gate_init=_GATES, **kw),
    # the delta rule's recurrent form with its optional terms (negative eigenvalues, output
    # gate, no output projection), and resets in both forms, across chunks and the
    # convolution's window
    delta_net_recurrent_gate=lambda **kw: gc.delta_net(
        H,
        num_heads=3,
        form="recurrent",
        negative_eigenvalues=True,
        output_gate=True,
        output_proj=False,
        **kw,
    ),
    gated_delta_net_resets=lambda **kw: gc.gated_delta_net(
        H, num_heads=2, resets=True, conv_size=3, chunk_size=2, **kw
    ),
    gated_delta_net_resets_recurrent=lambda **kw: gc.gated_delta_net(
        H, resets=True, conv_size=None, output_gate=False, form="recurrent", **kw
    ),
    # the sLSTM's exponential forget gate, three heads of a block-diagonal w_h, drawn
    # biases. The contract draws carries with n of either sign, which no step from the zero
    # carry reaches (n >= 1 after the first): a forget bias of -1 lets the input gate
    # outweigh such an n within a step, or h = o c / n with n near 0 defeats finite
    # differences.
    slstm_exp_heads=lambda **kw: gc.slstm(
        H, num_heads=3, forget_gate="exp", forget_bias=-1.0, bias_init=_GATES, **kw
    ),
    # the LSTM and GRU with a block-diagonal w_h (three heads), on the fused path
    lstm_heads=lambda **kw: gc.lstm(H, num_heads=3, **kw),
    gru_heads=lambda **kw: gc.gru(H, num_heads=2, **kw),
    # the linear recurrences' chunked path, with resets (RG-LRU) and a state axis (S6)
    rg_lru_resets_chunked=lambda **kw: gc.rg_lru(
        H, num_heads=3, resets=True, input_proj=True, method="chunked", chunk_size=3, **kw
    ),
    selective_ssm_chunked=lambda **kw: gc.selective_ssm(
        H, state_size=3, input_proj=True, method="chunked", chunk_size=3, **kw
    ),
    # the associative path and the layers without an input projection (I = H channels).
    # One S6 only: its output is cubic in its input (B, C and the step all read it), so two
    # in a row overflow float32 on the robustness suite's |x| = 1e3, as in Mamba without
    # its block's normalisation.
    lru_ssm_rg_lru_stack_paths=lambda **kw: gc.stack(
        gc.lru(H, input_proj=True, method="associative", **kw),
        gc.selective_ssm(H, state_size=2, method="associative", **kw),
        gc.rg_lru(H, method="chunked", chunk_size=4, **kw),
    ),
)
NAMES = sorted(CELLS)

# Entries whose registry suites (contract, padding, robustness, export, streaming, bad
# input) run in `make test` only: each differs from a representative that the fast tier
# keeps by a flag whose equations are checked by hand in its own tests (tests/cells:
# test_variants sweeps Greff's grid and the mutants, test_delta the recurrent form against
# the chunkwise one), while the suites' plumbing (unroll, layout, masks, adapters) is the
# representative's: lstm_vanilla for the variant step, mut1 for the mutants, delta_net and
# gated_delta_net_resets for the delta rule, lstm and gru for their heads (test_heads: equal
# to the dense block-diagonal cell) and the LSTMP (test_torch_equivalence: PyTorch's
# proj_size), mlstm for its other forms (test_mlstm: the forms equal each other and a NumPy
# transcription), rg_lru_resets_chunked and selective_ssm for the linear recurrences' paths
# (test_linear_recurrence: each path equals a loop).
FULL_ONLY = {
    "lstm1997",
    *(f"lstm_{v}" for v in ("cifg", "janet", "nfg", "niaf", "nig", "noaf", "nog", "np", "fgr")),
    "lstm_simple_regime",
    "lstm_proj",
    "lstm_heads",
    "gru_heads",
    "mut2",
    "mut3",
    "mlstm_recurrent",
    "mlstm_chunkwise_out_proj",
    "rg_lru",
    "selective_ssm_chunked",
    "delta_net_recurrent_gate",
    "gated_delta_net",
    "gated_delta_net_resets_recurrent",
}
assert FULL_ONLY <= set(NAMES), FULL_ONLY - set(NAMES)

# The entries whose plumbing tests (marked `plumbing`: jit against eager, vmap, batch axes,
# time-major, the other gradient paths under padding, export, the linen and NNX streams) run
# in the fast tier; `make test` runs them for every entry. The plumbing is unroll's and the
# adapters', shared by all cells: what changes it from one cell to another is the carry's
# structure and the path unroll takes, which these cover (an LSTM carry, an array, the mLSTM's
# matrix, the sLSTM's four parts, a state axis, a convolution's window with resets, a learned
# carry, drawn masks with a step counter, a stack's tuple, a bfloat16 compute dtype; the fused,
# linear-recurrence, chunkwise and plain scan paths), and the convolutional cases of
# tests/cells/test_conv.py (one of each cell, 1-D and 2-D, and a conv/dense stack).
PLUMBING = {
    "lstm",
    "gru",
    "mlstm",
    "slstm_exp_heads",
    "selective_ssm",
    "min_gru",
    "rg_lru_resets_chunked",
    "gated_delta_net_resets",
    "resettable_learned_lstm",
    "zoneout_recurrent_dropout_lstm",
    "stack_gru_lstm",
    "lstm_bf16_compute",
    *(CONV_PLUMBING := {"conv_lstm_2d", "conv_gru_1d", "stack_conv_lstm_dense_lstm"}),
}
assert PLUMBING - CONV_PLUMBING <= set(NAMES), PLUMBING - CONV_PLUMBING - set(NAMES)

# No param_dtype to rebuild with: zoneout's step counter stays float32 (exact to 2**24
# steps); the bfloat16-compute LSTM is its own bfloat16 case.
NO_REBUILD = {"zoneout_recurrent_dropout_lstm", "lstm_bf16_compute"}

# Cells whose matmuls run in bfloat16 agree with themselves only to bfloat16 precision.
LOOSE = {"lstm_bf16_compute": dict(rtol=2e-2, atol=2e-2)}
# Layer norm divides by the spread of its inputs: its gradients agree to a few ulps less.
LOOSE["lstm_layer_norm"] = dict(rtol=1e-4, atol=1e-5)
LOOSE["gru_layer_norm"] = dict(rtol=1e-4, atol=1e-5)

# Random masks are drawn for the batch shape a cell sees, so a cell applied to one example
# (vmapped, or unbatched) draws other masks than the batched cell.
PER_BATCH_MASKS = {"zoneout_recurrent_dropout_lstm"}

# Overflow can only come from exponential gating, the linear recurrences and the minimal
# cells (log-space coefficients): the robustness suite runs these over T = 10,000.
OVERFLOW_PRONE = {
    n
    for n in NAMES
    if n.startswith(
        ("slstm", "mlstm", "rg_lru", "lru", "selective_ssm", "min_", "delta", "gated_delta")
    )
}


@functools.cache
def build(name: str):
    """The registry cell ``name``, built once per process."""
    return CELLS[name]()


@functools.cache
def params(name: str, input_size: int):
    """``build(name).init(jax.random.key(0), input_size)`` as one compiled program (eagerly,
    each random draw and cast is a program of its own), made once per process."""
    return jax.jit(build(name).init, static_argnums=1)(jax.random.key(0), input_size)


def rebuild(name: str, **kw):
    """The registry cell ``name`` built with extra factory keywords, or ``None``."""
    return None if name in NO_REBUILD else CELLS[name](**kw)


def _shift_resets(xs):
    """The reset flags (last input channel, ``[B, T, I]``) of a backward loop of steps: a
    segment read backwards starts where the next one (forwards) starts."""
    flags = jnp.concatenate([xs[:, 1:, -1], jnp.zeros_like(xs[:, :1, -1])], axis=1)
    return jnp.concatenate([xs[..., :-1], flags[..., None]], axis=-1)


# unroll(reverse=True) equals a backward loop of steps on these inputs; backwards, the
# RG-LRU's segments also start at the row's last step (its first step read).
REVERSE_INPUTS = {
    "resettable_learned_lstm": _shift_resets,
    "rg_lru_resets_chunked": lambda xs: _shift_resets(xs).at[:, -1, -1].set(1.0),
    "gated_delta_net_resets": lambda xs: _shift_resets(xs).at[:, -1, -1].set(1.0),
    "gated_delta_net_resets_recurrent": lambda xs: _shift_resets(xs).at[:, -1, -1].set(1.0),
}
