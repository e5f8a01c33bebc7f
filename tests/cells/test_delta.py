"""The delta rule (``gc.delta_net``, ``gc.gated_delta_net``): against a NumPy transcription
of the papers' recurrences, against fla's naive PyTorch recurrences (committed golden values
and gradients; live where fla is installed), its two forms against each other, and its
options (carries across calls, lengths, reverse, resets, bad flags)."""

import functools
import importlib.util
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gatedcells as gc
from gatedcells.cells import _delta, _delta_chunkwise

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))
import make_delta_golden as golden  # noqa: E402

I, H, B, T = 3, 6, 2, 11
TOL = dict(rtol=1e-5, atol=1e-5)
KEY = jax.random.key(0)
XS = jax.random.normal(jax.random.key(1), (B, T, I))

# -------------------------------------------------------------------------------------
# A NumPy transcription of the papers' cell: S_t = a_t S_{t-1} (I - b_t k_t k_t^T) + b_t v_t k_t^T.


def numpy_cell(flags, params, xs, S0, window0):
    """The whole cell over ``xs [B, T, I]`` in NumPy (float64), written from the papers."""
    P = {n: None if a is None else np.asarray(a, np.float64) for n, a in params._asdict().items()}
    nh, dk, dv = flags["heads"], flags["dk"], flags["dv"]
    C = nh * (2 * dk + dv)
    silu = lambda z: z / (1 + np.exp(-z))  # noqa: E731
    S, window, ys = np.array(S0, np.float64), np.array(window0, np.float64), []
    for t in range(xs.shape[1]):
        z = np.asarray(xs[:, t], np.float64) @ P["w_x"]
        window = np.concatenate([window, z[:, None, :C]], axis=1)  # [B, K, C]
        conv = (window * P["conv"][None]).sum(1)
        window = window[:, 1:]
        qkv = silu(conv)
        q = qkv[:, : nh * dk].reshape(-1, nh, dk)
        k = qkv[:, nh * dk : 2 * nh * dk].reshape(-1, nh, dk)
        v = qkv[:, 2 * nh * dk :].reshape(-1, nh, dv)
        q = q / np.sqrt((q**2).sum(-1, keepdims=True) + 1e-6) / np.sqrt(dk)
        k = k / np.sqrt((k**2).sum(-1, keepdims=True) + 1e-6)
        b = flags["top"] / (1 + np.exp(-z[:, C : C + nh]))
        a = np.ones_like(b)
        if flags["gated"]:
            dt = np.log1p(np.exp(z[:, C + nh : C + 2 * nh] + P["dt_bias"]))
            a = np.exp(-np.exp(P["A_log"]) * dt)
        eye = np.eye(dk)
        kk = k[..., :, None] * k[..., None, :]  # [B, NH, DK, DK]
        S = a[..., None, None] * S @ (eye - b[..., None, None] * kk)
        S = S + b[..., None, None] * v[..., :, None] * k[..., None, :]
        o = np.einsum("bhvd,bhd->bhv", S, q)
        o = o / np.sqrt((o**2).mean(-1, keepdims=True) + 1e-5) * P["norm"]
        h = o.reshape(o.shape[0], -1)
        if flags["gate"]:
            h = h * silu(z[:, -nh * dv :])
        ys.append(h @ P["w_out"])
    return np.stack(ys, 1), S, window


PAPER_CASES = {
    "delta_net": dict(num_heads=2, qk_dim=4, v_dim=6),
    "gated_delta_net_negative": dict(num_heads=3, negative_eigenvalues=True, conv_size=3),
}


@functools.cache
def built(name, **flags):
    """A cell of the paper cases in one form, its params and a drawn carry (built once)."""
    factory = gc.gated_delta_net if name.startswith("gated") else gc.delta_net
    cell = factory(H, chunk_size=4, **PAPER_CASES[name], **flags)
    params = cell.init(KEY, I)
    if params.A_log is not None:  # decays well inside (0, 1): the gate matters
        params = params._replace(A_log=params.A_log - 2.0, dt_bias=params.dt_bias + 3.0)
    carry = jax.tree.map(
        lambda z: 0.5 * jax.random.normal(jax.random.key(2), z.shape), cell.initial_carry((B,))
    )
    return cell, params, carry


@pytest.mark.parametrize("form", ["recurrent", "chunkwise"])
@pytest.mark.parametrize("name", sorted(PAPER_CASES))
def test_both_forms_equal_the_numpy_transcription_of_the_papers(name, form):
    cell, params, carry = built(name, form=form)
    spec = cell.update.spec
    flags = dict(heads=spec.heads, dk=spec.dk, dv=spec.dv, gated=spec.gated,
                 gate=spec.output_gate, top=2.0 if spec.negative_eigenvalues else 1.0)  # fmt: skip
    S0 = np.asarray(carry.S).reshape(B, spec.heads, spec.dv, spec.dk)
    window0 = np.asarray(carry.conv).reshape(B, spec.conv_size - 1, spec.channels)
    ys, S, window = numpy_cell(flags, params, XS, S0, window0)
    got_carry, got = jax.jit(functools.partial(gc.unroll, cell))(params, XS, carry)
    np.testing.assert_allclose(got, ys, **TOL)
    np.testing.assert_allclose(got_carry.S, S.reshape(B, -1), **TOL)
    np.testing.assert_allclose(got_carry.conv, window.reshape(B, -1), **TOL)


# -------------------------------------------------------------------------------------
# fla's naive recurrences: golden values and gradients (and live, where fla is installed).


def ours(form, q, k, v, beta, g, h0):
    """The delta rule alone in fla's layout and conventions: ``(o [B, T, NH, DV], h [B, NH,
    DK, DV])`` by the recurrent step (a scan of ``_delta.delta_rule``) or the chunkwise form."""
    q = q * q.shape[-1] ** -0.5  # fla scales q inside
    S = jnp.swapaxes(h0, -1, -2)  # fla's state is ours transposed
    if form == "recurrent":
        xs = tuple(jnp.moveaxis(a, 1, 0) for a in (q, k, v, beta, g))
        S, o = jax.lax.scan(lambda S, x: _delta.delta_rule(S, *x[:4], jnp.exp(x[4])), S, xs)
        return jnp.moveaxis(o, 0, 1), jnp.swapaxes(S, -1, -2)
    heads = lambda a: jnp.moveaxis(a, 1, 2)  # noqa: E731  [B, NH, T, ...]
    o, S = _delta_chunkwise.chunkwise(*map(heads, (q, k, v, beta, g)), None, S, chunk_size=4)
    return heads(o), jnp.swapaxes(S, -1, -2)


def check_against(case, want, data, form):
    args = [jnp.asarray(data[n]) for n in golden.INPUTS]

    def loss(*args):
        o, h = ours(form, *args)
        return jnp.sum(o * data["do"]) + jnp.sum(h * data["dh"]), (o, h)

    grads, (o, h) = jax.jit(jax.grad(loss, argnums=tuple(range(6)), has_aux=True))(*args)
    np.testing.assert_allclose(o, want["o"], **TOL)
    np.testing.assert_allclose(h, want["h"], **TOL)
    for n, grad in zip(golden.INPUTS, grads, strict=True):
        if n == "g" and not golden.CASES[case][0]:
            continue  # DeltaNet's recurrence has no gate: fla's g-gradient is not defined
        scale = max(1.0, float(np.abs(want[f"grad_{n}"]).max()))
        np.testing.assert_allclose(grad, want[f"grad_{n}"], rtol=1e-5, atol=1e-5 * scale)


@pytest.mark.parametrize("form", ["recurrent", "chunkwise"])
@pytest.mark.parametrize("case", sorted(golden.CASES))
def test_values_and_gradients_equal_fla_golden(case, form):
    with np.load(golden.PATH) as f:
        stored = {key.split("/", 1)[1]: f[key] for key in f.files if key.startswith(case + "/")}
    check_against(case, stored, stored, form)


def _fla_installed() -> bool:
    return all(importlib.util.find_spec(m) for m in ("torch", "einops", "fla"))


@pytest.mark.skipif(not _fla_installed(), reason="fla-core (with torch, einops) not installed")
@pytest.mark.parametrize("case", sorted(golden.CASES))
def test_values_and_gradients_equal_live_fla(case):
    data = golden.draw(case)
    check_against(case, golden.run_case(case, data), data, "chunkwise")


# -------------------------------------------------------------------------------------
# The two forms, and the sequence options.

LENGTHS = jnp.array([T, 4])


def resets_input(xs):
    """``xs`` with a segment-start channel: a start at step 5 (row 0) and 2 (row 1)."""
    flags = jnp.zeros(xs.shape[:-1]).at[0, 5].set(1.0).at[1, 2].set(1.0)
    return jnp.concatenate([xs, flags[..., None]], axis=-1)


OPTION_CASES = {  # factory flags: every optional term once
    "delta": (gc.delta_net, dict(num_heads=2, qk_dim=4, output_gate=True)),
    "gated_resets": (gc.gated_delta_net, dict(num_heads=2, resets=True, conv_size=2)),
    "gated_plain": (gc.gated_delta_net,
                    dict(conv_size=None, output_gate=False, output_proj=False, qk_norm=False)),
}  # fmt: skip


@functools.cache
def pair(name, chunk_size=3):
    """The recurrent and the chunkwise cell of ``name``, params, inputs and a carry."""
    factory, flags = OPTION_CASES[name]
    rec = factory(H, form="recurrent", **flags)
    chunked = factory(H, chunk_size=chunk_size, **flags)
    xs = resets_input(XS) if flags.get("resets") else XS
    params = rec.init(KEY, xs.shape[-1])
    if flags.get("qk_norm") is False:  # unnormalised keys: keep b |k|^2 < 2 (stable)
        params = params._replace(w_x=0.3 * params.w_x)
    carry = jax.tree.map(
        lambda z: 0.3 * jax.random.normal(jax.random.key(3), z.shape), rec.initial_carry((B,))
    )
    return rec, chunked, params, xs, carry


@functools.cache
def loss_and_grads(cell, reverse=False):
    """``(params, xs, carry, lengths) -> (grads, (carry, ys))`` of a loss of ``unroll``,
    jitted once per cell and direction."""

    def loss(params, xs, carry, lengths):
        carry, ys = gc.unroll(cell, params, xs, carry, lengths=lengths, reverse=reverse)
        value = jnp.sum(jnp.sin(ys)) + sum(jnp.sum(c**2) for c in jax.tree.leaves(carry))
        return value, (carry, ys)

    return jax.jit(jax.grad(loss, argnums=(0, 1, 2), has_aux=True))


@functools.cache
def run(cell):
    """``gc.unroll(cell, ...)``, jitted once per cell."""
    return jax.jit(functools.partial(gc.unroll, cell))


@pytest.mark.parametrize("reverse", [False, pytest.param(True, marks=pytest.mark.slow)])
@pytest.mark.parametrize("name", sorted(OPTION_CASES))
def test_chunkwise_equals_recurrent_in_values_and_gradients(name, reverse):
    """Values, carries and gradients (params, inputs, carry), whole rows and padded."""
    rec, chunked, params, xs, carry = pair(name)

    def close(a, b):
        scale = max(1.0, float(np.abs(b).max(initial=0.0)))
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * scale)

    for lengths in (jnp.full((B,), T), LENGTHS):
        got = loss_and_grads(chunked, reverse)(params, xs, carry, lengths)
        jax.tree.map(close, got, loss_and_grads(rec, reverse)(params, xs, carry, lengths))


@pytest.mark.parametrize("chunk_size", [1, 4, 64])
def test_chunk_sizes_agree(chunk_size):
    rec, chunked, params, xs, carry = pair("gated_resets", chunk_size)
    want = run(rec)(params, xs, carry)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, **TOL),
                 run(chunked)(params, xs, carry), want)  # fmt: skip


@pytest.mark.parametrize("form", [0, 1], ids=["recurrent", "chunkwise"])
def test_a_carry_carried_across_calls_equals_one_call(form):
    cell, params, xs = pair("gated_resets")[form], pair("gated_resets")[2], pair("gated_resets")[3]
    carry, ys = run(cell)(params, xs)
    mid, first = run(cell)(params, xs[:, :1])  # as long as the window (K - 1 = 1)
    end, second = run(cell)(params, xs[:, 1:], mid)
    np.testing.assert_allclose(jnp.concatenate([first, second], 1), ys, **TOL)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, **TOL), end, carry)


@pytest.mark.parametrize("form", [0, 1], ids=["recurrent", "chunkwise"])
def test_packed_segments_equal_separate_runs(form):
    cell, params = pair("gated_resets")[form], pair("gated_resets")[2]
    xs = jnp.concatenate([XS[:1, :5], XS[:1, :6]], axis=1)  # two sequences in one row
    flags = jnp.zeros((1, T)).at[0, 5].set(1.0)
    carry, ys = run(cell)(params, jnp.concatenate([xs, flags[..., None]], -1))
    alone = jnp.concatenate([XS[:1, :6], jnp.zeros((1, 6, 1))], -1)
    carry_alone, ys_alone = run(cell)(params, alone)
    np.testing.assert_allclose(ys[:, 5:], ys_alone, **TOL)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, **TOL), carry, carry_alone)


def test_padding_reaches_no_value_and_no_gradient():
    _, cell, params, xs, carry = pair("delta")
    bad = xs.at[1, 4:].set(jnp.nan)
    grads, (end, ys) = loss_and_grads(cell)(params, bad, carry, LENGTHS)
    assert all(bool(jnp.isfinite(g).all()) for g in jax.tree.leaves(grads))
    _, (want_end, want) = loss_and_grads(cell)(params, xs, carry, LENGTHS)
    np.testing.assert_allclose(ys, want, **TOL)
    assert not bool(jnp.any(ys[1, 4:]))


def test_gates_stay_in_their_ranges():
    cell = gc.gated_delta_net(H, num_heads=2, negative_eigenvalues=True)
    params = cell.init(KEY, I)
    gates = jax.jit(cell.gates)(params, cell.initial_carry((B,)), 3.0 * XS[:, 0])
    assert gates.b.shape == gates.a.shape == (B, 2) and gates.g.shape == (B, H)
    assert bool(((gates.b > 0) & (gates.b < 2) & (gates.a > 0) & (gates.a <= 1)).all())
    assert bool((gates.b > 1).any())  # (0, 2): the transition I - b k k^T can reflect
    plain = gc.delta_net(H)
    plain = jax.jit(plain.gates)(plain.init(KEY, I), plain.initial_carry((B,)), XS[:, 0])
    assert plain.g is None and bool((plain.a == 1).all())


BAD = [
    (dict(num_heads=4), ValueError, "num_heads=4 must divide"),
    (dict(qk_dim=0), ValueError, "qk_dim must be a positive int"),
    (dict(chunk_size=0), ValueError, "chunk_size must be a positive int"),
    (dict(conv_size=1), ValueError, "conv_size must be None"),
    (dict(form="parallel"), ValueError, "form must be one of"),
    (dict(output_proj=False, v_dim=4, num_heads=2), ValueError, "v_dim=4 must equal"),
    (dict(scale=-1.0), ValueError, "scale must be positive"),
    (dict(qk_norm="yes"), TypeError, "qk_norm must be a bool"),
    (dict(a_range=(2.0, 1.0)), ValueError, "a_range must be"),
    (dict(dt_range=0.1), ValueError, "dt_range must be a pair"),
    (dict(kernel_init=1.0), TypeError, "kernel_init must be a function"),
]


@pytest.mark.parametrize(("flags", "error", "message"), BAD, ids=[m for _, _, m in BAD])
def test_bad_flags_raise_one_line_errors_naming_the_argument(flags, error, message):
    with pytest.raises(error, match=message) as info:
        gc.gated_delta_net(H, **flags)
    assert "\n" not in str(info.value)
