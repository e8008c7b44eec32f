"""Small tabular problems with exact truths for the experiment tests."""

import jax.numpy as jnp
import numpy as np
import pytest

from offrl_jax.envs import TabularMDP


def _cost_chain(num_states=6, gamma=0.9):
    """Walk right to a terminal goal: reward -1 per step, actions 0 = L, 1 = R (p = 0.9), start 0."""
    s = num_states
    p = np.zeros((s, 2, s))
    for i in range(s - 1):
        p[i, 0, max(i - 1, 0)] += 0.9
        p[i, 0, i + 1] += 0.1
        p[i, 1, i + 1] += 0.9
        p[i, 1, max(i - 1, 0)] += 0.1
    p[-1, :, -1] = 1.0
    r = -np.ones((s, 2))
    r[-1] = 0.0
    term = np.zeros(s, bool)
    term[-1] = True
    return TabularMDP.create(p, r, np.eye(s)[0], gamma, terminal=term, dtype=jnp.float64)


@pytest.fixture
def cost_chain():
    return _cost_chain


@pytest.fixture(scope="session")
def garnet_data(make_enumerated):
    """(mdp, dataset): a Garnet with 6 states + 1 terminal, 3 actions, branching 2, gamma 0.9,
    with a dataset listing every (s, a, s'_j) once, so its empirical model is the true model."""
    return make_enumerated(0, 6, 3, 2)
