"""The porting recipes of docs/cells/linear.md reproduce their references: the page's own
``from_recurrentgemma`` against recurrentgemma's committed outputs
(``tests/fixtures/rglru_golden.npz``), its ``from_mamba`` against a NumPy transcription of
``mamba_ssm``'s ``selective_scan_ref`` behind the block's ``x_proj`` and ``dt_proj``."""

import ast
import math
import pathlib
import re

import jax.numpy as jnp
import numpy as np
import pytest

import gatedcells as gc

ROOT = pathlib.Path(__file__).parents[2]
PAGE = ROOT / "docs" / "cells" / "linear.md"
FIXTURE = ROOT / "tests" / "fixtures" / "rglru_golden.npz"


def page_function(name: str):
    """The function ``name`` as the page defines it: its block's imports and definitions
    run, not its example."""
    blocks = re.findall(r"```python\n(.*?)```", PAGE.read_text(), re.S)
    block = next(b for b in blocks if f"def {name}(" in b)
    kept = [n for n in ast.parse(block).body if isinstance(n, ast.Import | ast.FunctionDef)]
    namespace: dict = {}
    exec(compile(ast.Module(kept, type_ignores=[]), str(PAGE), "exec"), namespace)
    return namespace[name]


def close(got, want, tol=1e-5):
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=tol, atol=tol)


@pytest.mark.parametrize("case", ["reset", "carry"])
def test_the_pages_recurrentgemma_recipe_matches_recurrentgemma(case):
    with np.load(FIXTURE) as saved:
        g = dict(saved)
    heads, d = g["w_a"].shape[:2]
    p = {
        "a_gate": {"w": g["w_a"], "b": g["b_a"].reshape(heads, d)},
        "input_gate": {"w": g["w_i"], "b": g["b_i"].reshape(heads, d)},
        "a_param": g["lam"],
    }
    h0 = jnp.asarray(g["h0"]) if case == "carry" else None
    from_recurrentgemma = page_function("from_recurrentgemma")
    ys, h = from_recurrentgemma(p, jnp.asarray(g["x"]), jnp.asarray(g[f"{case}_pos"]), h0)
    close(ys, g[f"{case}_y"])
    close(h, g[f"{case}_h"])


# --- Mamba: selective_scan_ref, transcribed --------------------------------------------


def mamba_scan(w, u):
    """``Mamba.forward``'s selective scan without the ``silu(z)`` gate, in float64:
    ``u [B, D, L]`` (Mamba's layout, after the convolution), ``x_proj`` and ``dt_proj``
    forming ``Δ, B, C``, then ``selective_scan_ref(u, Δ, A, B, C, D, delta_bias,
    delta_softplus=True, return_last_state=True)``. Returns ``(y [B, D, L], h [B, D, N])``."""
    rank = w["dt_proj.weight"].shape[1]
    n = w["A_log"].shape[1]
    x_dbl = np.einsum("bdl,ed->ble", u, w["x_proj.weight"])  # [B, L, R + 2N]
    dt, b_sel, c_sel = np.split(x_dbl, [rank, rank + n], axis=-1)
    delta = np.einsum("dr,blr->bdl", w["dt_proj.weight"], dt) + w["dt_proj.bias"][:, None]
    delta = np.logaddexp(0.0, delta)  # softplus
    a = -np.exp(w["A_log"])  # [D, N]
    h = np.zeros((u.shape[0], u.shape[1], n))
    ys = []
    for t in range(u.shape[2]):
        decay = np.exp(delta[:, :, t, None] * a)
        h = decay * h + (delta[:, :, t] * u[:, :, t])[..., None] * b_sel[:, None, t, :]
        ys.append(np.einsum("bdn,bn->bd", h, c_sel[:, t]))
    return np.stack(ys, axis=2) + u * w["D"][:, None], h


def test_the_pages_mamba_recipe_matches_selective_scan_ref():
    d_model, expand, n, batch, length = 20, 2, 4, 2, 15
    d_inner, rank = expand * d_model, math.ceil(d_model / 16)  # 40 channels, dt_rank 2
    rng = np.random.default_rng(0)
    w = {
        "x_proj.weight": rng.normal(size=(rank + 2 * n, d_inner)) / np.sqrt(d_inner),
        "dt_proj.weight": rng.normal(size=(d_inner, rank)) / np.sqrt(rank),
        "dt_proj.bias": np.log(np.expm1(rng.uniform(0.001, 0.1, d_inner))),
        "A_log": np.log(np.arange(1.0, n + 1)) + rng.normal(size=(d_inner, n)) / 4,
        "D": rng.normal(size=d_inner),
    }
    u = rng.normal(size=(batch, d_inner, length))
    y_ref, h_ref = mamba_scan(w, u)

    cell, params = page_function("from_mamba")(w, d_model)
    assert params.w_dt.shape == (rank, d_inner)  # not the cell's default ceil(40 / 16) = 3
    state, ys = gc.unroll(cell, params, jnp.asarray(u.transpose(0, 2, 1), jnp.float32))
    close(ys, y_ref.transpose(0, 2, 1))
    close(state.reshape(batch, d_inner, n), h_ref)
    # the cell's default rank does not fit Mamba's weights
    with pytest.raises(ValueError, match=r"w_dbc has shape \(40, 10\), expected \(40, 11\)"):
        gc.unroll(gc.selective_ssm(d_inner, state_size=n), params, jnp.asarray(u[:, :, 0]))
