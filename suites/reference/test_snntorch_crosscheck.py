"""Cross-check against snnTorch 1.0.0's importer (``snntorch.import_nir.import_from_nir``).

snnTorch imports the LIF as ``Leaky(beta = 1 - dt/tau, threshold = v_threshold/(r*dt/tau),
reset_mechanism="zero", reset_delay=False, init_hidden=True)`` with dt fixed at 1e-4, so its
membrane is the reference's (snntorch preset) times ``reference.voltage_unit`` (25 here).
Both run in float32; the update is the same product-sum, so only rounding of the moved
scale factor separates them (measured 4.8e-7 at magnitude ~2.5, 2 ulps).
(Issue 2 records that snnTorch 1.0.0 fails to import the paper's CNN and Braille graphs, so the
LIF graph is the one snnTorch cross-check.)
"""
from __future__ import annotations

import nir
import numpy as np
import pytest

from reference import PRESETS, simulate, voltage_unit

from ..fixtures import third_party

import_nir = pytest.importorskip("snntorch.import_nir")
torch = pytest.importorskip("torch")


def test_lif_graph_batched():
    g = nir.read(third_party("lif_norse.nir"))
    net = import_nir.import_from_nir(nir.read(third_party("lif_norse.nir")))
    leaky = [m for _, m in net.named_modules() if type(m).__name__ == "Leaky"][0]
    x = (np.random.default_rng(31).random((3, 300, 1)) < 0.2).astype(np.float32)
    spikes, mem = [], []
    with torch.no_grad():
        for t in range(x.shape[1]):
            out = net(torch.from_numpy(x[:, t]))
            out = out[0] if isinstance(out, tuple) else out
            spikes.append(out.numpy().copy())
            mem.append(leaky.mem.numpy().copy())
    spikes = np.array(spikes).transpose(1, 0, 2) != 0
    mem = np.array(mem).transpose(1, 0, 2)
    rec = simulate(g, x, preset="snntorch", dt=1e-4, dtype=np.float32, record=["1"])
    unit = voltage_unit(g.nodes["1"], "snntorch", PRESETS["snntorch"])
    assert spikes.sum() > 20
    np.testing.assert_array_equal(rec.spikes("1"), spikes)
    np.testing.assert_allclose(rec.get("1", "v") * unit, mem, rtol=0, atol=1e-6)
