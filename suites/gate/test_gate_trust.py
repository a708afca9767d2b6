"""Issue 13's core: checks that can fail, flows that stay apart, statistics, map = gate, typed results.

Each number asserted here is derived by hand in the test (bytes per weight, Tango's closed form
at zero discordant pairs, McNemar's statistic), not copied from s2gate's output.
"""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from harness.gate.checks import FAIL, PASS, SKIP, run_check, run_checks
from harness.gate.config import GateConfig, bundled_model
from harness.gate.evaluate import evaluate

BUNDLED = os.path.exists(bundled_model("psnn")) and os.path.exists(bundled_model("qsnn"))
needs_bundled = pytest.mark.skipif(not BUNDLED, reason="bundled psnn.nir / qsnn.nir not present")
#: weights of the bundled P-SNN / Q-SNN: conv1 8x2x3x3 + conv2 16x8x3x3 + fc1 128x1024 + fc2 11x128
BUNDLED_WEIGHTS = 144 + 1152 + 131072 + 1408


def _zeros(n: int = 2, t: int = 4, shape=(2, 32, 32)):
    return np.zeros((n, t, *shape), dtype=bool), np.zeros(n, dtype=np.int64)


# ------------------------------------------------------------------ memory.reduction can fail

def test_storage_width_follows_the_codes():
    from harness.quantize.memory import storage_of

    assert storage_of(np.array([-127.0, 0.0, 127.0])) == ("int8", 127.0)
    assert storage_of(np.array([-128.0, 3.0])) == ("int8", 128.0)  # the vendor's truncating conv cast
    assert storage_of(np.array([128.0])) == ("int16", 128.0)
    assert storage_of(np.array([-32768.0, 12700.0])) == ("int16", 32768.0)
    assert storage_of(np.array([40000.0])) == ("int32", 40000.0)
    assert storage_of(np.array([0.5, 1.0]))[0] == "float32"
    assert storage_of(np.array([np.nan]))[0] == "float32"


@needs_bundled
def test_memory_reduction_passes_on_the_bundled_models():
    from harness.quantize import quantize_ptq
    from harness.quantize.memory import flow_memory
    from s2common.graph import load_graph

    for graph in (quantize_ptq(load_graph(bundled_model("psnn"))).graph, load_graph(bundled_model("qsnn"))):
        fm = flow_memory(graph)
        assert fm.weights == BUNDLED_WEIGHTS
        assert fm.float32_bytes == 4 * BUNDLED_WEIGHTS and fm.stored_bytes == BUNDLED_WEIGHTS
        assert fm.reduction_exact == [3, 4] and fm.meets(0.75)
        assert not fm.meets(0.7500001)


@needs_bundled
def test_memory_reduction_fails_on_a_16_bit_qat_export(tmp_path):
    """The bundled Q-SNN with codes and thresholds x 100 (codes up to +-12,700): int16, 2 B per
    weight, so the weight memory halves only: 1 - 2/4 = 50 % < 75 %."""
    import nir

    from s2common.graph import load_graph

    g = load_graph(bundled_model("qsnn"))
    for node in g.nodes.values():
        if hasattr(node, "weight"):
            node.weight = (np.asarray(node.weight) * 100).astype(np.float32)
        for p in ("v_threshold",):
            if getattr(node, p, None) is not None:
                setattr(node, p, (np.asarray(getattr(node, p)) * 100).astype(np.float32))
    path = str(tmp_path / "qsnn16.nir")
    nir.write(path, g)
    ev = evaluate(GateConfig(qat_model=path, sweep=()), data=_zeros())
    qat = ev.memory.flows["qat"]
    assert {r.storage for r in qat.layers} == {"int16"}
    assert qat.stored_bytes == 2 * BUNDLED_WEIGHTS and qat.reduction_exact == [1, 2]
    check = run_check(ev, "memory.reduction")
    assert check.verdict == FAIL, check.message
    assert check.values == {"ptq": 0.75, "qat": 0.5} and check.value == 0.5
    assert "Q-SNN weight memory falls by only 50.00 %" in check.message
    assert "layer 'if1' is stored as int16" in check.message and check.layer == "if1"
    # the PTQ flow's own checks are untouched by the broken Q-SNN
    assert run_check(ev, "design-rules.ptq").verdict == PASS
    assert run_check(ev, "memory.fits-chip").verdict == PASS


def test_memory_reduction_fails_on_a_graph_with_one_float_layer(tiny_models, tmp_path):
    """The tiny Q-SNN with fc1 left in float: conv1 72 + fc2 64 weights at 1 B, fc1 1024 at 4 B:
    stored 72 + 4096 + 64 = 4232 B of 4640 B float32, a reduction of 408/4640 = 51/580."""
    import nir

    from harness.quantize import dequantize
    from s2common.graph import load_graph

    f, q, d = tiny_models
    g = load_graph(q)
    g.nodes["fc1"].weight = np.asarray(dequantize(g).nodes["fc1"].weight, dtype=np.float32)
    assert not np.array_equal(g.nodes["fc1"].weight, np.round(g.nodes["fc1"].weight))
    path = str(tmp_path / "one_float_layer.nir")
    nir.write(path, g)
    ev = evaluate(GateConfig(model=f, qat_model=path, dataset=d, sweep=(), batch_size=16))
    qat = ev.memory.flows["qat"]
    assert qat.stored_bytes == 72 + 4 * 1024 + 64 and qat.float32_bytes == 4 * (72 + 1024 + 64)
    assert qat.reduction_exact == [51, 580]
    check = run_check(ev, "memory.reduction")
    assert check.verdict == FAIL and check.layer == "if2"
    assert "layer 'if2' is left in float" in check.message
    assert run_check(ev, "accuracy.ptq").verdict == PASS


# ------------------------------------------------------------------ flows stay apart

def test_without_a_qsnn_the_qat_checks_skip_with_the_reason(tiny_models):
    f, _, d = tiny_models
    cfg = GateConfig(model=f, dataset=d, sweep=())
    assert cfg.qat_model is None  # the bundled Q-SNN goes with the bundled P-SNN only
    assert GateConfig().qat_model == bundled_model("qsnn")
    ev = evaluate(cfg)
    for name in ("equivalence.qat", "accuracy.qat", "design-rules.qat"):
        c = run_check(ev, name)
        assert c.verdict == SKIP and "bundled Q-SNN is used only with the bundled P-SNN" in c.message


def test_an_unreadable_qsnn_fails_only_the_qat_checks(tiny_config, tmp_path):
    bad = tmp_path / "broken_qsnn.nir"
    bad.write_bytes(b"not a NIR file at all\n" * 8)
    ev = evaluate(tiny_config.replace(qat_model=str(bad)))
    checks = {c.name: c for c in run_checks(ev)}
    for name in ("equivalence.qat", "accuracy.qat", "design-rules.qat"):
        assert checks[name].verdict == FAIL and "broken_qsnn.nir" in checks[name].message
    for name in ("equivalence.ptq", "accuracy.ptq", "memory.reduction", "memory.fits-chip", "design-rules.ptq"):
        assert checks[name].verdict == PASS, checks[name].message


def test_a_qsnn_of_the_wrong_input_shape_fails_only_the_qat_checks(tiny_config, tmp_path):
    """A (valid) Q-SNN whose Input takes 128 values per tick, against data of (2, 8, 8): the QAT checks
    fail with [bad-input] naming the file, the PTQ checks (the float model takes (2, 8, 8)) pass."""
    import nir

    from harness.quantize import quantize_ptq

    rng = np.random.default_rng(0)
    ones = lambda n: np.ones(n, np.float32)  # noqa: E731
    g = nir.NIRGraph(nodes={
        "input": nir.Input(input_type=np.array([128])),
        "fc1": nir.Affine(weight=rng.normal(0, 0.3, (16, 128)).astype(np.float32), bias=np.zeros(16, np.float32)),
        "if1": nir.IF(r=ones(16), v_threshold=ones(16), v_reset=np.zeros(16, np.float32)),
        "fc2": nir.Affine(weight=rng.normal(0, 0.6, (4, 16)).astype(np.float32), bias=np.zeros(4, np.float32)),
        "if2": nir.IF(r=ones(4), v_threshold=ones(4), v_reset=np.zeros(4, np.float32)),
        "output": nir.Output(output_type=np.array([4])),
    }, edges=[("input", "fc1"), ("fc1", "if1"), ("if1", "fc2"), ("fc2", "if2"), ("if2", "output")])
    path = str(tmp_path / "other_shape.nir")
    quantize_ptq(g).write(path)
    ev = evaluate(tiny_config.replace(qat_model=path))
    qat = run_check(ev, "accuracy.qat")
    assert qat.verdict == FAIL and "[bad-input]" in qat.message and "other_shape.nir" in qat.message
    for name in ("accuracy.ptq", "equivalence.ptq", "memory.reduction", "design-rules.ptq"):
        assert run_check(ev, name).verdict == PASS, name


# ------------------------------------------------------------------ statistics

def test_tango_interval_with_no_discordant_samples_is_z2_over_n_plus_z2():
    """With lost = gained = 0 the score statistic is -sqrt(n δ / (1 - δ)), so the upper bound solves
    n δ / (1 - δ) = z²: δ = z² / (n + z²); the interval is symmetric."""
    from harness.gate.stats import Z_95, tango_interval

    for n in (48, 64, 660):
        lo, hi = tango_interval(0, 0, n)
        assert hi == pytest.approx(Z_95 ** 2 / (n + Z_95 ** 2), rel=1e-12)
        assert lo == pytest.approx(-hi, rel=1e-12)


def test_tango_statistic_at_zero_is_mcnemars():
    from harness.gate.stats import Z_95, tango_interval, tango_statistic

    for lost, gained, n in ((10, 3, 100), (7, 0, 64), (2, 9, 660)):
        assert tango_statistic(lost, gained, n, 0.0) == pytest.approx((lost - gained) / np.sqrt(lost + gained))
        lo, hi = tango_interval(lost, gained, n)
        assert lo < (lost - gained) / n < hi
        # 0 is inside exactly when McNemar's (uncorrected) test does not reject at 5 %
        assert (lo <= 0 <= hi) == (abs(lost - gained) / np.sqrt(lost + gained) <= Z_95)
        assert tango_statistic(lost, gained, n, hi) == pytest.approx(-Z_95, abs=1e-9)


def _ev_with_accuracy(lost: int, gained: int, n: int, budget: float, strict: bool = False):
    from harness.gate.flow import paired_accuracy
    from harness.gate.results import Evaluation

    labels = np.zeros(n, dtype=np.int64)
    ref = np.zeros(n, dtype=np.int64)
    cand = np.zeros(n, dtype=np.int64)
    ref[:gained] = 1  # the reference wrong where the emulator is right
    cand[gained:gained + lost] = 1  # the emulator wrong where the reference is right
    st = paired_accuracy("ptq", ref, cand, labels)
    assert (st.lost, st.gained, st.samples) == (lost, gained, n)
    return Evaluation(config={"qat_model": None, "ptq_budget": budget, "strict": strict}, ran=True,
                      accuracy_stats={"ptq": st})


def test_accuracy_drop_equal_to_the_budget_passes_exactly():
    # 1 sample of 100 lost: a drop of exactly 1 pp against a 1.0 pp budget, no epsilon needed
    c = run_check(_ev_with_accuracy(1, 0, 100, 1.0), "accuracy.ptq")
    assert c.verdict == PASS and c.value == pytest.approx(1.0)
    assert run_check(_ev_with_accuracy(2, 0, 100, 1.0), "accuracy.ptq").verdict == FAIL


def test_strict_mode_judges_the_upper_bound_of_the_interval():
    ev = _ev_with_accuracy(1, 0, 100, 1.1)
    point = run_check(ev, "accuracy.ptq")
    assert point.verdict == PASS and point.interval[0] < 1.0 < point.interval[1]
    strict = run_check(ev, "accuracy.ptq", {"strict": True})
    assert strict.verdict == FAIL and "95 % interval" in strict.message and "strict" in strict.message
    assert run_check(_ev_with_accuracy(1, 0, 100, 1.1, strict=True), "accuracy.ptq").verdict == FAIL


def test_resolution_coarser_than_the_budget_warns():
    # 64 samples: one sample is 100/64 = 1.5625 pp > 1.1 pp
    c = run_check(_ev_with_accuracy(0, 0, 64, 1.1), "accuracy.ptq")
    assert c.verdict == PASS and c.warning and "1.56 pp" in c.warning
    assert run_check(_ev_with_accuracy(0, 0, 100, 1.1), "accuracy.ptq").warning is None  # 1.00 pp <= 1.1 pp


# ------------------------------------------------------------------ typed results, bugs are errors

def test_typed_results_round_trip_through_json(tiny_evaluation):
    from harness.gate.results import Evaluation

    j = json.loads(json.dumps(tiny_evaluation.to_json()))
    back = Evaluation.from_json(j)
    assert back == tiny_evaluation
    assert [c.as_dict() for c in run_checks(j)] == [c.as_dict() for c in run_checks(tiny_evaluation)]


def test_a_bug_in_a_check_is_an_error_not_a_fail():
    from harness.gate.results import Evaluation

    ev = Evaluation(config={"qat_model": "q.nir"}, ran=True)  # no errors recorded, yet no result: a bug
    with pytest.raises(KeyError):
        run_check(ev, "equivalence.ptq")


def test_flow_run_is_independent_of_batch_order_and_shards(tiny_models):
    """Batches fed in reverse order, or split over two runs that are merged, give the same results."""
    from harness.gate.flow import Flow, FlowRun
    from harness.quantize import quantize_ptq
    from harness.run import emulator_options
    from s2common.graph import flatten_graph, load_graph
    from s2emu import lower

    f, _, d = tiny_models
    g = load_graph(f)
    q = quantize_ptq(g).graph
    with np.load(d) as z:
        x, y = z["spikes"], z["labels"]

    def flow():
        return Flow(name="ptq", graph=q, flat=flatten_graph(q), network=lower(q, emulator_options(q)),
                    output_population="if3", float_graph=g, float_flat=flatten_graph(g))

    starts = list(range(0, len(x), 10))
    forward = FlowRun(flow())
    for s in starts:
        forward.add(s, x[s:s + 10])
    backward = FlowRun(flow())
    for s in reversed(starts):
        backward.add(s, x[s:s + 10])
    a, b = FlowRun(flow()), FlowRun(flow())
    for i, s in enumerate(starts):
        (a if i % 2 else b).add(s, x[s:s + 10])
    merged = a.merge(b)
    for other in (backward, merged):
        assert np.array_equal(other.predictions("float"), forward.predictions("float"))
        assert np.array_equal(other.predictions("emulator"), forward.predictions("emulator"))
        assert other.equivalence() == forward.equivalence()
        assert other.raster() == forward.raster()
        assert other.neurobench("emulator") == forward.neurobench("emulator")
        assert other.accuracy(y) == forward.accuracy(y)


# ------------------------------------------------------------------ map = gate

def _map(*argv):
    import contextlib
    import io

    from harness.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = main(["map", *argv])
    return rc, out.getvalue()


@needs_bundled
def test_map_of_the_bundled_psnn_fits_as_the_gate_says():
    rc, out = _map(bundled_model("psnn"))
    assert rc == 0, out
    assert "on 86 PEs" in out and "result: fits and passes" in out
    assert "stored on the chip 133,776 B" in out


def test_map_chooses_atoms_as_the_gate_does_and_no_auto_atoms_refuses():
    from harness.gate.config import BUNDLED

    path = str(BUNDLED / "cnn_sinabs.nir")
    if not os.path.exists(path):
        pytest.skip("bundled cnn_sinabs.nir not present")
    rc, out = _map(path)
    assert rc == 0, out
    assert "atoms per PE chosen" in out
    rc, out = _map(path, "--no-auto-atoms")
    assert rc == 1 and "population-exceeds-pe" in out
