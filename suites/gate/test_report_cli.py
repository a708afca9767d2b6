"""The gate's report files and its commands (``s2gate gate``, ``s2gate sweep``) on the tiny models."""
from __future__ import annotations

import json

import numpy as np
import pytest

from harness.gate.checks import FAIL, run_check, run_checks
from harness.gate.report import report_json, dumps, summary_table, write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_report_files_are_complete_and_deterministic(tiny_evaluation, tmp_path):
    checks = run_checks(tiny_evaluation)
    a = write_report(tiny_evaluation, checks, tmp_path / "a")
    b = write_report(tiny_evaluation, checks, tmp_path / "b")
    for key in ("json", "markdown", "html", "memory", "spike_rates", "divergence_raster"):
        assert open(a[key], "rb").read() == open(b[key], "rb").read(), key
    for key in ("memory", "spike_rates", "divergence_raster"):
        assert open(a[key], "rb").read(8) == PNG_MAGIC
    summary = json.loads(open(a["json"]).read())
    assert summary["verdict"] == "PASS"
    assert {c["name"]: c["verdict"] for c in summary["checks"]}["hardware-in-the-loop"] == "skip"
    md = open(a["markdown"]).read()
    assert "| accuracy.ptq" in md and "![" in md and "## NeuroBench figures" in md
    html = open(a["html"]).read()
    # no sweep in the tiny config: memory, spike rates, raster, weight codes, confusion matrices
    assert html.count("data:image/png;base64,") == 5
    assert "PASS" in html


def test_summary_table_lists_every_check(tiny_evaluation):
    table = summary_table(run_checks(tiny_evaluation))
    lines = table.splitlines()
    assert lines[0].split() == ["check", "measured", "budget", "verdict"]
    from harness.gate.checks import CHECK_NAMES

    assert len(lines) == 2 + len(CHECK_NAMES) and [ln.split()[0] for ln in lines[2:]] == CHECK_NAMES


def test_equivalence_failure_message_names_layer_neuron_tick():
    ev = {"config": {"qat_model": "q.nir"}, "errors": {},
          "equivalence": {"ptq": {"spike_trains": 100, "identical": 97, "ambiguous": 1, "diverging": 2,
                                  "identical_share": 0.97, "consistent_share": 0.98, "prediction_agreement": 0.99,
                                  "first_divergence": {"layer": "lif2", "neuron": [3, 1, 4], "flat_neuron": 68,
                                                       "tick": 17, "sample": 5, "detail": "reference spiked"}}}}
    c = run_check(ev, "equivalence.ptq")
    assert c.verdict == FAIL and c.layer == "lif2"
    assert "equivalence.ptq: 2 of 100 spike trains differ" in c.message
    assert "layer 'lif2', neuron (3, 1, 4) [flat 68], tick 17, sample 5" in c.message


def test_memory_failure_names_the_layer_left_in_float():
    from harness.quantize.memory import FlowMemory, LayerMemory
    from harness.gate.results import Evaluation, MemorySummary

    layers = [LayerMemory("a", 10, 100, 400, 100, 0.75, "int8", 127.0),
              LayerMemory("b", 10, 100, 400, 400, 0.0, "float32", None)]
    # 800 B float32 -> 500 B stored: 1 - 500/800 = 3/8
    fm = FlowMemory(flow="ptq", weights=200, float32_bytes=800, stored_bytes=500, reduction=0.375,
                    reduction_exact=[3, 8], layers=layers)
    ev = Evaluation(config={}, memory=MemorySummary(flows={"ptq": fm}))
    c = run_check(ev, "memory.reduction")
    assert c.verdict == FAIL and c.layer == "b"
    assert "37.50 %" in c.message and "layer 'b' is left in float" in c.message
    # the JSON round trip judges the same
    assert run_check(ev.to_json(), "memory.reduction") == c


def test_cli_gate_exit_codes(tiny_models, tmp_path, capsys):
    from harness.cli import main

    f, q, d = tiny_models
    base = ["gate", "--model", f, "--qat-model", q, "--dataset", d, "--quiet", "--sweep"]
    assert main(base + ["--report", str(tmp_path / "rep")]) == 0
    out = capsys.readouterr().out
    assert "s2gate: PASS" in out and "memory.reduction" in out
    assert json.loads((tmp_path / "rep" / "summary.json").read_text())["verdict"] == "PASS"
    # a stricter memory budget than int8 can give: the check fails -> 1
    assert main(base + ["--no-report", "--min-memory-reduction", "0.8"]) == 1
    assert "FAILED memory.reduction" in capsys.readouterr().out
    # a file that is not a NIR graph: bad input -> 2, the one-line error on stderr
    bad = tmp_path / "x.nir"
    bad.write_text("not hdf5")
    assert main(["gate", "--model", str(bad), "--qat-model", q, "--dataset", d, "--quiet", "--sweep", "--no-report"]) == 2
    err = capsys.readouterr().err
    assert "s2gate gate: error: [not-hdf5]" in err and "x.nir" in err


def test_cli_sweep_table_and_plot(tiny_models, tmp_path, capsys):
    from harness.cli import main

    f, q, d = tiny_models
    out = tmp_path / "sweep.png"
    js = tmp_path / "sweep.json"
    assert main(["sweep", "--model", f, "--dataset", d, "--quiet", "--percentiles", "99", "100",
                 "--out", str(out), "--json", str(js)]) == 0
    assert out.read_bytes()[:8] == PNG_MAGIC
    res = json.loads(js.read_text())
    assert [r["percentile"] for r in res["sweep"]] == [99.0, 100.0]
    # at p = 100 nothing is clipped; at p = 99 about 1 % of each layer's weights are
    assert res["sweep"][1]["clipped_fraction"] == 0.0
    assert 0.0 < res["sweep"][0]["clipped_fraction"] <= 0.02
    # labels are the float model's predictions
    assert res["accuracy"]["float"] == 100.0
    rows = [line.split() for line in capsys.readouterr().out.splitlines() if line.strip().startswith(("99 ", "100 "))]
    assert [r[0] for r in rows] == ["99", "100"]
