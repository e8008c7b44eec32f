"""offrl_jax: JAX-accelerated functional algorithms for offline RL and off-policy evaluation."""

from offrl_jax import data, envs, fitted, linear, mis, ope, pg, policies, trainers
from offrl_jax.data import Trajectories, Transitions

__version__ = "0.1.0"

__all__ = ["Trajectories", "Transitions", "data", "envs", "fitted", "linear", "mis", "ope", "pg", "policies", "trainers", "__version__"]
