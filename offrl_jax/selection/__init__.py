"""Off-policy selection: metrics that score how estimates of many policies' values rank and pick.

:mod:`.metrics` (pure array functions on ``[K]`` estimates and true values, jit- and
vmap-safe): relative error and relative RMSE (Voloshin et al. 2019), MSE/RMSE and their min-max
normalised forms, Spearman's rank correlation, regret@k and precision@k (Fu et al. 2021) and
SharpeRatio@k (Kiyohara et al. 2023).
"""

from offrl_jax.selection.metrics import (
    average_ranks,
    mean_squared_error,
    precision_at_k,
    regret_at_k,
    relative_error,
    relative_rmse,
    root_mean_squared_error,
    sharpe_ratio_at_k,
    spearman_rank_correlation,
    top_k,
)

__all__ = [
    "average_ranks",
    "mean_squared_error",
    "precision_at_k",
    "regret_at_k",
    "relative_error",
    "relative_rmse",
    "root_mean_squared_error",
    "sharpe_ratio_at_k",
    "spearman_rank_correlation",
    "top_k",
]
