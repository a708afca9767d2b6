"""Quantization-aware training (QAT) export: Brevitas layers -> quantized NIR nodes.

A Q-SNN is built from Brevitas ``QuantConv2d``/``QuantLinear`` layers with 8-bit weights,
one scale per tensor and narrow range (``Int8WeightPerTensorFloat``, Brevitas' default:
codes in [-127, 127], zero point 0, ``int * scale == quant_weight().value`` exactly) and
spiking neurons. At deployment the scale is switched off: the NIR weight node holds the
codes ``q = layer.quant_weight().int()`` and the population's voltages are expressed in
chip units, i.e. multiplied by ``lambda = 1 / scale``:

    float model:  I = (q * s) x + b,        v > theta
    chip units:   I' = q x + b / s = I / s, v' = v / s > theta / s

so the exported graph is the quantized-NIR form of ``docs/contracts.md`` with
``flow = "qat"`` and ``rounding = "brevitas"`` (no ``percentile``). All weight nodes that
feed one population must share one Brevitas scale (:func:`check_common_scale`).

Functions the models helper calls to export its Q-SNN:

* :func:`qat_weight_node` (layer -> (NIR weight node, lambda)),
* :func:`scale_population` (NIR neuron node, lambda -> neuron node in chip units),
* :func:`check_common_scale`.

Also here: :class:`SpikeFn` (Heaviside forward, fast-sigmoid surrogate backward) and
:class:`TinyQSNN`, a small Q-SNN the suite trains for a few steps and exports.
"""
from __future__ import annotations

import copy
import hashlib
from typing import Any, Optional, Sequence, Tuple

import numpy as np
import torch

from s2common.errors import QuantizationError
from s2common.graph import node_type

from .format import BITS, META_KEY, POPULATION_PARAMS, QMAX


def _layer_name(layer: Any) -> str:
    return type(layer).__name__


def _check_quantizer(layer: Any, name: Optional[str]) -> None:
    wq = getattr(layer, "weight_quant", None)
    where = name or _layer_name(layer)
    if wq is None or not callable(getattr(layer, "quant_weight", None)):
        raise QuantizationError(f"{_layer_name(layer)} is not a Brevitas quantized layer", node=where,
                                rule="qat-not-brevitas", hint="use brevitas.nn.QuantConv2d / QuantLinear")
    if not getattr(wq, "is_quant_enabled", True):
        raise QuantizationError("weight quantization is disabled on this layer", node=where, rule="qat-quant-disabled")
    bits = float(wq.bit_width())
    if bits != BITS:
        raise QuantizationError(f"weights are {bits:g}-bit; SpiNNaker2's lif/conv2d synapses take 8-bit codes", node=where,
                                rule="qat-bit-width", hint="use Int8WeightPerTensorFloat")
    if not getattr(wq, "is_narrow_range", False) or not getattr(wq, "is_signed", True):
        raise QuantizationError("weights must be signed narrow-range ([-127, 127])", node=where, rule="qat-narrow-range",
                                hint="use Int8WeightPerTensorFloat (narrow_range=True)")


def _digest_layer(layer: Any) -> str:
    h = hashlib.sha256()
    for k, v in sorted(layer.state_dict().items()):
        if torch.is_tensor(v):
            h.update(k.encode() + v.detach().cpu().to(torch.float64).numpy().tobytes())
    return h.hexdigest()


def qat_weight_node(layer: Any, *, input_shape: Optional[Sequence[int]] = None, digest: Optional[str] = None,
                    population: str = "") -> Tuple[Any, float]:
    """Export one Brevitas layer as a NIR weight node holding its int8 codes.

    Args:
        layer: ``brevitas.nn.QuantLinear`` (-> ``nir.Affine``, zero bias if the layer has none: the
            SpiNNaker2 converter maps ``SumPool2d -> Flatten -> Affine`` but not ``-> Linear``),
            ``QuantConv2d`` (-> ``nir.Conv2d``) or ``QuantConv1d`` (-> ``nir.Conv1d``), 8-bit signed,
            narrow range, one scale per tensor, zero point 0.
        input_shape: spatial input shape for convs, (H, W) or (L,); optional (NIR allows None).
        digest: source digest to record (default: sha256 of the layer's state dict).
        population: name of the population it feeds (recorded in the metadata).

    Returns:
        (node, lam): ``node.weight`` is exactly ``layer.quant_weight().int()`` as float32
        (out, in[, kh, kw]); ``node.bias`` is the float bias times ``lam``; ``lam = 1 / scale``.

    Raises:
        QuantizationError: not a Brevitas layer, not 8-bit/narrow/signed, a per-channel scale,
            a non-zero zero point.
    """
    import nir

    _check_quantizer(layer, population or None)
    where = population or _layer_name(layer)
    with torch.no_grad():
        qw = layer.quant_weight()
        scale = qw.scale.detach().cpu().to(torch.float64)
        if scale.numel() != 1:
            raise QuantizationError(f"per-channel weight scale ({scale.numel()} scales); s2gate's QAT form needs one "
                                    "scale per tensor", node=where, rule="qat-per-channel",
                                    hint="use Int8WeightPerTensorFloat")
        if float(torch.as_tensor(qw.zero_point).abs().max()) != 0.0:
            raise QuantizationError("weight zero point is not 0", node=where, rule="qat-zero-point")
        codes = qw.int().detach().cpu().numpy()
        s = float(scale.reshape(()))
        lam = 1.0 / s
        latent = layer.weight.detach().cpu().to(torch.float64).numpy()
        deq = codes.astype(np.float64) * s
        max_abs = float(np.max(np.abs(latent - deq))) if latent.size else 0.0
        clipped = float(np.mean(np.abs(np.rint(latent / s)) > QMAX)) if latent.size else 0.0
        bias = None if layer.bias is None else layer.bias.detach().cpu().to(torch.float64).numpy()
    if codes.min() < -QMAX or codes.max() > QMAX:
        raise QuantizationError("codes outside [-127, 127]", node=where, rule="qat-narrow-range")
    weight = codes.astype(np.float32)
    scaled_bias = None if bias is None else np.asarray(bias * lam, dtype=np.float32)
    meta = {"scale": lam, "bits": BITS, "rounding": "brevitas", "flow": "qat", "per_channel": False,
            "clipped_fraction": clipped, "max_abs_error": max_abs,
            "source_digest": digest or _digest_layer(layer), "population": population}
    typ = _layer_name(layer)
    if "Linear" in typ:
        if scaled_bias is None:
            scaled_bias = np.zeros(weight.shape[0], dtype=np.float32)
        node = nir.Affine(weight=weight, bias=scaled_bias)
    elif "Conv2d" in typ or "Conv1d" in typ:
        nd = 2 if "Conv2d" in typ else 1
        if scaled_bias is None:
            scaled_bias = np.zeros(weight.shape[0], dtype=np.float32)
        pad = layer.padding
        if not isinstance(pad, str):
            pad = tuple(int(x) for x in np.atleast_1d(pad))
        if nd == 2:
            node = nir.Conv2d(input_shape=None if input_shape is None else tuple(int(x) for x in input_shape),
                              weight=weight, stride=tuple(int(x) for x in layer.stride),
                              padding=pad, dilation=tuple(int(x) for x in layer.dilation),
                              groups=int(layer.groups), bias=scaled_bias)
        else:
            node = nir.Conv1d(input_shape=None if input_shape is None else int(np.atleast_1d(input_shape)[0]),
                              weight=weight, stride=int(layer.stride[0]),
                              padding=pad if isinstance(pad, str) else int(pad[0]),
                              dilation=int(layer.dilation[0]), groups=int(layer.groups), bias=scaled_bias)
    else:
        raise QuantizationError(f"cannot export {typ}", node=where, rule="qat-not-brevitas",
                                hint="use brevitas.nn.QuantConv2d / QuantLinear")
    node.metadata = dict(node.metadata or {})
    node.metadata[META_KEY] = meta
    return node, lam


def scale_population(neuron_node: Any, lam: float, *, digest: str = "") -> Any:
    """A copy of a NIR neuron node with its voltages in chip units (multiplied by ``lam = 1/scale``).

    ``v_threshold``, ``v_reset`` and ``v_leak`` (those the node type has) are multiplied, so
    ``v_threshold * lam = theta / scale``; time constants, ``r`` and ``w_in`` are unchanged.
    The input node is not modified. Metadata as for PTQ, with ``flow = "qat"``.
    """
    typ = node_type(neuron_node)
    if typ not in POPULATION_PARAMS:
        raise QuantizationError(f"{typ} is not a neuron population", rule="qat-not-population")
    lam = float(lam)
    if not (np.isfinite(lam) and lam > 0):
        raise QuantizationError(f"scale factor must be finite and > 0, got {lam}", rule="bad-scale")
    node = copy.deepcopy(neuron_node)
    for p in POPULATION_PARAMS[typ]:
        v = getattr(node, p, None)
        if v is None:
            continue
        arr = np.asarray(v)
        dtype = arr.dtype if arr.dtype.kind == "f" else np.dtype(np.float32)
        setattr(node, p, np.asarray(arr.astype(np.float64) * lam, dtype=dtype))
    node.metadata = dict(node.metadata or {})
    node.metadata[META_KEY] = {"scale": lam, "bits": BITS, "rounding": "brevitas", "flow": "qat", "per_channel": False,
                               "clipped_fraction": 0.0, "max_abs_error": 0.0, "source_digest": digest}
    return node


def check_common_scale(lams: Sequence[float], node: str = "", rtol: float = 0.0) -> float:
    """The one lambda shared by all weight layers feeding ``node``; QuantizationError if they differ.

    In the chip's integer sum all incoming codes must be in the same units. With Brevitas
    this means the layers share a weight quantizer (or are trained to the same scale).
    """
    lams = [float(x) for x in lams]
    if not lams:
        raise QuantizationError("no weight layers", node=node or None, rule="qat-no-weights")
    ref = lams[0]
    for x in lams[1:]:
        if abs(x - ref) > rtol * abs(ref):
            raise QuantizationError(f"incoming layers have different scales ({ref:.6g} vs {x:.6g}); one population needs "
                                    "one scale", node=node or None, rule="qat-scale-mismatch",
                                    hint="share the weight quantizer between the layers feeding this population")
    return ref


class SpikeFn(torch.autograd.Function):
    """Heaviside spike ``x > 0`` (strict, as the chip) forward; fast-sigmoid surrogate backward.

    Backward: ``grad * 1 / (1 + slope |x|)^2`` (SuperSpike, Zenke & Ganguli 2018), ``slope = 10``.
    """

    slope = 10.0

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return grad / (1.0 + SpikeFn.slope * x.abs()) ** 2


def if_step(v: torch.Tensor, current: torch.Tensor, theta: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """One IF tick: ``v += I``; spike if ``v > theta``; reset by subtraction. Returns (v, spikes)."""
    v = v + current
    s = SpikeFn.apply(v - theta)
    return v - s * theta, s


class TinyQSNN(torch.nn.Module):
    """A tiny Q-SNN: (1, 8, 8) spikes -> QuantConv2d 4x3x3/s2 -> IF -> Flatten -> QuantLinear 64->3 -> IF.

    Input (batch, time, 1, 8, 8) in {0, 1}; output spike counts (batch, 3). Weights 8-bit
    per-tensor narrow range (Brevitas default). IF neurons: ``v += I``, spike ``v > theta``,
    reset by subtraction, ``theta = 1``; weight layers act within the tick (no latency).
    """

    def __init__(self, theta: float = 1.0, classes: int = 3) -> None:
        super().__init__()
        import brevitas.nn as qnn

        self.theta = float(theta)
        self.conv = qnn.QuantConv2d(1, 4, 3, stride=2, padding=1, bias=True)
        self.fc = qnn.QuantLinear(64, classes, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (batch, time, 1, 8, 8) -> output spike counts (batch, classes).

        Layer by layer (weight layers are stateless, so all ticks go through one call,
        which quantizes the weights once per forward), IF state tick by tick.
        """
        b, t = x.shape[:2]
        cur1 = self.conv(x.reshape(b * t, *x.shape[2:])).reshape(b, t, 4, 4, 4)
        s1 = self._if(cur1)
        cur2 = self.fc(s1.reshape(b * t, -1)).reshape(b, t, -1)
        return self._if(cur2).sum(dim=1)

    def _if(self, current: torch.Tensor) -> torch.Tensor:
        """IF over time: current (batch, time, ...) -> spikes (batch, time, ...)."""
        v = torch.zeros_like(current[:, 0])
        out = []
        for k in range(current.shape[1]):
            v, s = if_step(v, current[:, k], self.theta)
            out.append(s)
        return torch.stack(out, dim=1)

    def to_nir(self) -> Any:
        """The quantized-NIR graph: int8 codes, thresholds ``theta / scale`` (chip units)."""
        import nir

        conv, lam1 = qat_weight_node(self.conv, input_shape=(8, 8), population="if1")
        fc, lam2 = qat_weight_node(self.fc, population="if2")
        if1 = scale_population(nir.IF(r=np.ones((4, 4, 4), np.float32), v_threshold=np.full((4, 4, 4), self.theta, np.float32),
                                      v_reset=np.zeros((4, 4, 4), np.float32)), lam1)
        n = self.fc.out_features
        if2 = scale_population(nir.IF(r=np.ones(n, np.float32), v_threshold=np.full(n, self.theta, np.float32),
                                      v_reset=np.zeros(n, np.float32)), lam2)
        nodes = {"input": nir.Input(input_type={"input": np.array([1, 8, 8])}), "conv": conv, "if1": if1,
                 "flat": nir.Flatten(input_type={"input": np.array([4, 4, 4])}, start_dim=0, end_dim=-1),
                 "fc": fc, "if2": if2, "output": nir.Output(output_type={"output": np.array([n])})}
        edges = [("input", "conv"), ("conv", "if1"), ("if1", "flat"), ("flat", "fc"), ("fc", "if2"), ("if2", "output")]
        g = nir.NIRGraph(nodes=nodes, edges=edges)
        g.metadata = {META_KEY: {"flow": "qat", "source_digest": conv.metadata[META_KEY]["source_digest"], "bits": BITS,
                                 "rounding": "brevitas", "per_channel": False}}
        return g
