"""Q-SNN: Brevitas 8-bit narrow-range weights, quantized-NIR export (codes, thresholds / scale)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("brevitas")

from harness.models.export import NEURON_NODES, WEIGHT_NODES, export_qsnn  # noqa: E402
from harness.models.psnn import PSNN  # noqa: E402
from harness.models.qsnn import QSNN  # noqa: E402


@pytest.fixture(scope="module")
def qsnn():
    torch.manual_seed(0)
    p = PSNN()
    with torch.no_grad():
        for layer in p.weight_layers:
            layer.weight.mul_(3.0)
        p.conv1.weight[0, 0, 0, 0] = -10.0  # the most negative weight sets the scale: narrow range -> -127
    return QSNN.from_psnn(p)


def test_narrow_range_codes(qsnn):
    codes = qsnn.conv1.quant_weight().int()
    assert int(codes.min()) == -127 and int(codes.max()) <= 127
    for layer in qsnn.weight_layers:
        qw = layer.quant_weight()
        assert qw.scale.numel() == 1  # per tensor
        assert torch.equal(qw.int().float() * qw.scale, qw.value)


def test_export_holds_codes_and_scaled_thresholds(qsnn):
    g = export_qsnn(qsnn, T=10, dt=0.05, seed=0)
    for wname, nname, layer in zip(WEIGHT_NODES, NEURON_NODES, qsnn.weight_layers):
        qw = layer.quant_weight()
        w = np.asarray(g.nodes[wname].weight)
        np.testing.assert_array_equal(w, qw.int().numpy().astype(np.float32))
        assert np.all(np.abs(w) <= 127) and np.all(w == np.rint(w))
        theta = np.asarray(g.nodes[nname].v_threshold)
        np.testing.assert_allclose(theta, 1.0 / float(qw.scale.detach()), rtol=1e-6)
    assert g.metadata["s2gate.quant"]["flow"] == "qat"


def test_quantized_graph_reproduces_the_qsnn(qsnn):
    reference = pytest.importorskip("reference")
    x = (np.random.default_rng(1).random((4, 12, 2, 32, 32)) < 0.15).astype(np.uint8)
    with torch.no_grad():
        counts, spikes = qsnn(torch.from_numpy(x).float(), return_all=True)
    g = export_qsnn(qsnn, T=12, dt=0.05, seed=0)
    rec = reference.simulate(g, x.astype(bool), preset="spinnaker2")
    for name, s in zip(NEURON_NODES, spikes):
        mismatch = np.mean(rec.get(name, "spikes") != s.numpy().astype(bool))
        assert mismatch < 1e-3, (name, mismatch)
    assert spikes[-1].mean() > 0.05
