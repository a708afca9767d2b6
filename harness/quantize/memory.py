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
