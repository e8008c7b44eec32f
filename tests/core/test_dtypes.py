"""The dtype policy (core.dtypes): what every public entry point does with its numeric inputs."""

import jax.numpy as jnp
import numpy as np
import pytest

from offrl_jax.core.dtypes import as_float, float_dtype, float_inputs


def test_integers_bools_and_lists_become_the_default_float():
    default = jnp.result_type(float)
    for x in ([1, 2, 3], np.arange(3, dtype=np.int32), np.array([True, False]), [0.5, 1.5], 3):
        assert as_float(x, "x").dtype == default


def test_half_precision_is_computed_in_float32():
    assert as_float(np.ones(2, np.float16), "x").dtype == jnp.float32
    assert as_float(jnp.ones(2, jnp.bfloat16), "x").dtype == jnp.float32


def test_mixed_inputs_promote_to_the_widest_float_and_integers_do_not_widen():
    a, b = float_inputs([np.ones(2, np.float32), np.ones(2, np.int64)], ["a", "b"])
    assert a.dtype == b.dtype == jnp.float32
    a, b, c = float_inputs([np.ones(2, np.float32), np.ones(2, np.float64), None], ["a", "b", "c"])
    assert a.dtype == b.dtype == jnp.float64 and c is None  # tests run with x64 enabled
    assert float_dtype(np.float16, np.int32) == np.float32


def test_values_are_kept_exactly():
    np.testing.assert_array_equal(np.asarray(as_float([1, -2, 3], "x")), [1.0, -2.0, 3.0])


@pytest.mark.parametrize("bad", [np.array([1 + 2j]), np.array(["a"]), [[1, 2], [3]]])
def test_non_real_inputs_are_refused_naming_the_argument(bad):
    with pytest.raises(ValueError, match="rewards"):
        as_float(bad, "rewards")
