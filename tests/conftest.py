"""Strict JAX settings for the whole suite (as Equinox's tests do): implicit dtype or rank
promotion inside the library is a bug, so it raises here. Hypothesis profiles: "gatedcells"
(the default: few examples, tiny shapes, the suite stays fast) and "thorough"
(``HYPOTHESIS_PROFILE=thorough pytest tests/test_properties.py``)."""

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile

import jax
import pytest
from filelock import FileLock
from hypothesis import HealthCheck, settings

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


def pytest_collection_modifyitems(config, items):
    """The tests of one registry cell (contract, padding, robustness, bad input: ``name``
    parametrised) run on one xdist worker (``--dist loadgroup``), so that the cell, its
    inputs and its compiled programs (``registry.build``, ``test_contract.case``) are made
    once in the session, not once per worker."""
    from registry import NAMES

    names = set(NAMES)
    for item in items:
        name = getattr(item, "callspec", None) and item.callspec.params.get("name")
        if isinstance(name, str) and name in names:
            item.add_marker(pytest.mark.xdist_group(name))


# Each compiled program holds about three memory maps (its code and data) for as long as a
# cache keeps it; a worker that compiles some 20,000 programs reaches Linux's default
# vm.max_map_count (65,530), after which XLA segfaults in an mmap (measured: both workers
# of the full run crashed at ~72% and ~85%). Clearing JAX's caches frees them (600 programs:
# 2,295 maps, 531 after); what a later test needs again comes from the compilation cache.
MAX_MAPS = 30_000


def pytest_runtest_teardown(item, nextitem):
    try:
        with open("/proc/self/maps") as maps:
            count = sum(1 for _ in maps)
    except OSError:  # not Linux
        return
    if count > MAX_MAPS:
        jax.clear_caches()
