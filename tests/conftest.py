"""Strict JAX settings for the whole suite (as Equinox's tests do): implicit dtype or rank
promotion inside the library is a bug, so it raises here."""

import jax
import pytest

jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture
def key():
    return jax.random.key(0)
