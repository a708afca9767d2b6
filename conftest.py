"""Suite-wide pytest setup for this repository (``pytest suites/``, ``pytest benchmarks/...``).

* hypothesis profiles: ``ci`` (default; quick, derandomized) and ``slow`` (the big fuzz
  profile, >= 10,000 examples): ``HYPOTHESIS_PROFILE=slow pytest suites/ -m slow -n auto``;
* the shared markers (``slow``, ``norse``), registered once here;
* shared fixtures: :func:`repo_root`, :func:`bundled_models`, :func:`subprocess_env` and
  :func:`run_s2gate` (the ``s2gate`` command in a subprocess, as a user runs it).

What only the suites need (the hardening corpus table) stays in ``suites/conftest.py``; the
gate's own options, fixtures and checks come from the installed s2gate pytest plugin
(``harness.pytest_plugin``), which also serves teams that run the gate without this repository.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Callable, Dict, Tuple

import pytest
from hypothesis import HealthCheck, settings

REPO = Path(__file__).resolve().parent

settings.register_profile("ci", max_examples=50, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("slow", max_examples=10_000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

MARKERS = {
    "slow": "long checks (gate evaluations, big fuzz profiles); run in parallel with -n auto",
    "norse": "cross-checks against Norse (skipped if norse is not installed)",
}


def pytest_configure(config: pytest.Config) -> None:
    for name, text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository's root folder."""
    return REPO


@pytest.fixture(scope="session")
def bundled_models() -> Tuple[Path, Path]:
    """(psnn.nir, qsnn.nir): the bundled P-SNN and Q-SNN."""
    return REPO / "harness" / "bundled" / "psnn.nir", REPO / "harness" / "bundled" / "qsnn.nir"


@pytest.fixture(scope="session")
def subprocess_env() -> Dict[str, str]:
    """Environment for a child Python: this checkout first on the path, no inherited pytest
    options or xdist worker id, no on-disk data cache."""
    env = dict(os.environ)
    for key in ("PYTEST_XDIST_WORKER", "PYTEST_ADDOPTS"):
        env.pop(key, None)
    env.setdefault("S2GATE_CACHE_DIR", "")
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


@pytest.fixture(scope="session")
def run_s2gate(subprocess_env: Dict[str, str]) -> Callable[..., subprocess.CompletedProcess]:
    """``run_s2gate(*args, cwd=...)``: ``python -m harness ARGS`` in a subprocess (text output)."""

    def run(*args: str, cwd: "str | os.PathLike[str] | None" = None, timeout: float = 600) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "harness", *map(str, args)], capture_output=True, text=True,
                              env=subprocess_env, cwd=cwd or REPO, timeout=timeout)

    return run
