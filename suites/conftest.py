"""What only the suites need: the hooks of the hardening corpus table (they live here so that
the xdist controller has them). The suite-wide setup (hypothesis profiles, markers, shared
fixtures) is in the repository's root ``conftest.py``."""

from suites.hardening.summary import (  # noqa: F401
    pytest_runtest_logreport, pytest_runtest_makereport, pytest_terminal_summary)
