"""Lowering: a (quantized) NIR graph -> an :class:`~s2emu.network.S2Network`.

This follows py-spinnaker2's NIR converter ``s2_nir.py`` (public copy: GitHub
``SpiNNakerManchester/sPiNNIRker``, commit 47c758b2, ``spinnirker/__init__.py``;
later commented out in ``spinnirker/convert.py``), function by function:

* ``create_populations``: every Input -> one ``spike_list``; LIF/IF -> ``lif_conv2d`` if a
  *direct* predecessor is a Conv2d, else ``lif_no_delay``; CubaLIF -> ``lif_curr_exp_no_delay``
  (the converter asserts CubaLIF is not fed by a Conv2d). With ``conn_delay > 0`` the model
  stays ``lif_no_delay``: ``create_projection`` writes the delay into the dense connection
  list (``connection_list_from_dense_weights(..., delay)``); whether that model honours it is
  not public (``ConversionOptions.dense_delay``). Output populations are the neuron
  populations with an Output successor (an Input wired to the Output is not one).
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
from dataclasses import dataclass, replace
from typing import Dict, List, Optional, Tuple, Union

import numpy as np

from s2common.errors import DesignRuleError, UnsupportedError
from s2common.graph import FlatGraph, as_flat, conv_padding, pair

from .network import ConversionOptions, Population, Projection, RuleViolation, S2Network

#: NIR neuron types the converter maps to an S2 population.
NEURON_NODES = ("LIF", "IF", "CubaLIF")
#: Nodes whose spikes leave along edges (converter's SPIKE_SOURCE_NODES).
SPIKE_SOURCES = NEURON_NODES + ("Input",)
#: Nodes with weights (the converter's ``WEIGHT_NODES = (nir.Affine, nir.Conv2d, nir.Conv2d, nir.Linear)``,
#: plus Conv1d, which therefore reaches its ``raise NotImplementedError(type(node))``).
WEIGHT_NODES = ("Affine", "Linear", "Conv2d", "Conv1d")
#: Node types the lowering can place on a path (Output is accepted and ignored).
SUPPORTED_TYPES = SPIKE_SOURCES + ("Affine", "Linear", "Conv2d", "SumPool2d", "Flatten", "Output", "Conv1d")

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
    """None if the SumPool2d can be folded into a following Conv2d (kernel == stride, no padding), else why not.

    ``create_sumpool2d_conv2d_projection``: ``assert all(sumpool2d_node.kernel_size ==
    sumpool2d_node.stride)`` and ``assert nir.ir.utils._index_tuple(sumpool2d_node.padding, 0) == 0``
    (and 1). Pools into a neuron or into Flatten -> Affine have no such assert.
    """
    node = flat.nodes[name]
    k = pair(node.kernel_size, "kernel_size", name)
    s = pair(node.stride, "stride", name)
    p = pair(node.padding, "padding", name)
    if k != s or p != (0, 0):
        return (f"SumPool2d kernel {k}, stride {s}, padding {p} before a Conv2d: the converter's "
                "create_sumpool2d_conv2d_projection asserts kernel_size == stride and padding 0 "
                "(the pool becomes the conv's pool_x/pool_y)")
    return None


def pool_geometry(flat: FlatGraph, name: str) -> Tuple[Tuple[int, int], Tuple[int, int], Tuple[int, int]]:
    """(kernel, stride, padding) of a SumPool2d node, each (y, x)."""
    node = flat.nodes[name]
    return (pair(node.kernel_size, "kernel_size", name), pair(node.stride, "stride", name),
            pair(node.padding, "padding", name))


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
                                   "py-spinnaker2's converter cannot convert a Conv1d: its WEIGHT_NODES lists Conv2d "
                                   "twice and no Conv1d, so create_populations reaches `raise NotImplementedError("
                                   "type(node))`",
                                   "reshape the layer as a Conv2d with height 1"))
            elif tx == "SumPool2d":
                why = _pool_ok(flat, x)
                for y in flat.successors(x):
                    ty = t(y)
                    r2 = rec or is_back(x, y)
                    if ty == "Conv2d":
                        if why is not None:
                            covered.update((x, y))
                            problems.append(_v("unsupported-edge-pattern", f"{x} -> {y}", why,
                                               "use SumPool2d with kernel_size == stride and padding 0 before a "
                                               "Conv2d (pools into a neuron or Flatten -> Affine may overlap/pad)"))
                            continue
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
                                                   f"after SumPool2d -> Flatten an Affine must follow, got {t(z)} "
                                                   "(the converter raises NotImplementedError: \"Currently after "
                                                   "SumPool2d->Flatten, Affine has to follow!\")",
                                                   "the converter only maps SumPool2d -> Flatten -> Affine -> neuron"))
                    else:
                        covered.add(x)
                        problems.append(_v("unsupported-edge-pattern", f"{x} -> {y}",
                                           f"SumPool2d -> {ty} is not mapped: the converter raises NotImplementedError "
                                           "(\"Currently SumPool2d can only be connected to Conv2d or Flatten\"; "
                                           "a neuron population is its third branch)",
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
                                   "the converter's create_conv2d_projection asserts `delay == 0` for conv projections "
                                   f"(conn_delay={options.conn_delay})",
                                   "use conn_delay=0 for convolutional networks"))
    problems.extend(vendor_problems(flat, paths, options))
    # deduplicate, keep order
    seen = set()
    unique = []
    for v in problems:
        key = (v.rule, v.node, v.message)
        if key not in seen:
            seen.add(key)
            unique.append(v)
    return paths, unique


def vendor_problems(flat: FlatGraph, paths: List[ProjectionPath], options: ConversionOptions) -> List[RuleViolation]:
    """Graphs the converter (``spinnirker/__init__.py``, 47c758b) cannot build although the path walk accepts them.

    * ``vendor-nested-graph``: ``create_populations`` loops over ``nir_model.nodes`` and has no
      NIRGraph branch: ``raise NotImplementedError(type(node))``.
    * ``vendor-conv-dilation``: ``get_conv2d_params`` passes in_height/in_width, stride, pool and
      pad_* only; a dilation != 1 is dropped, the chip computes an undilated convolution.
    * ``vendor-conv-groups``: ``conv2d_node.weight.swapaxes(0, 1)`` hands over (C_in, C_out, kh, kw)
      of a dense convolution; a grouped kernel (C_out, C_in/groups, kh, kw) is not one.
    * ``vendor-no-weights`` (weight scaling on): ``get_max_abs_weight`` starts at ``max_weight = 0.0``
      and finds no ``WEIGHT_NODES`` predecessor, so ``w_scale = 127.0 / max_abs_weight`` raises
      ZeroDivisionError (Python float); with a percentile, ``np.percentile`` of an empty array fails.
    * ``vendor-zero-weights`` (weight scaling on): all incoming |W| (or their p-th percentile) are 0:
      ``127.0 / np.float64(0.0)`` is inf, so threshold and weights become inf/NaN.
    """
    out: List[RuleViolation] = []
    graph = getattr(flat, "graph", None)
    for name, node in (getattr(graph, "nodes", None) or {}).items():
        if type(node).__name__ == "NIRGraph":
            out.append(_v("vendor-nested-graph", name,
                          "py-spinnaker2's converter cannot convert a nested NIRGraph node: create_populations has no "
                          "branch for it and reaches `raise NotImplementedError(type(node))` (s2gate would inline it)",
                          "export the model flat (inline the subgraph's nodes into the top-level graph)"))
    for p in paths:
        if p.kind not in ("conv2d", "pool_conv2d"):
            continue
        conv = p.nodes[-1]
        node = flat.nodes[conv]
        dil = pair(getattr(node, "dilation", 1), "dilation", conv)
        if dil != (1, 1):
            out.append(_v("vendor-conv-dilation", conv,
                          f"Conv2d dilation {dil}: the converter's get_conv2d_params passes stride, padding and pool "
                          "only (no dilation), so the chip would compute an undilated convolution",
                          "use dilation 1 (e.g. a larger kernel with zeros in it)"))
        groups = int(np.asarray(getattr(node, "groups", 1)).ravel()[0])
        if groups != 1:
            out.append(_v("vendor-conv-groups", conv,
                          f"Conv2d groups={groups}: the converter hands over `weight.swapaxes(0, 1)` as a dense "
                          "(C_in, C_out, kh, kw) kernel, so a grouped kernel (C_out, C_in/groups, kh, kw) is misread",
                          "use groups=1 (expand the grouped kernel into a dense one with zeros)"))
    if options.conn_delay > 0:
        delayed = sorted({p.post for p in paths if p.kind not in ("conv2d", "pool_conv2d")})
        if delayed:
            out.append(_v("vendor-dense-delay", ", ".join(delayed),
                          f"conn_delay={options.conn_delay} goes into the dense/pool connection lists of "
                          f"{', '.join(delayed)} (create_projection: connection_list_from_dense_weights(..., delay)), "
                          "whose model stays lif_no_delay / lif_curr_exp_no_delay; whether it honours the delay is not "
                          f"public: lowered with dense_delay={options.dense_delay!r} (arrival at t + 1"
                          f"{' + ' + str(options.conn_delay) if options.dense_delay == 'honoured' else ''})",
                          "check on a board, or use conn_delay=0", severity="warning"))
    if options.scale_weights:
        for name in flat.order:
            if flat.type_of(name) not in NEURON_NODES:
                continue
            ws = [np.abs(np.asarray(flat.nodes[n].weight, dtype=np.float64)).ravel()
                  for n in _incoming_weight_nodes(flat, name)]
            if not ws:
                fed = ", ".join(f"{q} ({flat.type_of(q)})" for q in flat.predecessors(name)) or "nothing"
                how = ("computes `w_scale = 127.0 / max_abs_weight` with max_abs_weight = 0.0 and raises "
                       "ZeroDivisionError" if options.percentile >= 100 else
                       "takes np.percentile of an empty array (get_percentile_abs_weight) and raises IndexError")
                out.append(_v("vendor-no-weights", name,
                              f"no weight node feeds this population directly (fed by {fed}): with weight scaling on, "
                              f"the converter {how}",
                              "turn weight scaling off (a quantized graph: s2gate quantize, then --no-scale-weights), "
                              "or feed the population through an Affine/Conv2d"))
                continue
            allw = np.concatenate(ws)
            m = float(allw.max()) if options.percentile >= 100 else float(np.percentile(allw, options.percentile))
            if m == 0.0:
                what = "every incoming weight is 0" if allw.max() == 0 else \
                    f"the {options.percentile:g}th percentile of the incoming |W| is 0"
                out.append(_v("vendor-zero-weights", name,
                              f"{what}: the converter's `w_scale = 127.0 / max_abs_weight` is 127/0 = inf, so the "
                              "threshold and the weights become inf/NaN",
                              "remove the dead layer, give it non-zero weights, or use a higher percentile"))
    return out


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
        return 1.0  # the converter divides by zero; ``vendor-no-weights`` stops the lowering
    allw = np.concatenate(ws)
    m = float(allw.max()) if options.percentile >= 100 else float(np.percentile(allw, options.percentile))
    if m == 0.0:
        return 1.0  # all-zero weights: the converter gets inf; ``vendor-zero-weights`` stops the lowering
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


def scaled_weights(w: np.ndarray, w_scale: float, options: ConversionOptions) -> np.ndarray:
    """``W * w_scale`` as the converter computes it before the cast (float64 result).

    ``get_conv2d_params``: ``conv2d_node.weight.swapaxes(0, 1) * post_node.nir_w_scale``;
    ``create_projection``: ``affine_node.weight.T * post.nir_w_scale``; ``nir_w_scale`` is
    ``127.0 / max_abs_weight``, a numpy float64. ``options.scale_dtype="float64"`` (numpy 2,
    NEP 50: the float64 scalar promotes the float32 array) or ``"float32"`` (numpy 1.x value-based
    casting: the scalar is cast to float32, the product rounded to float32).
    """
    w = np.asarray(w)
    if options.scale_dtype == "float32" and w.dtype == np.float32:
        return (w * np.float32(w_scale)).astype(np.float64)   # the float32 product numpy 1.x computes
    return np.asarray(w, dtype=np.float64) * np.float64(w_scale)


def scale_dtype_changes(source: Source, options: ConversionOptions = ConversionOptions()) -> List[RuleViolation]:
    """Weight nodes whose int8 weights differ between ``scale_dtype="float32"`` and ``"float64"``.

    Which numpy py-spinnaker2 runs under is not public, so the cast is an option; this reports
    (severity ``"warning"``, rule ``vendor-scale-precision``) every node where the choice changes
    at least one weight, with the count and the first changed weight. Empty with scaling off.
    """
    if not (options.scale_weights or options.vendor_cast):
        return []
    flat = as_flat(source, several_inputs=True)
    paths, _ = find_projection_paths(flat, options)
    out: List[RuleViolation] = []
    seen = set()
    for p in paths:
        wname = p.weight_node
        if wname is None or (wname, p.post) in seen or flat.type_of(wname) not in ("Affine", "Linear", "Conv2d"):
            continue
        seen.add((wname, p.post))
        w_scale = weight_scale(flat, p.post, options)
        kind = "conv" if flat.type_of(wname) == "Conv2d" else "dense"
        w = flat.nodes[wname].weight
        qs = {}
        for dt in ("float32", "float64"):
            o = replace(options, scale_dtype=dt)
            qs[dt] = quantize_weights(w, w_scale, kind, wname, o, [])
        diff = qs["float32"] != qs["float64"]
        if diff.any():
            k = tuple(int(i) for i in np.argwhere(diff)[0])
            out.append(_v("vendor-scale-precision", f"{wname} -> {p.post}",
                          f"{int(diff.sum())} of {diff.size} int8 weights depend on numpy's casting of W * w_scale "
                          f"(e.g. index {k}: {int(qs['float64'][k])} in float64 (numpy 2), {int(qs['float32'][k])} in "
                          f"float32 (numpy 1.x)); lowered with scale_dtype={options.scale_dtype!r}",
                          "quantize the graph (s2gate quantize) so that the vendor receives integer weights",
                          severity="warning"))
    return out


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
    if options.scale_weights or options.vendor_cast:
        scaled = scaled_weights(w, w_scale, options)
        if kind == "conv":
            return _wrap_int8(scaled)
        return np.clip(np.trunc(scaled), -INT8_MAX, INT8_MAX).astype(np.int8)
    w = np.asarray(w, dtype=np.float64)
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
    return "lif_no_delay"  # also with conn_delay > 0: the delay goes into the connection list


def _check_options(options: ConversionOptions) -> None:
    from s2common.errors import InputDataError

    if options.integrator not in ("euler", "exp"):
        raise InputDataError(f"integrator must be 'euler' or 'exp', got {options.integrator!r}", rule="bad-option")
    if options.dense_delay not in ("honoured", "ignored"):
        raise InputDataError(f"dense_delay must be 'honoured' or 'ignored', got {options.dense_delay!r}", rule="bad-option")
    if options.scale_dtype not in ("float64", "float32"):
        raise InputDataError(f"scale_dtype must be 'float64' or 'float32', got {options.scale_dtype!r}", rule="bad-option")
    if options.pool_join not in ("per_path", "summed"):
        raise InputDataError(f"pool_join must be 'per_path' or 'summed', got {options.pool_join!r}", rule="bad-option")
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
    flat = as_flat(source, several_inputs=True)
    paths, problems = find_projection_paths(flat, options)
    problems = [p for p in problems if p.severity == "error"]

    populations: Dict[str, Population] = {}
    for inp in flat.inputs:  # create_populations: one spike_list per nir.Input
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
                                       reset=options.reset, w_scale=float(w_scale), nir_type=typ,
                                       v_scale=voltage_scale(flat.nodes[name], typ, shape, w_scale, options), **params)

    projections: List[Projection] = []
    for p in paths:
        if p.post not in populations or p.pre not in populations:
            continue
        projections.append(_projection(flat, p, scales[p.post], options, problems))

    if problems:
        lines = "; ".join(v.one_line() for v in problems)
        raise DesignRuleError(f"{len(problems)} design rule(s) fail: {lines}", violations=problems,
                              file=flat.file, rule=problems[0].rule, node=problems[0].node)

    outputs = []  # create_populations: a neuron population with an Output successor records
    for o in flat.outputs:
        for pre in flat.predecessors(o):
            if pre in populations and populations[pre].model != "spike_list" and pre not in outputs:
                outputs.append(pre)
    return S2Network(populations=populations, projections=projections, input_name=flat.inputs[0],
                     output_names=outputs, options=options, source=flat.file, input_names=list(flat.inputs))


def _projection(flat: FlatGraph, p: ProjectionPath, w_scale: float, options: ConversionOptions,
                problems: List[RuleViolation]) -> Projection:
    name = f"{p.pre}->{p.post} via {'/'.join(p.nodes)}"
    # conv paths have conn_delay 0 (rule); dense and pool connection lists carry the delay
    delay = int(options.conn_delay) if options.dense_delay == "honoured" else 0
    common = dict(name=name, pre=p.pre, post=p.post, delay=delay, nir_nodes=list(p.nodes), recurrent=p.recurrent)
    pool = None
    geometry: Dict[str, object] = {}
    if p.pool_node is not None:
        pool, stride, padding = pool_geometry(flat, p.pool_node)
        geometry = dict(pool_stride=stride, pool_padding=padding)
    if p.kind == "pool":
        return Projection(kind="pool", pool=pool, **geometry, **common)
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
    if p.kind == "pool_flatten_dense" and options.pool_join == "summed" and _overlapping(pool, geometry):
        w = _summed_pool_weights(flat, p, w_scale, options, problems)
        return Projection(kind="dense", weight=w, **common)
    w = quantize_weights(node.weight, w_scale, "dense", wname, options, problems)
    return Projection(kind="dense", weight=w, pool=pool, **geometry, **common)


def _overlapping(pool: Optional[Tuple[int, int]], geometry: Dict[str, object]) -> bool:
    """True if some input pixel lies in more than one pooling window (stride < kernel)."""
    stride = geometry.get("pool_stride") or pool
    return pool is not None and (stride[0] < pool[0] or stride[1] < pool[1])


def _summed_pool_weights(flat: FlatGraph, p: ProjectionPath, w_scale: float, options: ConversionOptions,
                         problems: List[RuleViolation]) -> np.ndarray:
    """``pool_join="summed"``: the joined float weight of (pre, post) is sum over windows of W[post, window] * w_scale,
    cast once. Returns int8 (post.size, pre.size) on the un-pooled pre map (C order)."""
    from .golden import _pool_index  # the golden model's window walk (same package)

    kernel, stride, padding = pool_geometry(flat, p.pool_node)
    pre_shape = tuple(flat.out_shape[p.pre])
    probe = Projection(name="", pre=p.pre, post=p.post, kind="pool", pool=kernel, pool_stride=stride,
                       pool_padding=padding)
    index, _ = _pool_index(pre_shape, probe)
    scaled = scaled_weights(flat.nodes[p.weight_node].weight, w_scale, options)   # (post, pooled) float64
    joined = np.zeros((scaled.shape[0], len(index)), dtype=np.float64)
    for j, windows in enumerate(index):
        for q in windows:
            joined[:, j] += scaled[:, q]
    return quantize_weights(joined, 1.0, "dense", p.weight_node, replace(options, scale_dtype="float64"), problems)


def voltage_scale(node: object, typ: str, shape: Tuple[int, ...], w_scale: float,
                  options: ConversionOptions) -> np.ndarray:
    """Chip voltage units per NIR volt, float64 (size,): the converter's ``pop.nir_v_scale``.

    ``convert_LIF`` returns ``scale = v_scale * w_scale`` with ``v_scale = 1 / r_factor``;
    ``convert_IF`` ``v_scale = 1.0 / bias_factor * w_scale`` (``bias_factor = r``);
    ``convert_CubaLIF`` ``scale = v_scale * I_scale * w_scale`` (``I_scale = 1 / w_in_factor``).
    A chip voltage ``u`` (threshold ``v_th * scale``) is ``u / scale`` NIR volts.
    """
    dt = float(options.dt)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if typ == "IF":
            scale = 1.0 / _param(node, "r", shape) * w_scale
        elif typ == "LIF":
            tau = _param(node, "tau", shape)
            g = dt / tau if options.integrator == "euler" else 1 - np.exp(-dt / tau)
            scale = 1.0 / (g * _param(node, "r", shape)) * w_scale
        else:
            tau_mem, tau_syn = _param(node, "tau_mem", shape), _param(node, "tau_syn", shape)
            if options.integrator == "euler":
                g, gs = dt / tau_mem, dt / tau_syn
            else:
                g, gs = 1 - np.exp(-dt / tau_mem), 1 - np.exp(-dt / tau_syn)
            scale = (1.0 / (g * _param(node, "r", shape))) * (1.0 / (gs * _param(node, "w_in", shape))) * w_scale
    return np.ascontiguousarray(np.asarray(scale, dtype=np.float64).reshape(-1))
