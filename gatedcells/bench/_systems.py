"""The systems the benchmark times: gatedcells and its peers (Flax, Equinox, PyTorch, cuDNN).

Each builder takes ``(cell, B, T, I, H)`` and returns ``{"fwd": thunk, "f+b": thunk}``, or
raises ``NotImplementedError`` when its library has no such cell. JAX thunks return after
``block_until_ready``.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

import gatedcells as gc
from gatedcells._cores import splits, under_mesh
from gatedcells.cells._registry import CELLS


def _jax_thunks(apply, variables, xs):
    fwd = jax.jit(apply)
    loss = lambda v, x: jnp.sum(apply(v, x))
    fb = jax.jit(jax.grad(loss, argnums=(0, 1)))
    return {
        "fwd": lambda: jax.block_until_ready(fwd(variables, xs)),
        "f+b": lambda: jax.block_until_ready(fb(variables, xs)),
    }


def gatedcells_system(cell: str, B, T, I, H, *, grad: str = "auto", **factory):
    """``gc.unroll``; with several devices (``gc.use_cpu_cores``) the batch split over them
    where it pays (``gatedcells._cores.splits``), as ``training.fit`` does."""
    c = CELLS[cell](H, **factory)
    params = c.init(jax.random.key(0), I)
    xs = jax.random.normal(jax.random.key(1), (B, T, I))
    mesh = None
    if splits(B, jax.device_count()):
        mesh = Mesh(np.asarray(jax.devices()), ("data",))
        params = jax.device_put(params, NamedSharding(mesh, P()))
        xs = jax.device_put(xs, NamedSharding(mesh, P("data")))
    thunks = _jax_thunks(lambda p, x: gc.unroll(c, p, x, grad=grad)[1], params, xs)
    if mesh is None:
        return thunks
    return {mode: under_mesh(mesh, thunk) for mode, thunk in thunks.items()}


def flax_system(kind: str):
    def build(cell, B, T, I, H):
        import flax.linen as nn

        wanted = {"lstm": ("LSTMCell", "OptimizedLSTMCell"), "gru": ("GRUCell",)}
        if kind not in wanted.get(cell, ("SimpleCell",)):
            raise NotImplementedError
        model = nn.RNN(getattr(nn, kind)(H))
        xs = jax.random.normal(jax.random.key(1), (B, T, I))
        variables = model.init(jax.random.key(0), xs)
        return _jax_thunks(model.apply, variables, xs)

    return build


def equinox_system(cell, B, T, I, H):
    import equinox as eqx

    if cell == "simple_rnn":
        raise NotImplementedError
    module = {"lstm": eqx.nn.LSTMCell, "gru": eqx.nn.GRUCell}[cell](I, H, key=jax.random.key(0))
    params, static = eqx.partition(module, eqx.is_array)
    xs = jax.random.normal(jax.random.key(1), (B, T, I))

    def apply(params, xs):
        m = eqx.combine(params, static)
        h = jnp.zeros((B, H))
        carry = (h, h) if cell == "lstm" else h

        def body(carry, x):
            carry = jax.vmap(m)(x, carry)
            return carry, carry[0] if cell == "lstm" else carry

        return jax.lax.scan(body, carry, jnp.swapaxes(xs, 0, 1))[1]

    return _jax_thunks(apply, params, xs)


def torch_system(cell, B, T, I, H):
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    module = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "simple_rnn": torch.nn.RNN}[cell](
        I, H, batch_first=True, device=device
    )
    xs = torch.randn(B, T, I, device=device)

    def fwd():
        with torch.no_grad():
            module(xs)
        sync()

    xg = xs.clone().requires_grad_(True)

    def fb():
        module.zero_grad(set_to_none=True)
        xg.grad = None
        module(xg)[0].sum().backward()
        sync()

    return {"fwd": fwd, "f+b": fb}


def cudnn_system(cell, B, T, I, H):
    """``jax.experimental.rnn.lstm``: JAX's binding of the cuDNN LSTM (GPU only, LSTM only)."""
    from jax.experimental import rnn

    if cell != "lstm":
        raise NotImplementedError
    weights = rnn.init_lstm_weight(jax.random.key(0), I, H, 1, False)
    xs = jax.random.normal(jax.random.key(1), (B, T, I))
    h0 = jnp.zeros((1, B, H))
    lengths = jnp.full((B,), T, jnp.int32)

    def apply(w, x):
        return rnn.lstm(x, h0, h0, w, lengths, I, H, 1, 0.0, False)[0]

    return _jax_thunks(apply, weights, xs)


SYSTEMS: dict[str, tuple[str | None, Callable]] = {
    # name: (module it needs, or "gpu" for a JAX GPU backend; builder)
    "gatedcells": (None, gatedcells_system),
    "flax LSTMCell": ("flax", flax_system("LSTMCell")),
    "flax OptimizedLSTMCell": ("flax", flax_system("OptimizedLSTMCell")),
    "flax GRUCell": ("flax", flax_system("GRUCell")),
    "flax SimpleCell": ("flax", flax_system("SimpleCell")),
    "equinox": ("equinox", equinox_system),
    "torch": ("torch", torch_system),
    "jax cuDNN LSTM": ("gpu", cudnn_system),
}


def missing_reason(system: str) -> str | None:
    """Why ``system`` cannot run here (``None`` when it can)."""
    need = SYSTEMS[system][0]
    if need == "gpu":
        return None if jax.default_backend() == "gpu" else "needs a JAX GPU backend"
    if need is None or importlib.util.find_spec(need) is not None:
        return None
    return f"{need} is not installed"


def available(systems) -> tuple[list[str], list[str]]:
    """``systems`` split into those that can run here and those that cannot."""
    have, missing = [], []
    for name in systems:
        (missing if missing_reason(name) else have).append(name)
    return have, missing
