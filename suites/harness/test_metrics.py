"""Predictions, accuracy and NeuroBench-style figures on tiny hand-made graphs.

Every expected number is counted by hand in the comments.
"""
from __future__ import annotations

import nir
import numpy as np
import pytest

from harness.metrics import (
    MetricError,
    accuracy,
    activation_sparsity,
    memory_footprint,
    memory_footprint_per_node,
    predict,
    synaptic_operations,
)
from s2common.errors import InputDataError
from s2common.recording import Recording


def _dense_graph() -> nir.NIRGraph:
    """Input(3) -> Affine W (2x3) -> LIF(2) -> Output."""
    w = np.array([[1.0, 0.0, 2.0], [3.0, 4.0, 0.0]], dtype=np.float32)
    ones = np.ones(2, dtype=np.float32)
    return nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type=np.array([3])),
            "fc": nir.Affine(weight=w, bias=np.array([0.5, 0.5], dtype=np.float32)),
            "lif": nir.LIF(tau=ones * 0.01, r=ones, v_leak=ones * 0, v_threshold=ones, v_reset=ones * 0),
            "output": nir.Output(output_type=np.array([2])),
        },
        edges=[("input", "fc"), ("fc", "lif"), ("lif", "output")],
    )


def _dense_recording() -> Recording:
    x = np.zeros((2, 3, 3), bool)
    x[0, 0] = [1, 0, 0]
    x[0, 1] = [1, 1, 1]
    x[1, 0] = [0, 0, 1]
    lif = np.zeros((2, 3, 2), bool)
    lif[0, 1, 0] = lif[0, 2, 1] = lif[1, 2, 0] = True
    rec = Recording(dt=1e-4)
    rec.add("input", "spikes", x)
    rec.add("lif", "spikes", lif)
    return rec


def test_predict_ties_go_to_the_lowest_index():
    spk = np.zeros((3, 4, 3), bool)
    spk[0, :2, 0] = spk[0, :2, 1] = True
    spk[0, 0, 2] = True           # counts [2, 2, 1] -> 0 (tie)
    #                               sample 1: no spikes -> 0
    spk[2, 0, 0] = True
    spk[2, :3, 1] = spk[2, 1:4, 2] = True  # counts [1, 3, 3] -> 1 (tie between 1 and 2)
    rec = Recording(dt=1e-4)
    rec.add("out", "spikes", spk)
    assert predict(rec, "out").tolist() == [0, 0, 1]
    with pytest.raises(MetricError):
        predict(rec, "nope")


def test_predict_from_a_non_spiking_output():
    out = np.zeros((2, 3, 4))
    out[0, :, 3] = 0.5
    out[1, 0, 1] = 2.0
    rec = Recording(dt=1e-4)
    rec.add("readout", "output", out)
    assert predict(rec, "readout").tolist() == [3, 1]


def test_accuracy():
    assert accuracy([0, 1, 2, 2], [0, 1, 1, 2]) == pytest.approx(0.75)
    with pytest.raises(InputDataError):
        accuracy([0, 1], [0])
    with pytest.raises(InputDataError):
        accuracy([], [])


def test_memory_footprint_float_and_int8():
    g = _dense_graph()
    # weights 6, bias 2, LIF tau/r/v_leak/v_threshold/v_reset 5 x 2 = 10 -> 18 values
    assert memory_footprint(g, bits=32) == 18 * 4
    # int8: 6 weights at 1 byte, 12 other values at 4 bytes
    assert memory_footprint(g, bits=8) == 6 + 12 * 4
    per = memory_footprint_per_node(g, bits=8)
    assert per == {"fc": 6 + 8, "lif": 40}


def test_memory_footprint_conv_ignores_hyper_parameters():
    w = np.ones((4, 2, 3, 3), dtype=np.float32)
    g = nir.NIRGraph(
        nodes={"input": nir.Input(input_type=np.array([2, 5, 5])),
               "conv": nir.Conv2d(input_shape=(5, 5), weight=w, stride=1, padding=0, dilation=1, groups=1,
                                  bias=np.zeros(4, dtype=np.float32)),
               "if": nir.IF(r=np.ones((4, 3, 3)), v_threshold=np.ones((4, 3, 3)), v_reset=np.zeros((4, 3, 3))),
               "output": nir.Output(output_type=np.array([4, 3, 3]))},
        edges=[("input", "conv"), ("conv", "if"), ("if", "output")])
    # conv: 72 weights + 4 bias; IF: 3 params x 36 neurons = 108
    assert memory_footprint(g, bits=32) == (72 + 4 + 108) * 4
    assert memory_footprint(g, bits=8) == 72 + (4 + 108) * 4


def test_activation_sparsity():
    rec = _dense_recording()
    # lif: 2 samples x 3 ticks x 2 neurons = 12, 3 spikes; the input is data, not an activation
    assert activation_sparsity(rec) == pytest.approx(1 - 3 / 12)
    assert activation_sparsity(rec, graph=_dense_graph()) == pytest.approx(1 - 3 / 12)
    assert activation_sparsity(rec, nodes=["input", "lif"]) == pytest.approx(1 - (3 + 5) / (12 + 18))


def test_synaptic_operations_dense():
    ops = synaptic_operations(_dense_graph(), _dense_recording())
    # non-zero weights per input column: [2, 1, 1]
    # sample 0: t0 input [1,0,0] -> 2; t1 [1,1,1] -> 4; t2 nothing -> 6. sample 1: t0 [0,0,1] -> 1. mean 3.5
    assert ops.effective_acs == pytest.approx(3.5)
    assert ops.effective_macs == 0
    # dense: 6 connections x 3 ticks per sample
    assert ops.dense == pytest.approx(18)
    assert set(ops.per_node) == {"fc"}


def _conv_graph(padding: int = 0) -> nir.NIRGraph:
    w = np.array([[[[1.0, 0.0], [1.0, 1.0]]]], dtype=np.float32)  # (1, 1, 2, 2)
    out = 2 + 2 * padding
    return nir.NIRGraph(
        nodes={"input": nir.Input(input_type=np.array([1, 3, 3])),
               "conv": nir.Conv2d(input_shape=(3, 3), weight=w, stride=1, padding=padding, dilation=1, groups=1,
                                  bias=np.zeros(1, dtype=np.float32)),
               "if": nir.IF(r=np.ones((1, out, out)), v_threshold=np.ones((1, out, out)),
                            v_reset=np.zeros((1, out, out))),
               "output": nir.Output(output_type=np.array([1, out, out]))},
        edges=[("input", "conv"), ("conv", "if"), ("if", "output")])


def test_synaptic_operations_conv():
    x = np.zeros((1, 2, 1, 3, 3), bool)
    x[0, 0, 0, 1, 1] = True  # centre: meets all 4 kernel taps, 3 of them non-zero
    x[0, 0, 0, 0, 2] = True  # top-right: only output (0,1) via tap (0,1), which is zero
    x[0, 1, 0, 2, 2] = True  # bottom-right: only output (1,1) via tap (1,1) = 1
    rec = Recording(dt=1e-4)
    rec.add("input", "spikes", x)
    ops = synaptic_operations(_conv_graph(), rec)
    assert ops.effective_acs == pytest.approx(3 + 0 + 1)
    # dense: 4 outputs x 4 taps = 16 per tick, 2 ticks
    assert ops.dense == pytest.approx(32)
    # with padding 1 (output 4x4) every input pixel meets all 4 taps (outputs oy in {y, y+1},
    # ox in {x, x+1}), 3 of them non-zero: 3 spikes x 3
    ops_p = synaptic_operations(_conv_graph(padding=1), rec)
    assert ops_p.effective_acs == pytest.approx(3 + 3 + 3)
    assert ops_p.dense == pytest.approx(2 * (9 * 4))  # each of the 9 inputs meets 4 taps with padding 1


def test_synaptic_operations_through_sumpool_and_flatten():
    w = np.arange(1, 13, dtype=np.float32).reshape(3, 4)
    w[0, 0] = 0.0
    g = nir.NIRGraph(
        nodes={"input": nir.Input(input_type=np.array([1, 4, 4])),
               "pool": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
               "flat": nir.Flatten(input_type={"input": np.array([1, 2, 2])}, start_dim=0, end_dim=-1),
               "fc": nir.Affine(weight=w, bias=np.zeros(3, dtype=np.float32)),
               "if": nir.IF(r=np.ones(3), v_threshold=np.ones(3), v_reset=np.zeros(3)),
               "output": nir.Output(output_type=np.array([3]))},
        edges=[("input", "pool"), ("pool", "flat"), ("flat", "fc"), ("fc", "if"), ("if", "output")])
    x = np.zeros((1, 1, 1, 4, 4), bool)
    x[0, 0, 0, 0, 0] = x[0, 0, 0, 1, 1] = True  # both in window (0,0): pooled value 2, one input element
    x[0, 0, 0, 3, 3] = True                      # window (1,1): flat index 3
    rec = Recording(dt=1e-4)
    rec.add("input", "spikes", x)
    ops = synaptic_operations(g, rec)
    # pooled input non-zero at flat 0 (column 0 has 2 non-zero weights) and flat 3 (3 non-zero)
    assert ops.effective_acs == pytest.approx(2 + 3)
    assert ops.effective_macs == 0
    assert ops.dense == pytest.approx(12)


def test_synaptic_operations_skips_unrecorded_inputs():
    rec = Recording(dt=1e-4)
    rec.add("lif", "spikes", np.zeros((1, 2, 2), bool))
    ops = synaptic_operations(_dense_graph(), rec)
    assert ops.skipped == ["fc"] and ops.effective_acs == 0


def _pool_affine_graph(k: int, s: int, p: int, size: int = 5) -> nir.NIRGraph:
    out = (size + 2 * p - k) // s + 1
    rng = np.random.default_rng(3)
    w = rng.integers(-2, 3, size=(4, 2 * out * out)).astype(np.float32)
    return nir.NIRGraph(
        nodes={"input": nir.Input(input_type=np.array([2, size, size])),
               "pool": nir.SumPool2d(kernel_size=np.array([k, k]), stride=np.array([s, s]), padding=np.array([p, p])),
               "flat": nir.Flatten(input_type={"input": np.array([2, out, out])}, start_dim=0, end_dim=-1),
               "fc": nir.Affine(weight=w, bias=np.zeros(4, dtype=np.float32)),
               "if": nir.IF(r=np.ones(4), v_threshold=np.ones(4), v_reset=np.zeros(4)),
               "output": nir.Output(output_type=np.array([4]))},
        edges=[("input", "pool"), ("pool", "flat"), ("flat", "fc"), ("fc", "if"), ("if", "output")]), w, out


def _brute_force_acs(x: np.ndarray, w: np.ndarray, k: int, s: int, p: int, out: int) -> float:
    """Effective ops by explicit loops: pool each window by hand, count (non-zero input, non-zero weight)."""
    b, t, c, h, wd = x.shape
    total = 0
    for i in range(b):
        for j in range(t):
            pooled = np.zeros((c, out, out))
            for ch in range(c):
                for oy in range(out):
                    for ox in range(out):
                        for dy in range(k):
                            for dx in range(k):
                                y, xx = oy * s - p + dy, ox * s - p + dx
                                if 0 <= y < h and 0 <= xx < wd:
                                    pooled[ch, oy, ox] += x[i, j, ch, y, xx]
            for col, v in enumerate(pooled.reshape(-1)):
                if v != 0:
                    total += int(np.count_nonzero(w[:, col]))
    return total / b


@pytest.mark.parametrize("k,s,p", [(2, 2, 0), (3, 2, 1), (3, 1, 1), (2, 3, 0)])
def test_synaptic_operations_pool_geometry_against_loops(k, s, p):
    """Spike masks are pooled by OR (no counts formed): the same figure as summing each window by hand,
    for overlapping, padded and gapped windows."""
    g, w, out = _pool_affine_graph(k, s, p)
    x = np.random.default_rng(k * 10 + s + p).random((3, 4, 2, 5, 5)) < 0.2
    rec = Recording(dt=1e-4)
    rec.add("input", "spikes", x)
    ops = synaptic_operations(g, rec)
    assert ops.effective_acs == pytest.approx(_brute_force_acs(x.astype(float), w, k, s, p, out))
    assert ops.effective_macs == 0


def test_synaptic_operations_signed_values_cancel_in_a_pool():
    """A recorded signed map (e.g. a non-spiking node's output): +1 and -1 in one window sum to 0, so that
    pooled input is silent. An OR of non-zero masks would count it; the value path must not."""
    g, w, out = _pool_affine_graph(2, 2, 0, size=4)
    x = np.zeros((1, 1, 2, 4, 4))
    x[0, 0, 0, 0, 0], x[0, 0, 0, 0, 1] = 1.0, -1.0   # window (0, 0, 0): cancels
    x[0, 0, 1, 2, 2] = 0.5                           # window (1, 1, 1): fractional, non-zero
    rec = Recording(dt=1e-4)
    rec.add("input", "spikes", x)
    ops = synaptic_operations(g, rec)
    expected = _brute_force_acs(x, w, 2, 2, 0, out)
    assert expected == np.count_nonzero(w[:, 1 * out * out + 1 * out + 1])
    assert ops.effective_macs == pytest.approx(expected)
    assert ops.effective_acs == 0
