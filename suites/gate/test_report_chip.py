"""The report shows the chip: chip map, per-layer quantization against the int8 grid, per-class
accuracy and confusion matrices, provenance, coloured verdicts; the HTML holds all of report.md."""
from __future__ import annotations

import datetime
import hashlib
import html as html_lib
from importlib import metadata

import nir
import numpy as np
import pytest

from harness.gate.checks import FAIL, PASS, SKIP, Check, run_checks
from harness.gate.report import (chip_rows, collect_provenance, per_class_rows, quant_rows, sections, warnings,
                                 write_report)
from harness.gate.report.documents import VERDICT_COLOURS
from harness.gate.results import as_json


@pytest.fixture(scope="module")
def ev(tiny_evaluation):
    return as_json(tiny_evaluation)


def test_quantization_rows_match_lambda_and_codes_derived_from_the_float_file(ev, tiny_models):
    """PTQ at p = 100 per population, round to nearest: λ = 127 / max|W| of the weights into each
    population; the codes round(W λ) fill the histogram; the rounding error is at most 1 / (2 λ)."""
    float_path = tiny_models[0]
    g = nir.read(float_path)
    layers = {r["layer"]: r for r in ev["quantization"]["ptq"]}
    assert sorted(layers) == ["conv1", "fc1", "fc2"]  # each weight node feeds its own population
    for name, r in layers.items():
        w = np.asarray(g.nodes[name].weight, dtype=np.float64)
        lam = 127.0 / np.abs(w).max()
        assert r["scale_min"] == r["scale_max"] == pytest.approx(lam, rel=1e-6)
        codes = np.rint(w * lam).astype(int)
        assert r["histogram"] == np.bincount(codes.reshape(-1) + 127, minlength=255).tolist()
        assert r["n_weights"] == w.size == sum(r["histogram"]) and r["outside"] == 0
        assert r["clipped_fraction"] == 0.0  # p = 100: nothing is beyond the largest weight
        assert 0 < r["max_rounding_error"] <= 0.5 / lam * (1 + 1e-6)
    rows = {row[0]: row for row in quant_rows(ev, "ptq")}
    assert rows["fc2"][3] == f"{127.0 / np.abs(np.asarray(g.nodes['fc2'].weight, np.float64)).max():.5g}"
    assert rows["fc2"][5] == "0.000 %"
    assert rows["fc2"][8] == str(int(np.count_nonzero(layers["fc2"]["histogram"])))
    qat = {row[0]: row for row in quant_rows(ev, "qat")}
    assert qat["fc2"][3] == rows["fc2"][8]  # the tiny Q-SNN is the float model quantized at p = 100
    assert qat["fc2"][4] == "127"  # p = 100: the largest |w| maps to code 127 exactly


def test_code_histogram_counts_codes_beyond_the_int8_grid():
    """A 16-bit export (codes x 100) leaves the int8 grid: those codes are counted as outside."""
    from harness.gate.details import code_histogram

    hist, outside = code_histogram(np.array([-127, 0, 0, 5, 127, 300, -12700]))
    assert outside == 2 and sum(hist) == 5 and hist[127] == 2 and hist[0] == 1 and hist[254] == 1 and hist[132] == 1


def test_confusion_matrices_of_the_tiny_models(ev, tiny_models):
    """The tiny data's labels are the float model's own predictions, so the float run's confusion
    matrix is diagonal with the label counts on it; PTQ at p = 100 agrees with it (100 %)."""
    labels = np.load(tiny_models[2])["labels"]
    diag = np.diag(np.bincount(labels, minlength=4)).tolist()
    assert ev["confusion"]["ptq"]["float"] == diag
    assert ev["confusion"]["ptq"]["int8"] == diag
    headers, rows = per_class_rows(ev)
    assert headers == ["class", "samples", "P-SNN float", "PTQ int8", "Q-SNN float", "Q-SNN int8"]
    assert [r[1] for r in rows] == [str(int(n)) for n in np.bincount(labels, minlength=4)]


def test_per_class_accuracy_by_hand():
    ev = {"confusion": {"ptq": {"float": [[3, 1], [0, 2]], "int8": [[2, 2], [1, 1]]}}}
    headers, rows = per_class_rows(ev)
    assert headers == ["class", "samples", "P-SNN float", "PTQ int8"]
    assert rows == [["0", "4", "75.0 %", "50.0 %"], ["1", "2", "100.0 %", "50.0 %"]]


def test_chip_table_shows_atoms_pes_and_bytes_against_sram(ev):
    chip = ev["memory"]["chip"]
    rows = {r[0]: r for r in chip_rows(ev)}
    sram = chip["data_sram_per_pe"]
    assert sram == 98_304  # 96 KiB of data SRAM per PE (s2emu.chip's ChipSpec)
    for layer in chip["layers"]:
        r = rows[layer["name"]]
        assert r[4] == f"{layer['pes']:,}" and r[5] == f"{layer['max_bytes_per_pe']:,}"
        assert r[6] == f"{100 * layer['max_bytes_per_pe'] / sram:.1f} % of 98,304 B"
    assert rows["total"][4] == f"{chip['pes']:,}"


def test_html_holds_everything_the_markdown_holds(tiny_evaluation, tmp_path):
    checks = run_checks(tiny_evaluation)
    prov = collect_provenance(as_json(tiny_evaluation)["config"], wall_seconds=3.25,
                              now=datetime.datetime(2026, 12, 1, 20, 0, 0, tzinfo=datetime.timezone.utc))
    written = write_report(tiny_evaluation, checks, tmp_path, provenance=prov)
    md = open(written["markdown"], encoding="utf-8").read()
    page = open(written["html"], encoding="utf-8").read()
    texts = []
    for sec in sections(tiny_evaluation, checks, prov, plots=("weight_histograms", "confusion", "memory")):
        texts += [sec.title, *sec.paragraphs, *sec.bullets]
        for table in sec.tables:
            texts += [table.caption, *table.headers, *(c for row in table.rows for c in row)]
    texts = [str(x) for x in texts if x not in ("", None)]
    assert len(texts) > 200
    # the same labelled memory figures as `s2gate map` / `quantize` print; conv1 4x2x3x3 + fc1 16x64 + fc2 4x16
    # = 1,160 weights, 4 B each as float32
    assert any(x.startswith("weight memory (ptq): 1,160 weights; float32 4,640 B") for x in texts)
    for text in texts:
        assert text in md, text
        assert html_lib.escape(text) in page, text
    for title in ("The chip (PTQ model)", "Quantization per layer", "Provenance", "Accuracy"):
        assert f"## {title}" in md
    for name in ("weight_histograms", "confusion", "memory", "spike_rates", "divergence_raster"):
        assert f"({name}.png)" in md
    assert page.count("data:image/png;base64,") == 5


def test_provenance_names_versions_date_wall_time_and_digests(tiny_models):
    f, q, d = tiny_models
    now = datetime.datetime(2026, 12, 1, 20, 0, 0, 123, tzinfo=datetime.timezone.utc)
    prov = collect_provenance({"model": f, "qat_model": q, "dataset": d}, wall_seconds=12.34, now=now)
    rows = dict((k, v) for k, v in prov.rows())
    assert rows["nir version"] == metadata.version("nir") and rows["torch version"] == metadata.version("torch")
    assert rows["s2gate version"] == metadata.version("s2gate")
    assert rows["date (UTC)"] == "2026-12-01T20:00:00+00:00" and rows["wall time"] == "12.3 s"
    for role, path in (("P-SNN", f), ("Q-SNN", q), ("dataset", d)):
        assert rows[f"{role} sha256"].split()[0] == hashlib.sha256(open(path, "rb").read()).hexdigest()


def test_verdicts_are_coloured():
    checks = [Check("accuracy.ptq", "t", "2.00 pp", "<= 1.10 pp", FAIL, "accuracy.ptq: too much"),
              Check("memory.reduction", "t", "75 %", ">= 75 %", PASS, "ok"),
              Check("hardware-in-the-loop", "t", "-", "identical", SKIP, "no board")]
    ev = {"config": {}, "errors": {}, "data": {"chance": 50.0}, "accuracy": {"float": 40.0}}
    from harness.gate.report import html_report

    page = html_report(ev, checks, {})
    for verdict in ("FAIL", "PASS", "SKIP"):
        assert f"background:{VERDICT_COLOURS[verdict]}'>{verdict}</td>" in page
    assert f"<span style='background:{VERDICT_COLOURS['FAIL']}'>FAIL</span>" in page  # the headline
    # the below-chance warning of the data check is in the report too
    assert warnings(ev)[0].startswith("P-SNN float accuracy 40.00 % is at or below chance (50.00 %")
    assert html_lib.escape(warnings(ev)[0]) in page
