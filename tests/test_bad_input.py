"""The bad-input audit: every public function, given a wrong argument, raises a clear
``TypeError``/``ValueError`` naming that argument (never an ``AttributeError``, a
``KeyError`` or an XLA error from deep inside). One test per case; the core's original
cases are in ``test_errors.py``."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import registry

import gatedcells as gc
from gatedcells import cli, diagnostics, interop, tasks, training

I, H, B, T = 3, 4, 2, 5
KEY = jax.random.key(0)
LSTM = gc.lstm(H)
PARAMS = LSTM.init(KEY, I)
XS = jnp.ones((B, T, I))


def quadratic(params, batch, key):
    return jnp.sum(jnp.square(params - batch)), {}


def fit(loss_fn=quadratic, optimizer=None, **kwargs):
    kwargs = dict(steps=2, key=KEY, progress=False) | kwargs
    optimizer = optax.sgd(0.1) if optimizer is None else optimizer
    return training.fit(loss_fn, jnp.zeros(2), optimizer, lambda key: jnp.ones(2), **kwargs)


# --------------------------------------------------------------------------------------
# Core: cells, unroll, combinators


@pytest.mark.parametrize("size", [0, -2, 2.5, True])
def test_init_input_size_not_a_positive_int(size):
    with pytest.raises(ValueError, match=f"input_size must be a positive int, got {size!r}"):
        LSTM.init(KEY, size)


def test_init_key_not_a_prng_key():
    with pytest.raises(
        TypeError, match=r"key must be a PRNG key \(jax.random.key\(seed\)\), got int"
    ):
        LSTM.init(0, I)


def test_init_raw_uint32_key_still_accepted():
    assert LSTM.init(jax.random.PRNGKey(0), I).w_x.shape == (I, 4 * H)


def test_initial_carry_batch_shape_not_a_tuple():
    with pytest.raises(TypeError, match="batch_shape must be a tuple of non-negative ints.*got 2"):
        LSTM.initial_carry(2)


def test_initial_carry_integer_dtype():
    with pytest.raises(TypeError, match="dtype must be a floating dtype or None"):
        gc.gru(H).initial_carry((B,), jnp.int32)


def test_unroll_cell_not_a_cell():
    with pytest.raises(TypeError, match="cell must be a gatedcells.Cell.*got 'lstm'"):
        gc.unroll("lstm", PARAMS, XS)


def test_unroll_params_none():
    with pytest.raises(ValueError, match=r"params do not belong to this lstm\(4\).*NoneType"):
        gc.unroll(LSTM, None, XS)


def test_unroll_reverse_not_a_bool():
    with pytest.raises(TypeError, match="reverse must be a bool, got 'yes'"):
        gc.unroll(LSTM, PARAMS, XS, reverse="yes")


def test_unroll_time_major_not_a_bool():
    with pytest.raises(TypeError, match="time_major must be a bool, got 'no'"):
        gc.unroll(LSTM, PARAMS, XS, time_major="no")


def test_unroll_grad_unknown():
    with pytest.raises(ValueError, match=r"grad must be one of \('auto', 'autodiff'\), got 'fast'"):
        gc.unroll(LSTM, PARAMS, XS, grad="fast")


@pytest.mark.parametrize("remat", [0, -1, 2.5, "yes"])
def test_unroll_remat_not_a_bool_or_positive_int(remat):
    with pytest.raises(ValueError, match="remat must be a bool or a positive int"):
        gc.unroll(LSTM, PARAMS, XS, remat=remat)


def test_unroll_xs_complex():
    with pytest.raises(TypeError, match="xs must have a floating dtype, got complex64"):
        gc.unroll(LSTM, PARAMS, XS.astype(jnp.complex64))


def test_unroll_lengths_boolean():
    with pytest.raises(TypeError, match="lengths must have an integer dtype, got bool"):
        gc.unroll(LSTM, PARAMS, XS, lengths=jnp.array([True, False]))


def test_unroll_lengths_of_another_rank():
    with pytest.raises(ValueError, match=r"lengths must have shape \[\*B\]=\(2,\).*\(2, 1\)"):
        gc.unroll(LSTM, PARAMS, XS, lengths=jnp.ones((B, 1), jnp.int32))


def test_unroll_lengths_too_large_with_remat():
    with pytest.raises(ValueError, match=r"lengths must lie in \[0, T\] = \[0, 5\]"):
        gc.unroll(LSTM, PARAMS, XS, lengths=np.array([5, 6]), remat=True)


def test_step_params_of_another_cell():
    with pytest.raises(ValueError, match="params do not belong to this lstm.*GRUParams"):
        LSTM.step(gc.gru(H).init(KEY, I), LSTM.initial_carry((B,)), XS[:, 0])


def test_stack_params_list_of_the_wrong_length():
    with pytest.raises(ValueError, match="a tuple of 2 params, got list of length 1"):
        gc.unroll(gc.stack(LSTM, LSTM), [PARAMS], XS)


def test_bidirectional_forward_not_a_cell():
    with pytest.raises(TypeError, match="forward must be a gatedcells.Cell"):
        gc.bidirectional("lstm")


def test_bidirectional_backward_not_a_cell():
    with pytest.raises(TypeError, match="backward must be a gatedcells.Cell"):
        gc.bidirectional(LSTM, "gru")


def test_count_params_leaf_not_an_array():
    with pytest.raises(TypeError, match="params must be a pytree of arrays.*str"):
        gc.count_params({"w": "abc"})


def test_check_finite_name_not_a_string():
    with pytest.raises(TypeError, match="name must be a string"):
        gc.check_finite(XS, 3)


def test_linear_recurrence_log_a_and_b_mismatch():
    with pytest.raises(
        ValueError,
        match=r"log_a must have the shape of b \(5, 3\) or broadcast to it, got \(5, 2\)",
    ):
        gc.linear_recurrence(jnp.ones((5, 2)), jnp.ones((5, 3)))


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: gc.lstm(4, forget_bias="a"), "forget_bias must be a number, got 'a'"),
        (lambda: gc.gru(4, update_bias=None), "update_bias must be a number, got None"),
        (lambda: gc.lstm(4, output_activation="tanh"), "output_activation must be a function"),
        (lambda: gc.simple_rnn(4, activation="relu"), "activation must be a function"),
        (lambda: gc.gru(4, kernel_init=0.1), "kernel_init must be a function"),
        (lambda: gc.lstm(4, param_dtype=jnp.int32), "param_dtype must be a floating dtype"),
        (lambda: gc.simple_rnn(4, dtype="int8"), "dtype must be a floating dtype"),
    ],
)  # fmt: skip
def test_factory_flags_of_the_wrong_type(build, message):
    with pytest.raises(TypeError, match=message):
        build()


@pytest.mark.parametrize(
    "combinator",
    [
        gc.resettable,
        gc.learned_initial_carry,
        lambda c: gc.recurrent_dropout(c, 0.1, deterministic=True),
        lambda c: gc.weight_drop(c, 0.1, deterministic=True),
        lambda c: gc.zoneout(c, 0.1, deterministic=True),
    ],
)
def test_combinators_of_a_non_cell(combinator):
    with pytest.raises(TypeError, match="cell must be a gatedcells.Cell"):
        combinator("lstm")


# --------------------------------------------------------------------------------------
# Flax linen: the module's own argument names


def test_linen_rnn_seq_lengths_of_wrong_shape():
    import gatedcells.linen as gl

    with pytest.raises(ValueError, match=r"^seq_lengths must have shape \[\*B\]=\(2,\)"):
        gl.RNN(LSTM).init(KEY, XS, seq_lengths=jnp.array([1, 2, 3]))


def test_linen_rnn_seq_lengths_out_of_range():
    import gatedcells.linen as gl

    with pytest.raises(ValueError, match=r"^seq_lengths must lie in \[0, T\] = \[0, 5\]"):
        gl.RNN(LSTM).init(KEY, XS, seq_lengths=np.array([1, 9]))


def test_linen_rnn_seq_lengths_float():
    import gatedcells.linen as gl

    with pytest.raises(TypeError, match="^seq_lengths must have an integer dtype, got float32"):
        gl.RNN(LSTM).init(KEY, XS, seq_lengths=jnp.array([1.0, 2.0]))


def test_linen_bidirectional_seq_lengths_of_wrong_shape():
    import gatedcells.linen as gl

    with pytest.raises(ValueError, match="^seq_lengths must have shape"):
        gl.Bidirectional(LSTM).init(KEY, XS, seq_lengths=jnp.array([1, 2, 3]))


def test_linen_stacked_seq_lengths_of_wrong_shape():
    import gatedcells.linen as gl

    with pytest.raises(ValueError, match="^seq_lengths must have shape"):
        gl.StackedRNN(LSTM, num_layers=2).init(KEY, XS, seq_lengths=jnp.array([1, 2, 3]))


def test_linen_rnn_cell_not_a_cell():
    import gatedcells.linen as gl

    with pytest.raises(TypeError, match="cell must be a gatedcells.Cell"):
        gl.RNN("lstm").init(KEY, XS)


def test_linen_rnn_initial_carry_of_another_structure():
    import gatedcells.linen as gl

    with pytest.raises(ValueError, match="carry must have the structure of cell.initial_carry"):
        gl.RNN(LSTM).init(KEY, XS, initial_carry=jnp.zeros((B, H)))


def test_linen_stacked_dropout_out_of_range():
    import gatedcells.linen as gl

    with pytest.raises(ValueError, match=r"dropout must lie in \[0, 1\), got 1.0"):
        gl.StackedRNN(LSTM, num_layers=2, dropout=1.0).init(KEY, XS, deterministic=True)


def test_linen_stacked_num_layers_against_cells():
    import gatedcells.linen as gl

    with pytest.raises(ValueError, match="num_layers=3 but 2 cells were given"):
        gl.StackedRNN((LSTM, LSTM), num_layers=3).init(KEY, XS)


def test_linen_cell_of_a_bidirectional_layer():
    import flax.linen as nn

    import gatedcells.linen as gl

    with pytest.raises(TypeError, match="runs whole sequences only"):
        nn.RNN(gl.Cell(gc.bidirectional(LSTM))).init(KEY, XS)


# --------------------------------------------------------------------------------------
# Training


def test_train_step_optimizer_not_optax():
    with pytest.raises(TypeError, match="optimizer must be an optax.GradientTransformation"):
        training.train_step(quadratic, "adam")


def test_fit_loss_fn_not_callable():
    with pytest.raises(TypeError, match=r"loss_fn must be a function \(params, batch, key\)"):
        fit(loss_fn="loss")


def test_fit_optimizer_not_optax():
    with pytest.raises(TypeError, match="optimizer must be an optax.GradientTransformation.*'sgd'"):
        fit(optimizer="sgd")


def test_fit_key_not_a_prng_key():
    with pytest.raises(TypeError, match="key must be a PRNG key"):
        fit(key=0)


def test_fit_loss_not_a_scalar():
    with pytest.raises(
        TypeError, match=r"loss_fn's loss must be a floating scalar, got shape \(2,\)"
    ):
        fit(loss_fn=lambda p, batch, key: (p - batch, {}))


def test_fit_loss_fn_without_metrics():
    with pytest.raises(TypeError, match=r"loss_fn must return \(loss, metrics\).*shape \(\)"):
        fit(loss_fn=lambda p, batch, key: jnp.sum(p - batch))


def test_fit_eval_fn_not_returning_a_dict():
    with pytest.raises(TypeError, match="eval_fn must return a dict of scalars, got ArrayImpl"):
        fit(eval_fn=lambda p: jnp.sum(p))


def test_fit_steps_float():
    with pytest.raises(ValueError, match="steps must be a positive int, got 2.0"):
        fit(steps=2.0)


def test_fit_mesh_unknown():
    with pytest.raises(ValueError, match='mesh must be "auto", None or a jax.sharding.Mesh'):
        fit(mesh="all")


def test_fit_config_not_json():
    with pytest.raises(TypeError, match="config must be JSON-serialisable"):
        fit(config={"optimizer": optax.sgd(0.1)})


def test_fit_task_cell_not_a_cell():
    with pytest.raises(TypeError, match="cell must be a gatedcells.Cell, got 'lstm'"):
        training.fit_task("lstm", tasks.adding(5), optax.adam(1e-3), steps=2, key=KEY)


def test_task_model_task_not_a_task():
    with pytest.raises(TypeError, match="task must be a gatedcells.tasks.Task.*'adding'"):
        training.task_model(LSTM, "adding")


def test_task_model_params_of_another_cell():
    other = training.task_model(LSTM, tasks.adding(5)).init(KEY)
    model = training.task_model(gc.gru(H), tasks.adding(5))
    with pytest.raises(ValueError, match=r"params do not belong to this gru\(4\).*LSTMParams"):
        model.apply(other, jnp.ones((B, 5, 2)))


# --------------------------------------------------------------------------------------
# Tasks


def test_task_sample_key_not_a_prng_key():
    with pytest.raises(TypeError, match="key must be a PRNG key"):
        tasks.adding(5).sample(0, 2)


def test_task_sample_batch_size_float():
    with pytest.raises(TypeError, match=r"batch_size must be a Python int \(static\), got 2.0"):
        tasks.temporal_order(10).sample(KEY, 2.0)


def test_tasks_get_unknown_name():
    with pytest.raises(ValueError, match="unknown task 'sum'; choose one of adding, copy"):
        tasks.get("sum")


def test_task_length_too_short():
    with pytest.raises(ValueError, match="length must be an int >= 10, got 5"):
        tasks.temporal_order(5)


def test_mse_predictions_and_targets_mismatch():
    with pytest.raises(
        ValueError, match=r"predictions must have shape \[..., 1\] matching targets"
    ):
        tasks.mse(jnp.ones((4, 1)), jnp.ones(3))


def test_accuracy_float_labels():
    with pytest.raises(TypeError, match="labels must have an integer dtype, got float32"):
        tasks.accuracy(jnp.ones((4, 3)), jnp.ones(4))


def test_cross_entropy_logits_and_labels_mismatch():
    with pytest.raises(ValueError, match=r"logits must have shape \[..., C\] matching labels"):
        tasks.cross_entropy(jnp.ones((4, 3)), jnp.ones(5, jnp.int32))


# --------------------------------------------------------------------------------------
# Interop


def test_from_torch_not_a_module():
    pytest.importorskip("torch")
    with pytest.raises(TypeError, match="from_torch takes torch.nn.RNN/LSTM/GRU.*got str"):
        interop.from_torch("lstm")


def test_from_torch_state_dict_missing_weights():
    with pytest.raises(ValueError, match="state_dict has no 'weight_ih_l1', 'weight_hh_l1'"):
        interop.from_torch_state_dict(
            {"weight_ih_l0": np.ones((8, 3)), "weight_hh_l0": np.ones((8, 2))}, mode="LSTM",
            num_layers=2,
        )  # fmt: skip


def test_from_torch_state_dict_unknown_mode():
    with pytest.raises(ValueError, match="mode must be one of .*got 'lstm'"):
        interop.from_torch_state_dict({}, mode="lstm")


def test_from_flax_params_of_another_module():
    import flax.linen as nn

    gru_vars = nn.GRUCell(H).init(KEY, nn.GRUCell(H).initialize_carry(KEY, (B, I)), XS[:, 0])
    with pytest.raises(ValueError, match=r"params hold no kernel for ii, if, ig, io.*LSTMCell"):
        interop.from_flax(nn.LSTMCell(H), gru_vars)


def test_from_flax_not_a_recurrent_cell():
    import flax.linen as nn

    with pytest.raises(TypeError, match="from_flax takes flax.linen LSTMCell.*got Dense"):
        interop.from_flax(nn.Dense(H), {})


def test_to_flax_params_of_another_cell():
    import flax.linen as nn

    with pytest.raises(ValueError, match="params do not belong to this lstm.*GRUParams"):
        interop.to_flax(gc.gru(H).init(KEY, I), nn.LSTMCell(H))


# --------------------------------------------------------------------------------------
# The command (each prints one line and exits 2)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--cell", "lsmt"], "argument --cell: invalid choice: 'lsmt'"),
        (["--task", "sum"], "argument --task: invalid choice: 'sum'"),
        (["--checkpoint-every", "0"], "argument --checkpoint-every: expected a positive integer"),
        (["--layers", "-1"], "argument --layers: expected a positive integer"),
    ],
)  # fmt: skip
def test_command_bad_names_and_numbers(argv, message, capsys, tmp_path):
    base = {"--task": "adding", "--cell": "lstm", "--out": str(tmp_path / "x")}
    base.update(dict(zip(argv[::2], argv[1::2], strict=True)))
    assert cli.main(["train", *(a for kv in base.items() for a in kv)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and len(err.splitlines()) == 1


# --------------------------------------------------------------------------------------
# Diagnostics


def test_gate_trace_cell_not_a_cell():
    with pytest.raises(TypeError, match="cell must be a gatedcells.Cell .*, got 'lstm'"):
        diagnostics.gate_trace("lstm", PARAMS, XS)


def test_gradient_flow_xs_of_another_input_size():
    with pytest.raises(ValueError, match=r"xs must have shape \[\*B, T, I\] with I=3"):
        diagnostics.gradient_flow(LSTM, PARAMS, jnp.ones((B, T, I + 1)))


# --------------------------------------------------------------------------------------
# Every factory checks its flags when the cell is built, naming the flag


@pytest.mark.parametrize(
    "build, error, message",
    [
        (lambda: gc.indrnn(8, param_dtype=jnp.int32), TypeError, "param_dtype must be a floating"),
        (lambda: gc.indrnn(8, activation="relu"), TypeError, "activation must be a function"),
        (lambda: gc.mgu(8, forget_bias="1"), TypeError, "forget_bias must be a number"),
        (lambda: gc.mgu(8, recurrent_init=None), TypeError, "recurrent_init must be a function"),
        (lambda: gc.mut1(8, raw_input="yes"), TypeError, "raw_input must be a bool"),
        (lambda: gc.mut2(8, dtype=jnp.int8), TypeError, "dtype must be a floating dtype"),
        (lambda: gc.mut3(8, kernel_init=1.0), TypeError, "kernel_init must be a function"),
        (lambda: gc.min_gru(8, bias_init="zeros"), TypeError, "bias_init must be a function"),
        (lambda: gc.min_lstm(8, positive=1), TypeError, "positive must be a bool"),
        (lambda: gc.min_lstm(8, param_dtype=jnp.int32), TypeError, "param_dtype must be a float"),
        (lambda: gc.gru(8, reset_after="no"), TypeError, "reset_after must be a bool"),
        (lambda: gc.lstm(8, forget_gate=0), TypeError, "forget_gate must be a bool"),
        (lambda: gc.lstm_variant(8, forget_bias=None), TypeError, "forget_bias must be a number"),
        (lambda: gc.lstm_variant(8, peephole_init=0.0), TypeError, "peephole_init must be a func"),
        (lambda: gc.lstm_variant(8, layer_norm="yes"), TypeError, "layer_norm must be a bool"),
        (lambda: gc.lstm_variant(8, output_activation="tanh"), TypeError, "output_activation"),
        (lambda: gc.lstm_variant(0), ValueError, "hidden_size must be a positive int"),
    ],
)  # fmt: skip
def test_every_factory_checks_its_flags_when_built(build, error, message):
    with pytest.raises(error, match=message):
        build()


# --------------------------------------------------------------------------------------
# Every cell of the registry: the boundary checks hold whatever the cell's own driver


@pytest.mark.parametrize("name", registry.NAMES)
def test_every_registry_cell_refuses_bad_input_in_one_line(name):
    cell = registry.build(name)
    params = cell.init(KEY, I + 1)  # I + 1: the resettable cells read a flag channel too
    xs = jnp.ones((B, T, I + 1))
    cases = [
        (ValueError, r"xs must have shape \[\*B, T, I\] with I=4", lambda: gc.unroll(
            cell, params, jnp.ones((B, T, I + 2)))),
        (TypeError, "xs must have a floating dtype, got int32", lambda: gc.unroll(
            cell, params, xs.astype(jnp.int32))),
        (ValueError, r"lengths must have shape \[\*B\]=\(2,\)", lambda: gc.unroll(
            cell, params, xs, lengths=jnp.ones(B + 1, jnp.int32))),
        (ValueError, r"^params (do not belong to this|of )", lambda: gc.unroll(
            cell, gc.gru(H + 3).init(KEY, I + 1), xs)),
        (ValueError, "input_size must be a positive int", lambda: cell.init(KEY, 0)),
        (TypeError, "batch_shape must be a tuple", lambda: cell.initial_carry(B)),
    ]  # fmt: skip
    for error, message, call in cases:
        with pytest.raises(error, match=message) as raised:
            call()
        assert len(str(raised.value).splitlines()) == 1, (name, str(raised.value))
