"""A generic thin trainer: a jitted chunk function, its state, metrics history, progress bar,
periodic evaluation callbacks and Orbax checkpoints. No algorithm math lives here.

A trainer is built from a pure ``chunk_fn(state, *inputs, num_steps) -> (state, metrics)``
(``metrics`` a NamedTuple or dict of ``[num_steps]`` arrays), jitted once with ``num_steps``
static. ``fit(steps)`` runs it in chunks of ``chunk_size``; metrics come back to the host once
per chunk, never per step. Given the same initial state (hence the same seed) two trainers
produce identical numbers, and a checkpoint restores the whole state, PRNG key included, so a
resumed run continues bit-for-bit.
"""

from __future__ import annotations

import csv
import json
import os
from typing import Any, Callable, Dict, List, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from tqdm.auto import tqdm

__all__ = ["Trainer"]

Callback = Callable[["Trainer"], Optional[Dict[str, Any]]]


def _is_key(x) -> bool:
    return hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jax.dtypes.prng_key)


def _to_saveable(tree):
    return jax.tree_util.tree_map(lambda x: jax.random.key_data(x) if _is_key(x) else jnp.asarray(x), tree)


def _as_dict(metrics) -> Dict[str, Any]:
    if hasattr(metrics, "_asdict"):
        return dict(metrics._asdict())
    return dict(metrics)


class Trainer:
    """Holds a state and runs a jitted chunk function over it.

    Args:
      chunk_fn: pure ``(state, *inputs, num_steps, **static) -> (state, metrics)``;
        ``num_steps`` and ``static`` are passed by keyword and are static (hashable). Pass a
        module-level function so that trainers with equal static arguments share compilations.
      state: the initial state pytree (may hold typed PRNG keys).
      inputs: arrays passed to every chunk call (e.g. the dataset), not part of the state.
      chunk_size: steps per jitted call.
      callbacks: functions ``trainer -> dict | None`` run every ``eval_every`` steps; returned
        dicts are stored in :attr:`evals` with the step.
      eval_every: callback period in steps (rounded up to whole chunks); ``None`` = at the end
        of each ``fit`` only.
      progress: show a tqdm progress bar.
      static: hashable keyword arguments for ``chunk_fn`` (e.g. a config), static under jit.
    """

    def __init__(
        self,
        chunk_fn: Callable,
        state: Any,
        inputs: Sequence[Any] = (),
        chunk_size: int = 1000,
        callbacks: Sequence[Callback] = (),
        eval_every: Optional[int] = None,
        progress: bool = True,
        static: Optional[Dict[str, Any]] = None,
    ):
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
            raise ValueError(f"chunk_size: expected a positive int, found {chunk_size!r}")
        if eval_every is not None and (not isinstance(eval_every, int) or eval_every < 1):
            raise ValueError(f"eval_every: expected a positive int or None, found {eval_every!r}")
        self.state = state
        self.inputs = tuple(inputs)
        self.chunk_size = chunk_size
        self.callbacks = list(callbacks)
        self.eval_every = eval_every
        self.progress = progress
        self._static = dict(static or {})
        self._chunk = jax.jit(chunk_fn, static_argnames=("num_steps", *self._static))
        self._history: List[Dict[str, np.ndarray]] = []
        self.evals: List[Dict[str, Any]] = []
        self.step = 0

    # -- running ---------------------------------------------------------------------------
    def fit(self, steps: int) -> "Trainer":
        """Runs ``steps`` more steps in jitted chunks; returns ``self``."""
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps: expected a positive int, found {steps!r}")
        next_eval = None if self.eval_every is None else (self.step // self.eval_every + 1) * self.eval_every
        with tqdm(total=steps, disable=not self.progress, desc=type(self).__name__) as bar:
            done = 0
            while done < steps:
                n = min(self.chunk_size, steps - done)
                self.state, metrics = self._chunk(self.state, *self.inputs, num_steps=n, **self._static)
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
        """Writes the per-step history as CSV (one row per step)."""
        hist = self.history
        names = ["step"] + [k for k in hist if k != "step"]
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(names)
            for row in zip(*(hist[k].tolist() for k in names)):
                w.writerow(row)

    def to_json(self, path: str) -> None:
        """Writes ``{"history": {...}, "evals": [...]}`` as JSON."""
        hist = {k: v.tolist() for k, v in self.history.items()}
        with open(path, "w") as f:
            json.dump({"history": hist, "evals": self.evals}, f)

    # -- checkpoints ------------------------------------------------------------------------
    def save(self, directory: str) -> None:
        """Saves the state (Orbax), the metrics history (npz, dtypes kept) and evals (JSON)."""
        directory = os.path.abspath(directory)
        os.makedirs(directory, exist_ok=True)
        ckpt = ocp.StandardCheckpointer()
        ckpt.save(os.path.join(directory, "state"), _to_saveable(self.state), force=True)
        ckpt.wait_until_finished()
        hist = {k: v for k, v in self.history.items() if k != "step"}
        np.savez(os.path.join(directory, "history.npz"), **hist)
        with open(os.path.join(directory, "trainer.json"), "w") as f:
            json.dump({"step": self.step, "evals": self.evals}, f)

    def restore(self, directory: str) -> "Trainer":
        """Restores a :meth:`save` checkpoint into this trainer (same config); returns ``self``."""
        directory = os.path.abspath(directory)
        template = self.state
        abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, _to_saveable(template))
        restored = ocp.StandardCheckpointer().restore(os.path.join(directory, "state"), abstract)

        def back(t, r):
            if _is_key(t):
                return jax.random.wrap_key_data(r, impl=jax.random.key_impl(t))
            return r

        self.state = jax.tree_util.tree_map(back, template, restored)
        with open(os.path.join(directory, "trainer.json")) as f:
            meta = json.load(f)
        self.step = int(meta["step"])
        with np.load(os.path.join(directory, "history.npz")) as z:
            hist = {k: z[k] for k in z.files}
        self._history = [hist] if hist else []
        self.evals = list(meta["evals"])
        return self
