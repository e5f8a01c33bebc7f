"""The gated linear recurrences against their references: RG-LRU against recurrentgemma's own
``RGLRU`` layer (a committed fixture, and live where recurrentgemma is installed), the LRU
against a NumPy transcription of Orvieto et al.'s Appendix A, the selective SSM against a
NumPy transcription of Mamba's selective scan (Algorithm 2); on every path of the engine.
Then resets, the combinators and layers around them, S6's memory, and bad arguments."""

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gatedcells as gc
from gatedcells import diagnostics as gd

METHODS = ("sequential", "associative", "chunked")
FIXTURE = os.path.join(os.path.dirname(__file__), "..", "fixtures", "rglru_golden.npz")

# unroll compiled (one program per cell and shapes; eagerly each operation is one)
unroll = jax.jit(gc.unroll, static_argnums=0, static_argnames=("reverse",))


def close(got, want, tol=1e-5):
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=tol, atol=tol)


# --------------------------------------------------------------------------------------
# RG-LRU against recurrentgemma (tests/fixtures/make_rglru_golden.py).


@pytest.fixture(scope="module")
def golden():
    with np.load(FIXTURE) as saved:
        return dict(saved)


def _rg_params(g):
    return gc.RGLRUParams(
        None, None, *(jnp.asarray(g[k]) for k in ("w_a", "b_a", "w_i", "b_i", "lam"))
    )


def _with_flags(x, pos):
    """recurrentgemma's ``segment_pos == 0`` as the reset flag, the input's last channel."""
    return jnp.concatenate([jnp.asarray(x), jnp.asarray(pos == 0, jnp.float32)[..., None]], -1)


@pytest.mark.parametrize("case", ["reset", "carry"])
@pytest.mark.parametrize("method", METHODS)
def test_rg_lru_matches_recurrentgemma_fixture(golden, case, method):
    g = golden
    cell = gc.rg_lru(8, num_heads=2, resets=True, method=method, chunk_size=5)
    h0 = jnp.asarray(g["h0"]) if case == "carry" else None
    xs = _with_flags(g["x"], g[f"{case}_pos"])
    h, ys = unroll(cell, _rg_params(g), xs, h0)
    close(ys, g[f"{case}_y"])
    close(ys, g[f"{case}_y_assoc"])  # their associative scan
    close(h, g[f"{case}_h"])

    def loss(params, x):
        return jnp.sum(
            g["weight"] * gc.unroll(cell, params, _with_flags(x, g[f"{case}_pos"]), h0)[1]
        )

    d_params, d_x = jax.jit(jax.grad(loss, (0, 1)))(_rg_params(g), jnp.asarray(g["x"]))
    close(d_x, g[f"{case}_grad_x"])
    for field in ("w_a", "b_a", "w_i", "b_i", "lam"):
        close(getattr(d_params, field), g[f"{case}_grad_{field}"])


def test_rg_lru_matches_recurrentgemma_live():
    """Where recurrentgemma is installed (it pins numpy<2.4: usually another environment)."""
    layers = pytest.importorskip("recurrentgemma.jax.layers")
    from recurrentgemma.common import ScanType

    B, T, H, heads = 3, 17, 12, 3
    x = jax.random.normal(jax.random.key(7), (B, T, H))
    pos = jnp.stack([jnp.arange(T), jnp.arange(T) % 6, jnp.arange(1, T + 1)])
    for scan_type in (ScanType.LINEAR_NATIVE, ScanType.ASSOCIATIVE_NATIVE):
        layer = layers.RGLRU(width=H, num_heads=heads, scan_type=scan_type)
        # their code relies on implicit rank promotion, which tests/conftest.py makes an error
        with jax.numpy_rank_promotion("allow"), jax.numpy_dtype_promotion("standard"):
            variables = layer.init(jax.random.key(8), x, pos)
            y, last = layer.apply(variables, x, pos)
        p = variables["params"]
        params = gc.RGLRUParams(None, None, p["a_gate"]["w"], p["a_gate"]["b"].reshape(H),
                                p["input_gate"]["w"], p["input_gate"]["b"].reshape(H),
                                p["a_param"])  # fmt: skip
        h, ys = gc.unroll(gc.rg_lru(H, num_heads=heads, resets=True), params, _with_flags(x, pos))
        close(ys, y)
        close(h, last)


def test_rg_lru_resets_split_packed_rows_into_separate_runs():
    cell = gc.rg_lru(6, num_heads=2, resets=True, input_proj=True)
    params = cell.init(jax.random.key(0), 4)
    a, b = (
        jax.random.normal(jax.random.key(1), (5, 3)),
        jax.random.normal(jax.random.key(2), (4, 3)),
    )
    flags = jnp.zeros((9, 1)).at[0].set(1.0).at[5].set(1.0)
    packed = jnp.concatenate([jnp.concatenate([a, b]), flags], -1)
    single = lambda x: jnp.concatenate([x, jnp.zeros((x.shape[0], 1)).at[0].set(1.0)], -1)  # noqa: E731
    for method in METHODS:
        cell = gc.rg_lru(6, num_heads=2, resets=True, input_proj=True, method=method, chunk_size=2)
        for reverse in (False, True):
            _, ys = unroll(cell, params, packed, reverse=reverse)
            _, ys_a = unroll(cell, params, single(a), reverse=reverse)
            _, ys_b = unroll(cell, params, single(b), reverse=reverse)
            close(ys, jnp.concatenate([ys_a, ys_b]))


def test_rg_lru_accumulates_in_float32_with_bfloat16_params():
    cell = gc.rg_lru(16, num_heads=4, param_dtype=jnp.bfloat16)
    params = cell.init(jax.random.key(0), 16)
    xs = jax.random.normal(jax.random.key(1), (2, 3000, 16)).astype(jnp.bfloat16)
    h, ys = gc.unroll(cell, params, xs)
    assert ys.dtype == h.dtype == jnp.bfloat16
    wide = jax.tree.map(lambda a: None if a is None else a.astype(jnp.float32), params)
    _, ref = gc.unroll(gc.rg_lru(16, num_heads=4), wide, xs.astype(jnp.float32))
    np.testing.assert_allclose(ys.astype(jnp.float32), ref, atol=2e-2, rtol=2e-2)


# --------------------------------------------------------------------------------------
# LRU against the paper's Appendix A, transcribed to NumPy.


def init_lru_parameters(N, H, r_min=0, r_max=1, max_phase=6.28, rng=None):
    """Appendix A's ``init_lru_parameters`` (``np.random`` replaced by a Generator)."""
    u1 = rng.uniform(size=(N,))
    u2 = rng.uniform(size=(N,))
    nu_log = np.log(-0.5 * np.log(u1 * (r_max**2 - r_min**2) + r_min**2))
    theta_log = np.log(max_phase * u2)
    B_re = rng.normal(size=(N, H)) / np.sqrt(2 * H)
    B_im = rng.normal(size=(N, H)) / np.sqrt(2 * H)
    C_re = rng.normal(size=(H, N)) / np.sqrt(N)
    C_im = rng.normal(size=(H, N)) / np.sqrt(N)
    D = rng.normal(size=(H,))
    diag_lambda = np.exp(-np.exp(nu_log) + 1j * np.exp(theta_log))
    gamma_log = np.log(np.sqrt(1 - np.abs(diag_lambda) ** 2))
    return nu_log, theta_log, B_re, B_im, C_re, C_im, D, gamma_log


def binary_operator_diag(element_i, element_j):
    a_i, bu_i = element_i
    a_j, bu_j = element_j
    return a_j * a_i, a_j * bu_i + bu_j


def parallel_scan(operator, elements):
    """``jax.lax.associative_scan``'s result (every prefix), as a fold."""
    a, bu = elements
    out_a, out_bu = [a[0]], [bu[0]]
    for t in range(1, len(a)):
        prefix = operator((out_a[-1], out_bu[-1]), (a[t], bu[t]))
        out_a.append(prefix[0])
        out_bu.append(prefix[1])
    return np.stack(out_a), np.stack(out_bu)


def lru_forward(lru_parameters, input_sequence):
    """Appendix A's ``forward``: ``input_sequence (L, H) -> y (L, H)``."""
    nu_log, theta_log, B_re, B_im, C_re, C_im, D, gamma_log = lru_parameters
    Lambda = np.exp(-np.exp(nu_log) + 1j * np.exp(theta_log))
    B_norm = (B_re + 1j * B_im) * np.expand_dims(np.exp(gamma_log), axis=-1)
    C = C_re + 1j * C_im
    Lambda_elements = np.repeat(Lambda[None, ...], input_sequence.shape[0], axis=0)
    Bu_elements = np.stack([B_norm @ u for u in input_sequence])
    _, inner_states = parallel_scan(binary_operator_diag, (Lambda_elements, Bu_elements))
    return np.stack(
        [(C @ x).real + D * u for x, u in zip(inner_states, input_sequence, strict=True)]
    )


@pytest.mark.parametrize("method", METHODS)
def test_lru_matches_appendix_a(method):
    N, H, T = 7, 5, 23
    rng = np.random.default_rng(0)
    p = init_lru_parameters(N, H, r_min=0.4, r_max=0.99, max_phase=3.0, rng=rng)
    nu_log, theta_log, B_re, B_im, C_re, C_im, D, gamma_log = p
    params = gc.LRUParams(None, None, *(jnp.asarray(v, jnp.float32) for v in (
        nu_log, theta_log, gamma_log, B_re.T, B_im.T, C_re.T, C_im.T, D)))  # fmt: skip
    us = rng.normal(size=(2, T, H))
    want = np.stack([lru_forward(p, u) for u in us])
    cell = gc.lru(H, state_size=N, method=method, chunk_size=4)
    _, ys = gc.unroll(cell, params, jnp.asarray(us, jnp.float32))
    close(ys, want)


def test_lru_init_is_the_ring_initialisation():
    cell = gc.lru(64, state_size=512, r_min=0.5, r_max=0.9, max_phase=1.5)
    p = cell.init(jax.random.key(0), 64)
    radius, phase = np.exp(-np.exp(p.nu_log)), np.exp(p.theta_log)
    assert radius.min() >= 0.5 - 1e-6 and radius.max() <= 0.9 + 1e-6
    assert phase.min() >= 0 and phase.max() <= 1.5 + 1e-6
    close(np.exp(p.gamma_log), np.sqrt(1 - radius**2))
    # uniform by area: |lambda|^2 is uniform on [r_min^2, r_max^2]
    assert abs(np.mean(radius**2) - (0.25 + 0.81) / 2) < 0.03
    assert abs(np.std(p.b_re) * np.sqrt(2 * 64) - 1) < 0.05


# --------------------------------------------------------------------------------------
# The selective SSM against Mamba's selective scan (Algorithm 2), transcribed to NumPy.


def softplus(x):
    return np.logaddexp(0, x)


def selective_scan(u, delta, A, B, C, D):
    """Algorithm 2's SSM (Mamba's ``selective_scan_ref``): ``u, delta (b, l, d)``, ``A (d, n)``,
    ``B, C (b, l, n)``; ZOH for ``A``, Euler for ``B``."""
    batch, length, d = u.shape
    deltaA = np.exp(np.einsum("bld,dn->bldn", delta, A))
    deltaB_u = np.einsum("bld,bln,bld->bldn", delta, B, u)
    x = np.zeros((batch, d, A.shape[1]))
    ys = []
    for i in range(length):
        x = deltaA[:, i] * x + deltaB_u[:, i]
        ys.append(np.einsum("bdn,bn->bd", x, C[:, i]))
    return np.stack(ys, axis=1) + u * D


def s6(params, u):
    """Algorithm 2's selection: ``B = s_B(x)``, ``C = s_C(x)``, ``Δ = τ_Δ(Parameter + s_Δ(x))``
    with ``s_Δ`` of rank ``R`` and ``τ_Δ = softplus``; ``A = -exp(A_log)``."""
    p = jax.tree.map(lambda a: None if a is None else np.asarray(a, np.float64), params)
    R, N = p.w_dt.shape[0], p.a_log.shape[1]
    x_dbl = u @ p.w_dbc
    delta = softplus(x_dbl[..., :R] @ p.w_dt + p.b_dt)
    B, C = x_dbl[..., R : R + N], x_dbl[..., R + N :]
    return selective_scan(u, delta, -np.exp(p.a_log), B, C, p.d)


@pytest.mark.parametrize("method", METHODS)
def test_selective_ssm_matches_algorithm_2(method):
    H, N, R, T = 6, 5, 2, 19
    cell = gc.selective_ssm(H, state_size=N, dt_rank=R, method=method, chunk_size=4)
    params = cell.init(jax.random.key(0), H)
    rng = np.random.default_rng(1)  # every weight drawn, A and D included
    params = jax.tree.map(
        lambda a: jnp.asarray(0.5 * rng.standard_normal(a.shape), jnp.float32), params
    )
    us = rng.standard_normal((3, T, H))
    _, ys = unroll(cell, params, jnp.asarray(us, jnp.float32))
    close(ys, s6(params, us), tol=2e-5)


def test_selective_ssm_init_is_mambas():
    cell = gc.selective_ssm(32, state_size=8, dt_min=0.01, dt_max=0.05)
    p = cell.init(jax.random.key(0), 32)
    close(-np.exp(p.a_log), -np.broadcast_to(np.arange(1, 9), (32, 8)))
    dt = softplus(np.asarray(p.b_dt, np.float64))
    assert dt.min() >= 0.01 * (1 - 1e-4) and dt.max() <= 0.05 * (1 + 1e-4)
    assert p.w_dt.shape == (2, 32) and bool((p.d == 1).all())


def test_selective_ssm_backward_holds_the_states_at_most_once():
    """``memory_analysis`` of the compiled gradient: the sequential path's temporaries are the
    states ``[B, T, H, N]`` once plus arrays of the inputs' size (the projection ``[B, T, 2H +
    2N]``, its cotangent, the outputs); the chunked path's stay below one ``[B, T, H, N]``; the
    associative path (every coefficient formed) holds many."""
    B, T, H, N = 2, 1024, 32, 64
    states, inputs = B * T * H * N * 4, B * T * (2 * H + 2 * N) * 4
    temp = {}
    for method in METHODS:
        cell = gc.selective_ssm(H, state_size=N, method=method, chunk_size=16)
        params = cell.init(jax.random.key(0), H)
        xs = jnp.ones((B, T, H))
        loss = lambda p, x, cell=cell: jnp.sum(gc.unroll(cell, p, x)[1] ** 2)  # noqa: E731
        compiled = jax.jit(jax.grad(loss, (0, 1))).lower(params, xs).compile()
        temp[method] = compiled.memory_analysis().temp_size_in_bytes
    assert temp["sequential"] < min(states + 6 * inputs, 1.6 * states), (temp, states, inputs)
    assert temp["chunked"] < states, (temp, states)
    assert temp["associative"] > 4 * states, (temp, states)


# --------------------------------------------------------------------------------------
# Around the cells: layers, combinators, diagnostics, parameter counts.

CELLS = {
    "rg_lru": lambda: gc.rg_lru(6, num_heads=3, input_proj=True),
    "lru": lambda: gc.lru(6, state_size=4, input_proj=True),
    "selective_ssm": lambda: gc.selective_ssm(6, state_size=3, input_proj=True),
}
GATES = {"rg_lru": ("r", "i", "a"), "lru": ("a",), "selective_ssm": ("delta",)}


@pytest.mark.parametrize("name", sorted(CELLS))
def test_layers_combinators_and_gate_traces(name):
    import gatedcells.linen as gl

    cell = CELLS[name]()
    xs = jax.random.normal(jax.random.key(1), (2, 9, 4))
    init = jax.jit(lambda cell, key: cell.init(key, 4), static_argnums=0)  # one program each
    unroll = jax.jit(gc.unroll, static_argnums=0)
    params = init(cell, jax.random.key(0))
    _, ys = unroll(cell, params, xs)
    trace = jax.jit(gd.gate_trace, static_argnums=0)(cell, params, xs)
    assert trace.gates._fields == GATES[name]
    close(trace.ys, ys)
    # bidirectional: the backward half is the cell reversed
    bi = gc.bidirectional(cell, cell)
    _, ys_bi = unroll(bi, init(bi, jax.random.key(0)), xs)
    assert ys_bi.shape == (2, 9, 12)
    # a stack whose second layer reads H = 6 channels directly
    second = {"rg_lru": gc.rg_lru(6), "lru": gc.lru(6), "selective_ssm": gc.selective_ssm(6)}
    deep = gc.stack(cell, second[name])
    deep_params = init(deep, jax.random.key(2))
    _, ys_deep = unroll(deep, deep_params, xs)
    carry, steps, step = deep.initial_carry((2,)), [], jax.jit(deep.step)
    for t in range(9):
        carry, y = step(deep_params, carry, xs[:, t])
        steps.append(y)
    close(ys_deep, jnp.stack(steps, 1))
    # the linen module holds exactly cell.init's params
    model = gl.RNN(cell)
    variables = model.init(jax.random.key(0), xs)
    close(model.apply(variables, xs), gc.unroll(cell, variables["params"]["cell"], xs)[1])


@pytest.mark.parametrize(
    "cell, count",
    [
        (gc.rg_lru(8, num_heads=2), 2 * (8 * 8 // 2 + 8) + 8),
        (gc.rg_lru(8, input_proj=True), 2 * (64 + 8) + 8 + 3 * 8 + 8),
        (gc.lru(8, state_size=16), 3 * 16 + 4 * 8 * 16 + 8),
        (gc.selective_ssm(8, state_size=4, dt_rank=3), 8 * 11 + 3 * 8 + 8 + 8 * 4 + 8),
    ],
)
def test_parameter_counts_are_the_documented_ones(cell, count):
    I = 3 if "input_proj" in cell.name else 8
    assert gc.count_params(cell.init(jax.random.key(0), I)) == count


@pytest.mark.parametrize(
    "build, error, match",
    [
        (lambda: gc.rg_lru(6, num_heads=4), ValueError, r"num_heads=4 must divide hidden_size=6"),
        (lambda: gc.rg_lru(0), ValueError, r"hidden_size must be a positive int"),
        (lambda: gc.rg_lru(6, c=0.0), ValueError, r"c must be positive"),
        (lambda: gc.rg_lru(6, c="8"), TypeError, r"c must be a number"),
        (lambda: gc.rg_lru(6, min_rad=0.99, max_rad=0.9), ValueError, r"0 < min_rad < max_rad"),
        (lambda: gc.rg_lru(6, resets=1), TypeError, r"resets must be a bool"),
        (lambda: gc.rg_lru(6, method="parallel"), ValueError, r"method must be one of"),
        (lambda: gc.rg_lru(6, chunk_size=0), ValueError, r"chunk_size must be a positive int"),
        (lambda: gc.lru(6, state_size=0), ValueError, r"state_size must be a positive int"),
        (lambda: gc.lru(6, r_min=0.5, r_max=1.5), ValueError, r"0 <= r_min < r_max <= 1"),
        (lambda: gc.lru(6, max_phase=0), ValueError, r"max_phase must be positive"),
        (lambda: gc.lru(6, input_proj="yes"), TypeError, r"input_proj must be a bool"),
        (lambda: gc.selective_ssm(6, dt_rank=0), ValueError, r"dt_rank must be a positive int"),
        (lambda: gc.selective_ssm(6, dt_min=0.1, dt_max=0.01), ValueError, r"0 < dt_min < dt_max"),
        (lambda: gc.selective_ssm(6, kernel_init=3), TypeError, r"kernel_init must be a function"),
        (lambda: gc.selective_ssm(6, param_dtype=jnp.int32), TypeError, r"param_dtype must be"),
    ],
)
def test_bad_factory_arguments_raise_one_line_errors(build, error, match):
    with pytest.raises(error, match=match) as info:
        build()
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("factory", [gc.rg_lru, gc.lru, gc.selective_ssm])
def test_inputs_of_another_size_need_input_proj_and_params_are_checked(factory):
    with pytest.raises(ValueError, match=r"reads inputs of size hidden_size=6 .* input_proj=True"):
        factory(6).init(jax.random.key(0), 4)
    params = factory(6, input_proj=True).init(jax.random.key(0), 4)
    assert params.w_x.shape == (4, 6)
    with pytest.raises(ValueError, match=r"params\.w_x must be None"):
        gc.unroll(factory(6), params, jnp.ones((3, 6)))
    with pytest.raises(ValueError, match="params do not belong to this"):
        gc.unroll(factory(6), gc.gru(6).init(jax.random.key(0), 6), jnp.ones((3, 6)))
    assert factory(5).init(jax.random.key(0), 5).w_x is None


def test_every_path_gives_the_same_gradients_over_lengths_and_reverse():
    xs = jax.random.normal(jax.random.key(3), (3, 13, 4))
    lengths = jnp.array([13, 6, 0])
    for build in {
        "rg_lru": lambda m: gc.rg_lru(6, num_heads=2, input_proj=True, method=m, chunk_size=4),
        "lru": lambda m: gc.lru(6, state_size=3, input_proj=True, method=m, chunk_size=4),
        "selective_ssm": lambda m: gc.selective_ssm(6, state_size=3, input_proj=True, method=m,
                                                    chunk_size=4),
    }.values():  # fmt: skip
        params = build("sequential").init(jax.random.key(0), 4)

        def loss(params, xs, method, build=build):
            carry, ys = gc.unroll(build(method), params, xs, lengths=lengths, reverse=True)
            return jnp.sum(jnp.sin(ys)) + jnp.sum(carry**2)

        grad = jax.jit(jax.grad(loss, (0, 1)), static_argnums=2)
        want = grad(params, xs, "sequential")
        for method in METHODS[1:]:
            got = grad(params, xs, method)
            jax.tree.map(functools.partial(close, tol=1e-4), got, want)
