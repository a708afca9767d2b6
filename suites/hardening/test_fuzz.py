"""Graph fuzzing: nothing valid crashes, the design rules always name a rule, the engines agree.

Profiles (``suites/conftest.py``): under the default ``ci`` profile each property runs its
``max_examples`` (50, derandomized) — a few hundred examples across this file, about a minute.
The ``slow`` variants (marked ``slow``, skipped unless the profile is ``slow``) run the same
properties with the slow profile's 10,000 examples each::

    HYPOTHESIS_PROFILE=slow nice pytest suites/hardening -m slow --hypothesis-show-statistics

The emulator helper's own golden == engine property tests use ``suites/strategies.py`` over the
supported patterns; these tests are about crash-freedom and rule naming over *every* pattern
(``suites/hardening/graph_strategies.py``), and check golden == engine on whatever the rules
accept.
"""
from __future__ import annotations

import os
import tempfile
import warnings

import numpy as np
import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from s2common.errors import S2GateError
from s2common.graph import flatten_graph, read_flat
from suites.hardening.graph_strategies import any_nir_graphs, inputs_for

SLOW_PROFILE = os.environ.get("HYPOTHESIS_PROFILE") == "slow"
#: examples per property in the default (ci) run: 3 properties x 100 = a few hundred, about half a minute
CI_EXAMPLES = 100


# --------------------------------------------------------------------------- the reference

def reference_runs(graph: object, x: np.ndarray, preset: str) -> None:
    """The reference simulates ``graph`` without an exception and records what its contract says."""
    from reference import simulate

    flat = flatten_graph(graph)  # a valid graph must pass s2common's validation
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # overflow of extreme (finite) parameters is legal
        rec = simulate(flat, x, preset=preset)
    batch, ticks = x.shape[:2]
    out = flat.outputs[0]
    assert rec.get(out, "output") is not None, "the Output's value is always recorded"
    for node, obs in rec.data.items():
        for name, arr in obs.items():
            assert arr.shape == (batch, ticks, *flat.out_shape[node]), (node, name, arr.shape)
            if name == "spikes":
                assert arr.dtype == np.bool_
    spiking = [n for n in flat.nodes if flat.type_of(n) in ("IF", "LIF", "CubaLIF", "Threshold")]
    for n in spiking:
        assert rec.get(n, "spikes") is not None, f"spikes of {n} are not recorded"


@st.composite
def _reference_case(draw: st.DrawFn):
    from reference import PRESETS

    graph = draw(any_nir_graphs())
    flat = flatten_graph(graph)
    x = draw(inputs_for(flat.input_shape))
    preset = draw(st.sampled_from(sorted(PRESETS)))
    return graph, x, preset


@settings(max_examples=CI_EXAMPLES)
@given(_reference_case())
def test_reference_never_crashes(case) -> None:
    reference_runs(*case)


@pytest.mark.slow
@pytest.mark.skipif(not SLOW_PROFILE, reason="big fuzz run: HYPOTHESIS_PROFILE=slow pytest -m slow")
@given(_reference_case())
def test_reference_never_crashes_slow(case) -> None:
    reference_runs(*case)


# --------------------------------------------------------------------------- files

def round_trips(graph: object) -> None:
    """``nir.write`` then ``read_flat`` gives the graph s2gate validated in memory."""
    import nir

    flat = flatten_graph(graph)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "g.nir")
        nir.write(path, graph)
        back = read_flat(path)
    assert back.order == flat.order
    assert back.edges == flat.edges
    assert back.in_shape == flat.in_shape and back.out_shape == flat.out_shape
    assert back.back_edges == flat.back_edges


@settings(max_examples=CI_EXAMPLES)
@given(any_nir_graphs(max_layers=3))
def test_nir_files_round_trip(graph) -> None:
    round_trips(graph)


@pytest.mark.slow
@pytest.mark.skipif(not SLOW_PROFILE, reason="big fuzz run: HYPOTHESIS_PROFILE=slow pytest -m slow")
@given(any_nir_graphs(max_layers=3))
def test_nir_files_round_trip_slow(graph) -> None:
    round_trips(graph)


# --------------------------------------------------------------------------- design rules and engines

#: the golden model is scalar Python: check golden == engine when the work stays small
GOLDEN_BUDGET = 20_000  # neurons x ticks x batch


def rules_then_engines(graph: object, options: object, x: np.ndarray) -> str:
    """Design rules accept the graph or name registered rules; accepted graphs run on both engines, bit for bit.

    Returns ``"rejected"``, ``"accepted"`` or ``"accepted+golden"`` (for hypothesis' statistics).
    """
    from s2emu import Engine, GoldenModel, lower
    from s2emu.chip import map_to_chip
    from s2emu.rules import RULES, check_design_rules

    flat = flatten_graph(graph)
    violations = check_design_rules(flat, options=options)
    for v in violations:
        assert v.rule in RULES, f"violation {v.rule!r} is not a registered rule: {v}"
        assert v.node, f"violation {v.rule} names no node"
        assert v.severity in ("error", "warning"), v.severity
    errors = [v for v in violations if v.severity == "error"]
    try:
        net = lower(flat, options)
    except S2GateError as err:
        assert errors, f"lower() refused ({err}) but the design rules found nothing"
        assert err.rule in RULES or any(v.rule == err.rule for v in errors), err.rule
        return "rejected"
    map_to_chip(net)  # the chip model takes any lowered network
    if errors:
        # lowered, but a rule on the lowered network (capacity, accumulators, thresholds...) fails
        return "rejected"
    shape = tuple(net.populations[net.input_name].shape)
    xs = np.asarray(x)
    assert tuple(xs.shape[2:]) == shape
    fast = Engine(net).run(xs, record="all")
    neurons = sum(int(np.prod(p.shape)) for p in net.populations.values())
    if neurons * xs.shape[0] * xs.shape[1] > GOLDEN_BUDGET:
        return "accepted"
    gold = GoldenModel(net).run(xs, record="all")
    assert sorted(fast.data) == sorted(gold.data)
    for node in fast.data:
        assert sorted(fast.data[node]) == sorted(gold.data[node]), node
        for obs, a in fast.data[node].items():
            b = gold.data[node][obs]
            assert a.dtype == b.dtype and a.shape == b.shape, (node, obs, a.dtype, b.dtype, a.shape, b.shape)
            same = a.view(np.uint8) == b.view(np.uint8) if a.dtype.kind == "f" else a == b
            if not np.all(same):
                where = np.argwhere(~same.reshape(a.shape) if same.shape == a.shape else ~same)[0]
                raise AssertionError(f"golden != engine at {node}.{obs}{tuple(where)}: {a[tuple(where)]} vs {b[tuple(where)]}")
    return "accepted+golden"


@st.composite
def _emulator_case(draw: st.DrawFn):
    from hypothesis import event

    from suites.strategies import conversion_options, nir_graphs, spike_inputs

    if draw(st.booleans()):
        graph = draw(any_nir_graphs(max_layers=3, max_size=6))
        source = "any"
    else:
        graph = draw(nir_graphs(integer_weights=draw(st.booleans()), max_neurons=16))
        source = "supported"
    options = draw(conversion_options(graph))
    flat = flatten_graph(graph)
    x = draw(spike_inputs(flat.input_shape, max_batch=2, max_ticks=6))
    event(f"graph from {source} strategy")
    return graph, options, x


def _emulator_property(case) -> None:
    from hypothesis import event

    graph, options, x = case
    event(rules_then_engines(graph, options, x))


@settings(max_examples=CI_EXAMPLES)
@given(_emulator_case())
def test_design_rules_name_a_rule_and_engines_agree(case) -> None:
    _emulator_property(case)


@pytest.mark.slow
@pytest.mark.skipif(not SLOW_PROFILE, reason="big fuzz run: HYPOTHESIS_PROFILE=slow pytest -m slow")
@given(_emulator_case())
def test_design_rules_name_a_rule_and_engines_agree_slow(case) -> None:
    _emulator_property(case)


def test_strategy_covers_every_node_type() -> None:
    """The all-types strategy really draws every NIR node type (guards against a strategy that silently narrows)."""
    from hypothesis import find

    from s2common.graph import KNOWN_TYPES

    for typ in KNOWN_TYPES:
        g = find(any_nir_graphs(), lambda g, typ=typ: any(type(n).__name__ == typ for n in flatten_graph(g).nodes.values()),
                 settings=settings(max_examples=2000, database=None, phases=[Phase.generate]))
        assert any(type(n).__name__ == typ for n in flatten_graph(g).nodes.values())


@pytest.mark.parametrize("delay_s", [1.0, 1e12, 1e300], ids=["1s", "1e12s", "1e300s"])
def test_reference_survives_an_enormous_delay(delay_s: float) -> None:
    """A Delay longer than the run is valid NIR: its output is all zeros, or the reference refuses it by name."""
    from reference import simulate
    from suites.hardening.make_corpus import carrier

    graph, name = carrier("Delay")
    graph.nodes[name].delay = np.full(4, delay_s)
    x = np.ones((2, 5, 3), dtype=bool)
    try:
        rec = simulate(graph, x, record=[name])
    except S2GateError as err:
        assert err.node == name, str(err)
        return
    assert not rec.get(name, "output").any(), "nothing can come out of a Delay longer than the run"


# --------------------------------------------------------------------------- mutated graphs in memory

_BAD_VALUES = ("nan", "inf", "neg", "zero", "string", "none", "grow", "scalar", "huge")


def _mutate(graph: object, draw: st.DrawFn) -> str:
    """Damage ``graph`` in place in one drawn way; returns a description."""
    nodes = graph.nodes
    names = sorted(nodes)
    kind = draw(st.sampled_from(["param", "param", "param", "drop_edge", "add_edge", "drop_node", "rename_edge"]))
    if kind == "param":
        name = draw(st.sampled_from(names))
        node = nodes[name]
        params = sorted(k for k, v in vars(node).items() if k not in ("metadata", "input_type", "output_type")
                        and not isinstance(v, dict))
        if not params:
            return "no-op"
        p = draw(st.sampled_from(params))
        how = draw(st.sampled_from(_BAD_VALUES))
        old = getattr(node, p)
        arr = np.array(old, dtype=np.float64) if not isinstance(old, str) else np.zeros(1)
        if how in ("nan", "inf", "neg", "zero", "huge") and arr.size:
            flat = arr.reshape(-1)
            flat[draw(st.integers(0, flat.size - 1))] = {"nan": np.nan, "inf": -np.inf, "neg": -3.0, "zero": 0.0,
                                                         "huge": 1e300}[how]
            new: object = arr
        elif how == "string":
            new = "not a number"
        elif how == "none":
            new = None
        elif how == "grow":
            new = np.zeros(tuple(s + 1 for s in arr.shape) or (2,))
        else:
            new = np.float64(1.0)
        setattr(node, p, new)
        return f"{name}.{p} <- {how}"
    if kind == "drop_edge" and graph.edges:
        e = draw(st.sampled_from(graph.edges))
        graph.edges.remove(e)
        return f"drop edge {e}"
    if kind == "add_edge":
        s = draw(st.sampled_from(names + ["ghost"]))
        t = draw(st.sampled_from(names + ["ghost"]))
        graph.edges.append((s, t))
        return f"add edge {s} -> {t}"
    if kind == "drop_node":
        name = draw(st.sampled_from(names))
        del nodes[name]
        return f"drop node {name}"
    if graph.edges:
        i = draw(st.integers(0, len(graph.edges) - 1))
        s, t = graph.edges[i]
        graph.edges[i] = (s, t + "_typo")
        return f"rename edge target {t}"
    return "no-op"


@st.composite
def _mutated_case(draw: st.DrawFn):
    graph = draw(any_nir_graphs(max_layers=3, max_size=6, allow_nested=False))
    how = [_mutate(graph, draw) for _ in range(draw(st.integers(1, 2)))]
    return graph, how, draw(st.integers(0, 2 ** 31 - 1))


def mutated_graph_property(case) -> None:
    """A damaged in-memory graph is rejected with an S2GateError, or (if still valid) simulates."""
    from hypothesis import event

    from reference import simulate

    graph, how, seed = case
    try:
        flat = flatten_graph(graph)
    except S2GateError as err:
        assert "\n" not in str(err) and err.rule
        event(f"rejected: {err.rule}")
        return
    except Exception as exc:
        raise AssertionError(f"flatten_graph raised {type(exc).__name__}: {exc} after {how}") from exc
    x = np.random.default_rng(seed).random((1, 3, *flat.input_shape)) < 0.5
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            simulate(flat, x)
    except S2GateError as err:
        event(f"reference refused: {err.rule}")
        return
    except Exception as exc:
        raise AssertionError(f"the reference raised {type(exc).__name__}: {exc} on a graph s2common accepted "
                             f"after {how}") from exc
    event("still valid, simulated")


@settings(max_examples=CI_EXAMPLES)
@given(_mutated_case())
def test_mutated_graphs_get_an_s2gate_error(case) -> None:
    mutated_graph_property(case)


@pytest.mark.slow
@pytest.mark.skipif(not SLOW_PROFILE, reason="big fuzz run: HYPOTHESIS_PROFILE=slow pytest -m slow")
@given(_mutated_case())
def test_mutated_graphs_get_an_s2gate_error_slow(case) -> None:
    mutated_graph_property(case)
