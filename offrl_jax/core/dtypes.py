"""The one dtype policy of every public entry point.

Numeric inputs of the public functions pass through :func:`float_inputs` (or :func:`as_float`
for one array) before any computation:

* Python scalars, lists and tuples, numpy arrays and JAX arrays are all accepted;
* booleans and integers (signed or unsigned) are converted to floating point;
* half precision (``float16``, ``bfloat16``) is computed in ``float32``: its range (max 65504)
  overflows in the products and sums of importance weights, so it is never used internally;
* several inputs of one call are promoted to one float dtype, the widest float among them
  (``float32`` with ``float64`` gives ``float64``; integers do not widen it); when none of
  them is a float, JAX's default float (``float32``, or ``float64`` under ``jax_enable_x64``);
* complex, string and object arrays raise ``ValueError`` naming the argument.

Integer arrays that are *indices* (actions, observations of a table, episode lengths) are not
floats: families keep them integral and check their range themselves.

Works on tracers too (the decision depends only on dtypes, which are static), so it may be
called inside ``jit``.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np

Array = Any

__all__ = ["float_dtype", "float_inputs", "as_float", "input_dtype"]

_HALF = (np.dtype(np.float16), np.dtype(jnp.bfloat16))


def input_dtype(x: Array, name: str) -> np.dtype:
    """The dtype ``x`` has (or would have as an array); ``ValueError`` if it is not real numeric."""
    if isinstance(x, (jax.Array, np.ndarray, np.generic)):
        dt = np.dtype(x.dtype)
    elif isinstance(x, bool):
        dt = np.dtype(bool)
    elif isinstance(x, int):
        dt = np.dtype(np.int32)
    elif isinstance(x, float):
        dt = np.dtype(jnp.result_type(float))
    else:
        try:
            dt = np.asarray(x).dtype
        except Exception as exc:  # ragged lists and the like
            raise ValueError(f"{name}: expected a numeric array, could not convert it ({exc})") from None
        if dt.kind == "f":
            dt = np.dtype(jnp.result_type(float))  # Python floats in a list: the default float
        elif dt.kind in "iu":
            dt = np.dtype(np.int32)
    if dt.kind not in "biuf" and dt != np.dtype(jnp.bfloat16):
        raise ValueError(f"{name}: expected a real numeric array (bool, int or float), found dtype {dt}")
    return dt


def float_dtype(*dtypes: np.dtype) -> np.dtype:
    """The float dtype of a call whose inputs have ``dtypes`` (see the module docstring)."""
    floats = []
    for dt in dtypes:
        dt = np.dtype(dt)
        if dt in _HALF:
            floats.append(np.dtype(np.float32))
        elif dt.kind == "f":
            floats.append(dt)
    if not floats:
        return np.dtype(jnp.result_type(float))
    out = floats[0]
    for dt in floats[1:]:
        out = np.promote_types(out, dt)
    # Respect JAX's canonical dtypes (float64 only when x64 is enabled).
    return np.dtype(jax.dtypes.canonicalize_dtype(out))


def float_inputs(
    arrays: Sequence[Optional[Array]], names: Sequence[str], dtype: Optional[Any] = None
) -> Tuple[Optional[jax.Array], ...]:
    """Converts ``arrays`` to JAX arrays of one float dtype (``None`` entries stay ``None``).

    Args:
      arrays: the numeric inputs of one call.
      names: their argument names, used in error messages.
      dtype: force this float dtype instead of the promoted one.

    Returns:
      A tuple of ``jax.Array`` (or ``None``), all of the same float dtype.

    Raises:
      ValueError: naming the argument, for complex, string, object or ragged inputs.
    """
    if len(arrays) != len(names):
        raise ValueError("float_inputs: expected one name per array")
    dts = [input_dtype(a, n) for a, n in zip(arrays, names) if a is not None]
    out_dt = np.dtype(dtype) if dtype is not None else float_dtype(*dts)
    return tuple(None if a is None else jnp.asarray(a).astype(out_dt) for a in arrays)


def as_float(x: Array, name: str = "x", dtype: Optional[Any] = None) -> jax.Array:
    """One array under the dtype policy (see :func:`float_inputs`)."""
    return float_inputs([x], [name], dtype)[0]
