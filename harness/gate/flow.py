"""Typed flows: a :class:`Flow` is one int8 graph on its way to the chip; a :class:`FlowRun` runs it on batches.

PTQ and QAT are two instances of the same thing, and so is each sweep point and a board run
(architecture note, "Typed flows"):

* PTQ: int8 graph = ``quantize_ptq(float model)``, float view = the float model itself;
* QAT: int8 graph = the Q-SNN, float view = ``dequantize(Q-SNN)``;
* a sweep point: PTQ at another percentile, predictions only;

A :class:`FlowRun` takes batches ``(start, x)`` with ``x`` (batch, time, *input_shape) being
samples ``start .. start + batch - 1`` of the split, in any order and on any worker, and
accumulates predictions (kept per batch start, so they come out in sample order whatever the
order of the batches), the equivalence of emulator and reference, per-layer activity and the
raster around the first divergence. :meth:`FlowRun.merge` joins two runs of the same flow
over disjoint batches (a shard each, e.g. from a cluster worker); every sum is over integers
and every "first" is a minimum of :func:`harness.compare.divergence_key`, so the result does
not depend on how the samples were split or ordered.

Typed results are in :mod:`harness.gate.results`.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Callable, ContextManager, Dict, List, Optional, Tuple

import numpy as np

from .results import Divergence, Equivalence, LayerRates, NeuroBench, PairedAccuracy, Raster

#: Neurons either side of the first divergence shown in the raster.
RASTER_HALF_WIDTH = 12


@dataclass
class Flow:
    """One int8 graph with everything needed to run and judge it.

    Attributes:
        name: ``"ptq"``, ``"qat"``, ``"sweep:99.0"``, ``"board"``.
        graph: the int8 (quantized) NIR graph.
        flat: its flattened form (node order, shapes).
        float_graph: the float view run on the reference (None: predictions of the emulator only).
        float_flat: the float view's flattened form.
        preset: reference preset of the float view (the model's ``s2gate.preset``).
        network: the lowered ``s2emu`` network of ``graph``.
        dt: the model's tick in seconds (``s2gate.dt``), or None for the default.
        source: the model file the flow comes from (named in its errors).
        output_population: the population whose spikes are the readout.
        sections: evaluation section names of this flow's steps: ``float``, ``emulator``,
            ``equivalence`` (where errors are recorded; see :class:`harness.gate.evaluate`).
        equivalence: compare emulator and reference on ``graph``.
        activity: accumulate per-layer spike rates and NeuroBench figures.
        raster: keep the raster around the first divergence.
        samples: use only the first ``samples`` samples (None: all).
    """

    name: str
    graph: Any
    flat: Any
    network: Any
    output_population: str
    float_graph: Any = None
    float_flat: Any = None
    preset: str = "spinnaker2"
    dt: Optional[float] = None
    source: Optional[str] = None
    sections: Dict[str, str] = field(default_factory=dict)
    equivalence: bool = True
    activity: bool = True
    raster: bool = True
    samples: Optional[int] = None
    #: reference options of a vendor profile (dt, integrator, reset; ``s2emu.profiles``), for both reference runs
    reference_options: Optional[Dict[str, Any]] = None

    def layers(self) -> List[str]:
        """Neuron populations of the float view (else the int8 graph), in graph order."""
        from s2common.graph import NEURON_TYPES

        flat = self.float_flat if self.float_flat is not None else self.flat
        return [n for n in flat.order if flat.type_of(n) in NEURON_TYPES]


class _Guard:
    """No error bookkeeping: every step runs, errors propagate."""

    def ok(self, *names: str) -> bool:
        return True

    def section(self, name: str, file: Optional[str] = None) -> ContextManager[None]:
        return contextlib.nullcontext()


class _Activity:
    """Per-layer spike counts and synaptic operations, summed over batches (integers)."""

    def __init__(self, layers: List[str], sizes: Dict[str, int]) -> None:
        self.layers = layers
        self.sizes = sizes
        self.spikes = {n: 0 for n in layers}
        self.samples = 0
        self.ticks = 0
        self.syn = {"effective_acs": 0, "effective_macs": 0, "dense": 0}

    def add(self, rec: Any, graph_or_net: Any, batch: int) -> None:
        from harness.metrics import synaptic_operations

        for n in self.layers:
            s = rec.get(n, "spikes")
            if s is not None:
                self.spikes[n] += int(np.count_nonzero(s))
                self.ticks = int(s.shape[1])
        self.samples += batch
        ops = synaptic_operations(graph_or_net, rec)
        # the per-sample means times the batch are whole numbers of operations: round them so the
        # sums (and the result) do not depend on how the samples were batched
        self.syn["effective_acs"] += round(ops.effective_acs * batch)
        self.syn["effective_macs"] += round(ops.effective_macs * batch)
        self.syn["dense"] += round(ops.dense * batch)

    def merge(self, other: "_Activity") -> None:
        for n in self.layers:
            self.spikes[n] += other.spikes[n]
        self.samples += other.samples
        self.ticks = self.ticks or other.ticks
        for k in self.syn:
            self.syn[k] += other.syn[k]

    def rates(self) -> Dict[str, float]:
        denom = {n: self.sizes[n] * self.ticks * self.samples for n in self.layers}
        return {n: (self.spikes[n] / denom[n] if denom[n] else 0.0) for n in self.layers}

    def neurobench(self) -> NeuroBench:
        total = sum(self.sizes[n] for n in self.layers) * self.ticks * self.samples
        n = max(self.samples, 1)
        acs, macs, dense = (self.syn[k] / n for k in ("effective_acs", "effective_macs", "dense"))
        return NeuroBench(activation_sparsity=1.0 - sum(self.spikes.values()) / total if total else 1.0,
                          synaptic_operations=acs + macs, effective_acs=acs, effective_macs=macs,
                          dense_operations=dense)


class FlowRun:
    """Runs one :class:`Flow` on batches and accumulates its results (see the module docstring).

    Args:
        flow: the flow.
        guard: records errors per section (``ok(name)``, ``section(name, file)`` as in
            :class:`harness.gate.evaluate._Sections`); default: errors propagate.
        threads: torch threads of the emulator's kernels (None: torch's default).
    """

    def __init__(self, flow: Flow, guard: Any = None, threads: Optional[int] = None) -> None:
        from harness.run import EmulatorBackend, ReferenceBackend

        self.flow = flow
        self.guard = guard if guard is not None else _Guard()
        self.emulator = EmulatorBackend(network=flow.network, threads=threads)
        self.reference = ReferenceBackend(preset=flow.preset, dt=flow.dt, options=flow.reference_options)
        self.int8_reference = ReferenceBackend(preset="spinnaker2", dt=flow.dt, options=flow.reference_options)
        self.preds: Dict[str, Dict[int, np.ndarray]] = {"float": {}, "emulator": {}}
        self.trains = self.identical = self.ambiguous = self.unexplained = 0
        self.same_pred = 0
        self.eq_samples = 0
        self.first: Optional[Tuple[Tuple[int, int, int, int], Divergence]] = None
        self._raster: Optional[Tuple[Tuple[int, ...], Raster]] = None
        layers = flow.layers() if flow.activity else []
        flat = flow.float_flat if flow.float_flat is not None else flow.flat
        sizes = {n: int(np.prod(flat.out_shape[n])) for n in layers}
        self.act = {"float": _Activity(layers, sizes), "emulator": _Activity(list(layers), sizes)}
        self._rank = {n: i for i, n in enumerate(flow.flat.order)}

    # ---------------------------------------------------------------- batches
    def add(self, start: int, x: np.ndarray) -> None:
        """Run samples ``start .. start + len(x) - 1`` (``x``: (batch, time, *input_shape))."""
        from harness.metrics import predict

        f, g, sec = self.flow, self.guard, self.flow.sections
        if f.samples is not None:
            x = x[: max(0, min(int(x.shape[0]), f.samples - start))]
        b = int(x.shape[0])
        if b == 0:
            return
        if f.float_graph is not None and g.ok(sec.get("float", "")):
            with g.section(sec.get("float", ""), f.source):
                rec = self.reference.run(f.float_graph, x)
                self.preds["float"][start] = predict(rec, f.output_population)
                if f.activity:
                    self.act["float"].add(rec, f.float_flat, b)
                del rec  # every layer's spikes of the batch: not kept while the emulator runs (peak memory)
        emu = None
        if f.network is not None and g.ok(sec.get("emulator", "")):
            with g.section(sec.get("emulator", ""), f.source):
                emu = self.emulator.run(f.graph, x)
                self.preds["emulator"][start] = predict(emu, f.output_population)
                if f.activity:
                    self.act["emulator"].add(emu, f.graph, b)
        if emu is not None and f.equivalence and g.ok(sec.get("equivalence", "")):
            with g.section(sec.get("equivalence", ""), f.source):
                self._equivalence(start, x, emu)

    def _equivalence(self, start: int, x: np.ndarray, emu: Any) -> None:
        """Reference (float64, ``spinnaker2`` preset) vs emulator on one batch of the int8 graph.

        Fast path: when every population's spikes are identical, every train is identical and
        the reference ran without recording voltages; otherwise it is re-run recording
        voltages and :func:`harness.compare.check_equivalence` applies the ambiguity-aware rule.
        """
        from harness.compare import check_equivalence, divergence_key

        f = self.flow
        nodes = [n for n in f.layers() if getattr(f.flat.nodes.get(n), "v_threshold", None) is not None]
        b = int(x.shape[0])
        trains = sum(b * int(np.prod(f.flat.out_shape[n])) for n in nodes)
        ref = self.int8_reference.run(f.graph, x)
        self.eq_samples += b
        if all(np.array_equal(np.asarray(ref.spikes(n)), np.asarray(emu.spikes(n))) for n in nodes):
            self.trains += trains
            self.identical += trains
            self.same_pred += b
            if f.raster:
                self._keep_raster((1, start), ref, emu, f.output_population, 0, None,
                                  f"no divergence ({f.name.upper()}): output layer '{f.output_population}', sample "
                                  f"{start}, emulator and reference", None)
            return
        ref = self.int8_reference.run(f.graph, x, record=nodes)
        reset = (f.reference_options or {}).get("reset", "subtract")  # a vendor profile may reset to zero
        comp = check_equivalence(ref, emu, f.graph, reset=reset, output_node=f.output_population, nodes=nodes)
        tr = comp.trains
        self.trains += tr.trains
        self.identical += tr.identical
        self.ambiguous += tr.ambiguous
        self.unexplained += tr.unexplained
        if tr.predictions_identical is not None:
            self.same_pred += round(tr.predictions_identical * b)  # a whole number of samples
        d = tr.first_unexplained
        if d is None:
            if f.raster:
                self._keep_raster((1, start), ref, emu, f.output_population, 0, None,
                                  f"no divergence ({f.name.upper()}): output layer '{f.output_population}', sample "
                                  f"{start}, emulator and reference", None)
            return
        key = divergence_key(int(d.tick), self._rank.get(d.node, len(self._rank)), start + int(d.sample), int(d.neuron))
        if self.first is None or key < self.first[0]:
            detail = f"reference {'spiked' if d.expected else 'did not spike'}, emulator " \
                     f"{'spiked' if d.actual else 'did not'}"
            self.first = (key, Divergence(layer=d.node, neuron=[int(i) for i in d.index] or [int(d.neuron)],
                                          flat_neuron=int(d.neuron), tick=int(d.tick), sample=start + int(d.sample),
                                          detail=detail))
            if f.raster:
                label = "Q-SNN" if f.name == "qat" else f.name.upper()
                self._keep_raster((0,) + key, ref, emu, d.node, int(d.sample), int(d.neuron),
                                  f"first divergence ({label}): layer '{d.node}', neuron {d.neuron}, "
                                  f"tick {d.tick}, sample {start + int(d.sample)}", (int(d.tick), int(d.neuron)))

    def _keep_raster(self, key: Tuple[int, ...], ref: Any, emu: Any, layer: str, sample: int,
                     flat_neuron: Optional[int], title: str, divergence: Optional[Tuple[int, int]]) -> None:
        """Keep the raster with the smallest key: a divergence (0, ...) before the lowest batch (1, start)."""
        if self._raster is not None and self._raster[0] <= key:
            return
        self._raster = (key, make_raster(ref, emu, layer, sample, flat_neuron, title, divergence))

    # ---------------------------------------------------------------- shards
    def merge(self, other: "FlowRun") -> "FlowRun":
        """Add ``other``'s batches (a run of the same flow over other samples) to this run."""
        for kind in self.preds:
            overlap = set(self.preds[kind]) & set(other.preds[kind])
            if overlap:
                raise ValueError(f"flow {self.flow.name}: batches starting at {sorted(overlap)} ran twice")
            self.preds[kind].update(other.preds[kind])
        self.trains += other.trains
        self.identical += other.identical
        self.ambiguous += other.ambiguous
        self.unexplained += other.unexplained
        self.same_pred += other.same_pred
        self.eq_samples += other.eq_samples
        if other.first is not None and (self.first is None or other.first[0] < self.first[0]):
            self.first = other.first
        if other._raster is not None and (self._raster is None or other._raster[0] < self._raster[0]):
            self._raster = other._raster
        for kind in self.act:
            self.act[kind].merge(other.act[kind])
        return self

    # ---------------------------------------------------------------- results
    def predictions(self, kind: str = "emulator") -> Optional[np.ndarray]:
        """Predicted classes (N,) in sample order (``"float"``: the float view; ``"emulator"``), or None."""
        p = self.preds[kind]
        if not p:
            return None
        return np.concatenate([p[k] for k in sorted(p)])

    def equivalence(self) -> Equivalence:
        t = self.trains
        return Equivalence(spike_trains=t, identical=self.identical, ambiguous=self.ambiguous,
                           diverging=self.unexplained, identical_share=self.identical / t if t else 1.0,
                           consistent_share=(self.identical + self.ambiguous) / t if t else 1.0,
                           prediction_agreement=self.same_pred / self.eq_samples if self.eq_samples else 1.0,
                           first_divergence=None if self.first is None else self.first[1])

    def raster(self) -> Optional[Raster]:
        return None if self._raster is None else self._raster[1]

    def has_divergence(self) -> bool:
        return self.first is not None

    def accuracy(self, labels: np.ndarray) -> PairedAccuracy:
        """Float view vs emulator on the same samples (:mod:`harness.gate.stats`)."""
        return paired_accuracy(self.flow.name, self.predictions("float"), self.predictions("emulator"), labels)

    def layer_rates(self) -> List[LayerRates]:
        from s2common.graph import weight_nodes_into

        f = self.flow
        flat = f.float_flat if f.float_flat is not None else f.flat
        a, b = self.act["float"], self.act["emulator"]
        rf, ri = a.rates(), b.rates()
        return [LayerRates(name=n, neurons=a.sizes[n], weights=weight_nodes_into(flat, n), rate_float=rf[n],
                           rate_int8=ri[n]) for n in a.layers]

    def neurobench(self, kind: str) -> Optional[NeuroBench]:
        act = self.act[kind]
        return act.neurobench() if act.samples else None


def paired_accuracy(flow: str, reference: Optional[np.ndarray], candidate: Optional[np.ndarray],
                    labels: np.ndarray) -> PairedAccuracy:
    """Accuracies (percent) of both sides, the drop (pp), its 95 % interval and the resolution.

    Either side may be missing (None: that run failed); the interval needs both.
    """
    from harness.metrics import accuracy

    from . import stats

    ref = None if reference is None else 100.0 * accuracy(reference, labels[: len(reference)])
    cand = None if candidate is None else 100.0 * accuracy(candidate, labels[: len(candidate)])
    if ref is None or cand is None or len(reference) != len(candidate) or len(candidate) == 0:
        n = len(candidate) if candidate is not None else (len(reference) if reference is not None else 0)
        return PairedAccuracy(flow=flow, samples=int(n), reference=ref, candidate=cand, drop=None,
                              resolution=stats.resolution_pp(n) if n else None, method=stats.METHOD)
    y = np.asarray(labels)[: len(candidate)]
    lost, gained = stats.paired_counts(reference == y, candidate == y)
    n = int(len(candidate))
    lo, hi = stats.drop_interval_pp(lost, gained, n)
    return PairedAccuracy(flow=flow, samples=n, reference=ref, candidate=cand, drop=ref - cand, lost=lost,
                          gained=gained, interval=[lo, hi], resolution=stats.resolution_pp(n), method=stats.METHOD)


def make_raster(ref: Any, emu: Any, layer: str, sample: int, flat_neuron: Optional[int], title: str,
                divergence: Optional[Tuple[int, int]]) -> Raster:
    """The spikes of ``2 * RASTER_HALF_WIDTH + 1`` neurons of ``layer`` around ``flat_neuron`` (default:
    the most active one) in ``sample``, reference and emulator."""
    e = np.asarray(ref.spikes(layer))[sample]
    a = np.asarray(emu.spikes(layer))[sample]
    e = e.reshape(e.shape[0], -1)
    a = a.reshape(a.shape[0], -1)
    n = e.shape[1]
    centre = flat_neuron if flat_neuron is not None else int(np.argmax(e.sum(axis=0) + a.sum(axis=0)))
    lo = max(0, centre - RASTER_HALF_WIDTH)
    hi = min(n, lo + 2 * RASTER_HALF_WIDTH + 1)
    lo = max(0, hi - 2 * RASTER_HALF_WIDTH - 1)

    def pts(m: np.ndarray) -> List[List[int]]:
        return [[int(t), int(k) + lo] for t, k in np.argwhere(m[:, lo:hi])]

    return Raster(layer=layer, ticks=[0, int(e.shape[0])], neurons=[lo, hi], emulator=pts(a), reference=pts(e),
                  divergence=list(divergence) if divergence else None, title=title)


def auto_batch_size(flats: List[Any], ticks: int, record_bytes: Optional[int] = None,
                    most: Optional[int] = None) -> int:
    """Samples per batch so that one batch's spike record (1 byte per neuron or input element, tick and
    sample, the largest of ``flats``) stays within ``record_bytes`` (default
    :data:`harness.gate.config.BATCH_RECORD_BYTES`); between 1 and ``most`` (default
    :data:`~harness.gate.config.MAX_AUTO_BATCH`). The bundled P-SNN (14,475 elements x 20 ticks) gets
    64; the seed-scale CNN (123,147 x 100 ticks) gets 21."""
    from .config import BATCH_RECORD_BYTES, MAX_AUTO_BATCH

    budget = BATCH_RECORD_BYTES if record_bytes is None else int(record_bytes)
    top = MAX_AUTO_BATCH if most is None else int(most)
    from s2common.graph import NEURON_TYPES, node_type

    def recorded(flat: Any) -> int:  # what the flows record: the Input and every neuron population
        return sum(int(np.prod(flat.out_shape[n])) for n, node in flat.nodes.items()
                   if n in flat.inputs or node_type(node) in NEURON_TYPES)

    per_sample = max([recorded(f) for f in flats if f is not None] or [1]) * max(1, int(ticks))
    return max(1, min(top, budget // max(1, per_sample)))


def run_batches(runs: List[FlowRun], spikes: np.ndarray, batch_size: int,
                progress: Optional[Callable[[int], None]] = None) -> None:
    """Feed ``spikes`` (N, T, *input_shape) to every run in batches of ``batch_size``, in sample order."""
    n = int(spikes.shape[0])
    bs = max(1, int(batch_size))
    for start in range(0, n, bs):
        x = spikes[start:start + bs]
        for r in runs:
            r.add(start, x)
        if progress is not None:
            progress(int(x.shape[0]))
