"""Test configuration: float64 for exact solvers, strict rank promotion."""

import jax
import pytest

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture
def key():
    return jax.random.key(0)


@pytest.fixture
def fast_compiles():
    """XLA with most optimisations off (as ``offrl-jax demo`` compiles) for programs that run once
    on little data, where compiling is most of the cost; float64 results agree to ~1e-15."""
    previous = jax.config.read("jax_disable_most_optimizations")
    jax.config.update("jax_disable_most_optimizations", True)
    yield
    jax.config.update("jax_disable_most_optimizations", previous)
