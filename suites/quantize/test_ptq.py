"""PTQ: hand-computed examples, metadata, structure (nested graphs, recurrence, pooling), bad input.

Expected numbers are worked out by hand in the comments, not copied from the code's output.
"""
from __future__ import annotations

import hashlib

import nir
import numpy as np
import pytest

from harness.quantize import dequantize, is_quantized, quant_meta, quantize_ptq, source_digest
from s2common.errors import QuantizationError
from suites.quantize.graphs import conv_graph, nested, two_layer


def small():
    # pop1 gets fc1 = [[0.5, -0.25], [0.1, 0.0]]; pop2 gets fc2 = [[1/32, -1/16]] (dyadic: exact in float32,
    # so that the tie 63.5 below is a real tie)
    return two_layer([[0.5, -0.25], [0.1, 0.0]], [[0.03125, -0.0625]], b1=[0.01, -0.02], theta1=1.0, theta2=0.5)


def test_nearest_codes_thresholds_and_bias_by_hand():
    g = small()
    qg = quantize_ptq(g)
    # pop1: lambda = 127 / max|W| = 127 / 0.5 = 254; 254 * [0.5, -0.25, 0.1, 0] = [127, -63.5, 25.4, 0]
    # rint (half to even): -63.5 -> -64, 25.4 -> 25
    fc1 = qg.graph.nodes["fc1"]
    np.testing.assert_array_equal(fc1.weight, [[127, -64], [25, 0]])
    np.testing.assert_allclose(fc1.bias, [0.01 * 254, -0.02 * 254], rtol=1e-6)
    np.testing.assert_allclose(qg.graph.nodes["pop1"].v_threshold, [254.0, 254.0], rtol=1e-7)
    np.testing.assert_array_equal(qg.graph.nodes["pop1"].v_reset, [0.0, 0.0])
    # pop2: lambda = 127 / 0.0625 = 2032; codes [63.5 -> 64 (half to even), -127]; theta 0.5 * 2032
    np.testing.assert_array_equal(qg.graph.nodes["fc2"].weight, [[64, -127]])
    np.testing.assert_allclose(qg.graph.nodes["pop2"].v_threshold, [1016.0], rtol=1e-7)
    assert qg.scales["pop1"] == pytest.approx(254.0)
    assert qg.scales["pop2"] == pytest.approx(2032.0)
    rows = {r.layer: r for r in qg.layers}
    # max error of fc1 in float units: |-0.25 - (-64/254)| = 0.5/254; |0.1 - 25/254| = 0.4/254
    assert rows["fc1"].max_rounding_error == pytest.approx(0.5 / 254)
    assert rows["fc1"].clipped_fraction == 0.0
    assert rows["fc1"].bytes_float32 == 16 and rows["fc1"].bytes_int8 == 4
    # the input graph is not touched
    np.testing.assert_array_equal(g.nodes["fc1"].weight, np.float32([[0.5, -0.25], [0.1, 0.0]]))
    assert g.nodes["pop1"].v_threshold[0] == 1.0 and not is_quantized(g)


def test_truncate_dense_truncates_and_saturates():
    g = small()
    # p = 100: trunc toward zero: [127, -63.5 -> -63, 25.4 -> 25, 0]
    qt = quantize_ptq(g, rounding="truncate")
    np.testing.assert_array_equal(qt.graph.nodes["fc1"].weight, [[127, -63], [25, 0]])
    # p = 50 over |fc1| = [0.5, 0.25, 0.1, 0]: median = (0.25 + 0.1)/2 = 0.175 -> lambda = 127/0.175 = 725.714...
    # lambda*w = [362.857, -181.43, 72.57, 0]; trunc -> [362, -181, 72, 0]; dense saturates at +-127
    qt50 = quantize_ptq(g, percentile=50, rounding="truncate")
    np.testing.assert_array_equal(qt50.graph.nodes["fc1"].weight, [[127, -127], [72, 0]])
    assert {r.layer: r for r in qt50.layers}["fc1"].clipped_fraction == pytest.approx(0.5)
    # nearest at p = 50 rounds, then clips: rint -> [363, -181, 73, 0] -> [127, -127, 73, 0]
    qn50 = quantize_ptq(g, percentile=50)
    np.testing.assert_array_equal(qn50.graph.nodes["fc1"].weight, [[127, -127], [73, 0]])


def test_truncate_conv_reproduces_vendor_cast_including_wraparound():
    wc = np.full((1, 2, 3, 3), 0.05, np.float32)
    wc[0, 0, 0, :3] = [0.5, -0.25, 0.1]
    g = conv_graph(wc, np.ones((2, 9), np.float32))
    # p = 90 over the 18 |w| (15 x 0.05, 0.1, 0.25, 0.5): rank 0.9*17 = 15.3 -> 0.1 + 0.3*(0.25-0.1) = 0.145
    # lambda = 127/0.145 = 875.86; lambda*w = 437.9, -218.97, 87.59, 43.79 -> trunc 437, -218, 87, 43
    # int8 wrap: 437 - 512 = -75; -218 + 256 = 38
    qt = quantize_ptq(g, percentile=90, rounding="truncate")
    q = qt.graph.nodes["conv"].weight
    np.testing.assert_array_equal(q[0, 0, 0, :3], [-75, 38, 87])
    assert np.all(q.ravel()[3:] == 43)
    lam = 127 / np.percentile(np.abs(wc.astype(np.float64)), 90)
    with np.errstate(invalid="ignore"):
        vendor = (wc.astype(np.float64) * lam).astype(np.int8)  # py-spinnaker2's cast, on this x86 host
    np.testing.assert_array_equal(q, vendor)
    assert {r.layer: r for r in qt.layers}["conv"].clipped_fraction == pytest.approx(2 / 18)


def test_lif_voltages_scaled_time_constants_not():
    g = two_layer([[0.5, -0.25]], [[0.04]], neuron="LIF")
    qg = quantize_ptq(g)
    lif = qg.graph.nodes["pop1"]
    np.testing.assert_allclose(lif.v_leak, [0.1 * 254], rtol=1e-6)
    np.testing.assert_allclose(lif.v_threshold, [254.0], rtol=1e-7)
    np.testing.assert_array_equal(lif.tau, np.float32([1e-3]))
    np.testing.assert_array_equal(lif.r, [1.0])


def test_recurrent_weights_share_the_population_scale():
    # pop1's incoming weights: fc1 (max 0.5) and the recurrent Linear (max 0.8): lambda = 127/0.8
    g = two_layer([[0.5, -0.25], [0.1, 0.0]], [[0.02, -0.04]], w_rec=[[0.0, 0.8], [-0.3, 0.0]])
    qg = quantize_ptq(g)
    lam = 127 / 0.8
    assert qg.scales["pop1"] == pytest.approx(lam)
    np.testing.assert_array_equal(qg.graph.nodes["rec"].weight, [[0, 127], [np.rint(-0.3 * lam), 0]])
    np.testing.assert_array_equal(qg.graph.nodes["fc1"].weight, np.rint(np.float32([[0.5, -0.25], [0.1, 0.0]]) * lam))


def test_per_channel_scales_by_hand():
    g = small()
    qg = quantize_ptq(g, per_channel=True)
    # fc1 rows: max 0.5 -> 254, max 0.1 -> 1270; thresholds per neuron
    np.testing.assert_allclose(qg.scales["pop1"], [254.0, 1270.0])
    np.testing.assert_array_equal(qg.graph.nodes["fc1"].weight, [[127, -64], [127, 0]])
    np.testing.assert_allclose(qg.graph.nodes["pop1"].v_threshold, [254.0, 1270.0], rtol=1e-7)
    np.testing.assert_allclose(qg.graph.nodes["fc1"].bias, [0.01 * 254, -0.02 * 1270], rtol=1e-6)
    assert quant_meta(qg.graph.nodes["fc1"])["per_channel"] is True


def test_per_channel_conv_through_sumpool():
    rng = np.random.default_rng(1)
    wc = rng.normal(size=(3, 2, 3, 3)).astype(np.float32)
    g = conv_graph(wc, rng.normal(size=(4, 27)))
    qg = quantize_ptq(g, per_channel=True)
    expect = 127 / np.abs(wc).reshape(3, -1).max(axis=1)
    np.testing.assert_allclose(qg.scales["if1"], expect)
    thr = qg.graph.nodes["if1"].v_threshold
    for c in range(3):
        np.testing.assert_allclose(thr[c], expect[c], rtol=1e-6)
    assert np.abs(qg.graph.nodes["conv"].weight).reshape(3, -1).max(axis=1).tolist() == [127, 127, 127]


def test_per_channel_refuses_flatten_before_population():
    rng = np.random.default_rng(2)
    g = conv_graph(rng.normal(size=(3, 2, 3, 3)), rng.normal(size=(4, 108)), flatten_before_pop=True)
    quantize_ptq(g)  # per tensor is fine
    with pytest.raises(QuantizationError) as err:
        quantize_ptq(g, per_channel=True)
    assert err.value.node == "conv" and err.value.rule == "per-channel-unsupported"


def test_nested_graph_and_dotted_names_survive_write_and_read(tmp_path):
    g = nested([[0.5, -0.25], [0.1, 0.2], [0.0, -0.4]], [[0.3, -0.6, 0.1]])
    qg = quantize_ptq(g)
    assert {r.layer for r in qg.layers} == {"block.fc", "a.b"}
    path = tmp_path / "q.nir"
    qg.write(path)
    back = nir.read(str(path))
    assert type(back.nodes["block"]).__name__ == "NIRGraph"
    fc = back.nodes["block"].nodes["fc"]
    np.testing.assert_array_equal(fc.weight, [[127, -64], [25, 51], [0, -102]])  # 254 * w, rounded
    meta = quant_meta(fc)
    assert meta["scale"] == pytest.approx(254.0) and meta["bits"] == 8 and meta["flow"] == "ptq"
    assert meta["rounding"] == "nearest" and meta["percentile"] == 100.0
    assert meta["source_digest"] == qg.source_digest and len(meta["source_digest"]) == 64
    np.testing.assert_allclose(back.nodes["block"].nodes["lif"].v_threshold, 0.5 * 254, rtol=1e-6)
    np.testing.assert_allclose(back.nodes["block"].nodes["fc"].bias, 0.05 * 254, rtol=1e-6)
    assert quant_meta(back.nodes["a.b"])["scale"] == pytest.approx(127 / 0.6)
    assert quant_meta(back)["flow"] == "ptq"
    assert is_quantized(back)


def test_dequantize_restores_float_view_within_half_a_step():
    g = small()
    qg = quantize_ptq(g)
    d = dequantize(qg.graph)
    assert not is_quantized(d)
    np.testing.assert_allclose(d.nodes["fc1"].weight, [[0.5, -64 / 254], [25 / 254, 0.0]], rtol=1e-6)
    np.testing.assert_allclose(d.nodes["pop1"].v_threshold, [1.0, 1.0], rtol=1e-7)
    np.testing.assert_allclose(d.nodes["fc1"].bias, [0.01, -0.02], rtol=1e-6)
    # a graph without quantization comes back unchanged
    d0 = dequantize(g)
    np.testing.assert_array_equal(d0.nodes["fc1"].weight, g.nodes["fc1"].weight)


def test_source_digest_is_sha256_of_the_file(tmp_path):
    g = small()
    path = tmp_path / "m.nir"
    nir.write(str(path), g)
    expect = hashlib.sha256(path.read_bytes()).hexdigest()
    qg = quantize_ptq(nir.read(str(path)), source=path)
    assert qg.source_digest == expect == source_digest(path)
    # without a file: a digest of the parameters, which changes when a weight changes
    g2 = small()
    g2.nodes["fc2"].weight = np.float32([[0.03125, -0.05]])
    assert source_digest(g) != source_digest(g2)
    assert source_digest(g) == source_digest(small())


# ---- bad input -----------------------------------------------------------------------------

def test_all_zero_incoming_weights_give_scale_one_and_a_warning():
    g = two_layer([[0.5, -0.25], [0.1, 0.0]], [[0.0, 0.0]])
    qg = quantize_ptq(g)
    assert qg.scales["pop2"] == 1.0
    np.testing.assert_array_equal(qg.graph.nodes["fc2"].weight, [[0, 0]])
    np.testing.assert_array_equal(qg.graph.nodes["pop2"].v_threshold, [1.0])
    row = {r.layer: r for r in qg.layers}["fc2"]
    assert "all incoming weights are zero" in row.warning
    assert any("pop2" in w for w in qg.warnings)


def test_zero_percentile_of_mostly_zero_weights_is_an_error():
    g = two_layer([[0.0, 0.0, 0.0, 0.3]], [[0.5]])
    quantize_ptq(g, percentile=100)
    with pytest.raises(QuantizationError) as err:
        quantize_ptq(g, percentile=50)  # median of [0, 0, 0, 0.3] is 0
    assert err.value.rule == "zero-percentile" and err.value.node == "pop1"


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_weights_name_the_node(bad):
    g = small()
    g.nodes["fc2"].weight = np.float32([[0.03125, bad]])
    with pytest.raises(QuantizationError) as err:
        quantize_ptq(g)
    assert err.value.node == "fc2"
    assert ("NaN" if np.isnan(bad) else "inf") in str(err.value)


@pytest.mark.parametrize("p", [0, -1, 100.0001, 1e9, float("nan"), "ninety"])
def test_percentile_outside_0_100_is_an_error(p):
    with pytest.raises(QuantizationError) as err:
        quantize_ptq(small(), percentile=p)
    assert err.value.rule == "bad-percentile"


def test_bad_rounding_mode():
    with pytest.raises(QuantizationError):
        quantize_ptq(small(), rounding="stochastic")


def test_weight_layer_without_population_is_an_error():
    g = nir.NIRGraph(nodes={"input": nir.Input(input_type={"input": np.array([2])}),
                            "fc": nir.Affine(weight=np.ones((3, 2), np.float32), bias=np.zeros(3, np.float32)),
                            "output": nir.Output(output_type={"output": np.array([3])})},
                     edges=[("input", "fc"), ("fc", "output")])
    with pytest.raises(QuantizationError) as err:
        quantize_ptq(g)
    assert err.value.node == "fc" and err.value.rule == "weight-without-population"


def test_two_weight_layers_in_a_row_is_an_error():
    g = nir.NIRGraph(nodes={"input": nir.Input(input_type={"input": np.array([2])}),
                            "a": nir.Linear(weight=np.ones((3, 2), np.float32)),
                            "b": nir.Linear(weight=np.ones((1, 3), np.float32)),
                            "n": nir.IF(r=np.ones(1, np.float32), v_threshold=np.ones(1, np.float32)),
                            "output": nir.Output(output_type={"output": np.array([1])})},
                     edges=[("input", "a"), ("a", "b"), ("b", "n"), ("n", "output")])
    with pytest.raises(QuantizationError) as err:
        quantize_ptq(g)
    assert err.value.node == "a" and err.value.rule == "consecutive-weights"


def test_tiny_weights_whose_scale_overflows_the_threshold_are_an_error():
    # lambda = 127 / 1e-37 = 1.27e39 > float32 max (3.4e38): threshold 1.0 * lambda overflows
    g = two_layer([[1e-37, 0.0]], [[0.5]])
    with pytest.raises(QuantizationError) as err:
        quantize_ptq(g)
    assert err.value.rule == "scale-overflow" and err.value.node == "pop1"


def _pool_first(extra_direct: bool = False):
    shape = (1, 2, 2)
    nodes = {"input": nir.Input(input_type={"input": np.array([1, 4, 4])}),
             "pool": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
             "if0": nir.IF(r=np.ones(shape, np.float32), v_threshold=np.full(shape, 2.0, np.float32),
                           v_reset=np.zeros(shape, np.float32)),
             "flat": nir.Flatten(input_type={"input": np.array(shape)}, start_dim=0, end_dim=-1),
             "fc": nir.Affine(weight=np.float32([[0.5, -0.5, 0.25, 0.0]]), bias=np.zeros(1, np.float32)),
             "if1": nir.IF(r=np.ones(1, np.float32), v_threshold=np.ones(1, np.float32), v_reset=np.zeros(1, np.float32)),
             "output": nir.Output(output_type={"output": np.array([1])})}
    edges = [("input", "pool"), ("pool", "if0"), ("if0", "flat"), ("flat", "fc"), ("fc", "if1"), ("if1", "output")]
    if extra_direct:
        nodes["conv"] = nir.Conv2d(input_shape=(4, 4), weight=np.ones((1, 1, 2, 2), np.float32), stride=2, padding=0,
                                   dilation=1, groups=1, bias=np.zeros(1, np.float32))
        edges += [("input", "conv"), ("conv", "if0")]
    return nir.NIRGraph(nodes=nodes, edges=edges)


def test_population_fed_by_pooled_input_keeps_scale_one():
    qg = quantize_ptq(_pool_first())
    assert qg.scales == {"if1": 254.0, "if0": 1.0}
    np.testing.assert_array_equal(qg.graph.nodes["if0"].v_threshold, 2.0)  # unscaled: its input is raw spikes
    assert quant_meta(qg.graph.nodes["if0"])["scale"] == 1.0


def test_population_fed_weighted_and_unweighted_is_an_error():
    with pytest.raises(QuantizationError) as err:
        quantize_ptq(_pool_first(extra_direct=True))
    assert err.value.node == "if0" and err.value.rule == "unweighted-input"


def test_non_spiking_population_feeding_weights_is_an_error():
    g = nir.NIRGraph(nodes={"input": nir.Input(input_type={"input": np.array([2])}),
                            "a": nir.Linear(weight=np.ones((3, 2), np.float32)),
                            "li": nir.LI(tau=np.full(3, 1e-3, np.float32), r=np.ones(3, np.float32),
                                         v_leak=np.zeros(3, np.float32)),
                            "b": nir.Linear(weight=np.ones((1, 3), np.float32)),
                            "n": nir.IF(r=np.ones(1, np.float32), v_threshold=np.ones(1, np.float32)),
                            "output": nir.Output(output_type={"output": np.array([1])})},
                     edges=[("input", "a"), ("a", "li"), ("li", "b"), ("b", "n"), ("n", "output")])
    with pytest.raises(QuantizationError) as err:
        quantize_ptq(g)
    assert err.value.node == "li" and err.value.rule == "non-spiking-source"
