"""Q-SNNs exported the way ``brevitas_to_nir.py`` writes them: a second QAT input format.

The public Brevitas -> NIR exporter of the group behind the study (GitHub
``bvogginger/nir_multi_torch_tool_example``, ``brevitas_to_nir.py``,
``_extract_brevitas_module``) writes a ``brevitas.nn.QuantLinear`` with a bias as ``nir.Affine``
holding the **float shadow weights** ``module.weight`` and bias, with node metadata
``quant_weight`` (True), ``quant_weight_scale``, ``quant_weight_zero_point`` and, when the bias is
quantized, ``quant_bias``, ``quant_bias_scale``, ``quant_bias_zero_point``; a QuantLinear without
bias becomes ``nir.Linear`` with the shadow weights and **no metadata** ("nir.Linear does not
support any metadata right now"). Neuron nodes keep their float thresholds.

:func:`from_brevitas_nir` turns such a graph into s2gate's own quantized-NIR form
(``docs/contracts.md``, "Quantized NIR"; ``flow = "qat"``, ``rounding = "brevitas"``,
``format = "brevitas_to_nir"``), the way the study deploys it:

* codes ``q = round(w / scale)`` (round half to even, as ``torch.round`` in Brevitas' integer
  quantizer), zero point 0, which is what Brevitas' ``quant_weight().int()`` returns for a
  weight quantizer that does not clip (the default ``Int8WeightPerTensorFloat`` and
  ``Int8WeightPerChannelFloat``: scale = max|w| / 127 per tensor / output channel);
* per-tensor scales (one value) and per-channel scales (one per output row / channel, Brevitas'
  shape ``(out, 1)`` or ``(out, 1, 1, 1)``) are both read; a population's voltages
  (``v_threshold``, ``v_reset``, ``v_leak``) and the incoming biases are divided by the scale
  (``lambda = 1 / scale``, per channel where the scale is);
* a quantized bias is taken as Brevitas computes it, ``clamp(round(b / bias_scale)) * bias_scale``
  (zero point 0; clamped to the signed range of ``quant_bias_bit_width``, which brevitas_to_nir.py
  does not write: without it 32 bits, Brevitas' ``Int32Bias``, where the clamp never bites), then
  divided by the weight scale like any bias (SpiNNaker2 takes the bias as a float parameter);
* ``nir.Linear`` without metadata: the scale cannot be read, so it is inferred as Brevitas'
  default weight quantizer computes it, ``max|w| / 127`` per tensor (``Int8WeightPerTensorFloat``,
  absolute-max statistics); the node's ``s2gate.quant`` says ``scale_inferred = True`` and the
  conversion lists it in its warnings. A layer trained with another quantizer must be exported
  with its scale (as an Affine with a zero bias).

Bad metadata is one :class:`QuantizationError` naming the node (tested in
``suites/quantize/test_brevitas_nir.py``):

* ``brevitas-zero-point``: a zero point that is not 0 (asymmetric quantization: the chip's
  synapse weights are symmetric codes), or not a whole number;
* ``brevitas-non-integer``: the codes ``w / scale`` are not finite numbers (a zero, negative or
  NaN scale), or the declared ``quant_weight_bit_width`` is not a whole number;
* ``brevitas-bit-width``: codes outside the declared bit width (default 8, signed:
  ``[-2**(b-1), 2**(b-1) - 1]``) or a declared width above 8 (SpiNNaker2's synapses hold 8 bits);
* ``brevitas-scale-shape``: a scale that is neither one value nor one per output channel;
* ``qat-scale-mismatch``: the weight nodes feeding one population have different scales;
* ``brevitas-not-quantized``: ``quant_weight`` is False (a float layer cannot become int8 codes here).
"""
from __future__ import annotations

import copy
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from s2common.errors import QuantizationError
from s2common.graph import node_type

from .format import BIAS_TYPES, BITS, META_KEY, POPULATION_PARAMS, WEIGHT_TYPES, quant_meta, scale_array, source_digest
from .ptq import _cast_checked, _flatten, _scale_population_params
from .topology import analyse

FORMAT = "brevitas_to_nir"
#: the node metadata keys brevitas_to_nir.py writes
WEIGHT_KEYS = ("quant_weight", "quant_weight_scale", "quant_weight_zero_point")
BIAS_KEYS = ("quant_bias", "quant_bias_scale", "quant_bias_zero_point")


def _meta(node: object) -> Dict[str, Any]:
    return dict(getattr(node, "metadata", None) or {})


def is_brevitas_export(graph: object) -> bool:
    """True if some weight node carries ``quant_weight_scale`` metadata and the graph is not already s2gate's form."""
    from .format import is_quantized, iter_nodes

    if is_quantized(graph):
        return False
    return any(node_type(n) in WEIGHT_TYPES and "quant_weight_scale" in _meta(n) for _, n in iter_nodes(graph))


def _flag(value: Any) -> bool:
    arr = np.asarray(value)
    if arr.dtype.kind in "SUO":
        return str(arr.reshape(-1)[0]).lower() in ("true", "1", "b'true'")
    return bool(arr.reshape(-1)[0]) if arr.size else False


def _zero_point(value: Any, name: str, what: str) -> None:
    zp = np.asarray(value, dtype=np.float64)
    if not np.all(np.isfinite(zp)) or np.any(zp != np.rint(zp)):
        raise QuantizationError(f"{what} zero point {zp.ravel()[:4].tolist()} is not a whole number", node=name,
                                rule="brevitas-zero-point", hint="export integer quantizers (Int8WeightPerTensorFloat)")
    if np.any(zp != 0):
        raise QuantizationError(f"{what} zero point is {zp.ravel()[np.flatnonzero(zp)[0]]:g}, not 0: asymmetric codes "
                                "cannot be SpiNNaker2 synapse weights", node=name, rule="brevitas-zero-point",
                                hint="train with a symmetric weight quantizer (zero point 0)")


def _scale(value: Any, channels: int, name: str, what: str) -> np.ndarray:
    """A Brevitas scale as a scalar array or a (channels,) array."""
    s = np.asarray(value, dtype=np.float64)
    if s.size == 1:
        s = s.reshape(())
    elif s.size == channels and s.shape[0] == channels:
        s = s.reshape(channels)
    else:
        raise QuantizationError(f"{what} scale has shape {s.shape}; expected one value or one per output channel "
                                f"({channels})", node=name, rule="brevitas-scale-shape")
    if not np.all(np.isfinite(s)) or np.any(s <= 0):
        raise QuantizationError(f"{what} scale {s.ravel()[:4].tolist()} is not finite and positive, so w / scale "
                                "gives no integer codes", node=name, rule="brevitas-non-integer")
    return s


def _bit_width(meta: Dict[str, Any], name: str) -> int:
    raw = meta.get("quant_weight_bit_width", BITS)
    b = float(np.asarray(raw, dtype=np.float64).reshape(-1)[0])
    if not np.isfinite(b) or b != np.rint(b) or b < 2:
        raise QuantizationError(f"declared weight bit width {raw!r} is not a whole number >= 2", node=name,
                                rule="brevitas-non-integer")
    if b > BITS:
        raise QuantizationError(f"declared weight bit width is {b:g}; SpiNNaker2's synapses hold {BITS}-bit codes",
                                node=name, rule="brevitas-bit-width", hint="train with Int8WeightPerTensorFloat")
    return int(b)


def weight_codes(node: object, name: str) -> Tuple[np.ndarray, np.ndarray, Dict[str, Any]]:
    """(codes, lambda, record) of one brevitas_to_nir weight node.

    ``codes`` = ``round(w / scale)`` as float64 (shape of the weight), ``lambda = 1 / scale``
    (scalar array or (out,) per channel), ``record``: what the metadata said (for ``s2gate.quant``).
    """
    meta = _meta(node)
    w = np.asarray(node.weight, dtype=np.float64)
    out_ch = int(w.shape[0]) if w.ndim else 1
    inferred = "quant_weight_scale" not in meta
    if inferred:
        if node_type(node) != "Linear":
            raise QuantizationError("weight node has no quant_weight_scale metadata; only a bias-free nir.Linear may "
                                    "lack it (brevitas_to_nir.py writes no metadata there)", node=name,
                                    rule="brevitas-missing-scale", hint="export the layer's quant_weight_scale")
        mx = float(np.max(np.abs(w))) if w.size else 0.0
        scale = np.asarray(mx / (2 ** (BITS - 1) - 1) if mx > 0 else 1.0)
        bits = BITS
    else:
        if "quant_weight" in meta and not _flag(meta["quant_weight"]):
            raise QuantizationError("quant_weight is False: the layer was trained in float", node=name,
                                    rule="brevitas-not-quantized", hint="enable weight quantization in Brevitas")
        scale = _scale(meta["quant_weight_scale"], out_ch, name, "weight")
        _zero_point(meta.get("quant_weight_zero_point", 0.0), name, "weight")
        bits = _bit_width(meta, name)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        ratio = w / scale_array(scale, w.shape)
    if not np.all(np.isfinite(ratio)):
        raise QuantizationError("w / scale is not finite, so the codes are not integers", node=name,
                                rule="brevitas-non-integer")
    codes = np.rint(ratio)
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    if codes.size and (codes.min() < lo or codes.max() > hi):
        bad = float(codes.min() if codes.min() < lo else codes.max())
        raise QuantizationError(f"code {bad:g} = round(w / scale) lies outside the {bits}-bit range [{lo}, {hi}]",
                                node=name, rule="brevitas-bit-width",
                                hint="the scale does not match the weights (export quant_weight_scale of this layer)")
    lam = 1.0 / scale
    record = {"brevitas_scale": scale.tolist() if scale.ndim else float(scale), "bits": bits,
              "scale_inferred": bool(inferred), "per_channel": bool(scale.ndim)}
    return codes, lam, record


def _bias_float(node: object, name: str) -> Optional[np.ndarray]:
    """The bias Brevitas computes with: ``round(b / s_b) * s_b`` if the bias is quantized, else ``b`` (float64)."""
    b = getattr(node, "bias", None)
    if b is None:
        return None
    b = np.asarray(b, dtype=np.float64)
    meta = _meta(node)
    if "quant_bias_scale" in meta and _flag(meta.get("quant_bias", True)):
        sb = _scale(meta["quant_bias_scale"], int(b.shape[0]) if b.ndim else 1, name, "bias")
        _zero_point(meta.get("quant_bias_zero_point", 0.0), name, "bias")
        sbb = scale_array(sb, b.shape) if b.ndim else sb
        bits = float(np.asarray(meta.get("quant_bias_bit_width", 32), dtype=np.float64).reshape(-1)[0])
        if not np.isfinite(bits) or bits != np.rint(bits) or bits < 2:
            raise QuantizationError(f"declared bias bit width {bits:g} is not a whole number >= 2", node=name,
                                    rule="brevitas-non-integer")
        b = np.clip(np.rint(b / sbb), -(2.0 ** (bits - 1)), 2.0 ** (bits - 1) - 1) * sbb
    return b


def _same_scale(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and bool(np.all(a == b))


def from_brevitas_nir(graph: object, *, file: Optional[str] = None) -> Tuple[object, List[str]]:
    """The s2gate quantized-NIR form of a ``brevitas_to_nir.py`` export (a new graph; the input is not changed).

    Args:
        graph: a ``nir.NIRGraph`` as ``brevitas_to_nir.py`` writes it (see the module docstring).
        file: the file it came from (digest, messages).

    Returns:
        (graph, warnings): weight nodes hold the codes (float32 whole numbers), biases and population
        voltages are in chip units, every node and the graph carry ``s2gate.quant`` metadata
        (``flow = "qat"``, ``rounding = "brevitas"``, ``format = "brevitas_to_nir"``); the brevitas
        metadata keys are moved into it (``brevitas_scale``).

    Raises:
        QuantizationError: inconsistent metadata (rules in the module docstring), naming the node.
    """
    digest = source_digest(file) if file else source_digest(graph)
    out = copy.deepcopy(graph)
    flat = _flatten(out, file)
    topo = analyse(flat)
    warnings: List[str] = []
    common = {"flow": "qat", "rounding": "brevitas", "format": FORMAT, "source_digest": digest}
    any_per_channel = False
    for g in topo.groups:
        lam: Optional[np.ndarray] = None
        first = None
        parts = []
        for w in g.weights:
            node = flat.nodes[w]
            codes, lam_w, record = weight_codes(node, w)
            if record["scale_inferred"]:
                warnings.append(f"{w}: nir.Linear without quant metadata; scale inferred as max|w|/127 "
                                "(Brevitas' default Int8WeightPerTensorFloat)")
            if lam is None:
                lam, first = lam_w, w
            elif not _same_scale(lam, lam_w):
                raise QuantizationError(f"weight nodes '{first}' and '{w}' feed {', '.join(g.populations)} with different "
                                        "scales; one population needs one scale", node=g.populations[0],
                                        rule="qat-scale-mismatch",
                                        hint="share the weight quantizer between the layers feeding this population")
            parts.append((w, node, codes, record))
        assert lam is not None
        if lam.ndim:
            any_per_channel = True
            chans = {int(flat.out_shape[pp][0]) if flat.out_shape[pp] else 1 for pp in g.populations}
            if chans != {lam.shape[0]}:
                raise QuantizationError(f"per-channel scale over {lam.shape[0]} channels but the population has "
                                        f"{sorted(chans)} on its first axis", node=g.populations[0],
                                        rule="brevitas-scale-shape")
        for w, node, codes, record in parts:
            bias = _bias_float(node, w)
            node.weight = codes.astype(np.float32)
            if bias is not None and node_type(node) in BIAS_TYPES:
                bshape = bias.shape if (bias.ndim or not lam.ndim) else lam.shape
                bdt = np.asarray(getattr(node, "bias")).dtype
                bdt = bdt if bdt.kind == "f" else np.dtype(np.float32)
                node.bias = _cast_checked(np.broadcast_to(bias, bshape) * scale_array(lam, bshape), bdt, "bias", w)
            meta = {k: v for k, v in _meta(node).items() if k not in WEIGHT_KEYS + BIAS_KEYS
                    and k not in ("quant_weight_bit_width", "quant_bias_bit_width")}
            meta[META_KEY] = dict(common, **record, scale=lam.tolist() if lam.ndim else float(lam),
                                  population=",".join(topo.targets[w]))
            node.metadata = meta
        for pp in g.populations:
            node = flat.nodes[pp]
            _scale_population_params(node, lam, pp)
            node.metadata = dict(_meta(node))
            node.metadata[META_KEY] = dict(common, bits=BITS, per_channel=bool(lam.ndim),
                                           scale=lam.tolist() if lam.ndim else float(lam))
    for pp in topo.unweighted:
        node = flat.nodes[pp]
        node.metadata = dict(_meta(node))
        node.metadata[META_KEY] = dict(common, bits=BITS, per_channel=False, scale=1.0)
    out.metadata = dict(getattr(out, "metadata", None) or {})
    out.metadata[META_KEY] = dict(common, bits=BITS, per_channel=any_per_channel)
    return out, warnings


def describe(graph: object) -> Optional[Dict[str, Any]]:
    """The graph's ``s2gate.quant`` if it came from :func:`from_brevitas_nir`, else None."""
    meta = quant_meta(graph)
    return meta if meta and meta.get("format") == FORMAT else None
