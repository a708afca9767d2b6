"""pytest conventions of the gate: test ids are the check names, JUnit carries what each check
measured (``record_property``) under a real classname, and the evaluation shows progress."""
from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET

from harness.gate.checks import CHECK_NAMES
from suites.fixtures import REPO


def _pytest(env, cwd, *args):
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def test_collected_ids_are_the_check_names(subprocess_env):
    res = _pytest(subprocess_env, REPO, "suites/gate/test_gate_checks.py", "--collect-only", "-q")
    ids = [ln for ln in res.stdout.splitlines() if "::" in ln]
    assert ids == [f"suites/gate/test_gate_checks.py::s2gate::{name}" for name in CHECK_NAMES], res.stdout


def test_junit_names_classnames_and_measured_values(tiny_models, tmp_path, subprocess_env):
    """From a user's folder (the module lies outside the rootdir, where JUnit's classname used to be empty)."""
    f, q, d = tiny_models
    res = _pytest(subprocess_env, tmp_path, "--pyargs", "harness.gate.suite", "--s2-model", f, "--s2-qat-model", q,
                  "--s2-dataset", d, "--s2-report", str(tmp_path / "r"), "--junitxml", str(tmp_path / "j.xml"),
                  "-k", "accuracy or memory or hardware")
    assert res.returncode == 0, res.stdout + res.stderr
    # progress: the announcement before the (captured-output-free) evaluation, on the terminal
    assert "s2gate: evaluating float.nir + qat.nir on data.npz/test once for all checks" in res.stdout
    root = ET.parse(tmp_path / "j.xml").getroot()
    cases = {c.attrib["name"]: c for c in root.iter("testcase")}
    assert sorted(cases) == sorted(["accuracy.ptq", "accuracy.qat", "memory.reduction", "memory.fits-chip",
                                    "hardware-in-the-loop"])
    assert {c.attrib["classname"] for c in cases.values()} == {"harness.gate.suite.s2gate"}
    summary = {c["name"]: c for c in json.loads((tmp_path / "r" / "summary.json").read_text())["checks"]}
    for name, case in cases.items():
        props = {p.attrib["name"]: p.attrib["value"] for p in case.iter("property")}
        assert props["check"] == name
        assert props["measured"] == summary[name]["measured"] and props["budget"] == summary[name]["budget"]
        assert props["verdict"] == summary[name]["verdict"]
        if summary[name]["value"] is not None:
            assert float(props["value"]) == summary[name]["value"]
    skipped = cases["hardware-in-the-loop"].find("skipped")
    assert skipped is not None and "no board configured" in skipped.attrib["message"]
