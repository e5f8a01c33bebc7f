"""Strict JAX settings for the whole suite (as Equinox's tests do): implicit dtype or rank
promotion inside the library is a bug, so it raises here. Hypothesis profiles: "gatedcells"
(the default: few examples, tiny shapes, the suite stays fast) and "thorough"
(``HYPOTHESIS_PROFILE=thorough pytest tests/test_properties.py``)."""

import atexit
import os
import shutil
import tempfile

import jax
import pytest
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
