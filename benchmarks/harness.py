"""The one benchmark harness: blocking timers, compile time apart, fixed metadata, JSON + markdown.

Every script in ``benchmarks/`` uses it, so that all results are measured and recorded the same way:

* **Timing.** :func:`time_jit` times the true compile (``jitted.lower(*args).compile()``), then the
  first call of the compiled executable, then ``repeats`` calls; :func:`time_calls` does the same
  for plain callables (numpy, peer libraries), with one warm-up call reported as ``first_call_s``.
  Every call is wrapped in ``jax.block_until_ready`` (asynchronous dispatch would otherwise time
  only the launch). Run time is the median of the repeats, with the minimum and interquartile
  range beside it (:class:`Timing`).
* **Metadata** (:func:`metadata`) under fixed keys (:data:`METADATA_KEYS`): date, command line,
  git commit, python / jax / jaxlib / flax / optax / numpy versions, backend, device kind, CPU count,
  load average and dtype.
* **Writers.** :func:`write_results` writes ``<out>/<name>[_quick].json`` (machine-readable:
  ``{"benchmark", "meta", "settings", "results"}``) and ``.md`` (human-readable) atomically: a
  temporary file in the same folder, then ``os.replace``, so a reader never sees half a file.
* **Command line.** :func:`make_parser` gives every script ``--quick``, ``--repeats``, ``--out``
  and ``--peer-python`` (default: the ``OFFRL_JAX_PEER_PYTHON`` environment variable), the
  interpreter of a separate environment holding peer libraries (SCOPE-RL, d3rlpy, OBP); the
  script re-runs itself there as a worker through :func:`run_peer`. No machine paths, no marker
  files.

jax is imported lazily, so a peer interpreter without jax can import this module too.

Usage as a script: ``python benchmarks/harness.py`` prints this machine's metadata as JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib.metadata
import json
import math
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Sequence
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS_DIR = os.path.join(HERE, "results")
PEER_PYTHON_ENV = "OFFRL_JAX_PEER_PYTHON"
METADATA_KEYS = (
    "date",
    "command",
    "git_commit",
    "python_version",
    "jax_version",
    "jaxlib_version",
    "flax_version",
    "optax_version",
    "numpy_version",
    "backend",
    "device_kind",
    "device_count",
    "platform",
    "cpu_count",
    "load_average",
    "dtype",
)


# ------------------------------------------------------------------------------------------------
# Timing.
# ------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Timing:
    """Seconds of one measured function.

    Attributes:
      compile_s: ``lower(...).compile()`` time (None for plain callables, which have no AOT step).
      first_call_s: the first (warm-up) call: for a compiled executable, one run plus any one-off
        runtime cost; for a plain jitted callable, compile + one run.
      run_s: median of the timed repeats.
      min_s: fastest repeat.
      iqr_s: interquartile range of the repeats (0 with fewer than 2 repeats).
      times_s: every repeat, in order.
    """

    compile_s: float | None
    first_call_s: float
    run_s: float
    min_s: float
    iqr_s: float
    times_s: tuple[float, ...]

    @property
    def repeats(self) -> int:
        return len(self.times_s)

    def as_dict(self) -> dict:
        return {**dataclasses.asdict(self), "times_s": list(self.times_s), "repeats": self.repeats}


def block(tree: Any) -> Any:
    """``jax.block_until_ready(tree)`` when jax is loaded (no jax array exists otherwise)."""
    jax = sys.modules.get("jax")
    return tree if jax is None else jax.block_until_ready(tree)


def timed_call(fn: Callable, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    """``(output, seconds)`` of one call, blocking on the output."""
    t0 = time.perf_counter()
    out = block(fn(*args, **kwargs))
    return out, time.perf_counter() - t0


def summarize(times: Sequence[float], first_call_s: float, compile_s: float | None = None) -> Timing:
    """:class:`Timing` from repeat times: median, minimum, interquartile range."""
    if not times:
        raise ValueError("times: expected at least one repeat, found none")
    iqr = 0.0
    if len(times) >= 2:
        q1, _, q3 = statistics.quantiles(times, n=4, method="inclusive")
        iqr = q3 - q1
    return Timing(compile_s, first_call_s, statistics.median(times), min(times), iqr, tuple(times))


def compile_jit(fn: Callable, *args: Any) -> tuple[Any, float]:
    """``(compiled, seconds)``: ahead-of-time compile of ``jax.jit(fn)`` for ``args``.

    ``fn`` is a jitted function (or a plain one, jitted here) whose arguments are all arrays or
    pytrees of arrays; bind static options beforehand (``functools.partial`` or a lambda). The
    compiled executable is called with the same ``args``.
    """
    import jax

    jitted = fn if hasattr(fn, "lower") else jax.jit(fn)
    block(args)
    t0 = time.perf_counter()
    compiled = jitted.lower(*args).compile()
    return compiled, time.perf_counter() - t0


def time_jit(fn: Callable, *args: Any, repeats: int) -> tuple[Timing, Any, Any]:
    """Times a jitted function: true compile, first call, then the median of ``repeats`` calls.

    Args:
      fn: jitted (or plain, jitted here) function of array arguments only (see :func:`compile_jit`).
      *args: its arguments; the same ones are used for every call.
      repeats: timed calls after the first (at least 1).

    Returns:
      ``(timing, output, compiled)``: :class:`Timing`, the last call's output, and the compiled
      executable (for :func:`compiled_bytes`).
    """
    _check_repeats(repeats)
    compiled, compile_s = compile_jit(fn, *args)
    out, first = timed_call(compiled, *args)
    times = []
    for _ in range(repeats):
        out, seconds = timed_call(compiled, *args)
        times.append(seconds)
    return summarize(times, first, compile_s), out, compiled


def time_calls(fn: Callable, *args: Any, repeats: int) -> tuple[Timing, Any]:
    """Times a plain callable: one warm-up call (``first_call_s``), then ``repeats`` timed calls.

    For functions that cannot be compiled ahead of time (numpy, peer libraries, Python loops around
    several jitted calls). ``compile_s`` is None; for a jitted callable the warm-up includes compiling.
    """
    _check_repeats(repeats)
    out, first = timed_call(fn, *args)
    times = []
    for _ in range(repeats):
        out, seconds = timed_call(fn, *args)
        times.append(seconds)
    return summarize(times, first), out


def compiled_bytes(compiled: Any) -> int | None:
    """Arguments + outputs + temporaries of a compiled executable (None if XLA does not say)."""
    mem = compiled.memory_analysis()
    if mem is None:
        return None
    return int(mem.argument_size_in_bytes + mem.output_size_in_bytes + mem.temp_size_in_bytes)


def python_peak_bytes(fn: Callable, *args: Any) -> tuple[Any, int]:
    """``(output, peak bytes)`` of one call under ``tracemalloc`` (numpy and peer libraries)."""
    tracemalloc.start()
    try:
        out = fn(*args)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return out, int(peak)


def _check_repeats(repeats: int) -> None:
    if not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats: expected an integer >= 1, found {repeats!r}")


# ------------------------------------------------------------------------------------------------
# Metadata.
# ------------------------------------------------------------------------------------------------
def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def git_commit(folder: str = HERE) -> str | None:
    """``git rev-parse HEAD`` of the checkout holding ``folder`` (``+dirty`` if modified), or None."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=folder,
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def default_dtype() -> str:
    """``float64`` when ``jax_enable_x64`` is on, else ``float32``."""
    import jax

    return "float64" if jax.config.read("jax_enable_x64") else "float32"


def metadata(dtype: str | None = None, argv: Sequence[str] | None = None) -> dict:
    """This run's environment under the fixed :data:`METADATA_KEYS`.

    Args:
      dtype: the benchmark's floating dtype (e.g. ``"float64 (quadratic), float32 (MLP)"``);
        default :func:`default_dtype`.
      argv: command line (default ``sys.argv``).
    """
    import jax

    device = jax.devices()[0]
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": shlex.join([sys.executable, *(sys.argv if argv is None else argv)]),
        "git_commit": git_commit(),
        "python_version": platform.python_version(),
        "jax_version": jax.__version__,
        "jaxlib_version": _version("jaxlib"),
        "flax_version": _version("flax"),
        "optax_version": _version("optax"),
        "numpy_version": _version("numpy"),
        "backend": jax.default_backend(),
        "device_kind": device.device_kind,
        "device_count": jax.device_count(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "dtype": dtype or default_dtype(),
    }


def describe(meta: dict) -> str:
    """One line for a markdown header: device, backend, cores, jax, dtype, load, commit."""
    load = meta.get("load_average")
    commit = meta.get("git_commit")
    return (
        f"{meta['device_kind']} ({meta['backend']}, {meta['cpu_count']} CPUs"
        + (f", load average {load[0]:.1f}" if load else "")
        + f"), jax {meta['jax_version']}, {meta['dtype']}"
        + (f", commit {commit[:12]}{'+dirty' if commit.endswith('+dirty') else ''}" if commit else "")
        + f", {meta['date']}"
    )


# ------------------------------------------------------------------------------------------------
# Writers.
# ------------------------------------------------------------------------------------------------
def _jsonable(x: Any) -> Any:
    """numpy / jax scalars and arrays to Python numbers and lists (``json.dump``'s ``default``)."""
    if hasattr(x, "tolist"):
        return x.tolist()
    if hasattr(x, "item"):
        return x.item()
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return dataclasses.asdict(x)
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


def _finite(x: Any) -> Any:
    """NaN and infinities to None (strict JSON has neither)."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    return x


def _replace_atomically(path: str, write: Callable[[str], None]) -> None:
    """``write(temporary path)`` in ``path``'s folder, then ``os.replace`` onto ``path``."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; results are ordinary files
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_atomic(path: str, text: str) -> None:
    """Writes ``text`` to ``path`` through a temporary file in the same folder and ``os.replace``."""

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())

    _replace_atomically(path, write)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]], align: str | None = None) -> list[str]:
    """Lines of a markdown table; cells are written with ``str``. ``align``: one of ``lcr`` per column."""
    marks = {"l": "---", "c": ":---:", "r": "---:"}
    sep = [marks[a] for a in align] if align else ["---"] * len(header)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(sep) + "|"]
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f"rows: expected {len(header)} cells per row, found {len(row)}: {row!r}")
        lines.append("| " + " | ".join(str(c) for c in row) + " |")
    return lines


def result_stem(name: str, out: str = RESULTS_DIR, quick: bool = False) -> str:
    """``<out>/<name>`` or ``<out>/<name>_quick``: the path of a result without its extension."""
    return os.path.join(out, name + ("_quick" if quick else ""))


def save_figure(fig: Any, name: str, out: str = RESULTS_DIR, quick: bool = False) -> str:
    """Saves a matplotlib figure as ``<stem>.png`` atomically; returns the file name (no folder)."""
    path = result_stem(name, out, quick) + ".png"
    _replace_atomically(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    return os.path.basename(path)


def write_results(
    name: str,
    results: Any,
    markdown: Sequence[str],
    *,
    meta: dict,
    settings: dict | None = None,
    out: str = RESULTS_DIR,
    quick: bool = False,
    echo: bool = True,
) -> tuple[str, str]:
    """Writes ``<out>/<name>[_quick].json`` and ``.md`` atomically; returns both paths.

    The JSON is ``{"benchmark": name, "meta": meta, "settings": settings, "results": results}``
    (non-finite floats become null). ``--quick`` runs get the ``_quick`` suffix so that they never
    overwrite full-size results.
    """
    stem = result_stem(name, out, quick)
    doc = {"benchmark": name, "meta": meta, "settings": settings or {}, "results": results}
    doc = _finite(json.loads(json.dumps(doc, default=_jsonable)))
    write_atomic(stem + ".json", json.dumps(doc, indent=1, allow_nan=False) + "\n")
    text = "\n".join(markdown) + "\n"
    write_atomic(stem + ".md", text)
    if echo:
        print(text, end="")
    return stem + ".json", stem + ".md"


# ------------------------------------------------------------------------------------------------
# Command line and peers.
# ------------------------------------------------------------------------------------------------
def common_parser() -> argparse.ArgumentParser:
    """The options every benchmark takes (an argparse parent; reads the environment when built)."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--quick", action="store_true", help="small sizes (seconds to a minute; a smoke run)")
    p.add_argument("--repeats", type=int, default=None, help="timed calls per measurement (median reported)")
    p.add_argument("--out", default=RESULTS_DIR, help="folder for <name>.json and <name>.md (default: %(default)s)")
    p.add_argument(
        "--peer-python",
        default=os.environ.get(PEER_PYTHON_ENV) or None,
        help=f"interpreter of an environment with peer libraries (SCOPE-RL, d3rlpy, OBP); default ${PEER_PYTHON_ENV}",
    )
    return p


def make_parser(doc: str | None, *, quick_repeats: int = 3, repeats: int = 5) -> argparse.ArgumentParser:
    """A script's parser: the common options plus its own; ``--repeats`` defaults by ``--quick``."""
    p = argparse.ArgumentParser(
        description=(doc or "").strip().splitlines()[0] if doc else None,
        parents=[common_parser()],
    )
    p.set_defaults(_default_repeats=(repeats, quick_repeats))
    return p


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parses and fills ``repeats`` from the ``--quick``-dependent default; checks it is >= 1."""
    args = parser.parse_args(argv)
    full, quick = getattr(args, "_default_repeats", (5, 3))
    del args._default_repeats
    if args.repeats is None:
        args.repeats = quick if args.quick else full
    if args.repeats < 1:
        parser.error(f"--repeats: expected an integer >= 1, found {args.repeats}")
    return args


def resolve_peer_python(value: str | None) -> tuple[str | None, str | None]:
    """``(interpreter path, None)`` or ``(None, why not)`` for ``--peer-python`` / the env variable."""
    if not value:
        return None, f"no --peer-python given and ${PEER_PYTHON_ENV} unset"
    found = shutil.which(value) if os.sep not in value else value
    if not found or not (os.path.isfile(found) and os.access(found, os.X_OK)):
        return None, f"peer python {value!r}: not an executable file"
    return found, None


def run_peer(
    peer_python: str | None, script: str, worker_args: Sequence[str], timeout: float | None = None
) -> tuple[Any, str | None]:
    """Runs ``<peer_python> <script> <worker_args>`` and reads the JSON its worker prints last.

    Returns ``(result, None)``, or ``(None, reason)`` when there is no peer interpreter or the
    worker fails (a missing library is a reason, not an error: peers are optional).
    """
    exe, reason = resolve_peer_python(peer_python)
    if exe is None:
        return None, reason
    try:
        proc = subprocess.run([exe, script, *worker_args], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"peer worker timed out after {timeout} s"
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()
        return None, tail[-1] if tail else f"peer worker exited with {proc.returncode}"
    lines = proc.stdout.strip().splitlines()
    try:
        return json.loads(lines[-1]), None
    except (IndexError, json.JSONDecodeError):
        return None, "peer worker printed no JSON result"


def emit_peer_result(result: Any) -> None:
    """The worker side of :func:`run_peer`: prints ``result`` as one JSON line on stdout."""
    print(json.dumps(result, default=_jsonable), flush=True)


def main() -> None:
    print(json.dumps(metadata(), indent=1))


if __name__ == "__main__":
    main()
