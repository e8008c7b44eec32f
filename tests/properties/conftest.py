"""Hypothesis settings of the property-based tests: deterministic and cheap.

``derandomize=True`` draws the same examples on every run and no example database is kept, so
CI sees the same cases each time; ``max_examples=25`` and fixed small shapes (values and masks
vary, shapes do not) keep every compiled function compiled once. The fixtures ``cast`` and
``dtype_matrix`` are the dtype-policy check every module runs.
"""

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "offrl",
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.load_profile("offrl")
# Per-test override used by the modules (``settings.get_profile("offrl_cheap")``): every health
# check off, for strategies that filter or draw large examples on purpose.
settings.register_profile(
    "offrl_cheap",
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)

# The dtype policy as a matrix (input kind x function) against the float64 result.
DTYPE_KINDS = ("int32", "list", "float16", "float32")


class Cast:
    """Casts an array to one input kind of the dtype policy: a numpy dtype name or ``"list"``."""

    def __init__(self, kind):
        self.kind = kind

    def __call__(self, x):
        x = np.asarray(x)
        return x.tolist() if self.kind == "list" else x.astype(self.kind)


@pytest.fixture
def cast():
    """``cast(kind)``: a :class:`Cast` to that input kind."""
    return Cast


@pytest.fixture
def dtype_matrix():
    """``check(fn)``: ``fn(Cast(kind))`` for every kind of :data:`DTYPE_KINDS` returns a float
    array (never float16) equal to ``fn(Cast("float64"))`` within 1e-5 (relative)."""

    def check(fn):
        ref = fn(Cast("float64"))
        for kind in DTYPE_KINDS:
            out = jnp.asarray(fn(Cast(kind)))
            assert jnp.issubdtype(out.dtype, jnp.floating) and out.dtype != jnp.float16, kind
            np.testing.assert_allclose(out, ref, rtol=1e-5, err_msg=kind)

    return check
