"""Fitted-Q fixtures; the enumerated Garnet builder (``make_enumerated``) is in tests/conftest.py."""

import jax.numpy as jnp
import numpy as np
import pytest


@pytest.fixture(scope="session")
def garnet_data(make_enumerated):
    """(mdp, dataset, pi): 6 states + terminal, 3 actions, branching 2, a random target pi."""
    mdp, ds = make_enumerated(0, 6, 3, 2)
    pi = np.random.default_rng(1).dirichlet(np.ones(3), size=7)
    return mdp, ds, jnp.asarray(pi)
