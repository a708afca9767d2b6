"""The threshold-scaling ablation as a section of the gate's report (issue 14): opt-in option, typed
field on the Evaluation, the section in Markdown and HTML."""
from __future__ import annotations

import dataclasses

import pytest

SAMPLES = 16  # test and calibration samples of the ablation: enough to separate scaled from unscaled


@pytest.fixture(scope="module")
def ablation_evaluation():
    """The bundled P-SNN on the first 16 stand-in test samples with the ablation on (no Q-SNN, no sweep)."""
    from harness.gate.config import GateConfig
    from harness.gate.evaluate import evaluate

    cfg = GateConfig(samples=SAMPLES, threshold_ablation=True, threshold_ablation_samples=SAMPLES, qat_model=None,
                     sweep=())
    return evaluate(cfg, debug=True)


def _report(ev):
    from harness.gate.checks import run_checks
    from harness.gate.report.documents import html_report, markdown_report

    checks = run_checks(ev)
    return markdown_report(ev, checks, {}), html_report(ev, checks, {})


@pytest.mark.slow  # one gate evaluation with the ablation: ~25 s on 2 loaded cores
@pytest.mark.xdist_group("threshold-ablation")  # one worker computes the shared evaluation once
def test_section_has_the_three_variants_when_on(ablation_evaluation):
    ev = ablation_evaluation
    assert "threshold_ablation" not in ev.errors
    a = ev.threshold_ablation
    assert [r.variant for r in a.rows] == ["float", "scaled", "unscaled", "searched"]
    assert a.samples == SAMPLES and a.calibration_samples == SAMPLES
    assert "train split" in a.calibration_source  # the stand-in's other split, disjoint from the test split
    assert a.populations == ["if1", "if2", "if3", "if4"]
    md, page = _report(ev)
    assert "## Threshold scaling (ablation)" in md
    section = md[md.index("## Threshold scaling (ablation)"):]
    section = section[:section.index("\n## ", 1)]
    for variant in ("scaled", "unscaled", "searched"):
        assert f"\n| {variant} " in section
    assert "thresholds must be scaled with the weights" in section
    assert "Threshold scaling (ablation)" in page and "<td>unscaled</td>" in page


@pytest.mark.slow  # one gate evaluation with the ablation: ~25 s on 2 loaded cores
@pytest.mark.xdist_group("threshold-ablation")  # one worker computes the shared evaluation once
def test_unscaled_thresholds_lose_the_accuracy(ablation_evaluation):
    """Unscaled thresholds are lambda (~10-100) times too low in chip units: the first layer fires far
    more and the class is near chance (11 classes); scaled thresholds keep the float accuracy."""
    ev = ablation_evaluation
    a = ev.threshold_ablation
    sc, un = a.row("scaled"), a.row("unscaled")
    assert sc.accuracy >= 80.0 and un.accuracy <= 40.0
    assert un.accuracy < sc.accuracy - 40.0
    assert un.rates["if1"] > 5 * sc.rates["if1"]
    # cross-check with the gate's own PTQ flow (another code path: FlowRun, not the ablation's runner)
    stats = ev.accuracy_stats["ptq"]
    assert stats.samples == SAMPLES
    assert a.row("float").accuracy == pytest.approx(stats.reference)
    assert sc.accuracy == pytest.approx(stats.candidate)


@pytest.mark.slow  # one gate evaluation with the ablation: ~25 s on 2 loaded cores
@pytest.mark.xdist_group("threshold-ablation")  # one worker computes the shared evaluation once
def test_json_round_trip_keeps_the_ablation(ablation_evaluation):
    from harness.gate.results import Evaluation, ThresholdAblationResult

    ev = ablation_evaluation
    data = ev.to_json()
    assert data["threshold_ablation"]["rows"][2]["variant"] == "unscaled"
    back = Evaluation.from_json(data)
    assert isinstance(back.threshold_ablation, ThresholdAblationResult)
    assert back == ev


@pytest.mark.slow  # one gate evaluation with the ablation: ~25 s on 2 loaded cores
@pytest.mark.xdist_group("threshold-ablation")  # one worker computes the shared evaluation once
def test_section_absent_when_off(tiny_evaluation, ablation_evaluation):
    assert tiny_evaluation.threshold_ablation is None
    assert "threshold_ablation" not in tiny_evaluation.to_json()
    md, page = _report(tiny_evaluation)
    assert "Threshold scaling" not in md and "Threshold scaling" not in page
    md, _ = _report(dataclasses.replace(ablation_evaluation, threshold_ablation=None))
    assert "Threshold scaling" not in md


def test_npz_dataset_without_calibration_is_one_clear_error(tiny_config):
    """A .npz dataset has no other split to calibrate on: the section fails with a hint, the rest still runs."""
    from harness.gate.evaluate import evaluate

    ev = evaluate(tiny_config.replace(threshold_ablation=True))
    msg = ev.errors["threshold_ablation"]
    assert "calibrate CAL.npz" in msg and "[bad-option]" in msg
    assert ev.threshold_ablation is None and "ptq" in ev.accuracy_stats


def test_option_is_in_the_digest_and_on_both_interfaces():
    from _pytest.config.argparsing import Parser

    from harness.cli import build_parser
    from harness.cli.gate import config_from_args
    from harness.gate.config import GateConfig
    from harness.pytest_plugin import config_from_options, pytest_addoption

    base = GateConfig(qat_model=None)
    assert base.threshold_ablation is False
    assert base.replace(threshold_ablation=True).digest() != base.digest()
    assert base.replace(threshold_ablation_samples=8).digest() != base.digest()
    args = build_parser("gate").parse_args(["gate", "--threshold-ablation", "--threshold-ablation-samples", "8"])
    cfg = config_from_args(args, threshold_ablation=args.threshold_ablation or None,
                           threshold_ablation_samples=args.threshold_ablation_samples)
    assert cfg.threshold_ablation is True and cfg.threshold_ablation_samples == 8
    parser = Parser()
    pytest_addoption(parser)
    ns = parser.parse(["--s2-threshold-ablation", "--s2-threshold-ablation-samples", "8"])

    class _Config:
        def getoption(self, name):
            return getattr(ns, name.lstrip("-").replace("-", "_"))

    cfg = config_from_options(_Config())
    assert cfg.threshold_ablation is True and cfg.threshold_ablation_samples == 8
    with pytest.raises(Exception, match="threshold-ablation samples must be >= 1"):
        GateConfig(threshold_ablation_samples=0)


def test_calibration_samples_come_from_the_file_else_the_other_split(tmp_path):
    import numpy as np

    from harness.data import standin_split
    from harness.gate.config import GateConfig
    from harness.gate.evaluate import ablation_calibration

    x = np.zeros((10, 20, 2, 32, 32), dtype=bool)
    x[:, 3, 0, 1, 1] = True
    path = tmp_path / "cal.npz"
    np.savez(path, spikes=x)
    cal, where = ablation_calibration(GateConfig(qat_model=None, calibrate=str(path), threshold_ablation_samples=4), 20)
    assert cal.shape == (4, 20, 2, 32, 32) and np.array_equal(cal, x[:4]) and "cal.npz" in where
    cal, where = ablation_calibration(GateConfig(qat_model=None, split="train", threshold_ablation_samples=3), 20)
    expected, _ = standin_split("test", seed=0, n=3)
    assert np.array_equal(cal, expected) and "test split" in where
