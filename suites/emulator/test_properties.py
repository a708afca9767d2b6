"""Golden model == fast engine, bit for bit, on hypothesis-generated graphs over every pattern and option.

The property tests below draw 3 x 70 + 120 + 60 = 390 examples under the "ci" profile (more under
"slow"); each example is tiny (<= 16 neurons per population, <= 12 ticks, batch <= 2).
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from s2emu import Engine, GoldenModel, lower
from suites.strategies import PATTERNS, PATTERNS_1D, PATTERNS_3D, conversion_options, nir_graphs, spike_inputs

from .bits import assert_same_bits


def _examples(n: int) -> int:
    """At least ``n`` examples; the active profile may ask for more (slow profile)."""
    return max(n, settings.default.max_examples)


def _check(graph, options, data) -> None:
    net = lower(graph, options)
    for pop in net.populations.values():
        event(f"model {pop.model}")
    for proj in net.projections:
        event(f"projection {proj.kind}{' pooled' if proj.pool else ''}{' recurrent' if proj.recurrent else ''}")
    event(f"conn_delay {options.conn_delay}, fma {options.fused_multiply_add}, reset {options.reset}")
    x = data.draw(spike_inputs(net.populations[net.input_name].shape))
    record = data.draw(st.sampled_from(["all", None, sorted(n for n in net.populations if n != net.input_name)[:1]]))
    fast = Engine(net).run(x, record=record)
    gold = GoldenModel(net).run(x, record=record)
    event(f"schedule {fast.meta['schedule']}")
    assert_same_bits(fast, gold)
    if fast.meta["schedule"] == "layers":  # the tick-by-tick schedule agrees as well
        assert_same_bits(Engine(net, mode="ticks").run(x, record=record), gold)
    # both ways of computing synaptic input, forced (auto picks per chunk by spike count)
    for synapses in ("events", "dense"):
        assert_same_bits(Engine(net, synapses=synapses).run(x, record=record), gold)
    for name in fast.data:
        assert fast.spikes(name).shape[:2] == x.shape[:2]


@pytest.mark.parametrize("group", ["flat", "spatial", "mixed"])
@settings(max_examples=_examples(70), deadline=None)
@given(data=st.data())
def test_golden_equals_engine_float_graphs(group, data) -> None:
    """Float weights, the converter's weight scaling (percentile 100/99/90), every pattern."""
    choices = {"flat": PATTERNS_1D, "spatial": PATTERNS_3D, "mixed": PATTERNS}[group]
    patterns = data.draw(st.sampled_from([choices] + [(p,) for p in choices]))
    graph = data.draw(nir_graphs(patterns=patterns, max_neurons=16))
    options = data.draw(conversion_options(graph, scale_weights=True))
    _check(graph, options, data)


@settings(max_examples=_examples(120), deadline=None)
@given(data=st.data(), weight_max=st.sampled_from([15, 127]))
def test_golden_equals_engine_quantized_graphs(data, weight_max) -> None:
    """Integer weights (a quantized graph), scaling on or off, connection delays with 4-bit weights."""
    graph = data.draw(nir_graphs(max_neurons=16, integer_weights=True, weight_max=weight_max))
    options = data.draw(conversion_options(graph))
    _check(graph, options, data)


@settings(max_examples=_examples(60), deadline=None)
@given(data=st.data())
def test_golden_equals_engine_with_connection_delays(data) -> None:
    """``lif`` populations (conn_delay 1..3, 4-bit weights): spikes of tick t arrive in tick t + 1 + delay."""
    graph = data.draw(nir_graphs(patterns=("dense", "fanin", "recurrent", "pool", "pool_flatten_dense"),
                                 max_neurons=12, integer_weights=True, weight_max=15, neuron_types=("LIF", "IF")))
    options = data.draw(conversion_options(graph, scale_weights=False, min_delay=1))
    assert options.conn_delay >= 1
    _check(graph, options, data)


@pytest.mark.slow
@settings(deadline=None)  # the profile's example count: 50 in "ci", 10 000 in "slow"
@given(data=st.data())
def test_golden_equals_engine_bigger_graphs(data) -> None:
    """Bigger fuzz: three stages, up to 48 neurons per population, up to 30 ticks, batch up to 3."""
    graph = data.draw(nir_graphs(max_neurons=48, max_stages=3, integer_weights=data.draw(st.booleans())))
    options = data.draw(conversion_options(graph))
    net = lower(graph, options)
    x = data.draw(spike_inputs(net.populations[net.input_name].shape, max_batch=3, max_ticks=30))
    gold = GoldenModel(net).run(x, record="all")
    assert_same_bits(Engine(net).run(x, record="all"), gold)
    assert_same_bits(Engine(net, synapses="events").run(x, record="all"), gold)
