"""Runs the lecture notebooks (code cells joined, executed in a fresh namespace) and checks results.

No jupyter is needed: each ``notebooks/*.ipynb`` is read as JSON, its code cells are joined and
``exec``-ed with matplotlib's Agg backend. Each notebook stores its key numbers in a ``results``
dict, checked here against exact values (closed forms, exact tabular solves) with stated
tolerances; all PRNG keys in the notebooks are fixed, so the checks are deterministic.
"""

import functools
import json
import os

import numpy as np
import pytest

os.environ.setdefault("MPLBACKEND", "Agg")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOKS = os.path.join(ROOT, "notebooks")
# Two-sided 95% Student-t quantile for N - 1 = 255 degrees of freedom (evaluate's DR interval).
T_975_255 = 1.9693


def _code(name: str) -> str:
    with open(os.path.join(NOTEBOOKS, name + ".ipynb"), encoding="utf-8") as f:
        nb = json.load(f)
    assert nb["nbformat"] == 4
    cells = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert cells, f"{name}: no code cells"
    return "\n\n".join("".join(c["source"]) for c in cells)


@functools.lru_cache(maxsize=None)
def run_notebook(name: str) -> dict:
    """Executes a notebook's code cells once per session; returns its ``results`` dict."""
    namespace = {"__name__": "__notebook__"}
    exec(compile(_code(name), name + ".ipynb", "exec"), namespace)
    try:
        import matplotlib.pyplot as plt

        plt.close("all")
    except ImportError:
        pass
    return namespace["results"]


def test_notebooks_are_built_from_the_script():
    import importlib.util

    spec = importlib.util.spec_from_file_location("build_notebooks", os.path.join(NOTEBOOKS, "build_notebooks.py"))
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    for name, source in build.NOTEBOOKS.items():
        with open(os.path.join(NOTEBOOKS, name + ".ipynb"), encoding="utf-8") as f:
            stored = json.load(f)
        fresh = build.notebook(source)
        assert [c["source"] for c in stored["cells"]] == [c["source"] for c in fresh["cells"]], name
        assert [c["cell_type"] for c in stored["cells"]] == [c["cell_type"] for c in fresh["cells"]], name


def test_off_policy_evaluation_notebook():
    res = run_notebook("01_off_policy_evaluation")
    gamma, horizon, n = 0.98, 16, 256
    scale = (1 - gamma**horizon) / (1 - gamma)
    # COBS Graph closed form (stochastic env): J = (p - 0.5)(1 - gamma^T)/(1 - gamma).
    np.testing.assert_allclose(res["true_value"], (0.2 - 0.5) * scale, rtol=1e-10)
    np.testing.assert_allclose(res["behavior_value"], (0.8 - 0.5) * scale, rtol=1e-10)
    np.testing.assert_allclose(res["mild_value"], (0.6 - 0.5) * scale, rtol=1e-10)
    est = res["estimates"]
    truth = res["true_value"]
    # DR is unbiased: within 3 standard errors (SE from its 95% Student-t interval).
    se_dr = (est["dr"]["upper"] - est["dr"]["lower"]) / (2 * T_975_255)
    assert abs(est["dr"]["estimate"] - truth) < 3 * se_dr
    assert abs(est["magic"]["estimate"] - truth) < 3 * se_dr
    assert abs(est["dm"]["estimate"] - truth) < 3 * se_dr
    for name in ("dr", "is", "pdis", "dm"):
        assert est[name]["interval"] == "student-t"
        assert est[name]["error"] == pytest.approx(est[name]["estimate"] - truth)
    # WIS is a convex combination of the logged returns.
    g_min, g_max = res["return_range"]
    assert g_min - 1e-9 <= est["wis"]["estimate"] <= g_max + 1e-9
    # The lecture's point: with a far target, IS is badly off compared with DR.
    assert abs(est["is"]["estimate"] - truth) > 5 * abs(est["dr"]["estimate"] - truth)
    # Lower bounds hold on this (fixed-key) dataset; HCOPE is the more conservative one.
    assert res["hcope_lower"] <= res["mild_value"]
    assert res["t_lower"] <= res["mild_value"]
    assert res["hcope_lower"] <= res["t_lower"]
    assert res["hcope_lower"] >= -scale
    # E_beta[rho^2] = sum_a pi(a)^2 / beta(a), and ESS_0 is about N / c.
    assert res["c_far"] == pytest.approx(0.2**2 / 0.8 + 0.8**2 / 0.2)
    assert res["c_mild"] == pytest.approx(0.6**2 / 0.8 + 0.4**2 / 0.2)
    for c, ess in ((res["c_far"], res["ess_far"]), (res["c_mild"], res["ess_mild"])):
        assert ess.shape == (horizon,)
        assert 0.7 < ess[0] / (n / c) < 1.3
        assert ess[3] < ess[0]
    assert res["ess_far"][3] < 0.05 * n


def test_marginalised_is_and_policy_gradient_notebook():
    res = run_notebook("02_marginalised_is_and_policy_gradient")
    truth = res["graph_true"]
    many = res["graph_many"]
    k = many["mis"].shape[0]
    for name in ("mis", "mis_pooled", "pdis"):
        # Mean over 32 independent datasets within 3 standard errors of the exact value.
        se = many[name].std(ddof=1) / np.sqrt(k)
        assert abs(many[name].mean() - truth) < 3 * se + 1e-9, name
    assert res["graph_rmse"]["mis"] < 0.25 * res["graph_rmse"]["pdis"]
    # Chain walk: MIS (stationary, from counts) is close to the exact discounted value.
    assert abs(res["chain_mis"] - res["chain_true"]) < 0.05 * res["chain_true"]
    assert abs(res["chain_mis_sn"] - res["chain_true"]) < 0.05 * res["chain_true"]
    assert np.isfinite(res["chain_ratio_err"])
    # Both gradient estimators are unbiased for the exact gradient (3 SE along its direction);
    # the causal (per-decision) one has the smaller variance.
    for name in ("pg_per_decision", "pg_trajectory"):
        r = res[name]
        assert abs(r["proj_mean"] - res["pg_exact_norm"]) < 3 * r["proj_se"], name
    assert res["pg_per_decision"]["total_var"] < res["pg_trajectory"]["total_var"]
    curve = res["pg_curve"]
    assert curve[1][1] > curve[0][1]                 # the first round improves the exact value
    assert curve[-1][2] - curve[-1][1] > 10.0        # then the estimate runs away from the truth


def test_linear_and_fitted_q_notebook():
    res = run_notebook("03_linear_and_fitted_q")
    assert res["lstdq_vs_model"] < 1e-8             # one-hot LSTDQ == certainty-equivalence Q^pi
    assert res["identity_gap"] < 1e-8               # LSTDQ == linear model route (Parr et al. 2008)
    assert res["lstdq_vs_true"] < 1.0
    assert res["lspi_hamming"][-1] == 0             # LSPI finds the optimal chain-walk policy
    assert res["lspi_value"] == pytest.approx(res["optimal_value"], rel=1e-10)
    assert abs(res["fqe_value"] - res["true_value"]) < 0.1 * res["true_value"]
    assert res["fqe_q_err"] < 0.5
    shift = res["shift"]
    gap = shift.fqi.thinks[:, -1] - shift.fqi.does[:, -1]
    assert gap[0] > gap[1]                           # narrow data: belief further from reality
    assert shift.fqi.does[1, -1] > shift.fqi.does[0, -1]
    assert abs(shift.fqi.does[1, -1] - shift.optimal[1]) < 1.0
    assert shift.coverage[0] < shift.coverage[1]


def test_doubly_robust_with_fitted_q_notebook():
    res = run_notebook("04_doubly_robust_with_fitted_q")
    gamma, horizon, n = 0.98, 16, 128
    truth = res["true_value"]
    # Deterministic COBS Graph: reward +1 w.p. pi(a_1) = 0.8 and -1 otherwise at every step.
    np.testing.assert_allclose(truth, (2 * 0.2 - 1) * (1 - gamma**horizon) / (1 - gamma), rtol=1e-10)
    est, var = res["estimates"], res["term_variance"]
    se = {k: np.sqrt(v / n) for k, v in var.items()}
    # Unbiased estimators within 3 standard errors (SE from their i.i.d. per-trajectory terms).
    assert abs(est["dr"]["estimate"] - truth) < 3 * se["DR"]
    assert abs(est["pdis"]["estimate"] - truth) < 3 * se["PDIS"]
    # WDR and MAGIC (consistent) within DR's 3 standard errors; FQE's direct method within 2%.
    assert abs(est["wdr"]["estimate"] - truth) < 3 * se["DR"]
    assert abs(est["magic"]["estimate"] - truth) < 3 * se["DR"]
    assert abs(est["dm"]["estimate"] - truth) < 0.02 * abs(truth)
    # The control variate: DR's term variance is below 1% of PDIS's; IS is off by >100 of its SEs.
    assert var["DR"] < 0.01 * var["PDIS"]
    assert abs(est["is"]["estimate"] - truth) > 100 * se["IS"]


def test_thinks_vs_does_notebook():
    res = run_notebook("05_thinks_vs_does")
    lin, opt = res["linear"], res["optimal_value"]
    assert res["does_check"] < 1e-9                       # "does" = an independent exact linear solve
    np.testing.assert_allclose(lin.optimal, opt, rtol=1e-10)
    np.testing.assert_allclose(lin.behavior, res["behavior_values"], rtol=1e-10)
    assert np.all(np.diff(lin.coverage) > 0) and lin.coverage[-1] == 1.0
    for curves in (lin.lspi, lin.fqi):
        assert np.all(curves.does <= opt + 1e-9)          # no policy beats J(pi*)
        gap = curves.thinks[:, -1] - curves.does[:, -1]
        assert gap[0] > 3.0 and gap[1] > 3.0              # narrow data: belief far above reality
        assert gap[-1] < gap[0] and gap[-1] < gap[1]
        assert abs(curves.does[-1, -1] - opt) < 0.05 * opt  # broad data: close to optimal
        assert curves.does[0, -1] < 0.5 * opt


def test_fixing_shift_notebook():
    import jax.numpy as jnp

    from offrl_jax.envs import value_iteration
    from offrl_jax.envs.suite import garnet

    res = run_notebook("06_fixing_shift")
    # Exact references computed here: J(pi*) of the Garnet and of the stitching gridworld
    # (gamma^(3n + L - 3) = 0.95^9 without slip), and the behaviour values.
    mdp = garnet(0, 20, 4, 3, gamma=0.9, reward_std=1.0, dtype=jnp.float64)
    opt = float(jnp.dot(mdp.initial, jnp.max(value_iteration(mdp).q_star, -1)))
    np.testing.assert_allclose(res["optimal"], opt, rtol=1e-5)
    np.testing.assert_allclose(res["stitching_optimal"], 0.95**9, rtol=1e-5)
    for v in (*res["behavior"].values(), *res["stitching_behavior"]):
        assert v < opt
    shift = res["shift"]
    for (method, data), (thinks, does) in shift.items():
        assert does <= opt + 1e-4, (method, data)          # no policy beats J(pi*)
        assert (method == "BC") == np.isnan(thinks)
    gap = {m: shift[(m, "narrow")][0] - shift[(m, "narrow")][1] for m in ("FQI", "CQL", "BCQ", "IQL")}
    assert gap["FQI"] > 2.0                                  # FQI on narrow data: belief far above reality
    for m in ("CQL", "BCQ", "IQL"):
        assert gap[m] < 0.5 * gap["FQI"], m                  # the fixes do not overestimate like FQI
    assert shift[("FQI", "broad")][1] > shift[("FQI", "narrow")][1]
    # Stitching: dynamic programming within the data reaches near J*; cloning does not.
    st, st_opt = res["stitching"], res["stitching_optimal"]
    for m in ("BCQ", "IQL"):
        assert st[m] >= 0.9 * st_opt and st[m] - st["BC"] > 0.15, m
    assert st["BC"] <= st_opt + 1e-6
