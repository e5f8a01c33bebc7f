"""The variant zoo, each variant against an independent numpy transcription of its paper's
equations, its parameter count, its initialisation and its errors; and ``lstm_variant``
without a research flag pinned to ``lstm`` (the same params, outputs, carries, gradients)."""

import importlib.util
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gatedcells as gc
from gatedcells import interop

I, H, B = 3, 5, 4
N = I * H + H * H + H  # a simple RNN's parameters: the unit of the counts
HAS_TORCH = importlib.util.find_spec("torch") is not None
TOL = dict(rtol=1e-5, atol=1e-6)


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def layer_norm(v, gain, bias=0.0, eps=1e-5):
    mean = v.mean(-1, keepdims=True)
    return gain * (v - mean) / np.sqrt(v.var(-1, keepdims=True) + eps) + bias


def blocks(a, n):
    return np.split(np.asarray(a), n, axis=-1)


def randomized(cell, input_size=I, **fields):
    """The cell's params as numpy, with the named fields replaced by random values of their
    shape (peepholes and layer-norm gains start at constants)."""
    p = jax.tree.map(np.asarray, cell.init(jax.random.key(0), input_size))
    rng = np.random.default_rng(1)
    new = {f: rng.normal(scale, size=getattr(p, f).shape).astype(np.float32)
           for f, scale in fields.items()}  # fmt: skip
    return p._replace(**new)


@pytest.fixture
def state():
    rng = np.random.default_rng(7)
    x, h, c = (rng.normal(size=s).astype(np.float32) for s in ((B, I), (B, H), (B, H)))
    return x, h, c


def count(cell, input_size=I):
    return gc.count_params(cell.init(jax.random.key(0), input_size))


def close(got, want):
    np.testing.assert_allclose(np.asarray(got), want, **TOL)


# --------------------------------------------------------------------------------------
# Greff et al.'s grid


def greff_step(name, p, x, c, h, prev):
    """One step of Greff et al.'s (2017) vanilla LSTM (with peepholes) with the change of
    variant ``name``, transcribed from the paper; ``prev`` holds (i, f, o) of ``t-1`` (FGR)."""
    learned = {"nig": "fgo", "nfg": "igo", "nog": "ifg", "cifg": "fgo"}.get(name, "ifgo")
    z = dict(zip(learned, blocks(x @ p.w_x + h @ p.w_h + p.b, len(learned)), strict=True))
    if name == "fgr":  # recurrent connections from every gate at t-1 to every gate at t
        for gate, zg in zip("ifo", blocks(np.concatenate(prev, -1) @ p.w_g, 3), strict=True):
            z[gate] = z[gate] + zg

    def peep(gate, cell):
        return 0.0 if name == "np" else getattr(p, f"p_{gate}") * cell

    ones = np.ones_like(c)
    f = ones if name == "nfg" else sigmoid(z["f"] + peep("f", c))
    if name == "nig":
        i = ones
    elif name == "cifg":
        i = 1 - f
    else:
        i = sigmoid(z["i"] + peep("i", c))
    g = z["g"] if name == "niaf" else np.tanh(z["g"])
    c = f * c + i * g
    o = ones if name == "nog" else sigmoid(z["o"] + peep("o", c))
    h = o * (c if name == "noaf" else np.tanh(c))
    return c, h, (i, f, o)


GREFF_COUNTS = {
    "vanilla": 4 * N + 3 * H, "nig": 3 * N + 2 * H, "nfg": 3 * N + 2 * H,
    "nog": 3 * N + 2 * H, "niaf": 4 * N + 3 * H, "noaf": 4 * N + 3 * H, "np": 4 * N,
    "cifg": 3 * N + 2 * H, "fgr": 4 * N + 3 * H + 9 * H * H,
}  # fmt: skip


def test_greff_grid_swept_in_a_loop(state):
    x, h, c = state
    xs = np.random.default_rng(3).normal(size=(3, B, I)).astype(np.float32)
    assert gc.GREFF_VARIANTS == tuple(GREFF_COUNTS)
    for name in gc.GREFF_VARIANTS:
        cell = gc.lstm_variant(H, variant=name)
        assert count(cell) == GREFF_COUNTS[name], name
        p = randomized(cell)
        peepholes = [f for f in ("p_i", "p_f", "p_o") if f in p._fields]
        p = randomized(cell, **dict.fromkeys(peepholes, 1.0))
        carry = gc.LSTMCarry(c, h)
        if name == "fgr":
            carry = gc.FullGateCarry(c, h, np.zeros((B, 3 * H), np.float32))
        c_ref, h_ref, prev = c, h, tuple(np.zeros_like(c) for _ in "ifo")
        for x_t in xs:  # three steps: the carry (and FGR's gates) flow through time
            gates = cell.gates(p, carry, x_t)
            carry, y = cell.step(p, carry, x_t)
            c_ref, h_ref, prev = greff_step(name, p, x_t, c_ref, h_ref, prev)
            close(carry.c, c_ref), close(y, h_ref)
            for got, want in zip((gates.i, gates.f, gates.o), prev, strict=True):
                close(got, want * np.ones_like(c))


def test_default_lstm_is_greffs_np_and_vanilla_has_peepholes():
    p_np = gc.lstm_variant(H, variant="np").init(jax.random.key(0), I)
    p_default = gc.lstm(H).init(jax.random.key(0), I)
    assert type(p_np) is gc.LSTMParams  # the plain LSTM's fields: the plain LSTM's type
    jax.tree.map(np.testing.assert_array_equal, p_np, p_default)
    p = gc.lstm_variant(H, variant="vanilla").init(jax.random.key(0), I)
    assert isinstance(p, gc.LSTMVariantParams) and type(p).__name__ == "LSTMVariantParams"
    assert p._fields == ("w_x", "w_h", "b", "p_i", "p_f", "p_o")  # no None fields
    assert all(getattr(p, f).shape == (H,) for f in ("p_i", "p_f", "p_o"))
    assert not np.any(p.p_f)  # peepholes start at zero: vanilla starts as NP
    assert gc.lstm_variant(H, variant="cifg").name == "lstm_variant(5, variant='cifg')"
    name = gc.lstm_variant(H, variant="nig", fixed_gates={"o": 1.0}).name
    assert name == "lstm_variant(5, variant='nig', fixed_gates={'o': 1.0, 'i': 1.0})"
    assert dict(gc.LSTM_VARIANTS["nfg"]) == {"peepholes": True, "forget_gate": False}
    # flags and names are interchangeable
    a = gc.lstm_variant(H, variant="cifg").init(jax.random.key(0), I)
    b = gc.lstm_variant(H, peepholes=True, cifg=True).init(jax.random.key(0), I)
    assert type(a) is type(b)  # one cached type per set of fields
    jax.tree.map(np.testing.assert_array_equal, a, b)


def test_variant_params_pickle_and_copy():
    import copy
    import pickle

    p = gc.lstm_variant(H, variant="fgr", layer_norm=True).init(jax.random.key(0), I)
    for back in (pickle.loads(pickle.dumps(p)), copy.deepcopy(p)):
        assert type(back) is type(p)
        jax.tree.map(np.testing.assert_array_equal, back, p)
    path = [jax.tree_util.keystr(k) for k, _ in jax.tree_util.tree_flatten_with_path(p)[0]]
    assert path[:4] == [".w_x", ".w_h", ".b", ".p_i"]


def test_janet_by_hand(state):
    x, h, c = state
    cell = gc.lstm_variant(H, variant="janet")
    p = randomized(cell)
    assert count(cell) == 2 * N and p.w_x.shape == (I, 2 * H)  # blocks f, g
    zf, zg = blocks(x @ p.w_x + h @ p.w_h + p.b, 2)
    c_new = sigmoid(zf) * c + (1 - sigmoid(zf - 1.0)) * np.tanh(zg)
    carry, y = cell.step(p, gc.LSTMCarry(c, h), x)
    close(carry.c, c_new), close(y, c_new)  # h = c


def test_layer_norm_lstm_by_hand(state):
    x, h, c = state
    cell = gc.lstm_variant(H, layer_norm=True, layer_norm_eps=1e-3)
    p = randomized(cell, ln_x=1.0, ln_h=1.0, ln_c=1.0, ln_c_bias=1.0)
    assert count(cell) == 4 * N + 10 * H
    pre = layer_norm(x @ p.w_x, p.ln_x, eps=1e-3) + layer_norm(h @ p.w_h, p.ln_h, eps=1e-3)
    zi, zf, zg, zo = blocks(pre + p.b, 4)
    c_new = sigmoid(zf) * c + sigmoid(zi) * np.tanh(zg)
    h_new = sigmoid(zo) * np.tanh(layer_norm(c_new, p.ln_c, p.ln_c_bias, eps=1e-3))
    carry, y = cell.step(p, gc.LSTMCarry(c, h), x)
    close(carry.c, c_new), close(y, h_new)
    assert cell.split is not None and not cell.split.additive  # LN reads h_proj on its own


def test_projection_lstm_by_hand(state):
    x, h, c = state
    P = 2
    cell = gc.lstm(H, proj_size=P)
    p = randomized(cell)
    assert type(p) is gc.LSTMPParams and p._fields == ("w_x", "w_h", "b", "w_r")
    assert cell.output_size == P and count(cell) == 4 * (I * H + P * H + H) + H * P
    h = h[:, :P]
    zi, zf, zg, zo = blocks(x @ p.w_x + h @ p.w_h + p.b, 4)
    c_new = sigmoid(zf) * c + sigmoid(zi) * np.tanh(zg)
    r = (sigmoid(zo) * np.tanh(c_new)) @ p.w_r
    carry, y = cell.step(p, gc.LSTMCarry(c, h), x)
    close(carry.c, c_new), close(y, r), close(carry.h, r)
    assert cell.split is None  # the projection is a second matmul


@pytest.mark.skipif(not HAS_TORCH, reason="torch not installed (golden fixtures still checked)")
def test_projection_lstm_against_pytorch_both_ways():
    import torch

    module = torch.nn.LSTM(I, H, proj_size=2, num_layers=2, bidirectional=True, batch_first=True)
    x = np.random.default_rng(0).normal(size=(2, 6, I)).astype(np.float32)
    lengths = np.array([6, 3])

    def torch_out():
        packed = torch.nn.utils.rnn.pack_padded_sequence(
            torch.from_numpy(x), torch.tensor(lengths), batch_first=True
        )
        with torch.no_grad(), warnings.catch_warnings():  # torch leaves oneDNN, and says so
            warnings.filterwarnings("ignore", message="LSTM with projections")
            y, (h_n, c_n) = module(packed)
        return torch.nn.utils.rnn.pad_packed_sequence(y, batch_first=True)[0].numpy(), h_n

    cell, params = interop.from_torch(module)
    assert params[0][0].w_r.shape == (H, 2) and cell.output_size == 4
    y, h_n = torch_out()
    carry, ys = gc.unroll(cell, params, x, lengths=jnp.asarray(lengths))
    np.testing.assert_allclose(ys, y, atol=1e-5)
    np.testing.assert_allclose(carry[1][1].h, h_n[3].numpy(), atol=1e-5)  # last backward
    interop.to_torch(new := cell.init(jax.random.key(5), I), module)
    np.testing.assert_allclose(gc.unroll(cell, new, x, lengths=jnp.asarray(lengths))[1],
                               torch_out()[0], atol=1e-5)  # fmt: skip


def test_full_gate_recurrence_carries_the_gates():
    cell = gc.lstm_variant(H, full_gate_recurrence=True)
    carry = cell.initial_carry((B,))
    assert isinstance(carry, gc.FullGateCarry) and carry.gates.shape == (B, 3 * H)
    assert cell.split is None and count(cell) == 4 * N + 9 * H * H


def test_chrono_initialisation():
    t_max = 50
    b = np.asarray(gc.lstm(H, chrono=t_max).init(jax.random.key(0), I).b)
    b_i, b_f = blocks(b, 4)[:2]
    assert np.all((b_f >= 0) & (b_f <= np.log(t_max - 1))) and len(set(b_f)) == H
    np.testing.assert_array_equal(b_i, -b_f)
    janet = gc.lstm_variant(H, variant="janet", chrono=t_max)
    b_f_janet = blocks(janet.init(jax.random.key(0), I).b, 2)
    assert np.all(b_f_janet[0] > 0)
    b_z = blocks(gc.gru(H, chrono=t_max).init(jax.random.key(0), I).b, 3)[1]
    assert np.all((b_z >= 0) & (b_z <= np.log(t_max - 1)))
    b_f_mgu = blocks(gc.mgu(H, chrono=t_max).init(jax.random.key(0), I).b, 2)[0]
    assert np.all(b_f_mgu <= 0)  # MGU's f takes the candidate: a small f remembers


# --------------------------------------------------------------------------------------
# GRU relatives


def test_layer_norm_gru_by_hand(state):
    x, h, _ = state
    cell = gc.gru(H, layer_norm=True)
    p = randomized(cell, ln_x=1.0, ln_h=1.0, b_hn=1.0)
    assert count(cell) == 3 * N + H + 6 * H
    xr, xz, xn = blocks(layer_norm(x @ p.w_x, p.ln_x) + p.b, 3)
    hr, hz, hn = blocks(layer_norm(h @ p.w_h, p.ln_h), 3)
    r, z = sigmoid(xr + hr), sigmoid(xz + hz)
    n = np.tanh(xn + r * (hn + p.b_hn))
    close(cell.step(p, h, x)[1], (1 - z) * n + z * h)


def test_mgu_by_hand_in_the_papers_coupling(state):
    x, h, _ = state
    cell = gc.mgu(H)
    p = randomized(cell, b=1.0)
    assert count(cell) == 2 * N
    xf, xn = blocks(x @ p.w_x + p.b, 2)
    uf, un = blocks(p.w_h, 2)
    f = sigmoid(xf + h @ uf)
    n = np.tanh(xn + (f * h) @ un)
    close(cell.step(p, h, x)[1], (1 - f) * h + f * n)  # f takes the candidate


@pytest.mark.parametrize(
    "version, raw_input", [(1, False), (1, True), (2, False), (2, True), (3, False)]
)
def test_mutants_by_hand(version, raw_input):
    factory = {1: gc.mut1, 2: gc.mut2, 3: gc.mut3}[version]
    cell = factory(H, raw_input=True) if raw_input else factory(H)
    i_size = H if raw_input else I
    p = randomized(cell, i_size, b=1.0)
    rng = np.random.default_rng(version)
    x, h = rng.normal(size=(B, i_size)).astype(np.float32), rng.normal(size=(B, H))
    h = h.astype(np.float32)
    wx = dict(zip("rzn", blocks(p.w_x, 3), strict=True)) if not raw_input else None
    wh = dict(zip("rn" if version == 1 else "rzn", blocks(p.w_h, 3 - (version == 1)),
                  strict=True))  # fmt: skip
    br, bz, bn = blocks(p.b, 3)
    if raw_input:  # the paper's own x: MUT1's tanh(x), MUT2's reset gate
        wx = dict(zip("zn" if version == 2 else "rz", blocks(p.w_x, 2), strict=True))
    if version == 1:
        z = sigmoid(x @ wx["z"] + bz)
        r = sigmoid(x @ wx["r"] + h @ wh["r"] + br)
        cand = np.tanh(x) if raw_input else np.tanh(x @ wx["n"])
        h_new = np.tanh((r * h) @ wh["n"] + cand + bn) * z + h * (1 - z)
    else:
        z = sigmoid(x @ wx["z"] + (np.tanh(h) if version == 3 else h) @ wh["z"] + bz)
        r = sigmoid((x if raw_input else x @ wx["r"]) + h @ wh["r"] + br)
        h_new = np.tanh((r * h) @ wh["n"] + x @ wx["n"] + bn) * z + h * (1 - z)
    close(cell.step(p, h, x)[1], h_new)
    expected = {
        (1, False): 3 * I * H + 2 * H * H + 3 * H, (1, True): 2 * H * H + 2 * H * H + 3 * H,
        (2, False): 3 * N, (2, True): 2 * H * H + 3 * H * H + 3 * H, (3, False): 3 * N,
    }[(version, raw_input)]  # fmt: skip
    assert count(cell, i_size) == expected


def test_indrnn_by_hand(state):
    x, h, _ = state
    cell = gc.indrnn(H)
    p = randomized(cell, b=1.0)
    assert count(cell) == I * H + 2 * H and np.all((p.u >= 0) & (p.u < 1))
    close(cell.step(p, h, x)[1], np.maximum(x @ p.w_x + p.u * h + p.b, 0))


# --------------------------------------------------------------------------------------
# Minimal gated cells


def g(v):
    return np.where(v >= 0, v + 0.5, sigmoid(v))


@pytest.mark.parametrize("positive", [True, False])
def test_min_gru_and_min_lstm_by_hand(state, positive):
    x, h, _ = state
    cell = gc.min_gru(H, positive=positive)
    p = randomized(cell, b=1.0)
    kz, kn = blocks(x @ p.w_x + p.b, 2)
    z, n = sigmoid(kz), g(kn) if positive else kn
    close(cell.step(p, h, x)[1], (1 - z) * h + z * n)
    assert count(cell) == 2 * (I * H + H)
    cell = gc.min_lstm(H, positive=positive)
    p = randomized(cell, b=1.0)
    ki, kf, kg = blocks(x @ p.w_x + p.b, 3)
    i, f = sigmoid(ki), sigmoid(kf)
    cand = g(kg) if positive else kg
    close(cell.step(p, h, x)[1], f / (f + i) * h + i / (f + i) * cand)
    assert count(cell) == 3 * (I * H + H)


# --------------------------------------------------------------------------------------
# Errors name the offending argument


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: gc.lstm_variant(H, variant="peephole"), "variant must be one of"),
        (lambda: gc.lstm_variant(H, variant="np", peepholes=True), "peepholes=True contradicts"),
        (lambda: gc.lstm_variant(H, variant="vanilla", peepholes=False), "peepholes=False contr"),
        (
            lambda: gc.lstm_variant(H, variant="nig", fixed_gates={"i": 0.5}),
            r"fixed_gates\['i'\]=0.5 contradicts",
        ),
        (lambda: gc.lstm_variant(H, cifg=True, forget_gate=False), "cifg couples"),
        (lambda: gc.lstm_variant(H, cifg=True, fixed_gates={"i": 1.0}), "cifg computes"),
        (lambda: gc.lstm_variant(H, cifg_shift=1.0), "cifg_shift=1.0 needs cifg=True"),
        (lambda: gc.lstm_variant(H, cifg=True, cifg_shift="1"), "cifg_shift must be a number"),
        (lambda: gc.lstm_variant(H, peepholes=1), "peepholes must be a bool"),
        (lambda: gc.lstm_variant(H, candidate_activation="id"), "candidate_activation must"),
        (
            lambda: gc.lstm_variant(
                H, full_gate_recurrence=True, fixed_gates=dict.fromkeys("ifo", 1)
            ),
            "full_gate_recurrence needs",
        ),
        (lambda: gc.lstm(H, peepholes=True), "unexpected keyword argument 'peepholes'"),
        (lambda: gc.lstm(H, variant="cifg"), "unexpected keyword argument 'variant'"),
        (lambda: gc.lstm(H, proj_size=H), "proj_size must be"),
        (lambda: gc.lstm_variant(H, proj_size=0), "proj_size must be"),
        (lambda: gc.lstm(H, chrono=1), "chrono must be"),
        (lambda: gc.lstm(H, forget_gate=False, chrono=10), "chrono initialises"),
        (
            lambda: gc.lstm_variant(H, variant="janet", fixed_gates={"f": 0.5}, chrono=10),
            "cifg couples",
        ),
        (lambda: gc.lstm_variant(H, layer_norm=True, layer_norm_eps=0), "layer_norm_eps"),
        (lambda: gc.gru(H, layer_norm=True, reset_after=False), "layer_norm=True needs"),
        (lambda: gc.mut3(H, raw_input=True), "unexpected keyword"),
        (lambda: gc.mut1(H, raw_input=True).init(jax.random.key(0), I), "input_size must"),
        (lambda: gc.min_gru(H, method="parallel"), "method must be one of"),
    ],
)
def test_errors_name_the_argument(build, match):
    with pytest.raises((ValueError, TypeError), match=match):
        build()


def test_params_of_another_variant_are_refused():
    vanilla = gc.lstm_variant(H, variant="vanilla").init(jax.random.key(0), I)
    with pytest.raises(ValueError, match="params.p_i must be None"):
        gc.lstm(H).check_params(vanilla)
    with pytest.raises(ValueError, match="expected a field 'p_i'"):
        gc.lstm_variant(H, variant="vanilla").check_params(gc.lstm(H).init(jax.random.key(0), I))
    with pytest.raises(ValueError, match=r"lstm\(5\): params.w_h has shape \(2, 20\)"):
        gc.lstm(H).check_params(gc.lstm(H, proj_size=2).init(jax.random.key(0), I))
    with pytest.raises(ValueError, match="ln_x must be None"):
        gc.gru(H).check_params(gc.gru(H, layer_norm=True).init(jax.random.key(0), I))


# --------------------------------------------------------------------------------------
# lstm_variant without a research flag is lstm: two writings of the equations, pinned


PLAIN_FLAGS = {
    "default": {},
    "no_forget_gate": dict(forget_gate=False),
    "fixed_gates": dict(fixed_gates={"i": 0.25, "o": 1.0}),
    "forget_bias": dict(forget_bias=5.0),
    "chrono": dict(chrono=30),
    "proj_size": dict(proj_size=3),
    "identity_output": dict(output_activation=jax.nn.identity),
    "simple_regime": dict(fixed_gates={"i": 1, "f": 0, "o": 1}, output_activation=jax.nn.identity),
    "bf16_compute": dict(dtype=jnp.bfloat16, forget_gate=False),
}
# lstm_variant's own spelling of "no research flag" for some of them: Greff's NP by name
NAMED_NP = {"default", "fixed_gates", "proj_size"}


def _inputs(cell, batch):
    kx, kc = jax.random.split(jax.random.key(4))
    xs = jax.random.normal(kx, (*batch, 6, I))
    carry = jax.tree.map(lambda z: 0.5 * jax.random.normal(kc, z.shape), cell.initial_carry(batch))
    return xs, carry


@pytest.mark.parametrize("case", PLAIN_FLAGS)
def test_lstm_variant_without_research_flags_is_lstm(case):
    flags = PLAIN_FLAGS[case]
    plain = gc.lstm(H, **flags)
    variant = gc.lstm_variant(H, **flags, **(dict(variant="np") if case in NAMED_NP else {}))
    assert variant.output_size == plain.output_size
    assert (variant.split is None) == (plain.split is None)
    init = jax.jit(lambda cell, key: cell.init(key, I), static_argnums=0)  # one program each
    params, params_v = init(plain, jax.random.key(2)), init(variant, jax.random.key(2))
    assert type(params_v) is type(params)  # LSTMParams / LSTMPParams: interchangeable
    jax.tree.map(np.testing.assert_array_equal, params_v, params)
    assert variant.check_params(params) == plain.check_params(params_v) == I
    params = jax.tree.map(lambda w: w + 0.1, params)  # every bias block away from zero

    def loss(cell, params, xs, carry):
        lengths = jnp.full(xs.shape[:-2], 4) if xs.ndim > 2 else None
        carry, ys = gc.unroll(cell, params, xs, carry, lengths=lengths)
        weights = jnp.linspace(-1, 1, ys.size).reshape(ys.shape)
        return jnp.sum(weights * ys) + sum(jnp.sum(c**2) for c in jax.tree.leaves(carry))

    def same(a, b):  # the same operations in the same order, up to XLA's fusion choices
        jax.tree.map(lambda u, v: np.testing.assert_allclose(u, v, rtol=1e-6, atol=1e-6), a, b)

    run = jax.jit(gc.unroll, static_argnums=0)
    gates = jax.jit(lambda cell, *args: cell.gates(*args), static_argnums=0)
    grad = jax.jit(jax.grad(loss, argnums=(1, 2, 3)), static_argnums=0)
    for batch in [(2,), ()] if case == "default" else [(2,)]:  # with lengths; one sequence
        xs, carry = _inputs(plain, batch)
        same(run(variant, params, xs, carry), run(plain, params, xs, carry))
        x = xs[..., 0, :]
        same(gates(variant, params, carry, x), gates(plain, params, carry, x))
        same(grad(variant, params, xs, carry), grad(plain, params, xs, carry))
