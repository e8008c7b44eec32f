"""The offline tests run small programs once: compile them with most XLA optimisations off."""

import jax
import pytest


@pytest.fixture(scope="module", autouse=True)
def _fast_compiles_module():
    previous = jax.config.read("jax_disable_most_optimizations")
    jax.config.update("jax_disable_most_optimizations", True)
    yield
    jax.config.update("jax_disable_most_optimizations", previous)
