"""Calibrated PTQ (:mod:`harness.quantize.calibrate`) on small graphs whose numbers are worked out here."""
from __future__ import annotations

import numpy as np
import pytest

import nir

from harness.quantize import quant_meta, quantize_ptq
from harness.quantize.calibrate import (activity, calibrate, load_calibration, quantize_calibrated, search_codes)
from s2common.errors import InputDataError, QuantizationError


def _one_layer(weight: np.ndarray, bias: np.ndarray, theta: float = 1.0) -> "nir.NIRGraph":
    """Input (n_in,) -> Affine -> IF (n_out,) -> Output."""
    n_out, n_in = weight.shape
    nodes = {"input": nir.Input(input_type={"input": np.array([n_in])}),
             "fc": nir.Affine(weight=weight.astype(np.float32), bias=bias.astype(np.float32)),
             "if": nir.IF(r=np.ones(n_out, np.float32), v_threshold=np.full(n_out, theta, np.float32),
                          v_reset=np.zeros(n_out, np.float32)),
             "output": nir.Output(output_type={"output": np.array([n_out])})}
    return nir.NIRGraph(nodes=nodes, edges=[("input", "fc"), ("fc", "if"), ("if", "output")])


def _weights():
    # one large outlier (1.0) among small weights: clipping it buys a finer grid for the rest
    w = np.array([[1.0, 0.013, -0.021, 0.034, 0.005, -0.017, 0.029, -0.008],
                  [0.011, -0.026, 0.019, -0.031, 0.023, 0.007, -0.015, 0.027]])
    return w.astype(np.float32).astype(np.float64)  # what the graph stores, exactly


def test_objective_is_the_summed_input_error_worked_by_hand():
    w = _weights()
    g = _one_layer(w, np.zeros(2), theta=2.0)
    rng = np.random.default_rng(0)
    x = (rng.random((6, 10, 8)) < 0.3).astype(np.float32)
    x[:, :, 0] = 0  # the outlier's input never fires: clipping it costs nothing on these inputs
    cal, offsets, codes = calibrate(g, x, grid=(90.0, 100.0), preset="nir")
    assert offsets == {} and codes == {}
    n = x.sum(axis=1).astype(np.float64)  # (6, 8) input spike counts
    for p in (90.0, 100.0):
        lam = 127.0 / np.percentile(np.abs(w), p)
        dw = w - np.clip(np.rint(w * lam), -127, 127) / lam
        expected = np.mean((n @ dw.T / 2.0) ** 2)  # r / theta = 1 / 2
        assert cal.choices[0].objective[p] == pytest.approx(expected, rel=1e-12)
    # p = 90 clips the outlier (which never fires) and rounds the rest finer: it wins
    assert cal.choices[0].percentile == 90.0
    qg = quantize_calibrated(g, x, grid=(90.0, 100.0), preset="nir")
    assert quant_meta(qg.graph.nodes["fc"])["percentile"] == 90.0
    assert quant_meta(qg.graph.nodes["if"])["percentile"] == 90.0
    gm = quant_meta(qg.graph)
    assert gm["calibrated"] is True and gm["calibration_samples"] == 6 and gm["calibration_grid"] == [90.0, 100.0]
    assert "threshold" in gm["calibration_objective"]
    # the same choice made by hand through quantize_ptq gives the same codes
    np.testing.assert_array_equal(qg.graph.nodes["fc"].weight, quantize_ptq(g, percentile=90.0).graph.nodes["fc"].weight)


def test_when_the_outlier_fires_clipping_it_loses():
    w = _weights()
    g = _one_layer(w, np.zeros(2))
    x = np.zeros((4, 10, 8), np.float32)
    x[:, :, 0] = 1  # only the outlier's input fires: clipping it is a large summed error
    cal, _, _ = calibrate(g, x, grid=(90.0, 100.0), preset="nir")
    assert cal.choices[0].percentile == 100.0


def test_ties_go_to_the_larger_percentile():
    g = _one_layer(_weights(), np.zeros(2))
    x = np.zeros((3, 5, 8), np.float32)  # no input at all: every grid point has objective 0
    cal, _, _ = calibrate(g, x, grid=(99.0, 99.9, 100.0), preset="nir")
    assert cal.choices[0].objective == {99.0: 0.0, 99.9: 0.0, 100.0: 0.0}
    assert cal.choices[0].percentile == 100.0


def test_bias_correction_takes_back_the_mean_error_per_tick():
    w = _weights()
    g = _one_layer(w, np.array([0.1, -0.2]))
    rng = np.random.default_rng(1)
    x = (rng.random((8, 20, 8)) < 0.4).astype(np.float32)
    qg = quantize_calibrated(g, x, grid=(100.0,), bias_correction=True, preset="nir")
    lam = 127.0 / np.abs(w).max()
    dw = w - np.rint(w * lam) / lam
    n = x.sum(axis=1).astype(np.float64)
    delta = -(n @ dw.T).mean(axis=0) / 20  # mean summed error per neuron, spread over 20 ticks
    np.testing.assert_allclose(quant_meta(qg.graph.nodes["fc"])["bias_correction"], delta, rtol=1e-12)
    # stored in chip units: (b + delta) * lambda
    np.testing.assert_allclose(qg.graph.nodes["fc"].bias, ((np.array([0.1, -0.2]) + delta) * lam).astype(np.float32),
                               rtol=1e-6)


def test_per_channel_choices_are_made_per_row():
    w = _weights()
    w[0, 0] = 10.0  # row 0: a huge outlier on a silent input; at p = 100 its small weights round to 0
    w[1, 3] = np.float32(0.9)  # row 1: an outlier on an input that always fires; at p = 80 it is clipped
    g = _one_layer(w, np.zeros(2))
    x = np.zeros((4, 10, 8), np.float32)
    x[:, :, 1:] = (np.random.default_rng(2).random((4, 10, 7)) < 0.3)
    x[:, :, 0] = 0
    x[:, :, 3] = 1
    n = x.sum(axis=1).astype(np.float64)
    per_p = {}
    for p in (80.0, 100.0):  # each row on its own grid, by hand
        lam = 127 / np.percentile(np.abs(w), p, axis=1)[:, None]
        per_p[p] = np.mean((n @ (w - np.clip(np.rint(w * lam), -127, 127) / lam).T) ** 2, axis=0)
    assert per_p[80.0][0] < per_p[100.0][0] and per_p[100.0][1] < per_p[80.0][1]
    cal, _, _ = calibrate(g, x, grid=(80.0, 100.0), per_channel=True, preset="nir")
    assert cal.choices[0].percentile == [80.0, 100.0]
    qg = quantize_calibrated(g, x, grid=(80.0, 100.0), per_channel=True, preset="nir")
    assert quant_meta(qg.graph.nodes["fc"])["percentile"] == [80.0, 100.0]
    lam = 127 / np.array([np.percentile(np.abs(w[0]), 80.0), np.abs(w[1]).max()])
    np.testing.assert_array_equal(qg.graph.nodes["fc"].weight, np.clip(np.rint(w * lam[:, None]), -127, 127))


def test_search_codes_is_nearest_rounding_when_inputs_are_uncorrelated():
    # a diagonal Hessian couples no columns: error feedback has nothing to push, codes = round to nearest
    rng = np.random.default_rng(3)
    w = rng.normal(size=(5, 7))
    lam = np.full((5, 1), 127 / np.abs(w).max())
    h = np.diag(rng.random(7) + 0.5)
    np.testing.assert_array_equal(search_codes(w, lam, h), np.rint(w * lam))


def test_search_codes_lower_the_quadratic_error_and_stay_in_range():
    rng = np.random.default_rng(4)
    w = rng.normal(size=(16, 24))
    lam = np.full((16, 1), 127 / np.abs(w).max() / 8)  # coarse grid (about 16 levels): rounding matters
    n = (rng.random((200, 24)) < 0.3).astype(np.float64) + rng.random((200, 1))  # correlated inputs
    h = n.T @ n
    q_near = np.clip(np.rint(w * lam), -127, 127)
    q_s = search_codes(w, lam, h)
    assert np.all(q_s == np.rint(q_s)) and np.abs(q_s).max() <= 127

    def err(q):
        d = w - q / lam
        return float(np.sum((d @ n.T) ** 2))

    assert err(q_s) < 0.7 * err(q_near)


def test_rounding_search_codes_land_in_the_graph():
    w = _weights()
    g = _one_layer(w, np.zeros(2))
    rng = np.random.default_rng(5)
    x = (rng.random((16, 10, 8)) < 0.3).astype(np.float32)
    qg = quantize_calibrated(g, x, grid=(100.0,), rounding_search=True, preset="nir")
    q = qg.graph.nodes["fc"].weight
    assert np.all(q == np.rint(q)) and np.abs(q).max() <= 127
    assert quant_meta(qg.graph)["rounding_search"] is True
    with pytest.raises(QuantizationError):
        calibrate(g, x, rounding_search=True, rounding="truncate", preset="nir")


def test_activity_is_the_spike_counts():
    g = _one_layer(np.eye(2, 8) * 2.0, np.zeros(2))
    x = np.zeros((1, 4, 8), np.float32)
    x[0, :, 0] = 1  # neuron 0 gets 2 per tick > theta 1: spikes every tick (NIR IF: v > theta)
    counts = activity(g, x, preset="nir")
    assert counts["input"].tolist() == [[4, 0, 0, 0, 0, 0, 0, 0]]
    assert counts["if"].tolist() == [[4.0, 0.0]]


def test_bad_calibration_files_are_one_clear_error(tmp_path):
    with pytest.raises(InputDataError) as err:
        load_calibration(tmp_path / "missing.npz")
    assert err.value.rule == "bad-calibration"
    np.savez(tmp_path / "nospikes.npz", labels=np.zeros(3))
    with pytest.raises(InputDataError, match="no array 'spikes'"):
        load_calibration(tmp_path / "nospikes.npz")
    np.savez(tmp_path / "flat.npz", spikes=np.zeros((3, 4)))
    with pytest.raises(InputDataError, match="expected"):
        load_calibration(tmp_path / "flat.npz")
    np.savez(tmp_path / "ok.npz", spikes=np.zeros((3, 4, 8), bool))
    assert load_calibration(tmp_path / "ok.npz").shape == (3, 4, 8)


def test_gate_ptq_flow_uses_the_calibration_file(tmp_path):
    from harness.gate.config import GateConfig, build_config
    from harness.gate.evaluate import evaluate

    w = _weights()
    src = tmp_path / "one.nir"
    nir.write(str(src), _one_layer(w, np.zeros(2)))
    rng = np.random.default_rng(6)
    x = rng.random((12, 10, 8)) < 0.3
    x[:, :, 0] = False
    np.savez(tmp_path / "cal.npz", spikes=x[:6])
    cfg = build_config(model=str(src), qat_model="none", sweep=(), calibrate=str(tmp_path / "cal.npz"))
    assert cfg.calibrate == str(tmp_path / "cal.npz")
    assert cfg.digest() != cfg.replace(calibrate=None).digest()
    ev = evaluate(cfg, data=(x[6:], np.zeros(6, np.int64)))
    assert not ev.errors, ev.errors
    chosen = {r.layer: r.percentile for r in ev.quantization["ptq"]}
    expected, _, _ = calibrate(_one_layer(w, np.zeros(2)), x[:6], preset="spinnaker2")
    assert chosen == {"fc": expected.choices[0].percentile} and chosen["fc"] < 100.0
    # without the file: the fixed percentile, as before
    ev = evaluate(GateConfig(model=str(src), qat_model=None, sweep=()), data=(x[6:], np.zeros(6, np.int64)))
    assert {r.layer: r.percentile for r in ev.quantization["ptq"]} == {"fc": 100.0}
