"""The threshold-scaling ablation (:mod:`harness.quantize.thresholds`) on a small two-layer IF network."""
from __future__ import annotations

import numpy as np

import nir

from harness.quantize import quant_meta, quantize_ptq
from harness.quantize.thresholds import (search_thresholds, threshold_ablation, unscaled, with_threshold_factors)


def _net(seed: int = 0) -> "nir.NIRGraph":
    """12 inputs -> Affine -> IF (8) -> Affine -> IF (3); small weights, so lambda = 127 / max|W| is large."""
    rng = np.random.default_rng(seed)
    w1 = rng.normal(0, 0.15, (8, 12)).astype(np.float32)
    w2 = rng.normal(0, 0.3, (3, 8)).astype(np.float32)

    def if_node(n):
        return nir.IF(r=np.ones(n, np.float32), v_threshold=np.ones(n, np.float32), v_reset=np.zeros(n, np.float32))

    nodes = {"input": nir.Input(input_type={"input": np.array([12])}),
             "fc1": nir.Affine(weight=w1, bias=np.zeros(8, np.float32)), "if1": if_node(8),
             "fc2": nir.Affine(weight=w2, bias=np.zeros(3, np.float32)), "if2": if_node(3),
             "output": nir.Output(output_type={"output": np.array([3])})}
    edges = [("input", "fc1"), ("fc1", "if1"), ("if1", "fc2"), ("fc2", "if2"), ("if2", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges)


def _data(n: int, seed: int):
    rng = np.random.default_rng(seed)
    x = rng.random((n, 40, 12)) < 0.35
    return x, rng.integers(0, 3, n)


def test_unscaled_puts_the_float_thresholds_back():
    g = _net()
    q = quantize_ptq(g).graph
    lam1 = quant_meta(q.nodes["if1"])["scale"]
    assert lam1 == 127 / np.abs(g.nodes["fc1"].weight.astype(np.float64)).max()
    np.testing.assert_allclose(q.nodes["if1"].v_threshold, lam1, rtol=1e-6)  # scaled: theta * lambda
    u = unscaled(q)
    np.testing.assert_allclose(u.nodes["if1"].v_threshold, 1.0, rtol=1e-6)  # unscaled: theta as in the float graph
    np.testing.assert_array_equal(u.nodes["fc1"].weight, q.nodes["fc1"].weight)  # the same codes
    f = with_threshold_factors(q, {"if2": 1.25})
    np.testing.assert_allclose(f.nodes["if2"].v_threshold, 1.25 * q.nodes["if2"].v_threshold, rtol=1e-6)
    np.testing.assert_array_equal(f.nodes["if1"].v_threshold, q.nodes["if1"].v_threshold)


def test_ablation_table_shows_the_lesson():
    g = _net()
    x, y = _data(40, 1)
    cx, _ = _data(20, 2)
    t = threshold_ablation(g, x, y, cx, model="tiny", preset="spinnaker2")
    assert [r.variant for r in t.rows] == ["float", "scaled", "unscaled", "searched"]
    assert t.populations == ["if1", "if2"]
    scaled, unsc = t.row("scaled"), t.row("unscaled")
    # thresholds lambda times too low in chip units (lambda > 8 here): every layer fires far more
    for p in t.populations:
        assert unsc.rates[p] > 2 * scaled.rates[p]
    # the scaled graph computes (up to int8 rounding) the float network: it agrees far better
    assert scaled.agreement > unsc.agreement
    assert set(t.row("searched").factors.values()) <= {0.8, 0.9, 1.0, 1.1, 1.25}
    text = t.table()
    for col in ("thresholds", "accuracy %", "agreement %", "rate if1", "rate if2"):
        assert col in text


def test_search_keeps_factor_one_when_nothing_is_better():
    g = _net()
    q = quantize_ptq(g).graph
    silent = np.zeros((4, 10, 12), bool)  # no input: every factor gives the same (silent) output
    assert search_thresholds(g, q, silent, preset="spinnaker2") == {"if1": 1.0, "if2": 1.0}
