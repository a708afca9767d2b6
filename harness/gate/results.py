"""The gate's typed results: dataclasses with ``to_json`` / ``from_json``.

:func:`harness.gate.evaluate.evaluate` returns an :class:`Evaluation`; the checks
(:mod:`harness.gate.checks`) read its fields, the report reads ``Evaluation.to_json()``, and
the pytest plugin stores that JSON once per session and reads it back with
``Evaluation.from_json``. ``to_json`` gives the layout ``summary.json`` has always had under
``"evaluation"`` (the keys of version 1) plus the fields added since (``accuracy_stats``,
``memory.flows``, per-layer chip figures, data notes); ``from_json(to_json(x)) == x``.

Units: accuracies in percent, drops and intervals in percentage points, bytes in bytes,
shares and reductions as fractions in [0, 1], spike rates in spikes per neuron per tick.

Each comparison names its tier (architecture note, "Name the tier"): ``exact`` (bits equal),
``bounded`` (equal except where the reference's voltage is within a float32 rounding bound of
the threshold, :func:`harness.compare.ambiguity_mask`) or ``statistical`` (an accuracy with
its interval).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from harness.quantize.memory import Deployed, FlowMemory, LayerMemory
from harness.records import JsonRecord

SCHEMA = 1


# ------------------------------------------------------------------ pieces


@dataclass(frozen=True)
class Divergence(JsonRecord):
    """Where two runs first differ: layer, neuron (unravelled index and flat index), tick, sample
    (index in the whole data split), and a few words on what differs."""

    layer: str
    neuron: List[int]
    flat_neuron: int
    tick: int
    sample: int
    detail: str = ""


@dataclass(frozen=True)
class Equivalence(JsonRecord):
    """Emulator vs reference on the same int8 graph, summed over all samples.

    ``spike_trains`` = samples x neurons of every compared population; ``identical +
    ambiguous + diverging == spike_trains``. Shares are fractions; ``prediction_agreement`` is
    the share of samples whose predicted class is the same.
    """

    spike_trains: int
    identical: int
    ambiguous: int
    diverging: int
    identical_share: float
    consistent_share: float
    prediction_agreement: float
    first_divergence: Optional[Divergence] = None
    tier: str = "bounded"


@dataclass(frozen=True)
class LayerRates(JsonRecord):
    """Spike rate of one population on the float view and on the emulator (spikes / neuron / tick)."""

    name: str
    neurons: int
    weights: List[str]
    rate_float: float
    rate_int8: float


@dataclass(frozen=True)
class PairedAccuracy(JsonRecord):
    """Reference-side vs emulator-side accuracy of one flow on the same samples.

    Attributes:
        flow: ``"ptq"`` or ``"qat"``.
        samples: N, the samples both sides predicted.
        reference, candidate: accuracies in percent (reference = the float view on the
            reference simulator; candidate = the int8 graph on the emulator).
        drop: reference - candidate, percentage points (the point estimate the verdict uses).
        lost, gained: samples the reference gets right and the emulator wrong, and the
            reverse (the discordant pairs of McNemar's test); ``drop == 100 (lost - gained) / N``.
        interval: 95 % interval of the drop, pp (``method``), or None without samples.
        resolution: one sample in pp (100 / N).
        method: how ``interval`` was computed.
    """

    flow: str
    samples: int
    reference: Optional[float]
    candidate: Optional[float]
    drop: Optional[float]
    lost: int = 0
    gained: int = 0
    interval: Optional[List[float]] = None
    resolution: Optional[float] = None
    confidence: float = 0.95
    method: str = ""
    tier: str = "statistical"


@dataclass(frozen=True)
class DataInfo(JsonRecord):
    """The data the gate ran: ``classes`` = largest label + 1; ``model_classes`` = the model's
    output neurons; ``chance`` = accuracy (%) of the best blind guess
    (:func:`harness.data.checks.chance_level`); ``binarized`` / ``notes``: what
    :func:`harness.data.checks.check_dataset` did to the data (``--binarize``)."""

    dataset: str
    split: str
    samples: int
    ticks: int
    input_shape: List[int]
    classes: int
    model_classes: Optional[int] = None
    chance: Optional[float] = None
    binarized: bool = False
    notes: List[str] = field(default_factory=list)


@dataclass(frozen=True)
class QuantLayer(JsonRecord):
    """One weight node's quantization (:mod:`harness.gate.details`): the scale λ (per-channel:
    its range), percentile, share of clipped weights, largest rounding error (float units) and
    the histogram of its codes on the int8 grid (bin ``i`` = code ``i - 127``; ``outside``:
    codes beyond ±127)."""

    layer: str
    population: str
    node_type: str
    n_weights: int
    histogram: List[int]
    outside: int = 0
    scale_min: Optional[float] = None
    scale_max: Optional[float] = None
    percentile: Optional[float] = None
    clipped_fraction: Optional[float] = None
    max_rounding_error: Optional[float] = None


@dataclass(frozen=True)
class Violation(JsonRecord):
    rule: str
    node: str
    message: str
    hint: str = ""
    severity: str = "error"


@dataclass(frozen=True)
class FailingLayer(JsonRecord):
    name: str
    reason: str


@dataclass(frozen=True)
class ChipLayer(JsonRecord):
    """One population on the chip: PEs, atoms per PE and bytes (total and on the fullest PE)."""

    name: str
    model: str
    neurons: int
    pes: int
    total_bytes: int
    fits: bool
    atoms_per_core: Optional[int] = None
    max_bytes_per_pe: Optional[int] = None
    synapse_bytes: Optional[int] = None
    param_bytes: Optional[int] = None
    state_bytes: Optional[int] = None
    buffer_bytes: Optional[int] = None


@dataclass(frozen=True)
class ChipFit(JsonRecord):
    fits: bool
    pes: int
    chips: int
    max_chips: int
    pes_per_chip: int
    total_bytes: int
    max_bytes_per_pe: int
    failing_layers: List[FailingLayer]
    detail: Optional[str]
    atoms_per_core: Dict[str, int]
    auto_atoms: Dict[str, int]
    layers: List[ChipLayer]
    data_sram_per_pe: Optional[int] = None


@dataclass(frozen=True)
class MemorySummary(JsonRecord):
    """The PTQ flow's weight memory under the version-1 keys, every flow's under ``flows``, and
    the PTQ flow's chip map under ``chip``."""

    _OMIT_NONE = ("float32_bytes", "int8_bytes", "reduction", "total_float32_bytes", "total_int8_bytes", "layers",
                  "chip")

    float32_bytes: Optional[int] = None
    int8_bytes: Optional[int] = None
    reduction: Optional[float] = None
    total_float32_bytes: Optional[int] = None
    total_int8_bytes: Optional[int] = None
    layers: Optional[List[LayerMemory]] = None
    chip: Optional[ChipFit] = None
    flows: Dict[str, FlowMemory] = field(default_factory=dict)


@dataclass(frozen=True)
class NeuroBench(JsonRecord):
    """NeuroBench's figures of one run (``harness.metrics``); each present when computed."""

    _OMIT_NONE = ("memory_footprint_bytes", "activation_sparsity", "synaptic_operations", "effective_acs",
                  "effective_macs", "dense_operations")

    memory_footprint_bytes: Optional[int] = None
    activation_sparsity: Optional[float] = None
    synaptic_operations: Optional[float] = None
    effective_acs: Optional[float] = None
    effective_macs: Optional[float] = None
    dense_operations: Optional[float] = None


@dataclass(frozen=True)
class SweepPoint(JsonRecord):
    percentile: float
    accuracy: float
    samples: int


@dataclass(frozen=True)
class Raster(JsonRecord):
    """Spikes of a window of neurons of one layer and sample, reference vs emulator: points
    ``[tick, neuron]``; ``divergence`` = ``[tick, neuron]`` of the first divergence or None."""

    layer: str
    ticks: List[int]
    neurons: List[int]
    emulator: List[List[int]]
    reference: List[List[int]]
    divergence: Optional[List[int]]
    title: str


@dataclass(frozen=True)
class HilComparison(JsonRecord):
    spike_trains: int
    identical: int
    ambiguous: int
    diverging: int
    voltage_mismatches: int
    identical_share: float
    first_divergence: Optional[Divergence] = None
    tier: str = "exact"


@dataclass(frozen=True)
class Hil(JsonRecord):
    """Hardware in the loop: ``status`` ``"skipped"`` (with ``reason``), ``"ran"`` or ``"error"``."""

    _OMIT_NONE = ("reason", "samples", "mismatches", "comparison")

    status: str
    reason: Optional[str] = None
    samples: Optional[int] = None
    mismatches: Optional[int] = None
    comparison: Optional[HilComparison] = None


@dataclass(frozen=True)
class AblationVariant(JsonRecord):
    """One row of the threshold ablation: ``variant`` (``float``, ``scaled``, ``unscaled``, ``searched``),
    accuracy and agreement with the float reference's predicted class (percent), spike rate per
    population (spikes / neuron / tick) and threshold factor per population relative to the scaled one."""

    variant: str
    accuracy: float
    agreement: float
    rates: Dict[str, float] = field(default_factory=dict)
    factors: Dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ThresholdAblationResult(JsonRecord):
    """The threshold-scaling ablation (:func:`harness.quantize.thresholds.threshold_ablation`) of the PTQ
    graph at ``percentile`` on ``samples`` test samples; the search ran on ``calibration_samples``
    samples of ``calibration_source`` (the ``--calibrate`` file, or the dataset's other split)."""

    samples: int
    calibration_samples: int
    calibration_source: str
    percentile: float
    preset: str
    populations: List[str]
    rows: List[AblationVariant]

    def row(self, variant: str) -> AblationVariant:
        return next(r for r in self.rows if r.variant == variant)


@dataclass(frozen=True)
class Evaluation(JsonRecord):
    """Everything the gate judges (no timestamps, no timings: the same inputs give the same JSON).

    ``errors`` maps an evaluation section (``model``, ``data``, ``ptq_run``, ...) to the one-line
    error that stopped it; a check that needs that section fails with it. ``ran`` says whether
    the batches ran (data and a model were available); the per-sample sections are only in
    the JSON then.
    """

    _OMIT_NONE = ("data", "memory", "hil", "vendor_semantics", "realtime", "threshold_ablation")

    schema: int = SCHEMA
    digest: str = ""
    config: Dict[str, Any] = field(default_factory=dict)
    errors: Dict[str, str] = field(default_factory=dict)
    data: Optional[DataInfo] = None
    ran: bool = False
    accuracy_stats: Dict[str, PairedAccuracy] = field(default_factory=dict)
    equivalence: Dict[str, Equivalence] = field(default_factory=dict)
    layers: Dict[str, List[LayerRates]] = field(default_factory=dict)
    memory: Optional[MemorySummary] = None
    design_rules: Dict[str, List[Violation]] = field(default_factory=dict)
    auto_atoms: Dict[str, Dict[str, int]] = field(default_factory=dict)
    neurobench: Dict[str, NeuroBench] = field(default_factory=dict)
    sweep: List[SweepPoint] = field(default_factory=list)
    raster: Optional[Raster] = None
    hil: Optional[Hil] = None
    #: flow -> per weight node quantization and code histograms (``ptq``, ``qat``)
    quantization: Dict[str, List[QuantLayer]] = field(default_factory=dict)
    #: flow -> run (``float``, ``int8``) -> confusion matrix ``m[true][predicted]``
    confusion: Dict[str, Dict[str, List[List[int]]]] = field(default_factory=dict)
    #: the converter's own change of meaning on the float model (``harness.vendor_semantics``), or None
    vendor_semantics: Optional[Dict[str, Any]] = None
    #: board placement, packets, real-time budget and energy of the PTQ flow at the recorded
    #: activity (:func:`s2emu.timing.estimate`, JSON-ready); None when not computed
    realtime: Optional[Dict[str, Any]] = None
    #: scaled / unscaled / searched thresholds of the PTQ graph (``threshold_ablation`` option), or None
    threshold_ablation: Optional[ThresholdAblationResult] = None

    # ---- the version-1 "accuracy" dict, derived
    def accuracy(self) -> Dict[str, float]:
        """``{"float", "ptq", "ptq_drop", "qat_float", "qat", "qat_drop"}`` as far as computed."""
        a: Dict[str, float] = {}
        ptq, qat = self.accuracy_stats.get("ptq"), self.accuracy_stats.get("qat")
        if ptq is not None and ptq.reference is not None:
            a["float"] = ptq.reference
        if ptq is not None and ptq.candidate is not None:
            a["ptq"] = ptq.candidate
            if ptq.drop is not None:
                a["ptq_drop"] = ptq.drop
        if qat is not None and qat.reference is not None:
            a["qat_float"] = qat.reference
        if qat is not None and qat.candidate is not None:
            a["qat"] = qat.candidate
            if qat.drop is not None:
                a["qat_drop"] = qat.drop
        return a

    def to_json(self) -> Dict[str, Any]:
        d = super().to_json()
        ran = d.pop("ran")
        stats = d.pop("accuracy_stats")
        if not ran:  # the per-sample sections exist only when the batches ran
            for key in ("equivalence", "layers", "sweep", "raster", "confusion"):
                d.pop(key, None)
        else:
            d["accuracy"] = self.accuracy()
            d["accuracy_stats"] = stats
        if not d["auto_atoms"]:
            d.pop("auto_atoms")
        return d

    @classmethod
    def from_json(cls, data: Dict[str, Any]) -> "Evaluation":
        data = dict(data)
        ran = "accuracy" in data or "equivalence" in data
        data.pop("accuracy", None)  # derived from accuracy_stats
        return dataclasses.replace(super().from_json(data), ran=ran)


def as_evaluation(ev: Any) -> Evaluation:
    """An :class:`Evaluation` from itself or from its JSON dict."""
    return ev if isinstance(ev, Evaluation) else Evaluation.from_json(ev)


def as_json(ev: Any) -> Dict[str, Any]:
    """The JSON dict of an :class:`Evaluation` (a dict is returned as it is)."""
    return ev.to_json() if isinstance(ev, Evaluation) else ev
