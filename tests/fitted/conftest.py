"""Shared fixtures for the fitted-Q tests: small MDPs whose data match the model exactly."""

import jax.numpy as jnp
import numpy as np
import pytest

from offrl_jax.data import Transitions
from offrl_jax.envs import TabularMDP

GAMMA = 0.9


def enumerated_garnet(seed: int, num_states: int, num_actions: int, branching: int, gamma: float = GAMMA):
    """A Garnet with equal next-state probabilities 1/b and one absorbing terminal state, plus a
    dataset listing every (s, a, s'_j) once: its empirical model *is* the true model, so the
    FQE/FQI fixed points on it are exactly Q^pi / Q* of the MDP.

    State ``num_states`` (the last) is terminal: entering it sets ``discounts = 0``.
    """
    rng = np.random.default_rng(seed)
    s_all = num_states + 1
    p = np.zeros((s_all, num_actions, s_all))
    nxt = np.zeros((num_states, num_actions, branching), int)
    for s in range(num_states):
        for a in range(num_actions):
            nxt[s, a] = rng.choice(s_all, branching, replace=False)
            p[s, a, nxt[s, a]] = 1.0 / branching
    p[num_states, :, num_states] = 1.0
    r = np.zeros((s_all, num_actions))
    r[:num_states] = rng.normal(size=(num_states, num_actions))
    terminal = np.zeros(s_all, bool)
    terminal[num_states] = True
    initial = np.r_[np.ones(num_states) / num_states, 0.0]
    mdp = TabularMDP.create(p, r, initial, gamma, terminal=terminal, dtype=jnp.float64)
    s, a, j = (x.ravel() for x in np.meshgrid(np.arange(num_states), np.arange(num_actions), np.arange(branching), indexing="ij"))
    s_next = nxt[s, a, j]
    ds = Transitions.create(
        observations=s,
        actions=a,
        rewards=r[s, a],
        next_observations=s_next,
        discounts=(s_next != num_states).astype(np.float64),
    )
    return mdp, ds


@pytest.fixture(scope="session")
def garnet_data():
    """(mdp, dataset, pi): 6 states + terminal, 3 actions, branching 2, a random target pi."""
    mdp, ds = enumerated_garnet(0, 6, 3, 2)
    pi = np.random.default_rng(1).dirichlet(np.ones(3), size=7)
    return mdp, ds, jnp.asarray(pi)


@pytest.fixture(scope="session")
def make_enumerated():
    """The :func:`enumerated_garnet` builder, for tests that need another size or seed."""
    return enumerated_garnet
