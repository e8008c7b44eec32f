"""Logged data shared by the behaviour tests: one compiled rollout of the stitching gridworld."""

import jax
import jax.numpy as jnp
import pytest

from offrl_jax.envs import rollout
from offrl_jax.envs.suite import make_problem

NUM_DATASETS, NUM_EPISODES = 32, 1600


@pytest.fixture(scope="session")
def stitching_logs():
    """(problem, Trajectories [32, 1600, T = 20]): 32 datasets under the known, state-dependent β."""
    previous = jax.config.read("jax_disable_most_optimizations")
    jax.config.update("jax_disable_most_optimizations", True)  # a program that runs once
    try:
        p = make_problem("stitching_gridworld", dtype=jnp.float64)
        keys = jax.random.split(jax.random.key(11), NUM_DATASETS)
        roll = jax.jit(jax.vmap(lambda k: rollout(k, p.mdp, p.behavior, NUM_EPISODES, p.horizon, p.target)))
        return p, jax.block_until_ready(roll(keys))
    finally:
        jax.config.update("jax_disable_most_optimizations", previous)
