"""Tests of the gate itself: a sound model passes; deliberately broken models fail the right
check, and the message names the check and the layer.

Breakages (on the tiny synthetic model of ``synthetic.py``, whose labels are the float model's
own predictions, so the float accuracy is 100 % and every loss is the int8 path's):

1. PTQ forgets to scale the thresholds (weights x λ, thresholds left in float units): the
   first layer fires far more, accuracy.ptq fails and blames ``if1``.
2. PTQ scales one weight layer wrongly (``fc1``'s codes halved): accuracy.ptq fails and blames
   ``if2``, the population ``fc1`` feeds; layers before it are unchanged.
3. A model too big for the chip (40,000 hidden neurons, > 148 PEs): memory.fits-chip and
   design-rules.ptq fail, naming ``if2`` and the ``network-exceeds-chip`` rule.
4. A Q-SNN with a weight code outside int8: design-rules.qat fails naming ``fc1`` and the
   ``weight-int8-range`` rule.
5. An emulator that flips one spike: equivalence.ptq fails at exactly that layer, neuron, tick
   and sample.
6. A corrupt model file and a missing dataset: the checks that need them fail with the one-line
   S2GateError message.
"""
from __future__ import annotations

import os

import numpy as np
import pytest

from harness.gate.checks import FAIL, PASS, SKIP, run_check, run_checks
from harness.gate.evaluate import evaluate


def _by_name(ev):
    return {c.name: c for c in run_checks(ev)}


def test_sound_model_passes_every_check(tiny_evaluation):
    checks = _by_name(tiny_evaluation)
    for name, check in checks.items():
        if name == "hardware-in-the-loop":
            assert check.verdict == SKIP and "no board configured" in check.message
        else:
            assert check.verdict == PASS, check.message
    ev = tiny_evaluation
    assert ev.errors == {}
    # labels are the float model's predictions: float accuracy is exactly 100 %
    assert ev.accuracy_stats["ptq"].reference == 100.0
    # int8 weights: exactly a quarter of the float32 bytes (1 of 4 bytes per weight)
    assert ev.memory.int8_bytes * 4 == ev.memory.float32_bytes
    # conv 4*2*3*3 + fc1 16*64 + fc2 4*16 weights
    assert ev.memory.float32_bytes == 4 * (72 + 1024 + 64)
    eq = ev.equivalence["ptq"]
    assert eq.spike_trains == 48 * (256 + 16 + 4)
    assert eq.identical + eq.ambiguous + eq.diverging == eq.spike_trains


def _quantizer_unscaled_thresholds(graph, **kw):
    from harness.quantize import quantize_ptq

    qg = quantize_ptq(graph, **kw)
    for name, node in qg.graph.nodes.items():
        if type(node).__name__ in ("IF", "LIF"):
            node.v_threshold = (np.asarray(node.v_threshold) / np.asarray(qg.scales[name])).astype(np.float32)
    return qg


def _quantizer_fc1_halved(graph, **kw):
    from harness.quantize import quantize_ptq

    qg = quantize_ptq(graph, **kw)
    node = qg.graph.nodes["fc1"]
    node.weight = np.round(np.asarray(node.weight) * 0.5).astype(np.float32)
    return qg


def test_thresholds_not_scaled_fails_accuracy_naming_first_layer(tiny_config):
    ev = evaluate(tiny_config, quantizer=_quantizer_unscaled_thresholds)
    check = run_check(ev, "accuracy.ptq")
    assert check.verdict == FAIL
    assert check.message.startswith("accuracy.ptq:")
    assert check.layer == "if1"
    assert "layer 'if1'" in check.message
    # the first layer's rate rises: thresholds ~λ times too low
    row = ev.layers["ptq"][0]
    assert row.name == "if1" and row.rate_int8 > 1.5 * row.rate_float
    # the emulator still matches the reference on the (broken) graph it was given
    assert run_check(ev, "equivalence.ptq").verdict == PASS


def test_one_weight_layer_scaled_wrongly_blames_its_population(tiny_config):
    ev = evaluate(tiny_config, quantizer=_quantizer_fc1_halved)
    check = run_check(ev, "accuracy.ptq")
    assert check.verdict == FAIL, check.message
    assert check.layer == "if2"
    assert "layer 'if2'" in check.message and "fc1" in check.message
    rows = {r.name: r for r in ev.layers["ptq"]}
    # before the broken layer nothing changes beyond rounding
    assert abs(rows["if1"].rate_int8 - rows["if1"].rate_float) <= 0.1 * rows["if1"].rate_float
    assert rows["if2"].rate_int8 < 0.9 * rows["if2"].rate_float


def test_model_too_big_for_the_chip(tmp_path):
    import nir

    from harness.gate.config import GateConfig
    from suites.gate.synthetic import tiny_data, tiny_float_graph

    g = tiny_float_graph(hidden=40_000)
    path = str(tmp_path / "big.nir")
    nir.write(path, g)
    x, y = tiny_data(g, n=2)
    ev = evaluate(GateConfig(model=path, qat_model=None, sweep=()), data=(x, y))
    fit = run_check(ev, "memory.fits-chip")
    assert fit.verdict == FAIL
    assert fit.message.startswith("memory.fits-chip:")
    # 40,000 neurons need more than one chip's 148 PEs; the 40,000-wide fan-in of 'if3' does not
    # fit one PE even with one neuron per PE
    assert "more than the 1 chip(s) allowed" in fit.message
    assert "layer 'if2': takes" in fit.message and "layer 'if3': needs" in fit.message
    assert ev.memory.chip.pes > 148
    rules = run_check(ev, "design-rules.ptq")
    assert rules.verdict == FAIL
    assert "network-exceeds-chip" in rules.message or "population-exceeds-pe" in rules.message
    # QAT checks are skipped (no Q-SNN configured), not failed
    assert run_check(ev, "accuracy.qat").verdict == SKIP


def test_qsnn_weight_outside_int8_breaks_design_rules(tiny_models, tmp_path):
    import nir

    from harness.gate.config import GateConfig
    from s2common.graph import load_graph

    f, q, d = tiny_models
    g = load_graph(q)
    w = np.asarray(g.nodes["fc1"].weight).copy()
    w[0, 0] = 300.0
    g.nodes["fc1"].weight = w
    bad = str(tmp_path / "bad_qat.nir")
    nir.write(bad, g)
    ev = evaluate(GateConfig(model=f, qat_model=bad, dataset=d, sweep=()))
    check = run_check(ev, "design-rules.qat")
    assert check.verdict == FAIL
    assert check.message.startswith("design-rules.qat:")
    assert "weight-int8-range" in check.message and "fc1" in check.message
    # the PTQ side is unaffected
    assert run_check(ev, "design-rules.ptq").verdict == PASS


def test_flipped_spike_is_named_at_its_layer_neuron_tick(tiny_config, monkeypatch):
    import s2emu

    original = s2emu.Engine.run
    calls = {"n": 0}

    def flipped(self, x, record=None):
        rec = original(self, x, record=record)
        calls["n"] += 1
        if calls["n"] == 2:  # the second batch of the PTQ network (samples 16..31)
            s = rec.data["if2"]["spikes"]
            s[3, 5, 7] = ~s[3, 5, 7]
        return rec

    monkeypatch.setattr(s2emu.Engine, "run", flipped)
    ev = evaluate(tiny_config.replace(qat_model=None))
    check = run_check(ev, "equivalence.ptq")
    assert check.verdict == FAIL
    fd = ev.equivalence["ptq"].first_divergence
    assert (fd.layer, fd.flat_neuron, fd.tick, fd.sample) == ("if2", 7, 5, 19)
    assert "layer 'if2', neuron (7), tick 5, sample 19" in check.message
    assert ev.equivalence["ptq"].diverging == 1


def test_corrupt_model_file_fails_checks_with_one_line_message(tiny_config, tmp_path):
    bad = tmp_path / "corrupt.nir"
    bad.write_bytes(b"this is not an HDF5 file\n" * 10)
    ev = evaluate(tiny_config.replace(model=str(bad)))
    assert "model" in ev.errors
    for name in ("accuracy.ptq", "equivalence.ptq", "memory.reduction", "design-rules.ptq"):
        check = run_check(ev, name)
        assert check.verdict == FAIL
        assert "[not-hdf5]" in check.message and "corrupt.nir" in check.message
        assert "\n" not in check.message
    # the Q-SNN side still runs
    assert run_check(ev, "accuracy.qat").verdict == PASS


def test_missing_dataset_fails_with_data_not_found(tiny_config, tmp_path):
    missing = str(tmp_path / "nowhere.npz")
    ev = evaluate(tiny_config.replace(dataset=missing))
    check = run_check(ev, "accuracy.ptq")
    assert check.verdict == FAIL
    assert "[data-not-found]" in check.message and "nowhere.npz" in check.message
    # memory and design rules need no data
    assert run_check(ev, "memory.reduction").verdict == PASS
    assert run_check(ev, "design-rules.ptq").verdict == PASS


def test_budgets_decide_the_verdict(tiny_evaluation):
    ev = tiny_evaluation
    assert run_check(ev, "memory.reduction", {"min_memory_reduction": 0.76}).verdict == FAIL
    assert run_check(ev, "memory.reduction", {"min_memory_reduction": 0.75}).verdict == PASS


def test_results_do_not_depend_on_batch_size(tiny_config, tiny_evaluation):
    from harness.gate.report import dumps

    other = evaluate(tiny_config.replace(batch_size=48))  # one batch instead of three
    assert dumps(other) == dumps(tiny_evaluation)


def test_hardware_in_the_loop_is_skipped_without_a_board(tiny_evaluation):
    check = run_check(tiny_evaluation, "hardware-in-the-loop")
    assert check.verdict == SKIP
    assert "no board configured" in check.message and "--s2-board-host" in check.message


def test_board_backend_without_py_spinnaker2_or_host_fails_with_the_reason(tiny_config):
    import importlib.util

    if importlib.util.find_spec("spinnaker2") is not None:  # pragma: no cover - a machine with py-spinnaker2
        pytest.skip("py-spinnaker2 is installed here")
    ev = evaluate(tiny_config.replace(backend="board", board_host="192.168.1.17", qat_model=None))
    check = run_check(ev, "hardware-in-the-loop")
    assert check.verdict == FAIL
    assert "py-spinnaker2 is not installed" in check.message and "\n" not in check.message
    ev = evaluate(tiny_config.replace(backend="board", board_host=None, qat_model=None))
    check = run_check(ev, "hardware-in-the-loop")
    assert check.verdict == FAIL and "[no-board-host]" in check.message


def test_hardware_in_the_loop_against_a_recorded_board(tiny_config, monkeypatch):
    """A fake board that returns the emulator's own recording passes; one flipped spike fails at
    exactly its layer, neuron, tick and sample."""
    import harness.run.backends as hb

    flip = {"on": False}

    def fake_board_run(self, graph, inputs, *, record=None):
        rec = hb.EmulatorBackend().run(graph, inputs, record=record)
        if flip["on"]:
            s = rec.data["if3"]["spikes"]
            s[2, 9, 1] = ~s[2, 9, 1]
        return rec

    monkeypatch.setattr(hb.BoardBackend, "run", fake_board_run)
    cfg = tiny_config.replace(backend="board", board_host="10.0.0.2", qat_model=None)
    assert run_check(evaluate(cfg), "hardware-in-the-loop").verdict == PASS
    flip["on"] = True
    ev = evaluate(cfg)
    check = run_check(ev, "hardware-in-the-loop")
    assert check.verdict == FAIL
    fd = ev.hil.comparison.first_divergence
    assert (fd.layer, fd.flat_neuron, fd.tick, fd.sample) == ("if3", 1, 9, 2)
    assert ev.hil.comparison.diverging == 1


def test_a_bug_becomes_a_failed_check_not_a_crash(tiny_config):
    def broken(graph, **kw):
        raise ValueError("boom")

    ev = evaluate(tiny_config.replace(qat_model=None), quantizer=broken)
    check = run_check(ev, "accuracy.ptq")
    assert check.verdict == FAIL and "[internal-error] ptq: ValueError: boom" in check.message
    with pytest.raises(ValueError, match="boom"):
        evaluate(tiny_config.replace(qat_model=None), quantizer=broken, debug=True)


def test_float_model_given_as_qsnn_is_refused(tiny_config, tiny_models):
    f, q, d = tiny_models
    ev = evaluate(tiny_config.replace(qat_model=f))
    check = run_check(ev, "accuracy.qat")
    assert check.verdict == FAIL and "[not-quantized]" in check.message and "float.nir" in check.message
    assert run_check(ev, "accuracy.ptq").verdict == PASS


def test_npz_without_labels_or_of_the_wrong_shape(tiny_config, tmp_path):
    no_labels = tmp_path / "nolabels.npz"
    np.savez(no_labels, spikes=np.zeros((2, 12, 2, 8, 8), dtype=bool))
    ev = evaluate(tiny_config.replace(dataset=str(no_labels), qat_model=None))
    msg = run_check(ev, "accuracy.ptq").message
    assert "[bad-dataset]" in msg and "'labels'" in msg
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, spikes=np.zeros((2, 12, 2, 16, 16), dtype=bool), labels=np.zeros(2, dtype=int))
    ev = evaluate(tiny_config.replace(dataset=str(wrong), qat_model=None))
    msg = run_check(ev, "accuracy.ptq").message
    assert "[bad-input]" in msg and "(2, 8, 8)" in msg and "(2, 16, 16)" in msg


def test_a_layer_too_big_for_one_pe_is_spread_or_reported(tmp_path):
    """The P-SNN's Affine 1024 -> 128 after pooling needs ~1.1 MB of synapse rows at 250 atoms per
    PE; the gate picks the largest atoms per PE that fits, or (auto off) fails naming the layer."""
    import nir

    from harness.gate.config import GateConfig
    from harness.models.export import export_psnn
    from harness.models.psnn import PSNN

    g = export_psnn(PSNN(), T=4, dt=1e-3, seed=0)
    g.metadata.pop("s2gate.atoms_per_core", None)  # the export now carries the answer; make the gate find it
    path = str(tmp_path / "psnn.nir")
    nir.write(path, g)
    x = np.zeros((2, 4, 2, 32, 32), dtype=bool)
    y = np.zeros(2, dtype=np.int64)
    cfg = GateConfig(model=path, qat_model=None, sweep=())
    ev = evaluate(cfg, data=(x, y))
    fit = run_check(ev, "memory.fits-chip")
    assert fit.verdict == PASS, fit.message
    auto = ev.memory.chip.auto_atoms
    assert list(auto) == ["if3"] and 1 <= auto["if3"] < 250
    assert "if3: " in fit.measured
    assert run_check(ev, "design-rules.ptq").verdict == PASS
    ev = evaluate(cfg.replace(auto_atoms=False), data=(x, y))
    fit = run_check(ev, "memory.fits-chip")
    from harness.flags import flag

    assert fit.verdict == FAIL and fit.layer == "if3" and f"{flag('atoms')} if3=N" in fit.message
    rules = run_check(ev, "design-rules.ptq")
    assert rules.verdict == FAIL and "population-exceeds-pe" in rules.message and "'if3'" in rules.message
    # the largest atoms per PE that fits is exactly what the rule's hint says
    assert f"<= {auto['if3']}" in rules.message


@pytest.mark.slow
def test_broken_ptq_of_the_bundled_psnn_is_named(tmp_path):
    """The same breakages on the bundled P-SNN (64 stand-in samples): thresholds left unscaled
    blame the first population ('if1', fed by 'conv1'); fc1's codes quartered blame 'if3'."""
    from harness.gate.config import GateConfig, bundled_model

    if not os.path.exists(bundled_model("psnn")):
        pytest.skip("bundled psnn.nir not present")

    def fc1_quartered(graph, **kw):
        from harness.quantize import quantize_ptq

        qg = quantize_ptq(graph, **kw)
        node = qg.graph.nodes["fc1"]
        node.weight = np.round(np.asarray(node.weight) * 0.25).astype(np.float32)
        return qg

    cfg = GateConfig(qat_model=None, samples=64, sweep=())
    for quantizer, layer, weights in ((_quantizer_unscaled_thresholds, "if1", "conv1"), (fc1_quartered, "if3", "fc1")):
        check = run_check(evaluate(cfg, quantizer=quantizer), "accuracy.ptq")
        assert check.verdict == FAIL and check.layer == layer, check.message
        assert f"layer '{layer}' (fed by '{weights}')" in check.message
