"""Lowering: parameters against hand computation from the converter's formulas, models, weights, patterns.

Hand values follow py-spinnaker2's ``s2_nir.convert_LIF / convert_IF / convert_CubaLIF``
(public copy: SpiNNakerManchester/sPiNNIRker@47c758b, spinnirker/__init__.py).
"""
from __future__ import annotations

import math

import nir
import numpy as np
import pytest
from hypothesis import given, settings

from s2common.errors import DesignRuleError
from s2common.graph import read_flat
from s2emu import ConversionOptions, find_projection_paths, lower
from suites.fixtures import third_party
from suites.strategies import rejected_graphs

F = np.float32


def ulps(a: float, b: float) -> float:
    return abs(float(a) - float(b)) / float(np.spacing(np.float32(abs(b))))


#: NIR stores the time constants as float32 (2e-3 is no binary fraction), so hand values computed
#: from the decimal numbers agree with the lowered float32 parameters to a few ulps, not exactly
TOL = 4


def _chain(neuron: object, weight: np.ndarray, bias=None, n_in: int = 2) -> object:
    n_out = weight.shape[0]
    wnode = nir.Affine(weight=weight.astype(F), bias=(np.zeros(n_out) if bias is None else bias).astype(F))
    return nir.NIRGraph(
        nodes={"input": nir.Input(input_type={"input": np.array([n_in])}), "fc": wnode, "n": neuron,
               "output": nir.Output(output_type={"output": np.array([n_out])})},
        edges=[("input", "fc"), ("fc", "n"), ("n", "output")])


W = np.array([[0.5, -0.25]])        # max |W| = 0.5 -> w_scale = 127 / 0.5 = 254
BIAS = np.array([0.25])


def test_lif_forward_euler_parameters() -> None:
    # tau = 2 ms, r = 2, dt = 0.1 ms: dt/tau = 0.05, alpha = 0.95, r_factor = 0.1
    lif = nir.LIF(tau=F([2e-3]), r=F([2.0]), v_leak=F([0.1]), v_threshold=F([1.5]), v_reset=F([0.3]))
    net = lower(_chain(lif, W, BIAS), ConversionOptions(dt=1e-4, integrator="euler", scale_weights=True))
    pop = net.populations["n"]
    assert pop.model == "lif_no_delay" and pop.w_scale == pytest.approx(254.0)
    # scale = w_scale / r_factor = 2540; threshold = 1.5 * 2540 = 3810
    assert ulps(pop.threshold[0], 3810.0) <= TOL
    assert ulps(pop.alpha_decay[0], 0.95) <= TOL
    # i_offset = dt/tau * v_leak * scale + bias * w_scale = 0.05 * 0.1 * 2540 + 0.25 * 254 = 12.7 + 63.5
    assert ulps(pop.i_offset[0], 76.2) <= TOL
    assert pop.v_reset[0] == 0.0  # NIR's v_reset (0.3) is ignored by the converter
    # dense weights: 0.5 * 254 = 127, -0.25 * 254 = -63.5 -> truncated toward zero
    assert net.projections[0].weight.tolist() == [[127, -63]]


def test_lif_exponential_euler_parameters() -> None:
    lif = nir.LIF(tau=F([2e-3]), r=F([2.0]), v_leak=F([0.1]), v_threshold=F([1.5]), v_reset=F([0.0]))
    net = lower(_chain(lif, W, BIAS), ConversionOptions(dt=1e-4, integrator="exp", scale_weights=True))
    pop = net.populations["n"]
    a = math.exp(-0.05)
    r_factor = (1 - a) * 2.0
    scale = 254.0 / r_factor
    assert ulps(pop.alpha_decay[0], a) <= TOL
    assert ulps(pop.threshold[0], 1.5 * scale) <= TOL
    assert ulps(pop.i_offset[0], (1 - a) * 0.1 * scale + 0.25 * 254) <= TOL


def test_if_parameters() -> None:
    iff = nir.IF(r=F([4.0]), v_threshold=F([2.0]), v_reset=F([0.0]))
    net = lower(_chain(iff, W, BIAS), ConversionOptions(dt=1e-4, integrator="exp", scale_weights=True))
    pop = net.populations["n"]
    assert pop.alpha_decay[0] == 1.0
    assert ulps(pop.threshold[0], 2.0 * 254 / 4.0) <= TOL     # v_th * w_scale / r = 127
    assert ulps(pop.i_offset[0], 0.25 * 254) <= TOL            # bias * w_scale


@pytest.mark.parametrize("integrator", ["euler", "exp"])
def test_cubalif_parameters(integrator: str) -> None:
    # tau_syn = 0.5 ms, tau_mem = 1 ms, r = 2, w_in = 2, dt = 0.1 ms
    cuba = nir.CubaLIF(tau_syn=F([5e-4]), tau_mem=F([1e-3]), r=F([2.0]), v_leak=F([0.0]), v_threshold=F([1.0]),
                       v_reset=F([0.0]), w_in=F([2.0]))
    net = lower(_chain(cuba, np.array([[1.0, -0.5]]), np.array([0.1])),
                ConversionOptions(dt=1e-4, integrator=integrator, scale_weights=True))
    pop = net.populations["n"]
    assert pop.model == "lif_curr_exp_no_delay"
    if integrator == "euler":
        syn, alpha, r_factor, w_in_factor = 0.8, 0.9, 0.1 * 2, 0.2 * 2
    else:
        syn, alpha = math.exp(-0.2), math.exp(-0.1)
        r_factor, w_in_factor = (1 - alpha) * 2, (1 - syn) * 2
    scale = 127.0 / (r_factor * w_in_factor)     # euler: 127 / 0.08 = 1587.5
    assert ulps(pop.exc_decay[0], syn) <= TOL and ulps(pop.inh_decay[0], syn) <= TOL
    assert ulps(pop.alpha_decay[0], alpha) <= TOL
    assert ulps(pop.threshold[0], scale) <= TOL
    # i_offset = bias * w_in / w_in_factor * w_scale  (euler: 0.1 * 2 / 0.4 * 127 = 63.5)
    assert ulps(pop.i_offset[0], 0.1 * 2 / w_in_factor * 127) <= TOL
    if integrator == "euler":
        assert abs(float(pop.threshold[0]) - 1587.5) < 1e-3 and abs(float(pop.i_offset[0]) - 63.5) < 1e-4


def test_models_and_paths_of_the_cnn() -> None:
    flat = read_flat(third_party("cnn_sinabs.nir"))
    paths, problems = find_projection_paths(flat, ConversionOptions())
    assert problems == []
    assert [(p.pre, p.post, p.kind, p.nodes) for p in paths] == [
        ("input", "1", "conv2d", ["0"]),
        ("1", "3", "conv2d", ["2"]),
        ("3", "6", "pool_conv2d", ["4", "5"]),
        ("6", "10", "pool_flatten_dense", ["7", "8", "9"]),
        ("10", "12", "dense", ["11"]),
    ]
    net = lower(flat, ConversionOptions())
    assert {n: p.model for n, p in net.populations.items()} == {
        "input": "spike_list", "1": "lif_conv2d", "3": "lif_conv2d", "6": "lif_conv2d",
        "10": "lif_no_delay", "12": "lif_no_delay"}
    assert net.output_names == ["12"]
    pooled = [p for p in net.projections if p.pool is not None]
    assert [(p.post, p.kind, p.pool) for p in pooled] == [("6", "conv2d", (2, 2)), ("10", "dense", (2, 2))]
    # conv weights: (W * w_scale) truncated, |w| <= 127 with percentile 100, largest weight -> +-127
    conv0 = net.projections[0]
    w = np.asarray(flat.nodes["0"].weight, dtype=np.float64)
    expect = np.trunc(w * (127.0 / np.abs(w).max())).astype(np.int64)
    assert np.array_equal(conv0.weight.astype(np.int64), expect)
    assert np.abs(conv0.weight.astype(np.int64)).max() == 127


def test_braille_recurrence_and_shared_weight_scale() -> None:
    flat = read_flat(third_party("braille_noDelay_noBias_subtract.nir"))
    paths, problems = find_projection_paths(flat, ConversionOptions())
    assert problems == []
    kinds = sorted((p.pre, p.post, p.recurrent) for p in paths)
    assert kinds == [("input", "lif1.lif", False), ("lif1.lif", "lif1.lif", True), ("lif1.lif", "lif2", False)]
    net = lower(flat, ConversionOptions(scale_weights=True))
    # one w_scale for both projections into lif1.lif: 127 / max(|fc1|, |w_rec|)
    m = max(np.abs(flat.nodes["fc1"].weight).max(), np.abs(flat.nodes["lif1.w_rec"].weight).max())
    assert net.populations["lif1.lif"].w_scale == pytest.approx(127.0 / float(m))
    rec = next(p for p in net.projections if p.recurrent)
    assert np.abs(rec.weight.astype(int)).max() == 127  # w_rec holds the max (3.71 > 3.00)


def _conv_graph(weight: np.ndarray, neuron: str = "IF", pool: bool = False) -> object:
    c_out, c_in, k, _ = weight.shape
    h = 4
    nodes = {"input": nir.Input(input_type={"input": np.array([c_in, h, h])})}
    edges = []
    src = "input"
    size = h
    if pool:
        nodes["pool"] = nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0]))
        edges.append(("input", "pool"))
        src, size = "pool", h // 2
    nodes["conv"] = nir.Conv2d(input_shape=(size, size), weight=weight.astype(F), stride=1, padding=0, dilation=1,
                               groups=1, bias=np.array([0.5] * c_out, F))
    out = (c_out, size - k + 1, size - k + 1)
    ones = np.ones(out, F)
    if neuron == "IF":
        nodes["n"] = nir.IF(r=ones, v_threshold=ones, v_reset=0 * ones)
    else:
        nodes["n"] = nir.CubaLIF(tau_syn=ones * 1e-3, tau_mem=ones * 1e-3, r=ones, v_leak=0 * ones, v_threshold=ones,
                                 v_reset=0 * ones, w_in=ones)
    nodes["output"] = nir.Output(output_type={"output": np.array(out)})
    edges += [(src, "conv"), ("conv", "n"), ("n", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges)


def test_conv_weights_wrap_like_the_vendor_cast_with_percentile_scaling() -> None:
    # 8 weights of 0.5 and one of 1.5: the 50th percentile of |W| is 0.5 -> w_scale = 254;
    # 1.5 * 254 = 381 -> (int8) 381 - 256 = 125: the vendor's astype(np.int8) wraps
    w = np.full((1, 1, 3, 3), 0.5)
    w[0, 0, 1, 1] = 1.5
    net = lower(_conv_graph(w), ConversionOptions(scale_weights=True, percentile=50.0))
    k = net.projections[0].weight
    assert k[0, 0, 1, 1] == 125 and k[0, 0, 0, 0] == 127
    # conv bias goes to i_offset per output channel: 0.5 * 254
    assert np.all(net.populations["n"].i_offset == F(127.0))


def test_dense_weights_saturate_with_percentile_scaling() -> None:
    w = np.array([[0.5, 0.5, 0.5, 1.5]])        # 50th percentile 0.5 -> w_scale 254
    iff = nir.IF(r=F([1.0]), v_threshold=F([1.0]), v_reset=F([0.0]))
    net = lower(_chain(iff, w, n_in=4), ConversionOptions(scale_weights=True, percentile=50.0))
    assert net.projections[0].weight.tolist() == [[127, 127, 127, 127]]


def test_unscaled_weights_must_be_int8_integers() -> None:
    iff = nir.IF(r=F([1.0]), v_threshold=F([1.0]), v_reset=F([0.0]))
    net = lower(_chain(iff, np.array([[12.0, -127.0]])), ConversionOptions(scale_weights=False))
    assert net.projections[0].weight.tolist() == [[12, -127]]
    assert net.populations["n"].w_scale == 1.0
    with pytest.raises(DesignRuleError) as err:
        lower(_chain(iff, np.array([[12.5, 1.0]])), ConversionOptions(scale_weights=False))
    assert [v.rule for v in err.value.violations] == ["weight-not-integer"]
    assert err.value.violations[0].node == "fc" and "fc" in str(err.value)
    with pytest.raises(DesignRuleError) as err:
        lower(_chain(iff, np.array([[200.0, 1.0]])), ConversionOptions(scale_weights=False))
    assert [v.rule for v in err.value.violations] == ["weight-int8-range"]
    # vendor_cast: the float is cast as py-spinnaker2 would (truncation), as lif_spinnaker2.py relied on
    net = lower(_chain(iff, np.array([[12.9, -3.7]])), ConversionOptions(scale_weights=False, vendor_cast=True))
    assert net.projections[0].weight.tolist() == [[12, -3]]


def test_connection_delay_keeps_lif_no_delay_with_int8_weights() -> None:
    """``create_populations``: ``neuron_model_name = "lif_conv2d" if is_conv2d else "lif_no_delay"`` (no
    ``lif`` branch whatever conn_delay is); ``create_projection``: ``connection_list_from_dense_weights(
    affine_node.weight.T * post.nir_w_scale, delay)``: the delay goes into the dense connection list and
    the int8 weight 100 stays (no 4-bit model)."""
    iff = nir.IF(r=F([1.0]), v_threshold=F([1.0]), v_reset=F([0.0]))
    net = lower(_chain(iff, np.array([[100.0, -15.0]])), ConversionOptions(scale_weights=False, conn_delay=2))
    assert net.populations["n"].model == "lif_no_delay" and net.projections[0].delay == 2
    assert net.projections[0].weight.tolist() == [[100, -15]]
    ignored = lower(_chain(iff, np.array([[100.0, -15.0]])),
                    ConversionOptions(scale_weights=False, conn_delay=2, dense_delay="ignored"))
    assert ignored.populations["n"].model == "lif_no_delay" and ignored.projections[0].delay == 0


def _rules(graph: object, **opts) -> list:
    with pytest.raises(DesignRuleError) as err:
        lower(graph, ConversionOptions(**opts))
    return [(v.rule, v.node) for v in err.value.violations]


def _g(nodes: dict, edges: list) -> object:
    return nir.NIRGraph(nodes=nodes, edges=edges)


def _if(n: int) -> object:
    return nir.IF(r=np.ones(n, F), v_threshold=np.ones(n, F), v_reset=np.zeros(n, F))


def _inp(n) -> object:
    return nir.Input(input_type={"input": np.array(n if isinstance(n, list) else [n])})


def _out(n) -> object:
    return nir.Output(output_type={"output": np.array(n if isinstance(n, list) else [n])})


def test_unsupported_node_type_names_the_node() -> None:
    li = nir.LI(tau=np.full(2, 1e-3, F), r=np.ones(2, F), v_leak=np.zeros(2, F))
    g = _g({"input": _inp(2), "fc": nir.Linear(weight=np.eye(2, dtype=F)), "readout": li, "output": _out(2)},
           [("input", "fc"), ("fc", "readout"), ("readout", "output")])
    rules = _rules(g)
    assert ("unsupported-node-type", "readout") in rules


def test_neuron_to_neuron_is_an_unsupported_edge_pattern() -> None:
    g = _g({"input": _inp(2), "fc": nir.Linear(weight=np.eye(2, dtype=F)), "a": _if(2), "b": _if(2), "output": _out(2)},
           [("input", "fc"), ("fc", "a"), ("a", "b"), ("b", "output")])
    assert _rules(g) == [("unsupported-edge-pattern", "a -> b"), ("vendor-no-weights", "b")]
    assert _rules(g, scale_weights=False) == [("unsupported-edge-pattern", "a -> b")]


def test_two_weight_layers_in_a_row() -> None:
    g = _g({"input": _inp(2), "fc1": nir.Linear(weight=np.eye(2, dtype=F)), "fc2": nir.Linear(weight=np.eye(2, dtype=F)),
            "a": _if(2), "output": _out(2)},
           [("input", "fc1"), ("fc1", "fc2"), ("fc2", "a"), ("a", "output")])
    rules = _rules(g)
    assert ("unsupported-edge-pattern", "fc1 -> fc2") in rules


def test_flatten_without_pool_is_reported_as_a_vendor_gap() -> None:
    conv = nir.Conv2d(input_shape=(3, 3), weight=np.ones((1, 1, 1, 1), F), stride=1, padding=0, dilation=1, groups=1,
                      bias=np.zeros(1, F))
    g = _g({"input": _inp([1, 3, 3]), "conv": conv, "a": _if(9).__class__(r=np.ones((1, 3, 3), F),
            v_threshold=np.ones((1, 3, 3), F), v_reset=np.zeros((1, 3, 3), F)),
            "flat": nir.Flatten(input_type={"input": np.array([1, 3, 3])}, start_dim=0),
            "fc": nir.Affine(weight=np.ones((2, 9), F), bias=np.zeros(2, F)), "b": _if(2), "output": _out(2)},
           [("input", "conv"), ("conv", "a"), ("a", "flat"), ("flat", "fc"), ("fc", "b"), ("b", "output")])
    rules = _rules(g)
    assert rules == [("vendor-drops-flatten-without-pool", "a -> flat -> fc -> b")]


def test_conv1d_is_reported_as_a_vendor_gap() -> None:
    conv = nir.Conv1d(input_shape=4, weight=np.ones((1, 1, 2), F), stride=1, padding=0, dilation=1, groups=1,
                      bias=np.zeros(1, F))
    lif = nir.IF(r=np.ones((1, 3), F), v_threshold=np.ones((1, 3), F), v_reset=np.zeros((1, 3), F))
    g = _g({"input": _inp([1, 4]), "c1": conv, "a": lif, "output": _out([1, 3])},
           [("input", "c1"), ("c1", "a"), ("a", "output")])
    rules = _rules(g)
    assert ("vendor-drops-conv1d", "input -> c1") in rules


def test_conv_with_connection_delay_is_rejected() -> None:
    g = _conv_graph(np.ones((1, 1, 2, 2)))
    assert _rules(g, conn_delay=1, scale_weights=True) == [("unsupported-connection-delay", "input -> n")]


def test_conv_into_cubalif_is_rejected() -> None:
    g = _conv_graph(np.ones((1, 1, 2, 2)), neuron="CubaLIF")
    assert _rules(g) == [("unsupported-edge-pattern", "conv -> n")]


def test_error_message_lists_every_violation_on_one_line() -> None:
    li = nir.LI(tau=np.full(2, 1e-3, F), r=np.ones(2, F), v_leak=np.zeros(2, F))
    g = _g({"input": _inp(2), "fc": nir.Linear(weight=np.eye(2, dtype=F)), "a": _if(2), "b": _if(2), "c": li,
            "output": _out(2)},
           [("input", "fc"), ("fc", "a"), ("a", "b"), ("b", "c"), ("c", "output")])
    with pytest.raises(DesignRuleError) as err:
        lower(g)
    text = str(err.value)
    assert "\n" not in text
    assert "[unsupported-node-type] node 'c'" in text and "[unsupported-edge-pattern] node 'a -> b'" in text


@settings(max_examples=40, deadline=None)
@given(case=rejected_graphs())
def test_every_rejected_pattern_is_named(case) -> None:
    graph, rule, node = case
    with pytest.raises(DesignRuleError) as err:
        lower(graph)
    assert (rule, node) in [(v.rule, v.node) for v in err.value.violations]
    assert f"[{rule}] node '{node}'" in str(err.value)
