"""Compute everything the gate judges, once: :func:`evaluate` -> a JSON-ready dict.

For a float model (P-SNN), a quantized model (Q-SNN) and a data split it computes, in batches
of ``config.batch_size`` samples (results do not depend on the batch size):

* **float accuracy**: the reference simulator on the float graph (its ``s2gate.preset``);
* **PTQ accuracy**: ``harness.quantize.quantize_ptq`` at ``config.percentile`` (round to nearest,
  clip, thresholds scaled by the same λ), run on the emulator with ``scale_weights=False``;
* **QAT accuracies**: the reference on ``dequantize(qsnn)`` (its float accuracy) and the emulator
  on the Q-SNN itself;
* **equivalence**: the reference (float64, ``spinnaker2`` preset) against the emulator on the
  same int8 graph (PTQ and Q-SNN), spike train by spike train with the ambiguity-aware rule of
  :func:`harness.compare.check_equivalence`: shares of identical / ambiguous / unexplained trains,
  share of identical predictions, first unexplained divergence (layer, neuron, tick, sample);
* **memory**: weight bytes float32 vs int8 per layer (``harness.quantize.memory_account`` on the
  lowered network) and the chip map (``s2emu.chip.map_to_chip``: PEs, chips, fits);
* **design rules** (``s2emu.rules.check_design_rules``) on both int8 graphs;
* **NeuroBench figures**: memory footprint, activation sparsity, synaptic operations per sample
  (``harness.metrics``), float and int8;
* per-layer spike rates (float vs int8), the PTQ accuracy at each sweep percentile, and a raster
  around the first divergence (for the report's plots);
* **hardware in the loop** with ``backend="board"``: the board's recording against the emulator's.

Errors a user can cause (a corrupt model, a missing dataset, a graph the chip cannot run) do not
escape: each is recorded as ``errors[section] = one-line message`` and the checks that need that
section fail with it. The result holds no timestamps or timings, so the same inputs give the
same JSON bytes.

Result layout (all numbers plain Python; accuracies in percent, drops in percentage points)::

    {"schema": 1, "digest": str, "config": {...}, "errors": {section: message},
     "data": {"dataset", "split", "samples", "ticks", "input_shape", "classes"},
     "accuracy": {"float", "ptq", "ptq_drop", "qat_float", "qat", "qat_drop"},
     "equivalence": {"ptq"|"qat": {"spike_trains", "identical", "ambiguous", "diverging",
                     "identical_share", "consistent_share", "prediction_agreement",
                     "first_divergence": None | {"layer", "neuron", "flat_neuron", "tick", "sample", "detail"}}},
     "layers": {"ptq"|"qat": [{"name", "neurons", "rate_float", "rate_int8"}]},
     "memory": {"float32_bytes", "int8_bytes", "reduction", "layers": [...], "chip": {...}},
     "design_rules": {"ptq"|"qat": [{"rule", "node", "message", "hint", "severity"}]},
     "neurobench": {"float"|"int8"|"qat_int8": {...}},
     "sweep": [{"percentile", "accuracy", "samples"}], "raster": {...} | None,
     "hil": {"status": "skipped"|"ran", "reason", "comparison"}}
"""
from __future__ import annotations

import contextlib
import os
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from s2common.errors import S2GateError

from .config import GateConfig

SCHEMA = 1
#: Neurons either side of the first divergence shown in the raster.
RASTER_HALF_WIDTH = 12

Quantizer = Callable[..., Any]


class _NoModel(Exception):
    """Internal: no model could be read, so the data is not loaded."""


class _Sections:
    """Collects one-line errors per section; ``with s.section("name"):`` swallows S2GateError.

    Any other exception is a bug in s2gate (or a library), not the user's fault; it is recorded
    as ``[internal-error] ...`` so the gate's checks fail with a message instead of crashing the
    run, unless ``debug`` is set (then it propagates with its traceback).
    """

    def __init__(self, debug: bool = False) -> None:
        self.errors: Dict[str, str] = {}
        self.debug = debug

    def ok(self, *names: str) -> bool:
        return not any(n in self.errors for n in names)

    @contextlib.contextmanager
    def section(self, name: str, file: Optional[str] = None) -> Iterator[None]:
        try:
            yield
        except S2GateError as err:
            if file:
                err.with_file(file)
            self.errors.setdefault(name, str(err))
        except _NoModel:
            pass
        except Exception as exc:  # noqa: BLE001 - see the class docstring
            if self.debug:
                raise
            text = f"{type(exc).__name__}: {exc}".replace("\n", " ")
            self.errors.setdefault(name, f"[internal-error] {name}: {text} (hint: this is a bug in s2gate or a "
                                         "library it uses; rerun with S2GATE_DEBUG=1 or `s2gate --debug gate` for the traceback)")

    def fail(self, name: str, message: str) -> None:
        self.errors.setdefault(name, message)

    def block(self, name: str, because: Sequence[str]) -> None:
        """Mark ``name`` as not computed because an earlier section failed."""
        for b in because:
            if b in self.errors:
                self.errors.setdefault(name, f"not computed: {b} failed: {self.errors[b]}")
                return


# ----------------------------------------------------------------------------- data


def engine_threads() -> "int | None":
    """Torch threads for the emulator's kernels: 1 inside a pytest-xdist worker (the workers
    already fill the cores; two OpenMP threads per worker on a 2-core machine run 3-20x slower),
    else torch's default. Results are the same bits either way."""
    return 1 if os.environ.get("PYTEST_XDIST_WORKER") else None

def load_data(config: GateConfig, T: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Spikes (N, T, *input_shape) bool and labels (N,) int64 of the configured split.

    ``config.dataset``: ``"stand-in"``, ``"dvsgesture"`` (local copy at ``config.data_root`` or
    ``$S2GATE_DVSGESTURE_ROOT``, binned into ``T`` frames) or a ``.npz`` path with arrays
    ``spikes`` and ``labels``. The first ``config.samples`` samples. ``T`` (ticks) defaults to
    the data's own (20 for the stand-in and DVS Gesture).
    """
    from harness.flags import flag
    from s2common.errors import DataNotFoundError, InputDataError

    n = config.samples
    if n is not None and n <= 0:
        raise InputDataError(f"samples must be positive, got {n}", rule="bad-option")
    if config.dataset == "stand-in":
        from harness.data import standin_split

        kw = {"T": int(T)} if T else {}
        spikes, labels = standin_split(config.split, seed=config.seed, n=n, progress=config.progress, **kw)
    elif config.dataset == "dvsgesture":
        from harness.data.dvsgesture import load_frames

        kw = {"T": int(T)} if T else {}
        spikes, labels = load_frames(config.data_root, config.split, progress=config.progress, **kw)
    else:
        path = config.dataset
        if not os.path.exists(path):
            raise DataNotFoundError(f"dataset '{path}' not found", file=path,
                                    hint=f"use {flag('dataset')} stand-in, dvsgesture, or a .npz with arrays 'spikes' and 'labels'")
        try:
            with np.load(path, allow_pickle=False) as f:
                missing = [k for k in ("spikes", "labels") if k not in getattr(f, "files", ())]
                if missing:
                    raise InputDataError(f"the .npz file has no array {' or '.join(repr(m) for m in missing)} "
                                         f"(it has: {', '.join(getattr(f, 'files', ())) or 'nothing'})", file=path,
                                         rule="bad-dataset", hint="save it with np.savez(path, spikes=(N, T, "
                                                                  "*input_shape) 0/1, labels=(N,) ints)")
                spikes, labels = np.asarray(f["spikes"]), np.asarray(f["labels"])
        except InputDataError:
            raise
        except Exception as exc:  # noqa: BLE001 - numpy/zipfile raise many kinds
            raise InputDataError(f"cannot read the .npz file ({type(exc).__name__}: {exc})", file=path,
                                 rule="bad-dataset") from exc
    spikes = np.asarray(spikes)
    labels = np.asarray(labels).reshape(-1)
    if n is not None:
        spikes, labels = spikes[:n], labels[:n]
    if spikes.ndim < 3 or spikes.shape[0] != labels.shape[0] or spikes.shape[0] == 0:
        raise InputDataError(f"dataset gives spikes {spikes.shape} and labels {labels.shape}; expected "
                             "(N, T, *input_shape) and (N,) with N > 0", rule="bad-dataset")
    if labels.dtype.kind not in "iu":
        raise InputDataError(f"labels must be integers, got {labels.dtype}", rule="bad-dataset")
    return spikes, labels.astype(np.int64)


# ----------------------------------------------------------------------------- graphs

def _neuron_nodes(flat: Any) -> List[str]:
    from s2common.graph import NEURON_TYPES

    return [n for n in flat.order if flat.type_of(n) in NEURON_TYPES]


def weight_nodes_into(flat: Any, population: str) -> List[str]:
    """The weight nodes (Affine, Linear, Conv) whose output reaches ``population`` without passing a neuron
    (sorted; :func:`s2common.graph.weight_nodes_into`, which states the rule)."""
    from s2common.graph import weight_nodes_into as _weight_nodes_into

    return _weight_nodes_into(flat, population)


def output_population(flat: Any) -> str:
    """The neuron population whose spikes feed the graph's (first) Output node
    (:func:`s2common.graph.feeding_population`, which states the rule).

    Raises:
        UnsupportedError: rule ``no-readout`` when no neuron feeds that Output.
    """
    from s2common.errors import UnsupportedError
    from s2common.graph import feeding_population

    out = flat.outputs[0]
    population = feeding_population(flat, out)
    if population is None:
        raise UnsupportedError("no neuron population feeds the Output node, so there is no spike readout",
                               node=out, rule="no-readout", hint="end the graph with a spiking layer")
    return population


def _preset(graph: Any) -> str:
    meta = getattr(graph, "metadata", None) or {}
    preset = meta.get("s2gate.preset")
    return str(preset) if preset else "spinnaker2"


def _dt(graph: Any) -> Optional[float]:
    """The tick a model was trained with (``graph.metadata["s2gate.dt"]``, seconds), if it says."""
    meta = getattr(graph, "metadata", None) or {}
    try:
        dt = float(np.asarray(meta["s2gate.dt"]).reshape(-1)[0])
    except (KeyError, TypeError, ValueError, IndexError):
        return None
    return dt if np.isfinite(dt) and dt > 0 else None


def _options(graph: Any) -> Any:
    """Emulator options for an int8 graph: weight scaling off, the model's own dt if it has one."""
    from s2emu import ConversionOptions

    dt = _dt(graph)
    return ConversionOptions(scale_weights=False, dt=dt) if dt else ConversionOptions(scale_weights=False)


def _ticks(graph: Any) -> Optional[int]:
    """The number of ticks a model was trained with (``graph.metadata["s2gate.T"]``), if it says."""
    meta = getattr(graph, "metadata", None) or {}
    try:
        return int(np.asarray(meta["s2gate.T"]).reshape(-1)[0])
    except (KeyError, TypeError, ValueError, IndexError):
        return None


def _violations(items: Sequence[Any]) -> List[Dict[str, str]]:
    return [{"rule": v.rule, "node": v.node, "message": v.message, "hint": getattr(v, "hint", ""),
             "severity": getattr(v, "severity", "error")} for v in items]


# ----------------------------------------------------------------------------- accumulators

class _Equivalence:
    """Sums the ambiguity-aware comparison over batches."""

    def __init__(self) -> None:
        self.trains = self.identical = self.ambiguous = self.unexplained = 0
        self.same_pred = 0
        self.samples = 0
        self.best: Optional[Tuple[Tuple[int, int, int, int], Dict[str, Any]]] = None

    def add(self, comp: Any, offset: int, batch: int, rank: Dict[str, int]) -> None:
        tr = comp.trains
        self.trains += tr.trains
        self.identical += tr.identical
        self.ambiguous += tr.ambiguous
        self.unexplained += tr.unexplained
        if tr.predictions_identical is not None:
            self.same_pred += round(tr.predictions_identical * batch)  # a whole number of samples
        self.samples += batch
        d = tr.first_unexplained
        if d is not None:
            key = (int(d.tick), rank.get(d.node, len(rank)), offset + int(d.sample), int(d.neuron))
            if self.best is None or key < self.best[0]:
                detail = f"reference {'spiked' if d.expected else 'did not spike'}, emulator " \
                         f"{'spiked' if d.actual else 'did not'}"
                self.best = (key, {"layer": d.node, "neuron": [int(i) for i in d.index] or [int(d.neuron)],
                                   "flat_neuron": int(d.neuron), "tick": int(d.tick), "sample": offset + int(d.sample),
                                   "detail": detail})

    def add_identical(self, trains: int, batch: int) -> None:
        """A batch whose spike trains are all identical (no comparison needed)."""
        self.trains += trains
        self.identical += trains
        self.same_pred += batch
        self.samples += batch

    def result(self) -> Dict[str, Any]:
        t = max(self.trains, 1)
        return {"spike_trains": self.trains, "identical": self.identical, "ambiguous": self.ambiguous,
                "diverging": self.unexplained, "identical_share": self.identical / t if self.trains else 1.0,
                "consistent_share": (self.identical + self.ambiguous) / t if self.trains else 1.0,
                "prediction_agreement": self.same_pred / self.samples if self.samples else 1.0,
                "first_divergence": None if self.best is None else self.best[1]}


class _Activity:
    """Per-layer spike counts, activation sparsity and synaptic operations over batches."""

    def __init__(self, layers: Sequence[str], sizes: Dict[str, int]) -> None:
        self.layers = list(layers)
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
        # per-sample means per batch -> sums, divided by all samples at the end
        # the per-sample means times the batch are whole numbers of operations: round them so the
        # sums (and the result) do not depend on how the samples were batched
        self.syn["effective_acs"] += round(ops.effective_acs * batch)
        self.syn["effective_macs"] += round(ops.effective_macs * batch)
        self.syn["dense"] += round(ops.dense * batch)

    def rates(self) -> Dict[str, float]:
        denom = {n: self.sizes[n] * self.ticks * self.samples for n in self.layers}
        return {n: (self.spikes[n] / denom[n] if denom[n] else 0.0) for n in self.layers}

    def sparsity(self) -> float:
        total = sum(self.sizes[n] for n in self.layers) * self.ticks * self.samples
        return 1.0 - sum(self.spikes.values()) / total if total else 1.0

    def synops(self) -> Dict[str, float]:
        n = max(self.samples, 1)
        return {k: v / n for k, v in self.syn.items()}


def _equivalence_batch(graph: Any, flat: Any, x: np.ndarray, emu: Any, out_pop: str, dt: Optional[float]
                       ) -> Tuple[Optional[Any], Any, int]:
    """Reference (float64, ``spinnaker2`` preset) vs emulator on one batch of the same int8 graph.

    Returns ``(comparison, reference recording, spike trains)``. Fast path: when every neuron
    population's spikes are identical, the comparison is None (all trains identical) and the
    reference ran without recording voltages; otherwise the reference is re-run recording
    voltages and :func:`harness.compare.check_equivalence` applies the ambiguity-aware rule.
    """
    from harness.compare import check_equivalence
    from reference import simulate

    nodes = [n for n in _neuron_nodes(flat) if getattr(flat.nodes[n], "v_threshold", None) is not None]
    b = int(x.shape[0])
    trains = sum(b * int(np.prod(flat.out_shape[n])) for n in nodes)
    ref = simulate(graph, x, preset="spinnaker2", dt=dt)
    if all(np.array_equal(np.asarray(ref.spikes(n)), np.asarray(emu.spikes(n))) for n in nodes):
        return None, ref, trains
    ref = simulate(graph, x, preset="spinnaker2", record=nodes, dt=dt)
    return check_equivalence(ref, emu, graph, reset="subtract", output_node=out_pop, nodes=nodes), ref, trains


def _raster(ref: Any, emu: Any, layer: str, sample: int, flat_neuron: Optional[int], title: str,
            divergence: Optional[Tuple[int, int]]) -> Dict[str, Any]:
    e = np.asarray(ref.spikes(layer))[sample]
    a = np.asarray(emu.spikes(layer))[sample]
    e = e.reshape(e.shape[0], -1)
    a = a.reshape(a.shape[0], -1)
    n = e.shape[1]
    centre = flat_neuron if flat_neuron is not None else int(np.argmax(e.sum(axis=0) + a.sum(axis=0)))
    lo = max(0, centre - RASTER_HALF_WIDTH)
    hi = min(n, lo + 2 * RASTER_HALF_WIDTH + 1)
    lo = max(0, hi - 2 * RASTER_HALF_WIDTH - 1)
    pts = lambda m: [[int(t), int(k) + lo] for t, k in np.argwhere(m[:, lo:hi])]  # noqa: E731
    return {"layer": layer, "ticks": [0, int(e.shape[0])], "neurons": [lo, hi], "emulator": pts(a),
            "reference": pts(e), "divergence": list(divergence) if divergence else None, "title": title}


# ----------------------------------------------------------------------------- evaluate

def evaluate(config: GateConfig, *, data: Optional[Tuple[np.ndarray, np.ndarray]] = None,
             quantizer: Optional[Quantizer] = None, debug: bool = False) -> Dict[str, Any]:
    """Run everything the gate checks (see the module docstring for the result's layout).

    Args:
        config: models, data, percentile, seed, batch size...
        data: (spikes (N, T, *input_shape), labels (N,)) to use instead of ``config.dataset``.
        quantizer: replaces ``harness.quantize.quantize_ptq`` (same signature and result type);
            the gate's own tests use it to inject a broken quantizer.
        debug: let unexpected exceptions (bugs) propagate instead of recording them.
    """
    from s2common.graph import flatten_graph, load_graph

    s = _Sections(debug=debug or bool(os.environ.get("S2GATE_DEBUG")))
    cfg = config
    ev: Dict[str, Any] = {"schema": SCHEMA, "digest": cfg.digest(), "config": cfg.as_dict(), "errors": s.errors}
    for key in ("report", "batch_size", "progress"):  # they change no number of the result
        ev["config"].pop(key, None)

    # ---- models
    float_graph = float_flat = None
    with s.section("model", cfg.model):
        float_graph = load_graph(cfg.model, isolate=True)
        float_flat = flatten_graph(float_graph, file=cfg.model)
        out_pop = output_population(float_flat)
    qat_graph = qat_flat = None
    if cfg.qat_model:
        with s.section("qat_model", cfg.qat_model):
            from harness.quantize import is_quantized
            from s2common.errors import QuantizationError

            qat_graph = load_graph(cfg.qat_model, isolate=True)
            qat_flat = flatten_graph(qat_graph, file=cfg.qat_model)
            if not is_quantized(qat_graph):
                raise QuantizationError("is not a quantized NIR graph (no s2gate.quant metadata, or weights that are not "
                                        "int8 codes)", rule="not-quantized",
                                        hint="export the Q-SNN with harness.quantize's QAT export, or quantize with s2gate quantize")
            qat_out = output_population(qat_flat)

    # ---- data
    spikes = labels = None
    no_model = not s.ok("model") and (not cfg.qat_model or not s.ok("qat_model"))
    with s.section("data", cfg.dataset if os.path.exists(str(cfg.dataset)) else None):
        if no_model and data is None:  # nothing to run the data through: do not generate or read it
            raise _NoModel()
        spikes, labels = data if data is not None else load_data(cfg, _ticks(float_graph))
        from harness.data.checks import chance_level, check_dataset, model_classes

        ref_flat = float_flat if float_flat is not None else qat_flat
        checked = check_dataset(spikes, labels, file=cfg.dataset if os.path.exists(str(cfg.dataset)) else None,
                                n_classes=model_classes(ref_flat) if ref_flat is not None else None,
                                binarize=cfg.binarize)
        spikes, labels = checked.spikes, checked.labels
    if spikes is not None:
        ev["data"] = {"dataset": cfg.dataset if data is None else "given", "split": cfg.split,
                      "samples": int(spikes.shape[0]), "ticks": int(spikes.shape[1]),
                      "input_shape": [int(x) for x in spikes.shape[2:]], "classes": int(labels.max()) + 1,
                      "model_classes": model_classes(ref_flat) if ref_flat is not None else None,
                      "binarized": checked.binarized, "notes": checked.notes,
                      "chance": chance_level(labels, model_classes(ref_flat) if ref_flat is not None else None)}
        for name, flat, file in (("model", float_flat, cfg.model), ("qat_model", qat_flat, cfg.qat_model)):
            if flat is not None and tuple(flat.input_shape) != tuple(spikes.shape[2:]):
                s.fail("data", f"[bad-input] {file}: the model's Input takes {tuple(flat.input_shape)} per tick but the "
                               f"data has {tuple(spikes.shape[2:])} (hint: use data of shape (N, T, "
                               f"{', '.join(map(str, flat.input_shape))}))")

    opts = _options(float_graph)
    qat_opts = _options(qat_graph)

    # ---- PTQ graph, rules, lowering, memory
    q = net_ptq = None
    ptq_atoms: Dict[str, int] = {}
    if s.ok("model"):
        with s.section("ptq", cfg.model):
            from harness.quantize import quantize_ptq

            qfn = quantizer or quantize_ptq
            q = qfn(float_graph, percentile=cfg.percentile, source=cfg.model)
        if s.ok("ptq"):
            net_ptq, ptq_atoms = _rules_and_lower(s, "ptq", q.graph, opts, cfg.model, ev,
                                                  atoms_for_graph(cfg, float_graph), cfg.auto_atoms)
    if net_ptq is not None:
        _memory(s, ev, net_ptq, float_graph, q.graph, ptq_atoms)

    net_qat = deq_graph = None
    if qat_graph is not None:
        net_qat, _ = _rules_and_lower(s, "qat", qat_graph, qat_opts, cfg.qat_model, ev,
                                      atoms_for_graph(cfg, qat_graph), cfg.auto_atoms)
        with s.section("qat_float_run", cfg.qat_model):
            from harness.quantize import dequantize

            deq_graph = dequantize(qat_graph)

    # ---- sweep networks
    sweep_nets: Dict[float, Any] = {}
    if net_ptq is not None and cfg.sweep_percentiles():
        for p in cfg.sweep_percentiles():
            if float(p) == float(cfg.percentile):
                sweep_nets[p] = net_ptq
                continue
            with s.section("sweep", cfg.model):
                from s2emu import lower

                from harness.quantize import quantize_ptq

                qfn = quantizer or quantize_ptq
                sweep_nets[p] = lower(qfn(float_graph, percentile=p, source=cfg.model).graph, opts)

    # ---- batched runs
    if s.ok("data") and spikes is not None:
        _run_batches(s, ev, cfg, spikes, labels, float_graph, float_flat, q, net_ptq, qat_graph, qat_flat, deq_graph,
                     net_qat, sweep_nets)

    # ---- hardware in the loop
    ev["hil"] = _hil(s, cfg, q, net_ptq, spikes, ptq_atoms if net_ptq is not None else None)
    ev["errors"] = dict(sorted(s.errors.items()))
    return ev


def atoms_for_graph(config: GateConfig, graph: Any) -> Dict[str, int]:
    """``max_atoms_per_core`` overrides: the model's ``s2gate.atoms_per_core`` metadata, then the config's."""
    meta = getattr(graph, "metadata", None) or {}
    atoms: Dict[str, int] = {}
    raw = meta.get("s2gate.atoms_per_core")
    if isinstance(raw, dict):
        for k, v in raw.items():
            try:
                atoms[str(k)] = int(np.asarray(v).reshape(-1)[0])
            except (TypeError, ValueError, IndexError):
                continue
    atoms.update({k: int(v) for k, v in config.atoms_per_core})
    return atoms


def fit_atoms(net: Any, atoms: Dict[str, int]) -> Dict[str, int]:
    """Atoms per PE for every population that overflows one PE at its current setting and is not
    named in ``atoms``: the largest number that fits (binary search on ``map_to_chip``'s per-layer
    fit, which grows with the atoms per PE). Populations that do not fit even with one atom per PE
    are left alone (the design rules report them)."""
    from s2emu.chip import map_to_chip

    chosen: Dict[str, int] = {}
    chip = map_to_chip(net, atoms_per_core=atoms or None)
    for row in chip.rows:
        if row.fits or row.name in atoms:
            continue
        lo, hi, best = 1, int(row.atoms_per_core) - 1, None
        while lo <= hi:
            mid = (lo + hi) // 2
            trial = {**atoms, **chosen, row.name: mid}
            if map_to_chip(net, atoms_per_core=trial).row(row.name).fits:
                best, lo = mid, mid + 1
            else:
                hi = mid - 1
        if best is not None:
            chosen[row.name] = best
    return chosen


def _rules_and_lower(s: _Sections, flow: str, graph: Any, opts: Any, file: Optional[str], ev: Dict[str, Any],
                     atoms: Dict[str, int], auto: bool) -> Tuple[Any, Dict[str, int]]:
    """Lower ``graph`` for the emulator, fit atoms per PE (``auto``), and run the design rules with
    the lowered network (so the chip-fit and accumulator rules run too).

    Returns (network or None, atoms per core used)."""
    from s2common.graph import flatten_graph
    from s2emu import lower
    from s2emu.rules import check_design_rules

    net = None
    atoms = dict(atoms)
    with s.section(f"{flow}_lower", file):
        net = lower(graph, opts)
        if auto:
            chosen = fit_atoms(net, atoms)
            if chosen:
                ev.setdefault("auto_atoms", {})[flow] = dict(sorted(chosen.items()))
                atoms.update(chosen)
    with s.section(f"rules_{flow}", file):
        flat = flatten_graph(graph, file=file)
        ev.setdefault("design_rules", {})[flow] = _violations(check_design_rules(flat, net=net, options=opts,
                                                                                 atoms_per_core=atoms or None))
    return net, atoms


def _memory(s: _Sections, ev: Dict[str, Any], net: Any, float_graph: Any, q_graph: Any,
            atoms: Optional[Dict[str, int]] = None) -> None:
    from harness.quantize import memory_account

    with s.section("memory"):
        acct = memory_account(net)
        layers = []
        for r in acct.rows:
            if not r.weight_bytes_float32:
                continue
            layers.append({"name": r.layer, "neurons": r.neurons, "weights": r.weights,
                           "float32_bytes": int(r.weight_bytes_float32), "int8_bytes": int(r.weight_bytes_int8),
                           "reduction": 1.0 - r.weight_bytes_int8 / r.weight_bytes_float32})
        f32, i8 = int(acct.weight_bytes_float32), int(acct.weight_bytes_int8)
        ev["memory"] = {"float32_bytes": f32, "int8_bytes": i8, "reduction": (1.0 - i8 / f32) if f32 else 0.0,
                        "total_float32_bytes": int(acct.total_float32), "total_int8_bytes": int(acct.total_int8),
                        "layers": layers}
    with s.section("chip"):
        from s2emu.chip import map_to_chip

        chip = map_to_chip(net, atoms_per_core=atoms or None)
        t = chip.total
        failing = [{"name": r.name, "reason": f"needs {r.max_bytes_per_pe:,} B on one PE, more than the "
                                              f"{chip.spec.data_sram_per_pe:,} B of data SRAM"}
                   for r in chip.rows if not r.fits]
        detail = None
        if t.chips > t.max_chips:
            detail = (f"needs {t.pes} PEs = {t.chips} chips of {chip.spec.usable_pes_per_chip} usable PEs, "
                      f"more than the {t.max_chips} chip(s) allowed")
            biggest = max(chip.rows, key=lambda r: r.pes)
            if biggest.name not in {f["name"] for f in failing}:
                failing.append({"name": biggest.name, "reason": f"takes {biggest.pes} PEs for {biggest.neurons:,} neurons"})
            if len(failing) > 1:
                detail += f"; {len(failing) - 1} layer(s) do not fit one PE's data SRAM"
        elif failing:
            detail = f"{len(failing)} layer(s) do not fit one PE's data SRAM"
        mem = ev.setdefault("memory", {})
        mem["chip"] = {"fits": bool(t.fits), "pes": int(t.pes), "chips": int(t.chips), "max_chips": int(t.max_chips),
                       "pes_per_chip": int(chip.spec.usable_pes_per_chip), "total_bytes": int(t.total_bytes),
                       "max_bytes_per_pe": int(t.max_bytes_per_pe), "failing_layers": failing, "detail": detail,
                       "atoms_per_core": dict(sorted((atoms or {}).items())),
                       "auto_atoms": dict(sorted((ev.get("auto_atoms") or {}).get("ptq", {}).items())),
                       "layers": [{"name": r.name, "model": r.model, "neurons": int(r.neurons), "pes": int(r.pes),
                                   "total_bytes": int(r.total_bytes), "fits": bool(r.fits)} for r in chip.rows]}
    ev.setdefault("neurobench", {})
    from harness.metrics import memory_footprint

    with s.section("memory"):
        ev["neurobench"].setdefault("float", {})["memory_footprint_bytes"] = memory_footprint(float_graph, bits=32)
        ev["neurobench"].setdefault("int8", {})["memory_footprint_bytes"] = memory_footprint(q_graph, bits=8)


def _run_batches(s: _Sections, ev: Dict[str, Any], cfg: GateConfig, spikes: np.ndarray, labels: np.ndarray,
                 float_graph: Any, float_flat: Any, q: Any, net_ptq: Any, qat_graph: Any, qat_flat: Any,
                 deq_graph: Any, net_qat: Any, sweep_nets: Dict[float, Any]) -> None:
    from tqdm.auto import tqdm

    from harness.metrics import accuracy, predict
    from reference import simulate
    from s2emu import Engine

    engines: Dict[int, Any] = {}

    def _engine(net: Any) -> Any:
        """One fast engine per lowered network, built on first use."""
        if id(net) not in engines:
            engines[id(net)] = Engine(net, threads=engine_threads())
        return engines[id(net)]

    N = int(spikes.shape[0])
    bs = max(1, int(cfg.batch_size))
    preds: Dict[str, List[np.ndarray]] = {}
    have_float = float_graph is not None and s.ok("model")
    have_ptq = net_ptq is not None
    have_qat = net_qat is not None and deq_graph is not None
    have_qat_float = deq_graph is not None and qat_flat is not None
    preset = _preset(float_graph) if have_float else "spinnaker2"
    qat_preset = _preset(qat_graph) if qat_graph is not None else "spinnaker2"
    sweep_n = min(N, cfg.sweep_samples or N)
    eq = {"ptq": _Equivalence(), "qat": _Equivalence()}
    act: Dict[str, _Activity] = {}
    raster: Optional[Dict[str, Any]] = None
    raster_key = None
    if have_float:
        layers = _neuron_nodes(float_flat)
        sizes = {n: int(np.prod(float_flat.out_shape[n])) for n in layers}
        act["float"] = _Activity(layers, sizes)
        if have_ptq:
            act["int8"] = _Activity(layers, sizes)
        out_pop = output_population(float_flat)
    if qat_flat is not None:
        qlayers = _neuron_nodes(qat_flat)
        qsizes = {n: int(np.prod(qat_flat.out_shape[n])) for n in qlayers}
        act["qat_float"] = _Activity(qlayers, qsizes)
        act["qat_int8"] = _Activity(qlayers, qsizes)
        qat_out = output_population(qat_flat)
    bar = tqdm(total=N, desc="s2gate evaluate", unit="sample", disable=not cfg.progress, leave=False)
    for start in range(0, N, bs):
        x = spikes[start:start + bs]
        b = int(x.shape[0])
        emu_ptq = None
        if have_float and s.ok("float_run"):
            with s.section("float_run", cfg.model):
                rec = simulate(float_graph, x, preset=preset, dt=_dt(float_graph))
                preds.setdefault("float", []).append(predict(rec, out_pop))
                act["float"].add(rec, float_flat, b)
        if have_ptq and s.ok("ptq_run"):
            with s.section("ptq_run", cfg.model):
                emu_ptq = _engine(net_ptq).run(x)
                preds.setdefault("ptq", []).append(predict(emu_ptq, out_pop))
                act["int8"].add(emu_ptq, q.graph, b)
            if emu_ptq is not None and s.ok("equivalence_ptq"):
                with s.section("equivalence_ptq", cfg.model):
                    comp, ref_q, trains = _equivalence_batch(q.graph, float_flat, x, emu_ptq, out_pop, _dt(float_graph))
                    rank = {n: i for i, n in enumerate(float_flat.order)}
                    if comp is None:
                        eq["ptq"].add_identical(trains, b)
                    else:
                        eq["ptq"].add(comp, start, b, rank)
                    d = None if comp is None else comp.trains.first_unexplained
                    if d is not None:
                        key = (int(d.tick), rank.get(d.node, 0), start + int(d.sample), int(d.neuron))
                        if raster_key is None or raster_key[0] != 0 or key < raster_key[1]:
                            raster_key = (0, key)
                            raster = _raster(ref_q, emu_ptq, d.node, int(d.sample), int(d.neuron),
                                             f"first divergence (PTQ): layer '{d.node}', neuron {d.neuron}, "
                                             f"tick {d.tick}, sample {start + int(d.sample)}",
                                             (int(d.tick), int(d.neuron)))
                    elif raster is None and start == 0:
                        raster_key = (1, None)
                        raster = _raster(ref_q, emu_ptq, out_pop, 0, None,
                                         f"no divergence (PTQ): output layer '{out_pop}', sample 0, "
                                         "emulator and reference", None)
        for p, net in sweep_nets.items():
            if net is net_ptq or start >= sweep_n or not s.ok("sweep"):
                continue
            with s.section("sweep", cfg.model):
                xs = x[: max(0, min(b, sweep_n - start))]
                preds.setdefault(f"sweep:{p!r}", []).append(predict(_engine(net).run(xs), out_pop))
        if have_qat_float and s.ok("qat_float_run"):
            with s.section("qat_float_run", cfg.qat_model):
                rec = simulate(deq_graph, x, preset=qat_preset, dt=_dt(qat_graph))
                preds.setdefault("qat_float", []).append(predict(rec, qat_out))
                act["qat_float"].add(rec, qat_flat, b)
        if have_qat:
            emu_qat = None
            if s.ok("qat_run"):
                with s.section("qat_run", cfg.qat_model):
                    emu_qat = _engine(net_qat).run(x)
                    preds.setdefault("qat", []).append(predict(emu_qat, qat_out))
                    act["qat_int8"].add(emu_qat, qat_flat, b)
            if emu_qat is not None and s.ok("equivalence_qat"):
                with s.section("equivalence_qat", cfg.qat_model):
                    comp, ref_q, trains = _equivalence_batch(qat_graph, qat_flat, x, emu_qat, qat_out, _dt(qat_graph))
                    if comp is None:
                        eq["qat"].add_identical(trains, b)
                    else:
                        eq["qat"].add(comp, start, b, {n: i for i, n in enumerate(qat_flat.order)})
                    d = None if comp is None else comp.trains.first_unexplained
                    if d is not None and (raster_key is None or raster_key[0] == 1):
                        raster_key = (2, None)
                        raster = _raster(ref_q, emu_qat, d.node, int(d.sample), int(d.neuron),
                                         f"first divergence (Q-SNN): layer '{d.node}', neuron {d.neuron}, "
                                         f"tick {d.tick}, sample {start + int(d.sample)}", (int(d.tick), int(d.neuron)))
        bar.update(b)
    bar.close()

    # ---- collect
    def acc_of(key: str, n: Optional[int] = None) -> Optional[float]:
        if key not in preds:
            return None
        p = np.concatenate(preds[key])
        return 100.0 * accuracy(p, labels[: len(p)])

    a: Dict[str, Any] = {}
    with s.section("float_run"):
        if s.ok("float_run") and "float" in preds:
            a["float"] = acc_of("float")
    with s.section("ptq_run"):
        if s.ok("ptq_run") and "ptq" in preds:
            a["ptq"] = acc_of("ptq")
            if "float" in a:
                a["ptq_drop"] = a["float"] - a["ptq"]
    with s.section("qat_run"):
        if s.ok("qat_float_run") and "qat_float" in preds:
            a["qat_float"] = acc_of("qat_float")
        if s.ok("qat_run") and "qat" in preds:
            a["qat"] = acc_of("qat")
            if "qat_float" in a:
                a["qat_drop"] = a["qat_float"] - a["qat"]
    ev["accuracy"] = a
    ev["equivalence"] = {}
    if have_ptq and s.ok("ptq_run", "equivalence_ptq"):
        ev["equivalence"]["ptq"] = eq["ptq"].result()
    if have_qat and s.ok("qat_run", "equivalence_qat"):
        ev["equivalence"]["qat"] = eq["qat"].result()
    ev["raster"] = raster

    layers: Dict[str, List[Dict[str, Any]]] = {}
    if "float" in act and "int8" in act:
        rf, ri = act["float"].rates(), act["int8"].rates()
        layers["ptq"] = [{"name": n, "neurons": act["float"].sizes[n], "weights": weight_nodes_into(float_flat, n),
                          "rate_float": rf[n], "rate_int8": ri[n]} for n in act["float"].layers]
    if "qat_float" in act and have_qat:
        rf, ri = act["qat_float"].rates(), act["qat_int8"].rates()
        layers["qat"] = [{"name": n, "neurons": act["qat_float"].sizes[n], "weights": weight_nodes_into(qat_flat, n),
                          "rate_float": rf[n], "rate_int8": ri[n]} for n in act["qat_float"].layers]
    ev["layers"] = layers

    nb = ev.setdefault("neurobench", {})
    for key, col in (("float", "float"), ("int8", "int8"), ("qat_int8", "qat_int8")):
        if key in act and act[key].samples:
            ops = act[key].synops()
            nb.setdefault(col, {}).update({"activation_sparsity": act[key].sparsity(),
                                           "synaptic_operations": ops["effective_acs"] + ops["effective_macs"],
                                           "effective_acs": ops["effective_acs"],
                                           "effective_macs": ops["effective_macs"],
                                           "dense_operations": ops["dense"]})
    if qat_graph is not None and "qat_int8" in nb:
        from harness.metrics import memory_footprint

        nb["qat_int8"]["memory_footprint_bytes"] = memory_footprint(qat_graph, bits=8)

    sweep = []
    for p, net in sorted(sweep_nets.items()):
        key = "ptq" if net is net_ptq else f"sweep:{p!r}"
        if key in preds:
            pr = np.concatenate(preds[key])[:sweep_n]
            sweep.append({"percentile": float(p), "accuracy": 100.0 * accuracy(pr, labels[:len(pr)]),
                          "samples": int(len(pr))})
    ev["sweep"] = sweep


def _hil(s: _Sections, cfg: GateConfig, q: Any, net_ptq: Any, spikes: Optional[np.ndarray],
         atoms: Optional[Dict[str, int]] = None) -> Dict[str, Any]:
    """Hardware in the loop: the PTQ graph on the board against the emulator, spike for spike
    and voltage bit for voltage bit, on the first ``batch_size`` samples."""
    if cfg.backend != "board":
        return {"status": "skipped", "reason": "no board configured (run with --s2-backend board --s2-board-host IP "
                                               "to compare a SpiNNaker2 board with the emulator)"}
    if not cfg.board_host:
        s.fail("hil", "[no-board-host] the board backend needs the board's Ethernet IP "
                      "(hint: pass --s2-board-host IP / s2gate gate --board-host IP)")
        return {"status": "error"}
    if q is None or net_ptq is None or spikes is None:
        s.block("hil", ["model", "ptq", "ptq_lower", "data"])
        return {"status": "error"}
    with s.section("hil", cfg.model):
        from harness.backends import BoardBackend, EmulatorBackend
        from harness.compare import compare_recordings

        x = spikes[: min(len(spikes), cfg.batch_size)]
        board = BoardBackend(host=cfg.board_host, max_atoms_per_core=atoms).run(q.graph, x, record="all")
        emu = EmulatorBackend().run(q.graph, x, record="all")
        comp = compare_recordings(emu, board, observables=("spikes", "v"))
        trains = diff_trains = 0
        for r in comp.rows:
            if r.note or r.observable != "spikes":
                continue
            e = np.asarray(emu.spikes(r.node)).reshape(x.shape[0], emu.ticks, -1)
            bt = np.asarray(board.spikes(r.node)).reshape(x.shape[0], board.ticks, -1)
            t = min(e.shape[1], bt.shape[1])
            trains += e.shape[0] * e.shape[2]
            diff_trains += int((e[:, :t] != bt[:, :t]).any(axis=1).sum())
        d = comp.first_divergence
        fd = None if d is None else {"layer": d.node, "neuron": [int(i) for i in d.index] or [int(d.neuron)],
                                     "flat_neuron": int(d.neuron), "tick": int(d.tick), "sample": int(d.sample),
                                     "detail": f"{d.observable}: emulator {d.expected}, board {d.actual}"}
        return {"status": "ran", "samples": int(x.shape[0]), "mismatches": int(comp.mismatches),
                "comparison": {"spike_trains": trains, "identical": trains - diff_trains, "ambiguous": 0,
                               "diverging": diff_trains, "voltage_mismatches": sum(r.mismatches for r in comp.rows
                                                                                   if r.observable == "v"),
                               "identical_share": (trains - diff_trains) / trains if trains else 1.0,
                               "first_divergence": fd}}
    return {"status": "error"}


def sweep(config: GateConfig, *, data: Optional[Tuple[np.ndarray, np.ndarray]] = None) -> Dict[str, Any]:
    """PTQ accuracy on the emulator at each of ``config.sweep`` percentiles, and the float accuracy.

    Unlike :func:`evaluate`, errors raise (:class:`S2GateError`): the sweep has nothing to report
    without its model and data.

    Returns:
        ``{"config", "data", "accuracy": {"float"}, "sweep": [{"percentile", "accuracy", "samples",
        "clipped_fraction"}]}`` (accuracies in percent; ``clipped_fraction`` over all weights).
    """
    from tqdm.auto import tqdm

    from harness.metrics import accuracy, predict
    from harness.quantize import quantize_ptq
    from reference import simulate
    from s2common.graph import flatten_graph, load_graph
    from s2emu import Engine, lower

    graph = load_graph(config.model, isolate=True)
    flat = flatten_graph(graph, file=config.model)
    out_pop = output_population(flat)
    spikes, labels = data if data is not None else load_data(config, _ticks(graph))
    from harness.data.checks import check_dataset, model_classes

    checked = check_dataset(spikes, labels, file=config.dataset if os.path.exists(str(config.dataset)) else None,
                            n_classes=model_classes(flat), input_shape=flat.input_shape, binarize=config.binarize)
    spikes, labels = checked.spikes, checked.labels
    ps = sorted(set(float(p) for p in config.sweep))
    opts = _options(graph)
    nets, clipped = {}, {}
    for p in ps:
        q = quantize_ptq(graph, percentile=p, source=config.model)
        nets[p] = lower(q.graph, opts)
        n_w = sum(r.n_weights for r in q.layers)
        clipped[p] = sum(r.clipped_fraction * r.n_weights for r in q.layers) / n_w if n_w else 0.0
    preds: Dict[Any, List[np.ndarray]] = {}
    engines = {p: Engine(net, threads=engine_threads()) for p, net in nets.items()}
    N, bs = int(spikes.shape[0]), max(1, int(config.batch_size))
    preset = _preset(graph)
    with tqdm(total=N, desc="s2gate sweep", unit="sample", disable=not config.progress, leave=False) as bar:
        for start in range(0, N, bs):
            x = spikes[start:start + bs]
            preds.setdefault("float", []).append(predict(simulate(graph, x, preset=preset, dt=_dt(graph)), out_pop))
            for p, eng in engines.items():
                preds.setdefault(p, []).append(predict(eng.run(x), out_pop))
            bar.update(int(x.shape[0]))
    cfg = config.as_dict()
    for key in ("report", "batch_size", "progress"):
        cfg.pop(key, None)
    return {"schema": SCHEMA, "config": cfg,
            "data": {"dataset": config.dataset, "split": config.split, "samples": N, "ticks": int(spikes.shape[1])},
            "accuracy": {"float": 100.0 * accuracy(np.concatenate(preds["float"]), labels)},
            "sweep": [{"percentile": p, "accuracy": 100.0 * accuracy(np.concatenate(preds[p]), labels), "samples": N,
                       "clipped_fraction": clipped[p]} for p in ps]}
