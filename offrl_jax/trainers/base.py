"""The one thin trainer: any learner's jitted ``run``, its state, metrics history, progress bar,
periodic evaluation callbacks and crash-safe Orbax checkpoints. No algorithm math lives here.

A :class:`Trainer` wraps a :class:`~offrl_jax.core.learner.Learner` (``init(key, data)``,
``run(state, data, num_steps)``) built by any family's ``make_learner(config, ...)``. ``run`` is
jitted once with ``num_steps`` static; ``fit(steps)`` calls it in chunks of ``chunk_size`` and
brings metrics to the host once per chunk, never per step. Given the same seed two trainers
produce identical numbers, and a checkpoint restores the whole state, PRNG key included, so a
resumed run continues bit for bit.

Checkpoints are crash-safe: each save writes a new step directory under a temporary name, then
publishes it with an atomic rename and points ``LATEST`` at it (itself replaced atomically); a
killed save leaves the previous checkpoint intact. A checkpoint records the learner's config and
restoring into a trainer whose config differs raises ``ValueError`` naming the fields. Restore
reads and checks everything before it assigns anything.
"""

from __future__ import annotations

import csv
import contextlib
import dataclasses
import fcntl
import json
import os
import shutil
import tempfile
from typing import Any, Callable, Dict, List, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from tqdm.auto import tqdm

from offrl_jax.core.files import atomic_write
from offrl_jax.core.learner import Learner
from offrl_jax.core.validation import check_positive_int

__all__ = ["Trainer", "Callback"]

Callback = Callable[["Trainer"], Optional[Dict[str, Any]]]

_LATEST = "LATEST"


def _is_key(x) -> bool:
    return hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jax.dtypes.prng_key)


def _to_saveable(tree):
    return jax.tree_util.tree_map(lambda x: jax.random.key_data(x) if _is_key(x) else jnp.asarray(x), tree)


def _as_dict(metrics) -> Dict[str, Any]:
    if hasattr(metrics, "_asdict"):
        return dict(metrics._asdict())
    return dict(metrics)


def _config_record(config: Any) -> Dict[str, str]:
    """``{field: repr(value)}`` of a dataclass config (``{}`` for none); compared on restore."""
    if config is None:
        return {}
    if dataclasses.is_dataclass(config):
        return {f.name: repr(getattr(config, f.name)) for f in dataclasses.fields(config)}
    if hasattr(config, "_asdict"):
        return {k: repr(v) for k, v in config._asdict().items()}
    return {"config": repr(config)}


@contextlib.contextmanager
def _exclusive(directory: str):
    """Holds an exclusive, non-blocking lock on ``directory/.lock`` while saving."""
    fd = os.open(os.path.join(directory, ".lock"), os.O_CREAT | os.O_RDWR, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise ValueError(
                f"directory: another process or trainer is saving into {directory}; give each "
                "trainer its own checkpoint directory"
            ) from None
        yield
    finally:
        os.close(fd)


class Trainer:
    """Holds a learner's state and runs its jitted ``run`` in chunks.

    Args:
      learner: a :class:`~offrl_jax.core.learner.Learner` from a family's ``make_learner``.
      data: the dataset passed to every ``run`` call (not part of the state).
      seed: int seed of ``learner.init``; the run is deterministic given it.
      config: the learner's config, recorded in checkpoints (a mismatch on restore raises).
      chunk_size: steps per jitted call.
      callbacks: functions ``trainer -> dict | None`` run every ``eval_every`` steps; returned
        dicts are stored in :attr:`evals` with the step.
      eval_every: callback period in steps (rounded up to whole chunks); ``None`` = at the end
        of each ``fit`` only.
      progress: show a tqdm progress bar (on stderr).
      state: an initial state to use instead of ``learner.init(key(seed), data)``.
    """

    def __init__(
        self,
        learner: Learner,
        data: Any,
        *,
        seed: int = 0,
        config: Any = None,
        chunk_size: int = 1000,
        callbacks: Sequence[Callback] = (),
        eval_every: Optional[int] = None,
        progress: bool = True,
        state: Any = None,
    ):
        check_positive_int(chunk_size, "chunk_size")
        check_positive_int(eval_every, "eval_every", allow_none=True)
        if not isinstance(learner, Learner):
            raise ValueError(f"learner: expected an offrl_jax.core.Learner, found {type(learner).__name__}")
        self.learner = learner
        self.data = data
        self.config = config
        self.chunk_size = chunk_size
        self.callbacks = list(callbacks)
        self.eval_every = eval_every
        self.progress = progress
        self.state = jax.jit(learner.init)(jax.random.key(seed), data) if state is None else state
        self._chunk = jax.jit(learner.run, static_argnums=2)
        self._history: List[Dict[str, np.ndarray]] = []
        self.evals: List[Dict[str, Any]] = []
        self.step = 0

    # -- running ---------------------------------------------------------------------------
    def fit(self, steps: int) -> "Trainer":
        """Runs ``steps`` more steps in jitted chunks; returns ``self``."""
        check_positive_int(steps, "steps")
        next_eval = None if self.eval_every is None else (self.step // self.eval_every + 1) * self.eval_every
        with tqdm(total=steps, disable=not self.progress, desc=type(self).__name__) as bar:
            done = 0
            while done < steps:
                n = min(self.chunk_size, steps - done)
                self.state, metrics = self._chunk(self.state, self.data, n)
                metrics = {k: np.asarray(v) for k, v in _as_dict(metrics).items()}
                self._history.append(metrics)
                done += n
                self.step += n
                bar.update(n)
                if "loss" in metrics:
                    bar.set_postfix(loss=float(metrics["loss"][-1]))
                if next_eval is not None and self.step >= next_eval:
                    self._run_callbacks()
                    next_eval = (self.step // self.eval_every + 1) * self.eval_every
        if self.eval_every is None:
            self._run_callbacks()
        return self

    def _run_callbacks(self) -> None:
        row: Dict[str, Any] = {}
        for cb in self.callbacks:
            out = cb(self)
            if out:
                row.update({k: (np.asarray(v).tolist()) for k, v in out.items()})
        if row:
            self.evals.append({"step": self.step, **row})

    # -- metrics ----------------------------------------------------------------------------
    @property
    def history(self) -> Dict[str, np.ndarray]:
        """Per-step metrics ``{name: [steps]}`` plus ``"step"`` (1-based step index)."""
        if not self._history:
            return {"step": np.zeros(0, np.int64)}
        out = {k: np.concatenate([h[k] for h in self._history]) for k in self._history[0]}
        out["step"] = np.arange(1, len(next(iter(out.values()))) + 1)
        return out

    def to_csv(self, path: str) -> None:
        """Writes the per-step history as CSV (one row per step), atomically."""
        hist = self.history
        names = ["step"] + [k for k in hist if k != "step"]

        def write(tmp):
            with open(tmp, "w", newline="") as f:
                w = csv.writer(f)
                w.writerow(names)
                for row in zip(*(hist[k].tolist() for k in names)):
                    w.writerow(row)

        atomic_write(path, write)

    def to_json(self, path: str) -> None:
        """Writes ``{"history": {...}, "evals": [...]}`` as JSON, atomically."""
        hist = {k: v.tolist() for k, v in self.history.items()}

        def write(tmp):
            with open(tmp, "w") as f:
                json.dump({"history": hist, "evals": self.evals}, f)

        atomic_write(path, write)

    # -- checkpoints ------------------------------------------------------------------------
    def save(self, directory: str, keep: int = 2) -> str:
        """Saves state (Orbax), history (npz), evals, step and config as a new checkpoint.

        The checkpoint is written to a temporary step directory, published by an atomic rename
        and made current by atomically replacing ``LATEST``; the ``keep`` newest are kept. A
        save killed at any moment leaves the previous checkpoint restorable. Two trainers saving
        into one directory at once: the second gets a ``ValueError`` (an exclusive lock).

        Returns:
          the published step directory.
        """
        check_positive_int(keep, "keep")
        directory = os.path.abspath(directory)
        os.makedirs(directory, exist_ok=True)
        with _exclusive(directory):
            # Leftovers of a killed save are removed (the lock says nobody is writing them).
            for d in os.listdir(directory):
                if d.startswith(".tmp-"):
                    path = os.path.join(directory, d)
                    shutil.rmtree(path, ignore_errors=True) if os.path.isdir(path) else os.remove(path)
            existing = sorted(d for d in os.listdir(directory) if d.startswith("step_"))
            seq = 1 + max((int(d.rsplit("_", 1)[-1]) for d in existing), default=0)
            name = f"step_{self.step:012d}_{seq:06d}"
            final = os.path.join(directory, name)
            tmp = tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=directory)
            try:
                ckpt = ocp.StandardCheckpointer()
                ckpt.save(os.path.join(tmp, "state"), _to_saveable(self.state))
                ckpt.wait_until_finished()
                hist = {k: v for k, v in self.history.items() if k != "step"}
                np.savez(os.path.join(tmp, "history.npz"), **hist)
                meta = {"step": self.step, "evals": self.evals, "config": _config_record(self.config)}
                with open(os.path.join(tmp, "trainer.json"), "w") as f:
                    json.dump(meta, f)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, final)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise

            def write_latest(path):
                with open(path, "w") as f:
                    f.write(name)

            atomic_write(os.path.join(directory, _LATEST), write_latest)
            steps = sorted(d for d in os.listdir(directory) if d.startswith("step_") and d != name)
            steps.sort(key=lambda d: int(d.rsplit("_", 1)[-1]))  # oldest save first
            for old in steps[: max(0, len(steps) - (keep - 1))]:
                shutil.rmtree(os.path.join(directory, old), ignore_errors=True)
        return final

    def restore(self, directory: str) -> "Trainer":
        """Restores the latest :meth:`save` checkpoint into this trainer; returns ``self``.

        Raises:
          ValueError: if there is no checkpoint, it is damaged, or it was saved with another
            config (naming the fields that differ). Nothing is changed unless all of it loads.
        """
        directory = os.path.abspath(directory)
        latest = os.path.join(directory, _LATEST)
        if not os.path.exists(latest):
            raise ValueError(f"directory: no checkpoint found in {directory} (missing {_LATEST})")
        with open(latest) as f:
            path = os.path.join(directory, f.read().strip())
        try:
            with open(os.path.join(path, "trainer.json")) as f:
                meta = json.load(f)
            step, evals, saved_config = int(meta["step"]), list(meta["evals"]), dict(meta.get("config", {}))
            with np.load(os.path.join(path, "history.npz")) as z:
                hist = {k: z[k] for k in z.files}
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ValueError(f"directory: checkpoint {path} is damaged or incomplete ({e})") from e
        ours = _config_record(self.config)
        if saved_config and ours and saved_config != ours:
            diff = sorted(k for k in set(saved_config) | set(ours) if saved_config.get(k) != ours.get(k))
            detail = ", ".join(f"{k}: saved {saved_config.get(k)} vs {ours.get(k)}" for k in diff)
            raise ValueError(f"directory: checkpoint was saved with another config ({detail})")
        template = self.state
        abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, _to_saveable(template))
        try:
            restored = ocp.StandardCheckpointer().restore(os.path.join(path, "state"), abstract)
        except Exception as e:  # orbax raises several types for a missing or mismatched tree
            raise ValueError(f"directory: cannot restore the state from {path} ({e})") from e

        def back(t, r):
            if _is_key(t):
                return jax.random.wrap_key_data(r, impl=jax.random.key_impl(t))
            return r

        new_state = jax.tree_util.tree_map(back, template, restored)
        # Everything loaded: assign.
        self.state = new_state
        self.step = step
        self._history = [hist] if hist else []
        self.evals = evals
        return self
