"""Strict JAX settings for the whole suite (as Equinox's tests do): implicit dtype or rank
promotion inside the library is a bug, so it raises here. Hypothesis profiles: "gatedcells"
(the default: few examples, tiny shapes, the suite stays fast) and "thorough"
(``HYPOTHESIS_PROFILE=thorough pytest tests/test_properties.py``)."""

import atexit
import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading

import jax
import pytest
from filelock import FileLock
from hypothesis import HealthCheck, settings
from jax._src.interpreters import mlir

# One XLA compilation cache for the run, shared by the xdist workers and the notebook kernels
# (they inherit the environment of the process that sets it): many tests compile the same
# program from different closures, and a hit skips the compilation. A directory given by the
# caller is used as it is and kept.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="gatedcells-xla-")
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0.1"
    atexit.register(shutil.rmtree, os.environ["JAX_COMPILATION_CACHE_DIR"], True)
# XLA:CPU tuned for a suite of many small programs, each compiled once and run a few times
# (compilation is most of the suite's time): single-threaded per process (xdist runs a
# worker per core, and each worker's Eigen pool would otherwise spread its small matmuls
# over every core) and XLA's classic loop emitters, which compile the suite's programs
# about 1.3-2.5x faster than the fusion emitters (same values: every tolerance holds; LLVM's
# -O0 would compile faster still, but it changes float rounding beyond 1e-5). A caller's
# XLA_FLAGS replaces all of this (`XLA_FLAGS= make test` runs XLA's defaults).
TEST_XLA_FLAGS = "--xla_cpu_multi_thread_eigen=false --xla_cpu_use_fusion_emitters=false"
os.environ.setdefault("XLA_FLAGS", TEST_XLA_FLAGS)
jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
jax.config.update(
    "jax_persistent_cache_min_compile_time_secs",
    float(os.environ.get("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", 1.0)),
)
jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")


# JAX lowers each program in a fresh MLIR context, and a fresh context loads every dialect
# again (~2.2 ms) and lives as long as what was lowered in it is cached. The suite lowers
# ~11,000 programs (measured on the fast tier): one context per thread, reused, takes the fast
# tier from ~181 s to ~119 s and each worker from ~5.1 GB to ~2.7 GB at its peak (programs are
# independent modules; a context only grows by the types and attributes they intern, as
# MLIR's own users who reuse contexts note). The library itself leaves JAX as it is; with
# GATEDCELLS_TEST_FRESH_MLIR_CONTEXTS=1 the suite runs JAX's lowering unchanged.
_fresh_ir_context, _ir_contexts = mlir.make_ir_context, threading.local()


def _reused_ir_context():
    if not hasattr(_ir_contexts, "context"):
        _ir_contexts.context = _fresh_ir_context()
    return _ir_contexts.context


if not os.environ.get("GATEDCELLS_TEST_FRESH_MLIR_CONTEXTS"):
    mlir.make_ir_context = _reused_ir_context

# Each example compiles a scan of new shapes: examples are slow, so no deadline.
_SLOW = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("gatedcells", max_examples=6, **_SLOW)
settings.register_profile("thorough", max_examples=200, **_SLOW)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "gatedcells"))


@pytest.fixture
def key():
    return jax.random.key(0)


@pytest.fixture(scope="session")
def run_script(tmp_path_factory, worker_id):
    """``run_script(path, devices)``: the JSON of the last line that ``python path`` prints,
    run with ``devices`` virtual CPU devices (the count is fixed when jax starts; ``None``:
    as the script chooses) and the variables ``env`` added, ONCE per session: xdist workers
    share the first one's result through a file, so the tests that read one subprocess's
    result may run on any worker."""
    shared = tmp_path_factory.getbasetemp().parent if worker_id != "master" else None

    def run(path, devices: int | None, timeout: int = 900, env: dict | None = None) -> dict:
        flags = os.environ.get("XLA_FLAGS", "")
        if devices is not None:
            flags += f" --xla_force_host_platform_device_count={devices}"
        paths = (os.path.dirname(os.path.dirname(__file__)), os.environ.get("PYTHONPATH"))
        extra = env or {}
        env = dict(os.environ, XLA_FLAGS=flags, PYTHONPATH=os.pathsep.join(p for p in paths if p))
        env.update(extra)

        def fresh():
            argv = [sys.executable, str(path)]
            done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
            assert done.returncode == 0, done.stderr
            return json.loads(done.stdout.strip().splitlines()[-1])

        if shared is None:
            return fresh()
        named = "".join(f"-{k}={v}" for k, v in sorted(extra.items()))
        out = shared / f"{os.path.basename(path)}-{devices}{named}.json"
        with FileLock(f"{out}.lock"):
            if not out.is_file():
                out.write_text(json.dumps(fresh()))
            return json.loads(out.read_text())

    return run


# The registry suites: their tests of a FULL_ONLY entry run in `make test` only.
REGISTRY_SUITES = {
    "tests/test_contract.py",
    "tests/test_streaming.py",
    "tests/test_robustness.py",
    "tests/test_export.py",
    "tests/test_bad_input.py",
    "tests/sequence/test_padding.py",
}


@pytest.hookimpl(tryfirst=True)  # before xdist's, which turns the xdist_group marks into groups
def pytest_collection_modifyitems(config, items):
    """Groups and tiers, decided here for the whole suite (docs/development.md).

    The tests of one registry cell (``name`` parametrised) run on one xdist worker
    (``--dist loadgroup``), so the cell, its inputs and its compiled programs
    (``registry.build``, ``test_contract.case``) are made once in the session.

    ``slow`` (left out by ``make test-fast``) is added to: the documentation executed (the
    package's doctests, the code blocks of docs/ and of the README: the notebooks and the
    site build are marked where they are defined); the tests that read a fresh interpreter
    with other devices (the ``run_script`` fixture); the registry suites of the entries in
    ``registry.FULL_ONLY``; the tests marked ``plumbing`` of the entries not in
    ``registry.PLUMBING``."""
    from registry import FULL_ONLY, NAMES, PLUMBING

    names = set(NAMES)
    for item in items:
        path = item.nodeid.split("::")[0]
        name = getattr(item, "callspec", None) and item.callspec.params.get("name")
        if isinstance(name, str) and name in names:
            item.add_marker(pytest.mark.xdist_group(name))
            if name in FULL_ONLY and path in REGISTRY_SUITES:
                item.add_marker(pytest.mark.slow)
        documentation = type(item).__name__ == "DoctestItem" or item.nodeid.startswith(
            ("tests/test_docs.py::test_docs_example", "tests/test_readme.py::test_readme_block")
        )
        params = getattr(item, "callspec", None) and item.callspec.params
        entry = params and (params.get("name") or params.get("case") or params.get("setup"))
        if item.get_closest_marker("plumbing") and entry not in PLUMBING:
            item.add_marker(pytest.mark.slow)
        if documentation or "run_script" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)


# Each compiled program holds about three memory maps (its code and data) for as long as a
# cache keeps it; a worker that compiles some 20,000 programs reaches Linux's default
# vm.max_map_count (65,530), after which XLA segfaults in an mmap (measured: both workers
# of the full run crashed at ~72% and ~85%). Clearing JAX's caches frees them (600 programs:
# 2,295 maps, 531 after); what a later test needs again comes from the compilation cache.
# A clear costs ~3.7 s and the re-lowering of what later tests share: at 30,000 the fast
# tier cleared three times; no test adds more than a few thousand maps, so 48,000 leaves room.
MAX_MAPS = 48_000


def pytest_runtest_teardown(item, nextitem):
    try:
        with open("/proc/self/maps", "rb") as maps:
            count = maps.read().count(b"\n")
    except OSError:  # not Linux
        return
    if count > MAX_MAPS:
        jax.clear_caches()
        gc.collect()  # programs held by cycles, which the thresholds below leave longer


# Python's cycle collector walks every object that survived the last collection: with jax,
# flax and torch imported and thousands of jaxprs made, the default thresholds (700, 10, 10)
# spent ~10% of a worker's time in it (measured with gc.callbacks on the contract and padding
# suites' LSTM tests: 2.5 s in 1,532 collections; 0.3 s in 48 with these settings). The
# modules and the collected tests are frozen out of its walk.
gc.set_threshold(10_000, 20, 20)


def pytest_collection_finish(session):
    gc.freeze()
