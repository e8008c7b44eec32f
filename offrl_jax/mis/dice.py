"""DICE estimators of density ratios: DualDICE, GenDICE and GradientDICE as pure minimax losses.

Each method is a saddle-point problem min_{weights} max_{critic} L over two function
approximators of (s, a) (flax networks with one output per discrete action, or linear features;
:class:`DiceNetwork` with ``hidden_sizes=()`` on one-hot inputs is the tabular case). In this
module every Lagrangian is written so that the **weight player minimises** and the **critic player
maximises** (for DualDICE this is minus the paper's objective, whose roles are swapped). Targets
enter only through expectations over the next and initial actions, Σ_a π(a|s) f(s, a), which is
exact for discrete actions. With d^D the data distribution and gamma < 1:

* DualDICE (Nachum, Chow, Dai & Li 2019), zeta the weights and nu the critic:
  L = E_D[zeta²/2 - (nu(s,a) - gamma d nu(s',π)) zeta] + (1-gamma) E_{mu0 π}[nu(s0,a0)];
  at the saddle zeta = nu - B^π nu = d^π / d^D.
* GenDICE (Zhang, Dai, Li & Schuurmans 2020), tau >= 0 the weights, (f, u) the critic:
  L = (1-gamma) E_{mu0 π}[f] + gamma E_D[tau d f(s',π)] - E_D[tau (f + f²/4)]
      + λ (E_D[u tau - u] - u²/2).
* GradientDICE (Zhang, Liu & Whiteson 2020), tau the weights, (f, eta) the critic:
  L = (1-gamma) E_{mu0 π}[f] + gamma E_D[tau d f(s',π)] - E_D[tau f] - E_D[f²]/2
      + λ (E_D[eta tau - eta] - eta²/2).

``d`` is the transition's discount (0 into a terminal state). The training loop is a
``lax.scan`` of simultaneous gradient descent (weights) / ascent (critic) steps with optax,
minibatches sampled inside jit; ``make_train(...)(key, data)`` vmaps over seeds.

See "DualDICE: Behavior-Agnostic Estimation of Discounted Stationary Distribution Corrections",
Nachum, Chow, Dai & Li 2019; "GenDICE: Generalized Offline Estimation of Stationary Values",
Zhang, Dai, Li & Schuurmans 2020; "GradientDICE: Rethinking Generalized Offline Estimation of
Stationary Values", Zhang, Liu & Whiteson 2020.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from offrl_jax.core.validation import check_finite, check_mask
from offrl_jax.data import Trajectories

Array = Any

__all__ = [
    "METHODS",
    "DiceNetwork",
    "DiceData",
    "DiceConfig",
    "DiceState",
    "DiceMetrics",
    "DiceLearner",
    "DiceEstimate",
    "dice_estimate",
    "dualdice_lagrangian",
    "gendice_lagrangian",
    "gradientdice_lagrangian",
    "dice_data_from_trajectories",
    "make_dice_learner",
    "make_train",
    "validate_dice_config",
]

METHODS = ("dualdice", "gendice", "gradientdice")


# ----------------------------------------------------------------------------------------------
# Lagrangians on function values (weight player minimises, critic player maximises).
# ----------------------------------------------------------------------------------------------
def dualdice_lagrangian(
    zeta: Array, nu: Array, nu_next: Array, nu_initial: Array, discounts: Array, gamma: float
) -> Array:
    """DualDICE saddle objective (chi-square f), in weight-minimises form.

    L(zeta, nu) = E_D[zeta²/2 - (nu(s,a) - gamma d nu(s',π)) zeta] + (1-gamma) E_{mu0 π}[nu];
    min over zeta of max over nu gives zeta* = d^π / d^D (the paper's min_nu max_zeta of -L).

    See "DualDICE: Behavior-Agnostic Estimation of Discounted Stationary Distribution
    Corrections", Nachum, Chow, Dai & Li 2019 (Eq. 13 with f(x) = x²/2).

    Args:
      zeta: ``[B]`` weights zeta(s, a).
      nu: ``[B]`` critic nu(s, a).
      nu_next: ``[B]`` Σ_a' π(a'|s') nu(s', a').
      nu_initial: ``[B0]`` Σ_a π(a|s0) nu(s0, a) at initial states.
      discounts: ``[B]`` d, 0 where s' is terminal.
      gamma: discount in [0, 1).

    Returns:
      Scalar L.
    """
    residual = nu - gamma * discounts * nu_next
    return jnp.mean(0.5 * zeta**2 - residual * zeta) + (1.0 - gamma) * jnp.mean(nu_initial)


def gendice_lagrangian(
    tau: Array, f: Array, f_next: Array, f_initial: Array, discounts: Array, gamma: float, u: Array, lam: float
) -> Array:
    """GenDICE chi-square saddle objective with the normalisation penalty.

    L = (1-gamma) E_{mu0 π}[f] + gamma E_D[tau d f(s',π)] - E_D[tau (f + f²/4)]
        + lam (E_D[u tau - u] - u²/2); min over tau >= 0, max over (f, u). The max over f is the
    chi-square divergence between the flow-transported distribution and d^D tau; the max over u
    is lam (E_D[tau] - 1)²/2.

    See "GenDICE: Generalized Offline Estimation of Stationary Values", Zhang, Dai, Li &
    Schuurmans 2020.

    Args:
      tau: ``[B]`` non-negative weights tau(s, a).
      f: ``[B]`` critic f(s, a).
      f_next: ``[B]`` Σ_a' π(a'|s') f(s', a').
      f_initial: ``[B0]`` Σ_a π(a|s0) f(s0, a).
      discounts: ``[B]`` d.
      gamma: discount in [0, 1).
      u: scalar dual variable of the normalisation.
      lam: penalty weight λ >= 0.

    Returns:
      Scalar L.
    """
    main = (1.0 - gamma) * jnp.mean(f_initial) + jnp.mean(gamma * discounts * tau * f_next - tau * (f + 0.25 * f**2))
    return main + lam * (jnp.mean(u * tau - u) - 0.5 * u**2)


def gradientdice_lagrangian(
    tau: Array, f: Array, f_next: Array, f_initial: Array, discounts: Array, gamma: float, eta: Array, lam: float
) -> Array:
    """GradientDICE saddle objective (linear in tau, convex-concave for linear tau and f).

    L = (1-gamma) E_{mu0 π}[f] + gamma E_D[tau d f(s',π)] - E_D[tau f] - E_D[f²]/2
        + lam (E_D[eta tau - eta] - eta²/2); min over tau, max over (f, eta).

    See "GradientDICE: Rethinking Generalized Offline Estimation of Stationary Values", Zhang,
    Liu & Whiteson 2020.

    Args:
      tau: ``[B]`` weights tau(s, a) (unconstrained).
      f: ``[B]`` critic f(s, a).
      f_next: ``[B]`` Σ_a' π(a'|s') f(s', a').
      f_initial: ``[B0]`` Σ_a π(a|s0) f(s0, a).
      discounts: ``[B]`` d.
      gamma: discount in [0, 1).
      eta: scalar dual variable of the normalisation.
      lam: penalty weight λ >= 0.

    Returns:
      Scalar L.
    """
    main = (1.0 - gamma) * jnp.mean(f_initial) + jnp.mean(gamma * discounts * tau * f_next - tau * f - 0.5 * f**2)
    return main + lam * (jnp.mean(eta * tau - eta) - 0.5 * eta**2)


# ----------------------------------------------------------------------------------------------
# Networks and data.
# ----------------------------------------------------------------------------------------------
class DiceNetwork(nn.Module):
    """Function of (s, a) with one output per discrete action: g(s, ·) ∈ R^A.

    With ``num_observations`` set, integer observations are one-hot encoded; with
    ``hidden_sizes=()`` and ``use_bias=False`` this is exactly a table g(s, a) = W[s, a] (linear
    in one-hot state-action features). Float feature vectors with ``hidden_sizes=()`` give a
    linear-feature model.

    Attributes:
      num_actions: A.
      hidden_sizes: hidden-layer widths (``()``: linear).
      num_observations: number of integer observations (one-hot input), or None for features.
      use_bias: bias terms in the layers.
      activation: hidden nonlinearity.
      dtype: parameter and computation dtype.
    """

    num_actions: int
    hidden_sizes: Sequence[int] = (64, 64)
    num_observations: Optional[int] = None
    use_bias: bool = True
    activation: Callable[[Array], Array] = nn.relu
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, obs: Array) -> Array:
        """Args: obs ``[..., D]`` floats or ``[...]`` ints. Returns ``[..., A]``."""
        if self.num_observations is not None:
            x = nn.one_hot(obs, self.num_observations, dtype=self.dtype)
        else:
            x = jnp.asarray(obs, self.dtype)
        for width in self.hidden_sizes:
            x = self.activation(nn.Dense(width, use_bias=self.use_bias, dtype=self.dtype, param_dtype=self.dtype)(x))
        return nn.Dense(self.num_actions, use_bias=self.use_bias, dtype=self.dtype, param_dtype=self.dtype)(x)


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
        return cls(**out)


def dice_data_from_trajectories(trajectories: Trajectories, target_policy: Array, use_states: bool = False) -> DiceData:
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
    obs, nxt = np.asarray(obs), np.asarray(nxt)
    if pi.ndim != 2 or obs[mask].max() >= pi.shape[0] or nxt[mask].max() >= pi.shape[0]:
        raise ValueError(f"target_policy: expected [O, A] covering every observation index, found {list(pi.shape)}")
    dtype = np.asarray(trajectories.rewards).dtype
    pi = pi.astype(dtype)
    first = mask[:, 0]
    return DiceData.create(
        observations=obs[mask],
        actions=np.asarray(trajectories.actions)[mask],
        rewards=np.asarray(trajectories.rewards)[mask],
        next_observations=nxt[mask],
        discounts=np.asarray(trajectories.discounts)[mask],
        next_target_probs=pi[nxt[mask]],
        initial_observations=obs[:, 0][first],
        initial_target_probs=pi[obs[:, 0][first]],
    )


# ----------------------------------------------------------------------------------------------
# Learner: init / update pair, and a whole run as a lax.scan.
# ----------------------------------------------------------------------------------------------
class DiceConfig(NamedTuple):
    """Hyperparameters (hashable, static under jit).

    Attributes:
      method: one of :data:`METHODS`.
      gamma: discount in [0, 1).
      weight_lr: Adam learning rate of the weight player (zeta / tau).
      critic_lr: Adam learning rate of the critic player (nu / f, u / eta).
      batch_size: transitions per step; ``None`` uses the whole dataset every step.
      initial_batch_size: initial states per step; ``None`` uses all of them.
      norm_penalty: λ of the normalisation term (GenDICE, GradientDICE).
      positivity: ``"square"`` or ``"softplus"``: how GenDICE keeps tau >= 0.
      optimizer: ``"adam"``, ``"optimistic_adam"`` (Adam on optimistic gradients, which damps
        the rotation of simultaneous descent-ascent on bilinear saddles) or ``"sgd"``.
    """

    method: str = "dualdice"
    gamma: float = 0.99
    weight_lr: float = 1e-3
    critic_lr: float = 1e-3
    batch_size: Optional[int] = 256
    initial_batch_size: Optional[int] = 256
    norm_penalty: float = 1.0
    positivity: str = "square"
    optimizer: str = "adam"


_OPTIMIZERS = {"adam": optax.adam, "optimistic_adam": optax.optimistic_adam, "sgd": optax.sgd}


class DiceState(struct.PyTreeNode):
    """Parameters, optimiser states, PRNG key and step counter of a DICE run."""

    weight_params: Any
    critic_params: Any
    weight_opt_state: Any
    critic_opt_state: Any
    key: Array
    step: Array


class DiceMetrics(NamedTuple):
    """Per-step metrics (stacked ``[num_steps]`` by the scan).

    Attributes:
      loss: the Lagrangian L on the minibatch (weight player minimises it).
      weight_mean: E_batch[w], which tends to 1 without terminal transitions.
      estimate: batch (1/(1-gamma)) E_batch[w r].
    """

    loss: Array
    weight_mean: Array
    estimate: Array


class DiceLearner(NamedTuple):
    """Pure functions of one DICE configuration.

    Attributes:
      init: ``(key, data) -> DiceState``.
      update: ``(state, data) -> (state, DiceMetrics)``, one descent/ascent step.
      weights: ``(weight_params, observations, actions) -> [B]`` learned w(s, a).
    """

    init: Callable
    update: Callable
    weights: Callable


def validate_dice_config(config: DiceConfig) -> None:
    """Raises ``ValueError`` naming the field for a bad :class:`DiceConfig`."""
    if config.method not in METHODS:
        raise ValueError(f"method: expected one of {METHODS}, found {config.method!r}")
    if not (0.0 <= float(config.gamma) < 1.0):
        raise ValueError(f"gamma: expected a discount in [0, 1), found {config.gamma}")
    for f in ("weight_lr", "critic_lr"):
        v = getattr(config, f)
        if not (np.isfinite(v) and v > 0):
            raise ValueError(f"{f}: expected a positive learning rate, found {v}")
    for f in ("batch_size", "initial_batch_size"):
        v = getattr(config, f)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1):
            raise ValueError(f"{f}: expected a positive int or None, found {v!r}")
    if not (np.isfinite(config.norm_penalty) and config.norm_penalty >= 0):
        raise ValueError(f"norm_penalty: expected a non-negative float, found {config.norm_penalty}")
    if config.positivity not in ("square", "softplus"):
        raise ValueError(f"positivity: expected 'square' or 'softplus', found {config.positivity!r}")
    if config.optimizer not in _OPTIMIZERS:
        raise ValueError(f"optimizer: expected one of {tuple(_OPTIMIZERS)}, found {config.optimizer!r}")


def _take(values: Array, actions: Array) -> Array:
    return jnp.take_along_axis(values, actions[:, None], axis=-1)[:, 0]


def make_dice_learner(config: DiceConfig, weight_net: nn.Module, critic_net: nn.Module) -> DiceLearner:
    """Builds the ``init`` / ``update`` pair of a DICE method (optax's pattern).

    The weight network outputs zeta (DualDICE) or tau (GenDICE, squared or softplus-ed to stay
    non-negative; GradientDICE, unconstrained) per action; the critic outputs nu or f per action.
    GenDICE and GradientDICE add a scalar critic variable (u, eta). Each ``update`` samples a
    minibatch of transitions and initial states (uniformly, with replacement) inside jit and
    takes one simultaneous step: Adam descent on the weights, Adam ascent on the critic.

    See "DualDICE", Nachum et al. 2019; "GenDICE", Zhang et al. 2020; "GradientDICE", Zhang,
    Liu & Whiteson 2020.

    Args:
      config: :class:`DiceConfig` (validated here).
      weight_net: flax module ``obs [B, ...] -> [B, A]`` for the weights.
      critic_net: flax module ``obs [B, ...] -> [B, A]`` for the critic.

    Returns:
      :class:`DiceLearner`.
    """
    validate_dice_config(config)
    weight_opt = _OPTIMIZERS[config.optimizer](config.weight_lr)
    critic_opt = _OPTIMIZERS[config.optimizer](config.critic_lr)
    gamma = config.gamma

    def positive(x):
        if config.method != "gendice":
            return x
        return jnp.square(x) if config.positivity == "square" else jax.nn.softplus(x)

    def weights(weight_params, observations, actions):
        return positive(_take(weight_net.apply(weight_params, observations), actions))

    def init(key, data: DiceData) -> DiceState:
        k_w, k_c, k_run = jax.random.split(key, 3)
        wp = weight_net.init(k_w, data.observations[:1])
        cp = {"net": critic_net.init(k_c, data.observations[:1]), "scalar": jnp.zeros((), data.rewards.dtype)}
        return DiceState(wp, cp, weight_opt.init(wp), critic_opt.init(cp), k_run, jnp.zeros((), jnp.int32))

    def lagrangian(wp, cp, batch, init_obs, init_probs):
        obs, act, nxt, disc, next_probs = batch
        w = weights(wp, obs, act)
        c_all = critic_net.apply(cp["net"], obs)
        c = _take(c_all, act)
        c_next = jnp.sum(next_probs * critic_net.apply(cp["net"], nxt), -1)
        c_init = jnp.sum(init_probs * critic_net.apply(cp["net"], init_obs), -1)
        if config.method == "dualdice":
            loss = dualdice_lagrangian(w, c, c_next, c_init, disc, gamma)
        elif config.method == "gendice":
            loss = gendice_lagrangian(w, c, c_next, c_init, disc, gamma, cp["scalar"], config.norm_penalty)
        else:
            loss = gradientdice_lagrangian(w, c, c_next, c_init, disc, gamma, cp["scalar"], config.norm_penalty)
        return loss, w

    def sample(key, data: DiceData):
        k1, k2 = jax.random.split(key)
        if config.batch_size is None:
            idx = jnp.arange(data.size)
        else:
            idx = jax.random.randint(k1, (config.batch_size,), 0, data.size)
        n0 = data.initial_observations.shape[0]
        if config.initial_batch_size is None:
            idx0 = jnp.arange(n0)
        else:
            idx0 = jax.random.randint(k2, (config.initial_batch_size,), 0, n0)
        batch = (data.observations[idx], data.actions[idx], data.next_observations[idx], data.discounts[idx],
                 data.next_target_probs[idx])
        return batch, data.rewards[idx], data.initial_observations[idx0], data.initial_target_probs[idx0]

    def update(state: DiceState, data: DiceData):
        key, k_batch = jax.random.split(state.key)
        batch, rewards, init_obs, init_probs = sample(k_batch, data)
        (loss, w), (g_w, g_c) = jax.value_and_grad(lagrangian, argnums=(0, 1), has_aux=True)(
            state.weight_params, state.critic_params, batch, init_obs, init_probs
        )
        g_c = jax.tree.map(jnp.negative, g_c)  # the critic ascends
        up_w, wos = weight_opt.update(g_w, state.weight_opt_state, state.weight_params)
        up_c, cos = critic_opt.update(g_c, state.critic_opt_state, state.critic_params)
        new = DiceState(
            optax.apply_updates(state.weight_params, up_w),
            optax.apply_updates(state.critic_params, up_c),
            wos,
            cos,
            key,
            state.step + 1,
        )
        metrics = DiceMetrics(loss, jnp.mean(w), jnp.mean(w * rewards) / (1.0 - gamma))
        return new, metrics

    return DiceLearner(init, update, weights)


def make_train(config: DiceConfig, weight_net: nn.Module, critic_net: nn.Module, num_steps: int) -> Callable:
    """A whole DICE run as one pure function ``train(key, data) -> (DiceState, DiceMetrics)``.

    ``num_steps`` updates of :func:`make_dice_learner` under ``lax.scan``; metrics are stacked
    ``[num_steps]``. ``jax.jit(jax.vmap(train, in_axes=(0, None)))(keys, data)`` trains many
    seeds in one program (PureJaxRL's pattern).

    Args:
      config: :class:`DiceConfig`.
      weight_net: flax module for the weights.
      critic_net: flax module for the critic.
      num_steps: number of updates (static int).

    Returns:
      ``train(key, data)``.
    """
    if isinstance(num_steps, bool) or not isinstance(num_steps, (int, np.integer)) or num_steps < 1:
        raise ValueError(f"num_steps: expected a positive int, found {num_steps!r}")
    learner = make_dice_learner(config, weight_net, critic_net)

    def train(key, data: DiceData):
        state = learner.init(key, data)
        return jax.lax.scan(lambda s, _: learner.update(s, data), state, None, length=int(num_steps))

    return train


class DiceEstimate(NamedTuple):
    """Value estimates from learned weights over a dataset.

    Attributes:
      estimate: (1/(1-gamma)) mean_m w_m r_m.
      self_normalized: (1/(1-gamma)) Σ w_m r_m / Σ w_m.
      weight_mean: mean_m w_m (1 when the learned ratios are normalised).
    """

    estimate: Array
    self_normalized: Array
    weight_mean: Array


def dice_estimate(learner: DiceLearner, weight_params: Any, data: DiceData, gamma: float) -> DiceEstimate:
    """MIS estimates of J from learned weights on every logged transition of ``data``.

    J_hat = (1/(1-gamma)) (1/M) Σ_m w(s_m, a_m) r_m and the self-normalised form.

    See "DualDICE", Nachum, Chow, Dai & Li 2019 (Section 5).

    Args:
      learner: the :class:`DiceLearner` that trained ``weight_params``.
      weight_params: the weight network's parameters.
      data: :class:`DiceData` with ``M`` transitions.
      gamma: discount in [0, 1).

    Returns:
      :class:`DiceEstimate`.
    """
    w = learner.weights(weight_params, data.observations, data.actions)
    r = data.rewards.astype(w.dtype)
    total = jnp.sum(w)
    sn = jnp.where(total != 0, jnp.sum(w * r) / jnp.where(total != 0, total, 1.0), 0.0)
    return DiceEstimate(jnp.mean(w * r) / (1.0 - gamma), sn / (1.0 - gamma), jnp.mean(w))
