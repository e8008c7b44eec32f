"""Datasets and seeds sharded over devices and processes: meshes, padding, placement, sharded calls.

Every dataset-level estimator and solver of the package is a sum (or a max-shifted log-sum) over
rows, so it runs on data split along the row axis without a line changed: place the rows on a
one-axis mesh, call the estimator under ``jax.jit``, and XLA's SPMD partitioner (GSPMD) computes
each device's part of every sum where its rows live and adds the parts across devices
(all-reduce). Self-normalised estimators normalise globally, because the max-shift
``max_n log w_n`` and the normaliser ``sum_n exp(log w_n - max)`` are themselves reductions over
all rows.

* :func:`data_mesh`: a one-axis mesh (axis :data:`DATA_AXIS`) over every device of every process;
* :func:`pad_rows`: pads the leading (row) axis of every leaf to a multiple of the device count
  with zero rows (mask 0, rewards 0, log-probabilities 0, ...);
* :func:`shard_rows`: pads and places a pytree (``Trajectories``, ``Transitions``, a tuple of
  arrays) on the mesh, one block of rows per device; :func:`from_process_shards` builds the same
  global arrays from each process's own rows under ``jax.distributed``
  (``jax.make_array_from_process_local_data``);
* :class:`ShardedRows`: the placed, padded pytree plus the static positions of its real rows;
  :meth:`ShardedRows.rows` drops the padding inside ``jit``, so an estimator sees exactly the
  N real rows and padding cannot change any estimate;
* :func:`sharded`: ``jax.jit`` of ``fn(rows, *args)`` on a :class:`ShardedRows`, traced under
  the mesh, so that :func:`~offrl_jax.core.blocking.map_rows` / ``scan_rows`` run one block per
  device instead of a loop over row blocks (a loop of dynamic slices over a sharded axis would
  gather every row on every device);
* :func:`shard_batch`: splits a training loop's minibatch over the devices (data-parallel
  gradients, parameters replicated);
* :func:`shard_seeds`: a learner's ``train_seeds(keys, data)`` with the seed axis split over
  devices, seed by seed equal to the unsharded run;
* :func:`replicate`, :func:`to_host`: replicated placement and host read-out that also work when
  the arrays span several processes.

Padding rows sit after each process's real rows. With one process (or equal row counts per
process) the real rows are a prefix and :meth:`ShardedRows.rows` is a slice, which GSPMD keeps
local to each device; otherwise it is a concatenation of per-process slices.

See "GSPMD: General and Scalable Parallelization for ML Computation Graphs", Xu et al. 2021.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jax.sharding import Mesh, NamedSharding, PartitionSpec

Array = Any

__all__ = [
    "DATA_AXIS",
    "ShardedRows",
    "data_mesh",
    "row_sharding",
    "replicated",
    "rows_are_sharded",
    "shard_batch",
    "pad_rows",
    "shard_rows",
    "from_process_shards",
    "sharded",
    "shard_seeds",
    "replicate",
    "to_host",
]

DATA_AXIS = "data"


def data_mesh(devices: Optional[Sequence[Any]] = None, axis_name: str = DATA_AXIS) -> Mesh:
    """A one-axis mesh over ``devices`` (default: every device of every process).

    Devices are ordered by (process, id), so that each process's devices hold one contiguous
    block of rows (what :func:`from_process_shards` assumes). The axis is ``Auto``: XLA decides
    the communication, and arrays placed on it behave as ordinary arrays under ``jit``.
    """
    if devices is None:
        devices = sorted(jax.devices(), key=lambda d: (d.process_index, d.id))
    devices = list(devices)
    if not devices:
        raise ValueError("devices: expected at least one device, found none")
    return Mesh(np.asarray(devices), (axis_name,), axis_types=(jax.sharding.AxisType.Auto,))


def row_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (row) axis split over the mesh's first axis, the rest of each leaf whole."""
    return NamedSharding(mesh, PartitionSpec(mesh.axis_names[0]))


def replicated(mesh: Mesh) -> NamedSharding:
    """Every device holds the whole array."""
    return NamedSharding(mesh, PartitionSpec())


def rows_are_sharded() -> bool:
    """True when tracing under a mesh (``jax.set_mesh``, as :func:`sharded` does) whose
    :data:`DATA_AXIS` spans more than one device: row-blocked loops then run one block."""
    mesh = jax.sharding.get_abstract_mesh()
    return (not mesh.empty) and dict(mesh.shape).get(DATA_AXIS, 1) > 1


def shard_batch(tree: Any) -> Any:
    """Splits a minibatch's leading axis over the devices when rows are sharded (else identity).

    Training loops call this on each minibatch they draw: under :func:`sharded` every device then
    computes the loss and gradient of its B / D rows and XLA sums the per-device gradients
    (one all-reduce of the parameter-shaped gradient per step), while parameters and optimiser
    state stay replicated: data-parallel training with the numbers of the one-device run.
    Leaves whose leading size the device count does not divide are left to XLA.
    """
    if not rows_are_sharded():
        return tree
    size = dict(jax.sharding.get_abstract_mesh().shape)[DATA_AXIS]

    def one(x):
        if jnp.ndim(x) == 0 or jnp.shape(x)[0] % size:
            return x
        return jax.lax.with_sharding_constraint(x, PartitionSpec(DATA_AXIS))

    return jax.tree_util.tree_map(one, tree)


@struct.dataclass
class ShardedRows:
    """A pytree whose leaves share a padded leading row axis, plus where its real rows are.

    Attributes:
      data: the padded pytree (global arrays split along rows over a mesh).
      runs: static ``((start, stop), ...)``: the real rows are ``data[start:stop]`` for each run,
        in order; everything else is padding.
    """

    data: Any
    runs: tuple = struct.field(pytree_node=False, default=())

    @property
    def num_rows(self) -> int:
        """N, the number of real rows."""
        return sum(b - a for a, b in self.runs)

    def rows(self) -> Any:
        """The real rows (padding dropped), as the original ``[N, ...]`` pytree; for use in jit."""
        if len(self.runs) == 1:
            a, b = self.runs[0]
            return jax.tree_util.tree_map(lambda x: jax.lax.slice_in_dim(x, a, b, axis=0), self.data)
        return jax.tree_util.tree_map(
            lambda x: jnp.concatenate([jax.lax.slice_in_dim(x, a, b, axis=0) for a, b in self.runs]), self.data
        )


def _num_rows(tree: Any, name: str) -> int:
    leaves = jax.tree_util.tree_leaves(tree)
    if not leaves:
        raise ValueError(f"{name}: expected a pytree of arrays with a leading row axis, found no arrays")
    sizes = {int(np.shape(x)[0]) if np.ndim(x) else -1 for x in leaves}
    if -1 in sizes or len(sizes) != 1:
        raise ValueError(
            f"{name}: expected every array to share one leading row axis, found leading sizes {sorted(sizes)}"
        )
    return sizes.pop()


def _pad_leaf(x: Any, rows: int) -> np.ndarray:
    x = np.asarray(x)
    if rows == x.shape[0]:
        return x
    return np.concatenate([x, np.zeros((rows - x.shape[0],) + x.shape[1:], x.dtype)])


def pad_rows(tree: Any, multiple: int) -> tuple[Any, int]:
    """Pads every leaf's leading axis to a multiple of ``multiple`` with zero rows, on the host.

    Zero rows are masked rows of the package's containers: mask 0, rewards 0, log-probabilities
    0, discounts 0, observation/action index 0. :meth:`ShardedRows.rows` removes them again
    before any estimator runs, so they change no estimate.

    Args:
      tree: pytree of ``[N, ...]`` arrays (``Trajectories``, ``Transitions``, a tuple of arrays).
      multiple: the row count is rounded up to a multiple of this (the device count).

    Returns:
      ``(padded tree of numpy arrays [N_pad, ...], N)``.
    """
    if int(multiple) < 1:
        raise ValueError(f"multiple: expected a positive int, found {multiple!r}")
    n = _num_rows(tree, "tree")
    rows = -(-n // int(multiple)) * int(multiple)
    return jax.tree_util.tree_map(lambda x: _pad_leaf(x, rows), tree), n


def shard_rows(tree: Any, mesh: Optional[Mesh] = None) -> ShardedRows:
    """Pads a dataset to a multiple of the mesh size and places it on the mesh, split along rows.

    Single process: ``tree`` holds all N rows. (Several processes: use
    :func:`from_process_shards`, each process passing its own rows.)

    Args:
      tree: pytree of ``[N, ...]`` arrays with a common leading size N >= 1 (validated
        containers such as ``Trajectories.create(...)``).
      mesh: default :func:`data_mesh`.

    Returns:
      :class:`ShardedRows` with ``[N_pad, ...]`` leaves, N_pad the next multiple of the device
      count, each device holding N_pad / D consecutive rows.
    """
    mesh = data_mesh() if mesh is None else mesh
    if jax.process_count() > 1:
        raise ValueError(
            "tree: shard_rows places one process's full dataset; with several processes use from_process_shards"
        )
    padded, n = pad_rows(tree, mesh.size)
    if n < 1:
        raise ValueError("tree: expected at least one row, found 0")
    return ShardedRows(jax.device_put(padded, row_sharding(mesh)), ((0, n),))


def _merge_runs(runs: list) -> tuple:
    out: list = []
    for a, b in runs:
        if b <= a:
            continue
        if out and out[-1][1] == a:
            out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return tuple(out)


def from_process_shards(local_tree: Any, mesh: Optional[Mesh] = None) -> ShardedRows:
    """Global row-sharded arrays from each process's own rows (under ``jax.distributed``).

    Every process calls this with its part of the dataset (process p's rows come after those of
    processes 0..p-1 in the global order). Row counts may differ: each process's block is padded
    to a common size, a multiple of its device count, and the real rows are recorded in
    :attr:`ShardedRows.runs`. With one process this equals :func:`shard_rows`.

    Args:
      local_tree: pytree of ``[n_p, ...]`` arrays, the same structure, dtypes and trailing shapes
        in every process.
      mesh: default :func:`data_mesh` (all devices of all processes, ordered by process).

    Returns:
      :class:`ShardedRows` of global arrays ``[P * L, ...]``.
    """
    from jax.experimental import multihost_utils

    mesh = data_mesh() if mesh is None else mesh
    n_local = _num_rows(local_tree, "local_tree")
    counts = np.asarray(multihost_utils.process_allgather(np.asarray(n_local, np.int32))).reshape(-1)
    if int(counts.sum()) < 1:
        raise ValueError("local_tree: expected at least one row over all processes, found 0")
    local_devices = sum(1 for d in mesh.devices.flat if d.process_index == jax.process_index())
    block = -(-int(counts.max()) // local_devices) * local_devices
    padded = jax.tree_util.tree_map(lambda x: _pad_leaf(x, block), local_tree)
    sharding = row_sharding(mesh)
    data = jax.tree_util.tree_map(
        lambda x: jax.make_array_from_process_local_data(sharding, x, (block * counts.size,) + x.shape[1:]), padded
    )
    runs = _merge_runs([(p * block, p * block + int(c)) for p, c in enumerate(counts)])
    return ShardedRows(data, runs)


def to_host(tree: Any) -> Any:
    """numpy copies of (possibly multi-process) arrays; every process gets the whole value."""

    def one(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            if x.sharding.is_fully_replicated:
                return np.asarray(x.addressable_data(0))
            from jax.experimental import multihost_utils

            return np.asarray(multihost_utils.process_allgather(x, tiled=True))
        return np.asarray(x)

    return jax.tree_util.tree_map(one, tree)


def sharded(
    fn: Callable[..., Any],
    mesh: Optional[Mesh] = None,
    *,
    out_shardings: Any = "replicated",
    static_argnums: Sequence[int] = (),
) -> Callable[..., Any]:
    """``g(placed, *args) = fn(placed.rows(), *args)``, jitted and traced under ``mesh``.

    ``fn`` is any function of the real rows: an estimator call, an LSTD solve, a whole
    ``train(key, data)``. Under ``jit`` GSPMD partitions it along the rows of ``placed`` and
    reduces across devices; tracing under ``jax.set_mesh(mesh)`` makes the row-blocked loops of
    :mod:`~offrl_jax.core.blocking` run as one block per device (:func:`rows_are_sharded`).
    Outputs are replicated by default (small results, readable on every process); pass
    ``out_shardings=None`` to let XLA choose (e.g. per-row outputs left sharded). Create the
    wrapper once and call it many times. With several processes, pass further arguments as
    Python or numpy values (the same in every process) or build them inside ``fn`` (PRNG keys
    from an int seed), since arrays committed to one process's device cannot enter the program.

    Args:
      fn: ``fn(rows, *args)``.
      mesh: the mesh the rows are placed on (default :func:`data_mesh`).
      out_shardings: ``"replicated"``, ``None`` or a ``jax.jit`` ``out_shardings`` value.
      static_argnums: positions in ``g``'s ``args`` (0 = the first after ``placed``) that are
        static.

    Returns:
      ``g(placed: ShardedRows, *args)``.
    """
    mesh = data_mesh() if mesh is None else mesh
    outs = replicated(mesh) if isinstance(out_shardings, str) and out_shardings == "replicated" else out_shardings

    def call(placed: ShardedRows, *args: Any) -> Any:
        return fn(placed.rows(), *args)

    kwargs = {} if outs is None else {"out_shardings": outs}
    jitted = jax.jit(call, static_argnums=tuple(1 + int(i) for i in static_argnums), **kwargs)

    def check(placed: Any) -> None:
        if not isinstance(placed, ShardedRows):
            raise ValueError(
                f"placed: expected a ShardedRows (shard_rows / from_process_shards), found {type(placed).__name__}"
            )

    @functools.wraps(fn)
    def run(placed: ShardedRows, *args: Any) -> Any:
        check(placed)
        with jax.set_mesh(mesh):
            return jitted(placed, *args)

    def lower(placed: ShardedRows, *args: Any) -> Any:
        check(placed)
        with jax.set_mesh(mesh):
            return jitted.lower(placed, *args)

    run.lower = lower  # ``run.lower(placed, *args).compile()``: the executable, to inspect or time
    return run


def _global(x: np.ndarray, sharding: NamedSharding) -> Array:
    """A global array from a host value every process holds whole (one or several processes)."""
    return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])


def replicate(tree: Any, mesh: Optional[Mesh] = None) -> Any:
    """Places a pytree whole on every device of the mesh (every process passes the same values)."""
    mesh = data_mesh() if mesh is None else mesh
    sharding = replicated(mesh)
    return jax.tree_util.tree_map(lambda x: _global(np.asarray(x), sharding), tree)


def shard_seeds(train_seeds: Callable[[Array, Any], Any], mesh: Optional[Mesh] = None) -> Callable[[Array, Any], Any]:
    """A learner's seeds split over devices: ``g(keys [S], data)`` equal to ``train_seeds(keys, data)``.

    ``train_seeds`` is ``jax.vmap(train, in_axes=(0, None))`` or
    :func:`~offrl_jax.core.learner.make_train_seeds` of any learner (each seed an independent
    run). The keys are padded to a multiple of the device count (repeating the first key; the
    extra runs are dropped), placed one block per device, ``data`` is replicated, and every
    device trains its own seeds: no communication between seeds. Every process passes the same
    keys and data. Outputs keep the seed axis split over devices (read them with
    :func:`to_host` across processes).

    Args:
      train_seeds: ``(keys [S], data) -> pytree with leading seed axis``.
      mesh: default :func:`data_mesh`.

    Returns:
      ``g(keys [S], data) -> train_seeds(keys, data)``.
    """
    mesh = data_mesh() if mesh is None else mesh
    keys_sharding, rep = row_sharding(mesh), replicated(mesh)

    @functools.partial(jax.jit, static_argnums=0, in_shardings=(keys_sharding, rep), out_shardings=keys_sharding)
    def jitted(impl, raw_keys, data):
        keys = raw_keys if impl is None else jax.random.wrap_key_data(raw_keys, impl=impl)
        return train_seeds(keys, data)

    def run(keys: Array, data: Any) -> Any:
        num = int(keys.shape[0])
        if num < 1:
            raise ValueError("keys: expected at least one key, found 0")
        typed = jnp.issubdtype(keys.dtype, jax.dtypes.prng_key)
        impl = jax.random.key_impl(keys) if typed else None
        raw = np.asarray(jax.random.key_data(keys) if typed else keys)
        padded = -(-num // mesh.size) * mesh.size
        raw = np.concatenate([raw, np.broadcast_to(raw[:1], (padded - num,) + raw.shape[1:])])
        out = jitted(impl, _global(raw, keys_sharding), replicate(data, mesh))
        return out if padded == num else jax.tree_util.tree_map(lambda x: x[:num], out)

    return run
