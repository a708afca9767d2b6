"""A Q-SNN exported the way ``brevitas_to_nir.py`` writes it, read as a second QAT input format.

The export below is written here from the public exporter's description (GitHub
``bvogginger/nir_multi_torch_tool_example``, ``brevitas_to_nir.py``): a ``QuantLinear`` with a bias
becomes ``nir.Affine`` with the float shadow weights and ``quant_weight_scale`` /
``quant_weight_zero_point`` (and ``quant_bias_*`` when the bias is quantized) in its metadata, one
without a bias becomes ``nir.Linear`` with no metadata; neurons keep their float thresholds.
The expected codes are Brevitas' own ``quant_weight().int()``, the expected thresholds theta / scale
with Brevitas' own scale.

The exporter calls Brevitas' older layer API (``is_weight_quant_enabled``, ``quant_weight_scale()``,
``quant_weight_zero_point()``, ``quant_bias_scale()``...); brevitas 0.13 has the same numbers as
``weight_quant.is_quant_enabled`` and ``quant_weight().scale`` / ``.zero_point`` (``quant_bias()`` for
the bias), which the export below reads.
"""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
qnn = pytest.importorskip("brevitas.nn")

import nir  # noqa: E402

from harness.quantize import dequantize, is_quantized, quant_meta  # noqa: E402
from harness.quantize.brevitas_nir import from_brevitas_nir, is_brevitas_export  # noqa: E402
from s2common.errors import QuantizationError  # noqa: E402

N_IN, N_HID, N_OUT, THETA = 20, 12, 4, 1.0


class SmallQSNN(torch.nn.Module):
    """20 inputs -> QuantLinear(20, 12, bias) -> IF -> QuantLinear(12, 4, no bias) -> IF.

    IF: ``v += I``, spike when ``v > theta``, reset to 0 (NIR's IF with r = 1, v_reset = 0),
    weight layers act within the tick. ``per_channel``: the first layer uses
    ``Int8WeightPerChannelFloat`` (one scale per output neuron).
    """

    def __init__(self, per_channel: bool = False, quant_bias: bool = False) -> None:
        super().__init__()
        kw = {}
        if per_channel:
            from brevitas.quant import Int8WeightPerChannelFloat

            kw["weight_quant"] = Int8WeightPerChannelFloat
        if quant_bias:
            from brevitas.quant import Int8BiasPerTensorFloatInternalScaling

            kw["bias_quant"] = Int8BiasPerTensorFloatInternalScaling  # its own scale: needs no input scale
        self.fc1 = qnn.QuantLinear(N_IN, N_HID, bias=True, **kw)
        self.fc2 = qnn.QuantLinear(N_HID, N_OUT, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (batch, time, 20) spikes -> output spike counts (batch, 4)."""
        b, t = x.shape[:2]
        v1 = torch.zeros(b, N_HID, dtype=x.dtype)
        v2 = torch.zeros(b, N_OUT, dtype=x.dtype)
        counts = torch.zeros(b, N_OUT, dtype=x.dtype)
        for k in range(t):
            v1 = v1 + self.fc1(x[:, k])
            s1 = (v1 > THETA).to(x.dtype)
            v1 = v1 * (1 - s1)
            v2 = v2 + self.fc2(s1)
            s2 = (v2 > THETA).to(x.dtype)
            v2 = v2 * (1 - s2)
            counts += s2
        return counts


def brevitas_style_export(model: SmallQSNN) -> "nir.NIRGraph":
    """The graph ``brevitas_to_nir.py`` would write for ``model`` (written here, following its description)."""

    def layer(m):
        if m.bias is None:
            return nir.Linear(weight=m.weight.detach().numpy())
        meta = {}
        if m.weight_quant.is_quant_enabled:
            qw = m.quant_weight()
            meta.update(quant_weight=True, quant_weight_scale=qw.scale.detach().numpy(),
                        quant_weight_zero_point=qw.zero_point.detach().numpy())
        if m.bias_quant.is_quant_enabled:
            qb = m.quant_bias()
            meta.update(quant_bias=True, quant_bias_scale=qb.scale.detach().numpy(),
                        quant_bias_zero_point=qb.zero_point.detach().numpy())
        return nir.Affine(weight=m.weight.detach().numpy(), bias=m.bias.detach().numpy(), metadata=meta)

    def if_node(n):
        return nir.IF(r=np.ones(n, np.float32), v_threshold=np.full(n, THETA, np.float32), v_reset=np.zeros(n, np.float32))

    nodes = {"input": nir.Input(input_type={"input": np.array([N_IN])}), "fc1": layer(model.fc1), "lif1": if_node(N_HID),
             "fc2": layer(model.fc2), "lif2": if_node(N_OUT), "output": nir.Output(output_type={"output": np.array([N_OUT])})}
    edges = [("input", "fc1"), ("fc1", "lif1"), ("lif1", "fc2"), ("fc2", "lif2"), ("lif2", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges)


def _model(seed: int = 0, **kw) -> SmallQSNN:
    torch.manual_seed(seed)
    m = SmallQSNN(**kw)
    with torch.no_grad():  # larger first-layer weights so that both layers spike on sparse input
        m.fc1.weight.mul_(4.0)
        m.fc1.bias.uniform_(-0.05, 0.15)
        m.fc2.weight.mul_(3.0)
    return m


def _roundtrip(graph, tmp_path, name="qsnn_brevitas.nir"):
    """Write and read back. nir 1.0.8's ``nir.write`` cannot store 0-d arrays (h5py refuses gzip on scalars),
    which is what a per-tensor scale is, so a file holds them as 1-element arrays."""
    import copy

    graph = copy.deepcopy(graph)
    for node in graph.nodes.values():
        meta = getattr(node, "metadata", None) or {}
        for k, v in meta.items():
            if isinstance(v, np.ndarray) and v.ndim == 0:
                meta[k] = v.reshape(1)
    path = tmp_path / name
    nir.write(str(path), graph)
    return path, nir.read(str(path))


@pytest.mark.parametrize("per_channel", [False, True])
def test_codes_are_brevitas_int_and_thresholds_theta_over_scale(tmp_path, per_channel):
    model = _model(per_channel=per_channel)
    _, raw = _roundtrip(brevitas_style_export(model), tmp_path)  # through nir.write / nir.read, as a user's file
    assert type(raw.nodes["fc2"]).__name__ == "Linear" and not raw.nodes["fc2"].metadata
    assert is_brevitas_export(raw) and not is_quantized(raw)
    g, warnings = from_brevitas_nir(raw)
    assert is_quantized(g) and not is_brevitas_export(g)
    assert any("fc2" in w for w in warnings)  # the metadata-less Linear's scale was inferred, and it says so
    for name, layer in (("fc1", model.fc1), ("fc2", model.fc2)):
        np.testing.assert_array_equal(g.nodes[name].weight, layer.quant_weight().int().numpy().astype(np.float32))
    s1 = model.fc1.quant_weight().scale.detach().numpy().astype(np.float64).reshape(-1)  # (12,) or (1,)
    s2 = float(model.fc2.quant_weight().scale.detach())
    assert s1.size == (N_HID if per_channel else 1)
    np.testing.assert_allclose(g.nodes["lif1"].v_threshold, THETA / np.broadcast_to(s1, (N_HID,)), rtol=1e-6)
    np.testing.assert_allclose(g.nodes["lif2"].v_threshold, THETA / s2, rtol=1e-6)
    np.testing.assert_allclose(g.nodes["fc1"].bias, model.fc1.bias.detach().numpy() / s1, rtol=1e-6)
    meta = quant_meta(g.nodes["fc1"])
    assert meta["flow"] == "qat" and meta["format"] == "brevitas_to_nir" and meta["per_channel"] is per_channel
    assert quant_meta(g.nodes["fc2"])["scale_inferred"] is True
    # the float view is Brevitas' dequantized weight (codes * scale)
    np.testing.assert_allclose(dequantize(g).nodes["fc1"].weight, model.fc1.quant_weight().value.detach().numpy(),
                               rtol=1e-6, atol=1e-9)


def test_quantized_bias_is_taken_as_brevitas_computes_it(tmp_path):
    model = _model(seed=3, quant_bias=True)
    raw = brevitas_style_export(model)
    assert "quant_bias_scale" in raw.nodes["fc1"].metadata
    # this 8-bit bias quantizer (range [-128, 127], scale max|b| / 128) clamps the largest bias to code 127;
    # brevitas_to_nir.py writes no bias bit width, so the file has to say it
    raw.nodes["fc1"].metadata["quant_bias_bit_width"] = np.array(8.0)
    g, _ = from_brevitas_nir(raw)
    qb = model.fc1.quant_bias().value.detach().numpy().astype(np.float64)
    s1 = float(model.fc1.quant_weight().scale.detach())
    np.testing.assert_allclose(g.nodes["fc1"].bias, qb / s1, rtol=1e-6)


def test_brevitas_export_runs_through_the_gate_qat_flow(tmp_path):
    """The file as brevitas_to_nir.py writes it goes straight into the gate's QAT flow."""
    from harness.gate.config import GateConfig
    from harness.gate.evaluate import evaluate

    model = _model(seed=1)
    rng = np.random.default_rng(0)
    x = (rng.random((24, 30, N_IN)) < 0.2).astype(np.float32)
    with torch.no_grad():
        counts = model(torch.from_numpy(x)).numpy()
    labels = counts.argmax(1)  # the Brevitas model's own predictions as labels: the gate should reproduce them
    raw = brevitas_style_export(model)
    raw.metadata = {"s2gate.preset": "nir"}  # NIR's IF with instantaneous projections, as the torch model steps
    path, back = _roundtrip(raw, tmp_path, "qsnn_brevitas.nir")
    assert is_brevitas_export(back)
    g, _ = from_brevitas_nir(back, file=str(path))
    for name, layer in (("fc1", model.fc1), ("fc2", model.fc2)):  # what the gate deploys: Brevitas' codes
        np.testing.assert_array_equal(g.nodes[name].weight, layer.quant_weight().int().numpy().astype(np.float32))
    psnn_path, _ = _roundtrip(_float_twin(model), tmp_path, "float.nir")
    ev = evaluate(GateConfig(model=str(psnn_path), qat_model=str(path), sweep=()), data=(x.astype(bool), labels))
    assert not {k: v for k, v in ev.errors.items() if k.startswith("qat")}, ev.errors
    acc = ev.accuracy()
    # the Q-SNN's float view (reference) reproduces the Brevitas model's predictions
    assert acc["qat_float"] >= 95.0 and "qat" in acc
    assert [r.name for r in ev.layers["qat"]] == ["lif1", "lif2"]


def _float_twin(model: SmallQSNN) -> "nir.NIRGraph":
    """The same network with Brevitas' dequantized weights as a float graph (the gate's P-SNN slot)."""
    g = brevitas_style_export(model)
    for name, layer in (("fc1", model.fc1), ("fc2", model.fc2)):
        g.nodes[name].weight = layer.quant_weight().value.detach().numpy()
        g.nodes[name].metadata = {}
    g.nodes["fc2"] = nir.Affine(weight=g.nodes["fc2"].weight, bias=np.zeros(N_OUT, np.float32))
    return g


def _export_with(**meta_changes):
    model = _model(seed=2)
    g = brevitas_style_export(model)
    g.nodes["fc1"].metadata.update(meta_changes)
    return g


@pytest.mark.parametrize("change, rule", [
    ({"quant_weight_zero_point": np.array(3.0, np.float32)}, "brevitas-zero-point"),
    ({"quant_weight_zero_point": np.array(0.5, np.float32)}, "brevitas-zero-point"),
    ({"quant_weight_scale": np.array(0.0, np.float32)}, "brevitas-non-integer"),
    ({"quant_weight_bit_width": np.array(7.5)}, "brevitas-non-integer"),
    ({"quant_weight_bit_width": np.array(16.0)}, "brevitas-bit-width"),
    ({"quant_weight": False}, "brevitas-not-quantized"),
    ({"quant_weight_scale": np.ones(5, np.float32)}, "brevitas-scale-shape"),
])
def test_inconsistent_metadata_is_one_error_naming_the_node(change, rule):
    with pytest.raises(QuantizationError) as err:
        from_brevitas_nir(_export_with(**change))
    assert err.value.rule == rule and err.value.node == "fc1"


def test_codes_beyond_8_bits_are_refused():
    # a scale 4x too small puts round(w / scale) at about 4 * 127 = 508: beyond int8, whatever rounding
    model = _model(seed=2)
    g = brevitas_style_export(model)
    s = float(model.fc1.quant_weight().scale.detach())
    g.nodes["fc1"].metadata["quant_weight_scale"] = np.array(s / 4, np.float32)
    with pytest.raises(QuantizationError) as err:
        from_brevitas_nir(g)
    assert err.value.rule == "brevitas-bit-width" and err.value.node == "fc1" and "8-bit" in str(err.value)
    # a declared 4-bit width: the 8-bit codes of the default quantizer lie beyond it
    g = brevitas_style_export(model)
    g.nodes["fc1"].metadata["quant_weight_bit_width"] = np.array(4.0)
    with pytest.raises(QuantizationError) as err:
        from_brevitas_nir(g)
    assert err.value.rule == "brevitas-bit-width" and "[-8, 7]" in str(err.value)


def test_two_layers_with_different_scales_into_one_population_are_refused():
    model = _model(seed=4)
    g = brevitas_style_export(model)
    # a second Affine into lif2 with its own scale
    other = qnn.QuantLinear(N_IN, N_OUT, bias=True)
    g.nodes["skip"] = nir.Affine(weight=other.weight.detach().numpy(), bias=other.bias.detach().numpy(),
                                 metadata={"quant_weight": True,
                                           "quant_weight_scale": other.quant_weight().scale.detach().numpy(),
                                           "quant_weight_zero_point": np.array(0.0, np.float32)})
    g.edges += [("input", "skip"), ("skip", "lif2")]
    with pytest.raises(QuantizationError) as err:
        from_brevitas_nir(g)
    assert err.value.rule == "qat-scale-mismatch" and err.value.node == "lif2"
