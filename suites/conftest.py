"""Suite-wide settings: hypothesis profiles (and the hooks of the hardening corpus table).

``ci`` (default) keeps property tests quick; ``slow`` runs the big fuzz profile:
``HYPOTHESIS_PROFILE=slow pytest suites/ -m slow -n auto``.
"""
import os

from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=50, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("slow", max_examples=10_000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# the bad-input corpus table at the end of the run (hooks live here so that the xdist controller has them)
from suites.hardening.summary import (  # noqa: E402,F401
    pytest_runtest_logreport, pytest_runtest_makereport, pytest_terminal_summary)
