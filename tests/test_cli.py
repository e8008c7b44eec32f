"""The command line: demo end to end on a small problem, listing, argument errors."""

import numpy as np
import pytest

from offrl_jax import cli
from offrl_jax.envs.suite import make_problem, problem_value


def test_demo_with_fqe_q_hat(capsys):
    args = ["demo", "--env", "model_fail", "--num-episodes", "40", "--quiet", "--q-hat", "fqe"]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "exact J(target)" in out and "behaviour returns" in out and "DR (cross-fitted FQE)" in out


def test_demo_reports_exact_values():
    rows = cli.run_demo("model_fail", 200, None, 0, 0.95, quiet=True)
    assert any(r["method"].startswith("DR (cross-fitted tabular model)") for r in rows)
    exact = {r["method"]: r["estimate"] for r in rows}
    p = make_problem("model_fail")
    np.testing.assert_allclose(exact["exact J(target)"], float(problem_value(p)), rtol=1e-6)
    for r in rows[2:]:
        assert np.isfinite(r["estimate"])
        np.testing.assert_allclose(r["error"], r["estimate"] - exact["exact J(target)"], rtol=1e-6)


def test_envs_lists_problems(capsys):
    assert cli.main(["envs"]) == 0
    assert "model_win" in capsys.readouterr().out


def test_bad_arguments():
    with pytest.raises(SystemExit):
        cli.main(["demo", "--env", "nope"])
    with pytest.raises(SystemExit):
        cli.main(["demo", "--confidence", "1.5"])
    with pytest.raises(ValueError, match="num_episodes"):
        cli.run_demo("model_win", 1, None, 0, 0.95, quiet=True)
