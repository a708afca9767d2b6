"""The memory account: what a network occupies as float32 weights vs int8 weights, per layer.

Counting follows the chip: a weight is 4 bytes as float32 and 1 byte as an int8 code;
conv kernels are stored once (``C_out x C_in/groups x kh x kw``), not unrolled. Neuron
parameters (threshold, decay, offset...) and state (voltage, synaptic input) stay float32
on the chip in both cases, so they are the same in both columns; they are taken from the
emulator's chip model (``s2emu.chip.layer_memory``) when it can lower the graph, otherwise
left out (``param_bytes``/``state_bytes`` None) and the account covers weights only.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, List, Optional

import numpy as np

from s2common.errors import S2GateError
from s2common.graph import FlatGraph, flatten_graph, load_graph

from .format import is_quantized
from .topology import analyse


@dataclass
class MemoryRow:
    """One layer (a neuron population and the weights that feed it).

    Attributes:
        layer: population name (NIR dotted name).
        neurons: population size.
        weights: the network's own incoming weight values (conv kernels once, recurrent included).
        weight_bytes_float32, weight_bytes_int8: 4 and 1 byte per weight.
        param_bytes, state_bytes: float32 neuron parameters and state as the chip model
            (``s2emu.chip.layer_memory``) counts them, summed over the population's PEs; the
            same with float32 or int8 weights; None if the chip model was not available.
        chip_weight_bytes_int8: weight bytes as the chip model stores them (conv kernels once
            per PE, dense rows expanded by pooling, word padding); None without the chip model.
    """

    layer: str
    neurons: Optional[int]
    weights: int
    weight_bytes_float32: int
    weight_bytes_int8: int
    param_bytes: Optional[int] = None
    state_bytes: Optional[int] = None
    chip_weight_bytes_int8: Optional[int] = None

    @property
    def other_bytes(self) -> int:
        return int(self.param_bytes or 0) + int(self.state_bytes or 0)

    @property
    def total_float32(self) -> int:
        return self.weight_bytes_float32 + self.other_bytes

    @property
    def total_int8(self) -> int:
        return self.weight_bytes_int8 + self.other_bytes


@dataclass
class MemoryAccount:
    """Per-layer rows and totals. ``source`` is ``"s2emu.chip"`` or ``"graph"`` (weights only)."""

    rows: List[MemoryRow]
    source: str
    note: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def weight_bytes_float32(self) -> int:
        return sum(r.weight_bytes_float32 for r in self.rows)

    @property
    def weight_bytes_int8(self) -> int:
        return sum(r.weight_bytes_int8 for r in self.rows)

    @property
    def total_float32(self) -> int:
        return sum(r.total_float32 for r in self.rows)

    @property
    def total_int8(self) -> int:
        return sum(r.total_int8 for r in self.rows)

    @property
    def weight_reduction_percent(self) -> float:
        """100 * (1 - int8 weight bytes / float32 weight bytes); 0 if there are no weights."""
        f = self.weight_bytes_float32
        return 100.0 * (1.0 - self.weight_bytes_int8 / f) if f else 0.0

    @property
    def total_reduction_percent(self) -> float:
        """100 * (1 - total int8 bytes / total float32 bytes), parameters and state included if known."""
        f = self.total_float32
        return 100.0 * (1.0 - self.total_int8 / f) if f else 0.0

    def summary_line(self) -> str:
        what = "weights + params + state" if self.source == "s2emu.chip" else "weights only"
        return (f"memory ({what}): float32 {self.total_float32} B -> int8 {self.total_int8} B, "
                f"reduction {self.total_reduction_percent:.2f} % (weights alone {self.weight_reduction_percent:.2f} %)")

    def table(self, tablefmt: str = "simple") -> str:
        from tabulate import tabulate

        rows = [[r.layer, r.neurons, r.weights, r.weight_bytes_float32, r.weight_bytes_int8,
                 "-" if r.param_bytes is None else r.param_bytes, "-" if r.state_bytes is None else r.state_bytes,
                 r.total_float32, r.total_int8] for r in self.rows]
        rows.append(["total", "", sum(r.weights for r in self.rows), self.weight_bytes_float32, self.weight_bytes_int8,
                     "", "", self.total_float32, self.total_int8])
        head = ["layer", "neurons", "weights", "w bytes f32", "w bytes int8", "param B", "state B", "total f32",
                "total int8"]
        return tabulate(rows, headers=head, tablefmt=tablefmt)


def _is_network(obj: Any) -> bool:
    return hasattr(obj, "populations") and hasattr(obj, "projections")


def _chip_rows(net: Any) -> List[MemoryRow]:
    """Rows from the emulator's chip model (``s2emu.chip.layer_memory``); weights = the network's own."""
    from s2emu.chip import layer_memory  # written by the emulator's helper

    rows = []
    for r in layer_memory(net):
        get = (lambda k, r=r: r.get(k)) if isinstance(r, dict) else (lambda k, r=r: getattr(r, k, None))
        unique = get("unique_weights")
        weights = int(unique if unique is not None else (get("weights") or 0))
        params, state = get("param_bytes"), get("state_bytes")
        if weights == 0 and not params and not state:
            continue  # the Input's spike_list
        rows.append(MemoryRow(layer=str(get("name")), neurons=get("neurons"), weights=weights,
                              weight_bytes_float32=4 * weights, weight_bytes_int8=weights,
                              param_bytes=None if params is None else int(params),
                              state_bytes=None if state is None else int(state),
                              chip_weight_bytes_int8=get("weight_bytes_int8")))
    return rows


def _graph_rows(flat: FlatGraph) -> List[MemoryRow]:
    """Rows counted from the graph itself: each weight node's size, under the population it feeds."""
    topo = analyse(flat)
    counted = set()
    rows = []
    for g in topo.groups:
        for p in g.populations:
            n = 0
            for w in g.weights:
                if w in counted or p not in topo.targets[w]:
                    continue
                counted.add(w)
                n += int(np.asarray(flat.nodes[w].weight).size)
            rows.append(MemoryRow(layer=p, neurons=int(np.prod(flat.out_shape[p])), weights=n,
                                  weight_bytes_float32=4 * n, weight_bytes_int8=n))
    order = {name: i for i, name in enumerate(flat.order)}
    rows.sort(key=lambda r: order.get(r.layer, 0))
    return rows


def memory_account(graph_or_net: Any, *, use_chip_model: bool = True, options: Any = None) -> MemoryAccount:
    """Float32 vs int8 bytes per layer and in total.

    Weights are the network's own (counted from the graph: 4 B as float32, 1 B as int8);
    parameters and state come from the emulator's chip model and are the same in both columns.

    Args:
        graph_or_net: a ``nir.NIRGraph``, a path to a NIR file, a :class:`FlatGraph`, or a lowered
            ``s2emu`` network (anything with ``populations`` and ``projections``).
        use_chip_model: add parameter and state bytes from ``s2emu.chip.layer_memory`` (lowering
            the graph with ``options``; default: ``scale_weights`` off for quantized graphs).
            If the emulator cannot (not importable, or the graph does not lower), the account
            covers weights only and says why in ``note``.
        options: ``s2emu.ConversionOptions`` for lowering.
    """
    if _is_network(graph_or_net):
        return MemoryAccount(rows=_chip_rows(graph_or_net), source="s2emu.chip")
    if isinstance(graph_or_net, (str, os.PathLike)):
        graph = load_graph(graph_or_net)
        flat = flatten_graph(graph, file=os.fspath(graph_or_net))
    elif isinstance(graph_or_net, FlatGraph):
        flat = graph_or_net
        graph = flat.graph
    else:
        graph = graph_or_net
        flat = flatten_graph(graph)
    rows = _graph_rows(flat)
    note = ""
    if use_chip_model:
        try:
            from s2emu.lowering import lower
            from s2emu.network import ConversionOptions

            quantized = is_quantized(graph) if graph is not None else False
            opts = options or ConversionOptions(scale_weights=not quantized)
            chip = {r.layer: r for r in _chip_rows(lower(flat, opts))}
        except ImportError as exc:
            note = f"chip model not available ({exc}); weights only"
        except S2GateError as exc:
            note = f"chip model cannot lower this graph ({exc}); weights only"
        else:
            for r in rows:
                c = chip.get(r.layer)
                if c is not None:
                    r.param_bytes, r.state_bytes = c.param_bytes, c.state_bytes
                    r.chip_weight_bytes_int8 = c.chip_weight_bytes_int8
            if all(r.param_bytes is not None for r in rows):
                return MemoryAccount(rows=rows, source="s2emu.chip")
            note = "chip model has no row for some layers; their params/state are left out"
    return MemoryAccount(rows=rows, source="graph", note=note)


# ------------------------------------------------------------------ storage widths (the gate's memory figures)

from fractions import Fraction  # noqa: E402
from typing import Dict, Mapping, Tuple  # noqa: E402

from harness.records import JsonRecord  # noqa: E402

#: storage type -> (bytes per weight, smallest code, largest code)
STORAGE = {"int8": (1, -128, 127), "int16": (2, -32768, 32767), "int32": (4, -(2 ** 31), 2 ** 31 - 1)}
FLOAT32_BYTES = 4


@dataclass(frozen=True)
class LayerMemory(JsonRecord):
    """Weight bytes of one population (the weights that feed it) as float32 and as the chip stores
    the codes. ``int8_bytes`` (the version-1 key) is the stored bytes: 1 per weight for an int8
    layer, 2 for int16, 4 for int32 or a layer left in float32."""

    name: str
    neurons: Optional[int]
    weights: int
    float32_bytes: int
    int8_bytes: int
    reduction: float
    storage: str = "int8"
    max_abs_code: Optional[float] = None


@dataclass(frozen=True)
class Deployed(JsonRecord):
    """What the chip model (``s2emu.chip.map_to_chip``) places in the PEs' data SRAM for one flow,
    in bytes summed over all PEs: the int8 weights as the PEs hold them (a conv kernel once per PE,
    dense rows expanded by pooling), the synapse rows' overhead (row headers, index bits,
    padding), neuron parameters, state and buffers; ``total_bytes`` is their sum."""

    pes: int
    weight_bytes: int
    synapse_bytes: int
    param_bytes: int
    state_bytes: int
    buffer_bytes: int
    total_bytes: int
    data_sram_per_pe: int
    source: str = "s2emu.chip.map_to_chip"


@dataclass(frozen=True)
class FlowMemory(JsonRecord):
    """Weight memory of one flow: float32 (4 B per weight) against the width each layer's codes
    need on the chip (:func:`storage_of`). ``reduction = 1 - stored / float32`` is kept exactly as
    the fraction ``reduction_exact = [numerator, denominator]`` (integers, lowest terms) and shown
    as a float; ``deployed`` is the chip model's footprint of the same network."""

    flow: str
    weights: int
    float32_bytes: int
    stored_bytes: int
    reduction: float
    reduction_exact: List[int]
    layers: List[LayerMemory]
    deployed: Optional[Deployed] = None
    counts: str = "weights: 4 B per float32 weight vs the bytes of each layer's code width on the chip"

    def reduction_fraction(self) -> Fraction:
        return Fraction(self.reduction_exact[0], self.reduction_exact[1])

    def meets(self, minimum: float) -> bool:
        """``reduction >= minimum`` in exact arithmetic (``minimum`` read as the decimal it prints as)."""
        return self.reduction_fraction() >= Fraction(repr(float(minimum)))

    def lines(self) -> List[str]:
        """The labelled figures, one per line (the same in ``map``, ``quantize``, the gate and the report)."""
        widths: Dict[str, List[str]] = {}
        for r in self.layers:
            widths.setdefault(r.storage, []).append(r.name)
        stored = ", ".join(f"{k} for {', '.join(v)}" for k, v in widths.items()) or "no weights"
        out = [f"weight memory ({self.flow or 'model'}): {self.weights:,} weights; float32 {self.float32_bytes:,} B "
               f"(4 B each) -> stored on the chip {self.stored_bytes:,} B ({stored}); reduction "
               f"{100 * self.reduction:.2f} %"]
        d = self.deployed
        if d is not None:
            out.append(f"deployed footprint (chip model, all PEs' data SRAM): {d.total_bytes:,} B on {d.pes} PEs = "
                       f"weights in the PEs {d.weight_bytes:,} + synapse-row overhead {d.synapse_bytes:,} + neuron parameters {d.param_bytes:,} + state "
                       f"{d.state_bytes:,} + buffers {d.buffer_bytes:,} B ({d.data_sram_per_pe:,} B per PE)")
        return out


def storage_of(weights: Any) -> Tuple[str, Optional[float]]:
    """The storage type a weight array needs on the chip, and its largest |code|.

    Integer-valued codes: ``int8`` within [-128, 127] (round to nearest gives +-127, the vendor's
    truncating conv cast -128), else ``int16`` within [-32768, 32767], else ``int32``. Any
    non-integer (or non-finite) value: the layer was left in float, ``float32``.
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.size == 0:
        return "int8", 0.0
    if not np.all(np.isfinite(w)) or not np.array_equal(w, np.round(w)):
        return "float32", None
    lo, hi = float(w.min()), float(w.max())
    for name, (_, smallest, largest) in STORAGE.items():
        if lo >= smallest and hi <= largest:
            return name, max(abs(lo), abs(hi))
    return "float32", max(abs(lo), abs(hi))


def _bytes_per_weight(storage: str) -> int:
    return STORAGE[storage][0] if storage in STORAGE else FLOAT32_BYTES


def flow_memory(graph: Any, flow: str = "", *, net: Any = None, atoms: Optional[Mapping[str, int]] = None,
                vendor_scaling: bool = False, chip_kw: Optional[Dict[str, Any]] = None) -> FlowMemory:
    """The weight memory of ``graph`` (a NIR graph, FlatGraph or path) as :class:`FlowMemory`.

    Each weight node counts under the first population it feeds (conv kernels once); its bytes
    are its size times the width of :func:`storage_of`. ``vendor_scaling``: the chip's converter
    quantizes every layer to int8 itself (a float graph run with ``scale_weights=True``), so
    every layer is stored as int8. With ``net`` (the lowered network) the chip model's deployed
    footprint is added (``atoms``: atoms per PE overrides; ``chip_kw`` to ``map_to_chip``).
    All byte counts are integers; the reduction is an exact fraction.
    """
    if isinstance(graph, (str, os.PathLike)):
        flat = flatten_graph(load_graph(graph), file=os.fspath(graph))
    elif isinstance(graph, FlatGraph):
        flat = graph
    else:
        flat = flatten_graph(graph)
    topo = analyse(flat)
    counted = set()
    layers: List[LayerMemory] = []
    order = {name: i for i, name in enumerate(flat.order)}
    rank = {"int8": 0, "int16": 1, "int32": 2, "float32": 3}
    for g in topo.groups:
        for p in g.populations:
            n = stored = 0
            kind, biggest = "int8", 0.0
            for w in g.weights:
                if w in counted or p not in topo.targets[w]:
                    continue
                counted.add(w)
                arr = np.asarray(flat.nodes[w].weight)
                k, m = ("int8", None) if vendor_scaling else storage_of(arr)
                n += int(arr.size)
                stored += int(arr.size) * _bytes_per_weight(k)
                if rank[k] > rank[kind]:
                    kind = k
                if m is not None and biggest is not None:
                    biggest = max(biggest, m)
                elif m is None:
                    biggest = None
            if n == 0:
                continue
            f32 = FLOAT32_BYTES * n
            layers.append(LayerMemory(name=p, neurons=int(np.prod(flat.out_shape[p])), weights=n, float32_bytes=f32,
                                      int8_bytes=stored, reduction=1.0 - stored / f32, storage=kind,
                                      max_abs_code=None if vendor_scaling else biggest))
    layers.sort(key=lambda r: order.get(r.name, 0))
    weights = sum(r.weights for r in layers)
    f32 = sum(r.float32_bytes for r in layers)
    stored = sum(r.int8_bytes for r in layers)
    exact = Fraction(f32 - stored, f32) if f32 else Fraction(0)
    deployed = None
    if net is not None:
        from s2emu.chip import map_to_chip

        chip = map_to_chip(net, atoms_per_core=dict(atoms) if atoms else None, **(chip_kw or {}))
        t = chip.total
        deployed = Deployed(pes=int(t.pes), weight_bytes=int(t.weight_bytes_int8), synapse_bytes=int(t.synapse_bytes), param_bytes=int(t.param_bytes),
                            state_bytes=int(t.state_bytes), buffer_bytes=int(t.buffer_bytes),
                            total_bytes=int(t.total_bytes), data_sram_per_pe=int(chip.spec.data_sram_per_pe))
    return FlowMemory(flow=flow, weights=weights, float32_bytes=f32, stored_bytes=stored,
                      reduction=(1.0 - stored / f32) if f32 else 0.0,
                      reduction_exact=[exact.numerator, exact.denominator], layers=layers, deployed=deployed)


def memory_lines(graph: Any, flow: str = "", atoms: Optional[Mapping[str, int]] = None) -> List[str]:
    """The labelled memory figures of a quantized ``graph`` (:meth:`FlowMemory.lines`), with the chip
    model's deployed footprint when the emulator can lower it (atoms per PE as the gate chooses
    them: ``atoms``, the model's metadata, then automatic). The one call for ``map``, ``quantize``,
    the gate's report."""
    from harness.run import choose_atoms, emulator_options

    net = None
    try:
        from s2emu import lower

        net = lower(graph, emulator_options(graph))
    except (ImportError, S2GateError):
        net = None
    chosen = choose_atoms(net, graph, atoms).atoms if net is not None else dict(atoms or {})
    fm = flow_memory(graph, flow, net=net, atoms=chosen)
    lines = fm.lines()
    if net is None:
        lines.append("deployed footprint: not available (the emulator cannot lower this graph)")
    return lines
