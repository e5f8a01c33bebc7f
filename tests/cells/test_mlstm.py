"""The mLSTM (issue 14): a NumPy transcription of the paper's recurrence as the reference; its
three forms (recurrent, parallel, chunkwise) against each other with lengths, reverse, an
initial carry and bfloat16; their gradients; the cell among the others (stack, linen, gate
traces); and the MQAR task."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import gatedcells as gc
import gatedcells.tasks as tasks
from gatedcells import diagnostics as gd
from gatedcells.cells import _mlstm_forms

H, NH, QK, V, I, B, T = 8, 2, 6, 10, 5, 3, 13  # v_dim != H: the output projection too
FORMS = ("recurrent", "parallel", "chunkwise")
GATES = jax.nn.initializers.normal(0.5)  # drawn gate weights: real exponential gating
LENGTHS = jnp.array([T, 6, 0])
TOL = dict(rtol=1e-5, atol=1e-5)


def make(form=None, **kw):
    kw = dict(num_heads=NH, qk_dim=QK, v_dim=V, gate_init=GATES, chunk_size=4) | kw
    return gc.mlstm(H, form=form, **kw)


# unroll compiled per cell (eagerly, each operation of a form is a program of its own)
unroll = jax.jit(gc.unroll, static_argnums=0)


def random_carry(cell, batch_shape):
    kc, kn, km = jax.random.split(jax.random.key(3), 3)
    zero = cell.initial_carry(batch_shape)
    return gc.MLSTMCarry(
        0.5 * jax.random.normal(kc, zero.C.shape),
        0.5 * jax.random.normal(kn, zero.n.shape),
        jax.random.normal(km, zero.m.shape),
    )


@pytest.fixture(scope="module")
def problem():
    cell = make("recurrent")
    params = cell.init(jax.random.key(0), I)
    xs = jax.random.normal(jax.random.key(1), (B, T, I))
    return params, xs, random_carry(cell, (B,))


def numpy_mlstm(params, xs, carry, nh=NH, qk=QK, v_dim=V, eps=1e-6):
    """The mLSTM as Beck et al. (2024) write it (section 2.3 and appendix, the stabilised
    step of the reference implementation), one sequence ``[T, I]`` at a time in float64."""
    w, b = np.asarray(params.w_x, np.float64), np.asarray(params.b, np.float64)
    dk, dv = qk // nh, v_dim // nh
    c = np.asarray(carry.C, np.float64).reshape(nh, dv, dk)
    n = np.asarray(carry.n, np.float64).reshape(nh, dk)
    m = np.asarray(carry.m, np.float64)
    ys, ms = [], []
    for x in np.asarray(xs, np.float64):
        z = x @ w + b
        q, k, v, i_pre, f_pre, o_pre = np.split(z, np.cumsum([qk, qk, v_dim, nh, nh]))
        q, k, v = q.reshape(nh, dk), k.reshape(nh, dk) / math.sqrt(dk), v.reshape(nh, dv)
        log_f = -np.log1p(np.exp(-f_pre))  # log sigmoid
        m_new = np.maximum(log_f + m, i_pre)
        i, f = np.exp(i_pre - m_new), np.exp(log_f + m - m_new)
        c = f[:, None, None] * c + i[:, None, None] * np.einsum("hv,hk->hvk", v, k)
        n = f[:, None] * n + i[:, None] * k
        den = np.maximum(np.abs(np.einsum("hk,hk->h", n, q)), np.exp(-m_new)) + eps
        h = (np.einsum("hvk,hk->hv", c, q) / den[:, None]).reshape(-1)
        h = h / (1 + np.exp(-o_pre))  # o = sigmoid(o_pre)
        ys.append(h @ np.asarray(params.w_out, np.float64))
        m = m_new
        ms.append(m)
    return np.stack(ys), (c.reshape(-1), n.reshape(-1), m), np.stack(ms)


# --------------------------------------------------------------------------------------
# The forms against the paper's equations and against each other.


@pytest.mark.parametrize("form", FORMS)
def test_forms_match_the_numpy_transcription_of_the_paper(problem, form):
    params, xs, carry = problem
    got_carry, ys = unroll(make(form), params, xs, carry)
    xs, carry = np.asarray(xs), jax.tree.map(np.asarray, carry)  # rows read in NumPy
    for b in range(B):
        want_ys, want_carry, _ = numpy_mlstm(params, xs[b], gc.MLSTMCarry(*(c[b] for c in carry)))
        np.testing.assert_allclose(ys[b], want_ys, **TOL)
        for got, want in zip(got_carry, want_carry, strict=True):
            np.testing.assert_allclose(got[b], want, **TOL)


def test_step_gates_and_stabiliser_match_the_numpy_transcription(problem):
    params, xs, carry = problem
    cell = make()
    trace = gd.gate_trace(cell, params, xs, carry)
    assert trace.gates._fields == ("i", "f", "o", "m")
    assert trace.gates.i.shape == (B, T, NH) and trace.gates.o.shape == (B, T, V)
    _, want_carry, want_m = numpy_mlstm(params, xs[0], jax.tree.map(lambda a: a[0], carry))
    np.testing.assert_allclose(trace.gates.m[0], want_m, **TOL)
    np.testing.assert_allclose(trace.carry.m[0], want_m, **TOL)
    assert bool((trace.gates.i <= 1).all() & (trace.gates.f <= 1).all())  # stabilised
    np.testing.assert_allclose(trace.ys, gc.unroll(cell, params, xs, carry)[1], **TOL)
    c, y = cell.step(params, jax.tree.map(lambda a: a[0], carry), xs[0, 0])
    want = numpy_mlstm(params, xs[0, :1], jax.tree.map(lambda a: a[0], carry))[0][0]
    np.testing.assert_allclose(y, want, **TOL)


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("lengths", [None, LENGTHS], ids=["full", "lengths"])
def test_forms_agree_with_lengths_reverse_and_an_initial_carry(problem, reverse, lengths):
    params, xs, carry = problem
    want = gc.unroll(make("recurrent"), params, xs, carry, lengths=lengths, reverse=reverse)
    for form in ("parallel", "chunkwise"):
        got = gc.unroll(make(form), params, xs, carry, lengths=lengths, reverse=reverse)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, **TOL), got, want)
    if lengths is not None:  # the carry froze at each length; outputs past it are zero
        assert not np.asarray(want[1][1, 6:]).any() and not np.asarray(want[1][2]).any()
        jax.tree.map(lambda c0, c: np.testing.assert_array_equal(c0[2], c[2]), carry, want[0])


@pytest.mark.parametrize("chunk_size", [1, 3, 4, 13, 64])
def test_chunkwise_any_chunk_size_equals_parallel(problem, chunk_size):
    params, xs, carry = problem
    want = unroll(make("parallel"), params, xs, carry, lengths=LENGTHS)
    got = unroll(make("chunkwise", chunk_size=chunk_size), params, xs, carry, lengths=LENGTHS)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, **TOL), got, want)


def loss_of(cell, lengths=None, reverse=False, grad="auto"):
    def loss(params, xs, carry):
        options = {"lengths": lengths, "reverse": reverse, "grad": grad}
        new_carry, ys = gc.unroll(cell, params, xs, carry, **options)
        return jnp.sum(ys**2) + sum(jnp.sum(leaf) for leaf in jax.tree.leaves(new_carry))

    return loss


@pytest.mark.parametrize("reverse", [False, True])
def test_gradients_of_the_forms_agree(problem, reverse):
    params, xs, carry = problem
    runs = [(form, "auto") for form in FORMS] + [("recurrent", "autodiff")]
    loss = lambda form, grad: loss_of(make(form), LENGTHS, reverse, grad)  # noqa: E731
    grads = {run: jax.jit(jax.grad(loss(*run), (0, 1, 2)))(params, xs, carry) for run in runs}
    close = lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)  # noqa: E731
    for run in runs:  # against plain autodiff of the step's loop
        jax.tree.map(close, grads[run], grads["recurrent", "autodiff"])
    assert not np.asarray(grads["chunkwise", "auto"][1][2]).any()  # length 0: no gradient


@pytest.mark.parametrize("form", FORMS)
def test_check_grads_of_the_sequence_forms(problem, form):
    params, xs, carry = problem
    cell = make(form, chunk_size=2)
    with jax.enable_x64(True):
        to64 = lambda t: jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), t)  # noqa: E731
        args = to64(params), to64(xs[:2, :5]), to64(jax.tree.map(lambda a: a[:2], carry))
        loss = jax.jit(loss_of(cell, jnp.array([5, 3])))
        check_grads(loss, args, order=1, modes=("rev",), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("form", FORMS)
def test_bfloat16_params_and_inputs_accumulate_in_float32(problem, form):
    params, xs, _ = problem
    cell = make(form, param_dtype=jnp.bfloat16)
    p16 = cell.init(jax.random.key(0), I)
    carry, ys = gc.unroll(cell, p16, xs.astype(jnp.bfloat16), lengths=LENGTHS, reverse=True)
    assert ys.dtype == jnp.bfloat16 and all(c.dtype == jnp.bfloat16 for c in carry)
    p32 = jax.tree.map(lambda a: a.astype(jnp.float32), p16)
    x32 = xs.astype(jnp.bfloat16).astype(jnp.float32)
    _, want = gc.unroll(make("recurrent"), p32, x32, lengths=LENGTHS, reverse=True)
    # bfloat16 outputs (and, in the recurrent form, a bfloat16 memory between steps): at
    # most 0.3% of the largest output here
    scale = 0.01 * float(jnp.max(jnp.abs(want)))
    np.testing.assert_allclose(ys.astype(jnp.float32), want, atol=scale)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize("form", FORMS)
def test_large_inputs_finite_in_every_form(form, dtype):
    """|x| up to 1e3 over 300 steps (the robustness suite runs the chosen form at 10,000)."""
    cell = make(form, chunk_size=32, param_dtype=dtype)
    xs = jax.random.uniform(jax.random.key(3), (2, 300, I), jnp.float32, -1e3, 1e3).astype(dtype)
    params = cell.init(jax.random.key(0), I)
    loss = jax.jit(jax.value_and_grad(loss_of(cell, jnp.array([300, 170])), argnums=(0, 1)))
    value, grads = loss(params, xs, cell.initial_carry((2,)))
    leaves = [value, *jax.tree.leaves(grads)]
    assert all(bool(jnp.isfinite(a.astype(jnp.float32)).all()) for a in leaves)


def test_default_form_by_length(problem, monkeypatch):
    assert _mlstm_forms.default_form(32, 32) == "parallel"
    assert _mlstm_forms.default_form(33, 32) == "chunkwise"
    assert _mlstm_forms.default_form(1, 32, backend="gpu") == "parallel"
    params, xs, carry = problem
    ran = []
    for name in ("parallel", "chunkwise"):
        form = getattr(_mlstm_forms, name)
        monkeypatch.setattr(
            _mlstm_forms, name, lambda *a, form=form, name=name: ran.append(name) or form(*a)
        )
    cell = make(chunk_size=4)
    want = gc.unroll(make("recurrent"), params, xs, carry)
    for steps, form in ((4, "parallel"), (T, "chunkwise")):
        got = gc.unroll(cell, params, xs[:, :steps], carry)
        assert ran.pop() == form
        np.testing.assert_allclose(got[1], want[1][:, :steps], **TOL)


@pytest.mark.parametrize("form", FORMS)
def test_forward_mode_with_grad_autodiff(problem, form):
    """The forms' own gradients are reverse-mode only; ``grad="autodiff"`` serves ``jvp``."""
    params, xs, carry = problem
    run = lambda x: gc.unroll(make(form), params, x, carry, grad="autodiff")[1]  # noqa: E731
    tangent = jnp.ones_like(xs)
    _, got = jax.jit(lambda x: jax.jvp(run, (x,), (tangent,)))(xs)
    own = lambda x: gc.unroll(make(form), params, x, carry)[1]  # noqa: E731
    ys = jax.jit(run)(xs)  # <jvp, u> = <t, vjp(u)> for the all-ones tangent t and u = ys
    pulled = jax.jit(lambda x, u: jax.vjp(own, x)[1](u)[0])(xs, ys)
    np.testing.assert_allclose(jnp.sum(got * ys), jnp.sum(pulled), rtol=1e-4)


def test_chunk_size_follows_the_head_size():
    sizes = {qk: gc.mlstm(64, num_heads=2, qk_dim=qk).scan.spec.chunk_size for qk in (8, 64, 256)}
    assert sizes == {8: 16, 64: 32, 256: 64}  # 4, 32 and 128 per head
    assert gc.mlstm(64, chunk_size=8).scan.spec.chunk_size == 8


# --------------------------------------------------------------------------------------
# The cell among the others.


def test_params_hold_only_the_fields_the_cell_has():
    cell = gc.mlstm(8, num_heads=2, qk_dim=4)
    params = cell.init(jax.random.key(0), 3)
    assert params.w_out is None and params.w_x.shape == (3, 4 + 4 + 8 + 2 + 2 + 8)
    assert gc.count_params(params) == (3 + 1) * (2 * 4 + 2 * 8 + 2 * 2)
    start = 4 + 4 + 8  # (q, k, v) then the input and forget gates: biases 0 and 3..6
    np.testing.assert_allclose(params.b[start : start + 4], [0.0, 0.0, 3.0, 6.0])
    assert gc.count_params(make().init(jax.random.key(0), I)) == (I + 1) * 36 + V * H
    with pytest.raises(ValueError, match=r"params.w_out must be None"):
        cell.check_params(params._replace(w_out=jnp.zeros((8, 8))))
    with pytest.raises(ValueError, match=r"expected a field 'w_out' of shape \(10, 8\)"):
        make().check_params(make().init(jax.random.key(0), I)._replace(w_out=None))


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(num_heads=3), ValueError, r"^num_heads=3 must divide qk_dim=8 and v_dim=8 \("),
        (dict(num_heads=2, v_dim=5), ValueError, r"num_heads=2 must divide qk_dim=8 and v_dim=5"),
        (dict(num_heads=0), ValueError, r"num_heads must be a positive int, got 0"),
        (dict(qk_dim=2.0), ValueError, r"qk_dim must be a positive int"),
        (dict(form="fast"), ValueError, r"form must be one of \('recurrent', 'parallel'"),
        (dict(chunk_size=0), ValueError, r"chunk_size must be a positive int, got 0"),
        (dict(forget_bias=(1.0, 2.0, 3.0)), ValueError, r"forget_bias must be a number or a"),
        (dict(forget_bias="big"), TypeError, r"forget_bias must be a number"),
        (dict(eps=None), TypeError, r"eps must be a number"),
        (dict(gate_init=3), TypeError, r"gate_init must be a function"),
        (dict(param_dtype=jnp.int32), TypeError, r"param_dtype must be a floating dtype"),
    ],
)
def test_bad_arguments_get_one_line_errors(kwargs, error, message):
    with pytest.raises(error, match=message) as info:
        gc.mlstm(8, **kwargs)
    assert "\n" not in str(info.value)


def test_stacks_with_other_cells_and_steps_like_it_unrolls():
    deep = gc.stack(gc.mlstm(8, num_heads=2), gc.lstm(8))
    params = deep.init(jax.random.key(0), 3)
    xs = jax.random.normal(jax.random.key(1), (2, 40, 3))
    carry, ys = gc.unroll(deep, params, xs)  # the mLSTM layer runs chunkwise at 40 steps
    step_carry, step_ys, step = deep.initial_carry((2,)), [], jax.jit(deep.step)
    for t in range(40):
        step_carry, y = step(params, step_carry, xs[:, t])
        step_ys.append(y)
    np.testing.assert_allclose(ys, jnp.stack(step_ys, axis=1), **TOL)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, **TOL), carry, step_carry)
    trace = gd.gate_trace(deep, params, xs)
    assert trace.gates[0].m.shape == (2, 40, 2) and trace.gates[1]._fields == ("i", "f", "g", "o")


def test_runs_in_linen_rnn():
    pytest.importorskip("flax")
    import gatedcells.linen as gl

    cell = gc.mlstm(8, num_heads=2)
    xs = jax.random.normal(jax.random.key(1), (2, 40, 3))
    lengths = jnp.array([40, 17])
    module = gl.RNN(cell, return_carry=True)
    variables = module.init(jax.random.key(0), xs, seq_lengths=lengths)
    params = variables["params"]["cell"]
    assert isinstance(params, gc.MLSTMParams)
    carry, ys = module.apply(variables, xs, seq_lengths=lengths)
    want = gc.unroll(cell, params, xs, lengths=lengths)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, **TOL), (carry, ys), want)


def test_jit_and_vmap_of_the_sequence_forms(problem):
    params, xs, carry = problem
    for form in ("parallel", "chunkwise"):
        cell = make(form)
        run = lambda p, x, c, cell=cell: gc.unroll(cell, p, x, c)  # noqa: E731
        want = run(params, xs, carry)
        jax.tree.map(
            lambda a, b: np.testing.assert_allclose(a, b, **TOL),
            jax.jit(run)(params, xs, carry),
            want,
        )
        got = jax.jit(jax.vmap(run, in_axes=(None, 0, 0)))(params, xs, carry)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, **TOL), got, want)
        one = jax.jit(run)(params, xs[1], jax.tree.map(lambda a: a[1], carry))  # no batch axis
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b[1], **TOL), one, want)


# --------------------------------------------------------------------------------------
# Multi-query associative recall.


def test_mqar_samples_pairs_then_queries():
    task = tasks.mqar(40, num_pairs=5, vocab_size=24)
    xs, ys = jax.jit(task.sample, static_argnums=1)(jax.random.key(0), 16)
    assert xs.shape == (16, 40, 24) and ys.shape == (16, 40) and ys.dtype == jnp.int32
    assert task.per_step and task.output_size == 24 and task.length == 40
    assert task.baseline_metric == 1 / 12 and math.isclose(task.baseline_loss, math.log(12))
    tokens = np.asarray(xs.argmax(-1))
    ys = np.asarray(ys)
    for seq, target in zip(tokens, ys, strict=True):
        keys, values = seq[:10:2], seq[1:10:2]
        assert len(set(keys)) == 5 and set(keys) <= set(range(1, 12))
        assert len(set(values)) == 5 and set(values) <= set(range(12, 24))
        queries = np.flatnonzero(target != tasks.NO_TARGET)
        assert len(queries) == 5 and (queries >= 10).all() and (queries % 2 == 0).all()
        assert sorted(seq[queries]) == sorted(keys)  # every key queried once
        pairs = dict(zip(keys, values, strict=True))
        assert all(pairs[seq[t]] == target[t] for t in queries)


def test_mqar_loss_and_metric_read_only_the_queries():
    task = tasks.mqar(16, num_pairs=2, vocab_size=8)
    xs, ys = task.sample(jax.random.key(1), 4)
    perfect = 10.0 * jax.nn.one_hot(jnp.where(ys < 0, 0, ys), 8)  # anything at non-queries
    assert float(task.metric(perfect, ys)) == 1.0 and float(task.loss(perfect, ys)) < 1e-3
    uniform = jnp.zeros((4, 16, 8))
    assert float(task.metric(uniform, ys)) == 0.0  # argmax 0: never a value
    np.testing.assert_allclose(task.loss(uniform, ys), math.log(8), rtol=1e-6)
    assert tasks.get("mqar", 32).name == "mqar(T=32, pairs=8, vocab=64)"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(length=31), r"length must be an int >= 32"),
        (dict(num_pairs=0), r"num_pairs must be a positive int"),
        (dict(vocab_size=17), r"vocab_size=17 is too small for num_pairs=8"),
        (dict(power_a=0.0), r"power_a must be a number in \(0, 1\]"),
    ],
)
def test_mqar_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        tasks.mqar(**kwargs)
