"""Lowering: a (quantized) NIR graph -> an :class:`~s2emu.network.S2Network`.

This follows py-spinnaker2's NIR converter ``s2_nir.py`` (public copy: GitHub
``SpiNNakerManchester/sPiNNIRker``, commit 47c758b2, ``spinnirker/__init__.py``;
later commented out in ``spinnirker/convert.py``), function by function:

* ``create_populations``: Input -> ``spike_list``; LIF/IF -> ``lif_conv2d`` if a *direct*
  predecessor is a Conv2d, else ``lif_no_delay``; CubaLIF -> ``lif_curr_exp_no_delay``
  (the converter asserts CubaLIF is not fed by a Conv2d). s2gate uses ``lif`` (synapse
  words with 4-bit weights and a delay field) instead of ``lif_no_delay`` when
  ``conn_delay > 0``; the converter keeps ``lif_no_delay`` and passes the delay in the
  connection list, which that model does not have [inf, see s2emu/README.md].
* ``get_max_abs_weight`` / ``get_percentile_abs_weight``: one ``w_scale = 127 / m`` per
  post population, ``m`` over the |weights| of all *direct* predecessors that are weight
  nodes (Affine, Linear, Conv2d).
* ``get_accumulated_bias``: the biases of direct Affine/Conv2d predecessors (Conv2d bias
  broadcast per channel), summed.
* ``convert_LIF`` / ``convert_IF`` / ``convert_CubaLIF``: the parameter formulas below.
* ``create_projections``: the edge patterns below; ``get_conv2d_params``:
  ``(W * w_scale).astype(np.int8)`` for conv kernels (truncation toward zero; values
  outside int8 wrap, which is what the C cast does on the hosts py-spinnaker2 runs on).
  Dense weights are handed to py-spinnaker2 as floats (``connection_list_from_dense_weights(
  W.T * w_scale, delay)``); how py-spinnaker2 turns them into int8 is not public. s2gate
  truncates toward zero like the conv path and saturates at +-127 [inf].

Numbers: each parameter formula is evaluated in float64 from the NIR arrays and rounded
once to float32 (the chip's type). The converter ran under numpy 1.x, where some of these
products stayed in float32 (value-based casting), so a parameter can differ in the last
float32 bit from the vendor's; ``lif_spinnaker2.csv`` (alpha = 0.96f) agrees either way.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple, Union

import numpy as np

from s2common.errors import DesignRuleError, UnsupportedError
from s2common.graph import FlatGraph, as_flat, conv_padding, pair

from .network import ConversionOptions, Population, Projection, RuleViolation, S2Network

#: NIR neuron types the converter maps to an S2 population.
NEURON_NODES = ("LIF", "IF", "CubaLIF")
#: Nodes whose spikes leave along edges (converter's SPIKE_SOURCE_NODES).
SPIKE_SOURCES = NEURON_NODES + ("Input",)
#: Nodes with weights (converter's WEIGHT_NODES, plus Conv1d which it cannot map).
WEIGHT_NODES = ("Affine", "Linear", "Conv2d", "Conv1d")
#: Node types the lowering can place on a path (Output is accepted and ignored).
SUPPORTED_TYPES = SPIKE_SOURCES + ("Affine", "Linear", "Conv2d", "SumPool2d", "Flatten", "Output", "Conv1d")

#: Largest |weight| of the ``lif`` model's 4-bit synapse weights (used with conn_delay > 0).
LIF_DELAY_WEIGHT_MAX = 15
#: Largest |weight| of int8 synapses.
INT8_MAX = 127

Source = Union[str, "os.PathLike[str]", FlatGraph, object]


@dataclass
class ProjectionPath:
    """One synaptic path found in the graph: ``pre -> nodes... -> post``.

    Attributes:
        pre: spike source (Input or neuron node name).
        post: target neuron node name.
        nodes: the stateless NIR nodes between them, in order (e.g. ``["4", "5"]``).
        kind: ``"dense"`` | ``"conv2d"`` | ``"pool"`` | ``"pool_conv2d"`` | ``"pool_flatten_dense"``
            | ``"flatten_dense"`` (the last is the vendor-dropped pattern).
        recurrent: True if one of its edges is a back-edge of the graph.
    """

    pre: str
    post: str
    nodes: List[str]
    kind: str
    recurrent: bool = False

    @property
    def weight_node(self) -> Optional[str]:
        return self.nodes[-1] if self.kind != "pool" else None

    @property
    def pool_node(self) -> Optional[str]:
        return self.nodes[0] if self.kind.startswith("pool") else None


def _v(rule: str, node: str, message: str, hint: str = "", severity: str = "error") -> RuleViolation:
    return RuleViolation(rule=rule, node=node, message=message, hint=hint, severity=severity)


def _pool_ok(flat: FlatGraph, name: str) -> Optional[str]:
    """None if the SumPool2d can be folded (kernel == stride, no padding), else the reason."""
    node = flat.nodes[name]
    k = pair(node.kernel_size, "kernel_size", name)
    s = pair(node.stride, "stride", name)
    p = pair(node.padding, "padding", name)
    if k != s or p != (0, 0):
        return f"SumPool2d kernel {k}, stride {s}, padding {p}: only kernel == stride without padding is lowered"
    return None


def find_projection_paths(flat: FlatGraph, options: ConversionOptions = ConversionOptions()
                          ) -> Tuple[List[ProjectionPath], List[RuleViolation]]:
    """Walk the converter's edge patterns (``create_projections``) over a flattened graph.

    Returns:
        (paths, problems): every synaptic path found, and the rule violations that stop the
        graph from being lowered as py-spinnaker2 would (rule names: ``unsupported-node-type``,
        ``unsupported-edge-pattern``, ``vendor-drops-flatten-without-pool``,
        ``vendor-drops-conv1d``, ``unsupported-connection-delay``). Each names its node or edge.
    """
    paths: List[ProjectionPath] = []
    problems: List[RuleViolation] = []
    t = flat.type_of
    back = flat.back_edges
    covered: set = set()

    for name in flat.order:
        typ = t(name)
        if typ not in SUPPORTED_TYPES:
            problems.append(_v("unsupported-node-type", name,
                               f"{typ} has no SpiNNaker2 model in py-spinnaker2's converter",
                               "use LIF, IF or CubaLIF populations joined by Affine/Linear/Conv2d/SumPool2d/Flatten"))
        if typ == "Input" and len(flat.out_shape[name]) not in (1, 3):
            problems.append(_v("unsupported-edge-pattern", name,
                               f"Input shape {flat.out_shape[name]} is neither 1-D nor (C, H, W)",
                               "the converter accepts 1-D or 3-D inputs only"))

    def is_back(a: str, b: str) -> bool:
        return (a, b) in back

    def neuron_targets(via: str, chain: List[str], pre: str, kind: str, rec: bool) -> None:
        """Targets of the last weight/pool node must all be neurons (converter asserts this)."""
        for tgt in flat.successors(via):
            tt = t(tgt)
            r = rec or is_back(via, tgt)
            if tt in NEURON_NODES:
                if tt == "CubaLIF" and kind in ("conv2d", "pool_conv2d"):
                    problems.append(_v("unsupported-edge-pattern", f"{via} -> {tgt}",
                                       "a Conv2d cannot feed a CubaLIF (the converter asserts this)",
                                       "use IF or LIF after convolutions"))
                    continue
                paths.append(ProjectionPath(pre, tgt, list(chain), kind, r))
                covered.update(chain)
            elif tt in WEIGHT_NODES:
                problems.append(_v("unsupported-edge-pattern", f"{via} -> {tgt}",
                                   f"two weight layers in a row ({t(via)} -> {tt}) have no SpiNNaker2 projection",
                                   "put a neuron population between weight layers, or multiply the matrices"))
            elif tt == "Output":
                if kind != "pool":
                    problems.append(_v("unsupported-edge-pattern", f"{via} -> {tgt}",
                                       f"{t(via)} feeds the Output directly: weights must end in a neuron population",
                                       "add a neuron population (e.g. IF) after the last weight layer"))
            elif tt in SUPPORTED_TYPES:
                problems.append(_v("unsupported-edge-pattern", f"{via} -> {tgt}",
                                   f"{t(via)} -> {tt} after {pre} is not a pattern the converter maps",
                                   "supported: -> Affine/Linear -> neuron, -> [SumPool2d ->] Conv2d -> neuron, "
                                   "-> SumPool2d -> neuron, -> SumPool2d -> Flatten -> Affine -> neuron"))

    for src in flat.order:
        if t(src) not in SPIKE_SOURCES:
            continue
        for x in flat.successors(src):
            tx = t(x)
            rec = is_back(src, x)
            if tx in ("Affine", "Linear"):
                neuron_targets(x, [x], src, "dense", rec)
            elif tx == "Conv2d":
                neuron_targets(x, [x], src, "conv2d", rec)
            elif tx == "Conv1d":
                covered.add(x)
                problems.append(_v("vendor-drops-conv1d", f"{src} -> {x}",
                                   "Conv1d gets no projection in py-spinnaker2's converter (it would be silently dropped)",
                                   "reshape the layer as a Conv2d with height 1"))
            elif tx == "SumPool2d":
                why = _pool_ok(flat, x)
                for y in flat.successors(x):
                    ty = t(y)
                    r2 = rec or is_back(x, y)
                    if why is not None and ty != "Output":
                        problems.append(_v("unsupported-edge-pattern", x, why,
                                           "use SumPool2d with kernel_size == stride and padding 0"))
                        covered.add(x)
                        continue
                    if ty == "Conv2d":
                        neuron_targets(y, [x, y], src, "pool_conv2d", r2)
                    elif ty in NEURON_NODES:
                        paths.append(ProjectionPath(src, y, [x], "pool", r2))
                        covered.add(x)
                    elif ty == "Flatten":
                        for z in flat.successors(y):
                            r3 = r2 or is_back(y, z)
                            if t(z) == "Affine":
                                neuron_targets(z, [x, y, z], src, "pool_flatten_dense", r3)
                            else:
                                problems.append(_v("unsupported-edge-pattern", f"{y} -> {z}",
                                                   f"after SumPool2d -> Flatten an Affine must follow, got {t(z)}",
                                                   "the converter only maps SumPool2d -> Flatten -> Affine -> neuron"))
                    elif ty == "Output":
                        pass
                    else:
                        problems.append(_v("unsupported-edge-pattern", f"{x} -> {y}",
                                           f"SumPool2d -> {ty} is not mapped (only Conv2d, a neuron or Flatten may follow)",
                                           "follow SumPool2d with Conv2d, a neuron population or Flatten -> Affine"))
            elif tx == "Flatten":
                for z in flat.successors(x):
                    r3 = rec or is_back(x, z)
                    if t(z) in ("Affine", "Linear"):
                        before = len(paths)
                        neuron_targets(z, [x, z], src, "flatten_dense", r3)
                        for p in paths[before:]:
                            problems.append(_v("vendor-drops-flatten-without-pool", f"{src} -> {x} -> {z} -> {p.post}",
                                               "py-spinnaker2's converter makes no projection for neuron -> Flatten -> "
                                               f"{t(z)} without a SumPool2d: on the chip {p.post} would get no input from {src}",
                                               "insert a SumPool2d with kernel 1 before the Flatten, or flatten in the "
                                               "weight layer (reshape the Affine)"))
                    elif t(z) != "Output":
                        problems.append(_v("unsupported-edge-pattern", f"{x} -> {z}",
                                           f"Flatten -> {t(z)} after {src} is not mapped",
                                           "flatten only in front of an Affine"))
            elif tx in NEURON_NODES:
                problems.append(_v("unsupported-edge-pattern", f"{src} -> {x}",
                                   "a neuron population feeds another directly; SpiNNaker2 needs weights between them",
                                   "insert an Affine/Linear (identity) or Conv2d between the populations"))
            elif tx == "Output":
                pass
            elif tx in SUPPORTED_TYPES:
                problems.append(_v("unsupported-edge-pattern", f"{src} -> {x}",
                                   f"{t(src)} -> {tx} is not a pattern the converter maps", ""))

    for name in flat.order:
        typ = t(name)
        if typ in ("Affine", "Linear", "Conv2d", "SumPool2d", "Flatten") and name not in covered:
            if any(name in p.node.split(" -> ") for p in problems):
                continue  # already reported as part of a pattern
            preds = flat.predecessors(name)
            problems.append(_v("unsupported-edge-pattern", name,
                               f"{typ} is not on any path from a spike source to a neuron population "
                               f"(fed by {', '.join(f'{p} ({t(p)})' for p in preds) or 'nothing'})",
                               "every weight/pool layer must sit between a neuron population (or the Input) and a "
                               "neuron population"))

    if options.conn_delay > 0:
        for p in paths:
            if p.kind in ("conv2d", "pool_conv2d"):
                problems.append(_v("unsupported-connection-delay", f"{p.pre} -> {p.post}",
                                   f"conv projections have no connection delay in py-spinnaker2 (conn_delay={options.conn_delay})",
                                   "use conn_delay=0 for convolutional networks"))
            if t(p.post) == "CubaLIF":
                problems.append(_v("unsupported-connection-delay", p.post,
                                   f"CubaLIF maps to lif_curr_exp_no_delay, which has no delays (conn_delay={options.conn_delay})",
                                   "use conn_delay=0"))
    # deduplicate, keep order
    seen = set()
    unique = []
    for v in problems:
        key = (v.rule, v.node, v.message)
        if key not in seen:
            seen.add(key)
            unique.append(v)
    return paths, unique


# ----------------------------------------------------------------------------------------
# parameters
# ----------------------------------------------------------------------------------------

def _param(node: object, name: str, shape: Tuple[int, ...]) -> np.ndarray:
    """A neuron parameter as float64 of the population shape."""
    arr = np.asarray(getattr(node, name), dtype=np.float64)
    size = int(np.prod(shape))
    if arr.size == size:
        return arr.reshape(shape)
    return np.broadcast_to(arr, shape).copy()


def _incoming_weight_nodes(flat: FlatGraph, post: str) -> List[str]:
    return [p for p in flat.predecessors(post) if flat.type_of(p) in ("Affine", "Linear", "Conv2d")]


def weight_scale(flat: FlatGraph, post: str, options: ConversionOptions) -> float:
    """``w_scale`` of a post population: 127 / max|W| or 127 / percentile_p(|W|); 1 when off.

    As ``create_populations`` with ``get_max_abs_weight`` / ``get_percentile_abs_weight``.
    """
    if not options.scale_weights:
        return 1.0
    ws = [np.abs(np.asarray(flat.nodes[n].weight, dtype=np.float64)).ravel() for n in _incoming_weight_nodes(flat, post)]
    if not ws:
        return 1.0
    allw = np.concatenate(ws)
    m = float(allw.max()) if options.percentile >= 100 else float(np.percentile(allw, options.percentile))
    if m == 0.0:
        return 1.0  # all-zero weights: nothing to scale (the converter would divide by zero)
    return 127.0 / m


def accumulated_bias(flat: FlatGraph, post: str, shape: Tuple[int, ...]) -> np.ndarray:
    """Sum of direct Affine/Conv2d predecessors' biases, in the post shape (``get_accumulated_bias``)."""
    bias = np.zeros(shape, dtype=np.float64)
    for p in flat.predecessors(post):
        node = flat.nodes[p]
        typ = flat.type_of(p)
        if typ == "Affine":
            bias = bias + np.asarray(node.bias, dtype=np.float64).reshape(shape)
        elif typ == "Conv2d":
            b = np.asarray(node.bias, dtype=np.float64)
            if b.ndim == 0:
                b = np.full(shape[0], float(b))
            bias = bias + b[:, None, None]
    return bias


def neuron_parameters(node: object, typ: str, shape: Tuple[int, ...], bias: np.ndarray, w_scale: float,
                      options: ConversionOptions) -> Dict[str, np.ndarray]:
    """The converter's ``convert_LIF`` / ``convert_IF`` / ``convert_CubaLIF`` as float32 arrays (flattened).

    Forward Euler ("euler"): alpha = 1 - dt/tau, r_factor = dt/tau * r, v_leak_factor = dt/tau.
    Exponential Euler ("exp"): alpha = exp(-dt/tau), r_factor = (1 - exp(-dt/tau)) * r.
    LIF: scale = w_scale / r_factor; threshold = v_th * scale;
         i_offset = v_leak_factor * v_leak * scale + bias * w_scale.
    IF:  alpha = 1; threshold = v_th * w_scale / r; i_offset = bias * w_scale.
    CubaLIF: w_in_factor = dt/tau_syn * w_in (exp: (1 - exp(-dt/tau_syn)) * w_in);
         scale = w_scale / (r_factor * w_in_factor); exc_decay = inh_decay = 1 - dt/tau_syn (exp:
         exp(-dt/tau_syn)); i_offset = v_leak_factor * v_leak * scale + bias * w_in / w_in_factor * w_scale.
    v_reset = 0 (the converter ignores NIR's v_reset).

    ``r = 0`` or ``w_in = 0`` divide by zero, as in the converter: the result is inf/NaN (no
    numpy warning), which the design rule ``non-finite-parameter`` reports with the node's name.
    """
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return _neuron_parameters(node, typ, shape, bias, w_scale, options)


def _neuron_parameters(node: object, typ: str, shape: Tuple[int, ...], bias: np.ndarray, w_scale: float,
                       options: ConversionOptions) -> Dict[str, np.ndarray]:
    dt = float(options.dt)
    def f32(a: np.ndarray) -> np.ndarray:
        # a value beyond float32 becomes inf (IEEE); the rule ``non-finite-parameter`` reports it
        with np.errstate(over="ignore", invalid="ignore"):
            return np.ascontiguousarray(np.asarray(a, dtype=np.float64).reshape(-1).astype(np.float32))

    size = int(np.prod(shape))
    out: Dict[str, np.ndarray] = {}
    if typ == "IF":
        r = _param(node, "r", shape)
        v_scale = 1.0 / r * w_scale
        out["threshold"] = f32(_param(node, "v_threshold", shape) * v_scale)
        out["alpha_decay"] = f32(np.ones(shape))
        out["i_offset"] = f32(bias * w_scale)
    elif typ == "LIF":
        tau = _param(node, "tau", shape)
        r = _param(node, "r", shape)
        if options.integrator == "euler":
            r_factor = (dt / tau) * r
            v_leak_factor = dt / tau
            alpha = 1 - dt / tau
        else:
            r_factor = (1 - np.exp(-dt / tau)) * r
            v_leak_factor = 1 - np.exp(-dt / tau)
            alpha = np.exp(-dt / tau)
        scale = (1.0 / r_factor) * w_scale
        out["threshold"] = f32(_param(node, "v_threshold", shape) * scale)
        out["alpha_decay"] = f32(alpha)
        out["i_offset"] = f32(v_leak_factor * _param(node, "v_leak", shape) * scale + bias * w_scale)
    elif typ == "CubaLIF":
        tau_mem = _param(node, "tau_mem", shape)
        tau_syn = _param(node, "tau_syn", shape)
        r = _param(node, "r", shape)
        w_in = _param(node, "w_in", shape)
        if options.integrator == "euler":
            r_factor = (dt / tau_mem) * r
            w_in_factor = (dt / tau_syn) * w_in
            v_leak_factor = dt / tau_mem
            syn_decay = 1 - dt / tau_syn
            alpha = 1 - dt / tau_mem
        else:
            r_factor = (1 - np.exp(-dt / tau_mem)) * r
            w_in_factor = (1 - np.exp(-dt / tau_syn)) * w_in
            v_leak_factor = 1 - np.exp(-dt / tau_mem)
            syn_decay = np.exp(-dt / tau_syn)
            alpha = np.exp(-dt / tau_mem)
        v_scale = 1.0 / r_factor
        i_scale = 1.0 / w_in_factor
        scale = v_scale * i_scale * w_scale
        out["threshold"] = f32(_param(node, "v_threshold", shape) * scale)
        out["alpha_decay"] = f32(alpha)
        out["exc_decay"] = f32(syn_decay)
        out["inh_decay"] = f32(syn_decay)
        out["i_offset"] = f32(v_leak_factor * _param(node, "v_leak", shape) * scale + bias * w_in * i_scale * w_scale)
    else:  # pragma: no cover - guarded by the caller
        raise UnsupportedError(f"no S2 parameters for {typ}")
    out["v_reset"] = np.zeros(size, dtype=np.float32)
    return out


# ----------------------------------------------------------------------------------------
# weights
# ----------------------------------------------------------------------------------------

def _wrap_int8(x: np.ndarray) -> np.ndarray:
    """Truncate toward zero, then keep the low 8 bits (two's complement): the C cast."""
    t = np.trunc(x).astype(np.int64)
    return (((t + 128) % 256) - 128).astype(np.int8)


def quantize_weights(w: np.ndarray, w_scale: float, kind: str, node: str, options: ConversionOptions,
                     problems: List[RuleViolation]) -> np.ndarray:
    """Float NIR weights -> int8 as the converter / py-spinnaker2 would.

    * ``scale_weights`` on: conv ``(W * w_scale).astype(np.int8)`` (truncate, wrap); dense:
      truncate, saturate at +-127 [inf].
    * off: the weights must already be integers in [-127, 127] (a quantized NIR graph); else a
      ``weight-not-integer`` / ``weight-int8-range`` violation is appended, unless
      ``options.vendor_cast`` asks for the vendor's cast of float weights (as ``lif_spinnaker2.py``
      relied on: 102.02 -> 102).
    """
    w = np.asarray(w, dtype=np.float64)
    if options.scale_weights or options.vendor_cast:
        scaled = w * w_scale
        if kind == "conv":
            return _wrap_int8(scaled)
        return np.clip(np.trunc(scaled), -INT8_MAX, INT8_MAX).astype(np.int8)
    if not np.all(w == np.round(w)):
        bad = w[w != np.round(w)]
        problems.append(_v("weight-not-integer", node,
                           f"{bad.size} weights are not integers (e.g. {bad.ravel()[0]:g}) and weight scaling is off",
                           "quantize the graph first (s2gate quantize) or turn weight scaling on"))
    if np.abs(w).max(initial=0) > INT8_MAX:
        problems.append(_v("weight-int8-range", node,
                           f"weights reach {np.abs(w).max():g}, outside int8 [-127, 127]",
                           "re-quantize with 8 bits, or turn weight scaling on"))
    return np.clip(np.round(w), -INT8_MAX, INT8_MAX).astype(np.int8)


# ----------------------------------------------------------------------------------------
# lower
# ----------------------------------------------------------------------------------------

def _model_for(flat: FlatGraph, name: str, options: ConversionOptions) -> str:
    typ = flat.type_of(name)
    if typ == "Input":
        return "spike_list"
    if typ == "CubaLIF":
        return "lif_curr_exp_no_delay"
    if any(flat.type_of(p) == "Conv2d" for p in flat.predecessors(name)):
        return "lif_conv2d"
    return "lif" if options.conn_delay > 0 else "lif_no_delay"


def _check_options(options: ConversionOptions) -> None:
    from s2common.errors import InputDataError

    if options.integrator not in ("euler", "exp"):
        raise InputDataError(f"integrator must be 'euler' or 'exp', got {options.integrator!r}", rule="bad-option")
    if options.reset not in ("subtract", "to_v_reset"):
        raise InputDataError(f"reset must be 'subtract' or 'to_v_reset', got {options.reset!r}", rule="bad-option")
    if not (options.dt > 0):
        raise InputDataError(f"dt must be > 0, got {options.dt}", rule="bad-option")
    if int(options.conn_delay) != options.conn_delay or not 0 <= options.conn_delay <= 7:
        raise InputDataError(f"conn_delay must be an integer in [0, 7] (3-bit delay field), got {options.conn_delay}",
                             rule="bad-option")
    if not 0 < options.percentile <= 100:
        raise InputDataError(f"percentile must be in (0, 100], got {options.percentile}", rule="bad-option")


def lower(source: Source, options: ConversionOptions = ConversionOptions()) -> S2Network:
    """Lower a NIR graph (object, :class:`FlatGraph` or file path) to an :class:`S2Network`.

    Raises:
        DesignRuleError: the graph uses patterns or node types the converter cannot map, or
            weights that do not fit (``violations`` lists every problem, each naming its node).
        InvalidGraphError / UnsupportedError: from reading and validating the graph.
    """
    _check_options(options)
    flat = as_flat(source)
    paths, problems = find_projection_paths(flat, options)
    problems = [p for p in problems if p.severity == "error"]

    populations: Dict[str, Population] = {}
    inp = flat.inputs[0]
    populations[inp] = Population(name=inp, model="spike_list", shape=tuple(flat.out_shape[inp]), nir_type="Input")
    scales: Dict[str, float] = {}
    for name in flat.order:
        typ = flat.type_of(name)
        if typ not in NEURON_NODES:
            continue
        shape = tuple(flat.in_shape[name])
        w_scale = weight_scale(flat, name, options)
        scales[name] = w_scale
        bias = accumulated_bias(flat, name, shape)
        params = neuron_parameters(flat.nodes[name], typ, shape, bias, w_scale, options)
        populations[name] = Population(name=name, model=_model_for(flat, name, options), shape=shape,
                                       reset=options.reset, w_scale=float(w_scale), nir_type=typ, **params)

    projections: List[Projection] = []
    for p in paths:
        if p.post not in populations or p.pre not in populations:
            continue
        projections.append(_projection(flat, p, scales[p.post], options, problems))

    if options.conn_delay > 0:
        for proj in projections:
            if populations[proj.post].model == "lif" and proj.weight is not None and \
                    np.abs(proj.weight.astype(np.int32)).max(initial=0) > LIF_DELAY_WEIGHT_MAX:
                problems.append(_v("weight-int4-range", proj.nir_nodes[-1],
                                   f"weights reach {np.abs(proj.weight.astype(np.int32)).max()}, but the 'lif' model "
                                   f"(used for conn_delay={options.conn_delay}) has 4-bit weights in [-15, 15]",
                                   "quantize to 4 bits, or use conn_delay=0 (lif_no_delay has int8 weights)"))

    if problems:
        lines = "; ".join(v.one_line() for v in problems)
        raise DesignRuleError(f"{len(problems)} design rule(s) fail: {lines}", violations=problems,
                              file=flat.file, rule=problems[0].rule, node=problems[0].node)

    outputs = []
    for o in flat.outputs:
        for pre in flat.predecessors(o):
            if pre in populations and pre not in outputs:
                outputs.append(pre)
    return S2Network(populations=populations, projections=projections, input_name=inp, output_names=outputs,
                     options=options, source=flat.file)


def _projection(flat: FlatGraph, p: ProjectionPath, w_scale: float, options: ConversionOptions,
                problems: List[RuleViolation]) -> Projection:
    name = f"{p.pre}->{p.post} via {'/'.join(p.nodes)}"
    common = dict(name=name, pre=p.pre, post=p.post, delay=int(options.conn_delay), nir_nodes=list(p.nodes),
                  recurrent=p.recurrent)
    pool = None
    if p.pool_node is not None:
        pool = pair(flat.nodes[p.pool_node].kernel_size, "kernel_size", p.pool_node)
    if p.kind == "pool":
        return Projection(kind="pool", pool=pool, **common)
    wname = p.weight_node
    node = flat.nodes[wname]
    if p.kind in ("conv2d", "pool_conv2d"):
        w = quantize_weights(node.weight, w_scale, "conv", wname, options, problems)
        conv_in = flat.in_shape[wname]
        return Projection(kind="conv2d", weight=w, pool=pool,
                          stride=pair(node.stride, "stride", wname),
                          padding=tuple(conv_padding(node, wname, conv_in[1:])),
                          dilation=pair(node.dilation, "dilation", wname),
                          groups=int(np.asarray(node.groups).ravel()[0]), **common)
    w = quantize_weights(node.weight, w_scale, "dense", wname, options, problems)
    return Projection(kind="dense", weight=w, pool=pool, **common)
