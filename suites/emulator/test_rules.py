"""Every SpiNNaker2 design rule: a graph (or lowered network) that triggers it, and its message.

Each test asserts the rule name, the node or edge the message names, and the numbers in the
message, worked out by hand. ``test_every_rule_is_tested`` keeps the registry and the tests in step.
"""
from __future__ import annotations

import math

import nir
import numpy as np
import pytest

from s2common.errors import DesignRuleError
from s2emu.network import ConversionOptions, Population, Projection, RuleViolation, S2Network
from s2emu.rules import RULES, check_design_rules, enforce, largest_fitting_atoms, pe_bytes, worst_case_input

from ..fixtures import REPO

pytest.importorskip("s2emu.lowering")
from s2emu.lowering import find_projection_paths  # noqa: E402,F401  (pattern rules come from here)

CNN = REPO / "harness" / "bundled" / "cnn_sinabs.nir"


def _rules(violations, name):
    return [v for v in violations if v.rule == name]


# ----------------------------------------------------------------------------------------
# graph builders
# ----------------------------------------------------------------------------------------

def f32(a):
    return np.asarray(a, dtype=np.float32)


def IF(n, th=1.0):
    shape = n if isinstance(n, tuple) else (n,)
    return nir.IF(r=f32(np.ones(shape)), v_threshold=f32(np.full(shape, th)), v_reset=f32(np.zeros(shape)))


def LIF(n, th=1.0, tau=1e-2):
    shape = n if isinstance(n, tuple) else (n,)
    return nir.LIF(tau=f32(np.full(shape, tau)), r=f32(np.ones(shape)), v_leak=f32(np.zeros(shape)),
                   v_threshold=f32(np.full(shape, th)), v_reset=f32(np.zeros(shape)))


def affine(w):
    w = f32(w)
    return nir.Affine(weight=w, bias=f32(np.zeros(w.shape[0])))


def conv(w, hw, padding=0):
    w = f32(w)
    return nir.Conv2d(input_shape=hw, weight=w, stride=1, padding=padding, dilation=1, groups=1,
                      bias=f32(np.zeros(w.shape[0])))


def chain(in_shape, layers, extra_edges=()):
    """Input -> layers (name, node) in order -> Output."""
    nodes = {"input": nir.Input(input_type=np.array(in_shape))}
    names = ["input"]
    for name, node in layers:
        nodes[name] = node
        names.append(name)
    last = layers[-1][1]
    out_shape = next(iter(last.output_type.values())) if getattr(last, "output_type", None) else None
    nodes["output"] = nir.Output(output_type=np.array(out_shape))
    names.append("output")
    edges = list(zip(names[:-1], names[1:])) + list(extra_edges)
    return nir.NIRGraph(nodes=nodes, edges=edges)


def _pop(name, model, shape, threshold=1.0, reset="subtract"):
    n = int(np.prod(shape))
    if model == "spike_list":
        return Population(name=name, model=model, shape=tuple(shape))
    z = np.zeros(n, np.float32)
    return Population(name=name, model=model, shape=tuple(shape), threshold=np.full(n, threshold, np.float32),
                      alpha_decay=z + 1, i_offset=z, v_reset=z, reset=reset)


# ----------------------------------------------------------------------------------------
# registry
# ----------------------------------------------------------------------------------------

def test_registry_is_ordered_and_described():
    names = list(RULES)
    assert names[:4] == ["unsupported-node-type", "unsupported-edge-pattern", "vendor-drops-flatten-without-pool",
                         "vendor-drops-conv1d"]
    assert names[-2:] == ["population-exceeds-pe", "network-exceeds-chip"]
    for name, rule in RULES.items():
        assert rule.name == name and rule.description and callable(rule.check)
    import s2emu.rules as mod

    for name in names:  # the module docstring's table documents every rule
        assert f"``{name}``" in mod.__doc__


def test_clean_graphs_pass():
    assert check_design_rules(str(CNN), atoms_per_core={"10": 16}) == []
    g = chain([3], [("fc", affine(np.eye(3))), ("lif", LIF(3))])
    assert check_design_rules(g) == []


# ----------------------------------------------------------------------------------------
# pattern rules
# ----------------------------------------------------------------------------------------

def test_unsupported_node_type():
    li = nir.LI(tau=f32([1e-2] * 3), r=f32([1.0] * 3), v_leak=f32([0.0] * 3))
    g = chain([3], [("fc", affine(np.eye(3))), ("li", li)])
    v = _rules(check_design_rules(g), "unsupported-node-type")
    assert [x.node for x in v] == ["li"] and "LI" in v[0].message
    assert "node 'li'" in v[0].one_line()


def test_unsupported_edge_pattern_neuron_to_neuron():
    g = chain([3], [("fc", affine(np.eye(3))), ("a", IF(3)), ("b", IF(3))])
    v = _rules(check_design_rules(g), "unsupported-edge-pattern")
    assert any(x.node == "a -> b" for x in v), v


def test_unsupported_edge_pattern_two_weight_layers():
    g = chain([3], [("fc1", affine(np.eye(3))), ("fc2", affine(np.eye(3))), ("a", IF(3))])
    v = _rules(check_design_rules(g), "unsupported-edge-pattern")
    assert any("fc1" in x.node and "fc2" in x.node for x in v), v


def test_vendor_drops_flatten_without_pool():
    g = chain([2, 4, 4], [("c", conv(np.ones((2, 2, 3, 3)), (4, 4), padding=1)), ("n", IF((2, 4, 4))),
                          ("flat", nir.Flatten(input_type={"input": np.array([2, 4, 4])}, start_dim=0, end_dim=-1)),
                          ("fc", affine(np.ones((3, 32)))), ("out", IF(3))])
    v = _rules(check_design_rules(g), "vendor-drops-flatten-without-pool")
    assert len(v) == 1 and v[0].node == "n -> flat -> fc -> out"
    assert "no projection" in v[0].message


def test_vendor_drops_conv1d():
    c1 = nir.Conv1d(input_shape=8, weight=f32(np.ones((3, 2, 3))), stride=1, padding=0, dilation=1, groups=1,
                    bias=f32(np.zeros(3)))
    g = chain([2, 8], [("c1", c1), ("n", IF((3, 6)))])
    v = _rules(check_design_rules(g), "vendor-drops-conv1d")
    assert [x.node for x in v] == ["input -> c1"] and "Conv1d" in v[0].message


def test_unsupported_connection_delay_on_conv():
    g = chain([1, 4, 4], [("c", conv(np.ones((1, 1, 3, 3)), (4, 4), padding=1)), ("n", IF((1, 4, 4)))])
    v = _rules(check_design_rules(g, options=ConversionOptions(conn_delay=1)), "unsupported-connection-delay")
    assert [x.node for x in v] == ["input -> n"]


# ----------------------------------------------------------------------------------------
# weights
# ----------------------------------------------------------------------------------------

def test_weight_int8_range_codes_too_large_and_not_integer():
    w = np.array([[200.0, 1.0, -3.0], [0.5, 2.0, -300.0]])
    g = chain([3], [("fc", affine(w)), ("lif", IF(2))])
    found = check_design_rules(g, options=ConversionOptions(scale_weights=False))
    v = _rules(found, "weight-int8-range")
    assert len(v) == 1 and v[0].node == "fc"
    assert "2 of 6 weights outside int8" in v[0].message and "max |w| = 300" in v[0].message
    n = _rules(found, "weight-not-integer")
    assert len(n) == 1 and n[0].node == "fc"
    assert "1 of 6 weights that are not integers" in n[0].message and "0.5" in n[0].message
    # the vendor's cast (as lif_spinnaker2.py relied on) accepts non-integer weights
    assert _rules(check_design_rules(g, options=ConversionOptions(scale_weights=False, vendor_cast=True)),
                  "weight-not-integer") == []
    # the same weights with scaling on are scaled into range: no violation
    assert _rules(check_design_rules(g), "weight-int8-range") == []


def test_weight_int8_range_percentile_saturation_is_a_warning():
    w = np.array([[1.0, 1.0, 1.0, 4.0]])
    g = chain([4], [("fc", affine(w)), ("lif", IF(1))])
    # percentile 50 of |W| = 1 -> w_scale 127 -> 4 * 127 = 508 saturates: 1 weight
    v = _rules(check_design_rules(g, options=ConversionOptions(percentile=50)), "weight-int8-range")
    assert len(v) == 1 and v[0].severity == "warning" and v[0].node == "fc"
    assert "saturates 1 of 4" in v[0].message


def test_vendor_int8_wrap_counts_wrapping_weights():
    # |W| = 1,1,1,1,1,2,3,4: percentile 50 = 1 -> w_scale = 127 -> 2, 3, -4 scale to 254, 381, -508: 3 wrap
    k = np.array([1, 1, -1, 1, 1, 2, 3, -4], dtype=np.float32).reshape(2, 1, 2, 2)
    g = chain([1, 3, 3], [("c", conv(k, (3, 3))), ("n", IF((2, 2, 2)))])
    v = _rules(check_design_rules(g, options=ConversionOptions(percentile=50)), "vendor-int8-wrap")
    assert len(v) == 1 and v[0].node == "c"
    assert "3 of 8 weights leave [-128, 127]" in v[0].message and "astype(np.int8)" in v[0].message
    # the wrap is real: numpy's cast gives the opposite sign for 254 -> -2
    assert int(np.array([254.0]).astype(np.int8)[0]) == -2
    assert _rules(check_design_rules(g), "vendor-int8-wrap") == []  # percentile 100: no wrap


def test_vendor_int8_wrap_on_cnn_sinabs_at_percentile_99():
    from s2common.graph import read_flat

    flat = read_flat(CNN)
    w = np.abs(np.asarray(flat.nodes["0"].weight, dtype=np.float64))
    s = 127.0 / np.percentile(w, 99)  # the converter's w_scale for population '1' (only Conv '0' feeds it)
    expected = int((np.trunc(w * s) > 127).sum())
    v = _rules(check_design_rules(flat, options=ConversionOptions(percentile=99), atoms_per_core={"10": 16}),
               "vendor-int8-wrap")
    by_node = {x.node: x for x in v}
    assert expected > 0 and f"{expected} of {w.size} weights" in by_node["0"].message


# ----------------------------------------------------------------------------------------
# accumulators
# ----------------------------------------------------------------------------------------

def test_accumulator_overflow_dense_at_a_small_width():
    g = chain([10], [("fc", affine(np.full((2, 10), 127.0))), ("lif", IF(2))])
    opts = ConversionOptions(scale_weights=False)
    # worst case 10 x 127 = 1270: fits 12-bit signed (2047), not 11-bit (1023)
    assert _rules(check_design_rules(g, options=opts, accumulator_bits={"input": 12}), "accumulator-overflow") == []
    v = _rules(check_design_rules(g, options=opts, accumulator_bits={"input": 11}), "accumulator-overflow")
    assert len(v) == 1 and v[0].node == "lif" and "1270" in v[0].message and "11-bit" in v[0].message


def test_accumulator_overflow_conv_at_the_24_bit_mla():
    # 1024 input channels x 9 x 9 x 127 = 10,533,888 > 2**23 - 1 = 8,388,607
    k = np.full((1, 1024, 9, 9), 127.0, dtype=np.float32)
    g = chain([1024, 9, 9], [("c", conv(k, (9, 9))), ("n", IF((1, 1, 1)))])
    v = _rules(check_design_rules(g, options=ConversionOptions(scale_weights=False)), "accumulator-overflow")
    assert len(v) == 1 and v[0].node == "n"
    assert str(1024 * 81 * 127) in v[0].message and "24-bit" in v[0].message
    # one channel fewer than the bound: 8,388,607 // (81 * 127) = 815 channels still fit
    k2 = np.full((1, 815, 9, 9), 127.0, dtype=np.float32)
    g2 = chain([815, 9, 9], [("c", conv(k2, (9, 9))), ("n", IF((1, 1, 1)))])
    assert _rules(check_design_rules(g2, options=ConversionOptions(scale_weights=False)), "accumulator-overflow") == []


def test_worst_case_input_counts_pooled_spikes():
    from s2common.graph import flatten_graph
    from s2emu.rules import RuleContext

    w = np.array([[1.0, -2.0], [3.0, 0.0]])
    g = chain([2, 2, 2], [("pool", nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]),
                                                 padding=np.array([0, 0]))),
                          ("flat", nir.Flatten(input_type={"input": np.array([2, 1, 1])}, start_dim=0, end_dim=-1)),
                          ("fc", affine(w)), ("n", IF(2))])
    flat = flatten_graph(g)
    opts = ConversionOptions(scale_weights=False)
    paths, problems = find_projection_paths(flat, opts)
    assert problems == []
    ctx = RuleContext(flat=flat, net=None, options=opts, paths=paths)
    conv, total = worst_case_input(ctx)["n"]
    # each pooled input carries up to 4 spikes: neuron 0: 4 * (1 + 2) = 12, neuron 1: 4 * 3 = 12
    assert total.tolist() == [12, 12] and conv.tolist() == [0, 0]


# ----------------------------------------------------------------------------------------
# lowered parameters
# ----------------------------------------------------------------------------------------

def test_non_finite_parameter_from_threshold_overflow():
    # threshold = v_th * w_scale / (dt/tau * r) = 1e37 * 127 / 1e-2 = 1.27e41 > float32 max
    g = chain([2], [("fc", affine(np.eye(2))), ("lif", LIF(2, th=1e37))])
    v = _rules(check_design_rules(g), "non-finite-parameter")
    assert len(v) == 1 and v[0].node == "lif" and "threshold is inf for 2 of 2" in v[0].message


def test_non_finite_parameter_on_a_hand_built_network():
    p = _pop("h", "lif_no_delay", (3,))
    p.alpha_decay = np.array([1.0, np.nan, 1.0], np.float32)
    net = S2Network(populations={"in": _pop("in", "spike_list", (3,)), "h": p},
                    projections=[Projection("x", "in", "h", "dense", weight=np.ones((3, 3), np.int8), nir_nodes=["fc"])],
                    input_name="in", output_names=["h"], options=ConversionOptions())
    g = chain([3], [("fc", affine(np.eye(3))), ("h", IF(3))])
    v = _rules(check_design_rules(g, net=net), "non-finite-parameter")
    assert len(v) == 1 and v[0].node == "h" and "alpha_decay is NaN for 1 of 3" in v[0].message


def test_threshold_not_positive():
    g = chain([2], [("fc", affine(np.eye(2))), ("lif", LIF(2, th=-0.5))])
    v = _rules(check_design_rules(g), "threshold-not-positive")
    assert len(v) == 1 and v[0].node == "lif" and v[0].severity == "error" and "2 of 2" in v[0].message
    w = _rules(check_design_rules(g, options=ConversionOptions(reset="to_v_reset")), "threshold-not-positive")
    assert len(w) == 1 and w[0].severity == "warning"
    g0 = chain([2], [("fc", affine(np.eye(2))), ("lif", LIF(2, th=0.0))])
    assert _rules(check_design_rules(g0, options=ConversionOptions(reset="to_v_reset")), "threshold-not-positive") == []
    assert len(_rules(check_design_rules(g0), "threshold-not-positive")) == 1


# ----------------------------------------------------------------------------------------
# chip
# ----------------------------------------------------------------------------------------

def _dense_pe_bytes(rows: int, n: int) -> int:
    """One lif_no_delay PE of n atoms with ``rows`` presynaptic rows (layout of s2emu/chip.py, by hand)."""
    return rows * (12 + 4 * math.ceil(2 * n / 4)) + 16 * n + 4 * n + 8 * n + 4 * math.ceil(n / 32) + 8


def test_population_exceeds_pe_gives_the_largest_fitting_atoms():
    v = _rules(check_design_rules(str(CNN)), "population-exceeds-pe")
    assert [x.node for x in v] == ["10"]
    # population '10' gets 512 rows (8x8x8 neurons of '6', every one inside a 2x2 pooling window)
    best = max(n for n in range(1, 251) if _dense_pe_bytes(512, n) <= 96 * 1024)
    assert f"{_dense_pe_bytes(512, 250)} B" in v[0].message
    assert f"<= {best}" in v[0].hint


def test_population_exceeds_pe_even_at_one_atom():
    n_in = 7000  # 7000 rows x (12 + 4) B = 112,000 B > 98,304 B
    g = chain([n_in], [("fc", affine(np.ones((1, n_in)))), ("big", IF(1))])
    v = _rules(check_design_rules(g), "population-exceeds-pe")
    assert len(v) == 1 and v[0].node == "big"
    assert "even at 1 atom per core" in v[0].message and f"{_dense_pe_bytes(n_in, 1)} B" in v[0].message


def test_population_exceeds_pe_for_an_input_held_for_many_ticks():
    # 500 atoms: (16 bitmap words + 2 header words) x 4 B = 72 B per tick; 3000 ticks = 216,000 B.
    # 192 atoms: (6 + 2) x 4 x 3000 = 96,000 B fits; 193 atoms: (7 + 2) x 4 x 3000 = 108,000 B does not.
    v = _rules(check_design_rules(str(CNN), atoms_per_core={"10": 16}, input_ticks=3000), "population-exceeds-pe")
    assert len(v) == 1 and v[0].node == "input"
    assert "216000 B" in v[0].message and "<= 192" in v[0].hint


def test_network_exceeds_chip():
    n = 148 * 250
    g = nir.NIRGraph(nodes={"input": nir.Input(input_type=np.array([1])), "fc": affine(np.ones((n, 1))),
                            "lif": IF(n), "output": nir.Output(output_type=np.array([n]))},
                     edges=[("input", "fc"), ("fc", "lif"), ("lif", "output")])
    v = _rules(check_design_rules(g), "network-exceeds-chip")
    assert len(v) == 1 and "149 PEs = 2 chips" in v[0].message and "'lif' 148" in v[0].message
    assert _rules(check_design_rules(g, max_chips=2), "network-exceeds-chip") == []


def test_helpers_agree_with_hand_counts():
    from s2emu.lowering import lower

    net = lower(str(CNN))
    assert pe_bytes(net, "10", 16) == _dense_pe_bytes(512, 16)
    assert largest_fitting_atoms(net, "10", 96 * 1024, 250) == max(
        n for n in range(1, 251) if _dense_pe_bytes(512, n) <= 96 * 1024)


# ----------------------------------------------------------------------------------------
# enforce
# ----------------------------------------------------------------------------------------

def test_enforce_names_every_violating_node():
    li = nir.LI(tau=f32([1e-2] * 2), r=f32([1.0] * 2), v_leak=f32([0.0] * 2))
    g = nir.NIRGraph(
        nodes={"input": nir.Input(input_type=np.array([2])), "fc": affine(np.array([[300.0, 0], [0, 1]])),
               "a": IF(2), "fc2": affine(np.eye(2)), "li": li, "output": nir.Output(output_type=np.array([2]))},
        edges=[("input", "fc"), ("fc", "a"), ("a", "fc2"), ("fc2", "li"), ("li", "output")])
    with pytest.raises(DesignRuleError) as exc:
        enforce(g, options=ConversionOptions(scale_weights=False))
    err = exc.value
    assert {v.rule for v in err.violations} >= {"unsupported-node-type", "weight-int8-range"}
    text = str(err)
    for v in err.violations:
        assert f"'{v.node}'" in text
    assert "\n" not in text
    # warnings alone do not raise
    ok = chain([4], [("fc", affine(np.array([[1.0, 1.0, 1.0, 4.0]]))), ("lif", IF(1))])
    warnings = enforce(ok, options=ConversionOptions(percentile=50))
    assert warnings and all(isinstance(w, RuleViolation) and w.severity == "warning" for w in warnings)


def test_unknown_rule_name_is_refused():
    g = chain([3], [("fc", affine(np.eye(3))), ("lif", LIF(3))])
    with pytest.raises(KeyError):
        check_design_rules(g, rules=["no-such-rule"])
    assert check_design_rules(g, rules=["weight-int8-range"]) == []


def test_every_rule_is_tested():
    """Every registered rule has a test here that asserts a violation of it (``v = _rules(..., name)`` then ``len(v)``/``v[0]``)."""
    import re
    from pathlib import Path

    src = Path(__file__).read_text()
    asserted = set()
    for m in re.finditer(r'(\w+) = _rules\(.*?"([a-z0-9-]+)"\)\n((?:    .*\n)*?)', src):
        var, name, rest = m.group(1), m.group(2), src[m.end():m.end() + 400]
        if re.search(rf"(len\({var}\) ==|{var}\[0\]|for x in {var}|{var}\}}|in {var})", rest):
            asserted.add(name)
    assert set(RULES) <= asserted, sorted(set(RULES) - asserted)


# ----------------------------------------------------------------------------------------
# the accumulator bound is sound (never exceeded) and tight (reached)
# ----------------------------------------------------------------------------------------

def _bounds(flat, net):
    from s2emu.rules import RuleContext

    paths, _ = find_projection_paths(flat, net.options)
    return worst_case_input(RuleContext(flat=flat, net=net, options=net.options, paths=paths))


from hypothesis import given, strategies as st  # noqa: E402

from suites.strategies import conversion_options, nir_graphs, spike_inputs  # noqa: E402


@given(st.data())
def test_worst_case_input_bounds_every_recorded_input(data):
    """On any accepted graph and input, |integer input| of every neuron and tick <= its worst-case bound."""
    from s2common.graph import flatten_graph
    from s2emu.engine import Engine
    from s2emu.lowering import lower

    graph = data.draw(nir_graphs(integer_weights=True))
    options = data.draw(conversion_options(graph))
    flat = flatten_graph(graph)
    net = lower(flat, options)
    x = data.draw(spike_inputs(tuple(net.populations[net.input_name].shape)))
    rec = Engine(net).run(x, record="all")
    for post, (_, total) in _bounds(flat, net).items():
        i = rec.get(post, "i")
        assert i is not None
        got = np.abs(np.asarray(i, dtype=np.int64)).reshape(i.shape[0], i.shape[1], -1)
        assert (got <= total[None, None, :]).all(), (post, int(got.max()), int(total.max()))


@pytest.mark.parametrize("pattern", ["dense", "conv", "pool_flatten_dense"])
def test_worst_case_input_is_reached_when_every_input_spikes(pattern):
    """All inputs spike at tick 0 and all weights are >= 0: some neuron gets exactly the bound at tick 1."""
    from s2common.graph import flatten_graph
    from s2emu.engine import Engine
    from s2emu.lowering import lower

    rng = np.random.default_rng(7)
    if pattern == "dense":
        g = chain([6], [("fc", affine(rng.integers(0, 128, (4, 6)))), ("n", IF(4, th=1e9))])
    elif pattern == "conv":
        g = chain([2, 5, 5], [("c", conv(rng.integers(0, 128, (3, 2, 3, 3)), (5, 5), padding=1)),
                              ("n", IF((3, 5, 5), th=1e9))])
    else:
        g = chain([2, 4, 4], [("pool", nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]),
                                                     padding=np.array([0, 0]))),
                              ("flat", nir.Flatten(input_type={"input": np.array([2, 2, 2])}, start_dim=0, end_dim=-1)),
                              ("fc", affine(rng.integers(0, 128, (3, 8)))), ("n", IF(3, th=1e9))])
    flat = flatten_graph(g)
    net = lower(flat, ConversionOptions(scale_weights=False))
    shape = tuple(net.populations[net.input_name].shape)
    x = np.zeros((1, 2) + shape, dtype=bool)
    x[:, 0] = True
    i = np.asarray(Engine(net).run(x, record="all").get("n", "i"), dtype=np.int64)
    _, total = _bounds(flat, net)["n"]
    assert int(i[0, 1].max()) == int(total.max())


@pytest.mark.parametrize("node", [
    nir.CubaLIF(tau_syn=np.full(2, 5e-3), tau_mem=np.full(2, 2e-2), r=np.ones(2), v_leak=np.zeros(2),
                v_threshold=np.ones(2), w_in=np.zeros(2)),
    nir.LIF(tau=np.full(2, 2e-2), r=np.zeros(2), v_leak=np.zeros(2), v_threshold=np.ones(2)),
], ids=["cubalif_w_in_0", "lif_r_0"])
def test_zero_r_or_w_in_is_a_named_rule_not_a_numpy_warning(node) -> None:
    """The converter divides by r (and w_in): the lowered threshold is inf, reported by name, silently computed."""
    import warnings

    from s2emu import lower

    graph = nir.NIRGraph.from_list(nir.Input(np.array([3])), nir.Linear(weight=np.ones((2, 3))), node,
                                   nir.Output(np.array([2])))
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # a RuntimeWarning from numpy would fail here
        net = lower(graph, ConversionOptions())
        found = check_design_rules(graph, net)
    bad = [v for v in found if v.rule == "non-finite-parameter"]
    assert bad and all(v.node == net.projections[0].post for v in bad)
    assert any("threshold is inf" in v.message for v in bad)
    assert "r = 0 or w_in = 0" in bad[0].hint


# ----------------------------------------------------------------------------------------
# the converter's own limits (GitHub SpiNNakerManchester/sPiNNIRker, 47c758b, spinnirker/__init__.py)
# ----------------------------------------------------------------------------------------

def _conv_net(dilation=1, groups=1):
    c, h = 2, 5
    k = 3
    ho = h + 2 - dilation * (k - 1)
    cv = nir.Conv2d(input_shape=(h, h), weight=f32(np.ones((c, c // groups, k, k))), stride=1, padding=1,
                    dilation=dilation, groups=groups, bias=f32(np.zeros(c)))
    return nir.NIRGraph(nodes={"input": nir.Input(input_type=np.array([c, h, h])), "conv": cv, "n": IF((c, ho, ho)),
                               "output": nir.Output(output_type=np.array([c, ho, ho]))},
                        edges=[("input", "conv"), ("conv", "n"), ("n", "output")], type_check=False)


def test_vendor_conv_dilation():
    """``get_conv2d_params``: ``conv_params = {"in_height", "in_width", "stride_x", "stride_y", "pool_x", "pool_y",
    "pad_top", ...}``: no dilation key, so a dilated kernel runs undilated on the chip."""
    v = _rules(check_design_rules(_conv_net(dilation=2)), "vendor-conv-dilation")
    assert len(v) == 1 and v[0].node == "conv" and "(2, 2)" in v[0].message and "dilation 1" in v[0].hint
    assert _rules(check_design_rules(_conv_net()), "vendor-conv-dilation") == []


def test_vendor_conv_groups():
    """``get_conv2d_params``: ``conv_weights = conv2d_node.weight.swapaxes(0, 1) * post_node.nir_w_scale``: a
    (C_out, C_in, kh, kw) kernel of a dense convolution; groups=2 gives (2, 1, 3, 3), not (2, 2, 3, 3)."""
    v = _rules(check_design_rules(_conv_net(groups=2)), "vendor-conv-groups")
    assert len(v) == 1 and v[0].node == "conv" and "groups=2" in v[0].message and "groups=1" in v[0].hint


def _pool_only():
    return chain([1, 4, 4], [("pool", nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]),
                                                   padding=np.array([0, 0]))), ("n", IF((1, 2, 2)))])


def test_vendor_no_weights():
    """``create_populations``: ``w_scale = 127.0 / max_abs_weight`` with ``get_max_abs_weight``'s
    ``max_weight = 0.0`` when no WEIGHT_NODES predecessor exists: Python's ``127.0 / 0.0`` raises."""
    with pytest.raises(ZeroDivisionError):
        127.0 / 0.0  # the converter's expression with get_max_abs_weight's start value
    v = _rules(check_design_rules(_pool_only()), "vendor-no-weights")
    assert len(v) == 1 and v[0].node == "n" and "ZeroDivisionError" in v[0].message and "pool (SumPool2d)" in v[0].message
    v = _rules(check_design_rules(_pool_only(), options=ConversionOptions(percentile=90.0)), "vendor-no-weights")
    assert len(v) == 1 and "IndexError" in v[0].message
    with pytest.raises(IndexError):
        np.percentile(np.array([]), 90.0)  # get_percentile_abs_weight on no weights
    # scaling off (a quantized graph): w_scale = 1.0, nothing to divide
    assert _rules(check_design_rules(_pool_only(), options=ConversionOptions(scale_weights=False)),
                  "vendor-no-weights") == []


def test_vendor_zero_weights():
    """``get_max_abs_weight``: ``max_weight = np.max((max_weight, max_weight_node))`` is a numpy float64 0.0 for
    all-zero weights, and ``127.0 / np.float64(0.0)`` is inf (no exception): threshold and weights inf/NaN."""
    with np.errstate(divide="ignore"):
        assert np.isinf(127.0 / np.max((0.0, np.abs(f32(np.zeros((2, 2)))).max())))
    g = chain([2], [("fc", affine(np.zeros((3, 2)))), ("n", IF(3))])
    v = _rules(check_design_rules(g), "vendor-zero-weights")
    assert len(v) == 1 and v[0].node == "n" and "every incoming weight is 0" in v[0].message
    # percentile: |W| = 0,0,0,5 -> the 50th percentile is 0 -> also inf
    g2 = chain([2], [("fc", affine([[0.0, 0.0], [0.0, 5.0]])), ("n", IF(2))])
    v = _rules(check_design_rules(g2, options=ConversionOptions(percentile=50.0)), "vendor-zero-weights")
    assert len(v) == 1 and "50th percentile" in v[0].message
    assert _rules(check_design_rules(g2), "vendor-zero-weights") == []


def test_vendor_nested_graph():
    """``create_populations`` loops over ``nir_model.nodes`` with branches for LIF/IF/CubaLIF, Input, Output,
    WEIGHT_NODES, SumPool2d and Flatten; anything else, a NIRGraph included: ``raise NotImplementedError(type(node))``."""
    inner = nir.NIRGraph(nodes={"in": nir.Input(input_type=np.array([2])), "fc": affine(np.eye(2)), "n": IF(2),
                                "out": nir.Output(output_type=np.array([2]))},
                         edges=[("in", "fc"), ("fc", "n"), ("n", "out")])
    g = nir.NIRGraph(nodes={"input": nir.Input(input_type=np.array([2])), "block": inner,
                            "output": nir.Output(output_type=np.array([2]))},
                     edges=[("input", "block"), ("block", "output")])
    v = _rules(check_design_rules(g), "vendor-nested-graph")
    assert len(v) == 1 and v[0].node == "block" and "NotImplementedError" in v[0].message


def test_vendor_scale_precision():
    """``get_conv2d_params`` / ``create_projection``: ``weight * post.nir_w_scale`` with ``nir_w_scale = 127.0 /
    max_abs_weight`` (numpy float64). Kernel [-3.7102134, 1, 0.5, 2], p = 100: numpy 2 multiplies in float64,
    numpy 1.x kept the float32 array float32; the expected ints are computed here with both dtypes."""
    w = f32([[-3.7102134, 1.0, 0.5, 2.0]])
    scale = 127.0 / np.float64(np.abs(w).max())
    as64 = np.trunc(w.astype(np.float64) * scale)
    as32 = np.trunc(w * np.float32(scale))
    assert as64.tolist() == [[-127, 34, 17, 68]] and as32.tolist() == [[-126, 34, 17, 68]]
    g = chain([4], [("fc", affine(w)), ("n", IF(1))])
    v = _rules(check_design_rules(g), "vendor-scale-precision")
    assert len(v) == 1 and v[0].node == "fc -> n" and v[0].severity == "warning"
    assert "1 of 4" in v[0].message and "-127 in float64" in v[0].message and "-126 in" in v[0].message
    from s2emu.lowering import lower

    assert lower(g).projections[0].weight.tolist() == as64.astype(int).tolist()
    assert lower(g, ConversionOptions(scale_dtype="float32")).projections[0].weight.tolist() == \
        as32.astype(int).tolist()
    # scaling off: w_scale = 1.0, W * 1.0 is exact in either dtype, nothing depends on the cast
    assert _rules(check_design_rules(g, options=ConversionOptions(scale_weights=False, vendor_cast=True)),
                  "vendor-scale-precision") == []


def test_vendor_dense_delay():
    """``create_projection``: ``connection_list_from_dense_weights(affine_node.weight.T * post.nir_w_scale, delay)``
    into ``lif_no_delay``: the choice ``dense_delay`` decides the arrival tick, so it is reported (warning)."""
    g = chain([2], [("fc", affine([[3.0, 1.0]])), ("n", IF(1))])
    v = _rules(check_design_rules(g, options=ConversionOptions(conn_delay=2)), "vendor-dense-delay")
    assert len(v) == 1 and v[0].node == "n" and v[0].severity == "warning" and "t + 1 + 2" in v[0].message
    v = _rules(check_design_rules(g, options=ConversionOptions(conn_delay=2, dense_delay="ignored")),
               "vendor-dense-delay")
    assert len(v) == 1 and "'ignored'" in v[0].message
    assert _rules(check_design_rules(g), "vendor-dense-delay") == []
