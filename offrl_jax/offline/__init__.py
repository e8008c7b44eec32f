"""Offline RL that fixes distribution shift: behaviour cloning, CQL, BCQ, IQL and TD3+BC.

Every method follows the learner convention of the package (a frozen, validated config;
``make_learner(config) -> core.Learner``; ``make_train(config) -> train(key, data) ->
core.TrainResult``, vmappable over seeds; one :class:`~offrl_jax.trainers.Trainer` wraps it) and
reads :class:`~offrl_jax.data.Transitions`, the layout of :mod:`offrl_jax.fitted`, so FQI and these
methods train on one dataset:

* :mod:`.bc`: behaviour cloning, softmax (discrete) or Gaussian (continuous);
* :mod:`.cql`: conservative Q-learning, discrete, α fixed or tuned by the Lagrangian form;
* :mod:`.bcq`: discrete batch-constrained Q-learning (thresholded behaviour model);
* :mod:`.iql`: implicit Q-learning, discrete or continuous;
* :mod:`.td3_bc`: TD3+BC, continuous.

Each module has ``act(...)`` (the evaluation policy) and, where a Q-network exists,
``q_values(state, observations)``; :mod:`.common` holds the shared networks and the scan loop.
"""

from offrl_jax.offline import bc, bcq, common, cql, iql, td3_bc
from offrl_jax.offline.bc import BCConfig
from offrl_jax.offline.bcq import BCQConfig
from offrl_jax.offline.cql import CQLConfig
from offrl_jax.offline.iql import IQLConfig
from offrl_jax.offline.td3_bc import TD3BCConfig

__all__ = ["BCConfig", "BCQConfig", "CQLConfig", "IQLConfig", "TD3BCConfig", "bc", "bcq", "common", "cql",
           "iql", "td3_bc"]
