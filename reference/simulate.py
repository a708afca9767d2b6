"""``simulate``: run a NIR graph tick by tick on a batch of inputs, record what was asked.

The walk (see ``reference/README.md`` for the full semantics):

* Each edge carries its source's output of the same tick (delay 0) or of the previous tick
  (delay 1). Delay 1: back-edges (s2common's rule), and with ``projection_latency=1`` every
  edge into a neuron; a back-edge then keeps its tick only if the loop it closes has no
  neuron input on it (a loop through a Delay node alone).
* Nodes run in a topological order of the delay-0 edges; a node's input is the sum of its
  incoming edges, in edge order.
* Before t = 0 the network is at rest: stateful nodes emit their initial value (no spikes;
  I/LI/CubaLI their initial voltage; Delay 0) and stateless nodes what that gives them (an
  Affine emits its bias). Delay-1 edges read these values at t = 0.
"""
from __future__ import annotations

import contextlib
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Set, Tuple

import numpy as np

from s2common.errors import InputDataError
from s2common.graph import NEURON_TYPES, STATEFUL_TYPES, FlatGraph, as_flat
from s2common.recording import Recording

from .discretisation import PRESETS, Discretisation, resolve
from .neurons import fold_bias, make_stateful
from .ops import make_op, torch_single_thread

Edge = Tuple[str, str]
SPIKING_TYPES = ("IF", "LIF", "CubaLIF", "Threshold")


def edge_delays(flat: FlatGraph, latency: int) -> Dict[Edge, int]:
    """Ticks of delay (0 or 1) each edge carries, by the rule in the module docstring."""
    delays = {e: 0 for e in flat.edges}
    if latency == 0:
        for e in flat.back_edges:
            delays[e] = 1
        return delays
    for s, t in flat.edges:
        if flat.type_of(t) in NEURON_TYPES:
            delays[(s, t)] = 1
    instant: Dict[str, List[str]] = {n: [] for n in flat.nodes}
    for (s, t), d in delays.items():
        if d == 0:
            instant[s].append(t)
    for s, t in flat.back_edges:
        if delays[(s, t)] == 0 and _reaches(instant, t, s):
            delays[(s, t)] = 1
    return delays


def _reaches(succ: Mapping[str, List[str]], start: str, goal: str) -> bool:
    seen, stack = {start}, [start]
    while stack:
        n = stack.pop()
        if n == goal:
            return True
        for m in succ[n]:
            if m not in seen:
                seen.add(m)
                stack.append(m)
    return False


def run_order(flat: FlatGraph, delays: Mapping[Edge, int]) -> List[str]:
    """Topological order of the delay-0 edges, ties broken by ``flat.order``."""
    rank = {n: i for i, n in enumerate(flat.order)}
    indeg = {n: 0 for n in flat.nodes}
    succ: Dict[str, List[str]] = {n: [] for n in flat.nodes}
    for (s, t), d in delays.items():
        if d == 0:
            indeg[t] += 1
            succ[s].append(t)
    ready = sorted((n for n, k in indeg.items() if k == 0), key=rank.__getitem__)
    order: List[str] = []
    while ready:
        n = ready.pop(0)
        order.append(n)
        for t in succ[n]:
            indeg[t] -= 1
            if indeg[t] == 0:
                ready.append(t)
        ready.sort(key=rank.__getitem__)
    assert len(order) == len(flat.nodes), "delay-0 edges form a cycle"  # excluded by edge_delays
    return order


def _check_inputs(inputs: object, flat: FlatGraph, dtype: np.dtype) -> np.ndarray:
    expected = tuple(flat.input_shape)
    want = f"(batch, time, {', '.join(str(s) for s in expected)})"
    try:
        arr = np.asarray(inputs)
    except Exception as exc:  # ragged lists and the like
        raise InputDataError(f"inputs cannot be read as an array ({exc})", node=flat.inputs[0],
                             hint=f"pass an array of shape {want}") from None
    if arr.dtype.kind not in "biuf":
        raise InputDataError(f"inputs have dtype {arr.dtype}, expected bool, int or float", node=flat.inputs[0],
                             hint=f"pass a numeric array of shape {want}")
    if arr.ndim != 2 + len(expected) or tuple(arr.shape[2:]) != expected:
        raise InputDataError(f"inputs have shape {arr.shape}, expected {want}", node=flat.inputs[0],
                             rule="input-shape", hint="NIR shapes exclude batch and time; add the batch and time axes in front")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise InputDataError(f"inputs have shape {arr.shape}: batch and time must be at least 1", node=flat.inputs[0],
                             rule="input-shape", hint=f"pass an array of shape {want}")
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        bad = "NaN" if np.isnan(arr).any() else "inf"
        raise InputDataError(f"inputs contain {bad}", node=flat.inputs[0], rule="non-finite-input",
                             hint="clean the input data; spikes are 0/1, currents must be finite")
    return arr


def _record_set(record: object, flat: FlatGraph) -> Set[str]:
    if record is None:
        return set()
    if isinstance(record, str):
        if record == "all":
            return set(flat.nodes)
        record = [record]
    names = set()
    for name in record:  # type: ignore[union-attr]
        if name not in flat.nodes:
            raise InputDataError(f"cannot record unknown node '{name}'", node=str(name), rule="unknown-node",
                                 hint=f"nodes are: {', '.join(sorted(flat.nodes))}")
        names.add(name)
    return names


def _preset_name(preset: object, disc: Discretisation) -> str:
    if isinstance(preset, str):
        return preset if PRESETS.get(preset) == disc else f"{preset}+options"
    for name, p in PRESETS.items():
        if p == disc:
            return name
    return "custom"


def simulate(graph: object, inputs: "np.ndarray | Sequence", *, preset: "str | Discretisation" = "nir",
             options: Optional[Mapping[str, Any]] = None, dtype: Any = np.float64,
             record: "None | str | Iterable[str]" = None, dt: Optional[float] = None) -> Recording:
    """Run ``graph`` on ``inputs`` and return a :class:`~s2common.recording.Recording`.

    Args:
        graph: a ``nir.NIRGraph``, an :class:`s2common.graph.FlatGraph` or a path to a NIR file.
        inputs: array ``(batch, time, *input_shape)`` (bool spikes, ints or floats; NIR shapes
            exclude batch and time). Each value is the Input node's output for that tick.
        preset: a name in :data:`reference.PRESETS` or a :class:`Discretisation`.
        options: overrides of single :class:`Discretisation` fields, e.g. ``{"reset": "subtract"}``.
        dtype: ``np.float64`` (default) or ``np.float32``: the arithmetic of the whole run.
        record: None -> spikes of every spiking node (IF, LIF, CubaLIF, Threshold; the Input too if
            its values are 0/1) and ``"output"`` of the Output node(s); a list of node names or
            ``"all"`` -> also ``"v"`` (after reset) of those neurons, ``"i"`` of Cuba nodes, and
            ``"output"`` of the other named nodes.
        dt: overrides the preset's tick (seconds).

    Returns:
        Recording with ``dt`` and arrays ``(batch, time, *node_shape)``; spikes are bool, the
        rest in ``dtype``. ``meta`` holds the preset, every option and the dtype.

    Raises:
        InvalidGraphError / UnsupportedError: the graph (from s2common's checks).
        InputDataError: inputs of the wrong shape or dtype, NaN/inf inputs, unknown preset,
            option or node name.
    """
    flat = as_flat(graph)
    disc = resolve(preset, options, dt)
    dt_ = np.dtype(dtype)
    if dt_ not in (np.dtype(np.float64), np.dtype(np.float32)):
        raise InputDataError(f"dtype {dt_} is not supported", rule="bad-option", hint="use numpy.float64 or numpy.float32")
    arr = _check_inputs(inputs, flat, dt_)
    batch, ticks = int(arr.shape[0]), int(arr.shape[1])
    wanted = _record_set(record, flat)

    delays = edge_delays(flat, disc.projection_latency)
    order = run_order(flat, delays)
    preds: Dict[str, List[Tuple[str, int]]] = {n: [] for n in flat.nodes}
    for s, t in flat.edges:
        preds[t].append((s, delays[(s, t)]))

    folded_bias, nodes = fold_biases(flat) if disc.bias == "i_offset" else ({}, flat.nodes)
    runners: Dict[str, Any] = {}
    for name in order:
        node = nodes[name]
        state = make_stateful(name, node, flat.out_shape[name], disc, dt_)
        if state is not None:
            if name in folded_bias:
                fold_bias(state, folded_bias[name])
            runners[name] = state
        else:
            runners[name] = make_op(name, node, flat.in_shape[name], flat.out_shape[name], dt_)
    stateful = {n for n in flat.nodes if flat.type_of(n) in STATEFUL_TYPES}

    rest = _rest_values(flat, order, preds, runners, stateful, dt_, batch)

    # what to record
    inp_name = flat.inputs[0]
    binary_input = arr.dtype.kind == "b" or bool(np.all((arr == 0) | (arr == 1)))
    rec: Dict[Tuple[str, str], np.ndarray] = {}

    def want(name: str, obs: str, dtype_: np.dtype) -> None:
        rec[(name, obs)] = np.empty((batch, ticks, *flat.out_shape[name]), dtype=dtype_)

    for name in flat.order:  # graph (topological) order: the Recording keeps it
        typ = flat.type_of(name)
        if typ in SPIKING_TYPES:
            want(name, "spikes", np.dtype(bool))
        if name == inp_name and binary_input:
            want(name, "spikes", np.dtype(bool))
        if typ == "Output":
            want(name, "output", dt_)
        if name in wanted:
            if typ in NEURON_TYPES:
                want(name, "v", dt_)
                if typ in ("CubaLI", "CubaLIF"):
                    want(name, "i", dt_)
            elif typ not in ("Output",) and not (name == inp_name and binary_input):
                want(name, "output", dt_)
    recorded_nodes = {n for n, _ in rec}

    # the layer-major walk converts each chunk of the input as it reads it (no float copy of the whole batch)
    x_all = arr if (LAYER_MAJOR and not flat.back_edges) else arr.astype(dt_, copy=False)
    uses_torch = any(flat.type_of(n) in ("Conv1d", "Conv2d", "Affine", "Linear") for n in flat.nodes)
    step = block_samples(flat, dt_)
    layer_major = LAYER_MAJOR and not flat.back_edges  # feed-forward: every edge goes forward in flat.order
    stages = layer_stages(flat, dt_, step, ticks) if layer_major else []
    with (torch_single_thread() if uses_torch else contextlib.nullcontext()):
        for lo in range(0, batch, step):  # every sample's values are independent of its block
            hi = min(batch, lo + step)
            for n in stateful:
                runners[n].reset_state(hi - lo, ticks)
            blk_rest = {n: v[lo:hi] for n, v in rest.items()}
            blk_rec = {k: v[lo:hi] for k, v in rec.items()}
            if layer_major:
                full: Dict[str, np.ndarray] = {}
                for nodes_, span, keep in stages:
                    _run_layers(nodes_, preds, runners, stateful, blk_rest, x_all[lo:hi], inp_name, blk_rec,
                                recorded_nodes, span, full, keep)
            else:
                _run_ticks(order, preds, runners, stateful, blk_rest, x_all[lo:hi], inp_name, blk_rec, recorded_nodes)

    result = Recording(dt=disc.dt, meta={
        "backend": "reference",
        "preset": _preset_name(preset, disc),
        "options": disc.as_dict(),
        "dtype": dt_.name,
        "file": flat.file,
        "batch": batch,
        "ticks": ticks,
        "node_order": [n for n in flat.order if n in recorded_nodes],
    })
    for (name, obs), array in rec.items():
        result.add(name, obs, array)
    return result


#: bytes of the largest node's per-tick values in one block of samples (about one core's L2 cache)
BLOCK_BYTES = 2 ** 20


def block_samples(flat: FlatGraph, dtype: np.dtype) -> int:
    """Samples per block of the tick loop: the batch runs in blocks whose largest per-tick array
    (one node's values for the block's samples) is about :data:`BLOCK_BYTES`, so a tick's
    elementwise neuron updates and pools work in cache instead of streaming the whole batch
    through memory for every operation (measured: most of the time at batch 32 on the seed-scale
    CNN, whose first IF layer holds 64 K neurons per sample). At least 1. A sample's results do
    not depend on the block it runs in (each weighted sum is per sample or exact, every other
    operation elementwise), so blocking changes no bit."""
    largest = max((int(np.prod(shape, dtype=np.int64)) for shape in flat.out_shape.values()), default=1)
    return max(1, BLOCK_BYTES // max(1, largest * np.dtype(dtype).itemsize))


#: run graphs without back-edges layer by layer (:func:`_run_layers`); False: tick by tick (the same bits)
LAYER_MAJOR = True
#: bytes of the largest node's values in one chunk of a block (its samples times the chunk's ticks)
CHUNK_BYTES = 2 ** 22


#: a node whose per-sample values are at most this fraction of the largest node's may run in a later stage
SMALL_FRACTION = 1 / 16


def chunk_ticks(sizes: Iterable[int], dtype: np.dtype, block: int) -> int:
    """Ticks per chunk of a layer-major stage whose nodes hold ``sizes`` values per sample and tick: the
    largest node's values for ``block`` samples and that many ticks take about :data:`CHUNK_BYTES`
    (at least 1). Like the block size it changes no bit: a stateless node's rows are independent, a
    stateful node steps tick by tick whatever the chunk."""
    largest = max(sizes, default=1)
    return max(1, CHUNK_BYTES // max(1, block * largest * np.dtype(dtype).itemsize))


def layer_stages(flat: FlatGraph, dtype: np.dtype, block: int, ticks: int) -> List[Tuple[List[str], int, Set[str]]]:
    """The layer-major walk's stages: ``(nodes, ticks per chunk, nodes whose whole output a later stage reads)``.

    One stage, unless a tail of ``flat.order`` holds only small nodes (at most :data:`SMALL_FRACTION` of the
    largest node's size) and reads only small nodes before it: the tail then runs after the head has run
    all ticks, in longer chunks (a fully connected layer's weight matrix is read once per chunk, so it wants
    many rows per call; the large maps want short chunks that stay in cache). The head's outputs that the
    tail reads are kept for all ticks. No bit depends on the stages (see :func:`chunk_ticks`)."""
    size = {n: int(np.prod(flat.out_shape[n], dtype=np.int64)) for n in flat.order}
    small_limit = max(size.values()) * SMALL_FRACTION
    order = list(flat.order)
    cut = len(order)
    for k in range(len(order) - 1, 0, -1):
        if size[order[k]] > small_limit:
            break
        tail = set(order[k:])
        if all(size[s] <= small_limit for s, t in flat.edges if t in tail and s not in tail):
            cut = k
    head, tail_nodes = order[:cut], order[cut:]
    if not tail_nodes:
        return [(head, chunk_ticks(size.values(), dtype, block), set())]
    tail = set(tail_nodes)
    keep = {s for s, t in flat.edges if t in tail and s not in tail}
    return [(head, chunk_ticks((size[n] for n in head), dtype, block), keep),
            (tail_nodes, chunk_ticks((size[n] for n in tail_nodes), dtype, block), set())]


def fold_biases(flat: FlatGraph) -> Tuple[Dict[str, np.ndarray], Dict[str, object]]:
    """``bias="i_offset"``: which biases py-spinnaker2's converter folds into the neurons.

    ``get_accumulated_bias``: for each IF/LIF/CubaLIF the biases of its direct Affine / Conv2d
    (per channel) predecessors, summed; ``create_projection`` then passes the weights only.
    Only weight nodes whose every successor is such a neuron are folded (others keep their
    bias in the input). Returns ``({neuron: bias float64 (shape)}, nodes)`` where ``nodes`` is
    ``flat.nodes`` with the folded nodes replaced by copies whose bias is 0.
    """
    import copy

    neurons = ("IF", "LIF", "CubaLIF")
    nodes: Dict[str, object] = dict(flat.nodes)
    out: Dict[str, np.ndarray] = {}
    for name in flat.order:
        typ = flat.type_of(name)
        if typ not in ("Affine", "Conv2d") or getattr(flat.nodes[name], "bias", None) is None:
            continue
        succ = flat.successors(name)
        if not succ or any(flat.type_of(t) not in neurons for t in succ):
            continue
        b = np.asarray(flat.nodes[name].bias, dtype=np.float64)
        if not np.any(b):
            continue
        shape = tuple(flat.out_shape[name])
        full = np.broadcast_to(b.reshape((-1, 1, 1)) if typ == "Conv2d" else b.reshape(shape), shape)
        for t in succ:
            out[t] = out.get(t, np.zeros(shape)) + full
        clone = copy.copy(flat.nodes[name])
        clone.bias = np.zeros_like(np.asarray(flat.nodes[name].bias))
        nodes[name] = clone
    return out, nodes


def _run_ticks(order: List[str], preds: Mapping[str, List[Tuple[str, int]]], runners: Mapping[str, Any],
               stateful: Set[str], prev: Dict[str, np.ndarray], x_all: np.ndarray, inp_name: str,
               rec: Dict[Tuple[str, str], np.ndarray], recorded_nodes: Set[str]) -> Dict[str, np.ndarray]:
    """The tick loop: every node once per tick in ``order``; returns the last tick's outputs."""
    for t in range(x_all.shape[1]):
        cur: Dict[str, np.ndarray] = {}
        for name in order:
            if name == inp_name:
                out = x_all[:, t]
            else:
                x = None
                for src, d in preds[name]:
                    val = prev[src] if d else cur[src]
                    x = val if x is None else x + val
                out = runners[name].step(x) if name in stateful else runners[name](x)
            cur[name] = out
            if name in recorded_nodes:
                _store(rec, name, t, out, runners.get(name))
        prev = cur
    return prev


def _run_layers(order: List[str], preds: Mapping[str, List[Tuple[str, int]]], runners: Mapping[str, Any],
                stateful: Set[str], rest: Dict[str, np.ndarray], x_all: np.ndarray, inp_name: str,
                rec: Dict[Tuple[str, str], np.ndarray], recorded_nodes: Set[str], span: int,
                full: Dict[str, np.ndarray], keep: Set[str]) -> None:
    """One stage of the layer-major walk of a graph without back-edges: ticks in chunks of ``span``; within a
    chunk each node of ``order`` (topological over all edges) runs once on all its ticks, arrays (ticks, batch,
    *shape). A stateless node sees the chunk's ticks x batch as one batch of rows (each row's result depends on
    that row alone), a stateful node steps through the ticks in order; a delay-1 edge reads its source's
    previous tick, the last tick of the previous chunk (or the rest value) for the chunk's first. Sources in an
    earlier stage are read from ``full`` (all ticks); the outputs of ``keep`` are stored there. Fused IF/LIF
    loops emit their spikes as uint8 0/1; every consumer converts them to the run dtype (exactly) before any
    arithmetic. Every value equals the tick-major walk's (:func:`_run_ticks`)."""
    batch, ticks = x_all.shape[0], x_all.shape[1]
    dtype = rest[inp_name].dtype
    for name in keep:
        full[name] = np.empty((ticks, batch, *_node_shape(name, rest)), dtype=rest[name].dtype)
    last = dict(rest)  # each node's output in the tick before the chunk, (batch, *shape)
    for t0 in range(0, ticks, span):
        t1 = min(ticks, t0 + span)
        n = t1 - t0
        cur: Dict[str, np.ndarray] = {}

        def source(src: str) -> np.ndarray:
            return cur[src] if src in cur else full[src][t0:t1]

        for name in order:
            stored = False  # the spikes are in the recording already
            if name == inp_name:
                out = np.ascontiguousarray(x_all[:, t0:t1].swapaxes(0, 1), dtype=rest[name].dtype)
            else:
                x, first = None, None
                for src, d in preds[name]:
                    val = source(src)
                    if d:
                        before = last[src] if src in cur or t0 == 0 else full[src][t0 - 1]
                        if len(preds[name]) == 1 and name in stateful:
                            x, first = val, before      # the node reads x[t - 1] itself (no shifted copy)
                            continue
                        val = np.concatenate([np.broadcast_to(before, val.shape[1:])[None], val[:-1]])
                    if len(preds[name]) > 1 and val.dtype != dtype:
                        val = val.astype(dtype)   # uint8 spikes are summed as floats (no wrap-around)
                    x = val if x is None else x + val
                if name in stateful:
                    out, stored = _run_stateful(runners[name], x, rec, name, t0, first)
                else:
                    flat_out = runners[name](x.reshape((n * batch, *x.shape[2:])))
                    out = flat_out.reshape((n, batch, *flat_out.shape[1:]))
            cur[name] = out
            if name in keep:
                full[name][t0:t1] = out
            if name in recorded_nodes:
                _store_chunk(rec, name, t0, out, spikes=not stored)
        last = {k: v[-1] for k, v in cur.items()}


def _node_shape(name: str, rest: Mapping[str, np.ndarray]) -> Tuple[int, ...]:
    """A node's per-sample shape, read from its rest value (batch, *shape)."""
    return tuple(rest[name].shape[1:])


def _run_stateful(runner: Any, x: np.ndarray, rec: Dict[Tuple[str, str], np.ndarray], name: str, t0: int,
                  first: "np.ndarray | None" = None) -> np.ndarray:
    """A stateful node over a chunk ``x`` (ticks, batch, *shape) (with ``first`` (batch, *shape): its input is
    ``first`` then ``x[:-1]``): its fused loop when it has one and no state is recorded (which also writes the
    recorded spikes), else :meth:`step` tick by tick (recording ``v``/``i`` after each). Returns (outputs,
    whether the spikes are recorded already)."""
    wants_state = (name, "v") in rec or (name, "i") in rec
    fused = None if wants_state else getattr(runner, "run_ticks", None)
    if fused is not None:
        spikes = rec[(name, "spikes")][:, t0:t0 + x.shape[0]] if (name, "spikes") in rec else None
        out = fused(x, first, spikes)
        if out is not None:
            return out, spikes is not None
    if first is not None:
        x = np.concatenate([np.broadcast_to(first, x.shape[1:])[None], x[:-1]])
    out = None
    for k in range(x.shape[0]):
        z = runner.step(x[k])
        if out is None:
            out = np.empty((x.shape[0], *z.shape), dtype=z.dtype)
        out[k] = z
        if (name, "v") in rec:
            rec[(name, "v")][:, t0 + k] = runner.v
        if (name, "i") in rec:
            rec[(name, "i")][:, t0 + k] = runner.i
    return out, False


def _store_chunk(rec: Dict[Tuple[str, str], np.ndarray], name: str, t0: int, out: np.ndarray, spikes: bool = True) -> None:
    t1 = t0 + out.shape[0]
    if spikes and (name, "spikes") in rec:
        np.not_equal(out.swapaxes(0, 1), 0, out=rec[(name, "spikes")][:, t0:t1])
    if (name, "output") in rec:
        rec[(name, "output")][:, t0:t1] = out.swapaxes(0, 1)


def _store(rec: Dict[Tuple[str, str], np.ndarray], name: str, t: int, out: np.ndarray, runner: object) -> None:
    if (name, "spikes") in rec:
        rec[(name, "spikes")][:, t] = out != 0
    if (name, "output") in rec:
        rec[(name, "output")][:, t] = out
    if (name, "v") in rec:
        rec[(name, "v")][:, t] = runner.v  # type: ignore[attr-defined]
    if (name, "i") in rec:
        rec[(name, "i")][:, t] = runner.i  # type: ignore[attr-defined]


def _rest_values(flat: FlatGraph, order: List[str], preds: Mapping[str, List[Tuple[str, int]]], runners: Mapping[str, Any],
                 stateful: Set[str], dtype: np.dtype, batch: int) -> Dict[str, np.ndarray]:
    """Every node's output before t = 0 (batch-broadcast): stateful nodes emit their initial
    value; stateless nodes are evaluated on those, in a topological order of the edges out of
    stateless nodes (a DAG: s2common rejects loops without a stateful node)."""
    rest: Dict[str, np.ndarray] = {}
    for n in stateful:
        rest[n] = runners[n].rest_output()[None]
    rest[flat.inputs[0]] = np.zeros((1, *flat.out_shape[flat.inputs[0]]), dtype=dtype)
    pending = [n for n in order if n not in rest]
    while pending:
        progressed = []
        for n in pending:
            if all(s in rest for s, _ in preds[n]):
                x = None
                for s, _ in preds[n]:
                    x = rest[s] if x is None else x + rest[s]
                rest[n] = runners[n](x)
                progressed.append(n)
        if not progressed:  # cannot happen for a validated graph
            raise AssertionError(f"cannot order stateless nodes {pending}")
        pending = [n for n in pending if n not in rest]
    return {n: np.broadcast_to(v, (batch, *v.shape[1:])) for n, v in rest.items()}
