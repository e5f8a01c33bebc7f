"""Strict JAX settings for the whole suite (as Equinox's tests do): implicit dtype or rank
promotion inside the library is a bug, so it raises here. Hypothesis profiles: "gatedcells"
(the default: few examples, tiny shapes, the suite stays fast) and "thorough"
(``HYPOTHESIS_PROFILE=thorough pytest tests/test_properties.py``)."""

import os

import jax
import pytest
from hypothesis import HealthCheck, settings

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
