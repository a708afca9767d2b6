"""QAT export: Brevitas layers -> quantized NIR; a tiny Q-SNN trained a few steps in the suite."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
qnn = pytest.importorskip("brevitas.nn")

from harness.quantize import dequantize, is_quantized, quant_meta  # noqa: E402
from harness.quantize.qat import (SpikeFn, TinyQSNN, check_common_scale, qat_weight_node,  # noqa: E402
                                  scale_population)
from s2common.errors import QuantizationError  # noqa: E402
from s2common.graph import flatten_graph  # noqa: E402


def test_quant_linear_codes_equal_brevitas_int_weights():
    torch.manual_seed(0)
    layer = qnn.QuantLinear(6, 4, bias=True)
    node, lam = qat_weight_node(layer, population="pop")
    qw = layer.quant_weight()
    codes = qw.int().numpy()
    assert type(node).__name__ == "Affine"
    np.testing.assert_array_equal(node.weight, codes.astype(np.float32))
    assert node.weight.dtype == np.float32
    # narrow range: codes within [-127, 127] and the largest |w| maps to 127 (Brevitas' max-abs scale)
    assert np.abs(node.weight).max() == 127
    s = float(qw.scale.detach())
    assert lam == pytest.approx(1 / s, rel=1e-12)
    np.testing.assert_allclose(node.bias, layer.bias.detach().numpy() / s, rtol=1e-6)
    # Brevitas' own dequantized value is codes * scale exactly (in its float32 arithmetic)
    np.testing.assert_array_equal(codes.astype(np.float32) * np.float32(s), qw.value.detach().numpy())
    meta = quant_meta(node)
    assert meta["flow"] == "qat" and meta["rounding"] == "brevitas" and meta["bits"] == 8 and meta["scale"] == lam
    # without a bias it is still an Affine (zero bias): the S2 converter maps SumPool2d -> Flatten -> Affine only
    nobias, _ = qat_weight_node(qnn.QuantLinear(6, 4, bias=False))
    assert type(nobias).__name__ == "Affine" and not np.any(nobias.bias)


def test_quant_conv2d_codes_and_geometry():
    torch.manual_seed(1)
    layer = qnn.QuantConv2d(2, 3, 3, stride=2, padding=1, bias=False)
    node, lam = qat_weight_node(layer, input_shape=(8, 8))
    assert type(node).__name__ == "Conv2d"
    np.testing.assert_array_equal(node.weight, layer.quant_weight().int().numpy().astype(np.float32))
    assert tuple(np.atleast_1d(node.stride)) == (2, 2) and tuple(np.atleast_1d(node.padding)) == (1, 1)
    np.testing.assert_array_equal(node.bias, np.zeros(3, np.float32))


def test_scale_population_divides_thresholds_by_the_scale():
    import nir

    torch.manual_seed(2)
    layer = qnn.QuantLinear(5, 3, bias=False)
    _, lam = qat_weight_node(layer)
    s = float(layer.quant_weight().scale.detach())
    lif = nir.LIF(tau=np.full(3, 1e-3, np.float32), r=np.ones(3, np.float32), v_leak=np.full(3, 0.2, np.float32),
                  v_threshold=np.full(3, 0.7, np.float32), v_reset=np.zeros(3, np.float32))
    out = scale_population(lif, lam)
    np.testing.assert_allclose(out.v_threshold, 0.7 / s, rtol=1e-6)
    np.testing.assert_allclose(out.v_leak, 0.2 / s, rtol=1e-6)
    np.testing.assert_array_equal(out.tau, lif.tau)
    assert lif.v_threshold[0] == np.float32(0.7)  # the input node is not changed
    with pytest.raises(QuantizationError):
        scale_population(lif, -1.0)


def test_non_8bit_and_per_channel_layers_are_refused():
    from brevitas.quant import Int8WeightPerChannelFloat

    with pytest.raises(QuantizationError) as err:
        qat_weight_node(qnn.QuantLinear(4, 2, bias=False, weight_bit_width=4))
    assert err.value.rule == "qat-bit-width"
    with pytest.raises(QuantizationError) as err:
        qat_weight_node(qnn.QuantLinear(4, 2, bias=False, weight_quant=Int8WeightPerChannelFloat))
    assert err.value.rule == "qat-per-channel"
    with pytest.raises(QuantizationError):
        qat_weight_node(torch.nn.Linear(4, 2))
    with pytest.raises(QuantizationError):
        check_common_scale([100.0, 101.0], node="pop")
    assert check_common_scale([100.0, 100.0]) == 100.0


def test_surrogate_gradient_is_fast_sigmoid():
    x = torch.tensor([-0.5, 0.0, 0.1, 2.0], requires_grad=True)
    y = SpikeFn.apply(x)
    np.testing.assert_array_equal(y.detach().numpy(), [0, 0, 1, 1])  # strict > 0, as the chip
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 1 / (1 + 10 * np.abs([-0.5, 0.0, 0.1, 2.0])) ** 2, rtol=1e-6)


def test_tiny_qsnn_trains_and_exports_exactly():
    torch.manual_seed(0)
    model = TinyQSNN()
    x = (torch.rand(32, 16, 1, 8, 8) < 0.3).float()
    y = torch.randint(0, 3, (32,))
    before = model.conv.quant_weight().int().clone()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(10):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(np.isfinite(losses))
    assert min(losses[-3:]) < losses[0]  # it learns something on the training batch
    assert (model.conv.quant_weight().int() != before).any()  # the codes moved

    g = model.to_nir()
    assert is_quantized(g) and quant_meta(g)["flow"] == "qat"
    flat = flatten_graph(g)
    assert flat.order == ["input", "conv", "if1", "flat", "fc", "if2", "output"]
    for name, layer in (("conv", model.conv), ("fc", model.fc)):
        np.testing.assert_array_equal(g.nodes[name].weight, layer.quant_weight().int().numpy().astype(np.float32))
    for pop, layer in (("if1", model.conv), ("if2", model.fc)):
        s = float(layer.quant_weight().scale.detach())
        np.testing.assert_allclose(g.nodes[pop].v_threshold, model.theta / s, rtol=1e-6)
    # the float view has Brevitas' dequantized weights back
    d = dequantize(g)
    np.testing.assert_allclose(d.nodes["fc"].weight, model.fc.quant_weight().value.detach().numpy(), rtol=1e-6)

    # chip units compute the same spikes: run the exported integer graph with the same IF rule in torch
    with torch.no_grad():
        counts = model(x)
        wc = torch.tensor(g.nodes["conv"].weight)
        bc = torch.tensor(g.nodes["conv"].bias)
        wf = torch.tensor(g.nodes["fc"].weight)
        bf = torch.tensor(g.nodes["fc"].bias)
        th1 = float(g.nodes["if1"].v_threshold.flat[0])
        th2 = float(g.nodes["if2"].v_threshold.flat[0])
        v1 = torch.zeros(32, 4, 4, 4)
        v2 = torch.zeros(32, 3)
        chip = torch.zeros(32, 3)
        for t in range(16):
            v1 = v1 + torch.nn.functional.conv2d(x[:, t], wc, bc, stride=2, padding=1)
            s1 = (v1 > th1).float()
            v1 = v1 - s1 * th1
            v2 = v2 + s1.flatten(1) @ wf.T + bf
            s2 = (v2 > th2).float()
            v2 = v2 - s2 * th2
            chip += s2
    # equal up to float rounding at exact threshold ties (none expected on this batch)
    assert (counts == chip).float().mean() >= 0.99
