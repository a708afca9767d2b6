"""Loading, validating and walking NIR graphs (shared by ``reference`` and ``s2emu``).

The conventions fixed here are NIR's own, written down once:

* Shapes exclude batch and time. A node's input shape is what one sample sees at one tick.
* Several edges into one node are summed.
* Nested ``NIRGraph`` nodes are inlined; their nodes get dotted names ``parent.child``
  (a NIR node name may itself contain dots, e.g. ``lif1.lif`` in the Braille graph).
  A subgraph's own Input/Output nodes are removed and the edges through them rewired.
* Recurrence: the graph is walked depth first from its Input nodes, successors in sorted
  name order. An edge that points back to a node on the current walk (an ancestor) is a
  *back-edge*; the value it carries arrives **one tick later** (the target at tick ``t``
  sees the source's output from tick ``t-1``; zero at ``t = 0``). Every other edge is
  instantaneous. Every cycle must contain a stateful node (a neuron, I, or Delay), else
  the graph is rejected: a loop of stateless nodes has no meaning in continuous time.
* Walks against the edges ("which population feeds the Output", "which weight nodes feed a
  population") are :func:`feeding_populations` and :func:`incoming_sources`; their rules are in
  their docstrings.
"""
from __future__ import annotations

import math
import os
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Collection, Dict, Iterable, List, NamedTuple, Optional, Sequence, Set, Tuple

import numpy as np

from .errors import InvalidGraphError, UnsupportedError

#: Node types that carry state from tick to tick.
NEURON_TYPES = ("I", "IF", "LI", "LIF", "CubaLI", "CubaLIF")
STATEFUL_TYPES = NEURON_TYPES + ("Delay",)
#: Every NIR 1.0.x node type s2gate knows.
KNOWN_TYPES = (
    "Input", "Output", "Affine", "Linear", "Scale", "Conv1d", "Conv2d", "SumPool2d",
    "AvgPool2d", "Flatten", "Threshold", "Delay",
) + NEURON_TYPES

#: Parameters that each node type must carry (checked before simulation).
REQUIRED_PARAMS: Dict[str, Tuple[str, ...]] = {
    "Affine": ("weight", "bias"),
    "Linear": ("weight",),
    "Scale": ("scale",),
    "Conv1d": ("weight", "bias", "stride", "padding", "dilation", "groups"),
    "Conv2d": ("weight", "bias", "stride", "padding", "dilation", "groups"),
    "Flatten": ("start_dim", "end_dim"),
    "SumPool2d": ("kernel_size", "stride", "padding"),
    "AvgPool2d": ("kernel_size", "stride", "padding"),
    "Threshold": ("threshold",),
    "Delay": ("delay",),
    "I": ("r",),
    "IF": ("r", "v_threshold", "v_reset"),
    "LI": ("tau", "r", "v_leak"),
    "LIF": ("tau", "r", "v_leak", "v_threshold", "v_reset"),
    "CubaLI": ("tau_syn", "tau_mem", "r", "v_leak", "w_in"),
    "CubaLIF": ("tau_syn", "tau_mem", "r", "v_leak", "v_threshold", "v_reset", "w_in"),
}

#: Parameters that must be strictly positive.
POSITIVE_PARAMS = ("tau", "tau_syn", "tau_mem")
#: Parameters that must hold whole numbers (floats like 2.0 are accepted).
INT_PARAMS = ("stride", "padding", "dilation", "groups", "kernel_size", "start_dim", "end_dim", "shape", "input_shape")
#: Whole-number parameters that must be >= 1 / >= 0.
POSITIVE_INT_PARAMS = ("stride", "dilation", "groups", "kernel_size")
NON_NEGATIVE_INT_PARAMS = ("padding", "shape", "input_shape")
#: What ``nir.write`` stores for a node besides ``type`` and ``metadata`` (checked before nir builds the node,
#: because nir's constructors fail on bad values with messages that name no node).
_STORED_PARAMS: Dict[str, Tuple[str, ...]] = {
    "Input": ("shape",), "Output": ("shape",), "Flatten": ("start_dim", "end_dim", "input_type"),
    "Conv1d": REQUIRED_PARAMS["Conv1d"] + ("input_shape",), "Conv2d": REQUIRED_PARAMS["Conv2d"] + ("input_shape",),
}
#: Parameters nir fills in when a file lacks them.
_OPTIONAL_STORED = ("v_reset", "input_shape", "input_type", "start_dim", "end_dim")
#: Largest number of values one node may emit per sample per tick (beyond any SpiNNaker2 system, and
#: beyond int32 indexing); checked on declared shapes before anything is allocated.
MAX_NODE_ELEMENTS = 2 ** 31 - 1
#: Largest stride/padding/dilation/kernel/groups/dim value (int32; larger ones overflow the simulators' int64 math).
MAX_INT_PARAM = 2 ** 31 - 1

Shape = Tuple[int, ...]
Edge = Tuple[str, str]


def node_type(node: object) -> str:
    """The NIR type name of ``node`` (``"LIF"``, ``"Conv2d"``, ...)."""
    return type(node).__name__


def pair(value: object, name: str, node: str) -> Tuple[int, int]:
    """Read an int or a 2-sequence as a pair of ints (NIR stores both forms)."""
    arr = np.atleast_1d(np.asarray(value))
    if arr.size == 1:
        return int(arr[0]), int(arr[0])
    if arr.size == 2:
        return int(arr[0]), int(arr[1])
    raise InvalidGraphError(f"parameter '{name}' must be an int or a pair, got {arr.tolist()}", node=node)


@dataclass
class FlatGraph:
    """A validated NIR graph with nested subgraphs inlined.

    Attributes:
        nodes: dotted name -> NIR node (no ``NIRGraph`` nodes left).
        edges: (source, target) pairs, deduplicated, in a deterministic order.
        inputs: names of the Input nodes (sorted).
        outputs: names of the Output nodes (sorted).
        order: a topological order of all nodes when back-edges are ignored.
        back_edges: edges that close a cycle; they carry one tick of delay.
        in_shape: node -> shape of what one sample feeds it per tick (no batch, no time).
        out_shape: node -> shape of what it emits per tick.
        file: the file it was read from, if any (for messages).
    """

    nodes: Dict[str, object]
    edges: List[Edge]
    inputs: List[str]
    outputs: List[str]
    order: List[str]
    back_edges: Set[Edge]
    in_shape: Dict[str, Shape]
    out_shape: Dict[str, Shape]
    file: Optional[str] = None
    graph: object = field(default=None, repr=False)

    def predecessors(self, name: str) -> List[str]:
        """Sources of all edges into ``name`` (in edge order)."""
        return [s for s, t in self.edges if t == name]

    def successors(self, name: str) -> List[str]:
        """Targets of all edges out of ``name`` (in edge order)."""
        return [t for s, t in self.edges if s == name]

    def type_of(self, name: str) -> str:
        return node_type(self.nodes[name])

    @property
    def input_shape(self) -> Shape:
        """Shape of the (single) Input node, per sample per tick."""
        return self.out_shape[self.inputs[0]]

    @property
    def output_shape(self) -> Shape:
        return self.in_shape[self.outputs[0]]


_PROBE = """
import sys, h5py
def walk(group):
    for key in group:
        obj = group[key]
        for name in obj.attrs:
            obj.attrs[name]
        if isinstance(obj, h5py.Group):
            walk(obj)
        else:
            obj[()]
try:
    with h5py.File(sys.argv[1], "r") as f:
        walk(f)
except Exception:
    pass  # errors are the parent's to report; only a crash matters here
"""


def probe_file(path: "str | os.PathLike[str]", timeout: float = 120.0) -> None:
    """Read every dataset of an HDF5 file in a child process (about 0.3 s), so that a damaged file that
    crashes the HDF5 C library (SIGSEGV: it is not hardened against malformed files) becomes an
    :class:`InvalidGraphError` instead of killing this process."""
    import signal
    import subprocess
    import sys

    path = os.fspath(path)
    try:
        proc = subprocess.run([sys.executable, "-c", _PROBE, path], capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise InvalidGraphError(f"reading the file took more than {timeout:g} s", file=path, rule="unreadable-nir",
                                hint="the file may be damaged") from exc
    if proc.returncode < 0:
        try:
            name = signal.Signals(-proc.returncode).name
        except ValueError:
            name = f"signal {-proc.returncode}"
        raise InvalidGraphError(f"the HDF5 library crashed ({name}) reading this file", file=path, rule="damaged-hdf5",
                                hint="the file is damaged; export it again")


def load_graph(path: "str | os.PathLike[str]", isolate: bool = False) -> object:
    """Read a NIR file as ``nir.read`` does; every failure becomes one :class:`InvalidGraphError`
    (or :class:`UnsupportedError` for unknown node types).

    The raw HDF5 content is checked node by node first (missing/unknown parameters, non-numeric or
    non-finite values, parameter shapes), because nir's constructors fail on bad values with
    messages that name no node; nodes are then built without nir's type inference (shapes are
    inferred and checked by :func:`flatten_graph`, which names the node or edge). The error names
    the file and, where it can, the node, with a hint.

    ``isolate=True`` first reads the file in a child process (:func:`probe_file`, about 0.3 s): use
    it for files from outside, where a damaged file could otherwise crash the process.
    """
    import h5py

    path = os.fspath(path)
    if not os.path.exists(path):
        raise InvalidGraphError("file not found", file=path, rule="file-not-found",
                                hint="check the path; NIR files are HDF5 files written by nir.write")
    if os.path.isdir(path):
        raise InvalidGraphError("is a directory, not a NIR file", file=path, rule="not-hdf5")
    try:
        is_h5 = h5py.is_hdf5(path)
    except OSError as exc:  # unreadable
        raise InvalidGraphError(f"cannot read the file ({exc.strerror or exc})", file=path, rule="unreadable") from exc
    if not is_h5:
        raise InvalidGraphError("is not an HDF5 file, so it cannot be a NIR graph", file=path, rule="not-hdf5",
                                hint="export the model with nir.write(path, graph)")
    if isolate:
        probe_file(path)
    try:
        with h5py.File(path, "r") as f:
            if "node" not in f:
                raise InvalidGraphError("HDF5 file has no 'node' group, so it is not a NIR graph", file=path,
                                        rule="not-nir", hint="export the model with nir.write(path, graph)")
            raw = hdf2dict(f["node"])
    except InvalidGraphError:
        raise
    except Exception as exc:  # h5py raises OSError/KeyError/RuntimeError on damaged files
        text = str(exc)
        truncated = "truncated" in text or "eof" in text.lower()
        raise InvalidGraphError(f"cannot read the HDF5 content ({type(exc).__name__}: {text})".strip(), file=path,
                                rule="truncated" if truncated else "unreadable-nir",
                                hint="the file may be truncated (an interrupted copy or export); export it again") from exc
    try:
        _check_raw(raw, "")
        graph = _build_raw(raw, "")
    except (InvalidGraphError, UnsupportedError) as err:
        raise err.with_file(path)
    return graph


def hdf2dict(group: object) -> Dict[str, object]:
    """The content of a NIR HDF5 group as nested dicts (``nir.serialization.hdf2dict``)."""
    from nir.serialization import hdf2dict as _hdf2dict

    return _hdf2dict(group)


def _nir_fields(typ: str) -> Set[str]:
    import dataclasses

    import nir

    return {f.name for f in dataclasses.fields(getattr(nir, typ))}


def _check_raw(d: Dict[str, object], prefix: str) -> None:
    """Check a NIR file's raw content (from :func:`hdf2dict`) node by node, before nir builds anything.

    Every problem is reported with the dotted node name: missing ``type``, unknown types, missing or
    unknown parameters, non-numeric or non-finite values, parameters of different shapes.
    """
    import nir

    where = prefix[:-1] or None
    for key in ("nodes", "edges"):
        if key not in d:
            raise InvalidGraphError(f"graph has no '{key}' entry", node=where, rule="missing-parameter",
                                    hint="the file was not written by nir.write; export it again")
    nodes = d["nodes"]
    if not isinstance(nodes, dict):
        raise InvalidGraphError("graph 'nodes' is not a group", node=where, rule="not-nir")
    edges = np.asarray(d["edges"], dtype=object)
    if edges.size and (edges.ndim != 2 or edges.shape[1] != 2):
        raise InvalidGraphError(f"edges must be (source, target) pairs, got an array of shape {edges.shape}",
                                node=where, rule="bad-edge")
    for name in sorted(nodes):
        node = nodes[name]
        full = f"{prefix}{name}"
        if not isinstance(node, dict):
            raise InvalidGraphError("node entry is not a group", node=full, rule="not-nir")
        if "type" not in node:
            raise InvalidGraphError("node has no 'type' entry", node=full, rule="missing-parameter",
                                    hint="every NIR node stores its type name; export the graph again")
        typ = node["type"]
        if typ == "NIRGraph":
            _check_raw(node, full + ".")
            continue
        if not isinstance(typ, str) or typ not in KNOWN_TYPES:
            raise UnsupportedError(f"unknown NIR node type '{typ}'", node=full, rule="unknown-node-type",
                                   hint=f"nir {nir.__version__} knows: {', '.join(KNOWN_TYPES + ('NIRGraph',))}")
        stored = _STORED_PARAMS.get(typ, REQUIRED_PARAMS.get(typ, ()))
        for param in stored:
            if param not in node and param not in _OPTIONAL_STORED:
                raise InvalidGraphError(f"{typ} is missing parameter '{param}'", node=full, rule="missing-parameter",
                                        hint="re-export the graph with all parameters set")
        allowed = _nir_fields(typ) | set(stored) | {"type", "metadata"}
        extra = sorted(set(node) - allowed)
        if extra:
            raise InvalidGraphError(f"{typ} has unknown parameter(s) {', '.join(repr(e) for e in extra)}", node=full,
                                    rule="unknown-parameter",
                                    hint=f"a {typ} stores only {', '.join(sorted(stored))}; nir {nir.__version__} cannot read more")
        _check_values(typ, full, node)
        _check_param_shapes(typ, full, node)


def _build_raw(d: Dict[str, object], prefix: str) -> object:
    """Build NIR nodes from checked raw content, without nir's type inference (s2gate infers shapes
    itself and names the node when they do not chain)."""
    import nir

    nodes = {}
    for name, node in d["nodes"].items():
        full = f"{prefix}{name}"
        if node["type"] == "NIRGraph":
            nodes[name] = _build_raw(node, full + ".")
            continue
        try:
            nodes[name] = nir.dict2NIRNode(dict(node))
        except Exception as exc:  # nir's constructors assert and raise many kinds
            raise InvalidGraphError(f"nir cannot build this {node['type']} ({type(exc).__name__}: {exc})".strip(),
                                    node=full, rule="invalid-node", hint="check the node's parameters") from exc
    edges = [(_text(a), _text(b)) for a, b in np.asarray(d["edges"], dtype=object).reshape(-1, 2)]
    metadata = d.get("metadata", {})
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata if isinstance(metadata, dict) else {},
                        type_check=False)


def _text(value: object) -> str:
    return value.decode("utf8") if isinstance(value, bytes) else str(value)


def flatten_graph(graph: object, file: Optional[str] = None, several_inputs: bool = False) -> FlatGraph:
    """Validate ``graph`` and return it inlined, ordered and shape-checked.

    ``several_inputs``: accept more than one Input node (the emulator's lowering does: the
    SpiNNaker2 converter makes one ``spike_list`` per Input); otherwise ``several-inputs``.

    Raises:
        InvalidGraphError: no Input, missing/NaN/inf parameters, shapes that do not chain,
            edges to unknown nodes, a cycle with no stateful node.
        UnsupportedError: a node type s2gate does not know.
    """
    try:
        nodes, edges = _inline(graph, "")
        nodes, edges = _drop_dangling_io(nodes, edges)
        for name, node in nodes.items():
            _check_params(name, node)
        inputs = sorted(n for n, v in nodes.items() if node_type(v) == "Input")
        outputs = sorted(n for n, v in nodes.items() if node_type(v) == "Output")
        if not nodes:
            raise InvalidGraphError("the graph has no nodes", rule="empty-graph",
                                    hint="export a graph that has an Input, some layers and an Output")
        if not inputs:
            raise InvalidGraphError("the graph has no Input node", rule="no-input",
                                    hint="add a nir.Input node whose input_type is the shape of one sample")
        if len(inputs) > 1 and not several_inputs:
            raise UnsupportedError(f"the graph has {len(inputs)} Input nodes ({', '.join(inputs)}); s2gate runs graphs with one",
                                   node=inputs[1], rule="several-inputs", hint="merge the inputs into one Input node")
        if not outputs:
            raise InvalidGraphError("the graph has no Output node", rule="no-output", hint="add a nir.Output node")
        back = _back_edges(nodes, edges, inputs)
        order = _topo_order(nodes, edges, back)
        _check_cycles_have_state(nodes, edges, back)
        in_shape, out_shape = _infer_shapes(nodes, edges, back, order)
        _fill_types(nodes, in_shape, out_shape)
    except (InvalidGraphError, UnsupportedError) as err:
        if file is not None:
            err.with_file(file)
        raise
    return FlatGraph(nodes=nodes, edges=edges, inputs=inputs, outputs=outputs, order=order, back_edges=back,
                     in_shape=in_shape, out_shape=out_shape, file=file, graph=graph)


def _fill_types(nodes: Dict[str, object], in_shape: Dict[str, Shape], out_shape: Dict[str, Shape]) -> None:
    """Fill undefined ``input_type``/``output_type`` of nodes with the inferred shapes (what
    ``nir.NIRGraph.infer_types`` would have set; files are read without nir's type check so that
    shape errors name their node)."""
    for name, node in nodes.items():
        for attr, key, shapes in (("input_type", "input", in_shape), ("output_type", "output", out_shape)):
            types = getattr(node, attr, None)
            if isinstance(types, dict) and (not types or any(v is None for v in types.values())):
                setattr(node, attr, {key: np.array(shapes[name])})


def read_flat(path: "str | os.PathLike[str]", isolate: bool = False, several_inputs: bool = False) -> FlatGraph:
    """``load_graph`` then ``flatten_graph``: the one call both simulators use for files
    (``isolate``: see :func:`load_graph`; ``several_inputs``: see :func:`flatten_graph`)."""
    return flatten_graph(load_graph(path, isolate=isolate), file=os.fspath(path), several_inputs=several_inputs)


def _inline(graph: object, prefix: str) -> Tuple[Dict[str, object], List[Edge]]:
    """Inline nested NIRGraphs. Returns nodes (dotted names) and edges."""
    nodes: Dict[str, object] = {}
    edges: List[Edge] = []
    sub_io: Dict[str, Tuple[List[str], List[str]]] = {}
    graph_nodes = getattr(graph, "nodes", None)
    if not isinstance(graph_nodes, dict):
        raise InvalidGraphError("not a NIR graph (no 'nodes' dict)", rule="not-nir")
    for name, node in graph_nodes.items():
        full = f"{prefix}{name}"
        if node_type(node) == "NIRGraph":
            sub_nodes, sub_edges = _inline(node, full + ".")
            ins = [n for n, v in sub_nodes.items() if node_type(v) == "Input"]
            outs = [n for n, v in sub_nodes.items() if node_type(v) == "Output"]
            sub_io[full] = (ins, outs)
            nodes.update(sub_nodes)
            edges.extend(sub_edges)
        else:
            if node_type(node) not in KNOWN_TYPES:
                raise UnsupportedError(f"unknown node type '{node_type(node)}'", node=full, rule="unknown-node-type")
            nodes[full] = node
    for edge in getattr(graph, "edges", []):
        try:
            src, dst = edge
        except (TypeError, ValueError):
            raise InvalidGraphError(f"malformed edge {edge!r}", rule="bad-edge") from None
        src, dst = f"{prefix}{src}", f"{prefix}{dst}"
        if src in sub_io:
            srcs = sub_io[src][1]
        else:
            srcs = [src]
        if dst in sub_io:
            dsts = sub_io[dst][0]
        else:
            dsts = [dst]
        for s in srcs:
            for d in dsts:
                edges.append((s, d))
    # remove the subgraphs' own Input/Output nodes: connect their neighbours directly
    for sub, (ins, outs) in sub_io.items():
        for io in ins + outs:
            preds = [s for s, t in edges if t == io]
            succs = [t for s, t in edges if s == io]
            edges = [e for e in edges if io not in e]
            edges.extend((p, s) for p in preds for s in succs)
            nodes.pop(io, None)
    for s, t in edges:
        for end in (s, t):
            if end not in nodes:
                raise InvalidGraphError(f"edge {s} -> {t} names a node that does not exist: '{end}'",
                                        node=f"{s} -> {t}", rule="edge-to-unknown-node")
    seen: Set[Edge] = set()
    unique = []
    for e in edges:
        if e not in seen:
            seen.add(e)
            unique.append(e)
    return nodes, unique


def _drop_dangling_io(nodes: Dict[str, object], edges: List[Edge]) -> Tuple[Dict[str, object], List[Edge]]:
    return nodes, edges


def _check_params(name: str, node: object) -> None:
    typ = node_type(node)
    for param in REQUIRED_PARAMS.get(typ, ()):
        if getattr(node, param, None) is None:
            raise InvalidGraphError(f"{typ} is missing parameter '{param}'", node=name, rule="missing-parameter",
                                    hint="re-export the graph with all parameters set")
    _check_values(typ, name, vars(node))
    _check_param_shapes(typ, name, vars(node))
    if typ == "Delay":
        d = np.asarray(node.delay, dtype=np.float64)
        if np.any(d < 0):
            raise InvalidGraphError("Delay must be >= 0", node=name, rule="negative-delay")


def _is_text(value: object) -> bool:
    if isinstance(value, (str, bytes)):
        return True
    return isinstance(value, np.ndarray) and value.dtype.kind in "SU" and value.size <= 1


def _check_values(typ: str, name: str, params: Dict[str, object]) -> None:
    """Every parameter is numeric, finite, positive where it must be, whole where it must be."""
    for param, value in params.items():
        if param in ("metadata", "input_type", "output_type", "type", "type_check") or value is None:
            continue
        if param == "padding" and typ in ("Conv1d", "Conv2d") and _is_text(value):
            continue  # 'same' / 'valid', checked by conv_padding
        if isinstance(value, dict):
            raise InvalidGraphError(f"{typ} parameter '{param}' is a group, expected numbers", node=name,
                                    rule="wrong-dtype")
        try:
            arr = np.asarray(value)
        except Exception:  # ragged sequences
            arr = np.asarray(value, dtype=object)
        if arr.dtype.kind not in "biuf":
            shown = repr(value) if isinstance(value, (str, bytes)) else f"dtype {arr.dtype}"
            raise InvalidGraphError(f"{typ} parameter '{param}' is not numeric ({shown[:60]})", node=name,
                                    rule="wrong-dtype", hint="NIR parameters are arrays of numbers; fix the exporter")
        arr = arr.astype(np.float64)
        if not np.all(np.isfinite(arr)):
            bad = "NaN" if np.isnan(arr).any() else "inf"
            raise InvalidGraphError(f"{typ} parameter '{param}' contains {bad}", node=name, rule="non-finite-parameter",
                                    hint="fix the exported model; NaN/inf often come from a diverged training run")
        if param in POSITIVE_PARAMS and np.any(arr <= 0):
            raise InvalidGraphError(f"{typ} parameter '{param}' must be > 0 (got min {arr.min():g})", node=name,
                                    rule="non-positive-time-constant")
        if param in INT_PARAMS:
            if np.any(arr != np.round(arr)):
                raise InvalidGraphError(f"{typ} parameter '{param}' must hold whole numbers, got {arr.tolist()}",
                                        node=name, rule="non-integer-parameter")
            if param in POSITIVE_INT_PARAMS and np.any(arr < 1):
                raise InvalidGraphError(f"{typ} parameter '{param}' must be >= 1, got {arr.tolist()}", node=name,
                                        rule="non-positive-parameter")
            if param in NON_NEGATIVE_INT_PARAMS and np.any(arr < 0):
                raise InvalidGraphError(f"{typ} parameter '{param}' must be >= 0, got {arr.tolist()}", node=name,
                                        rule="negative-parameter")
            if param not in ("shape", "input_shape") and np.any(np.abs(arr) > MAX_INT_PARAM):
                # shapes get their own size check; a stride/dilation/padding/kernel beyond int32 overflows torch/numpy
                raise InvalidGraphError(f"{typ} parameter '{param}' is out of range ({np.abs(arr).max():.3g} > "
                                        f"{MAX_INT_PARAM})", node=name, rule="parameter-out-of-range")


def _check_param_shapes(typ: str, name: str, params: Dict[str, object]) -> None:
    """Neuron, Threshold, Delay and Scale parameters are elementwise: they must all have one shape."""
    if typ in NEURON_TYPES + ("Threshold", "Delay", "Scale"):
        shapes = {p: np.shape(params[p]) for p in REQUIRED_PARAMS[typ] if params.get(p) is not None}
        if len(set(shapes.values())) > 1:
            raise InvalidGraphError(f"{typ} parameters have different shapes: {shapes}", node=name, rule="param-shape-mismatch")


def _back_edges(nodes: Dict[str, object], edges: List[Edge], inputs: List[str]) -> Set[Edge]:
    succ: Dict[str, List[str]] = {n: [] for n in nodes}
    for s, t in edges:
        succ[s].append(t)
    for n in succ:
        succ[n] = sorted(set(succ[n]))
    state: Dict[str, int] = {}  # 1 on stack, 2 done
    back: Set[Edge] = set()
    roots = list(inputs) + sorted(n for n in nodes if n not in inputs)
    for root in roots:
        if root in state:
            continue
        stack: List[Tuple[str, Iterable[str]]] = [(root, iter(succ[root]))]
        state[root] = 1
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                state[node] = 2
                stack.pop()
                continue
            st = state.get(nxt)
            if st == 1:
                back.add((node, nxt))
            elif st is None:
                state[nxt] = 1
                stack.append((nxt, iter(succ[nxt])))
    return back


def _topo_order(nodes: Dict[str, object], edges: List[Edge], back: Set[Edge]) -> List[str]:
    indeg = {n: 0 for n in nodes}
    succ: Dict[str, List[str]] = {n: [] for n in nodes}
    for s, t in edges:
        if (s, t) in back:
            continue
        indeg[t] += 1
        succ[s].append(t)
    ready = sorted(n for n, d in indeg.items() if d == 0)
    order: List[str] = []
    while ready:
        n = ready.pop(0)
        order.append(n)
        for t in sorted(succ[n]):
            indeg[t] -= 1
            if indeg[t] == 0:
                ready.append(t)
        ready.sort()
    if len(order) != len(nodes):  # cannot happen after DFS back-edge removal, kept as a guard
        raise InvalidGraphError("could not order the graph", rule="unorderable-graph")
    return order


def _check_cycles_have_state(nodes: Dict[str, object], edges: List[Edge], back: Set[Edge]) -> None:
    """Every cycle must pass through a stateful node: stateless nodes alone must form a DAG."""
    stateless = {n for n, v in nodes.items() if node_type(v) not in STATEFUL_TYPES}
    sub_edges = [(s, t) for s, t in edges if s in stateless and t in stateless]
    sub_back = _back_edges({n: nodes[n] for n in stateless}, sub_edges, [])
    if sub_back:
        s, t = sorted(sub_back)[0]
        raise InvalidGraphError(f"cycle through {s} -> {t} has no neuron or Delay on it", node=f"{s} -> {t}",
                                rule="stateless-cycle", hint="a recurrent loop must pass through a neuron population")


def _as_shape(value: object) -> Optional[Shape]:
    if value is None:
        return None
    arr = np.atleast_1d(np.asarray(value))
    if arr.dtype == object or arr.size == 0:
        return None
    return tuple(int(x) for x in arr.ravel())


def _declared_in(node: object) -> Optional[Shape]:
    it = getattr(node, "input_type", None)
    if isinstance(it, dict) and it:
        return _as_shape(next(iter(it.values())))
    return None


def _declared_out(node: object) -> Optional[Shape]:
    ot = getattr(node, "output_type", None)
    if isinstance(ot, dict) and ot:
        return _as_shape(next(iter(ot.values())))
    return None


def _conv_out(size: int, kernel: int, stride: int, pad: int, dilation: int) -> int:
    return (size + 2 * pad - dilation * (kernel - 1) - 1) // stride + 1


def conv_padding(node: object, name: str, spatial: Sequence[int]) -> Tuple[int, ...]:
    """Explicit padding per spatial dim for a Conv1d/Conv2d (resolving ``'same'``/``'valid'``).

    ``'same'`` follows PyTorch: total padding ``dilation*(k-1)``; it must be even per dim
    (symmetric) here, else :class:`UnsupportedError`.
    """
    ndim = len(spatial)
    weight = np.asarray(node.weight)
    kernel = weight.shape[2:]
    dil = pair(node.dilation, "dilation", name) if ndim == 2 else (int(np.atleast_1d(node.dilation)[0]),)
    pad = node.padding
    if isinstance(pad, bytes):
        pad = pad.decode()
    if isinstance(pad, np.ndarray) and pad.dtype.kind in "SUO":
        pad = str(pad.ravel()[0] if pad.size else pad)
    if isinstance(pad, str):
        if pad == "valid":
            return (0,) * ndim
        if pad == "same":
            out = []
            for k, d in zip(kernel, dil):
                total = d * (k - 1)
                if total % 2:
                    raise UnsupportedError("'same' padding with an even kernel needs asymmetric padding", node=name,
                                           rule="asymmetric-same-padding", hint="use an odd kernel or explicit padding")
                out.append(total // 2)
            return tuple(out)
        raise InvalidGraphError(f"padding '{pad}' is not 'same', 'valid' or an int", node=name, rule="bad-padding")
    if ndim == 2:
        return pair(pad, "padding", name)
    return (int(np.atleast_1d(pad)[0]),)


def _compute_out(name: str, node: object, shape: Shape) -> Shape:
    typ = node_type(node)
    if typ in ("Input",):
        return shape
    if typ == "Output":
        return shape
    if typ in ("Affine", "Linear"):
        w = np.asarray(node.weight)
        if w.ndim != 2:
            raise UnsupportedError(f"{typ} weight must be 2-D (out, in), got shape {w.shape}", node=name, rule="weight-ndim")
        if math.prod(shape) != w.shape[1] or len(shape) != 1:
            raise InvalidGraphError(f"{typ} expects input shape ({w.shape[1]},) but receives {shape}", node=name,
                                    rule="shape-mismatch", hint="insert a Flatten or fix the weight's shape")
        if typ == "Affine" and np.shape(node.bias) != (w.shape[0],):
            raise InvalidGraphError(f"Affine bias shape {np.shape(node.bias)} does not match weight rows {w.shape[0]}",
                                    node=name, rule="shape-mismatch")
        return (w.shape[0],)
    if typ in ("Conv1d", "Conv2d"):
        nd = 1 if typ == "Conv1d" else 2
        w = np.asarray(node.weight)
        groups = int(np.asarray(node.groups).ravel()[0])
        if w.ndim != nd + 2:
            raise InvalidGraphError(f"{typ} weight must be {nd + 2}-D, got {w.shape}", node=name, rule="weight-ndim")
        if len(shape) != nd + 1 or shape[0] != w.shape[1] * groups:
            raise InvalidGraphError(f"{typ} expects {w.shape[1] * groups} input channels and {nd} spatial dims, receives {shape}",
                                    node=name, rule="shape-mismatch")
        if w.shape[0] % groups:
            raise InvalidGraphError(f"{typ} out channels {w.shape[0]} not divisible by groups {groups}", node=name, rule="bad-groups")
        if np.shape(node.bias) not in ((w.shape[0],), ()):
            raise InvalidGraphError(f"{typ} bias shape {np.shape(node.bias)} does not match {w.shape[0]} out channels",
                                    node=name, rule="shape-mismatch")
        pad = conv_padding(node, name, shape[1:])
        if nd == 2:
            stride = pair(node.stride, "stride", name)
            dil = pair(node.dilation, "dilation", name)
        else:
            stride = (int(np.atleast_1d(node.stride)[0]),)
            dil = (int(np.atleast_1d(node.dilation)[0]),)
        out = [_conv_out(s, k, st, p, d) for s, k, st, p, d in zip(shape[1:], w.shape[2:], stride, pad, dil)]
        if min(out) <= 0:
            raise InvalidGraphError(f"{typ} output would be empty for input {shape}", node=name, rule="shape-mismatch")
        return (w.shape[0], *out)
    if typ in ("SumPool2d", "AvgPool2d"):
        if len(shape) != 3:
            raise InvalidGraphError(f"{typ} expects (channels, height, width), receives {shape}", node=name, rule="shape-mismatch")
        k = pair(node.kernel_size, "kernel_size", name)
        st = pair(node.stride, "stride", name)
        p = pair(node.padding, "padding", name)
        out = [_conv_out(s, kk, ss, pp, 1) for s, kk, ss, pp in zip(shape[1:], k, st, p)]
        if min(out) <= 0:
            raise InvalidGraphError(f"{typ} output would be empty for input {shape}", node=name, rule="shape-mismatch")
        return (shape[0], *out)
    if typ == "Flatten":
        nd = len(shape)
        start = int(np.asarray(node.start_dim).ravel()[0])
        end = int(np.asarray(node.end_dim).ravel()[0])
        start = start + nd if start < 0 else start
        end = end + nd if end < 0 else end
        if not (0 <= start <= end < nd):
            raise InvalidGraphError(f"Flatten start_dim/end_dim ({node.start_dim}, {node.end_dim}) do not fit input {shape}"
                                    " (NIR counts dims without batch and time)", node=name, rule="shape-mismatch")
        return (*shape[:start], math.prod(shape[start:end + 1]), *shape[end + 1:])
    # elementwise nodes: parameters fix the shape
    param = {"Scale": "scale", "Threshold": "threshold", "Delay": "delay"}.get(typ)
    if param is None:
        param = "r" if typ in NEURON_TYPES else None
    if param is not None:
        pshape = tuple(np.shape(getattr(node, param)))
        if pshape != tuple(shape):
            if math.prod(pshape) == math.prod(shape) and len(pshape) >= 1:
                raise InvalidGraphError(f"{typ} has shape {pshape} but receives {shape} (same size, different layout)",
                                        node=name, rule="shape-mismatch", hint="insert a Flatten to match the layout")
            raise InvalidGraphError(f"{typ} has shape {pshape} but receives {shape}", node=name, rule="shape-mismatch")
        return shape
    raise UnsupportedError(f"no shape rule for node type {typ}", node=name, rule="unknown-node-type")


def _check_size(name: str, typ: str, shape: Shape) -> None:
    """A node's per-sample shape must be non-empty and not absurdly large (checked before any allocation)."""
    if any(d <= 0 for d in shape):
        raise InvalidGraphError(f"{typ} has an empty shape {shape}", node=name, rule="empty-shape",
                                hint="every layer needs at least one neuron/value")
    size = math.prod(shape)
    if size > MAX_NODE_ELEMENTS:
        raise UnsupportedError(f"{typ} would hold {size:.3g} values per sample per tick (shape {shape}); "
                               f"s2gate handles at most {MAX_NODE_ELEMENTS:.3g}", node=name, rule="shape-too-large",
                               hint="check the exported shapes; this is far beyond any SpiNNaker2 system")


def _infer_shapes(nodes: Dict[str, object], edges: List[Edge], back: Set[Edge], order: List[str]) -> Tuple[Dict[str, Shape], Dict[str, Shape]]:
    in_shape: Dict[str, Shape] = {}
    out_shape: Dict[str, Shape] = {}
    preds: Dict[str, List[str]] = {n: [] for n in nodes}
    for s, t in edges:
        preds[t].append(s)
    for name in order:
        node = nodes[name]
        typ = node_type(node)
        if typ == "Input":
            shape = _declared_in(node) or _declared_out(node)
            if shape is None:
                raise InvalidGraphError("Input has no input_type shape", node=name, rule="missing-parameter")
            _check_size(name, typ, shape)
            in_shape[name] = out_shape[name] = shape
            continue
        incoming = []
        for p in preds[name]:
            if p in out_shape:
                incoming.append((p, out_shape[p]))
        if not incoming:
            # only back-edges feed it (cannot happen for a node reachable from Input) or nothing at all
            raise InvalidGraphError(f"{typ} receives no input (not reachable from the Input)", node=name, rule="unconnected-node",
                                    hint="connect it or remove it")
        shapes = {s for _, s in incoming}
        if len(shapes) > 1:
            desc = ", ".join(f"{p}: {s}" for p, s in incoming)
            raise InvalidGraphError(f"edges into {typ} carry different shapes ({desc}); summed inputs must agree",
                                    node=name, rule="shape-mismatch")
        shape = incoming[0][1]
        declared = _declared_in(node)
        if typ in ("Conv1d", "Conv2d") and int(np.asarray(node.groups).ravel()[0]) != 1:
            declared = None  # nir 1.0.8 declares weight.shape[1] input channels, forgetting the groups
        if declared is not None and math.prod(declared) != math.prod(shape):
            p = incoming[0][0]
            raise InvalidGraphError(f"{p} emits {shape} but {name} declares input {declared}", node=f"{p} -> {name}",
                                    rule="shape-mismatch", hint="the layers' shapes do not chain")
        in_shape[name] = shape
        out_shape[name] = _compute_out(name, node, shape)
        _check_size(name, typ, out_shape[name])
    # back-edges must also agree
    for s, t in back:
        if out_shape.get(s) != in_shape.get(t):
            raise InvalidGraphError(f"recurrent edge carries {out_shape.get(s)} but {t} receives {in_shape.get(t)}",
                                    node=f"{s} -> {t}", rule="shape-mismatch")
    return in_shape, out_shape


def param(node: object, name: str, shape: Shape, dtype: "np.dtype | type" = np.float64) -> np.ndarray:
    """A node parameter as an array broadcast to ``shape`` in ``dtype``."""
    return np.broadcast_to(np.asarray(getattr(node, name), dtype=dtype), shape).copy()


def as_flat(source: object, several_inputs: bool = False) -> FlatGraph:
    """A :class:`FlatGraph` from a FlatGraph, a ``nir.NIRGraph`` or a path to a NIR file."""
    if isinstance(source, FlatGraph):
        return source
    if isinstance(source, (str, bytes, os.PathLike)):
        return read_flat(os.fsdecode(source), several_inputs=several_inputs)
    return flatten_graph(source, several_inputs=several_inputs)


# ----------------------------------------------------------------------------- walks against the edges
#
# "Which population feeds the Output" and "which weight nodes feed a population" are asked by the gate, the
# equivalence check and the quantizer; they are answered here, by one walker, so the rules cannot drift apart.
# (s2emu.lowering keeps its own direct-predecessor rule: it follows py-spinnaker2's converter.)

#: Node types whose ``weight`` maps what arrives to what the next node receives.
WEIGHT_TYPES = ("Affine", "Linear", "Conv1d", "Conv2d")
#: Neuron types that carry a ``v_threshold``, i.e. the neurons that emit spikes.
THRESHOLD_NEURON_TYPES = ("IF", "LIF", "CubaLIF")


class IncomingSources(NamedTuple):
    """Result of :func:`incoming_sources`.

    Attributes:
        weights: weight nodes reached (sorted).
        unweighted: the other nodes at which the walk stopped (sorted): nodes whose output arrives
            without passing a weight node (the Input, a neuron, a Threshold...).
    """

    weights: List[str]
    unweighted: List[str]


def _walk_back(flat: FlatGraph, starts: Iterable[str], collect: Callable[[str], bool],
               passes: Callable[[str], bool]) -> Tuple[List[str], List[str]]:
    """Breadth-first walk against the edges, from ``starts`` (visited in the given order).

    Each node is visited once, the first time it is reached (so cycles end). At a visited node: if
    ``collect(node)``, it is collected and the walk stops there; else if ``passes(node)``, the walk goes on to
    its predecessors in edge order (back-edges included); else the walk stops there and the node is recorded
    as a stop. Returns ``(collected, stops)``, each in the order visited.
    """
    collected: List[str] = []
    stops: List[str] = []
    queue = deque(starts)
    seen: Set[str] = set()
    while queue:
        name = queue.popleft()
        if name in seen:
            continue
        seen.add(name)
        if collect(name):
            collected.append(name)
        elif passes(name):
            queue.extend(flat.predecessors(name))
        else:
            stops.append(name)
    return collected, stops


def incoming_sources(flat: FlatGraph, population: str, through: Optional[Collection[str]] = None) -> IncomingSources:
    """What feeds ``population``: the weight nodes, and the sources whose output arrives unweighted.

    The rule: walk back from ``population``'s predecessors against the edges. A weight node
    (:data:`WEIGHT_TYPES`) is collected and ends the walk (the weight node before it is not reached). A node
    whose type is in ``through`` is walked through. Any other node ends the walk and is an unweighted source.
    ``through=None`` walks through every type that is not a weight node, a neuron (:data:`NEURON_TYPES`) or
    Input: SumPool2d, AvgPool2d, Flatten, Scale, Delay, Threshold (and Output). The quantizer passes its
    narrower set of linear pass-through types (no Threshold).

    Recurrence: back-edges (:attr:`FlatGraph.back_edges`) are followed like any other edge, so a recurrent
    weight (``pop -> W -> pop``) is one of ``pop``'s incoming weights. Each node is visited once, so the walk
    ends on any graph. ``population`` itself is not marked visited: a loop back to it through walked-through
    nodes only (``pop -> Delay -> pop``) ends at it, and it is then one of its own unweighted sources.

    Both lists are sorted by name.
    """
    passing: Callable[[str], bool]
    if through is None:
        passing = lambda n: flat.type_of(n) not in NEURON_TYPES and flat.type_of(n) != "Input"  # noqa: E731
    else:
        allowed = tuple(through)
        passing = lambda n: flat.type_of(n) in allowed  # noqa: E731
    weights, others = _walk_back(flat, flat.predecessors(population), lambda n: flat.type_of(n) in WEIGHT_TYPES,
                                 passing)
    return IncomingSources(weights=sorted(weights), unweighted=sorted(others))


def weight_nodes_into(flat: FlatGraph, population: str, through: Optional[Collection[str]] = None) -> List[str]:
    """The weight nodes (Affine, Linear, Conv1d, Conv2d) whose output reaches ``population``, sorted by name.

    The walk and its rule (what is walked through, what ends it, back-edges) are :func:`incoming_sources`'s.
    """
    return incoming_sources(flat, population, through).weights


def feeding_populations(flat: FlatGraph, output: Optional[str] = None, *, among: Optional[Collection[str]] = None,
                        kinds: Collection[str] = NEURON_TYPES) -> List[str]:
    """The populations whose output reaches ``output`` (default: every Output node) without passing another one.

    The rule: walk back from the predecessors of ``output`` (of each Output node in name order when ``output``
    is None) breadth first, predecessors in edge order. A node whose type is in ``kinds`` (default: every
    neuron type, :data:`NEURON_TYPES`; pass :data:`THRESHOLD_NEURON_TYPES` for spiking neurons only) is a
    population: it ends the walk and is in the result. Every other node (weight nodes, pooling, Flatten,
    Scale, Delay, Threshold...) is walked through.

    ``among`` restricts the result to those names (e.g. the nodes that were recorded): a node in ``among``
    ends the walk and is in the result whatever its type; a population not in ``among`` still ends the walk
    but is left out (what lies behind it does not feed the output directly).

    Recurrence: back-edges are followed like any other edge; each node is visited once, so the walk ends.
    Since the walk stops at populations, a loop behind the first population is never entered.

    Returns the populations in the order the walk reached them (nearest to the output first); empty when no
    population feeds the output.
    """
    if output is None:
        starts = [p for out in flat.outputs for p in flat.predecessors(out)]
    else:
        starts = flat.predecessors(output)
    kinds = tuple(kinds)
    is_population = lambda n: flat.type_of(n) in kinds  # noqa: E731
    if among is None:
        collect = is_population
    else:
        chosen = set(among)
        collect = lambda n: n in chosen  # noqa: E731
    found, _ = _walk_back(flat, starts, collect, lambda n: not is_population(n))
    return found


def feeding_population(flat: FlatGraph, output: Optional[str] = None, *, among: Optional[Collection[str]] = None,
                       kinds: Collection[str] = NEURON_TYPES) -> Optional[str]:
    """The first population :func:`feeding_populations` finds (the nearest to the output), or None if none."""
    found = feeding_populations(flat, output, among=among, kinds=kinds)
    return found[0] if found else None
