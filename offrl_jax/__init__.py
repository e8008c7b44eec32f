"""offrl_jax: JAX-accelerated functional algorithms for offline RL and off-policy evaluation.

Subpackages load on first use (``offrl_jax.ope``, ``offrl_jax.fitted``, ...), so importing the
package or running the command line pays only for what it touches.
"""

import importlib
from typing import Any

__version__ = "0.4.0"

_SUBPACKAGES = (
    "behavior", "core", "data", "envs", "experiments", "fitted", "formats", "linear", "mis", "offline",
    "ope", "pg", "policies", "selection", "trainers",
)

__all__ = ["Trajectories", "Transitions", *_SUBPACKAGES, "__version__"]


def __getattr__(name: str) -> Any:
    if name in _SUBPACKAGES:
        return importlib.import_module(f"offrl_jax.{name}")
    if name in ("Trajectories", "Transitions"):
        return getattr(importlib.import_module("offrl_jax.data"), name)
    raise AttributeError(f"module 'offrl_jax' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
