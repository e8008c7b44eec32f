"""The DICE estimators' data: logged transitions, initial states and target probabilities.

:class:`DiceData` holds what the DICE Lagrangians of :mod:`offrl_jax.mis.dice` average over: the
logged transitions (s, a, r, s', d), the target's action probabilities pi(.|s') at the successors
and samples of the initial state s_0 with pi(.|s_0), so that every expectation over the target's
next and initial actions is an exact sum over actions. :func:`dice_data_from_trajectories`
builds it from padded tabular :class:`~offrl_jax.data.Trajectories`.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np
from flax import struct

from offrl_jax.core.dtypes import as_float, float_inputs, input_dtype
from offrl_jax.core.validation import check_finite, check_mask
from offrl_jax.data import Trajectories
from offrl_jax.mis.tabular import _check_index, _field_names, _where_real

Array = Any

__all__ = ["DiceData", "dice_data_from_trajectories"]


@struct.dataclass
class DiceData:
    """Logged transitions plus initial states, with target-policy probabilities for expectations.

    Attributes:
      observations: ``[M, ...]`` s_m.
      actions: ``[M]`` int a_m.
      rewards: ``[M]`` r_m.
      next_observations: ``[M, ...]`` s'_m.
      discounts: ``[M]`` 0 where s'_m is terminal, else 1.
      next_target_probs: ``[M, A]`` π(·|s'_m).
      initial_observations: ``[N0, ...]`` samples s_0 ~ mu0.
      initial_target_probs: ``[N0, A]`` π(·|s_0).
    """

    observations: Array
    actions: Array
    rewards: Array
    next_observations: Array
    discounts: Array
    next_target_probs: Array
    initial_observations: Array
    initial_target_probs: Array

    @property
    def size(self) -> int:
        return self.rewards.shape[0]

    @classmethod
    def create(cls, **fields: Array) -> "DiceData":
        """Validates on the host and builds the container.

        Raises:
          ValueError: naming the field, for missing fields, mismatched leading sizes, NaNs,
            discounts outside [0, 1], probability rows not on the simplex, or empty data.
        """
        names = [f for f in cls.__dataclass_fields__]
        for f in names:
            if fields.get(f) is None:
                raise ValueError(f"{f}: required field is missing")
        floats = ("rewards", "discounts", "next_target_probs", "initial_target_probs")
        fields = dict(fields, **dict(zip(floats, float_inputs([fields[f] for f in floats], floats))))
        for f in ("observations", "actions", "next_observations", "initial_observations"):
            input_dtype(fields[f], f)  # real numeric (ValueError naming the field otherwise)
        arrs = {f: check_finite(fields[f], f) for f in names}
        m = arrs["rewards"].shape[:1]
        if arrs["rewards"].ndim != 1 or m[0] == 0:
            raise ValueError(f"rewards: expected shape [M] with M >= 1, found {list(arrs['rewards'].shape)}")
        for f in ("observations", "actions", "next_observations", "discounts", "next_target_probs"):
            if arrs[f].shape[:1] != m:
                raise ValueError(f"{f}: expected leading size {m[0]} (as rewards), found shape {list(arrs[f].shape)}")
        if np.any((arrs["discounts"] < 0) | (arrs["discounts"] > 1)):
            raise ValueError("discounts: expected values in [0, 1]")
        na = arrs["next_target_probs"].shape[-1]
        n0 = arrs["initial_observations"].shape[:1]
        if n0[0] == 0:
            raise ValueError("initial_observations: empty; expected at least one initial state")
        if arrs["initial_target_probs"].shape != n0 + (na,):
            raise ValueError(
                f"initial_target_probs: expected shape {[n0[0], na]}, found {list(arrs['initial_target_probs'].shape)}"
            )
        for f in ("next_target_probs", "initial_target_probs"):
            p = arrs[f]
            if p.ndim != 2 or np.any(p < 0) or np.any(p > 1) or not np.allclose(p.sum(-1), 1.0, atol=1e-5):
                raise ValueError(f"{f}: expected [*, A] rows of probabilities summing to 1")
        a = arrs["actions"]
        if a.ndim != 1 or np.any(a < 0) or np.any(a >= na) or not np.all(a == np.round(a)):
            raise ValueError(f"actions: expected [M] integer actions in [0, {na})")
        if arrs["observations"].shape[1:] != arrs["next_observations"].shape[1:] or (
            arrs["observations"].shape[1:] != arrs["initial_observations"].shape[1:]
        ):
            raise ValueError("next_observations/initial_observations: expected the same trailing shape as observations")
        out = {f: jnp.asarray(v) for f, v in arrs.items()}
        out["actions"] = out["actions"].astype(jnp.int32)
        out.update({f: fields[f] for f in floats})
        return cls(**out)

    def validate(self) -> "DiceData":
        """Re-runs :meth:`create`'s checks on this container (e.g. one built by the raw
        constructor); returns it unchanged.

        Raises:
          ValueError: naming the field, as :meth:`create`.
        """
        DiceData.create(**{f: getattr(self, f) for f in self.__dataclass_fields__})
        return self


def dice_data_from_trajectories(
    trajectories: Trajectories, target_policy: Array, *, use_states: bool = False
) -> DiceData:
    """:class:`DiceData` from padded tabular trajectories (host-side; padding dropped).

    Initial states are each trajectory's first observation; π(·|s') comes from the table.

    Args:
      trajectories: :class:`~offrl_jax.data.Trajectories` with integer observations.
      target_policy: ``[O, A]`` π over observations (or over true states with ``use_states``).
      use_states: use the ``states``/``next_states`` fields (aliased MDPs).

    Returns:
      :class:`DiceData` (floats in the rewards' dtype).
    """
    mask = check_mask(trajectories.mask) > 0
    obs, nxt = trajectories.observations, trajectories.next_observations
    if use_states:
        if trajectories.states is None or trajectories.next_states is None:
            raise ValueError("trajectories: use_states=True needs the states/next_states fields, found None")
        obs, nxt = trajectories.states, trajectories.next_states
    pi = check_finite(target_policy, "target_policy")
    if pi.ndim != 2 or 0 in pi.shape:
        raise ValueError(f"target_policy: expected an [O, A] table, found shape {list(pi.shape)}")
    names = _field_names(use_states, "trajectories")
    rows, cols = " (the rows of target_policy [O, A])", " (the columns of target_policy [O, A])"
    obs = _check_index(_where_real(obs, mask), names[0], pi.shape[0], what=rows).astype(np.int32)
    nxt = _check_index(_where_real(nxt, mask), names[2], pi.shape[0], what=rows).astype(np.int32)
    _check_index(_where_real(trajectories.actions, mask), names[1], pi.shape[1], what=cols)
    dtype = np.dtype(as_float(trajectories.rewards, "trajectories.rewards").dtype)
    pi = pi.astype(dtype)
    first = mask[:, 0]
    return DiceData.create(
        observations=obs[mask],
        actions=np.asarray(trajectories.actions)[mask],
        rewards=np.asarray(trajectories.rewards)[mask].astype(dtype),
        next_observations=nxt[mask],
        discounts=np.asarray(trajectories.discounts)[mask],
        next_target_probs=pi[nxt[mask]],
        initial_observations=obs[:, 0][first],
        initial_target_probs=pi[obs[:, 0][first]],
    )
