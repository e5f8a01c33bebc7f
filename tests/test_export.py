"""``jax.export`` of ``unroll`` with a symbolic batch and length (issue #25).

Every cell of the registry is exported once with ``xs`` of shape ``("b", "t", I)``, sent
through ``serialize``/``jax.export.deserialize``, called at two ``(B, T)`` shapes and
compared with ``gc.unroll`` itself. The params travel as their list of leaves and the carry
comes back as one (what a loader without gatedcells can rebuild); one test runs the
deserialized LSTM in a fresh Python process that cannot import gatedcells.

Serialization needs the ``flatbuffers`` package (jax's serializer): where it is absent the
exported function is called as it is, and the fresh-process test is skipped.
"""

import importlib.util
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from registry import LOOSE, NAMES, build

import gatedcells as gc

I = 4
SHAPES = ((1, 5), (3, 9))  # (B, T) of the calls of each export
TOL = dict(rtol=1e-5, atol=1e-5)
SERIALIZES = importlib.util.find_spec("flatbuffers") is not None


def input_size(name: str) -> int:
    return I + name.startswith("resettable")  # the resettable cells read a flag channel too


def inputs(name: str, batch: int, steps: int) -> jax.Array:
    xs = jax.random.normal(jax.random.key(batch * 100 + steps), (batch, steps, input_size(name)))
    if name.startswith("resettable"):  # the last channel is the reset flag: 0 or 1
        xs = xs.at[..., -1].set((xs[..., -1] > 0.5).astype(xs.dtype))
    return xs


def symbolic(shape: str, dtype=jnp.float32) -> jax.ShapeDtypeStruct:
    return jax.ShapeDtypeStruct(jax.export.symbolic_shape(shape), dtype)


def flat_unroll(cell, params, **kw):
    """``unroll`` over the params' leaves, returning the carry's leaves: plain pytrees."""
    leaves, treedef = jax.tree.flatten(params)

    def run(leaves, xs, *lengths):
        carry, ys = gc.unroll(
            cell, treedef.unflatten(leaves), xs, lengths=(lengths or [None])[0], **kw
        )
        return jax.tree.leaves(carry), ys

    return leaves, run


def roundtrip(exported):
    """The exported function as a loader sees it: serialized and deserialized."""
    return jax.export.deserialize(exported.serialize()) if SERIALIZES else exported


def close(got, want, tol=TOL):
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, **tol), got, want)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.plumbing
def test_every_cell_exports_with_symbolic_batch_and_time(name):
    cell = build(name)
    params = cell.init(jax.random.key(0), input_size(name))
    leaves, run = flat_unroll(cell, params)
    run = jax.jit(run)  # the reference too: eager ops would each compile
    exported = jax.export.export(run)(leaves, symbolic(f"b, t, {input_size(name)}"))
    assert str(exported.in_avals[-1].shape) == f"(b, t, {input_size(name)})"
    loaded = roundtrip(exported)
    for batch, steps in SHAPES:
        xs = inputs(name, batch, steps)
        got, want = loaded.call(leaves, xs), run(leaves, xs)
        assert got[1].shape == want[1].shape == (batch, steps, cell.output_size)
        close(got, want, LOOSE.get(name, TOL))


@pytest.mark.parametrize("lead", ["b, 7", "2, t", "b, t"])
def test_lstm_exports_with_a_symbolic_batch_or_length(lead):
    """The defects: the carry's batch_shape check refused a symbolic ``b``, and the fused
    loop compared the projection's symbolic size with its hoisting limit."""
    cell = gc.lstm(6)
    params = cell.init(jax.random.key(0), I)
    f = jax.jit(lambda p, xs: gc.unroll(cell, p, xs)[1])
    exported = jax.export.export(f)(params, symbolic(f"{lead}, {I}"))
    assert str(exported.out_avals[0].shape) == f"({lead}, 6)"
    xs = inputs("lstm", 2, 7)
    close(exported.call(params, xs), f(params, xs))


def test_initial_carry_takes_a_symbolic_batch():
    b, t = jax.export.symbolic_shape("b, t")
    carry = jax.eval_shape(lambda: gc.lstm(3).initial_carry((b, t)))
    assert [str(leaf.shape) for leaf in carry] == ["(b, t, 3)", "(b, t, 3)"]


@pytest.mark.parametrize("bad", [(-1,), (2.0,), (True,), (None,), "b", 3])
def test_initial_carry_still_refuses_what_is_not_a_size(bad):
    with pytest.raises(TypeError, match=r"^batch_shape must be a tuple of non-negative ints"):
        gc.lstm(3).initial_carry(bad)


def test_remat_true_needs_a_concrete_length_and_an_int_does_not():
    cell = gc.lstm(6)
    params = cell.init(jax.random.key(0), I)
    leaves, run = flat_unroll(cell, params, remat=True)
    with pytest.raises(ValueError, match=r"^remat=True .* needs a concrete number of time steps"):
        jax.export.export(jax.jit(run))(leaves, symbolic(f"b, t, {I}"))
    leaves, run = flat_unroll(cell, params, remat=2)  # T = 5: a padded last chunk
    run = jax.jit(run)
    exported = jax.export.export(run)(leaves, symbolic(f"b, t, {I}"))
    xs = inputs("lstm", 3, 5)
    close(exported.call(leaves, xs), run(leaves, xs))


def test_lengths_reverse_and_bidirectional_with_symbolic_shapes():
    xs, lengths = inputs("bi", 3, 9), jnp.array([9, 4, 0], jnp.int32)
    b, t = jax.export.symbolic_shape("b, t")  # one scope for both arguments
    specs = (jax.ShapeDtypeStruct((b, t, I), jnp.float32), jax.ShapeDtypeStruct((b,), jnp.int32))
    for cell, kw in (
        (gc.bidirectional(gc.lstm(6), gc.gru(6)), {}),
        (gc.mlstm(6, num_heads=2, chunk_size=4), dict(reverse=True)),  # chunkwise, padded
    ):
        params = cell.init(jax.random.key(0), I)
        leaves, run = flat_unroll(cell, params, **kw)
        run = jax.jit(run)
        exported = jax.export.export(run)(leaves, *specs)
        close(exported.call(leaves, xs, lengths), run(leaves, xs, lengths))


def test_concrete_lengths_are_checked_against_zero_under_a_symbolic_length():
    cell = gc.lstm(3)
    params = cell.init(jax.random.key(0), I)
    spec = symbolic(f"2, t, {I}")
    for f in (
        lambda xs: gc.unroll(cell, params, xs, lengths=np.array([-1, 2])),
        lambda xs: gc.check_lengths(np.array([-1, 2]), xs.shape[1]),
    ):
        with pytest.raises(ValueError, match=r"^lengths must lie in \[0, T\] = \[0, t\], got"):
            jax.export.export(jax.jit(f))(spec)


# The gradient paths of the options that depend on T: the doubling scan that stands for the
# associative scan (in log space, and on complex pairs), the mLSTM's padded chunks, remat's.
GRAD_CELLS = {
    "min_gru_associative": (lambda: gc.min_gru(6, method="associative"), {}),
    "lru_associative": (lambda: gc.lru(6, method="associative", input_proj=True), {}),
    "mlstm_chunkwise": (lambda: gc.mlstm(6, num_heads=2, form="chunkwise", chunk_size=4), {}),
    "lstm_remat": (lambda: gc.lstm(6), dict(remat=2)),
}


@pytest.mark.parametrize("name", sorted(GRAD_CELLS))
def test_gradients_export_with_symbolic_batch_and_time(name):
    factory, kw = GRAD_CELLS[name]
    cell = factory()
    params = cell.init(jax.random.key(0), I)

    def loss(params, xs):
        return jnp.sum(gc.unroll(cell, params, xs, **kw)[1] ** 2)

    f = jax.jit(jax.grad(loss, argnums=(0, 1)))
    exported = jax.export.export(f)(params, symbolic(f"b, t, {I}"))
    xs = inputs(name, 3, 9)  # one shape: the shapes' variety is the registry test's
    close(exported.call(params, xs), f(params, xs), dict(rtol=1e-4, atol=1e-5))


@pytest.mark.parametrize("method", ["sequential", "associative", "chunked"])
def test_linear_recurrence_takes_a_symbolic_length(method):
    def f(log_a, b):
        return gc.linear_recurrence(log_a, b, method=method, chunk_size=4)

    f = jax.jit(f)
    spec = symbolic("b, t, 3")
    exported = jax.export.export(f)(spec, spec)
    for steps in (1, 17):  # no doubling round, and a round past a power of two
        log_a = -jnp.abs(jax.random.normal(jax.random.key(steps), (2, steps, 3)))
        b = jax.random.normal(jax.random.key(steps + 1), (2, steps, 3))
        close(exported.call(log_a, b), f(log_a, b))


LOADER = """
import sys
sys.modules["gatedcells"] = None  # the loader runs without gatedcells: importing it fails
import jax, numpy as np
with open(sys.argv[1], "rb") as file:
    exported = jax.export.deserialize(bytearray(file.read()))
saved = np.load(sys.argv[2])
leaves = [saved[f"leaf_{i}"] for i in range(len(saved.files) - 1)]
carry, ys = exported.call(leaves, saved["xs"])
np.savez(sys.argv[3], ys=ys, **{f"carry_{i}": c for i, c in enumerate(carry)})
print("ran", ys.shape)
"""


@pytest.mark.slow
def test_lstm_runs_in_a_fresh_process_without_gatedcells(tmp_path):
    flatbuffers = pytest.importorskip("flatbuffers", reason="jax's serializer needs it")
    cell = gc.lstm(6)
    params = cell.init(jax.random.key(0), I)
    leaves, run = flat_unroll(cell, params)
    exported = jax.export.export(jax.jit(run))(leaves, symbolic(f"b, t, {I}"))
    (tmp_path / "lstm.jaxexport").write_bytes(exported.serialize())
    xs = inputs("lstm", 3, 9)
    np.savez(tmp_path / "inputs.npz", xs=xs, **{f"leaf_{i}": a for i, a in enumerate(leaves)})
    (tmp_path / "loader.py").write_text(textwrap.dedent(LOADER))
    # flatbuffers where this process found it; gatedcells is blocked in the loader itself
    where = os.path.dirname(os.path.dirname(flatbuffers.__file__))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([where, os.environ.get("PYTHONPATH", "")]))
    files = [str(tmp_path / n) for n in ("lstm.jaxexport", "inputs.npz", "outputs.npz")]
    done = subprocess.run(
        [sys.executable, str(tmp_path / "loader.py"), *files],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ran (3, 9, 6)"
    with np.load(files[2]) as saved:
        out = dict(saved)
    want_carry, want_ys = gc.unroll(cell, params, xs)
    close(out["ys"], want_ys)
    close([out["carry_0"], out["carry_1"]], jax.tree.leaves(want_carry))
