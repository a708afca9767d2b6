"""Data is checked before evaluation: spikes 0/1, labels within the model's classes, shapes, N, T, NaN.

The CLI and pytest are run as subprocesses, as a newcomer would run them, on the bundled
P-SNN (input (2, 32, 32) per tick, 11 classes) and an .npz the test writes.
"""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from harness.data.checks import chance_level, check_dataset
from harness.flags import flag
from s2common.errors import InputDataError
from suites.fixtures import REPO

BUNDLED = REPO / "harness" / "bundled" / "psnn.nir"
SHAPE = (2, 32, 32)  # the bundled P-SNN's Input
CLASSES = 11


@pytest.fixture(scope="module")
def bad_npz(tmp_path_factory):
    """counts.npz: ToFrame-like event counts (values 0..k); labels.npz: 0/1 spikes, labels 11 and 12 (of 11 classes)."""
    d = tmp_path_factory.mktemp("bad-data")
    rng = np.random.default_rng(0)
    counts = rng.poisson(0.3, size=(6, 20, *SHAPE)).astype(np.int16)
    assert counts.max() > 1  # the fixture really holds counts
    np.savez(d / "counts.npz", spikes=counts, labels=np.arange(6) % CLASSES)
    labels = np.array([0, 1, 2, 11, 12, 3])
    np.savez(d / "labels.npz", spikes=counts > 0, labels=labels)
    return d


def _one_error_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


@pytest.mark.parametrize("name, rule", [("counts", "event-counts"), ("labels", "label-out-of-range")])
def test_gate_cli_refuses_bad_npz_with_one_line(bad_npz, name, rule, run_s2gate):
    path = bad_npz / f"{name}.npz"
    proc = run_s2gate("gate", "--dataset", path, "--no-report", cwd=bad_npz)
    assert proc.returncode == 2, proc.stderr
    line = _one_error_line(proc.stderr)
    assert line.startswith(f"s2gate gate: error: [{rule}] {path}:"), line
    if rule == "event-counts":
        assert "--binarize" in line and "--s2-binarize" not in line
    else:
        assert "11 classes" in line and "values 11, 12" in line
    assert proc.stdout == ""  # no summary of an evaluation that never ran


@pytest.mark.parametrize("name, rule", [("counts", "event-counts"), ("labels", "label-out-of-range")])
def test_pytest_gate_on_bad_npz_is_one_clear_error(bad_npz, name, rule, subprocess_env):
    """Under pytest: one usage error naming the .npz, before any check runs; not '9 errors', no summary."""
    path = bad_npz / f"{name}.npz"
    proc = subprocess.run([sys.executable, "-m", "pytest", "--pyargs", "harness.gate.suite", "-p", "no:cacheprovider",
                           "--s2-dataset", str(path), "-q"], capture_output=True, text=True, env=subprocess_env,
                          cwd=bad_npz, timeout=600)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 4, text  # pytest's usage error
    errors = [ln for ln in text.splitlines() if ln.startswith("ERROR:")]
    assert len(errors) == 1 and f"[{rule}] {path}:" in errors[0], text
    if rule == "event-counts":
        assert "--s2-binarize" in errors[0]
    assert "errors" not in text and "s2gate summary" not in text and "Traceback" not in text


def test_binarize_thresholds_counts_and_says_so():
    counts = np.zeros((2, 3, 4), np.int32)
    counts[0, 0, 0], counts[1, 2, 3], counts[0, 1, 1] = 3, 1, 2
    with pytest.raises(InputDataError) as info:
        check_dataset(counts, [0, 1], file="d.npz")
    assert info.value.rule == "event-counts" and info.value.file == "d.npz"
    got = check_dataset(counts, [0, 1], file="d.npz", binarize=True)
    assert got.spikes.dtype == bool and got.binarized
    assert np.argwhere(got.spikes).tolist() == [[0, 0, 0], [0, 1, 1], [1, 2, 3]]
    # 2 of the 24 values were above 1 (the 3 and the 2), max 3
    assert got.notes == [f"binarized ({flag('binarize')}): 2 of 24 values (8.33 %) were above 1 (max 3) and became 1 (x > 0 -> 1)"]


@pytest.mark.parametrize("spikes, labels, kw, rule", [
    (np.full((2, 3, 4), 0.5), [0, 1], {}, "not-spikes"),
    (np.where(np.eye(4, dtype=bool)[None, :3], -1.0, 0.0).repeat(2, 0), [0, 1], {}, "not-spikes"),
    (np.array([[[0.0, np.nan]]] * 2), [0, 1], {}, "non-finite-input"),
    (np.zeros((2, 3, 4), bool), [0, 4], {"n_classes": 4}, "label-out-of-range"),
    (np.zeros((2, 3, 4), bool), [0, -1], {}, "label-out-of-range"),
    (np.zeros((2, 3, 4), bool), [0.0, 1.5], {}, "bad-labels"),
    (np.zeros((2, 3, 4), bool), [0, 1, 2], {}, "bad-dataset"),
    (np.zeros((0, 3, 4), bool), [], {}, "bad-dataset"),
    (np.zeros((2, 0, 4), bool), [0, 1], {}, "bad-dataset"),
    (np.zeros((2, 4), bool), [0, 1], {}, "bad-dataset"),
    (np.zeros((2, 3, 5), bool), [0, 1], {"input_shape": (4,)}, "bad-input"),
])
def test_each_rule_fails_for_its_reason(spikes, labels, kw, rule):
    with pytest.raises(InputDataError) as info:
        check_dataset(spikes, np.asarray(labels), file="x.npz", **kw)
    assert info.value.rule == rule and info.value.file == "x.npz"


def test_negative_values_are_not_binarized_silently():
    x = np.zeros((1, 2, 2))
    x[0, 0, 0] = -1
    with pytest.raises(InputDataError) as info:
        check_dataset(x, [0], binarize=True)
    assert info.value.rule == "not-spikes"


def test_good_data_passes_unchanged():
    rng = np.random.default_rng(1)
    x = (rng.random((3, 5, 2, 2)) < 0.3).astype(np.float32)
    got = check_dataset(x, np.array([0.0, 2.0, 1.0]), n_classes=3, input_shape=(2, 2))
    assert got.spikes.dtype == bool and np.array_equal(got.spikes, x == 1)
    assert got.labels.dtype == np.int64 and got.labels.tolist() == [0, 2, 1] and got.notes == []


def test_chance_level_and_the_below_chance_warning():
    from harness.gate.report import warnings

    # 10 labels, 6 of class 0: guessing 0 gets 60 %, more than 1/4 = 25 %
    labels = np.array([0] * 6 + [1, 2, 3, 3])
    assert chance_level(labels, 4) == pytest.approx(60.0)
    assert chance_level(np.arange(8) % 8, 8) == pytest.approx(12.5)
    ev = {"data": {"chance": 60.0, "notes": []}, "accuracy": {"float": 60.0, "qat_float": 61.0}}
    w = warnings(ev)
    assert len(w) == 1 and w[0].startswith("P-SNN float accuracy 60.00 % is at or below chance (60.00 %")
    ev["accuracy"]["float"] = 60.5
    assert warnings(ev) == []


def test_a_missing_dataset_is_one_line_before_any_work(tmp_path, run_s2gate):
    missing = tmp_path / "nothere.npz"
    proc = run_s2gate("gate", "--dataset", missing, "--no-report", cwd=tmp_path)
    assert proc.returncode == 2
    line = _one_error_line(proc.stderr)
    assert line.startswith(f"s2gate gate: error: [data-not-found] {missing}:") and "--dataset stand-in" in line
    assert proc.stdout == ""
