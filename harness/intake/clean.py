"""``clean``: turn a framework's NIR export into a graph ``nir.write``/``nir.read`` and the gate accept.

What the frameworks' exporters leave behind, and what is repaired (each repair is listed, printed by
``s2gate import`` and kept in ``metadata["s2gate.repairs"]``):

* torch tensors as parameters (Sinabs, Norse, Rockpool): converted to numpy arrays;
* a batch (and time) axis of size 1 in the Input/Output shapes (snnTorch, Norse: the sample's ``(1, 20)``;
  Rockpool: ``(1, 1, 1)``): stripped when only the stripped shape chains through the graph (the
  declared shape wins when it chains; a sample batch of another size is refused: export with one);
* missing shapes (``input_type`` None/empty, ``Conv2d.input_shape`` None) and neuron parameters
  stored as scalars (``tau`` of shape ``()``, which ``nir.write`` cannot store): inferred from the
  graph (the Input's shape walked through the layers, NIR's rules as in ``s2common.graph``) and
  broadcast to the layer's shape;
* declared shapes that contradict the inferred ones only by leading size-1 axes (the type-check
  failure of the NIR paper's ``lif_rockpool.nir``): replaced by the inferred ones;
* a Flatten whose ``start_dim`` counts the batch (torch's ``Flatten(start_dim=1)`` written as is)
  in front of an Affine/Linear that needs the flattened vector: ``start_dim``/``end_dim`` shifted.

Anything else that does not chain is refused with one :class:`~s2common.errors.S2GateError` line
naming the node. ``framework`` (see :mod:`harness.intake.frameworks`) sets ``s2gate.preset``,
``s2gate.dt`` and ``s2gate.framework``; for Rockpool it also reads the tick back out of the
exported ``r`` and rewrites the neuron parameters to Rockpool's voltage-jump update.
"""
from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from s2common.errors import InvalidGraphError, S2GateError, UnsupportedError

from .frameworks import framework as _framework

Shape = Tuple[int, ...]
#: parameters of neurons (and elementwise nodes) that are per element and may be stored as scalars
_ELEMENT_PARAMS = {
    "I": ("r",), "IF": ("r", "v_threshold", "v_reset"), "LI": ("tau", "r", "v_leak"),
    "LIF": ("tau", "r", "v_leak", "v_threshold", "v_reset"),
    "CubaLI": ("tau_syn", "tau_mem", "r", "v_leak", "w_in"),
    "CubaLIF": ("tau_syn", "tau_mem", "r", "v_leak", "v_threshold", "v_reset", "w_in"),
    "Scale": ("scale",), "Threshold": ("threshold",), "Delay": ("delay",),
}
_TYPE_FIELDS = ("input_type", "output_type")


@dataclass(frozen=True)
class Repair:
    """One change ``clean`` made: the node (dotted name, or ``graph``) and what was changed, in words."""

    node: str
    what: str

    def __str__(self) -> str:
        return f"{self.node}: {self.what}"


def _type_name(node: object) -> str:
    return type(node).__name__


def _is_tensor(value: object) -> bool:
    return type(value).__module__.split(".")[0] == "torch" and hasattr(value, "detach")


def _numpy(value: object) -> np.ndarray:
    return np.asarray(value.detach().cpu().numpy())


def _tensors_to_numpy(graph: object, prefix: str, repairs: List[Repair]) -> None:
    """Replace every torch tensor held by a node (parameters and shape dicts) by a numpy array, in place."""
    for name, node in graph.nodes.items():
        full = f"{prefix}{name}"
        if node is None:
            raise InvalidGraphError("the exporter left this node empty (None): it had no NIR translation for that layer",
                                    node=full, rule="untranslated-layer",
                                    hint="replace the layer by one the framework exports, or export through "
                                         "harness.intake.from_<framework>, which fills layers it can read")
        if _type_name(node) == "NIRGraph":
            _tensors_to_numpy(node, full + ".", repairs)
            continue
        changed = []
        for f in dataclasses.fields(node):
            value = getattr(node, f.name)
            if _is_tensor(value):
                setattr(node, f.name, _numpy(value))
                changed.append(f.name)
            elif isinstance(value, dict) and f.name in _TYPE_FIELDS:
                for k, v in value.items():
                    if _is_tensor(v):
                        value[k] = _numpy(v)
                        changed.append(f"{f.name}[{k}]")
        if changed:
            repairs.append(Repair(full, f"torch tensors converted to numpy arrays ({', '.join(changed)})"))


def _shape_of(value: object) -> Optional[Shape]:
    """A declared shape as a tuple, or None when missing/empty."""
    if value is None:
        return None
    arr = np.atleast_1d(np.asarray(value))
    if arr.size == 0 or arr.dtype == object:
        return None
    return tuple(int(x) for x in arr.ravel())


def _declared(node: object, field: str) -> Optional[Shape]:
    types = getattr(node, field, None)
    if isinstance(types, dict) and types:
        return _shape_of(next(iter(types.values())))
    return None


def _strip_ones(shape: Shape) -> Shape:
    while len(shape) > 1 and shape[0] == 1:
        shape = shape[1:]
    return shape


@dataclass
class _Walk:
    """The result of walking one Input shape through the graph."""

    in_shape: Dict[str, Shape]
    out_shape: Dict[str, Shape]
    flatten_shift: Dict[str, Tuple[int, int]]


def _flatten_out(shape: Shape, start: int, end: int) -> Optional[Shape]:
    nd = len(shape)
    start = start + nd if start < 0 else start
    end = end + nd if end < 0 else end
    if not 0 <= start <= end < nd:
        return None
    return (*shape[:start], math.prod(shape[start:end + 1]), *shape[end + 1:])


def _walk(nodes: Dict[str, object], edges: List[Tuple[str, str]], order: Sequence[str], back: set,
          input_shape: Shape, shift: bool = True) -> _Walk:
    """Walk ``input_shape`` through the graph by NIR's rules (``s2common.graph``), accepting scalar
    neuron parameters (broadcast later); ``shift``: a Flatten that counted the batch axis may be shifted
    (not when the Input's batch axis was stripped: one batch axis is not removed twice). Raises the
    S2GateError of the first node that does not chain."""
    from s2common.graph import _check_size, _compute_out

    preds: Dict[str, List[str]] = {n: [] for n in nodes}
    succs: Dict[str, List[str]] = {n: [] for n in nodes}
    for s, t in edges:
        if (s, t) not in back:
            preds[t].append(s)
        succs[s].append(t)
    ins: Dict[str, Shape] = {}
    outs: Dict[str, Shape] = {}
    shifts: Dict[str, Tuple[int, int]] = {}
    for name in order:
        node = nodes[name]
        typ = _type_name(node)
        if typ == "Input":
            _check_size(name, typ, tuple(input_shape))
            ins[name] = outs[name] = tuple(input_shape)
            continue
        shapes = {outs[p] for p in preds[name] if p in outs}
        if not shapes:
            raise InvalidGraphError(f"{typ} receives no input (not reachable from the Input)", node=name,
                                    rule="unconnected-node", hint="connect it or remove it")
        if len(shapes) > 1:
            raise InvalidGraphError(f"edges into {typ} carry different shapes {sorted(shapes)}", node=name,
                                    rule="shape-mismatch")
        shape = shapes.pop()
        ins[name] = shape
        if typ == "Output":
            outs[name] = shape
        elif typ in _ELEMENT_PARAMS:
            for p in _ELEMENT_PARAMS[typ]:
                value = getattr(node, p, None)
                if value is None:
                    continue
                pshape = np.shape(value)
                if math.prod(pshape) != 1 and tuple(pshape) != shape:
                    raise InvalidGraphError(f"{typ} parameter '{p}' has shape {tuple(pshape)} but the layer "
                                            f"receives {shape}", node=name, rule="shape-mismatch")
            outs[name] = shape
        elif typ == "Flatten":
            start = int(np.asarray(node.start_dim).ravel()[0])
            end = int(np.asarray(node.end_dim).ravel()[0])
            out = _flatten_out(shape, start, end)
            wants = {int(np.asarray(nodes[t].weight).shape[1]) for t in succs[name]
                     if _type_name(nodes[t]) in ("Affine", "Linear")}
            shifted = (start - 1 if start > 0 else start, end - 1 if end > 0 else end)
            if shift and len(wants) == 1 and (out is None or out != (next(iter(wants)),)) and start > 0:
                alt = _flatten_out(shape, *shifted)
                if alt == (next(iter(wants)),):
                    shifts[name] = shifted
                    out = alt
            if out is None:
                raise InvalidGraphError(f"Flatten start_dim/end_dim ({start}, {end}) do not fit input {shape}",
                                        node=name, rule="shape-mismatch")
            outs[name] = out
        else:
            outs[name] = _compute_out(name, node, shape)
        _check_size(name, typ, outs[name])  # before anything is allocated for it
    return _Walk(ins, outs, shifts)


def _input_candidates(declared: Shape) -> List[Shape]:
    """The Input's declared shape, then with one and two leading (batch, time) axes removed."""
    return [declared[k:] for k in range(min(3, len(declared)))]


def _choose_input(nodes, edges, order, back, name: str) -> Tuple[_Walk, Shape, Shape]:
    """Walk each reading of the Input's declared shape; return the walk, the shape used and the declared one.

    The declared shape wins when it chains. Otherwise the first reading with leading axes removed that
    chains is used if those axes have size 1 (an exporter's sample of one); if they do not, the shape is
    refused: an axis of size 8 may be a batch of 8 or a layer of 8, which only the user knows.
    """
    node = nodes[name]
    declared = _declared(node, "input_type") or _declared(node, "output_type")
    if declared is None:
        raise InvalidGraphError("Input has no shape (input_type is empty)", node=name, rule="missing-parameter",
                                hint="export with a sample input, or set nir.Input(input_type={'input': shape})")
    from s2common.graph import _check_size

    _check_size(name, "Input", declared)  # a size error is not a batch axis: it is reported as it is
    first_error: Optional[S2GateError] = None
    for cand in _input_candidates(declared):
        try:
            walk = _walk(nodes, edges, order, back, cand, shift=cand == declared)
        except (InvalidGraphError, UnsupportedError) as err:
            first_error = first_error or err
            continue
        stripped = declared[:len(declared) - len(cand)]
        if any(d != 1 for d in stripped):
            raise InvalidGraphError(f"Input declares {declared}; the graph chains only as {cand}, so its leading "
                                    f"axes {stripped} would be a sample batch/time of more than one", node=name,
                                    rule="sample-batch",
                                    hint="export with a sample of batch size 1 (e.g. torch.zeros(1, *input_shape))")
        return walk, cand, declared
    assert first_error is not None
    raise first_error


def _fill_shapes(nodes, walk: _Walk, input_name: str, used: Shape, declared: Shape, repairs: List[Repair]) -> None:
    """Write the walked shapes into the nodes (types, Conv input_shape, Flatten dims, broadcast parameters)."""
    if used != declared:
        repairs.append(Repair(input_name, f"batch/time axes stripped from the Input shape {declared} -> {used}"))
    for name, node in nodes.items():
        typ = _type_name(node)
        shape_in, shape_out = walk.in_shape[name], walk.out_shape[name]
        if name in walk.flatten_shift:
            start, end = walk.flatten_shift[name]
            repairs.append(Repair(name, f"Flatten start_dim/end_dim ({node.start_dim}, {node.end_dim}) counted the "
                                        f"batch axis -> ({start}, {end})"))
            node.start_dim, node.end_dim = start, end
        for p in _ELEMENT_PARAMS.get(typ, ()):
            value = getattr(node, p, None)
            if value is not None and tuple(np.shape(value)) != shape_in:
                setattr(node, p, np.broadcast_to(np.asarray(value), shape_in).copy())
                repairs.append(Repair(name, f"scalar parameter '{p}' broadcast to the layer shape {shape_in}"))
        if typ in ("Conv1d", "Conv2d") and _shape_of(getattr(node, "input_shape", None)) is None:
            node.input_shape = tuple(shape_in[1:]) if typ == "Conv2d" else int(shape_in[1])
            repairs.append(Repair(name, f"missing input_shape inferred: {node.input_shape}"))
        for field, key, shape in (("input_type", "input", shape_in), ("output_type", "output", shape_out)):
            if not hasattr(node, field):
                continue
            have = _declared(node, field)
            if have == shape:
                continue
            if have is None:
                what = f"missing {field} inferred: {shape}"
            elif (typ in ("Input", "Output") and len(have) > len(shape) and have[len(have) - len(shape):] == shape
                  and all(d == 1 for d in have[:len(have) - len(shape)])):
                what = f"batch/time axes stripped from {field} {have} -> {shape}"
            elif _strip_ones(have) == _strip_ones(shape) or (typ == "Input" and shape == used):
                what = f"{field} {have} contradicted the graph (nir.read's type check fails) -> {shape}"
            else:
                raise InvalidGraphError(f"{typ} declares {field} {have} but the graph gives it {shape}", node=name,
                                        rule="ambiguous-shape",
                                        hint="the declared and inferred shapes differ by more than batch/time axes; "
                                             "fix the export")
            setattr(node, field, {key: np.array(shape)})
            repairs.append(Repair(name, what))


def _rockpool(nodes: Dict[str, object], repairs: List[Repair]) -> float:
    """Read Rockpool's tick out of ``r = tau*exp(-dt/tau)/dt`` (rockpool/nn/modules/torch/nir.py) and rewrite
    the neurons to the update Rockpool runs: ``v = exp(-dt/tau)*v + input`` (r = 1; LIFNeuronTorch) and, for
    LIFTorch (CubaLIF), ``isyn = exp(-dt/tau_syn)*(isyn + input)``, i.e. ``w_in = exp(-dt/tau_syn)`` under the
    ``rockpool`` preset's voltage-jump input. Returns dt in seconds (one value for the whole graph)."""
    dts: Dict[str, np.ndarray] = {}
    for name, node in nodes.items():
        typ = _type_name(node)
        if typ in ("LI", "CubaLI", "I", "IF"):
            raise UnsupportedError(f"Rockpool's exporter meaning of {typ} is not read by s2gate", node=name,
                                   rule="rockpool-node", hint="export LIFNeuronTorch (LIF) or LIFTorch (CubaLIF) layers")
        if typ not in ("LIF", "CubaLIF"):
            continue
        tau = np.asarray(node.tau if typ == "LIF" else node.tau_mem, dtype=np.float64)
        r = np.asarray(node.r, dtype=np.float64)
        if np.any(r <= 0) or np.any(tau <= 0):
            raise InvalidGraphError("Rockpool export with r <= 0 or tau <= 0 carries no tick", node=name,
                                    rule="rockpool-dt")
        # r = exp(-u)/u with u = dt/tau  <=>  u + ln(u) + ln(r) = 0: Newton from the importer's u = 1/(1+r)
        u = 1.0 / (1.0 + r)
        for _ in range(60):
            u = np.maximum(u - (u + np.log(u) + np.log(r)) / (1.0 + 1.0 / u), u * 1e-3)
        dts[name] = u * tau
    if not dts:
        raise UnsupportedError("no LIF/CubaLIF in the graph, so Rockpool's tick cannot be read", node="graph",
                               rule="rockpool-dt", hint="pass the tick with --framework none and s2gate.dt metadata")
    every = np.concatenate([d.ravel() for d in dts.values()])
    dt = float(np.median(every))
    if not np.allclose(every, dt, rtol=1e-6, atol=0):
        worst = max(dts, key=lambda n: float(np.max(np.abs(dts[n] - dt))))
        raise InvalidGraphError(f"the neurons' r values encode different ticks ({every.min():.6g} to {every.max():.6g} s)",
                                node=worst, rule="rockpool-dt",
                                hint="export all Rockpool modules with the same dt")
    for name, node in nodes.items():
        typ = _type_name(node)
        if typ not in ("LIF", "CubaLIF"):
            continue
        node.r = np.ones_like(np.asarray(node.r, dtype=np.float64))
        what = f"Rockpool r = tau*exp(-dt/tau)/dt read as dt = {dt:.6g} s; r -> 1 (v = exp(-dt/tau)*v + input)"
        if typ == "CubaLIF":
            node.w_in = np.exp(-dt / np.asarray(node.tau_syn, dtype=np.float64))
            what += "; w_in -> exp(-dt/tau_syn) (Rockpool decays the new input with the synapse)"
        repairs.append(Repair(name, what))
    return dt


def clean(graph: object, framework: Optional[str] = None) -> Tuple[object, List[Repair]]:
    """Repair a framework's NIR export so that ``nir.write``, ``nir.read`` and the gate accept it.

    Args:
        graph: a ``nir.NIRGraph`` as the exporter returned it (may hold torch tensors, batch axes,
            missing shapes). It is modified in place and returned.
        framework: ``sinabs``, ``snntorch``, ``norse`` or ``rockpool`` (or None): sets
            ``metadata["s2gate.preset"]`` (the reference preset of that framework),
            ``metadata["s2gate.dt"]`` (seconds per tick) and ``metadata["s2gate.framework"]``.

    Returns:
        (graph, repairs): a type-checked ``nir.NIRGraph`` whose shapes exclude batch and time, and
        the list of :class:`Repair` made (also in ``metadata["s2gate.repairs"]``, one per line).

    Raises:
        S2GateError: one line naming the node, where the intent is not unambiguous.
    """
    import nir

    from s2common.graph import _back_edges, _inline, _topo_order, flatten_graph

    if not hasattr(graph, "nodes") or not isinstance(getattr(graph, "nodes"), dict):
        raise InvalidGraphError(f"not a NIR graph ({type(graph).__name__})", rule="not-nir",
                                hint="pass the nir.NIRGraph the exporter returned")
    fw = _framework(framework) if framework else None
    repairs: List[Repair] = []
    _tensors_to_numpy(graph, "", repairs)
    nodes, edges = _inline(graph, "")
    inputs = sorted(n for n, v in nodes.items() if _type_name(v) == "Input")
    if not nodes:
        raise InvalidGraphError("the graph has no nodes", rule="empty-graph",
                                hint="export a graph that has an Input, some layers and an Output")
    if not inputs:
        raise InvalidGraphError("the graph has no Input node", rule="no-input",
                                hint="export with a sample input so that the exporter writes a nir.Input")
    if len(inputs) > 1:
        raise UnsupportedError(f"the graph has {len(inputs)} Input nodes ({', '.join(inputs)}); s2gate runs graphs "
                               "with one", node=inputs[1], rule="several-inputs", hint="merge the inputs into one")
    back = _back_edges(nodes, edges, inputs)
    order = _topo_order(nodes, edges, back)
    walk, used, declared = _choose_input(nodes, edges, order, back, inputs[0])
    _fill_shapes(nodes, walk, inputs[0], used, declared, repairs)
    meta: Dict[str, Any] = dict(getattr(graph, "metadata", None) or {})
    if fw is not None:
        dt = _rockpool(nodes, repairs) if fw.name == "rockpool" else fw.dt
        meta.update({"s2gate.framework": fw.name, "s2gate.preset": fw.preset, "s2gate.dt": float(dt)})
    if repairs:
        meta["s2gate.repairs"] = "\n".join(str(r) for r in repairs)
    cleaned = nir.NIRGraph(nodes=graph.nodes, edges=[tuple(e) for e in graph.edges], metadata=meta, type_check=False)
    flatten_graph(cleaned)  # s2gate's own validation (an Output, no stateless loop, ...): one line naming the node
    probe = copy.deepcopy(cleaned)  # what nir.read will do; on a copy, since nir's inference adds Input/Output nodes
    try:
        probe.infer_types()
        probe.check_types()
    except Exception as exc:  # nir's type check raises ValueError with its own text
        raise InvalidGraphError(f"nir's type check still fails after clean ({exc})", rule="type-check",
                                hint="report this graph; the exporter wrote something clean does not know") from exc
    return cleaned, repairs
