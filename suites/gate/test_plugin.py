"""The pytest plugin from the outside: a separate pytest process on the tiny synthetic models.

* serial and ``-n 2`` give byte-identical ``summary.json`` (same verdicts and numbers);
* ``--junitxml`` lists every check as a test case (HIL skipped with its reason);
* a corrupt model file makes the checks FAIL with the one-line error, never ERROR;
* the terminal summary table is printed.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from harness.gate.checks import CHECK_NAMES

#: one test per check: 2 equivalence + 2 accuracy + memory + fit + 2 design rules + HIL + vendor semantics
CHECK_TESTS = len(CHECK_NAMES)


def _run_pytest(cwd, *args, timeout=300):
    env = dict(os.environ)
    env.pop("PYTEST_XDIST_WORKER", None)
    env.pop("PYTEST_ADDOPTS", None)
    env.setdefault("S2GATE_CACHE_DIR", "")
    cmd = [sys.executable, "-m", "pytest", "--pyargs", "harness.gate.suite", "-p", "no:cacheprovider", "-q",
           "-rfEs", *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def _junit(path):
    root = ET.parse(path).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    cases = suite.findall("testcase")
    return suite.attrib, cases


@pytest.mark.slow
def test_serial_and_two_workers_agree_and_junit_works(tiny_models, tmp_path):
    f, q, d = tiny_models
    common = ["--s2-model", f, "--s2-qat-model", q, "--s2-dataset", d]
    serial = _run_pytest(tmp_path, *common, "--s2-report", str(tmp_path / "r1"), "--junitxml", str(tmp_path / "j1.xml"))
    assert serial.returncode == 0, serial.stdout + serial.stderr
    assert "s2gate summary" in serial.stdout and "accuracy.ptq" in serial.stdout
    assert "NeuroBench figure" in serial.stdout
    parallel = _run_pytest(tmp_path, *common, "-n", "2", "--s2-report", str(tmp_path / "r2"),
                           "--junitxml", str(tmp_path / "j2.xml"))
    assert parallel.returncode == 0, parallel.stdout + parallel.stderr
    a = json.loads((tmp_path / "r1" / "summary.json").read_bytes())
    b = json.loads((tmp_path / "r2" / "summary.json").read_bytes())
    # the digest covers the source files, which may be edited between the two runs on a developer's
    # machine; everything else (verdicts, every number) must be identical
    for s in (a, b):
        assert len(s["evaluation"].pop("digest")) == 64
    assert a == b
    summary = a
    assert summary["verdict"] == "PASS"
    assert [c["name"] for c in summary["checks"]][:2] == ["equivalence.ptq", "equivalence.qat"]
    for j in ("j1.xml", "j2.xml"):
        attrs, cases = _junit(tmp_path / j)
        assert len(cases) == CHECK_TESTS
        assert int(attrs["failures"]) == 0 and int(attrs["errors"]) == 0 and int(attrs["skipped"]) == 1
        skipped = [c for c in cases if c.find("skipped") is not None]
        assert "no board configured" in skipped[0].find("skipped").attrib["message"]
    for name in ("report.md", "report.html", "memory.png", "spike_rates.png", "divergence_raster.png"):
        assert (tmp_path / "r1" / name).stat().st_size > 0


@pytest.mark.slow
def test_corrupt_model_fails_checks_not_errors(tiny_models, tmp_path):
    f, q, d = tiny_models
    bad = tmp_path / "corrupt.nir"
    bad.write_bytes(b"\x89HDF\r\n garbage")
    res = _run_pytest(tmp_path, "--s2-model", str(bad), "--s2-qat-model", q, "--s2-dataset", d,
                      "--junitxml", str(tmp_path / "j.xml"))
    assert res.returncode == 1, res.stdout + res.stderr
    attrs, cases = _junit(tmp_path / "j.xml")
    assert int(attrs["errors"]) == 0
    failed = {c.attrib["name"]: c.find("failure").attrib["message"] for c in cases if c.find("failure") is not None}
    # every check of the float model (PTQ side, and the converter's semantics on it) fails with the
    # file's one-line error; the Q-SNN side passes
    assert set(failed) == {"equivalence.ptq", "accuracy.ptq", "memory.reduction", "memory.fits-chip",
                           "design-rules.ptq", "vendor-semantics"}
    for msg in failed.values():
        assert "corrupt.nir" in msg and "[not-hdf5]" in msg
    assert "Traceback" not in res.stdout


def test_plugin_options_are_registered():
    res = subprocess.run([sys.executable, "-m", "pytest", "--help"], capture_output=True, text=True, timeout=120)
    for opt in ("--s2-model", "--s2-qat-model", "--s2-dataset", "--s2-data-root", "--s2-samples", "--s2-percentile",
                "--s2-backend", "--s2-board-host", "--s2-ptq-budget", "--s2-qat-budget", "--s2-min-memory-reduction",
                "--s2-report", "--s2-binarize"):
        assert opt in res.stdout
