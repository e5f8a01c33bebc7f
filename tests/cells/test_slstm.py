"""The sLSTM against the xlstm package's vanilla cell (committed golden outputs, and live where
xlstm is installed) and a NumPy transcription of the paper's equations; its block-diagonal
recurrence, stabiliser, factory errors, and the layers around it. The contract, the fused
gradient and the robustness suites run it through tests/registry.py."""

import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gatedcells as gc
from gatedcells import diagnostics as gd

sys.path.insert(0, str(pathlib.Path(__file__).parents[1] / "fixtures"))
import make_xlstm_golden as golden  # noqa: E402

GOLDEN = golden.load()
TOL = dict(rtol=1e-5, atol=1e-5)  # float32, against xlstm's float32 vanilla cell


def run_golden(name, data):
    """gc.slstm on a golden case: outputs ``[B, T, H]`` and every step's carry."""
    cell = gc.slstm(golden.H, num_heads=golden.CASES[name][0])
    params = gc.SLSTMParams(*(jnp.asarray(data[k]) for k in ("w_x", "w_h", "b")))
    carry = gc.SLSTMCarry(*(jnp.asarray(data[k]) for k in ("c0", "n0", "m0", "h0")))
    assert cell.check_params(params) == golden.I
    final, ys = gc.unroll(cell, params, jnp.asarray(data["x"]), carry)
    trace = gd.gate_trace(cell, params, jnp.asarray(data["x"]), carry)
    return final, ys, trace.carry


@pytest.mark.parametrize("name", sorted(golden.CASES))
def test_golden_xlstm_vanilla(name):
    data = GOLDEN[name]
    final, ys, carries = run_golden(name, data)
    np.testing.assert_allclose(ys, data["y"], **TOL)
    for field in ("c", "n", "m"):
        np.testing.assert_allclose(getattr(carries, field), data[field], **TOL)
        np.testing.assert_allclose(getattr(final, field), data[field][:, -1], **TOL)
    np.testing.assert_allclose(final.h, data["y"][:, -1], **TOL)


def test_golden_max_abs_diff_is_float_rounding():
    worst = max(
        float(np.abs(run_golden(name, data)[1] - data["y"]).max()) for name, data in GOLDEN.items()
    )
    assert worst < 2e-6, worst


def test_golden_fixtures_match_live_xlstm():
    pytest.importorskip("xlstm", reason="xlstm not installed (golden fixtures still checked)")
    for name in golden.CASES:
        live = golden.run_case(name)
        for field, value in GOLDEN[name].items():
            np.testing.assert_allclose(live[field], value, rtol=1e-6, atol=1e-6, err_msg=field)
        _, ys, carries = run_golden(name, live)
        np.testing.assert_allclose(ys, live["y"], **TOL)
        np.testing.assert_allclose(carries.m, live["m"], **TOL)


def numpy_slstm(x_proj, w_h, carry, forget_gate):
    """The paper's equations (Beck et al. 2024, §2.2 and App. A), step by step in float64,
    with the xlstm package's first step from an empty memory (m = ĩ)."""
    c, n, m, h = (np.asarray(a, np.float64) for a in carry)
    heads, size = w_h.shape[0], w_h.shape[1]
    ys = []
    for t in range(x_proj.shape[1]):
        rec = np.einsum("bnj,njk->bnk", h.reshape(-1, heads, size), w_h)  # [B, NH, 4*D]
        rec = rec.reshape(-1, heads, 4, size).transpose(0, 2, 1, 3).reshape(-1, 4 * heads * size)
        i_t, f_t, z_t, o_t = np.split(x_proj[:, t] + rec, 4, axis=-1)
        log_f = f_t if forget_gate == "exp" else -np.logaddexp(0, -f_t)
        m_new = np.where(n == 0, i_t, np.maximum(log_f + m, i_t))
        i_s, f_s = np.exp(i_t - m_new), np.exp(np.minimum(log_f + m - m_new, 0))
        c = f_s * c + i_s * np.tanh(z_t)
        n = f_s * n + i_s
        m = m_new
        h = 1 / (1 + np.exp(-o_t)) * c / n
        ys.append(h)
    return np.stack(ys, axis=1), (c, n, m, h)


@pytest.mark.parametrize("forget_gate, heads", [("sigmoid", 1), ("exp", 2), ("exp", 4)])
def test_numpy_transcription_of_the_paper(forget_gate, heads):
    cell = gc.slstm(8, num_heads=heads, forget_gate=forget_gate,
                    bias_init=jax.nn.initializers.normal(1.0))  # fmt: skip
    params = cell.init(jax.random.key(0), 3)
    xs = 3 * jax.random.normal(jax.random.key(1), (2, 9, 3))
    carry = cell.initial_carry((2,))
    ref_ys, ref_carry = numpy_slstm(
        np.asarray(cell.project(params, xs), np.float64), np.asarray(params.w_h, np.float64),
        carry, forget_gate,
    )  # fmt: skip
    final, ys = gc.unroll(cell, params, xs)
    np.testing.assert_allclose(ys, ref_ys, rtol=1e-5, atol=1e-5)
    for got, want in zip(final, ref_carry, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_block_diagonal_recurrence_equals_dense_block_matrix():
    cell = gc.slstm(6, num_heads=3)
    params = cell.init(jax.random.key(0), 2)
    D = 2
    dense = np.zeros((6, 24), np.float32)  # the block-diagonal matrix, gate-major columns
    for n in range(3):
        for g in range(4):
            block = np.asarray(params.w_h[n][:, g * D : (g + 1) * D])
            dense[n * D : (n + 1) * D, g * 6 + n * D : g * 6 + (n + 1) * D] = block
    carry = jax.tree.map(lambda a: a + 0.3, cell.initial_carry((4,)))
    carry = carry._replace(h=jax.random.normal(jax.random.key(1), (4, 6)))
    x = jax.random.normal(jax.random.key(2), (4, 2))
    x_proj = cell.project(params, x)
    want = cell.split.pointwise(params, carry, x_proj, carry.h @ dense)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6),
                 cell.update(params, carry, x_proj), want)  # fmt: skip
    # the heads do not mix: the first head's state reaches no other head's gates
    h_proj = gc._cell.recurrent_matmul(carry.h.at[:, :D].set(0.0), params.w_h)
    diff = (h_proj - gc._cell.recurrent_matmul(carry.h, params.w_h)).reshape(4, 4, 3, D)
    assert bool((diff[:, :, 1:] == 0).all()) and bool((diff[:, :, 0] != 0).any())


def test_stabiliser_cancels_in_the_output():
    """(c e^-d, n e^-d, m + d) is the same state: the outputs agree; only m differs."""
    cell = gc.slstm(8, num_heads=2, forget_gate="exp")
    params = cell.init(jax.random.key(0), 3)
    xs = jax.random.normal(jax.random.key(1), (2, 6, 3))
    carry, _ = gc.unroll(cell, params, xs[:, :3])
    d = 5.0
    shifted = carry._replace(c=carry.c * np.exp(-d), n=carry.n * np.exp(-d), m=carry.m + d)
    (c1, ys1), (c2, ys2) = (gc.unroll(cell, params, xs[:, 3:], c) for c in (carry, shifted))
    np.testing.assert_allclose(ys1, ys2, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(c1.c / c1.n, c2.c / c2.n, rtol=1e-5, atol=1e-6)


def test_empty_memory_and_extreme_gates_stay_finite():
    """From the zero carry an input gate far below the forget gate must not underflow n to
    0 (0/0), nor the forget gate overflow (inf * 0): m takes ĩ, f is capped at 1."""
    cell = gc.slstm(2)
    params = gc.SLSTMParams(
        w_x=jnp.zeros((1, 8)), w_h=jnp.zeros((1, 2, 8)),
        b=jnp.array([-1000.0, -1000.0, 0, 0, 1000.0, 1000.0, 0, 0]),  # ĩ = -1000, f ~ 1
    )  # fmt: skip
    carry, y = cell.step(params, cell.initial_carry(), jnp.zeros(1))
    gates = cell.gates(params, cell.initial_carry(), jnp.zeros(1))
    np.testing.assert_allclose(carry.n, 1.0)
    np.testing.assert_allclose(carry.m, -1000.0)
    np.testing.assert_allclose(gates.f, 1.0)
    assert bool(jnp.isfinite(y).all())
    grads = jax.grad(lambda p: jnp.sum(cell.step(p, cell.initial_carry(), jnp.ones(1))[1]))(params)
    assert all(bool(jnp.isfinite(g).all()) for g in jax.tree.leaves(grads))


def test_normaliser_at_least_one_and_output_bounded():
    cell = gc.slstm(8, num_heads=4, forget_gate="exp", bias_init=jax.nn.initializers.normal(2))
    params = cell.init(jax.random.key(0), 3)
    xs = 30 * jax.random.normal(jax.random.key(1), (4, 50, 3))
    trace = gd.gate_trace(cell, params, xs)
    assert bool((trace.carry.n >= 1 - 1e-6).all())
    assert bool((jnp.abs(trace.ys) <= 1 + 1e-6).all())
    assert bool((trace.gates.i <= 1).all()) and bool((trace.gates.f <= 1).all())
    np.testing.assert_array_equal(trace.gates.m, trace.carry.m)


def test_init_and_parameter_count():
    cell = gc.slstm(8, num_heads=2)
    params = cell.init(jax.random.key(0), 3)
    assert gc.count_params(params) == 4 * (3 * 8 + 8 * 8 // 2 + 8)
    np.testing.assert_allclose(params.b[8:16], np.tile([5.0, 5 - 12 * (1 / 3) ** 0.3,
                                                        5 - 12 * (2 / 3) ** 0.3, -7.0], 2),
                               rtol=1e-6)  # fmt: skip
    assert float(jnp.abs(params.b[:8]).max()) == 0.0 and float(jnp.abs(params.b[16:]).max()) == 0
    exp = gc.slstm(8, forget_gate="exp").init(jax.random.key(0), 3)
    assert float(jnp.abs(exp.b).max()) == 0.0  # f = 1 at init
    shifted = gc.slstm(8, forget_bias=2.0).init(jax.random.key(0), 3)
    np.testing.assert_allclose(shifted.b[8:16], 2.0)
    one = gc.slstm(3, num_heads=3).init(jax.random.key(0), 3)  # one unit per head
    np.testing.assert_allclose(one.b[3:6], 5.0)
    bf16 = gc.slstm(4, param_dtype=jnp.bfloat16).init(jax.random.key(0), 3)
    assert {a.dtype for a in jax.tree.leaves(bf16)} == {jnp.dtype(jnp.bfloat16)}


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(hidden_size=6, num_heads=4), ValueError, r"num_heads=4 must divide hidden_size=6"),
        (dict(hidden_size=0), ValueError, "hidden_size"),
        (dict(hidden_size=4, num_heads=0), ValueError, "num_heads"),
        (dict(hidden_size=4, forget_gate="tanh"), ValueError, r"forget_gate must be one of"),
        (dict(hidden_size=4, forget_bias="chrono"), ValueError, r"forget_bias must be one of"),
        (dict(hidden_size=4, forget_bias=[1.0]), TypeError, "forget_bias must be a number"),
        (dict(hidden_size=4, kernel_init=3), TypeError, "kernel_init must be a function"),
        (dict(hidden_size=4, param_dtype=jnp.int32), TypeError, "param_dtype"),
    ],
)
def test_bad_arguments_one_line_errors(kwargs, error, match):
    with pytest.raises(error, match=match) as info:
        gc.slstm(**kwargs)
    assert "\n" not in str(info.value)


def test_params_of_another_cell_refused():
    cell = gc.slstm(8, num_heads=2)
    with pytest.raises(ValueError, match=r"params.w_h has shape \(8, 32\), expected \(2, 4, 16\)"):
        cell.check_params(gc.lstm(8).init(jax.random.key(0), 3))
    with pytest.raises(ValueError, match="w_h"):
        gc.unroll(cell, gc.slstm(8, num_heads=4).init(jax.random.key(0), 3), jnp.ones((2, 3)))


def test_stack_linen_and_gate_trace():
    deep = gc.stack(gc.slstm(8, num_heads=2), gc.lstm(8))
    params = deep.init(jax.random.key(0), 3)
    xs = jax.random.normal(jax.random.key(1), (2, 5, 3))
    carry, ys = gc.unroll(deep, params, xs)
    assert ys.shape == (2, 5, 8) and isinstance(carry[0], gc.SLSTMCarry)
    trace = gd.gate_trace(deep, params, xs)
    assert trace.gates[0]._fields == ("i", "f", "z", "o", "m")
    assert trace.gates[0].m.shape == (2, 5, 8)
    np.testing.assert_allclose(trace.ys, ys, rtol=1e-6, atol=1e-6)

    from gatedcells import linen as gl

    cell = gc.slstm(8, num_heads=4)
    module = gl.RNN(cell)
    variables = module.init(jax.random.key(0), xs)
    assert isinstance(variables["params"]["cell"], gc.SLSTMParams)
    np.testing.assert_allclose(
        module.apply(variables, xs), gc.unroll(cell, variables["params"]["cell"], xs)[1]
    )


def test_fused_gradient_with_compute_dtype_and_heads():
    """The block-diagonal fused gradient in a bfloat16 compute dtype, against autodiff."""
    cell = gc.slstm(8, num_heads=2, dtype=jnp.bfloat16)
    params = cell.init(jax.random.key(0), 3)
    xs = jax.random.normal(jax.random.key(1), (2, 6, 3))

    def loss(params, grad):
        return jnp.sum(gc.unroll(cell, params, xs, grad=grad)[1] ** 2)

    auto, fused = (jax.grad(loss)(params, g) for g in ("autodiff", "auto"))
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-2, atol=2e-2), auto, fused)


@pytest.mark.parametrize("forget_gate", ["sigmoid", "exp"])
def test_own_backward_equals_autodiff_ties_included(forget_gate):
    """The fused scan runs the sLSTM's own backward (``backward`` over the ``residuals`` the
    forward loop saves): autodiff's gradient to float rounding, for a loss of every output
    and of the final c, n, m and h, padded and reversed, from the zero carry (an empty
    memory) and at exact ties of the stabiliser's max and min, which JAX splits in halves:
    zero weights and inputs give ĩ = log f = m = 0 with the exponential forget gate."""
    zeros = jax.nn.initializers.zeros
    tied = dict(kernel_init=zeros, recurrent_init=zeros, forget_bias=0.0)
    drawn = dict(bias_init=jax.nn.initializers.normal(1.0))
    xs = jax.random.normal(jax.random.key(1), (3, 12, 4)).at[:, ::3].set(0)
    lengths = jnp.array([12, 7, 0])
    for kw in (tied, drawn):
        cell = gc.slstm(6, num_heads=2, forget_gate=forget_gate, **kw)
        assert cell.split.pointwise.vjp is not None
        params = cell.init(jax.random.key(0), 4)
        for reverse in (False, True):

            def loss(params, xs, grad, cell=cell, reverse=reverse):
                new, ys = gc.unroll(cell, params, xs, lengths=lengths, reverse=reverse, grad=grad)
                weights = jnp.linspace(-1, 1, ys.size).reshape(ys.shape)
                scales = (1.0, -0.7, 0.3, 2.0)  # c, n, m, h
                return jnp.sum(weights * ys) + sum(
                    s * jnp.sum(c) for s, c in zip(scales, new, strict=True)
                )

            grad = jax.jit(jax.grad(loss, argnums=(0, 1)), static_argnums=2)
            own, auto = grad(params, xs, "auto"), grad(params, xs, "autodiff")
            for a, b in zip(jax.tree.leaves(own), jax.tree.leaves(auto), strict=True):
                np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_a_wrapped_step_falls_back_to_autodiff():
    """A combinator that wraps the step (zoneout's expectation) keeps the fused scan but not
    the step's own backward, which differentiates the step alone: autodiff runs instead."""
    cell = gc.zoneout(gc.slstm(6, forget_gate="exp"), 0.3, deterministic=True)
    assert cell.split is not None and getattr(cell.split.pointwise, "vjp", None) is None
    params = cell.init(jax.random.key(0), 4)
    xs = jax.random.normal(jax.random.key(1), (3, 12, 4))

    def loss(params, grad):
        return jnp.sum(jnp.sin(gc.unroll(cell, params, xs, grad=grad)[1]))

    own, auto = (jax.grad(loss)(params, g) for g in ("auto", "autodiff"))
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), own, auto)
