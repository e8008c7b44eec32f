"""Labelled tabular MIS estimates for summary tables (the ``offrl-jax demo`` rows).

Presentation only: the estimators are :func:`offrl_jax.mis.tabular_mis` and
:func:`offrl_jax.mis.tabular_time_mis`; this module names their results.
"""

from __future__ import annotations

from typing import Any, List, Tuple

from offrl_jax.data import Trajectories
from offrl_jax.mis import tabular_mis, tabular_time_mis

Array = Any

__all__ = ["mis_rows"]


def mis_rows(
    trajectories: Trajectories,
    target_policy: Array,
    gamma: float,
    finite_horizon: bool,
    use_states: bool = False,
) -> List[Tuple[str, float]]:
    """Named tabular MIS estimates for a summary table (the caller compares with the truth).

    ``finite_horizon=True``: the time-indexed estimators of :func:`offrl_jax.mis.tabular_time_mis`
    (per-step and pooled transition models), which estimate E_pi[sum_{t<T} gamma^t r_t] with
    T = ``trajectories.max_length`` (use them when the data's horizon is the problem's horizon).
    ``finite_horizon=False``: the stationary discounted estimator of
    :func:`offrl_jax.mis.tabular_mis` and its self-normalised form, which estimate the
    infinite-horizon J(pi) (needs gamma < 1).

    Args:
      trajectories: padded :class:`~offrl_jax.data.Trajectories`.
      target_policy: ``[S, A]`` pi over observations (or true states with ``use_states``).
      gamma: discount.
      finite_horizon: which target (see above).
      use_states: index by the true ``states`` fields (aliased MDPs).

    Returns:
      List of ``(row name, estimate)``.
    """
    if finite_horizon:
        rows = []
        for name, pooled in (("MIS (tabular, time-indexed)", False), ("MIS (tabular, time-indexed, pooled)", True)):
            res = tabular_time_mis(trajectories, target_policy, gamma, pooled=pooled, use_states=use_states)
            rows.append((name, float(res.estimate)))
        return rows
    res = tabular_mis(trajectories, target_policy, gamma, use_states=use_states)
    return [
        ("MIS (tabular, stationary)", float(res.estimate)),
        ("MIS (tabular, stationary, self-normalised)", float(res.self_normalized)),
    ]
