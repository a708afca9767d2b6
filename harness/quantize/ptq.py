"""Post-training quantization (PTQ) of a float NIR graph to int8 weight codes.

For each neuron population (more exactly, each group of populations joined by shared
weight nodes, see :mod:`harness.quantize.topology`) one scale

    lambda_s = 127 / percentile_p(|all incoming weights|)

(per output channel with ``per_channel=True``). Incoming weights are those of every weight
node reaching the population, through SumPool2d/Flatten and including recurrent Linears.
Weights become codes ``q``; the population's ``v_threshold``, ``v_reset``, ``v_leak`` and the
incoming biases are multiplied by the same lambda, so the graph computes the same spikes
in *chip units* (voltage x lambda). Why that preserves the float meaning: every neuron
equation NIR defines (IF, LIF, CubaLIF, LI, CubaLI, I) is linear in (v, v_leak, input), so
``v' = lambda v`` solves the same equation with input ``lambda I`` and leak ``lambda v_leak``,
and ``v' > lambda theta  <=>  v > theta`` for lambda > 0; resets are mapped the same way.

Rounding modes:

* ``"nearest"``: ``q = clip(rint(lambda w), -127, 127)`` (round half to even, like
  ``torch.round`` and Brevitas). For weights that are not clipped, ``|w - q/lambda| <= 1/(2 lambda)``.
* ``"truncate"``: the vendor path. Conv weights: py-spinnaker2's cast
  ``(W * w_scale).astype(np.int8)`` (``s2_nir.py``; public copy: SpiNNakerManchester/sPiNNIRker,
  ``spinnirker/__init__.py``): truncation toward zero and **no clipping**: a value outside
  [-128, 127] wraps around modulo 256 (what numpy's float->int8 cast does on x86; written out
  here as ``((trunc(x) + 128) mod 256) - 128`` so that it does not depend on the platform).
  Dense (Affine/Linear) weights are handed to py-spinnaker2 as floats and converted in code
  that is not public; like the emulator (``s2emu/lowering.py``, marked [inf] there) they are
  truncated toward zero and saturated at +-127. With p = 100 nothing wraps or saturates
  (``|lambda w| <= 127``); with p < 100 large conv weights flip sign. The mode exists to
  compare the vendor path with the rounding one; ``clipped_fraction`` then counts wrapped
  (conv) or saturated (dense) weights, and conv codes can be -128.

Bad input (tested in ``suites/quantize``):

* NaN/inf weights: :class:`QuantizationError` naming the node (rule ``non-finite-weight``).
* percentile outside (0, 100]: :class:`QuantizationError` (rule ``bad-percentile``).
* a population (or channel) whose incoming weights are all zero: lambda = 1 (nothing to
  scale, nothing is lost), the codes stay 0 and the report row carries a ``warning``.
  If the weights are not all zero but their p-th percentile is 0 (mostly-zero weights and
  a low p), lambda would be infinite: :class:`QuantizationError` (rule ``zero-percentile``).
* an already quantized graph: quantized again like any graph (at p = 100 its codes give
  lambda = 1 and nothing changes); the metadata ``scale`` becomes the product of both steps,
  so :func:`dequantize` still returns the original float view.
* weights so tiny that lambda * threshold (or bias) overflows the parameter's float dtype:
  :class:`QuantizationError` (rule ``scale-overflow``) naming the population.
"""
from __future__ import annotations

import copy
import os
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from s2common.errors import InvalidGraphError, QuantizationError
from s2common.graph import flatten_graph, node_type

from .format import (BIAS_TYPES, BITS, META_KEY, POPULATION_PARAMS, QMAX, quant_meta, scale_array, source_digest,
                     write_graph)
from .topology import Group, analyse

ROUNDING_MODES = ("nearest", "truncate")


@dataclass
class LayerReport:
    """What PTQ did to one weight node.

    Attributes:
        layer: the weight node's (dotted) name.
        population: the population(s) it feeds, comma-separated.
        node_type: "Affine", "Conv2d", ...
        scale: lambda_s of this step (float; per-channel: list over output channels).
        percentile: p (per channel after calibration: a list over output channels).
        rounding: "nearest" | "truncate".
        n_weights: number of weights.
        clipped_fraction: fraction of weights whose code was clipped (nearest) or wrapped (truncate).
        max_rounding_error: max |w - q/lambda| over weights that were not clipped/wrapped (float units).
        max_abs_error: max |w - q/lambda| over all weights (float units; includes clipping).
        bytes_float32: weight bytes as float32 (4 per weight).
        bytes_int8: weight bytes as int8 (1 per weight).
        warning: non-empty if something noteworthy happened (all-zero weights -> lambda = 1).
    """

    layer: str
    population: str
    node_type: str
    scale: Union[float, List[float]]
    percentile: Union[float, List[float]]
    rounding: str
    n_weights: int
    clipped_fraction: float
    max_rounding_error: float
    max_abs_error: float
    bytes_float32: int
    bytes_int8: int
    warning: str = ""

    def scale_text(self) -> str:
        if isinstance(self.scale, list):
            return f"{min(self.scale):.4g}..{max(self.scale):.4g}"
        return f"{self.scale:.6g}"


@dataclass
class QuantizedGraph:
    """Result of :func:`quantize_ptq`.

    Attributes:
        graph: the quantized ``nir.NIRGraph`` (a new object; the input is not changed).
        layers: one :class:`LayerReport` per weight node, in topological order.
        scales: population name -> lambda of this step (float or per-channel list).
        percentile, per_channel, rounding: the settings used.
        source_digest: sha256 of the source file (or of the float graph's parameters).
    """

    graph: Any
    layers: List[LayerReport]
    scales: Dict[str, Union[float, List[float]]]
    percentile: Union[float, List[float]]
    per_channel: bool
    rounding: str
    source_digest: str
    warnings: List[str] = field(default_factory=list)
    calibration: Any = None  #: a harness.quantize.calibrate.Calibration when the percentiles were calibrated

    def write(self, path: "str | os.PathLike[str]") -> None:
        """Write the quantized graph with ``nir.write``, atomically."""
        write_graph(self.graph, path)

    def rows(self) -> List[Dict[str, Any]]:
        return [asdict(r) for r in self.layers]

    def table(self, tablefmt: str = "simple") -> str:
        """The per-layer table (layer, population, lambda, clipped %, max rounding error, bytes)."""
        from tabulate import tabulate

        rows = [[r.layer, r.population, r.scale_text(), f"{100 * r.clipped_fraction:.3f}",
                 f"{r.max_rounding_error:.3g}", f"{r.max_abs_error:.3g}", r.bytes_float32, r.bytes_int8]
                for r in self.layers]
        head = ["layer", "population", "lambda_s", "clipped %", "max rounding err", "max abs err",
                "bytes f32", "bytes int8"]
        return tabulate(rows, headers=head, tablefmt=tablefmt)


def _check_settings(percentile: float, rounding: str) -> float:
    try:
        p = float(percentile)
    except (TypeError, ValueError):
        raise QuantizationError(f"percentile must be a number, got {percentile!r}", rule="bad-percentile") from None
    if not (0.0 < p <= 100.0):  # also rejects NaN
        raise QuantizationError(f"percentile must be in (0, 100], got {percentile!r}", rule="bad-percentile",
                                hint="use 100 (the largest weight maps to 127) or e.g. 99.9 to clip outliers")
    if rounding not in ROUNDING_MODES:
        raise QuantizationError(f"rounding must be one of {ROUNDING_MODES}, got {rounding!r}", rule="bad-rounding")
    return p


def _flatten(graph: object, file: Optional[str]) -> object:
    """flatten_graph, with non-finite weights reported as a QuantizationError naming the node."""
    try:
        return flatten_graph(graph, file=file)
    except InvalidGraphError as err:
        if err.rule == "non-finite-parameter":
            raise QuantizationError(err.message + "; cannot quantize", file=err.file, node=err.node,
                                    rule="non-finite-weight",
                                    hint="fix the exported model; NaN/inf often come from a diverged training run") from err
        raise


def _group_scale(flat: object, group: Group, p: "float | Sequence[float]", per_channel: bool
                 ) -> Tuple[np.ndarray, List[str]]:
    """lambda of a group: scalar array (per tensor) or (C,) array (per channel); plus warnings.

    ``p`` is one percentile, or (per channel only) one percentile per output channel.
    """
    warnings: List[str] = []
    where = ", ".join(group.populations)
    if per_channel:
        chans = {int(np.prod(flat.out_shape[pp][:1])) for pp in group.populations}
        if len(chans) != 1:
            raise QuantizationError(f"populations {where} share weights but have different channel counts {sorted(chans)}",
                                    node=group.populations[0], rule="per-channel-mismatch", hint="use per-tensor scales")
        c = chans.pop()
        cols = []
        for w in group.weights:
            wt = np.asarray(flat.nodes[w].weight, dtype=np.float64)
            if w in group.flattened or wt.shape[0] != c:
                raise QuantizationError(f"per-channel scaling needs the weight's output channels ({wt.shape[0]}) to be "
                                        f"the population's first axis ({c}); a Flatten or reshape lies between", node=w,
                                        rule="per-channel-unsupported", hint="quantize this graph per tensor")
            cols.append(np.abs(wt.reshape(c, -1)))
        absw = np.concatenate(cols, axis=1)
        if np.ndim(p):
            pc = np.asarray(p, dtype=np.float64)
            if pc.shape != (c,):
                raise QuantizationError(f"{pc.size} per-channel percentiles for {c} channels", node=group.populations[0],
                                        rule="bad-percentile")
            perc = np.array([np.percentile(absw[i], pc[i]) for i in range(c)])
            p = float(pc.min())  # for the messages below
        else:
            perc = np.percentile(absw, p, axis=1)
        mx = absw.max(axis=1)
        lam = np.ones(c)
        ok = perc > 0
        lam[ok] = QMAX / perc[ok]
        bad = (~ok) & (mx > 0)
        if bad.any():
            ch = int(np.flatnonzero(bad)[0])
            raise QuantizationError(f"the {p:g}th percentile of channel {ch}'s |weights| is 0 but some weights are not, "
                                    "so lambda would be infinite", node=group.populations[0], rule="zero-percentile",
                                    hint="raise the percentile")
        if (mx == 0).any():
            warnings.append(f"{where}: {int((mx == 0).sum())} channel(s) with all-zero incoming weights; lambda = 1 there")
        return lam, warnings
    absw = np.concatenate([np.abs(np.asarray(flat.nodes[w].weight, dtype=np.float64)).ravel() for w in group.weights])
    mx = float(absw.max()) if absw.size else 0.0
    if mx == 0.0:
        warnings.append(f"{where}: all incoming weights are zero; lambda = 1")
        return np.asarray(1.0), warnings
    perc = float(np.percentile(absw, p))
    if perc == 0.0:
        raise QuantizationError(f"the {p:g}th percentile of the incoming |weights| is 0 but some weights are not, "
                                "so lambda would be infinite", node=group.populations[0], rule="zero-percentile",
                                hint="raise the percentile")
    return np.asarray(QMAX / perc), warnings


def _given_codes(q: Any, shape: Tuple[int, ...], rounding: str, where: str) -> np.ndarray:
    """Codes handed in by a rounding search, checked: whole numbers in [-127, 127] of the weight's shape."""
    q = np.asarray(q, dtype=np.float64)
    if rounding != "nearest":
        raise QuantizationError("given codes need rounding='nearest'", node=where, rule="bad-rounding")
    if q.shape != tuple(shape) or not np.all(np.isfinite(q)) or np.any(q != np.rint(q)) or np.any(np.abs(q) > QMAX):
        raise QuantizationError(f"given codes must be whole numbers in [-{QMAX}, {QMAX}] of shape {tuple(shape)}",
                                node=where, rule="bad-codes")
    return q


def _chosen_percentiles(topo: Any, percentiles: Mapping[str, Any], default: float, per_channel: bool
                        ) -> Dict[str, Any]:
    """population -> the percentile of its group (a float, or a (C,) array per channel), checked."""
    known = {pp for g in topo.groups for pp in g.populations}
    for name in percentiles:
        if name not in known:
            raise QuantizationError("no weighted population of this name to give a percentile", node=name,
                                    rule="unknown-population")
    out: Dict[str, Any] = {}
    for g in topo.groups:
        given = [percentiles[pp] for pp in g.populations if pp in percentiles]
        value: Any = default
        if given:
            if any(not np.array_equal(np.asarray(x, dtype=np.float64), np.asarray(given[0], dtype=np.float64))
                   for x in given[1:]):
                raise QuantizationError(f"populations {', '.join(g.populations)} share weights and need one percentile",
                                        node=g.populations[0], rule="group-factor-mismatch")
            arr = np.asarray(given[0], dtype=np.float64)
            if arr.ndim and not per_channel:
                raise QuantizationError("per-channel percentiles need per_channel=True", node=g.populations[0],
                                        rule="bad-percentile")
            for x in np.atleast_1d(arr):
                _check_settings(float(x), "nearest")
            value = arr if arr.ndim else float(arr)
        for pp in g.populations:
            out[pp] = value
    return out


def _codes(x: np.ndarray, rounding: str, conv: bool) -> Tuple[np.ndarray, np.ndarray]:
    """Codes for scaled weights ``x = lambda w`` and the mask of clipped / wrapped / saturated entries."""
    if rounding == "nearest":
        r = np.rint(x)
        clipped = np.abs(r) > QMAX
        return np.clip(r, -QMAX, QMAX), clipped
    t = np.trunc(x)
    if not conv:  # dense: truncate and saturate (the emulator's [inf] model of py-spinnaker2)
        return np.clip(t, -QMAX, QMAX), np.abs(t) > QMAX
    wrapped = (t > 127) | (t < -128)
    q = (np.mod(t + 128.0, 256.0) - 128.0)  # exact for |t| < 2**53
    return q, wrapped


def _compose(node: object, lam: np.ndarray) -> Any:
    """Total scale stored in metadata: this step's lambda times an earlier quantization's."""
    prev = quant_meta(node)
    total = lam if prev is None else np.asarray(prev.get("scale", 1.0), dtype=np.float64) * lam
    return total.tolist() if np.ndim(total) else float(total)


def scale_populations(graph: object, factors: Dict[str, float], *, file: Optional[str] = None) -> object:
    """Multiply populations' voltages and all their incoming weights and biases by a factor (no rounding).

    The float identity PTQ rests on: for factor > 0 the spikes do not change (up to float
    rounding; exactly for powers of two). Every population of a group (populations joined
    by shared weight nodes) must be given the same factor.

    Args:
        graph: a NIR graph (not changed).
        factors: population name -> positive factor (scalar).
    Returns:
        a new NIR graph.
    """
    out = copy.deepcopy(graph)
    flat = _flatten(out, file)
    topo = analyse(flat)
    for name, f in factors.items():
        if name not in flat.nodes or node_type(flat.nodes[name]) not in POPULATION_PARAMS:
            raise QuantizationError("not a neuron population of this graph", node=name, rule="unknown-population")
        if not (np.isfinite(f) and f > 0):
            raise QuantizationError(f"factor must be finite and > 0, got {f}", node=name, rule="bad-scale")
        if name in topo.unweighted:
            raise QuantizationError("population has no incoming weights to scale", node=name, rule="unweighted-input")
    for g in topo.groups:
        fs = {factors.get(p) for p in g.populations}
        if fs == {None}:
            continue
        if len(fs) != 1:
            raise QuantizationError(f"populations {', '.join(g.populations)} share weights and need one factor",
                                    node=g.populations[0], rule="group-factor-mismatch")
        f = np.asarray(float(fs.pop()))
        for w in g.weights:
            node = flat.nodes[w]
            node.weight = np.asarray(np.asarray(node.weight, dtype=np.float64) * f, dtype=np.asarray(node.weight).dtype)
            if node_type(node) in BIAS_TYPES and getattr(node, "bias", None) is not None:
                node.bias = np.asarray(np.asarray(node.bias, dtype=np.float64) * f, dtype=np.asarray(node.bias).dtype)
        for pp in g.populations:
            _scale_population_params(flat.nodes[pp], f, pp)
    return out


def _cast_checked(values: np.ndarray, dtype: np.dtype, param: str, where: Optional[str] = None) -> np.ndarray:
    """Cast scaled values to the parameter's dtype; a value that overflows it is a QuantizationError."""
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.asarray(values, dtype=dtype)
    if not np.all(np.isfinite(out)):
        raise QuantizationError(f"'{param}' times lambda overflows {np.dtype(dtype).name} (lambda is huge because the "
                                "incoming weights are tiny)", node=where, rule="scale-overflow",
                                hint="rescale the model so that weights are not near the float range's bottom")
    return out


def _scale_population_params(node: object, lam: np.ndarray, where: Optional[str] = None) -> None:
    """Multiply a population's voltages (threshold, reset, leak: ``POPULATION_PARAMS``) by lambda in place.

    ``lam``: a scalar, or one value per output channel broadcast over the first axis of each
    voltage (a scalar voltage becomes one per channel). Float voltages keep their dtype, others
    become float32; a value that does not fit raises QuantizationError naming ``where``.
    Used by PTQ and by the Brevitas-export reader (:mod:`harness.quantize.brevitas_nir`).
    """
    for param in POPULATION_PARAMS[node_type(node)]:
        v = getattr(node, param, None)
        if v is None:
            continue
        arr = np.asarray(v)
        dtype = arr.dtype if arr.dtype.kind == "f" else np.dtype(np.float32)
        shape = arr.shape
        if np.ndim(lam):
            shape = np.broadcast_shapes(arr.shape, (len(lam),) + (1,) * max(arr.ndim - 1, 0)) if arr.ndim else (len(lam),)
        scaled = np.broadcast_to(arr.astype(np.float64), shape) * scale_array(lam, shape)
        setattr(node, param, _cast_checked(scaled, dtype, param, where))


def quantize_ptq(graph: object, *, percentile: float = 100.0, per_channel: bool = False, rounding: str = "nearest",
                 source: "Optional[str | os.PathLike[str]]" = None,
                 percentiles: Optional[Mapping[str, "float | Sequence[float]"]] = None,
                 bias_offsets: Optional[Mapping[str, np.ndarray]] = None,
                 codes: Optional[Mapping[str, np.ndarray]] = None,
                 calibration: Optional[Mapping[str, Any]] = None) -> QuantizedGraph:
    """Quantize a float NIR graph's weights to int8 codes, scaling voltages to match.

    Args:
        graph: a ``nir.NIRGraph`` (nested graphs and dotted names are fine); not changed.
        percentile: p in (0, 100]; lambda_s = 127 / percentile_p(|incoming weights|).
        per_channel: one lambda per output channel (first axis of the population) instead of
            per population. Fails (QuantizationError) where a Flatten lies between weights and population.
        rounding: ``"nearest"`` (round, clip to [-127, 127]) or ``"truncate"`` (the vendor path:
            conv weights truncated with int8 wrap-around, dense truncated and saturated; see the
            module docstring).
        source: the file the graph was read from, for the source digest and messages.
        percentiles: population name -> the percentile of its group (or, per channel, one per
            output channel), overriding ``percentile`` there; what :mod:`harness.quantize.calibrate`
            chooses. Every population of a group must get the same value.
        bias_offsets: weight node -> an offset (float units, broadcast to the bias) added to its
            bias before scaling: bias correction (Affine/Conv only).
        codes: weight node -> integer codes (the weight's shape, within [-127, 127]) to use instead of
            rounding ``lambda w`` (``rounding="nearest"`` only): a rounding search's result.
        calibration: extra entries for the graph's ``s2gate.quant`` metadata (how the choices were made).

    Returns:
        :class:`QuantizedGraph` with the new graph and a report row per weight node.
    """
    p = _check_settings(percentile, rounding)
    file = None if source is None else os.fspath(source)
    prev_graph_meta = quant_meta(graph) or {}
    if file is not None and os.path.exists(file):
        digest = source_digest(file)
    else:
        digest = prev_graph_meta.get("source_digest") or source_digest(graph)
    out = copy.deepcopy(graph)
    flat = _flatten(out, file)
    topo = analyse(flat)
    common = {"bits": BITS, "percentile": p, "rounding": rounding, "source_digest": digest, "flow": "ptq",
              "per_channel": bool(per_channel)}
    layers: List[LayerReport] = []
    scales: Dict[str, Any] = {}
    warnings: List[str] = []
    chosen = _chosen_percentiles(topo, percentiles or {}, p, per_channel)
    offsets = dict(bias_offsets or {})
    for name in offsets:
        if name not in flat.nodes or node_type(flat.nodes[name]) not in BIAS_TYPES:
            raise QuantizationError("bias correction needs an Affine or Conv node with a bias", node=name,
                                    rule="bias-correction-target")
    for g in topo.groups:
        pg = chosen[g.populations[0]]
        lam, warn = _group_scale(flat, g, pg, per_channel)
        warnings.extend(warn)
        meta_p = {"percentile": pg.tolist() if isinstance(pg, np.ndarray) else pg}
        pop_clipped = 0
        pop_total = 0
        pop_err = 0.0
        for w in g.weights:
            node = flat.nodes[w]
            wt = np.asarray(node.weight, dtype=np.float64)
            lam_w = scale_array(lam, wt.shape)
            q, clipped = _codes(wt * lam_w, rounding, conv=node_type(node) in ("Conv1d", "Conv2d"))
            if codes is not None and w in codes:
                q = _given_codes(codes[w], wt.shape, rounding, w)
            err = np.abs(wt - q / lam_w)
            unclipped_err = err[~clipped]
            max_round = float(unclipped_err.max()) if unclipped_err.size else 0.0
            max_abs = float(err.max()) if err.size else 0.0
            node.weight = q.astype(np.float32)
            extra: Dict[str, Any] = {}
            if node_type(node) in BIAS_TYPES and getattr(node, "bias", None) is not None:
                b = np.asarray(node.bias)
                bdt = b.dtype if b.dtype.kind == "f" else np.dtype(np.float32)
                b64 = b.astype(np.float64)
                if w in offsets:
                    delta = np.asarray(offsets[w], dtype=np.float64)
                    b64 = b64 + delta
                    extra["bias_correction"] = delta.tolist() if delta.ndim else float(delta)
                bshape = b64.shape if (b64.ndim or not np.ndim(lam)) else np.shape(lam)
                node.bias = _cast_checked(np.broadcast_to(b64, bshape) * scale_array(lam, bshape), bdt, "bias", w)
            frac = float(clipped.mean()) if clipped.size else 0.0
            pop_clipped += int(clipped.sum())
            pop_total += int(clipped.size)
            pop_err = max(pop_err, max_abs)
            node.metadata = dict(node.metadata or {})
            node.metadata[META_KEY] = dict(common, **meta_p, **extra, scale=_compose(node, lam), clipped_fraction=frac,
                                           max_abs_error=max_abs, max_rounding_error=max_round,
                                           population=",".join(topo.targets[w]))
            lam_report = lam.tolist() if np.ndim(lam) else float(lam)
            layers.append(LayerReport(
                layer=w, population=",".join(topo.targets[w]), node_type=node_type(node), scale=lam_report,
                percentile=meta_p["percentile"], rounding=rounding, n_weights=int(wt.size), clipped_fraction=frac,
                max_rounding_error=max_round, max_abs_error=max_abs, bytes_float32=4 * int(wt.size),
                bytes_int8=int(wt.size), warning="; ".join(warn)))
        for pp in g.populations:
            node = flat.nodes[pp]
            _scale_population_params(node, lam, pp)
            node.metadata = dict(node.metadata or {})
            node.metadata[META_KEY] = dict(common, **meta_p, scale=_compose(node, lam),
                                           clipped_fraction=pop_clipped / pop_total if pop_total else 0.0,
                                           max_abs_error=pop_err)
            scales[pp] = lam.tolist() if np.ndim(lam) else float(lam)
    for pp in topo.unweighted:
        node = flat.nodes[pp]
        node.metadata = dict(node.metadata or {})
        node.metadata[META_KEY] = dict(common, scale=_compose(node, np.asarray(1.0)), clipped_fraction=0.0,
                                       max_abs_error=0.0)
        scales[pp] = 1.0
    out.metadata = dict(getattr(out, "metadata", None) or {})
    out.metadata[META_KEY] = {"flow": "ptq", "percentile": p, "source_digest": digest, "rounding": rounding,
                              "per_channel": bool(per_channel), "bits": BITS, **dict(calibration or {})}
    order = {name: i for i, name in enumerate(flat.order)}
    layers.sort(key=lambda r: order.get(r.layer, 0))
    return QuantizedGraph(graph=out, layers=layers, scales=scales, percentile=p, per_channel=bool(per_channel),
                          rounding=rounding, source_digest=digest, warnings=warnings)
