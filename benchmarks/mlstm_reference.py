"""mlstm_kernels' plain-JAX mLSTM forms, loaded without Triton, and gatedcells' forms on the
same projected inputs, for ``python benchmarks/mlstm.py kernels``.

mlstm_kernels (PyPI, NX-AI) ships its JAX kernels beside Triton wrappers; its package
``__init__`` files import ``triton`` and ``jax_triton``. :func:`load` imports only the
native files (``jax/chunkwise/native``, ``jax/recurrent/native_sequence_scan``,
``jax/parallel/native``) from a directory holding the unpacked wheel, with the packages
above them as empty namespaces and the Triton step as a stub, so neither torch nor triton
is needed. Install it apart from the project's environment, e.g.::

    pip download --no-deps mlstm_kernels==2.0.6 einops -d /tmp/mk
    cd /tmp/mk && mkdir -p src && for w in *.whl; do unzip -q -o $w -d src; done

and pass ``--kernels-path /tmp/mk/src``. Without ``einops`` (the chunkwise form's only other
import) its reshape-only ``rearrange`` patterns are run by a small stand-in.

Both sides start from the same projected inputs ``x_proj [T, B, 2Q+2V+2NH]`` (time-major,
what gatedcells' sequence driver receives after its one input matmul, which both would
share) and end at the same outputs ``y = σ(o) ⊙ h̃ [T, B, V]``: gatedcells through its own
driver (``_mlstm_forms.sequence`` with the cell's input projection replaced by the identity),
mlstm_kernels through its kernel between the same split and output gate.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import re
import sys
import types

import jax
import jax.numpy as jnp

import gatedcells as gc
from gatedcells.cells import _anatomy, _mlstm, _mlstm_forms
from gatedcells.sequence import default_unroll

NATIVE = {
    "chunkwise": ("mlstm_kernels.jax.chunkwise.native.fwbw", "mlstm_chunkwise__native_autograd"),
    "recurrent": ("mlstm_kernels.jax.recurrent.native_sequence_scan", "mlstm_recurrent_sequence__native_fw"),
    "parallel": ("mlstm_kernels.jax.parallel.native.fwbw", "mlstm_parallel__native_autograd"),
}  # fmt: skip


def _rearrange(a, pattern: str, **sizes):
    """einops' ``rearrange`` for the reshape-only patterns mlstm_kernels' JAX files use."""
    left, right = (re.findall(r"\([^)]*\)|\S+", side) for side in pattern.split("->"))
    known = dict(sizes)
    for group, size in zip(left, a.shape, strict=True):
        names = group.strip("()").split()
        free = [n for n in names if n not in known and n != "1"]
        rest = math.prod(known.get(n, 1) for n in names if n not in free)
        if free:
            known[free[0]] = size // rest
    shape = [math.prod(known.get(n, 1) for n in g.strip("()").split()) for g in right]
    return a.reshape(shape)


def load(path: str) -> dict:
    """``{form: fn}`` of mlstm_kernels' native JAX forms under ``path`` (the unpacked wheel);
    ``{}`` when it is not there."""
    if path not in sys.path:
        sys.path.insert(0, path)
    try:
        importlib.import_module("einops")
    except ImportError:
        sys.modules["einops"] = types.SimpleNamespace(rearrange=_rearrange)
    for name in ("mlstm_kernels", "mlstm_kernels.jax", "mlstm_kernels.jax.chunkwise",
                 "mlstm_kernels.jax.recurrent", "mlstm_kernels.jax.parallel"):  # fmt: skip
        spec = importlib.machinery.PathFinder.find_spec(name.rsplit(".", 1)[-1],
                                                        _parent_path(name, path))  # fmt: skip
        if spec is None:
            return {}
        module = types.ModuleType(name)
        module.__path__ = list(spec.submodule_search_locations)
        sys.modules.setdefault(name, module)
    stub = types.ModuleType("mlstm_kernels.jax.recurrent.triton_step")
    stub.mlstm_recurrent_step__triton_fw = None
    sys.modules.setdefault(stub.__name__, stub)
    return {
        form: getattr(importlib.import_module(module), fn) for form, (module, fn) in NATIVE.items()
    }


def _parent_path(name: str, path: str):
    parent = name.rpartition(".")[0]
    return [path] if not parent else sys.modules[parent].__path__


@dataclasses.dataclass(frozen=True)
class Setup:
    """The shared shapes: ``hidden`` = ``qk_dim`` = ``v_dim`` over ``heads``."""

    batch: int
    hidden: int
    heads: int

    def cell(self, form: str, chunk_size: int | None = None):
        flags = {} if chunk_size is None else {"chunk_size": chunk_size}
        return gc.mlstm(self.hidden, num_heads=self.heads, form=form, **flags)

    def inputs(self, steps: int, key=None):
        """``x_proj [T, B, P]`` as the cell's projection of normal inputs would give."""
        cell = self.cell("chunkwise")
        params = cell.init(jax.random.key(0), self.hidden)
        xs = jax.random.normal(key or jax.random.key(1), (steps, self.batch, self.hidden))
        return params, cell.project(params, xs)


def ours(setup: Setup, form: str, chunk_size: int | None = None):
    """``(params, x_proj [T, B, P]) -> y [T, B, V]``: gatedcells' driver without its input
    matmul (the stepper's ``project`` is the identity)."""
    spec = setup.cell(form, chunk_size).scan.spec
    stepper = dataclasses.replace(_mlstm.stepper(spec), project=_identity)
    output = _anatomy.Bound(_mlstm.output, spec)

    def run(params, x_proj):
        carry = _mlstm.carry(spec, x_proj.shape[1:-1])
        options = {"valid": None, "reverse": False, "grad": "auto", "remat": False}
        return _mlstm_forms.sequence(
            stepper, output, spec, params, carry, x_proj, unroll=default_unroll(), **options
        )[1]

    return run


def theirs(setup: Setup, kernel, chunk_size: int | None = None):
    """The same map through one of mlstm_kernels' forms (``[B, NH, T, D]``, queries scaled,
    raw forget pre-activations)."""
    dims = setup.cell("chunkwise").scan.spec.dims
    flags = {} if chunk_size is None else {"chunk_size": chunk_size}

    def run(params, x_proj):
        del params
        bounds = [sum(dims.sizes()[: j + 1]) for j in range(5)]
        q, k, v, i, f, o = jnp.split(x_proj, bounds, axis=-1)
        heads = lambda a: jnp.moveaxis(a.reshape(*a.shape[:-1], dims.heads, -1), 0, -2)  # noqa: E731
        q, k, v = heads(q), heads(k), heads(v)  # [B, NH, T, D]
        i, f = jnp.moveaxis(i, 0, -1), jnp.moveaxis(f, 0, -1)  # [B, NH, T]
        h = kernel(q, k, v, i, f, eps=1e-6, **flags)  # [B, NH, T, DV]
        h = jnp.moveaxis(h, -2, 0).reshape(*o.shape)
        return jax.nn.sigmoid(o) * h

    return run


def _identity(params, xs):
    del params
    return xs
