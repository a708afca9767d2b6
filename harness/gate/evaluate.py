"""Compute everything the gate judges, once: :func:`evaluate` -> :class:`~harness.gate.results.Evaluation`.

For a float model (P-SNN), a quantized model (Q-SNN) and a data split it builds one
:class:`~harness.gate.flow.Flow` per int8 graph and feeds the data through a
:class:`~harness.gate.flow.FlowRun` per flow, in batches of ``config.batch_size`` samples
(results do not depend on the batch size, nor on the order of the batches):

* **PTQ flow**: ``harness.quantize.quantize_ptq`` at ``config.percentile``; the float model on the
  reference (its ``s2gate.preset``) is its float view;
* **QAT flow**: the Q-SNN itself, its float view ``dequantize(qsnn)``;
* **sweep flows**: PTQ at each sweep percentile, predictions only;
* **board flow** (``backend="board"``): the PTQ graph on the board against the emulator.

Per flow: paired accuracies (float view vs emulator on the same samples, with a 95 %
interval: :mod:`harness.gate.stats`), equivalence (reference vs emulator on the same int8
graph, ambiguity-aware: :func:`harness.compare.check_equivalence`), per-layer spike rates,
NeuroBench figures, design rules (``s2emu.rules``), weight memory by storage width and the
chip model's deployed footprint (:func:`harness.quantize.memory.flow_memory`); for PTQ also
the chip map (``s2emu.chip.map_to_chip``, atoms per PE from :func:`harness.run.choose_atoms`).

Errors a user can cause (a corrupt model, a missing dataset, a graph the chip cannot run) do not
escape: each is recorded as ``errors[section] = one-line message`` and the checks that need that
section fail with it. A flow's errors are recorded under its own sections, so an unreadable
Q-SNN fails the QAT checks only. The result holds no timestamps or timings, so the same inputs
give the same JSON bytes (``Evaluation.to_json``; layout in :mod:`harness.gate.results`).
"""
from __future__ import annotations

import contextlib
import os
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from s2common.errors import S2GateError

from harness.run import engine_threads, fit_atoms  # noqa: F401 - re-exported for existing callers
from harness.run.options import model_dt, model_preset, model_ticks

from .config import GateConfig
from .flow import Flow, FlowRun, run_batches
from .results import (SCHEMA, ChipFit, ChipLayer, DataInfo, Divergence, Evaluation, FailingLayer, Hil, HilComparison,
                      MemorySummary, NeuroBench, SweepPoint, Violation)

Quantizer = Callable[..., Any]

#: a flow's evaluation sections (where its errors are recorded; the checks name them)
FLOW_SECTIONS = {
    "ptq": {"model": "model", "build": "ptq", "lower": "ptq_lower", "rules": "rules_ptq", "memory": "memory",
            "float": "float_run", "emulator": "ptq_run", "equivalence": "equivalence_ptq"},
    "qat": {"model": "qat_model", "build": "qat_model", "lower": "qat_lower", "rules": "rules_qat",
            "memory": "memory_qat", "float": "qat_float_run", "emulator": "qat_run", "equivalence": "equivalence_qat"},
}


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


def atoms_for_graph(config: GateConfig, graph: Any) -> Dict[str, int]:
    """``max_atoms_per_core`` overrides: the model's ``s2gate.atoms_per_core`` metadata, then the config's."""
    from harness.run import atoms_from_metadata

    return {**atoms_from_metadata(graph), **{k: int(v) for k, v in config.atoms_per_core}}


def _violations(items: Sequence[Any]) -> List[Violation]:
    return [Violation(rule=v.rule, node=v.node, message=v.message, hint=getattr(v, "hint", ""),
                      severity=getattr(v, "severity", "error")) for v in items]


class _Build:
    """What building one flow produced (the flow itself, and the per-flow figures that need no data)."""

    def __init__(self) -> None:
        self.flow: Optional[Flow] = None
        self.atoms: Dict[str, int] = {}
        self.chosen: Dict[str, int] = {}
        self.rules: Optional[List[Violation]] = None
        self.memory: Any = None
        self.net: Any = None
        self.max_chips: int = 1


def _build_flow(s: _Sections, name: str, graph: Any, float_graph: Any, source: Optional[str], cfg: GateConfig,
                options_of: Any) -> _Build:
    """Lower ``graph`` (int8) for the emulator, choose atoms per PE, run the design rules with the
    lowered network (so the chip-fit and accumulator rules run too) and count its memory."""
    from harness.quantize.memory import flow_memory
    from harness.run import choose_atoms, emulator_options
    from s2common.graph import flatten_graph
    from s2emu import lower
    from s2emu.rules import check_design_rules

    sec = FLOW_SECTIONS[name]
    out = _Build()
    out.max_chips = max(1, int(cfg.max_chips))
    from harness.run.options import profile_atoms, reference_options

    opts = emulator_options(graph, profile=cfg.profile)
    ref_opts = reference_options(options_of, cfg.profile)
    overrides = {**profile_atoms(options_of, cfg.profile), **{k: int(v) for k, v in cfg.atoms_per_core}}
    with s.section(sec["lower"], source):
        out.net = lower(graph, opts)
        choice = choose_atoms(out.net, options_of, overrides, auto=cfg.auto_atoms)
        out.atoms, out.chosen = choice.atoms, choice.chosen
    if out.net is None:
        from harness.run import atoms_from_metadata

        out.atoms = {**atoms_from_metadata(options_of), **overrides}
    flat = None
    with s.section(sec["rules"], source):
        flat = flatten_graph(graph, file=source)
        out.rules = _violations(check_design_rules(flat, net=out.net, options=opts, atoms_per_core=out.atoms or None,
                                                   max_chips=out.max_chips))
    # the weight memory needs only the graph (a graph the chip cannot run still has its bytes counted);
    # the deployed footprint needs the lowered network
    with s.section(sec["memory"], source):
        out.memory = flow_memory(flat if flat is not None else graph, name, net=out.net, atoms=out.atoms)
    float_flat = None
    if float_graph is not None:
        float_flat = flatten_graph(float_graph, file=source)
    if flat is not None:
        out.flow = Flow(name=name, graph=graph, flat=flat, network=out.net, output_population=output_population(flat),
                        float_graph=float_graph, float_flat=float_flat, preset=model_preset(options_of),
                        dt=ref_opts["dt"] if ref_opts else model_dt(options_of), source=source,
                        reference_options=ref_opts,
                        sections={k: sec[k] for k in ("float", "emulator", "equivalence")})
    return out


def _chip_fit(net: Any, atoms: Dict[str, int], chosen: Dict[str, int], max_chips: int = 1) -> ChipFit:
    from s2emu.chip import map_to_chip

    chip = map_to_chip(net, atoms_per_core=atoms or None, max_chips=max_chips, dram_rows=max_chips > 1)
    t = chip.total
    failing = [FailingLayer(r.name, f"needs {r.max_bytes_per_pe:,} B on one PE, more than the "
                                    f"{chip.spec.data_sram_per_pe:,} B of data SRAM")
               for r in chip.rows if not r.fits]
    detail = None
    if t.chips > t.max_chips:
        detail = (f"needs {t.pes} PEs = {t.chips} chips of {chip.spec.usable_pes_per_chip} usable PEs, "
                  f"more than the {t.max_chips} chip(s) allowed")
        biggest = max(chip.rows, key=lambda r: r.pes)
        if biggest.name not in {f.name for f in failing}:
            failing.append(FailingLayer(biggest.name, f"takes {biggest.pes} PEs for {biggest.neurons:,} neurons"))
        if len(failing) > 1:
            detail += f"; {len(failing) - 1} layer(s) do not fit one PE's data SRAM"
    elif failing:
        detail = f"{len(failing)} layer(s) do not fit one PE's data SRAM"
    return ChipFit(fits=bool(t.fits), pes=int(t.pes), chips=int(t.chips), max_chips=int(t.max_chips),
                   pes_per_chip=int(chip.spec.usable_pes_per_chip), total_bytes=int(t.total_bytes),
                   max_bytes_per_pe=int(t.max_bytes_per_pe), failing_layers=failing, detail=detail,
                   atoms_per_core=dict(sorted(atoms.items())), auto_atoms=dict(sorted(chosen.items())),
                   layers=[ChipLayer(name=r.name, model=r.model, neurons=int(r.neurons), pes=int(r.pes),
                                     total_bytes=int(r.total_bytes), fits=bool(r.fits),
                                     atoms_per_core=int(r.atoms_per_core), max_bytes_per_pe=int(r.max_bytes_per_pe),
                                     synapse_bytes=int(r.synapse_bytes), param_bytes=int(r.param_bytes),
                                     state_bytes=int(r.state_bytes), buffer_bytes=int(r.buffer_bytes))
                           for r in chip.rows],
                   data_sram_per_pe=int(chip.spec.data_sram_per_pe))


def _memory_summary(s: _Sections, builds: Dict[str, _Build]) -> Optional[MemorySummary]:
    """The PTQ flow's figures under the version-1 keys, every flow's under ``flows``, the PTQ chip map."""
    from harness.quantize import memory_account

    flows = {k: b.memory for k, b in builds.items() if b.memory is not None}
    ptq = builds.get("ptq")
    kw: Dict[str, Any] = {"flows": flows}
    if ptq is not None and ptq.net is not None and ptq.memory is not None:
        with s.section("memory"):
            acct = memory_account(ptq.net)  # + neuron parameters and state, as the chip model counts them
            m = ptq.memory
            kw.update(float32_bytes=m.float32_bytes, int8_bytes=m.stored_bytes, reduction=m.reduction,
                      total_float32_bytes=int(acct.total_float32), total_int8_bytes=int(acct.total_int8),
                      layers=m.layers)
    if ptq is not None and ptq.net is not None:
        with s.section("chip"):
            kw["chip"] = _chip_fit(ptq.net, ptq.atoms, ptq.chosen, ptq.max_chips)
    if len(kw) == 1 and not flows:
        return None
    return MemorySummary(**kw)


# ----------------------------------------------------------------------------- evaluate

class _Models:
    """The float model and the Q-SNN as read (None where absent or unreadable)."""

    def __init__(self) -> None:
        self.float_graph: Any = None
        self.float_flat: Any = None
        self.qat_graph: Any = None
        self.qat_flat: Any = None


def _load_models(s: _Sections, cfg: GateConfig) -> _Models:
    """Read both models (each under its own section: ``model``, ``qat_model``)."""
    from s2common.graph import flatten_graph, load_graph

    m = _Models()
    with s.section("model", cfg.model):
        m.float_graph = load_graph(cfg.model, isolate=True)
        m.float_flat = flatten_graph(m.float_graph, file=cfg.model)
        output_population(m.float_flat)
    if cfg.qat_model:
        with s.section("qat_model", cfg.qat_model):
            from harness.quantize import is_quantized
            from s2common.errors import QuantizationError

            m.qat_graph = load_graph(cfg.qat_model, isolate=True)
            from harness.quantize.brevitas_nir import from_brevitas_nir, is_brevitas_export

            if is_brevitas_export(m.qat_graph):  # the brevitas_to_nir.py form: codes round(w / scale), theta / scale
                m.qat_graph, _ = from_brevitas_nir(m.qat_graph, file=cfg.qat_model)
            m.qat_flat = flatten_graph(m.qat_graph, file=cfg.qat_model)
            if not is_quantized(m.qat_graph):
                raise QuantizationError("is not a quantized NIR graph (no s2gate.quant metadata, or weights that are not "
                                        "int8 codes)", rule="not-quantized",
                                        hint="export the Q-SNN with harness.quantize's QAT export, or quantize with s2gate quantize")
            output_population(m.qat_flat)
        if not s.ok("qat_model"):
            m.qat_graph = m.qat_flat = None
    return m


def _load_checked_data(s: _Sections, cfg: GateConfig, m: _Models, data: Optional[Tuple[np.ndarray, np.ndarray]]
                       ) -> Tuple[Optional[np.ndarray], Optional[np.ndarray], Optional[DataInfo]]:
    """The data split, checked (:mod:`harness.data.checks`), and its description; a model whose Input
    does not take the data fails its own section, not the other model's."""
    spikes = labels = info = None
    no_model = not s.ok("model") and (not cfg.qat_model or not s.ok("qat_model"))
    with s.section("data", cfg.dataset if os.path.exists(str(cfg.dataset)) else None):
        if no_model and data is None:  # nothing to run the data through: do not generate or read it
            raise _NoModel()
        spikes, labels = data if data is not None else load_data(cfg, model_ticks(m.float_graph))
        from harness.data.checks import chance_level, check_dataset, model_classes

        ref_flat = m.float_flat if m.float_flat is not None else m.qat_flat
        checked = check_dataset(spikes, labels, file=cfg.dataset if os.path.exists(str(cfg.dataset)) else None,
                                n_classes=model_classes(ref_flat) if ref_flat is not None else None,
                                binarize=cfg.binarize)
        spikes, labels = checked.spikes, checked.labels
        n_classes = model_classes(ref_flat) if ref_flat is not None else None
        info = DataInfo(dataset=cfg.dataset if data is None else "given", split=cfg.split,
                        samples=int(spikes.shape[0]), ticks=int(spikes.shape[1]),
                        input_shape=[int(x) for x in spikes.shape[2:]], classes=int(labels.max()) + 1,
                        model_classes=n_classes, binarized=checked.binarized, notes=list(checked.notes),
                        chance=chance_level(labels, n_classes))
    if info is None:
        return None, None, None
    for section, flat, file in (("model", m.float_flat, cfg.model), ("qat_model", m.qat_flat, cfg.qat_model)):
        if flat is not None and tuple(flat.input_shape) != tuple(spikes.shape[2:]):
            s.fail(section, f"[bad-input] {file}: the model's Input takes {tuple(flat.input_shape)} per tick but the "
                            f"data has {tuple(spikes.shape[2:])} (hint: use data of shape (N, T, "
                            f"{', '.join(map(str, flat.input_shape))}))")
    return spikes, labels, info


def _build_flows(s: _Sections, cfg: GateConfig, m: _Models, quantizer: Optional[Quantizer]
                 ) -> Tuple[Dict[str, _Build], Any]:
    """The PTQ flow (quantize the float model) and the QAT flow (the Q-SNN); returns (builds, PTQ result)."""
    builds: Dict[str, _Build] = {}
    q = None
    if s.ok("model"):
        with s.section("ptq", cfg.model):
            from harness.quantize import quantize_ptq

            if cfg.calibrate and quantizer is None:  # percentiles chosen on the calibration file
                from harness.quantize.calibrate import load_calibration, quantize_calibrated

                q = quantize_calibrated(m.float_graph, load_calibration(cfg.calibrate), source=cfg.model,
                                        dt=model_dt(m.float_graph))
            else:
                q = (quantizer or quantize_ptq)(m.float_graph, percentile=cfg.percentile, source=cfg.model)
        if s.ok("ptq"):
            builds["ptq"] = _build_flow(s, "ptq", q.graph, m.float_graph, cfg.model, cfg, m.float_graph)
    if m.qat_graph is not None and s.ok("qat_model"):
        deq = None
        with s.section("qat_float_run", cfg.qat_model):
            from harness.quantize import dequantize

            deq = dequantize(m.qat_graph)
        builds["qat"] = _build_flow(s, "qat", m.qat_graph, deq, cfg.qat_model, cfg, m.qat_graph)
    return builds, q


def _sweep_flows(s: _Sections, cfg: GateConfig, ptq_flow: Optional[Flow], float_graph: Any,
                 quantizer: Optional[Quantizer]) -> Dict[float, Optional[Flow]]:
    """PTQ at each sweep percentile, predictions only (None: the configured percentile, the PTQ flow itself)."""
    flows: Dict[float, Optional[Flow]] = {}
    if ptq_flow is None or ptq_flow.network is None or not cfg.sweep_percentiles():
        return flows
    from harness.quantize import quantize_ptq
    from harness.run import emulator_options
    from s2emu import lower

    for p in cfg.sweep_percentiles():
        if float(p) == float(cfg.percentile):
            flows[p] = None
            continue
        with s.section("sweep", cfg.model):
            g = (quantizer or quantize_ptq)(float_graph, percentile=p, source=cfg.model).graph
            flows[p] = Flow(name=f"sweep:{p!r}", graph=g, flat=ptq_flow.flat, network=lower(g, emulator_options(g)),
                            output_population=ptq_flow.output_population, source=cfg.model,
                            sections={"emulator": "sweep"}, equivalence=False, activity=False, raster=False)
    return flows


def _run_flows(s: _Sections, cfg: GateConfig, builds: Dict[str, _Build], sweep_flows: Dict[float, Optional[Flow]],
               spikes: np.ndarray, runner: Optional[Callable[..., None]] = None) -> Dict[str, FlowRun]:
    """One FlowRun per flow, fed every batch of ``spikes`` (by ``runner``, default :func:`run_batches`)."""
    from tqdm.auto import tqdm

    threads = engine_threads()
    runs: Dict[str, FlowRun] = {}
    for name, b in builds.items():
        if b.flow is not None and s.ok(FLOW_SECTIONS[name]["model"]):
            runs[name] = FlowRun(b.flow, guard=s, threads=threads)
    n = int(spikes.shape[0])
    for f in sweep_flows.values():
        if f is not None:
            f.samples = min(n, cfg.sweep_samples or n)
            runs[f.name] = FlowRun(f, guard=s, threads=threads)
    batch = batch_size(cfg, flow_graphs(r.flow for r in runs.values()), int(spikes.shape[1]))
    with tqdm(total=n, desc="s2gate evaluate", unit="sample", disable=not cfg.progress, leave=False) as bar:
        (runner or run_batches)(list(runs.values()), spikes, batch, progress=bar.update)
    return runs


def batch_size(cfg: GateConfig, flats: Sequence[Any], ticks: int) -> int:
    """``cfg.batch_size``, or when None the automatic one (:func:`harness.gate.flow.auto_batch_size`)
    over the flattened graphs ``flats`` (None entries ignored) at ``ticks`` ticks."""
    if cfg.batch_size is not None:
        return max(1, int(cfg.batch_size))
    from .flow import auto_batch_size

    return auto_batch_size(list(flats), ticks)


def flow_graphs(flows: Iterable[Any]) -> List[Any]:
    """The flattened int8 graphs and float views of ``flows`` (what their runs record)."""
    return [f for flow in flows for f in (flow.flat, flow.float_flat)]


def evaluate(config: GateConfig, *, data: Optional[Tuple[np.ndarray, np.ndarray]] = None,
             quantizer: Optional[Quantizer] = None, debug: bool = False,
             runner: Optional[Callable[..., None]] = None) -> Evaluation:
    """Run everything the gate checks (see the module docstring).

    Args:
        config: models, data, percentile, seed, batch size...
        data: (spikes (N, T, *input_shape), labels (N,)) to use instead of ``config.dataset``.
        quantizer: replaces ``harness.quantize.quantize_ptq`` (same signature and result type);
            the gate's own tests use it to inject a broken quantizer.
        debug: let unexpected exceptions (bugs) propagate instead of recording them.
        runner: feeds the data to the flow runs, ``runner(runs, spikes, batch_size, progress=...)``;
            default :func:`~harness.gate.flow.run_batches` (here, in sample order);
            :class:`harness.distributed.DaskRunner` shards it over a Dask cluster (same result).
    """
    s = _Sections(debug=debug or bool(os.environ.get("S2GATE_DEBUG")))
    cfg = config
    cfg_json = cfg.as_dict()
    for key in ("report", "batch_size", "progress"):  # they change no number of the result
        cfg_json.pop(key, None)
    m = _load_models(s, cfg)
    spikes, labels, info = _load_checked_data(s, cfg, m, data)
    vendor = None  # what the converter alone does to the float model (report section; check vendor-semantics)
    if s.ok("model") and s.ok("data") and spikes is not None:
        with s.section("vendor_semantics", cfg.model):
            from harness.vendor_semantics import gate_vendor_semantics

            vendor = gate_vendor_semantics(m.float_graph, spikes, labels, cfg)
    builds, q = _build_flows(s, cfg, m, quantizer)
    ptq_flow = builds["ptq"].flow if "ptq" in builds else None
    sweep_flows = _sweep_flows(s, cfg, ptq_flow, m.float_graph, quantizer)
    runs: Dict[str, FlowRun] = {}
    if s.ok("data") and spikes is not None and builds:
        runs = _run_flows(s, cfg, builds, sweep_flows, spikes, runner)
    ev_kw: Dict[str, Any] = {}
    if runs:
        ev_kw.update(_collect(s, runs, builds, sweep_flows, labels, cfg, q, m.float_graph, m.qat_graph))
    memory = _memory_summary(s, builds)
    nb = ev_kw.pop("neurobench", {})
    if "ptq" in builds and builds["ptq"].net is not None and memory is not None and memory.layers is not None:
        from harness.metrics import memory_footprint

        with s.section("memory"):
            nb["float"] = _with(nb.get("float"), memory_footprint_bytes=memory_footprint(m.float_graph, bits=32))
            nb["int8"] = _with(nb.get("int8"), memory_footprint_bytes=memory_footprint(q.graph, bits=8))
    from .details import code_layers, ptq_layers  # per-layer quantization and code histograms, for the report

    quantization = {}
    with s.section("report_details"):
        if q is not None:
            quantization["ptq"] = ptq_layers(q)
        if m.qat_graph is not None:
            quantization["qat"] = code_layers(m.qat_graph)
    # board placement, packets, real-time budget and energy at the recorded activity (issue 17)
    realtime = None
    if "ptq" in runs and builds["ptq"].net is not None and ev_kw.get("layers", {}).get("ptq"):
        with s.section("realtime", cfg.model):
            realtime = realtime_section(cfg, builds["ptq"].net, builds["ptq"].atoms, ev_kw["layers"]["ptq"],
                                        input_rate(spikes), int(spikes.shape[1]))
    hil = _hil(s, cfg, builds.get("ptq"), spikes)  # the board flow
    ablation = None  # scaled / unscaled / searched thresholds (opt-in, issue 14)
    if cfg.threshold_ablation and s.ok("model", "data") and spikes is not None and m.float_graph is not None:
        with s.section("threshold_ablation", cfg.model):
            ablation = threshold_ablation_section(cfg, m.float_graph, spikes, labels)
    return Evaluation(schema=SCHEMA, digest=cfg.digest(), config=cfg_json, errors=dict(sorted(s.errors.items())),
                      data=info, ran=bool(runs), memory=memory,
                      design_rules={k: b.rules for k, b in builds.items() if b.rules is not None},
                      auto_atoms={k: b.chosen for k, b in builds.items() if b.chosen}, neurobench=nb, hil=hil,
                      quantization=quantization, vendor_semantics=vendor, realtime=realtime,
                      threshold_ablation=ablation, **ev_kw)


def ablation_calibration(cfg: GateConfig, ticks: int) -> Tuple[np.ndarray, str]:
    """The threshold search's calibration inputs (N, T, *input_shape) and where they come from: the
    first ``cfg.threshold_ablation_samples`` samples of the ``calibrate`` file, else of the dataset's
    other split (``train`` for a ``test`` run), which is disjoint from the test split.

    Raises:
        InputDataError: a ``.npz`` dataset (it has no other split) without ``calibrate``.
    """
    from harness.flags import flag
    from s2common.errors import InputDataError

    n = int(cfg.threshold_ablation_samples)
    if cfg.calibrate:
        from harness.quantize.calibrate import load_calibration

        x = load_calibration(cfg.calibrate)[:n]
        where = f"the first {len(x)} samples of the calibration file {os.path.basename(cfg.calibrate)}"
    elif cfg.dataset in ("stand-in", "dvsgesture"):
        other = "train" if cfg.split == "test" else "test"
        x, _ = load_data(cfg.replace(split=other, samples=n, progress=False), ticks)
        where = f"the first {len(x)} samples of the {cfg.dataset} {other} split (disjoint from the {cfg.split} split)"
    else:
        raise InputDataError("the threshold ablation's search needs calibration samples, and a .npz dataset has no "
                             "other split to take them from", file=cfg.dataset, rule="bad-option",
                             hint=f"pass {flag('calibrate')} CAL.npz (samples disjoint from the test split)")
    x = np.asarray(x)
    if cfg.binarize:
        x = x > 0
    return x, where


def threshold_ablation_section(cfg: GateConfig, float_graph: Any, spikes: np.ndarray, labels: np.ndarray
                               ) -> "Any":
    """``Evaluation.threshold_ablation``: :func:`harness.quantize.thresholds.threshold_ablation` of the PTQ
    graph at ``cfg.percentile`` on the first ``cfg.threshold_ablation_samples`` test samples, the search
    on as many calibration samples (:func:`ablation_calibration`)."""
    from harness.quantize.thresholds import threshold_ablation
    from s2common.graph import as_flat

    from .results import AblationVariant, ThresholdAblationResult

    n = int(cfg.threshold_ablation_samples)
    calib, where = ablation_calibration(cfg, int(spikes.shape[1]))
    t = threshold_ablation(float_graph, spikes[:n], labels[:n], calib, model=os.path.basename(cfg.model),
                           percentile=float(cfg.percentile),
                           chunk=batch_size(cfg, [as_flat(float_graph)], int(spikes.shape[1])))
    return ThresholdAblationResult(
        samples=int(t.samples), calibration_samples=int(t.calibration_samples), calibration_source=where,
        percentile=float(t.percentile), preset=str(t.preset), populations=list(t.populations),
        rows=[AblationVariant(variant=r.variant, accuracy=float(r.accuracy), agreement=float(r.agreement),
                              rates={k: float(v) for k, v in r.rates.items()},
                              factors={k: float(v) for k, v in r.factors.items()}) for r in t.rows])


def input_rate(spikes: np.ndarray) -> float:
    """Input spikes per input neuron per tick over all samples (an exact count over a size)."""
    return int(np.count_nonzero(spikes)) / int(spikes.size) if spikes.size else 0.0


def realtime_section(cfg: GateConfig, net: Any, atoms: Dict[str, int], layers: Sequence[Any], in_rate: float,
                     ticks: int) -> Dict[str, Any]:
    """``Evaluation.realtime``: :func:`s2emu.timing.estimate` of the PTQ network on up to
    ``cfg.max_chips`` chips at the recorded activity (each layer's mean int8 spike rate on the
    emulator, the input's mean rate), ``cfg.sys_tick`` seconds per tick, ``ticks`` ticks per inference."""
    from s2emu.timing import TimingSpec, estimate

    rates: Dict[str, float] = {r.name: float(r.rate_int8) for r in layers}
    rates[net.input_name] = float(in_rate)
    out = estimate(net, rates, max_chips=max(1, int(cfg.max_chips)), atoms_per_core=atoms or None, ticks=ticks,
                   timing=TimingSpec(sys_tick_s=float(cfg.sys_tick)))
    out["activity"] = "recorded: mean int8 spike rate per layer on the emulator (PTQ), mean input rate"
    return out


def _with(nb: Optional[NeuroBench], **changes: Any) -> NeuroBench:
    import dataclasses

    return dataclasses.replace(nb or NeuroBench(), **changes)


def _collect(s: _Sections, runs: Dict[str, FlowRun], builds: Dict[str, _Build], sweep_flows: Dict[float, Any],
             labels: np.ndarray, cfg: GateConfig, q: Any, float_graph: Any, qat_graph: Any) -> Dict[str, Any]:
    """The per-sample sections from the flow runs."""
    out: Dict[str, Any] = {"accuracy_stats": {}, "equivalence": {}, "layers": {}, "neurobench": {}, "sweep": []}
    for name in ("ptq", "qat"):
        r = runs.get(name)
        if r is None:
            continue
        sec = FLOW_SECTIONS[name]
        ref = r.predictions("float") if s.ok(sec["float"]) else None
        cand = r.predictions("emulator") if s.ok(sec["emulator"]) else None
        from .flow import paired_accuracy

        out["accuracy_stats"][name] = paired_accuracy(name, ref, cand, labels)
        from .details import confusion

        k = int(labels.max()) + 1 if labels.size else 0
        mats = {kind: confusion(p, labels, k) for kind, p in (("float", ref), ("int8", cand)) if p is not None}
        if mats:
            out.setdefault("confusion", {})[name] = mats
        if cand is not None and s.ok(sec["equivalence"]):
            out["equivalence"][name] = r.equivalence()
        if ref is not None and cand is not None:
            out["layers"][name] = r.layer_rates()
    # NeuroBench: float (the P-SNN), int8 (PTQ on the emulator), qat_int8 (the Q-SNN on the emulator)
    for col, name, kind in (("float", "ptq", "float"), ("int8", "ptq", "emulator"), ("qat_int8", "qat", "emulator")):
        r = runs.get(name)
        if r is not None:
            fig = r.neurobench(kind)
            if fig is not None:
                out["neurobench"][col] = fig
    if "qat_int8" in out["neurobench"]:
        from harness.metrics import memory_footprint

        out["neurobench"]["qat_int8"] = _with(out["neurobench"]["qat_int8"],
                                              memory_footprint_bytes=memory_footprint(qat_graph, bits=8))
    # raster: the first PTQ divergence, else the first Q-SNN divergence, else the PTQ run at sample 0
    ptq, qat = runs.get("ptq"), runs.get("qat")
    raster = None
    if ptq is not None and ptq.has_divergence():
        raster = ptq.raster()
    elif qat is not None and qat.has_divergence():
        raster = qat.raster()
    elif ptq is not None:
        raster = ptq.raster()
    out["raster"] = raster
    # sweep
    from harness.metrics import accuracy

    sweep = []
    if s.ok("sweep"):
        for p in sorted(sweep_flows):
            f = sweep_flows[p]
            r = runs.get("ptq") if f is None else runs.get(f.name)
            pr = None if r is None else r.predictions("emulator")
            if pr is None:
                continue
            n = min(len(pr), cfg.sweep_samples or len(pr))
            pr = pr[:n]
            sweep.append(SweepPoint(percentile=float(p), accuracy=100.0 * accuracy(pr, labels[:len(pr)]),
                                    samples=int(len(pr))))
    out["sweep"] = sweep
    return out


def _hil(s: _Sections, cfg: GateConfig, build: Optional[_Build], spikes: Optional[np.ndarray]) -> Hil:
    """Hardware in the loop: the PTQ graph (the board flow) on the board against the emulator, spike for
    spike and voltage bit for voltage bit, on the first batch of samples (tier: exact)."""
    from harness.flags import flag

    if cfg.backend != "board":
        return Hil(status="skipped", reason=f"no board configured (run with {flag('backend')} board "
                                            f"{flag('board-host')} IP to compare a SpiNNaker2 board with the emulator)")
    if not cfg.board_host:
        s.fail("hil", "[no-board-host] the board backend needs the board's Ethernet IP "
                      f"(hint: pass {flag('board-host')} IP)")
        return Hil(status="error")
    flow = build.flow if build is not None else None
    if flow is None or flow.network is None or spikes is None:
        s.block("hil", ["model", "ptq", "ptq_lower", "data"])
        return Hil(status="error")
    with s.section("hil", cfg.model):
        from harness.compare import compare_recordings, tally_trains
        from harness.run import BoardBackend, EmulatorBackend

        x = spikes[: min(len(spikes), batch_size(cfg, flow_graphs([flow]), int(spikes.shape[1])))]
        board = BoardBackend(host=cfg.board_host, max_atoms_per_core=build.atoms or None).run(flow.graph, x, record="all")
        emu = EmulatorBackend(network=flow.network).run(flow.graph, x, record="all")
        comp = compare_recordings(emu, board, observables=("spikes", "v"))
        nodes = [r.node for r in comp.rows if not r.note and r.observable == "spikes"]
        trains, diff_trains = tally_trains(emu, board, nodes)
        d = comp.first_divergence
        fd = None if d is None else Divergence(layer=d.node, neuron=[int(i) for i in d.index] or [int(d.neuron)],
                                               flat_neuron=int(d.neuron), tick=int(d.tick), sample=int(d.sample),
                                               detail=f"{d.observable}: emulator {d.expected}, board {d.actual}")
        return Hil(status="ran", samples=int(x.shape[0]), mismatches=int(comp.mismatches),
                   comparison=HilComparison(spike_trains=trains, identical=trains - diff_trains, ambiguous=0,
                                            diverging=diff_trains,
                                            voltage_mismatches=sum(r.mismatches for r in comp.rows if r.observable == "v"),
                                            identical_share=(trains - diff_trains) / trains if trains else 1.0,
                                            first_divergence=fd))
    return Hil(status="error")


def sweep(config: GateConfig, *, data: Optional[Tuple[np.ndarray, np.ndarray]] = None,
          runner: Optional[Callable[..., None]] = None) -> Dict[str, Any]:
    """PTQ accuracy on the emulator at each of ``config.sweep`` percentiles, and the float accuracy.

    Each percentile is a :class:`~harness.gate.flow.Flow` (predictions only); the float model
    runs once, as the float view of the first. Unlike :func:`evaluate`, errors raise
    (:class:`S2GateError`): the sweep has nothing to report without its model and data.

    Returns:
        ``{"config", "data", "accuracy": {"float"}, "sweep": [{"percentile", "accuracy", "samples",
        "clipped_fraction"}]}`` (accuracies in percent; ``clipped_fraction`` over all weights).
    """
    from tqdm.auto import tqdm

    from harness.metrics import accuracy
    from harness.quantize import quantize_ptq
    from harness.run import emulator_options
    from s2common.graph import flatten_graph, load_graph
    from s2emu import lower

    graph = load_graph(config.model, isolate=True)
    flat = flatten_graph(graph, file=config.model)
    out_pop = output_population(flat)
    spikes, labels = data if data is not None else load_data(config, model_ticks(graph))
    from harness.data.checks import check_dataset, model_classes

    checked = check_dataset(spikes, labels, file=config.dataset if os.path.exists(str(config.dataset)) else None,
                            n_classes=model_classes(flat), input_shape=flat.input_shape, binarize=config.binarize)
    spikes, labels = checked.spikes, checked.labels
    ps = sorted(set(float(p) for p in config.sweep))
    runs, clipped = {}, {}
    for i, p in enumerate(ps):
        q = quantize_ptq(graph, percentile=p, source=config.model)
        f = Flow(name=f"sweep:{p!r}", graph=q.graph, flat=flat, network=lower(q.graph, emulator_options(q.graph)),
                 output_population=out_pop, float_graph=graph if i == 0 else None, float_flat=flat if i == 0 else None,
                 preset=model_preset(graph), dt=model_dt(graph), source=config.model, equivalence=False,
                 activity=False, raster=False)
        runs[p] = FlowRun(f, threads=engine_threads())
        n_w = sum(r.n_weights for r in q.layers)
        clipped[p] = sum(r.clipped_fraction * r.n_weights for r in q.layers) / n_w if n_w else 0.0
    N = int(spikes.shape[0])
    with tqdm(total=N, desc="s2gate sweep", unit="sample", disable=not config.progress, leave=False) as bar:
        (runner or run_batches)(list(runs.values()), spikes, batch_size(config, flow_graphs(r.flow for r in runs.values()), int(spikes.shape[1])),
                                progress=bar.update)
    cfg = config.as_dict()
    for key in ("report", "batch_size", "progress"):
        cfg.pop(key, None)
    float_pred = runs[ps[0]].predictions("float")
    return {"schema": SCHEMA, "config": cfg,
            "data": {"dataset": config.dataset, "split": config.split, "samples": N, "ticks": int(spikes.shape[1])},
            "accuracy": {"float": 100.0 * accuracy(float_pred, labels)},
            "sweep": [{"percentile": p, "accuracy": 100.0 * accuracy(runs[p].predictions("emulator"), labels),
                       "samples": N, "clipped_fraction": clipped[p]} for p in ps]}
