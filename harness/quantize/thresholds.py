"""The threshold-scaling lesson as a measurement: scaled, unscaled and searched thresholds on the emulator.

PTQ multiplies every incoming weight of a population by ``lambda`` (``q = round(lambda w)``), so
its voltages must be multiplied by the same ``lambda`` for the chip to compute the float
network's spikes (:mod:`harness.quantize.ptq`). The study behind this project found that this
threshold scaling, together with the percentile, decides the accuracy loss. This module runs
three variants of one PTQ graph on the bit-exact emulator and tabulates accuracy and per-layer
spike rates next to the float reference:

* ``scaled``: thresholds (and ``v_reset``, ``v_leak``) times lambda, as :func:`quantize_ptq` does;
* ``unscaled``: the same int8 codes with the float graph's thresholds left as they were (in
  float units, i.e. lambda times too low in chip units);
* ``searched``: the scaled thresholds times a factor per population group chosen on the
  calibration split: one pass of coordinate search in graph order over :data:`DEFAULT_FACTORS`,
  each population's factor the one that maximises agreement of the predicted class with the float
  reference on the calibration inputs (ties: the smaller summed |output spike-count difference|,
  then the factor closest to 1).

Spike rate: spikes per neuron per tick of each spiking population, averaged over the test samples.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from s2common.graph import node_type

from .format import META_KEY, POPULATION_PARAMS, SPIKING_TYPES
from .ptq import quantize_ptq
from .topology import analyse

#: threshold factors of the search (relative to the scaled threshold)
DEFAULT_FACTORS: Tuple[float, ...] = (0.8, 0.9, 1.0, 1.1, 1.25)
VARIANTS = ("scaled", "unscaled", "searched")


@dataclass
class AblationRow:
    """One variant on the emulator.

    Attributes:
        variant: ``"float"`` (the reference), ``"scaled"``, ``"unscaled"`` or ``"searched"``.
        accuracy: % of test samples whose predicted class is the label.
        agreement: % of test samples whose predicted class is the float reference's (100 for float).
        rates: spiking population -> spikes per neuron per tick on the test samples.
        factors: population -> threshold factor relative to the scaled threshold (searched; else 1 or 1/lambda).
    """

    variant: str
    accuracy: float
    agreement: float
    rates: Dict[str, float]
    factors: Dict[str, float] = field(default_factory=dict)


@dataclass
class ThresholdAblation:
    """The table :func:`threshold_ablation` returns."""

    model: str
    samples: int
    calibration_samples: int
    percentile: float
    preset: str
    populations: List[str]
    rows: List[AblationRow]

    def row(self, variant: str) -> AblationRow:
        return next(r for r in self.rows if r.variant == variant)

    def as_dict(self) -> Dict[str, Any]:
        return {"model": self.model, "samples": self.samples, "calibration_samples": self.calibration_samples,
                "percentile": self.percentile, "preset": self.preset, "populations": list(self.populations),
                "rows": [vars(r) for r in self.rows]}

    def table(self, tablefmt: str = "simple") -> str:
        """Variant, accuracy, agreement, then one spike-rate column per population (spikes / neuron / tick)."""
        from tabulate import tabulate

        head = ["thresholds", "accuracy %", "agreement %"] + [f"rate {p}" for p in self.populations]
        rows = [[r.variant, f"{r.accuracy:.2f}", f"{r.agreement:.2f}"] + [f"{r.rates.get(p, float('nan')):.4f}"
                                                                            for p in self.populations]
                for r in self.rows]
        return tabulate(rows, headers=head, tablefmt=tablefmt)

    def factors_table(self, tablefmt: str = "simple") -> str:
        from tabulate import tabulate

        s = self.row("searched").factors
        return tabulate([[p, f"{s.get(p, 1.0):g}"] for p in self.populations], headers=["population", "searched factor"],
                        tablefmt=tablefmt)


def with_threshold_factors(qgraph: Any, factors: Dict[str, float]) -> Any:
    """A copy of a quantized graph with populations' voltages times a factor (population -> factor)."""
    out = copy.deepcopy(qgraph)
    from s2common.graph import flatten_graph

    flat = flatten_graph(out)
    for name, f in factors.items():
        node = flat.nodes[name]
        for param in POPULATION_PARAMS.get(node_type(node), ()):
            v = getattr(node, param, None)
            if v is None:
                continue
            arr = np.asarray(v)
            setattr(node, param, np.asarray(arr.astype(np.float64) * float(f), dtype=arr.dtype))
    return out


def unscaled(qgraph: Any) -> Any:
    """The quantized graph with its populations' voltages back in float units (divided by their lambda)."""
    from s2common.graph import flatten_graph

    flat = flatten_graph(qgraph)
    factors = {}
    for name, node in flat.nodes.items():
        meta = (getattr(node, "metadata", None) or {}).get(META_KEY)
        if node_type(node) in POPULATION_PARAMS and meta is not None:
            lam = np.asarray(meta.get("scale", 1.0), dtype=np.float64)
            factors[name] = 1.0 / lam  # per channel: an array over the first axis
    out = copy.deepcopy(qgraph)
    oflat = flatten_graph(out)
    for name, inv in factors.items():
        node = oflat.nodes[name]
        for param in POPULATION_PARAMS[node_type(node)]:
            v = getattr(node, param, None)
            if v is None:
                continue
            arr = np.asarray(v)
            f = inv if inv.ndim == 0 or arr.ndim == 0 else inv.reshape((-1,) + (1,) * (arr.ndim - 1))
            setattr(node, param, np.asarray(arr.astype(np.float64) * f, dtype=arr.dtype))
    return out


def _spike_counts(run: Callable[[np.ndarray], Any], x: np.ndarray, chunk: int
                  ) -> Tuple[Dict[str, np.ndarray], Dict[str, float]]:
    """Spike counts per spiking population ((batch, *shape), summed over ticks) and mean rates
    (spikes per neuron and tick) of ``run`` (one simulator call on a chunk of samples) on x (N, T, ...)."""
    counts: Dict[str, List[np.ndarray]] = {}
    for lo in range(0, len(x), chunk):
        rec = run(x[lo:lo + chunk])
        for name in rec.nodes:
            arr = rec.get(name, "spikes")
            if arr is not None:
                counts.setdefault(name, []).append(arr.sum(axis=1, dtype=np.float64))
    out = {k: np.concatenate(v) for k, v in counts.items()}
    ticks = int(x.shape[1])
    return out, {k: float(v.mean() / ticks) for k, v in out.items()}


def _emulate(graph: Any, x: np.ndarray, options: Any, chunk: int) -> Tuple[Dict[str, np.ndarray], Dict[str, float]]:
    """Output spike counts and rates on the emulator (see :func:`_spike_counts`)."""
    import s2emu

    engine = s2emu.Engine(s2emu.lower(graph, options), threads=1)
    return _spike_counts(engine.run, x, chunk)


def _reference(graph: Any, x: np.ndarray, preset: str, dt: Optional[float], chunk: int
               ) -> Tuple[Dict[str, np.ndarray], Dict[str, float]]:
    """Output spike counts and rates on the float reference (see :func:`_spike_counts`)."""
    from reference import simulate

    return _spike_counts(lambda xb: simulate(graph, xb, preset=preset, dt=dt), x, chunk)


def _pred(counts: Dict[str, np.ndarray], out_pop: str) -> np.ndarray:
    c = counts[out_pop]
    return c.reshape(c.shape[0], -1).argmax(axis=1)


def threshold_ablation(graph: Any, x: np.ndarray, labels: np.ndarray, calib_x: np.ndarray, *, model: str = "model",
                       percentile: float = 100.0, factors: Sequence[float] = DEFAULT_FACTORS,
                       preset: Optional[str] = None, dt: Optional[float] = None, options: Any = None,
                       chunk: int = 32) -> ThresholdAblation:
    """Float reference, then scaled / unscaled / searched thresholds of one PTQ graph on the emulator.

    Args:
        graph: the float NIR graph.
        x, labels: test inputs (N, T, *input_shape) and labels (N,).
        calib_x: calibration inputs for the search, disjoint from ``x``.
        percentile: PTQ percentile (lambda = 127 / percentile_p(|W|)).
        factors: the search's factor grid (1 is added if missing).
        preset, dt: the float reference's preset and tick (default: the graph's ``s2gate.preset`` / ``s2gate.dt``).
        options: ``s2emu.ConversionOptions`` (default: weight scaling off, the graph's dt), as the gate.
        chunk: samples per simulator call (no effect on the numbers).

    Returns:
        :class:`ThresholdAblation` with rows float, scaled, unscaled, searched.
    """
    from s2common.graph import feeding_population, flatten_graph

    from .calibrate import graph_preset

    meta = getattr(graph, "metadata", None) or {}
    if dt is None and "s2gate.dt" in meta:
        dt = float(np.asarray(meta["s2gate.dt"]).reshape(-1)[0])
    preset = preset or graph_preset(graph)
    if options is None:
        from s2emu import ConversionOptions

        options = ConversionOptions(scale_weights=False, dt=dt) if dt else ConversionOptions(scale_weights=False)
    flat = flatten_graph(graph)
    out_pop = feeding_population(flat)
    pops = [n for n in flat.order if flat.type_of(n) in SPIKING_TYPES]
    labels = np.asarray(labels).reshape(-1)
    q = quantize_ptq(graph, percentile=percentile).graph

    fc, fr = _reference(graph, x, preset, dt, chunk)
    f_pred = _pred(fc, out_pop)
    rows = [AblationRow("float", 100.0 * float(np.mean(f_pred == labels)), 100.0, fr)]

    def row(name: str, g: Any, fac: Dict[str, float]) -> AblationRow:
        c, r = _emulate(g, x, options, chunk)
        p = _pred(c, out_pop)
        return AblationRow(name, 100.0 * float(np.mean(p == labels)), 100.0 * float(np.mean(p == f_pred)), r, fac)

    rows.append(row("scaled", q, {p: 1.0 for p in pops}))
    rows.append(row("unscaled", unscaled(q), {}))
    chosen = search_thresholds(graph, q, calib_x, factors=factors, preset=preset, dt=dt, options=options, chunk=chunk,
                               out_pop=out_pop)
    rows.append(row("searched", with_threshold_factors(q, chosen), chosen))
    return ThresholdAblation(model=model, samples=int(len(x)), calibration_samples=int(len(calib_x)),
                             percentile=float(percentile), preset=str(preset), populations=pops, rows=rows)


def search_thresholds(graph: Any, qgraph: Any, calib_x: np.ndarray, *, factors: Sequence[float] = DEFAULT_FACTORS,
                      preset: str = "spinnaker2", dt: Optional[float] = None, options: Any = None, chunk: int = 32,
                      out_pop: Optional[str] = None) -> Dict[str, float]:
    """Per population group, the threshold factor (on top of the scaled threshold) chosen on ``calib_x``.

    One pass over the groups in graph order; each group's factor maximises the calibration
    agreement of the emulator's predicted class with the float reference's, ties broken by the
    smaller summed |output spike-count difference|, then by the factor closest to 1. Populations
    joined by shared weights get one factor. Returns population -> factor.
    """
    from s2common.graph import feeding_population, flatten_graph

    flat = flatten_graph(graph)
    out_pop = out_pop or feeding_population(flat)
    if options is None:
        from s2emu import ConversionOptions

        options = ConversionOptions(scale_weights=False, dt=dt) if dt else ConversionOptions(scale_weights=False)
    fc, _ = _reference(graph, calib_x, preset, dt, chunk)
    target = fc[out_pop]
    f_pred = _pred(fc, out_pop)
    grid = sorted(set(float(f) for f in factors) | {1.0}, key=lambda f: (abs(f - 1.0), f))
    topo = analyse(flat)
    rank = {n: i for i, n in enumerate(flat.order)}
    groups = sorted(topo.groups, key=lambda g: min(rank[p] for p in g.populations))
    chosen: Dict[str, float] = {p: 1.0 for g in groups for p in g.populations}

    def score(fs: Dict[str, float]) -> Tuple[float, float]:
        c, _ = _emulate(with_threshold_factors(qgraph, fs), calib_x, options, chunk)
        return float(np.mean(_pred(c, out_pop) == f_pred)), -float(np.abs(c[out_pop] - target).sum())

    best_score = score(chosen)
    for g in groups:
        best_f = chosen[g.populations[0]]
        for f in grid:
            if f == best_f:
                continue
            trial = dict(chosen, **{p: f for p in g.populations})
            s = score(trial)
            if s > best_score:
                best_score, best_f = s, f
        for p in g.populations:
            chosen[p] = best_f
    return chosen
