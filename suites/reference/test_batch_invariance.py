"""A sample's results do not depend on the batch it runs in (bit for bit), on the NIR paper's
CNN and recurrent Braille network and on random small graphs."""
from __future__ import annotations

import nir
import numpy as np
import pytest
from hypothesis import given, strategies as st

from reference import PRESETS, simulate

from ..fixtures import third_party
from ..strategies import nir_graphs


def assert_rows_equal(big, small, rows):
    assert set(big.data) == set(small.data)
    for node, obs in big.data.items():
        for name, arr in obs.items():
            assert np.array_equal(arr[rows], small.data[node][name]), (node, name)


def spike_input(rng, batch, ticks, shape, density):
    return rng.random((batch, ticks, *shape)) < density


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_cnn_sinabs_batch_1_7_64(dtype):
    g = nir.read(third_party("cnn_sinabs.nir"))
    x = spike_input(np.random.default_rng(11), 64, 12, (2, 34, 34), 0.08)
    r64 = simulate(g, x, preset="nir", dtype=dtype, record=["0", "9", "10"])
    r7 = simulate(g, x[20:27], preset="nir", dtype=dtype, record=["0", "9", "10"])
    r1 = simulate(g, x[63:64], preset="nir", dtype=dtype, record=["0", "9", "10"])
    assert_rows_equal(r64, r7, slice(20, 27))
    assert_rows_equal(r64, r1, slice(63, 64))
    # the comparison is not vacuous: every IF layer spikes and samples differ
    for node in ("1", "3", "6", "10"):
        assert r64.spikes(node).any(), node
    v = r64.get("10", "v")
    assert not np.array_equal(v[0], v[1])


@pytest.mark.parametrize("preset", ["nir", "snntorch", "spinnaker2"])
def test_braille_recurrent_batch_1_7_64(preset):
    g = nir.read(third_party("braille_noDelay_noBias_subtract.nir"))
    x = spike_input(np.random.default_rng(12), 64, 60, (12,), 0.3)
    opts = {"reset": "subtract"}
    r64 = simulate(g, x, preset=preset, options=opts, record="all")
    r7 = simulate(g, x[:7], preset=preset, options=opts, record="all")
    r1 = simulate(g, x[5:6], preset=preset, options=opts, record="all")
    assert_rows_equal(r64, r7, slice(0, 7))
    assert_rows_equal(r64, r1, slice(5, 6))
    assert "lif1.lif" in r64.data and r64.spikes("lif1.lif").any() and r64.spikes("lif2").any()
    assert r64.get("lif1.lif", "i").shape == (64, 60, 40)


def test_braille_recurrence_carries_spikes():
    # the recurrent Linear is not a no-op: removing it changes the hidden layer's spikes
    g = nir.read(third_party("braille_noDelay_noBias_subtract.nir"))
    x = spike_input(np.random.default_rng(13), 4, 60, (12,), 0.3)
    with_rec = simulate(g, x, preset="snntorch", options={"reset": "subtract"})
    g.nodes["lif1.w_rec"].weight = np.zeros_like(g.nodes["lif1.w_rec"].weight)
    without = simulate(g, x, preset="snntorch", options={"reset": "subtract"})
    assert not np.array_equal(with_rec.spikes("lif1.lif"), without.spikes("lif1.lif"))


@given(g=nir_graphs(max_neurons=12), seed=st.integers(0, 2**16), preset=st.sampled_from(sorted(PRESETS)),
       dtype=st.sampled_from([np.float64, np.float32]), batch=st.integers(2, 9))
def test_random_graphs_are_batch_invariant(g, seed, preset, dtype, batch):
    from s2common.graph import flatten_graph

    flat = flatten_graph(g)
    x = spike_input(np.random.default_rng(seed), batch, 15, flat.input_shape, 0.4)
    big = simulate(flat, x, preset=preset, dtype=dtype, record="all")
    for b in (0, batch - 1):
        one = simulate(flat, x[b:b + 1], preset=preset, dtype=dtype, record="all")
        assert_rows_equal(big, one, slice(b, b + 1))
