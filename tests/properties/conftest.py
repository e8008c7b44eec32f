"""Hypothesis settings of the property-based tests: deterministic and cheap.

``derandomize=True`` draws the same examples on every run and no example database is kept, so
CI sees the same cases each time; ``max_examples=25`` and fixed small shapes (values and masks
vary, shapes do not) keep every compiled function compiled once.
"""

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
