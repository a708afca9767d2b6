"""The shared graph walks of :mod:`s2common.graph` and the callers' thin wrappers around them.

Every expected name list below is read off the graph drawn in the test's docstring, not taken from
the code's output.
"""
from __future__ import annotations

from typing import Dict, List, Tuple

import nir
import numpy as np
import pytest

from harness.compare import _output_population
from harness.gate.evaluate import output_population
from harness.gate.evaluate import weight_nodes_into as gate_weight_nodes_into
from harness.quantize.topology import PASS_THROUGH
from s2common.errors import UnsupportedError
from s2common.graph import (THRESHOLD_NEURON_TYPES, FlatGraph, as_flat, feeding_population, feeding_populations,
                            incoming_sources, weight_nodes_into)

F = np.float32


def _in(n: int) -> nir.Input:
    return nir.Input(input_type={"input": np.array([n])})


def _out(n: int) -> nir.Output:
    return nir.Output(output_type={"output": np.array([n])})


def _affine(n_out: int, n_in: int) -> nir.Affine:
    return nir.Affine(weight=np.full((n_out, n_in), 0.5, F), bias=np.zeros(n_out, F))


def _linear(n_out: int, n_in: int) -> nir.Linear:
    return nir.Linear(weight=np.full((n_out, n_in), 0.5, F))


def _if(shape) -> nir.IF:
    return nir.IF(r=np.ones(shape, F), v_threshold=np.ones(shape, F), v_reset=np.zeros(shape, F))


def _lif(shape) -> nir.LIF:
    return nir.LIF(tau=np.full(shape, 1e-3, F), r=np.ones(shape, F), v_leak=np.zeros(shape, F),
                   v_threshold=np.ones(shape, F), v_reset=np.zeros(shape, F))


def _li(shape) -> nir.LI:
    return nir.LI(tau=np.full(shape, 1e-3, F), r=np.ones(shape, F), v_leak=np.zeros(shape, F))


def _flat(nodes: Dict[str, object], edges: List[Tuple[str, str]]) -> FlatGraph:
    return as_flat(nir.NIRGraph(nodes=nodes, edges=edges))


# ----------------------------------------------------------------------------- feed-forward chain

@pytest.fixture
def chain() -> FlatGraph:
    """input(3) -> fc1 Affine -> lif LIF(4) -> fc2 Affine -> if1 IF(2) -> output."""
    nodes = {"input": _in(3), "fc1": _affine(4, 3), "lif": _lif(4), "fc2": _affine(2, 4), "if1": _if(2),
             "output": _out(2)}
    edges = [("input", "fc1"), ("fc1", "lif"), ("lif", "fc2"), ("fc2", "if1"), ("if1", "output")]
    return _flat(nodes, edges)


def test_chain_weight_nodes(chain: FlatGraph) -> None:
    assert weight_nodes_into(chain, "lif") == ["fc1"]
    assert weight_nodes_into(chain, "if1") == ["fc2"]  # the walk stops at fc2: fc1 is behind it
    assert incoming_sources(chain, "lif").unweighted == []
    # the gate's name is the same walk
    assert gate_weight_nodes_into(chain, "lif") == ["fc1"]
    assert gate_weight_nodes_into(chain, "if1") == ["fc2"]


def test_chain_output_population(chain: FlatGraph) -> None:
    assert feeding_populations(chain) == ["if1"]
    assert feeding_population(chain) == "if1"
    assert feeding_population(chain, "output") == "if1"
    assert output_population(chain) == "if1"


def test_chain_restricted_to_recorded_nodes(chain: FlatGraph) -> None:
    # if1 not recorded: the walk still stops at it (lif is behind a population), so nothing is found
    assert feeding_populations(chain, among=["lif"]) == []
    assert _output_population(chain, ["lif"]) is None
    assert _output_population(chain, ["lif", "if1"]) == "if1"
    assert _output_population(chain, []) is None


def test_li_readout_spiking_only() -> None:
    """input(3) -> fc1 Affine -> lif LIF(4) -> fc2 Affine -> li LI(2) -> output.

    Among all neurons the LI feeds the output; among spiking neurons (v_threshold) it is walked
    through, so the LIF behind fc2 feeds it. The equivalence check compares spikes, so it uses the latter.
    """
    nodes = {"input": _in(3), "fc1": _affine(4, 3), "lif": _lif(4), "fc2": _affine(2, 4), "li": _li(2),
             "output": _out(2)}
    edges = [("input", "fc1"), ("fc1", "lif"), ("lif", "fc2"), ("fc2", "li"), ("li", "output")]
    flat = _flat(nodes, edges)
    assert feeding_population(flat) == "li"
    assert output_population(flat) == "li"
    assert feeding_population(flat, kinds=THRESHOLD_NEURON_TYPES) == "lif"
    assert _output_population(flat, ["lif"]) == "lif"
    assert weight_nodes_into(flat, "li") == ["fc2"]


# ----------------------------------------------------------------------------- conv, pooling, flatten

def _conv(c_out: int, c_in: int, hw: Tuple[int, int]) -> nir.Conv2d:
    return nir.Conv2d(input_shape=hw, weight=np.full((c_out, c_in, 3, 3), 0.1, F), stride=1, padding=1, dilation=1,
                      groups=1, bias=np.zeros(c_out, F))


def _pool() -> nir.SumPool2d:
    return nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0]))


def test_conv_pool_flatten_before_population() -> None:
    """input(2,4,4) -> conv Conv2d(3) -> pool SumPool2d -> flat Flatten -> if1 IF(12) -> fc Affine -> if2 IF(5) -> output.

    The walk back from if1 passes pool and flat and collects conv.
    """
    nodes = {"input": nir.Input(input_type={"input": np.array([2, 4, 4])}), "conv": _conv(3, 2, (4, 4)),
             "pool": _pool(), "flat": nir.Flatten(input_type={"input": np.array([3, 2, 2])}, start_dim=0, end_dim=-1),
             "if1": _if(12), "fc": _affine(5, 12), "if2": _if(5), "output": _out(5)}
    edges = [("input", "conv"), ("conv", "pool"), ("pool", "flat"), ("flat", "if1"), ("if1", "fc"), ("fc", "if2"),
             ("if2", "output")]
    flat = _flat(nodes, edges)
    assert weight_nodes_into(flat, "if1") == ["conv"]
    assert weight_nodes_into(flat, "if1", through=PASS_THROUGH) == ["conv"]
    assert incoming_sources(flat, "if1", through=PASS_THROUGH).unweighted == []
    assert weight_nodes_into(flat, "if2") == ["fc"]
    assert feeding_population(flat) == "if2"


def test_conv_pool_flatten_affine_chain() -> None:
    """input(2,4,4) -> conv Conv2d(3) -> if1 IF(3,4,4) -> pool SumPool2d -> flat Flatten -> fc Affine -> if2 IF(5) -> output.

    From if2 the walk stops at fc; from the Output it passes nothing but stops at if2.
    """
    nodes = {"input": nir.Input(input_type={"input": np.array([2, 4, 4])}), "conv": _conv(3, 2, (4, 4)),
             "if1": _if((3, 4, 4)), "pool": _pool(),
             "flat": nir.Flatten(input_type={"input": np.array([3, 2, 2])}, start_dim=0, end_dim=-1),
             "fc": _affine(5, 12), "if2": _if(5), "output": _out(5)}
    edges = [("input", "conv"), ("conv", "if1"), ("if1", "pool"), ("pool", "flat"), ("flat", "fc"), ("fc", "if2"),
             ("if2", "output")]
    flat = _flat(nodes, edges)
    assert weight_nodes_into(flat, "if1") == ["conv"]
    assert weight_nodes_into(flat, "if2") == ["fc"]
    assert feeding_populations(flat) == ["if2"]
    # only if1 recorded: if2 still ends the walk, so if1 does not count as feeding the output
    assert _output_population(flat, ["if1"]) is None


def test_output_behind_pool_and_flatten() -> None:
    """input(2,4,4) -> conv Conv2d(3) -> if1 IF(3,4,4) -> pool SumPool2d -> flat Flatten -> output(12).

    The Output is fed through two non-neuron nodes: the walk passes them and finds if1.
    """
    nodes = {"input": nir.Input(input_type={"input": np.array([2, 4, 4])}), "conv": _conv(3, 2, (4, 4)),
             "if1": _if((3, 4, 4)), "pool": _pool(),
             "flat": nir.Flatten(input_type={"input": np.array([3, 2, 2])}, start_dim=0, end_dim=-1),
             "output": _out(12)}
    edges = [("input", "conv"), ("conv", "if1"), ("if1", "pool"), ("pool", "flat"), ("flat", "output")]
    flat = _flat(nodes, edges)
    assert feeding_population(flat) == "if1"
    assert output_population(flat) == "if1"
    assert _output_population(flat, ["if1"]) == "if1"


# ----------------------------------------------------------------------------- several inputs into one population

def test_two_weight_nodes_into_one_population() -> None:
    """input(3) -> zeta Affine -> if1 IF(4);  input -> alpha Linear -> scale Scale -> if1;  if1 -> output.

    Both weight nodes feed if1 (alpha through the Scale); the result is sorted by name, not edge order.
    """
    nodes = {"input": _in(3), "zeta": _affine(4, 3), "alpha": _linear(4, 3), "scale": nir.Scale(scale=np.ones(4, F)),
             "if1": _if(4), "output": _out(4)}
    edges = [("input", "zeta"), ("zeta", "if1"), ("input", "alpha"), ("alpha", "scale"), ("scale", "if1"),
             ("if1", "output")]
    flat = _flat(nodes, edges)
    assert weight_nodes_into(flat, "if1") == ["alpha", "zeta"]
    assert weight_nodes_into(flat, "if1", through=PASS_THROUGH) == ["alpha", "zeta"]
    assert incoming_sources(flat, "if1", through=PASS_THROUGH).unweighted == []
    assert feeding_population(flat) == "if1"


def test_weighted_and_unweighted_input() -> None:
    """input(4) -> fc Affine -> if1 IF(4);  input -> if1 directly;  if1 -> output.

    The Input reaches if1 without a weight: it is an unweighted source (what the quantizer rejects).
    """
    nodes = {"input": _in(4), "fc": _affine(4, 4), "if1": _if(4), "output": _out(4)}
    edges = [("input", "fc"), ("fc", "if1"), ("input", "if1"), ("if1", "output")]
    flat = _flat(nodes, edges)
    assert incoming_sources(flat, "if1") == (["fc"], ["input"])
    assert incoming_sources(flat, "if1", through=PASS_THROUGH) == (["fc"], ["input"])


def test_threshold_walked_through_by_default_only() -> None:
    """input(3) -> fc Affine -> thr Threshold(4) -> lif LIF(4) -> output.

    By default the walk passes the Threshold (the gate reports fc as lif's weights); with the
    quantizer's pass-through set it stops there and thr is an unweighted source.
    """
    nodes = {"input": _in(3), "fc": _affine(4, 3), "thr": nir.Threshold(threshold=np.ones(4, F)), "lif": _lif(4),
             "output": _out(4)}
    edges = [("input", "fc"), ("fc", "thr"), ("thr", "lif"), ("lif", "output")]
    flat = _flat(nodes, edges)
    assert weight_nodes_into(flat, "lif") == ["fc"]
    assert incoming_sources(flat, "lif", through=PASS_THROUGH) == ([], ["thr"])
    assert weight_nodes_into(flat, "thr") == ["fc"]
    assert feeding_population(flat) == "lif"


# ----------------------------------------------------------------------------- recurrence

def test_recurrent_population() -> None:
    """input(3) -> fc_in Affine -> if1 IF(4);  if1 -> rec Affine(4, 4) -> if1;  if1 -> output.

    The walk from the Input reaches rec -> if1 while if1 is on the walk: that edge is the back-edge.
    The walk back from if1 follows it: rec is one of if1's weight nodes.
    """
    nodes = {"input": _in(3), "fc_in": _affine(4, 3), "if1": _if(4), "rec": _affine(4, 4), "output": _out(4)}
    edges = [("input", "fc_in"), ("fc_in", "if1"), ("if1", "rec"), ("rec", "if1"), ("if1", "output")]
    flat = _flat(nodes, edges)
    assert flat.back_edges == {("rec", "if1")}
    assert weight_nodes_into(flat, "if1") == ["fc_in", "rec"]
    assert incoming_sources(flat, "if1", through=PASS_THROUGH).unweighted == []
    assert feeding_populations(flat) == ["if1"]
    assert output_population(flat) == "if1"


def test_recurrent_loop_without_weight() -> None:
    """input(3) -> fc Affine -> lif LIF(4);  lif -> d Delay -> lif;  lif -> output.

    The walk back from lif passes the Delay and comes back to lif: lif is its own unweighted source.
    """
    nodes = {"input": _in(3), "fc": _affine(4, 3), "lif": _lif(4), "d": nir.Delay(delay=np.ones(4, F)),
             "output": _out(4)}
    edges = [("input", "fc"), ("fc", "lif"), ("lif", "d"), ("d", "lif"), ("lif", "output")]
    flat = _flat(nodes, edges)
    assert flat.back_edges == {("d", "lif")}
    assert incoming_sources(flat, "lif") == (["fc"], ["lif"])
    assert incoming_sources(flat, "lif", through=PASS_THROUGH) == (["fc"], ["lif"])
    assert feeding_population(flat) == "lif"


# ----------------------------------------------------------------------------- no readout, several outputs

def test_output_fed_by_no_neuron() -> None:
    """input(3) -> fc Affine(2) -> output: no neuron at all, so nothing feeds the Output."""
    nodes = {"input": _in(3), "fc": _affine(2, 3), "output": _out(2)}
    edges = [("input", "fc"), ("fc", "output")]
    flat = _flat(nodes, edges)
    assert feeding_populations(flat) == []
    assert feeding_population(flat) is None
    assert _output_population(flat, []) is None
    with pytest.raises(UnsupportedError) as info:
        output_population(flat)
    assert info.value.rule == "no-readout"
    assert info.value.node == "output"


def test_output_fed_by_no_neuron_beside_a_dangling_population() -> None:
    """input(3) -> fc Affine(2) -> output;  input -> fc2 Affine(4) -> if1 IF(4), a branch that ends there.

    nir.NIRGraph gives the dangling if1 an Output of its own (``output_if1``). The first Output
    (``output``, the one the gate reads) is fed by no neuron; walking from every Output finds if1.
    """
    nodes = {"input": _in(3), "fc": _affine(2, 3), "output": _out(2), "fc2": _affine(4, 3), "if1": _if(4)}
    edges = [("input", "fc"), ("fc", "output"), ("input", "fc2"), ("fc2", "if1")]
    flat = _flat(nodes, edges)
    assert flat.outputs == ["output", "output_if1"]
    assert feeding_population(flat, "output") is None
    assert feeding_populations(flat) == ["if1"]
    assert _output_population(flat, ["if1"]) == "if1"
    with pytest.raises(UnsupportedError) as info:
        output_population(flat)
    assert info.value.rule == "no-readout"
    assert weight_nodes_into(flat, "if1") == ["fc2"]


def test_two_outputs() -> None:
    """input(3) -> fc_a Affine -> pa IF(2) -> out_a;  input -> fc_b Affine -> pb IF(2) -> out_b.

    With no output named the walk starts at every Output in name order; the gate reads the first Output.
    """
    nodes = {"input": _in(3), "fc_a": _affine(2, 3), "pa": _if(2), "out_a": _out(2), "fc_b": _affine(2, 3),
             "pb": _if(2), "out_b": _out(2)}
    edges = [("input", "fc_b"), ("fc_b", "pb"), ("pb", "out_b"), ("input", "fc_a"), ("fc_a", "pa"), ("pa", "out_a")]
    flat = _flat(nodes, edges)
    assert feeding_populations(flat) == ["pa", "pb"]
    assert feeding_population(flat, "out_b") == "pb"
    assert output_population(flat) == "pa"
    assert _output_population(flat, ["pb", "pa"]) == "pb"  # the first of the given nodes that feeds an Output
