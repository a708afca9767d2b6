"""Figures computed from recordings and graphs: predictions, accuracy and NeuroBench's metrics.

NeuroBench's definitions (github.com/NeuroBench/neurobench, ``docs/metrics/``), followed here
on NIR graphs and s2gate recordings:

* **Model footprint** (static): bytes needed to represent the model, parameters and buffers,
  zero weights included. Here: every array parameter of every node (weights, biases, neuron
  parameters) at its storage width: weights of Affine/Linear/Conv at ``bits``, everything else
  at ``other_bits`` (32: the chip keeps neuron parameters and biases as float32).
* **Activation sparsity** (workload): the share of zero activations over all neurons of all
  spiking layers, all ticks, all samples: ``1 - spikes / (neurons x ticks x samples)``. The
  Input is data, not an activation, and is left out.
* **Synaptic operations** (workload): per sample, summed over ticks, averaged over samples.
  Inputs and weights are binarised (non-zero -> 1) and the layer is re-run: **Effective** ops
  count (non-zero input, non-zero weight) pairs; **Dense** counts every input and every
  connection (all ones, zero weights included). Binary (spike) inputs make accumulates (ACs),
  non-binary ones multiply-accumulates (MACs); a sum-pooled spike map holds spike counts
  (non-negative integers), which SpiNNaker2 also adds up without multiplying, so those count
  as ACs too (NeuroBench, which sees pooled values as non-binary, would call them MACs).
  Pooling itself is not counted (it is folded into the next layer's input, as on SpiNNaker2).
  Connection layers: Affine, Linear, Conv1d, Conv2d.

"float and int8 variants": the footprint with ``bits=32`` vs ``bits=8``; sparsity and
operations from the float reference's recording vs the emulator's.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from s2common.errors import InputDataError, S2GateError
from s2common.graph import as_flat
from s2common.recording import Recording

#: node types whose ``weight`` is a synaptic weight (stored at ``bits``).
WEIGHT_TYPES = ("Affine", "Linear", "Conv1d", "Conv2d")
#: node types whose output is a spiking activation.
SPIKING_TYPES = ("LIF", "IF", "CubaLIF", "Threshold")
#: hyper-parameters that are not stored per model (shapes, strides...).
_NOT_PARAMS = ("input_type", "output_type", "metadata", "stride", "padding", "dilation", "groups",
               "kernel_size", "start_dim", "end_dim", "shape", "input_shape")


class MetricError(S2GateError):
    """A metric cannot be computed from what was given (node not recorded, empty labels...)."""

    rule_default = "metric"


# --------------------------------------------------------------------------------------------
# predictions


def predict(recording: Recording, node: str) -> np.ndarray:
    """Predicted class per sample: argmax over neurons of the spike count over all ticks.

    Ties go to the lowest neuron index (numpy's ``argmax`` returns the first maximum), so a
    sample with no output spike at all predicts class 0. If ``node`` has no spikes recorded
    but an ``"output"`` (a non-spiking readout), its sum over ticks is used instead.

    Returns:
        (batch,) int64.
    """
    arr = recording.get(node, "spikes")
    if arr is None:
        arr = recording.get(node, "output")
    if arr is None:
        raise MetricError(f"node '{node}' has no spikes or output recorded (recorded: {', '.join(recording.nodes)})",
                          node=node, hint="record the output population")
    arr = np.asarray(arr)
    counts = arr.reshape(arr.shape[0], arr.shape[1], -1).sum(axis=1, dtype=np.float64)
    return np.argmax(counts, axis=1).astype(np.int64)


def accuracy(pred: Sequence[int], labels: Sequence[int]) -> float:
    """Share of ``pred == labels`` (both (batch,) ints), in [0, 1]."""
    p = np.asarray(pred).reshape(-1)
    y = np.asarray(labels).reshape(-1)
    if p.shape != y.shape:
        raise InputDataError(f"{p.size} predictions but {y.size} labels", rule="label-count")
    if not p.size:
        raise InputDataError("no samples to compute an accuracy from", rule="no-samples")
    return float(np.mean(p == y))


# --------------------------------------------------------------------------------------------
# footprint


def memory_footprint_per_node(graph: Any, bits: int = 32, *, other_bits: int = 32) -> Dict[str, int]:
    """Bytes of parameters per node (see :func:`memory_footprint`); nodes without parameters omitted."""
    flat = as_flat(graph)
    out: Dict[str, int] = {}
    for name, node in flat.nodes.items():
        typ = type(node).__name__
        total_bits = 0
        for param, value in vars(node).items():
            if param in _NOT_PARAMS or value is None or isinstance(value, (str, bytes, dict)):
                continue
            arr = np.asarray(value)
            if arr.dtype.kind not in "biuf":
                continue
            width = bits if (param == "weight" and typ in WEIGHT_TYPES) else other_bits
            total_bits += int(arr.size) * width
        if total_bits:
            out[name] = (total_bits + 7) // 8
    return out


def memory_footprint(graph: Any, bits: int = 32, *, other_bits: int = 32) -> int:
    """Model footprint in bytes: synaptic weights at ``bits``, other parameters at ``other_bits``.

    Zero weights count (NeuroBench: sparsity is a separate metric). ``bits=32`` gives the float
    model, ``bits=8`` the int8 one (biases and neuron parameters stay float32 on the chip).
    """
    return int(sum(memory_footprint_per_node(graph, bits, other_bits=other_bits).values()))


# --------------------------------------------------------------------------------------------
# activation sparsity


def spiking_nodes(recording: Recording, graph: Any = None) -> List[str]:
    """Nodes of ``recording`` with spikes that are activations (not the Input).

    With ``graph``: its spiking neuron nodes (LIF, IF, CubaLIF, Threshold) that are recorded.
    Without: every node with spikes except the one named in ``recording.meta["input"]`` (if set)
    and nodes named ``"input"``.
    """
    if graph is not None:
        flat = as_flat(graph)
        return [n for n in recording.nodes if n in flat.nodes and type(flat.nodes[n]).__name__ in SPIKING_TYPES
                and recording.get(n, "spikes") is not None]
    skip = {recording.meta.get("input"), "input"}
    return [n for n in recording.nodes if n not in skip and recording.get(n, "spikes") is not None]


def activation_sparsity(recording: Recording, *, graph: Any = None, nodes: Optional[Iterable[str]] = None) -> float:
    """``1 - spikes / (neurons x ticks x samples)`` over the spiking layers (see :func:`spiking_nodes`).

    1.0 means no neuron ever spiked; 0.0 that every neuron spiked at every tick.
    """
    names = list(nodes) if nodes is not None else spiking_nodes(recording, graph)
    if not names:
        raise MetricError("no spiking layer recorded, so no activation sparsity",
                          hint="record the neuron populations' spikes")
    spikes = 0
    total = 0
    for n in names:
        s = recording.get(n, "spikes")
        if s is None:
            raise MetricError(f"node '{n}' has no spikes recorded", node=n)
        s = np.asarray(s)
        spikes += int(np.count_nonzero(s))
        total += int(s.size)
    return 1.0 - spikes / total if total else 1.0


# --------------------------------------------------------------------------------------------
# synaptic operations


@dataclass
class SynapticOps:
    """NeuroBench synaptic operations, per sample (summed over ticks, mean over samples).

    Attributes:
        effective_acs: (non-zero binary input, non-zero weight) pairs.
        effective_macs: the same for non-binary inputs (0 for spiking networks).
        dense: every input x every connection, zero or not.
        per_node: ``{weight node: {"effective_acs", "effective_macs", "dense"}}``.
        skipped: weight nodes whose input was not recorded.
    """

    effective_acs: float = 0.0
    effective_macs: float = 0.0
    dense: float = 0.0
    per_node: Dict[str, Dict[str, float]] = field(default_factory=dict)
    skipped: List[str] = field(default_factory=list)

    def to_dict(self) -> Dict[str, Any]:
        return {"effective_acs": self.effective_acs, "effective_macs": self.effective_macs, "dense": self.dense,
                "per_node": self.per_node, "skipped": self.skipped}


def synaptic_operations(graph_or_net: Any, recording: Recording) -> SynapticOps:
    """Synaptic operations of ``recording`` on ``graph_or_net``.

    ``graph_or_net``: a NIR graph / FlatGraph / path (ops per Affine/Linear/Conv node, its
    input traced back through Flatten/SumPool2d/AvgPool2d to a recorded spiking node or the
    Input), or an ``s2emu`` ``S2Network`` (ops per dense/conv2d projection, pre spikes pooled
    by the projection's ``pool``; weightless pool projections are not counted).
    """
    if hasattr(graph_or_net, "projections") and hasattr(graph_or_net, "populations"):
        return _synops_net(graph_or_net, recording)
    return _synops_graph(as_flat(graph_or_net), recording)


def _synops_graph(flat: Any, recording: Recording) -> SynapticOps:
    res = SynapticOps()
    batch = max(recording.batch, 1)
    masks: Dict[str, Optional[_Active]] = {}
    values: Dict[str, Optional[np.ndarray]] = {}
    for name in flat.order:
        node = flat.nodes[name]
        typ = type(node).__name__
        if typ not in WEIGHT_TYPES:
            continue
        act = _input_active(flat, name, recording, masks, values)
        if act is None:
            res.skipped.append(name)
            continue
        active, binary = act
        w = np.asarray(node.weight)
        if typ in ("Affine", "Linear"):
            fan_eff = np.count_nonzero(w, axis=0).astype(np.float64)  # per input element
            fan_dense = np.full(w.shape[1], float(w.shape[0]))
        else:
            fan_eff, fan_dense = _conv_fanout(flat, name, node)
        eff = float(_active_counts(active) @ fan_eff.reshape(-1)) / batch
        dense = float(fan_dense.sum()) * active.shape[1] * active.shape[0] / batch
        row = {"effective_acs": eff if binary else 0.0, "effective_macs": 0.0 if binary else eff, "dense": dense}
        res.per_node[name] = row
        res.effective_acs += row["effective_acs"]
        res.effective_macs += row["effective_macs"]
        res.dense += dense
    return res


#: what a node sends per tick, as far as operation counts need it: ``(active, binary)`` with
#: ``active`` bool (batch, time, *shape) = "value non-zero" and ``binary`` = every value is a
#: non-negative integer (spikes or spike counts: accumulates, not multiply-accumulates)
_Active = Tuple[np.ndarray, bool]
#: marks, in the mask cache, a recorded node whose values are signed or fractional (mask tracing stops there)
_SIGNED = object()


def _input_active(flat: Any, name: str, recording: Recording, masks: Dict[str, Optional[_Active]],
                  values: Dict[str, Optional[np.ndarray]]) -> Optional[_Active]:
    """``(active, binary)`` of what ``name`` receives (None: not traceable to a recording).

    Spikes and spike counts are non-negative, so a sum (several predecessors, a sum pool) is
    non-zero exactly where one of its terms is: the boolean masks are pooled and joined with
    OR and the counts themselves are never formed (a pooled float copy of every recorded
    spike map cost ~100 s per seed-scale gate). Signed or fractional values go through the
    value path (:func:`_node_input`), where cancellation can make a sum zero."""
    act = _node_input_active(flat, name, recording, masks)
    if act is not None or not _has_signed(flat, name, masks):
        return act
    x = _node_input(flat, name, recording, values)
    if x is None:
        return None
    binary = x.dtype == np.bool_ or bool(np.all((x >= 0) & (x == np.round(x))))
    return (x != 0, binary)


def _has_signed(flat: Any, name: str, masks: Dict[str, Any]) -> bool:
    """True if mask tracing met a recorded node with signed or fractional values upstream of ``name``."""
    return any(masks.get(p) is _SIGNED for p in _ancestors(flat, name))


def _ancestors(flat: Any, name: str) -> List[str]:
    seen: List[str] = []
    stack = list(flat.predecessors(name))
    while stack:
        n = stack.pop()
        if n in seen:
            continue
        seen.append(n)
        stack.extend(flat.predecessors(n))
    return seen


def _node_input_active(flat: Any, name: str, recording: Recording, masks: Dict[str, Any]) -> Optional[_Active]:
    """``(active, True)`` of the input of ``name`` when every contributing value is a spike or
    spike count; None if it is not recorded or (then ``masks`` marks a node :data:`_SIGNED`) not binary."""
    parts = []
    for pred in flat.predecessors(name):
        out = _node_output_active(flat, pred, recording, masks)
        if out is None:
            return None
        active = out[0]
        if (pred, name) in flat.back_edges:  # arrives one tick later
            active = np.concatenate([np.zeros_like(active[:, :1]), active[:, :-1]], axis=1)
        parts.append(active)
    if not parts:
        return None
    total = parts[0]
    for p in parts[1:]:
        total = total | p
    return (total, True)


def _node_output_active(flat: Any, name: str, recording: Recording, masks: Dict[str, Any]) -> Optional[_Active]:
    if name in masks:
        got = masks[name]
        return None if got is _SIGNED else got
    masks[name] = None  # guards cycles through stateless nodes (rejected by flatten_graph anyway)
    node = flat.nodes[name]
    typ = type(node).__name__
    rec = recording.get(name, "spikes")
    out: Any = None
    if rec is not None:
        x = np.asarray(rec)
        if x.dtype == np.bool_:
            out = (x, True)
        elif bool(np.all((x >= 0) & (x == np.round(x)))):
            out = (x != 0, True)
        else:
            out = _SIGNED
    elif typ == "Flatten":
        a = _node_input_active(flat, name, recording, masks)
        out = None if a is None else (a[0].reshape(a[0].shape[0], a[0].shape[1], *flat.out_shape[name]), True)
    elif typ in ("SumPool2d", "AvgPool2d"):
        a = _node_input_active(flat, name, recording, masks)
        out = None if a is None else (_or_pool(a[0], node, name, flat.out_shape[name]), True)
    masks[name] = out
    return None if out is _SIGNED else out


def _or_pool(active: np.ndarray, node: Any, name: str, out_shape: Sequence[int]) -> np.ndarray:
    """Where a sum pool of non-negative values is non-zero: the OR over each window (zero padding).

    ``active``: bool (batch, time, C, H, W); returns bool (batch, time, *out_shape)."""
    from s2common.graph import pair

    k = pair(node.kernel_size, "kernel_size", name)
    s = pair(node.stride, "stride", name)
    p = pair(node.padding, "padding", name)
    b, t, c, h, w = active.shape
    ho, wo = int(out_shape[-2]), int(out_shape[-1])
    if p != (0, 0):
        padded = np.zeros((b, t, c, h + 2 * p[0], w + 2 * p[1]), dtype=bool)
        padded[..., p[0]:p[0] + h, p[1]:p[1] + w] = active
        active = padded
    out = np.zeros((b, t, c, ho, wo), dtype=bool)
    for dy in range(k[0]):
        for dx in range(k[1]):
            out |= active[..., dy:dy + s[0] * (ho - 1) + 1:s[0], dx:dx + s[1] * (wo - 1) + 1:s[1]]
    return out


def _active_counts(active: np.ndarray) -> np.ndarray:
    """Per input element (flat), in how many (sample, tick) entries it is non-zero; float64."""
    flat = active.reshape(active.shape[0] * active.shape[1], -1)
    if flat.dtype != np.bool_:
        flat = flat != 0
    return flat.sum(axis=0, dtype=np.int64).astype(np.float64)


def _node_input(flat: Any, name: str, recording: Recording, cache: Dict[str, Optional[np.ndarray]]) -> Optional[np.ndarray]:
    """What ``name`` receives per tick, (batch, time, *in_shape), traced from recorded values
    (the path for signed or fractional values, see :func:`_input_active`)."""
    parts = []
    for pred in flat.predecessors(name):
        out = _node_output(flat, pred, recording, cache)
        if out is None:
            return None
        if (pred, name) in flat.back_edges:  # arrives one tick later
            out = np.concatenate([np.zeros_like(out[:, :1]), out[:, :-1]], axis=1)
        parts.append(out)
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0]
    total = parts[0].astype(np.float32)
    for p in parts[1:]:
        total = total + p
    return total


def _node_output(flat: Any, name: str, recording: Recording, cache: Dict[str, Optional[np.ndarray]]) -> Optional[np.ndarray]:
    if name in cache:
        return cache[name]
    cache[name] = None  # guards cycles through stateless nodes (rejected by flatten_graph anyway)
    node = flat.nodes[name]
    typ = type(node).__name__
    rec = recording.get(name, "spikes")
    if rec is not None:
        out: Optional[np.ndarray] = np.asarray(rec)
    elif typ == "Flatten":
        x = _node_input(flat, name, recording, cache)
        out = None if x is None else x.reshape(x.shape[0], x.shape[1], *flat.out_shape[name])
    elif typ in ("SumPool2d", "AvgPool2d"):
        x = _node_input(flat, name, recording, cache)
        out = None if x is None else _sum_pool(x, node, name)
    else:
        out = None
    cache[name] = out
    return out


def _sum_pool(x: np.ndarray, node: Any, name: str) -> np.ndarray:
    """Sum pool of recorded values (batch, time, C, H, W), zero padding; float64 (rounded to whole
    numbers when the input is whole: avg x k*k is then an integer up to rounding)."""
    import torch

    from s2common.graph import pair

    b, t = x.shape[:2]
    k = pair(node.kernel_size, "kernel_size", name)
    s = pair(node.stride, "stride", name)
    p = pair(node.padding, "padding", name)
    xt = torch.from_numpy(np.ascontiguousarray(x.reshape(b * t, *x.shape[2:]), dtype=np.float64))
    y = (torch.nn.functional.avg_pool2d(xt, k, s, p, count_include_pad=True) * (k[0] * k[1])).numpy()
    if bool(np.all(x == np.round(x))):
        y = np.rint(y)
    return y.reshape(b, t, *y.shape[1:])


def _conv_fanout(flat: Any, name: str, node: Any):
    """Per input element: number of non-zero weights it meets, and of all connections.

    The gradient of ``sum(conv(x, W'))`` with respect to ``x`` is, per input element, the
    sum of the kernel entries it is multiplied with; with ``W'`` binarised (or all ones) that
    is its effective (or dense) fan-out, padding and stride accounted for.
    """
    import hashlib

    import torch

    from s2common.graph import conv_padding, pair

    in_shape = flat.in_shape[name]
    w_np = np.ascontiguousarray(node.weight, dtype=np.float64)
    key = (hashlib.sha1(w_np.tobytes()).hexdigest(), w_np.shape, tuple(in_shape), repr(node.stride),
           repr(node.padding), repr(node.dilation), repr(node.groups))
    if key in _FANOUT_CACHE:
        return _FANOUT_CACHE[key]
    w = torch.from_numpy(w_np)
    groups = int(np.asarray(node.groups).ravel()[0])
    pad = conv_padding(node, name, in_shape[1:])
    if w.ndim == 4:
        conv = torch.nn.functional.conv2d
        stride, dil = pair(node.stride, "stride", name), pair(node.dilation, "dilation", name)
    else:
        conv = torch.nn.functional.conv1d
        stride, dil = (int(np.atleast_1d(node.stride)[0]),), (int(np.atleast_1d(node.dilation)[0]),)
    fans = []
    for kernel in ((w != 0).to(torch.float64), torch.ones_like(w)):
        x = torch.ones((1, *in_shape), dtype=torch.float64, requires_grad=True)
        conv(x, kernel, None, stride, pad, dil, groups).sum().backward()
        fans.append(x.grad[0].numpy().copy())
    if len(_FANOUT_CACHE) > 64:
        _FANOUT_CACHE.clear()
    _FANOUT_CACHE[key] = (fans[0], fans[1])
    return fans[0], fans[1]


#: conv fan-outs by (weight digest, shapes, hyper-parameters): a gate run asks for them per batch.
_FANOUT_CACHE: Dict[Any, Any] = {}


def _synops_net(net: Any, recording: Recording) -> SynapticOps:
    res = SynapticOps()
    batch = max(recording.batch, 1)
    for proj in net.projections:
        if proj.kind not in ("dense", "conv2d") or proj.weight is None:
            continue
        pre = recording.get(proj.pre, "spikes")
        if pre is None:
            res.skipped.append(proj.name)
            continue
        x = np.asarray(pre)
        x = x if x.dtype == np.bool_ else x != 0  # spikes: only where they are non-zero counts
        if proj.pool:
            node = type("Pool", (), {"kernel_size": proj.pool, "stride": proj.pool, "padding": (0, 0)})()
            shape = (x.shape[2], x.shape[3] // proj.pool[0], x.shape[4] // proj.pool[1])
            x = _or_pool(x, node, proj.name, shape)
        if proj.recurrent or proj.delay:
            pass  # the count over the whole run does not depend on when the spikes arrive
        w = np.asarray(proj.weight)
        if proj.kind == "dense":
            fan_eff = np.count_nonzero(w, axis=0).astype(np.float64)
            fan_dense = np.full(w.shape[1], float(w.shape[0]))
        else:
            node = type("Conv", (), {"weight": w.astype(np.float64), "groups": proj.groups, "stride": proj.stride,
                                     "padding": proj.padding, "dilation": proj.dilation})()
            fake = type("F", (), {"in_shape": {proj.name: tuple(x.shape[2:])}})()
            fan_eff, fan_dense = _conv_fanout(fake, proj.name, node)
        eff = float(_active_counts(x) @ fan_eff.reshape(-1)) / batch
        dense = float(fan_dense.sum()) * x.shape[1] * x.shape[0] / batch
        res.per_node[proj.name] = {"effective_acs": eff, "effective_macs": 0.0, "dense": dense}
        res.effective_acs += eff
        res.dense += dense
    return res
