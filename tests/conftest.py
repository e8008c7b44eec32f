"""Test configuration: float64 for exact solvers, strict rank promotion."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from offrl_jax.data import Transitions
from offrl_jax.envs import TabularMDP

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")
if os.environ.get("OFFRL_TEST_FAST"):
    jax.config.update("jax_disable_most_optimizations", True)


@pytest.fixture
def key():
    return jax.random.key(0)


@pytest.fixture
def fast_compiles():
    """XLA with most optimisations off (as ``offrl-jax demo`` compiles) for programs that run once
    on little data, where compiling is most of the cost; float64 results agree to ~1e-15."""
    previous = jax.config.read("jax_disable_most_optimizations")
    jax.config.update("jax_disable_most_optimizations", True)
    yield
    jax.config.update("jax_disable_most_optimizations", previous)


# Small tabular problems with exact truths, shared by the linear, fitted and experiment tests.
def _random_mdp(seed, num_states=5, num_actions=3, gamma=0.9, terminal_last=False):
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(num_states), size=(num_states, num_actions))
    r = rng.normal(size=(num_states, num_actions))
    term = None
    if terminal_last:
        term = np.zeros(num_states, bool)
        term[-1] = True
        p[-1] = 0.0
        p[-1, :, -1] = 1.0
        r[-1] = 0.0
    d0 = rng.dirichlet(np.ones(num_states))
    return TabularMDP.create(p, r, d0, gamma, terminal=term, dtype=jnp.float64)


def _one_hot_table(num_states, num_actions):
    """[S, A, S*A] one-hot (s, a) features, block a*S + s (replicated per action)."""
    eye = np.eye(num_states * num_actions).reshape(num_actions, num_states, -1)
    return jnp.asarray(eye.transpose(1, 0, 2))


def enumerated_garnet(seed: int, num_states: int, num_actions: int, branching: int, gamma: float = 0.9):
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


@pytest.fixture
def random_mdp():
    return _random_mdp


@pytest.fixture
def one_hot_table():
    return _one_hot_table


@pytest.fixture(scope="session")
def make_enumerated():
    """The :func:`enumerated_garnet` builder (any size or seed)."""
    return enumerated_garnet


# ----------------------------------------------------------------------------------------------
# The heavier checks: `pytest` (the quick suite, about 6 minutes on 2 CPU cores) leaves them out;
# `pytest -m slow` runs them, and CI (.ci/run) runs both. Marked here in one place by node id
# prefix (besides the tests decorated with @pytest.mark.slow).
# ----------------------------------------------------------------------------------------------
SLOW = (
    "tests/sharding/test_sharding.py::test_eight_devices_sharded_equals_unsharded",
    "tests/sharding/test_sharding.py::test_two_processes_over_loopback_equal_one_process",
    "tests/test_notebooks.py",
    "tests/ope/test_robust_inputs.py::test_dtype_matrix_every_form_gives_the_float_answer[list]",
    "tests/ope/test_robust_inputs.py::test_dtype_matrix_every_form_gives_the_float_answer[mixed]",
    "tests/ope/test_robust_inputs.py::test_dtype_matrix_every_form_gives_the_float_answer[float16]",
    "tests/ope/test_robust_inputs.py::test_long_horizon_float32_within_1e4_of_float64",
    "tests/ope/test_robust_inputs.py::test_magic_refuses_one_trajectory",
    "tests/linear/test_dtypes.py::test_dtype_matrix_every_form_gives_the_float_answer[float16]",
    "tests/linear/test_dtypes.py::test_dtype_matrix_every_form_gives_the_float_answer[list]",
    "tests/linear/test_dtypes.py::test_dtype_matrix_every_form_gives_the_float_answer[mixed]",
    "tests/trainers/test_trainer_base.py::test_kill_during_save_never_loses_the_last_checkpoint",
    "tests/test_cli.py::test_demo_with_fqe_q_hat",
    "tests/fitted/test_control_fqe.py::test_fqe_matches_monte_carlo_and_separates_policies",
    "tests/fitted/test_control_fqe.py::test_fqe_value_jit_and_vmap_over_seeds_agree",
    "tests/trainers/test_fitted_trainers.py::test_vmapped_three_seeds_equal_separate_runs[continuous]",
    "tests/trainers/test_fitted_trainers.py::test_checkpoint_round_trip_resumes_bit_for_bit[continuous]",
    "tests/trainers/test_fitted_trainers.py::test_continuous_trainer_estimate_and_config_mismatch",
    "tests/trainers/test_fitted_trainers.py::test_trainer_deterministic_given_seed",
    "tests/pg/test_train.py::test_training_improves_exact_value_over_behaviour",
    "tests/ope/test_blocking.py::test_blocked_under_vmap",
    "tests/ope/test_doubly_robust.py::test_two_episodes_in_one_trace_equal_two_traces",
    "tests/ope/test_doubly_robust.py::test_long_horizon_float32_dr_and_wdr_stay_finite",
    "tests/ope/test_many.py::test_mis_k_policies_equal_single_calls",
    "tests/fitted/test_continuous.py::test_mlp_fqe_close_to_exact_j",
    "tests/mis/test_tabular.py::test_time_indexed_mis_on_suite",
    "tests/envs/test_control.py::test_graded_quality_and_mc_agrees_with_independent_rollouts",
    "tests/experiments/test_checkpoint_selection.py::test_checkpoints_end_where_make_train_ends",
    "tests/linear/test_dtypes.py::test_dtype_matrix_every_form_gives_the_float_answer[int32]",
    "tests/ope/test_magic.py::test_magic_jit_vmap_and_zero_weights",
    "tests/ope/test_magic.py::test_simplex_qp_matches_brute_force_and_scipy",
    "tests/fitted/test_train.py::test_vmap_over_seeds_equals_separate_runs",
    "tests/pg/test_train.py::test_make_train_mlp_improves_and_vmap_over_seeds_equals_separate_runs",
    "tests/trainers/test_trainer_base.py::test_train_vmap_seeds_and_trainer_agree",
    "tests/trainers/test_fitted_trainers.py::test_vmapped_three_seeds_equal_separate_runs[fqi]",
    "tests/trainers/test_fitted_trainers.py::test_checkpoint_round_trip_resumes_bit_for_bit[fqi]",
    "tests/mis/test_dice_trainer.py::test_vmapped_seeds_equal_separate_runs",
    "tests/experiments/test_accuracy.py::test_every_estimator_exact_on_a_constant_reward_problem",
    "tests/ope/test_blocking.py::test_blocked_equals_one_block_and_numpy_reference",
    "tests/ope/test_confidence.py::test_bootstrap_percentile_and_bca_match_numpy",
    "tests/test_cli_evaluate_continuous.py::test_continuous_actions_with_fqe_from_a_target_sampler",
    "tests/experiments/test_accuracy.py::test_control_run_every_estimator_near_the_exact_value",
    # Kept out of the quick suite to hold it near 6 minutes on 2 cores (each has quick siblings).
    "tests/ope/test_robust_inputs.py::test_dtype_matrix_every_form_gives_the_float_answer[int32]",
    "tests/experiments/test_accuracy.py::test_control_fqe_",
    "tests/experiments/test_fixing_shift.py::test_shift_table_rows",
    "tests/experiments/test_fixing_shift.py::test_fqi_on_full_coverage",
    "tests/experiments/test_fixing_shift.py::test_does_is_the_exact_value",
    "tests/test_cli_evaluate_continuous.py::test_vector_observations_with_neural_fqe",
    "tests/test_cli_evaluate_continuous.py::test_continuous_actions_with_estimated_gaussian",
    "tests/experiments/test_checkpoint_selection.py::test_dr_of_the_logging_rule",
)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.nodeid.startswith(SLOW):
            item.add_marker(pytest.mark.slow)
