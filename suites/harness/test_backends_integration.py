"""Comparison on real recordings: the emulator (fast and golden) and the reference on a quantized graph."""
from __future__ import annotations

import copy

import numpy as np
import pytest

from harness.run import EmulatorBackend, ReferenceBackend, get_backend
from harness.compare import check_equivalence, compare_recordings
from harness.metrics import activation_sparsity, predict, synaptic_operations
from s2common.recording import Recording

s2emu = pytest.importorskip("s2emu")
pytest.importorskip("reference")
quantize = pytest.importorskip("harness.quantize")


@pytest.fixture(scope="module")
def qgraph(tiny_graph):
    return quantize.quantize_ptq(tiny_graph, percentile=100.0).graph


@pytest.fixture(scope="module")
def emu_rec(qgraph, tiny_inputs):
    return EmulatorBackend().run(qgraph, tiny_inputs, record="all")


@pytest.fixture(scope="module")
def ref_rec(qgraph, tiny_inputs):
    return ReferenceBackend().run(qgraph, tiny_inputs, record="all")


def test_the_tiny_graph_is_active(emu_rec):
    # otherwise the tests below prove little
    for node in ("if1", "lif"):
        s = emu_rec.spikes(node)
        assert 0 < s.mean() < 0.9, node


def test_fast_and_golden_engines_are_identical(qgraph, tiny_inputs, emu_rec):
    golden = get_backend("golden").run(qgraph, tiny_inputs, record="all")
    comp = compare_recordings(emu_rec, golden)
    assert comp.ok, comp.describe()
    assert {r.observable for r in comp.rows if not r.note} == {"spikes", "v", "i"}


def test_flipped_spike_and_voltage_bit_on_an_emulator_recording(emu_rec):
    act = Recording(dt=emu_rec.dt, data={n: {o: a.copy() for o, a in d.items()} for n, d in emu_rec.data.items()},
                    meta=dict(emu_rec.meta))
    act.data["if1"]["spikes"][2, 19, 1, 3, 0] ^= True  # flat index 1*16 + 3*4 + 0 = 28
    d = compare_recordings(emu_rec, act).first_divergence
    assert (d.node, d.neuron, d.index, d.tick, d.sample, d.observable) == ("if1", 28, (1, 3, 0), 19, 2, "spikes")
    act.data["lif"]["v"].view(np.uint32)[1, 11, 3] ^= 1  # lowest mantissa bit, earlier tick
    comp = compare_recordings(emu_rec, act)
    d = comp.first_divergence
    assert (d.node, d.neuron, d.tick, d.sample, d.observable) == ("lif", 3, 11, 1, "v")
    assert comp.mismatches == 2
    assert "layer 'lif' neuron 3 tick 11 sample 1: v expected" in comp.describe()


def test_saved_recording_keeps_the_layer_order(tmp_path, emu_rec):
    path = tmp_path / "emu.h5"
    emu_rec.save(path)
    back = Recording.load(path)
    assert back.meta["node_order"] == ["input", "if1", "lif"]
    assert compare_recordings(emu_rec, back).ok
    back.data["lif"]["spikes"][0, 7, 0] ^= True
    back.data["if1"]["spikes"][0, 7, 0, 0, 0] ^= True  # same tick: the lower layer (if1) is named
    assert compare_recordings(Recording.load(path), back).first_divergence.node == "if1"


def test_emulator_matches_the_reference_on_the_quantized_graph(qgraph, ref_rec, emu_rec):
    comp = check_equivalence(ref_rec, emu_rec, qgraph)
    assert comp.ok, comp.describe()
    t = comp.trains
    assert t.trains == 3 * (48 + 5)
    assert t.unexplained == 0 and t.output_node == "lif"
    assert t.predictions_identical == 1.0


def test_a_wrongly_scaled_threshold_is_an_unexplained_divergence_at_that_layer(qgraph, tiny_inputs, ref_rec):
    broken = copy.deepcopy(qgraph)
    broken.nodes["lif"].v_threshold = np.asarray(broken.nodes["lif"].v_threshold) * 0.5
    emu = EmulatorBackend().run(broken, tiny_inputs, record="all")
    comp = check_equivalence(ref_rec, emu, qgraph)
    assert not comp.ok
    d = comp.first_unexplained
    assert d.node == "lif" and d.expected == 0 and d.actual == 1
    assert comp.trains.per_node["if1"]["unexplained"] == 0
    assert "first unexplained divergence: layer 'lif'" in comp.describe()


def test_metrics_on_real_recordings_float_vs_int8(tiny_graph, qgraph, tiny_inputs, emu_rec, ref_rec):
    ops_graph = synaptic_operations(qgraph, emu_rec)
    net = EmulatorBackend().lower(qgraph)
    ops_net = synaptic_operations(net, emu_rec)
    # the lowered network folds the pooling into the Affine projection: the same operations
    assert ops_net.effective_acs == pytest.approx(ops_graph.effective_acs)
    assert ops_net.dense == pytest.approx(ops_graph.dense)
    # dense: conv 3*2*3*3 taps x 16 outputs = 864, fc 60, per tick x 25 ticks
    assert ops_graph.dense == pytest.approx((864 + 60) * 25)
    assert 0 < ops_graph.effective_acs < ops_graph.dense
    s = activation_sparsity(emu_rec, graph=qgraph)
    spikes = emu_rec.spikes("if1").sum() + emu_rec.spikes("lif").sum()
    assert s == pytest.approx(1 - spikes / (3 * 25 * (48 + 5)))
    assert predict(emu_rec, "lif").shape == (3,)


def test_thresholds_on_the_reference_peak_make_ambiguous_not_unexplained_divergences():
    """Each neuron's threshold is set to the exact peak of its float64 reference voltage: the
    reference never spikes (``v > theta`` is strict, the peak equals theta), the float32 emulator
    lands one rounding above or below. Those differences are real, and every one of them must
    be classified ambiguous, none unexplained."""
    import nir

    rng = np.random.default_rng(0)
    n, m, t = 200, 20, 40
    g = nir.NIRGraph(
        nodes={"input": nir.Input(input_type=np.array([m])),
               "fc": nir.Affine(weight=rng.normal(0.2, 0.5, (n, m)).astype(np.float32), bias=np.zeros(n, np.float32)),
               "lif": nir.LIF(tau=np.full(n, 1e-3), r=np.ones(n), v_leak=np.zeros(n), v_threshold=np.full(n, 1e6),
                              v_reset=np.zeros(n)),
               "output": nir.Output(output_type=np.array([n]))},
        edges=[("input", "fc"), ("fc", "lif"), ("lif", "output")])
    q = quantize.quantize_ptq(g).graph
    x = rng.random((1, t, m)) < 0.3
    peak = ReferenceBackend().run(q, x, record="all").get("lif", "v")[0].max(axis=0)
    q2 = copy.deepcopy(q)
    th = np.asarray(q2.nodes["lif"].v_threshold, dtype=np.float64).copy()
    th[peak > 0] = peak[peak > 0]
    q2.nodes["lif"].v_threshold = th
    ref = ReferenceBackend().run(q2, x, record="all")
    emu = EmulatorBackend().run(q2, x, record="all")
    assert ref.spikes("lif").sum() == 0
    exact = compare_recordings(ref, emu, nodes=["lif"], observables=("spikes",))
    assert not exact.ok  # the float32 chip does spike somewhere: the test has something to explain
    comp = check_equivalence(ref, emu, q2)
    t_ = comp.trains
    assert t_.ambiguous == exact.rows[0].mismatches > 0  # one spike per differing train here
    assert t_.unexplained == 0 and comp.ok
    assert t_.identical + t_.ambiguous == n
