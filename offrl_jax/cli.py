"""Command line: ``offrl-jax demo`` (the main job), ``offrl-jax envs``, ``offrl-jax bench``.

This module only parses arguments and calls :mod:`offrl_jax.experiments.demo`. ``offrl-jax bench``
(run from the repository root) hands its arguments to ``benchmarks/run_all.py``: with no name it
runs every benchmark and writes a results page; ``offrl-jax bench NAME [options]`` runs one
script. Heavy imports happen after parsing, so ``offrl-jax --help`` and argument errors do not
wait for JAX. User errors print one line on stderr and exit with status 2 (no traceback).

The demo keeps JAX's persistent compilation cache in the user's cache directory
(``$XDG_CACHE_HOME/offrl_jax/jax``, default ``~/.cache/offrl_jax/jax``), so a second run loads
its compiled programs instead of compiling them; set ``OFFRL_JAX_NO_CACHE=1`` to turn it off.
The demo's programs run once on small data, so they are compiled with most XLA optimisations
off (``jax_disable_most_optimizations``: about half the compile time; float32 results may move
in the last printed digit); set ``OFFRL_JAX_OPTIMIZE=1`` for fully optimised programs. The
library itself never changes JAX's configuration.
"""

from __future__ import annotations

import argparse
import os
import runpy
import sys
from typing import Optional, Sequence

class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        """One line on stderr and exit status 2 (argparse would also print the usage)."""
        self.exit(2, f"{self.prog}: error: {message}\n")


def _int_at_least(low: int, what: str):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer {what}, found {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"expected an integer {what}, found {value}")
        return value

    return parse


def _level(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a level in (0, 1), found {text!r}") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a level in (0, 1), found {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The ``offrl-jax`` argument parser (no JAX import)."""
    ap = _Parser(prog="offrl-jax", description="JAX offline RL and off-policy evaluation.")
    sub = ap.add_subparsers(dest="command", required=True, parser_class=_Parser)
    d = sub.add_parser("demo", help="evaluate a target policy from logged data against the exact value")
    d.add_argument("--env", default="graph", help="standard problem, see `offrl-jax envs` (default: graph, the COBS toy graph)")
    d.add_argument("--num-episodes", "-n", type=_int_at_least(2, ">= 2"), default=None, help="N >= 2 (default: the problem's)")
    d.add_argument("--horizon", "-t", type=_int_at_least(1, ">= 1"), default=None, help="T >= 1 (default: the problem's)")
    d.add_argument("--seed", type=_int_at_least(0, ">= 0"), default=0)
    d.add_argument("--confidence", type=_level, default=0.95, help="interval level in (0, 1) (default 0.95)")
    d.add_argument("--quiet", action="store_true", help="no progress lines")
    d.add_argument("--q-hat", default="model", choices=("model", "fqe"),
                   help="Q-hat of DM/DR/WDR/MAGIC: cross-fitted tabular model (default) or horizon-aware FQE")
    _add_evaluate(sub)
    sub.add_parser("envs", help="list the standard problems")
    b = sub.add_parser("bench", help="run every script of ./benchmarks and write a results page, or one (NAME)",
                       description="`offrl-jax bench [--quick] [--peer-python PY] [--list]` runs every benchmark "
                                   "and writes <out>/index.md; `offrl-jax bench NAME [options]` runs one.")
    b.add_argument("name", nargs="?", help="script name without .py; omit to run them all")
    b.add_argument("args", nargs=argparse.REMAINDER)
    return ap


def _add_evaluate(sub) -> None:
    """``offrl-jax evaluate``: a user's own logs and target policy -> estimates (see
    :mod:`offrl_jax.experiments.evaluate_logs`)."""
    e = sub.add_parser(
        "evaluate", help="evaluate a target policy on your own logs (npz, d3rlpy, Minari, SCOPE-RL, OBP)",
        description="Estimates the value of a target policy from logged trajectories, with intervals, importance-weight "
                    "diagnostics and warnings. Discrete actions ([N, T] ints) or continuous ones (float [N, T, d]).",
    )
    e.add_argument("data", help="logs file (.npz in our layout or a d3rlpy/Minari/SCOPE-RL/OBP export, .pkl, .h5)")
    e.add_argument("--target", required=True,
                   help="target policy. Discrete actions: .npy/.npz of per-step action probabilities [N, T, A], or "
                        "module:function(observations [N, T, ...]) -> probabilities [N, T, A] (with --q-hat fqe on vector "
                        "observations it is also called on the next observations). Continuous actions: .npy/.npz of the "
                        "log-densities log pi(a_t|s_t) of the logged actions [N, T], or module:function(observations "
                        "[N, T, ...], actions [N, T, d]) -> log-densities [N, T]. Arrays are numpy; padded steps are "
                        "zeros and ignored")
    e.add_argument("--gamma", type=float, default=1.0, help="discount in [0, 1] (default 1)")
    e.add_argument("--propensities", default=None,
                   help="behaviour policy file: discrete actions, probabilities [N, T] at the logged actions or [N, T, A]; "
                        "continuous actions, log-densities [N, T] of the logged actions. Default: from the logs, else "
                        "estimated and cross-fitted by trajectory")
    e.add_argument("--behavior-model", default="auto", choices=("auto", "tabular", "linear", "mlp"),
                   help="model of the estimated behaviour policy (default auto: tabular for integer observations and "
                        "discrete actions, else mlp; continuous actions: a state-dependent diagonal Gaussian, linear or mlp)")
    e.add_argument("--folds", type=_int_at_least(2, ">= 2"), default=5, help="cross-fitting folds of trajectories (default 5)")
    e.add_argument("--q-hat", default="none",
                   help="Q-hat for DM/DR/WDR/MAGIC: none (default); model (tabular model, integer observations) and fqe "
                        "(discrete actions: tabular FQE for integer observations, neural FQE for vector ones), both "
                        "cross-fitted over two folds of trajectories; or a file: Q-hat [N, T, A], or an .npz with q_taken "
                        "and v_hat [N, T] (the only Q-hat for continuous actions)")
    e.add_argument("--target-sampler", default=None,
                   help="continuous actions with --q-hat fqe: module:function naming a JAX function sample(key, "
                        "observations [B, D]) -> actions [B, d], one draw from the target per row (jax.numpy, traced "
                        "inside the jitted FQE loop)")
    e.add_argument("--fqe-steps", type=_int_at_least(1, ">= 1"), default=None, help="FQE gradient steps per fold (default 50 (2T + 20))")
    e.add_argument("--estimators", default=None,
                   help="comma-separated subset of is,pdis,wis,wpdis,dm,dr,wdr,magic (default: all that apply)")
    e.add_argument("--confidence", type=_level, default=0.95, help="interval level in (0, 1) (default 0.95)")
    e.add_argument("--seed", type=_int_at_least(0, ">= 0"), default=0)
    e.add_argument("--out", default="evaluation", help="path prefix of the .json/.md/.png reports (default ./evaluation)")
    e.add_argument("--no-figure", action="store_true", help="do not draw the figure")
    e.add_argument("--format", default="auto", choices=("auto", "npz", "d3rlpy", "minari", "scope_rl", "obp"))
    e.add_argument("--unknown-next", default="keep", choices=("keep", "drop", "error"),
                   help="d3rlpy time-outs without a recorded next observation (default keep)")
    e.add_argument("--quiet", action="store_true", help="no progress lines")


def _evaluate(args) -> int:
    enable_compilation_cache()
    from offrl_jax.experiments.evaluate_logs import report_markdown, run_evaluate

    try:
        report = run_evaluate(
            args.data, args.target, gamma=args.gamma, propensities=args.propensities,
            behavior_model=args.behavior_model, num_folds=args.folds, q_hat=args.q_hat, fqe_steps=args.fqe_steps,
            confidence=args.confidence, seed=args.seed, out=args.out, figure=not args.no_figure, quiet=args.quiet,
            format=args.format, unknown_next=args.unknown_next, estimators=args.estimators,
            target_sampler=args.target_sampler,
        )
    except ValueError as e:
        print(f"offrl-jax evaluate: error: {str(e).splitlines()[0] if str(e) else e!r}", file=sys.stderr)
        return 2
    print(report_markdown(report), end="")
    for w in report["warnings"]:
        print(f"warning: {w}", file=sys.stderr)
    if report["files"]:
        print("wrote " + ", ".join(report["files"]))
    return 0


def enable_compilation_cache() -> Optional[str]:
    """Turns on JAX's persistent compilation cache in the user's cache directory (CLI only).

    Every compiled program is kept (no minimum compile time or size), so a second ``demo``
    loads instead of compiling. Returns the directory, or None when ``OFFRL_JAX_NO_CACHE`` is set
    to a non-empty value other than ``0``.
    """
    if os.environ.get("OFFRL_JAX_NO_CACHE", "") not in ("", "0"):
        return None
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    path = os.path.join(base, "offrl_jax", "jax")
    import jax

    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path


def _bench(argv: Sequence[str]) -> int:
    """``bench NAME [options]`` runs ``./benchmarks/NAME.py``; anything else goes to ``benchmarks/run_all.py``."""
    folder = os.path.join(os.getcwd(), "benchmarks")
    runner = os.path.join(folder, "run_all.py")
    if not os.path.isfile(runner):
        print("offrl-jax bench: error: no ./benchmarks/run_all.py here (run from the repository root)", file=sys.stderr)
        return 2
    run_all = runpy.run_path(runner, run_name="offrl_jax_run_all")
    if argv and not argv[0].startswith("-"):
        name, scripts = argv[0], run_all["discover"](folder)
        if name not in scripts:
            print(f"offrl-jax bench: error: name: expected one of {scripts}, found {name!r}", file=sys.stderr)
            return 2
        sys.argv = [name] + list(argv[1:])
        runpy.run_path(os.path.join(folder, name + ".py"), run_name="__main__")
        return 0
    return run_all["main"](list(argv), folder)


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:  # its options are the benchmarks' own (see benchmarks/run_all.py)
        return _bench(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "evaluate":
        return _evaluate(args)
    from offrl_jax.envs.suite import PROBLEMS

    if args.command == "envs":
        print("\n".join(PROBLEMS))
        return 0
    if args.env not in PROBLEMS:
        parser.error(f"argument --env: invalid choice: {args.env!r} (choose from {', '.join(PROBLEMS)})")
    enable_compilation_cache()
    import jax

    from offrl_jax.experiments.demo import demo_table, run_demo

    # The demo's programs run once on small data: compiling them fast beats optimising them.
    fast = os.environ.get("OFFRL_JAX_OPTIMIZE", "") in ("", "0")
    previous = jax.config.read("jax_disable_most_optimizations")
    jax.config.update("jax_disable_most_optimizations", fast)
    try:
        rows = run_demo(args.env, args.num_episodes, args.horizon, args.seed, args.confidence,
                        q_hat=args.q_hat, quiet=args.quiet)
    except ValueError as e:
        print(f"offrl-jax demo: error: {e}", file=sys.stderr)
        return 2
    finally:
        jax.config.update("jax_disable_most_optimizations", previous)
    print(demo_table(rows, args.env, args.confidence))
    return 0


if __name__ == "__main__":
    sys.exit(main())
