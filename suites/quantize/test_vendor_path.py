"""Cross-check with the emulator: ``rounding="truncate"`` reproduces the vendor's own weight scaling.

The emulator (written independently from py-spinnaker2's converter, ``s2emu/lowering.py``) lowers a
float graph with ``scale_weights=True``: ``w_scale = 127 / percentile_p(|W|)`` and the vendor's
``(W * w_scale).astype(np.int8)``. PTQ in truncate mode followed by lowering with scaling off must
give the same int8 weights, projection by projection, and so the same spikes.
"""
from __future__ import annotations

import numpy as np
import pytest

from harness.quantize import quantize_ptq
from suites.fixtures import third_party

s2emu = pytest.importorskip("s2emu")


@pytest.mark.parametrize("p", [100.0, 99.0])
def test_truncate_mode_equals_the_emulators_vendor_scaling(p):
    import nir

    g = nir.read(str(third_party("cnn_sinabs.nir")))
    qt = quantize_ptq(g, percentile=p, rounding="truncate")
    vendor = s2emu.lower(g, s2emu.ConversionOptions(scale_weights=True, percentile=p))
    projs = [b for b in vendor.projections if b.weight is not None]
    assert len(projs) == 5
    for b in projs:
        w = b.nir_nodes[-1]  # the weight node this projection carries
        np.testing.assert_array_equal(np.asarray(qt.graph.nodes[w].weight, np.int64).reshape(b.weight.shape),
                                      np.asarray(b.weight, np.int64))
    if p == 100.0:
        # nothing wraps at p = 100, so the quantized graph lowers with scaling off to the same network
        ours = s2emu.lower(qt.graph, s2emu.ConversionOptions(scale_weights=False))
        for name, pop in ours.populations.items():
            if pop.threshold is not None:
                np.testing.assert_allclose(pop.threshold, vendor.populations[name].threshold, rtol=1e-6)
    else:
        # at p = 99 the vendor cast wraps (codes up to |128| and sign flips): the emulator refuses such a
        # quantized graph by its int8-range design rule, and our report counts the wrapped weights
        assert all(r.clipped_fraction > 0 for r in qt.layers)


def test_nearest_mode_differs_from_the_vendor_cast():
    """Rounding and truncation give different codes (about half the weights differ by one)."""
    import nir

    g = nir.read(str(third_party("cnn_sinabs.nir")))
    ours = s2emu.lower(quantize_ptq(g).graph, s2emu.ConversionOptions(scale_weights=False))
    vendor = s2emu.lower(g, s2emu.ConversionOptions(scale_weights=True))
    diffs = [np.abs(np.asarray(a.weight, np.int64) - np.asarray(b.weight, np.int64))
             for a, b in zip(ours.projections, vendor.projections) if a.weight is not None]
    assert max(int(d.max()) for d in diffs) == 1
    frac = np.concatenate([d.ravel() for d in diffs]).astype(bool).mean()
    assert 0.3 < frac < 0.7
