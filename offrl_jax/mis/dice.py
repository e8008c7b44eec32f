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

``d`` is the transition's discount (0 into a terminal state). The learner follows the package's
convention (:mod:`offrl_jax.core.learner`): a frozen :class:`DiceConfig`,
``make_learner(config, weight_net, critic_net) -> Learner(init, run, num_steps)`` whose ``run`` is
a ``lax.scan`` of simultaneous gradient descent (weights) / ascent (critic) steps with optax,
minibatches sampled inside jit, and ``make_train(...)(key, data) -> TrainResult``, which vmaps
over seeds. The data container is :class:`~offrl_jax.mis.dice_data.DiceData`.

See "DualDICE: Behavior-Agnostic Estimation of Discounted Stationary Distribution Corrections",
Nachum, Chow, Dai & Li 2019; "GenDICE: Generalized Offline Estimation of Stationary Values",
Zhang, Dai, Li & Schuurmans 2020; "GradientDICE: Rethinking Generalized Offline Estimation of
Stationary Values", Zhang, Liu & Whiteson 2020.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable, NamedTuple, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from offrl_jax.core.learner import Learner, config_field, train_from_learner
from offrl_jax.core.validation import check_choice, check_positive_float, check_positive_int, check_probability
from offrl_jax.data import CheckedTrain
from offrl_jax.mis.dice_data import DiceData
from offrl_jax.mis.estimators import mis_estimate

Array = Any

__all__ = [
    "METHODS",
    "DiceNetwork",
    "DiceConfig",
    "DiceState",
    "DiceMetrics",
    "DiceEstimate",
    "dualdice_lagrangian",
    "gendice_lagrangian",
    "gradientdice_lagrangian",
    "dice_weights",
    "dice_estimate",
    "make_learner",
    "make_train",
    "validate_data",
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
# Networks.
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


# ----------------------------------------------------------------------------------------------
# Learner: a frozen config, init / run, and a whole run (core.Learner convention).
# ----------------------------------------------------------------------------------------------
_OPTIMIZERS = {"adam": optax.adam, "optimistic_adam": optax.optimistic_adam, "sgd": optax.sgd}


@struct.dataclass
class DiceConfig:
    """Hyperparameters of a DICE run: frozen, hashable, static under jit, validated when built.

    Attributes:
      method: one of :data:`METHODS`.
      gamma: discount in [0, 1).
      weight_lr: learning rate of the weight player (zeta / tau).
      critic_lr: learning rate of the critic player (nu / f, u / eta).
      batch_size: transitions per step; ``None`` uses the whole dataset every step.
      initial_batch_size: initial states per step; ``None`` uses all of them.
      norm_penalty: λ of the normalisation term (GenDICE, GradientDICE).
      positivity: ``"square"`` or ``"softplus"``: how GenDICE keeps tau >= 0.
      optimizer: ``"adam"``, ``"optimistic_adam"`` (Adam on optimistic gradients, which damps
        the rotation of simultaneous descent-ascent on bilinear saddles) or ``"sgd"``.
      num_steps: number of updates ``train`` runs.

    Raises:
      ValueError: naming the field, for a value outside its range.
    """

    method: str = config_field("dualdice")
    gamma: float = config_field(0.99)
    weight_lr: float = config_field(1e-3)
    critic_lr: float = config_field(1e-3)
    batch_size: Optional[int] = config_field(256)
    initial_batch_size: Optional[int] = config_field(256)
    norm_penalty: float = config_field(1.0)
    positivity: str = config_field("square")
    optimizer: str = config_field("adam")
    num_steps: int = config_field(5000)

    def __post_init__(self):
        check_choice(self.method, "method", METHODS)
        check_probability(self.gamma, "gamma", high_open=True)
        check_positive_float(self.weight_lr, "weight_lr")
        check_positive_float(self.critic_lr, "critic_lr")
        check_positive_int(self.batch_size, "batch_size", allow_none=True)
        check_positive_int(self.initial_batch_size, "initial_batch_size", allow_none=True)
        lam = self.norm_penalty
        if isinstance(lam, bool) or not isinstance(lam, (int, float, np.integer, np.floating)) or not (
            np.isfinite(lam) and lam >= 0
        ):
            raise ValueError(f"norm_penalty: expected a finite number >= 0, found {lam!r}")
        check_choice(self.positivity, "positivity", ("square", "softplus"))
        check_choice(self.optimizer, "optimizer", tuple(_OPTIMIZERS))
        check_positive_int(self.num_steps, "num_steps")


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


def _take(values: Array, actions: Array) -> Array:
    return jnp.take_along_axis(values, actions[:, None], axis=-1)[:, 0]


def dice_weights(
    config: DiceConfig, weight_net: nn.Module, weight_params: Any, observations: Array, actions: Array
) -> Array:
    """Learned ratios w(s, a): the weight network at the taken actions (GenDICE: made >= 0).

    Args:
      config: the run's :class:`DiceConfig` (``method`` and ``positivity`` matter).
      weight_net: flax module ``obs [B, ...] -> [B, A]``.
      weight_params: its parameters (``state.weight_params``).
      observations: ``[B, ...]`` s.
      actions: ``[B]`` int a.

    Returns:
      ``[B]`` w(s, a).
    """
    x = _take(weight_net.apply(weight_params, observations), jnp.asarray(actions))
    if config.method != "gendice":
        return x
    return jnp.square(x) if config.positivity == "square" else jax.nn.softplus(x)


def _lagrangian(config, weight_net, critic_net, wp, cp, batch, init_obs, init_probs):
    obs, act, nxt, disc, next_probs = batch
    w = dice_weights(config, weight_net, wp, obs, act)
    c = _take(critic_net.apply(cp["net"], obs), act)
    c_next = jnp.sum(next_probs * critic_net.apply(cp["net"], nxt), -1)
    c_init = jnp.sum(init_probs * critic_net.apply(cp["net"], init_obs), -1)
    if config.method == "dualdice":
        loss = dualdice_lagrangian(w, c, c_next, c_init, disc, config.gamma)
    elif config.method == "gendice":
        loss = gendice_lagrangian(w, c, c_next, c_init, disc, config.gamma, cp["scalar"], config.norm_penalty)
    else:
        loss = gradientdice_lagrangian(w, c, c_next, c_init, disc, config.gamma, cp["scalar"], config.norm_penalty)
    return loss, w


def _sample(config: DiceConfig, key: Array, data: DiceData):
    """A minibatch of transitions and of initial states, uniform with replacement."""
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


def make_learner(config: DiceConfig, weight_net: nn.Module, critic_net: nn.Module) -> Learner:
    """A DICE method as a :class:`~offrl_jax.core.Learner` (``init``, ``run``, ``num_steps``).

    The weight network outputs zeta (DualDICE) or tau (GenDICE, squared or softplus-ed to stay
    non-negative; GradientDICE, unconstrained) per action; the critic outputs nu or f per action.
    GenDICE and GradientDICE add a scalar critic variable (u, eta). Each step samples a
    minibatch of transitions and initial states inside jit from the key carried in the state
    and takes one simultaneous step of the Lagrangian L: descent on the weights, ascent on the
    critic. ``run(state, data, n)`` is ``n`` steps under one ``lax.scan``.

    See "DualDICE", Nachum et al. 2019; "GenDICE", Zhang et al. 2020; "GradientDICE", Zhang,
    Liu & Whiteson 2020.

    Args:
      config: :class:`DiceConfig`.
      weight_net: flax module ``obs [B, ...] -> [B, A]`` for the weights.
      critic_net: flax module ``obs [B, ...] -> [B, A]`` for the critic.

    Returns:
      :class:`~offrl_jax.core.Learner` over :class:`DiceData`, with :class:`DiceState` states
      and :class:`DiceMetrics` ``[num_steps]`` metrics.
    """
    if not isinstance(config, DiceConfig):
        raise ValueError(f"config: expected a DiceConfig, found {type(config).__name__}")
    weight_opt = _OPTIMIZERS[config.optimizer](config.weight_lr)
    critic_opt = _OPTIMIZERS[config.optimizer](config.critic_lr)
    grad_fn = jax.value_and_grad(partial(_lagrangian, config, weight_net, critic_net), argnums=(0, 1), has_aux=True)

    def init(key: Array, data: DiceData) -> DiceState:
        k_w, k_c, k_run = jax.random.split(key, 3)
        wp = weight_net.init(k_w, data.observations[:1])
        cp = {"net": critic_net.init(k_c, data.observations[:1]), "scalar": jnp.zeros((), data.rewards.dtype)}
        return DiceState(wp, cp, weight_opt.init(wp), critic_opt.init(cp), k_run, jnp.zeros((), jnp.int32))

    def update(state: DiceState, data: DiceData):
        key, k_batch = jax.random.split(state.key)
        batch, rewards, init_obs, init_probs = _sample(config, k_batch, data)
        (loss, w), (g_w, g_c) = grad_fn(state.weight_params, state.critic_params, batch, init_obs, init_probs)
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
        return new, DiceMetrics(loss, jnp.mean(w), jnp.mean(w * rewards) / (1.0 - config.gamma))

    def run(state: DiceState, data: DiceData, num_steps: int):
        return jax.lax.scan(lambda st, _: update(st, data), state, None, length=num_steps)

    return Learner(init, run, config.num_steps)


def validate_data(
    config: DiceConfig, data: DiceData, weight_net: Optional[nn.Module] = None, critic_net: Optional[nn.Module] = None
) -> None:
    """Host checks of a DICE dataset before training (what ``make_train``'s ``train`` runs).

    Re-runs :meth:`DiceData.create`'s checks, so a container built by the raw constructor is
    checked too; with the networks given, a :class:`DiceNetwork` on integer observations also
    checks every observation index and its number of actions against the data.

    Raises:
      ValueError: naming the field, for a config that is not a :class:`DiceConfig`, data that
        are not :class:`DiceData`, NaN or inf in any field, discounts outside [0, 1],
        probability rows off the simplex, actions outside ``[0, A)``, or observations outside
        ``[0, num_observations)`` of a one-hot :class:`DiceNetwork`.
    """
    if not isinstance(config, DiceConfig):
        raise ValueError(f"config: expected a DiceConfig, found {type(config).__name__}")
    if not isinstance(data, DiceData):
        raise ValueError(f"data: expected a DiceData (see DiceData.create), found {type(data).__name__}")
    data.validate()
    na = np.shape(data.next_target_probs)[-1]
    for net_name, net in (("weight_net", weight_net), ("critic_net", critic_net)):
        if not isinstance(net, DiceNetwork):
            continue
        if net.num_actions != na:
            raise ValueError(f"{net_name}: num_actions = {net.num_actions}, but the data's target probabilities have A = {na}")
        size = net.num_observations
        if size is None:
            continue
        for f in ("observations", "next_observations", "initial_observations"):
            o = np.asarray(getattr(data, f))
            if o.dtype.kind not in "biu" and not np.all(o == np.round(o)):
                raise ValueError(f"data.{f}: {net_name} one-hot encodes integer observations, found {o.dtype} values")
            if o.min() < 0 or o.max() >= size:
                raise ValueError(
                    f"data.{f}: expected indices in [0, {size}) ({net_name}.num_observations), "
                    f"found range [{o.min()}, {o.max()}]"
                )


def make_train(config: DiceConfig, weight_net: nn.Module, critic_net: nn.Module) -> Callable:
    """A whole DICE run: ``train(key, data: DiceData) -> TrainResult(DiceState, DiceMetrics)``.

    ``config.num_steps`` steps of :func:`make_learner`'s ``run``; metrics are stacked
    ``[num_steps]``. ``train`` is a :class:`~offrl_jax.data.CheckedTrain`: ``train(key, data)``
    runs :func:`validate_data` on concrete data, then one cached jitted program;
    ``train.seeds(g)(keys, data)`` trains many seeds in one program, validated the same way.
    Inside a caller's own ``jax.jit``, e.g. ``jax.jit(jax.vmap(train, in_axes=(0, None)))(keys,
    data)`` (PureJaxRL's pattern), only shapes are checked: call ``validate_data`` first.

    Args:
      config: :class:`DiceConfig`.
      weight_net: flax module for the weights.
      critic_net: flax module for the critic.

    Returns:
      ``train(key, data)``.
    """
    train = train_from_learner(make_learner(config, weight_net, critic_net))
    return CheckedTrain(train, lambda data: validate_data(config, data, weight_net, critic_net))


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


def dice_estimate(config: DiceConfig, weight_net: nn.Module, weight_params: Any, data: DiceData) -> DiceEstimate:
    """MIS estimates of J from learned weights on every logged transition of ``data``.

    J_hat = (1/(1-gamma)) (1/M) Σ_m w(s_m, a_m) r_m and the self-normalised form
    (:func:`~offrl_jax.mis.mis_estimate` on the learned weights).

    See "DualDICE", Nachum, Chow, Dai & Li 2019 (Section 5).

    Args:
      config: the run's :class:`DiceConfig` (``gamma``, ``method``, ``positivity``).
      weight_net: the weight network.
      weight_params: its trained parameters (``state.weight_params``).
      data: :class:`DiceData` with ``M`` transitions.

    Returns:
      :class:`DiceEstimate`.
    """
    w = dice_weights(config, weight_net, weight_params, data.observations, data.actions)
    r = data.rewards.astype(w.dtype)
    return DiceEstimate(
        mis_estimate(w, r, None, config.gamma),
        mis_estimate(w, r, None, config.gamma, self_normalize=True),
        jnp.mean(w),
    )
