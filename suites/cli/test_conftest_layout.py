"""The suite-wide pytest setup has one owner, the root conftest.py (hypothesis profiles, markers,
shared fixtures); suites/conftest.py keeps only what the suites need."""
from __future__ import annotations

import os

from hypothesis import settings

from suites.fixtures import REPO


def test_hypothesis_profiles_and_markers_come_from_the_root_conftest(pytestconfig):
    assert settings._current_profile == os.environ.get("HYPOTHESIS_PROFILE", "ci")
    assert settings.get_profile("ci").max_examples == 50 and settings.get_profile("slow").max_examples >= 10_000
    markers = {m.split(":")[0] for m in pytestconfig.getini("markers")}
    assert {"slow", "norse", "s2gate_check"} <= markers
    # one owner: the profiles are registered in the root conftest only, the markers not in pyproject
    assert "register_profile" in (REPO / "conftest.py").read_text()
    assert "register_profile" not in (REPO / "suites" / "conftest.py").read_text()
    assert '"slow:' not in (REPO / "pyproject.toml").read_text()


def test_shared_fixtures(repo_root, bundled_models, subprocess_env):
    assert repo_root == REPO and all(p.is_file() for p in bundled_models)
    assert subprocess_env["PYTHONPATH"].split(os.pathsep)[0] == str(REPO)
    assert "PYTEST_XDIST_WORKER" not in subprocess_env
