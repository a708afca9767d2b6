"""Graph-level rules: summed edges, the back-edge tick, projection latency, rest before t = 0,
nested subgraphs with dotted names, and what gets recorded."""
from __future__ import annotations

import nir
import numpy as np
import pytest

from reference import PRESETS, Discretisation, edge_delays, simulate
from s2common.graph import flatten_graph
from s2common.recording import Recording

from .graphs import arr, chain, graph, lif

IDENTITY_I = dict(options={"if_input_scale": "1/dt"})  # I: v += r*x


def integrator(n=1, r=1.0):
    return nir.I(r=arr(r, (n,)))


def pulse(ticks, at=0, value=1.0, n=1):
    x = np.zeros((1, ticks, n))
    x[0, at] = value
    return x


def test_several_edges_into_one_node_are_summed():
    g = graph((2,), (2,), {"a": nir.Scale(scale=arr(2.0, (2,))), "b": nir.Scale(scale=arr(3.0, (2,))),
                           "n": integrator(2)},
              [("input", "a"), ("input", "b"), ("a", "n"), ("b", "n"), ("input", "n"), ("n", "output")])
    x = np.random.default_rng(0).normal(size=(2, 5, 2))
    rec = simulate(g, x, record=["n"])
    np.testing.assert_allclose(rec.get("n", "v"), np.cumsum(6.0 * x, axis=1), rtol=1e-12)


def loop_graph():
    # input -> n (I) -> s (Scale 0.5) -> back to n: the edge s -> n closes the loop
    return graph((1,), (1,), {"n": integrator(), "s": nir.Scale(scale=arr(0.5, (1,)))},
                 [("input", "n"), ("n", "s"), ("s", "n"), ("n", "output")])


def test_back_edge_carries_one_tick():
    g = loop_graph()
    assert flatten_graph(g).back_edges == {("s", "n")}
    rec = simulate(g, pulse(12), record=["n"])
    # v_t = v_{t-1} + x_t + 0.5*v_{t-1}: a unit pulse grows as 1.5**t
    np.testing.assert_allclose(rec.get("n", "v")[0, :, 0], 1.5 ** np.arange(12), rtol=1e-12)


def test_projection_latency_delays_every_neuron_input_by_one_tick():
    g = chain((1,), ("a", nir.Affine(weight=np.array([[2.0]]), bias=np.array([0.0]))), ("n", integrator()))
    x = np.random.default_rng(1).normal(size=(1, 10, 1))
    v0 = simulate(g, x, record=["n"]).get("n", "v")[0, :, 0]
    v1 = simulate(g, x, options={"projection_latency": 1}, record=["n"]).get("n", "v")[0, :, 0]
    np.testing.assert_allclose(v0, np.cumsum(2 * x[0, :, 0]), rtol=1e-12)
    np.testing.assert_allclose(v1, np.concatenate([[0.0], np.cumsum(2 * x[0, :-1, 0])]), rtol=1e-12)


def test_with_latency_a_back_edge_adds_no_extra_tick():
    g = loop_graph()
    delays = edge_delays(flatten_graph(g), 1)
    assert delays[("s", "n")] == 1 and delays[("input", "n")] == 1 and delays[("n", "s")] == 0
    rec = simulate(g, pulse(12), options={"projection_latency": 1}, record=["n"])
    # the input arrives at t = 1; the loop s -> n takes one tick (not two): v_t = 1.5**(t-1)
    v = rec.get("n", "v")[0, :, 0]
    assert v[0] == 0.0
    np.testing.assert_allclose(v[1:], 1.5 ** np.arange(11), rtol=1e-12)


def test_with_latency_a_loop_through_a_delay_alone_keeps_its_tick():
    # input -> s1 -> d (Delay 0) -> s2 (x0.5) -> back to s1: no neuron on the loop
    g = graph((1,), (1,), {"s1": nir.Scale(scale=arr(1.0, (1,))), "d": nir.Delay(delay=arr(0.0, (1,))),
                           "s2": nir.Scale(scale=arr(0.5, (1,)))},
              [("input", "s1"), ("s1", "d"), ("d", "s2"), ("s2", "s1"), ("s1", "output")])
    assert edge_delays(flatten_graph(g), 1)[("s2", "s1")] == 1
    for latency in (0, 1):
        out = simulate(g, pulse(10), options={"projection_latency": latency}).get("output", "output")[0, :, 0]
        np.testing.assert_allclose(out, 0.5 ** np.arange(10), rtol=1e-12)


@pytest.mark.parametrize("latency", [0, 1])
def test_network_is_at_rest_before_t0(latency):
    # an Affine's bias reaches a one-tick edge already at t = 0 (its output at rest)
    g = chain((1,), ("a", nir.Affine(weight=np.array([[0.0]]), bias=np.array([0.25]))), ("n", integrator()))
    v = simulate(g, np.zeros((1, 4, 1)), options={"projection_latency": latency}, record=["n"]).get("n", "v")[0, :, 0]
    np.testing.assert_allclose(v, 0.25 * np.arange(1, 5))


def test_initial_v_and_leak():
    g = chain((1,), ("n", nir.LI(tau=arr(1e-3, (1,)), r=arr(1.0, (1,)), v_leak=arr(0.7, (1,)))))
    at_rest = simulate(g, np.zeros((1, 3, 1)), record=["n"]).get("n", "v")[0, :, 0]
    np.testing.assert_allclose(at_rest, 0.7, rtol=1e-12)  # starts at v_leak and stays
    from_zero = simulate(g, np.zeros((1, 3, 1)), options={"initial_v": "zero"}, record=["n"]).get("n", "v")[0, :, 0]
    np.testing.assert_allclose(from_zero, 0.7 * (1 - np.exp(-0.1 * np.arange(1, 4))), rtol=1e-12)


def nested():
    inner = nir.NIRGraph(nodes={"in": nir.Input(input_type=np.array([3])), "lif": lif(3, tau=1e-3, v_threshold=0.3),
                                "out": nir.Output(output_type=np.array([3]))},
                         edges=[("in", "lif"), ("lif", "out")])
    return nir.NIRGraph(nodes={"input": nir.Input(input_type=np.array([3])),
                               "aff": nir.Affine(weight=np.eye(3) * 2.0, bias=np.zeros(3)), "sub": inner,
                               "output": nir.Output(output_type=np.array([3]))},
                        edges=[("input", "aff"), ("aff", "sub"), ("sub", "output")])


def test_nested_subgraph_is_inlined_with_dotted_names():
    flat_equiv = chain((3,), ("aff", nir.Affine(weight=np.eye(3) * 2.0, bias=np.zeros(3))),
                       ("sub.lif", lif(3, tau=1e-3, v_threshold=0.3)))
    x = np.random.default_rng(2).random((2, 50, 3)) < 0.3
    a = simulate(nested(), x, record=["sub.lif"])
    b = simulate(flat_equiv, x, record=["sub.lif"])
    assert "sub.lif" in a.data
    assert a.spikes("sub.lif").any()
    np.testing.assert_array_equal(a.spikes("sub.lif"), b.spikes("sub.lif"))
    np.testing.assert_array_equal(a.get("sub.lif", "v"), b.get("sub.lif", "v"))


def test_default_recording_and_requested_states():
    g = chain((3,), ("aff", nir.Affine(weight=np.eye(3), bias=np.zeros(3))), ("lif", lif(3, v_threshold=0.05)))
    x = np.random.default_rng(3).random((2, 20, 3)) < 0.5
    rec = simulate(g, x)
    assert set(rec.data) == {"input", "lif", "output"}
    assert set(rec.data["lif"]) == {"spikes"} and rec.spikes("lif").dtype == bool
    assert rec.spikes("lif").shape == (2, 20, 3)
    np.testing.assert_array_equal(rec.spikes("input"), x)
    np.testing.assert_array_equal(rec.get("output", "output"), rec.spikes("lif").astype(float))
    rec2 = simulate(g, x, record=["lif", "aff"])
    assert set(rec2.data["lif"]) == {"spikes", "v"} and set(rec2.data["aff"]) == {"output"}
    np.testing.assert_array_equal(rec2.get("aff", "output"), x.astype(float))
    rec3 = simulate(g, x, record="all")
    assert list(rec3.data) == rec3.meta["node_order"] == ["input", "aff", "lif", "output"]
    # a float (non-binary) input is recorded as the Input's output only on request
    rec4 = simulate(g, x * 0.5)
    assert "input" not in rec4.data


def test_meta_names_preset_options_and_dtype():
    g = chain((1,), ("lif", lif(1)))
    rec = simulate(g, np.zeros((1, 2, 1)), preset="norse", dtype=np.float32)
    assert rec.meta["preset"] == "norse" and rec.meta["dtype"] == "float32" and rec.meta["backend"] == "reference"
    assert rec.meta["options"] == PRESETS["norse"].as_dict()
    rec = simulate(g, np.zeros((1, 2, 1)), preset="norse", options={"reset": "subtract"}, dt=1e-3)
    assert rec.meta["preset"] == "norse+options" and rec.meta["options"]["reset"] == "subtract"
    assert rec.dt == 1e-3 and rec.meta["options"]["dt"] == 1e-3
    custom = Discretisation(integrator="euler", projection_latency=1)
    assert simulate(g, np.zeros((1, 2, 1)), preset=custom).meta["preset"] == "custom"


def test_recording_saves_and_loads(tmp_path):
    g = chain((3,), ("lif", lif(3, v_threshold=0.05)))
    rec = simulate(g, np.random.default_rng(4).random((2, 6, 3)) < 0.5, record="all")
    rec.save(tmp_path / "rec.h5")
    back = Recording.load(tmp_path / "rec.h5")
    np.testing.assert_array_equal(back.spikes("lif"), rec.spikes("lif"))
    np.testing.assert_array_equal(back.get("lif", "v"), rec.get("lif", "v"))
    assert back.meta["preset"] == "nir"


def test_presets_all_validate_and_differ():
    assert {"nir", "norse", "snntorch", "rockpool", "sinabs", "spinnaker2"} <= set(PRESETS)
    as_tuples = {name: tuple(sorted(p.as_dict().items())) for name, p in PRESETS.items()}
    # rockpool and sinabs share their dynamics; every other pair differs in some choice
    distinct = {v for k, v in as_tuples.items() if k != "sinabs"}
    assert len(distinct) == len(PRESETS) - 1
    assert PRESETS["spinnaker2"].projection_latency == 1 and PRESETS["spinnaker2"].reset == "subtract"
    assert PRESETS["spinnaker2"].integrator == "euler" and PRESETS["spinnaker2"].compare == ">"
