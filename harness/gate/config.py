"""What one gate run checks, against which budgets: :class:`GateConfig`.

The same configuration drives the pytest plugin (``--s2-*`` options), ``s2gate gate`` and
``s2gate sweep``. :meth:`GateConfig.digest` names the evaluation's result uniquely: it covers
every field that changes a number, the bytes of the model files and the version of the code
that computes it, so a cached evaluation is reused only when it would come out the same.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

#: The folder of the models shipped with s2gate.
BUNDLED = Path(__file__).resolve().parents[1] / "bundled"
#: Datasets the gate knows.
DATASETS = ("stand-in", "dvsgesture")
#: Where the spiking network runs for the hardware-in-the-loop check.
BACKENDS = ("emulator", "board")
#: Percentiles of the report's accuracy-against-percentile plot (the configured one is added).
DEFAULT_SWEEP = (99.0, 99.9, 100.0)
#: the automatic batch size keeps one batch's spike record (1 byte per node output, tick and sample)
#: near this size: the gate holds about three such records at once (float view, emulator, reference on
#: the int8 graph), and the engine's per-layer inputs of a batch are of the same order
BATCH_RECORD_BYTES = 2 ** 28
#: the automatic batch size is at most this (a batch of 64 already fills the int8 kernels' tiles)
MAX_AUTO_BATCH = 64
#: Packages whose source makes up the "code version" in the digest.
CODE_PACKAGES = ("s2common", "reference", "s2emu", "harness")
#: The budgets' defaults, the one place they are written (options, CLI, checks read them here).
BUDGETS = {"ptq_budget": 1.1, "qat_budget": 0.6, "min_memory_reduction": 0.75, "strict": False}
#: ``qat_model`` default: the bundled Q-SNN if ``model`` is the bundled P-SNN, else none.
AUTO = "auto"


def bundled_model(name: str) -> str:
    """Path of a bundled model file (``"psnn"`` or ``"qsnn"``)."""
    return str(BUNDLED / f"{name}.nir")


@dataclass(frozen=True)
class GateConfig:
    """One gate run.

    Attributes:
        model: float P-SNN as a NIR file (quantized by PTQ at ``percentile``).
        qat_model: quantized Q-SNN as a NIR file (int8 weights, chip-unit thresholds), or None to skip QAT.
            Default (:data:`AUTO`): the bundled Q-SNN when ``model`` is the bundled P-SNN, else None
            (a Q-SNN of another model would be judged against the wrong float model).
        dataset: ``"stand-in"`` (generated DVS-gesture stand-in) or ``"dvsgesture"`` (tonic, local copy).
        data_root: folder of the local DVS Gesture copy (``dvsgesture`` only).
        split: ``"test"`` (default) or ``"train"``.
        samples: how many samples of the split to use (the first ``samples``; None = all).
        percentile: PTQ weight-scale percentile, in (0, 100].
        backend: ``"emulator"`` or ``"board"`` (hardware-in-the-loop against the emulator).
        board_host: the board's Ethernet IP (``board`` only).
        ptq_budget: largest allowed accuracy drop float -> PTQ on the emulator, percentage points.
            The defaults of the budgets are :data:`BUDGETS`.
        qat_budget: largest allowed drop Q-SNN float -> Q-SNN on the emulator, percentage points.
        min_memory_reduction: smallest allowed weight-memory reduction float32 -> int8, a fraction.
        report: folder to write the report into (None: no report files).
        seed: seed of everything random (data generation, sample order).
        batch_size: samples per simulator call; results do not depend on it. None (default): as many
            as keep one batch's spike record of every node near :data:`BATCH_RECORD_BYTES`, at most
            :data:`MAX_AUTO_BATCH` (:func:`harness.gate.flow.auto_batch_size`).
        sweep: percentiles of the report's accuracy-against-percentile plot (empty: no sweep).
        sweep_samples: samples used by the sweep (None = ``samples``).
        progress: show tqdm progress bars on stderr.
        atoms_per_core: ``((population, atoms), ...)``: ``max_atoms_per_core`` overrides for the chip
            map and the design rules (as ``s2gate map --atoms``); they take precedence over the
            model's own ``graph.metadata["s2gate.atoms_per_core"]`` (``{population: atoms}``).
        auto_atoms: for a population that overflows one PE's data SRAM at the default (and that no
            override names), use the largest ``max_atoms_per_core`` that fits, as a py-spinnaker2
            user would set it; the chosen values are reported. Off: such a model fails
            ``memory.fits-chip`` and ``design-rules.*``.
        binarize: accept event counts in the data and threshold them (``x > 0`` -> 1); the report
            says so. Off: counts are refused (:mod:`harness.data.checks`).
        strict: judge accuracy by the upper bound of the drop's 95 % interval instead of the
            point estimate (``--s2-strict`` / ``s2gate gate --strict``).
        max_chips: chips of a 48-chip board the PTQ model may use (``memory.fits-chip``, the design
            rules and the placement of the ``realtime`` section, :mod:`s2emu.board`); with more than
            one, synapse rows that overflow a PE's SRAM go to the chip's DRAM.
        sys_tick: seconds per tick of the real-time budget (1 ms; py-spinnaker2's low-power runs use 2 ms).
        enforce_realtime: the ``realtime`` check fails when the worst PE's work per tick exceeds
            ``sys_tick`` (default: report only; the cycle costs are inferred, :mod:`s2emu.timing`).
    """

    model: str = field(default_factory=lambda: bundled_model("psnn"))
    qat_model: Optional[str] = AUTO
    dataset: str = "stand-in"
    data_root: Optional[str] = None
    split: str = "test"
    samples: Optional[int] = None
    percentile: float = 100.0
    backend: str = "emulator"
    board_host: Optional[str] = None
    ptq_budget: float = BUDGETS["ptq_budget"]
    qat_budget: float = BUDGETS["qat_budget"]
    min_memory_reduction: float = BUDGETS["min_memory_reduction"]
    report: Optional[str] = None
    seed: int = 0
    batch_size: Optional[int] = None
    sweep: Tuple[float, ...] = DEFAULT_SWEEP
    sweep_samples: Optional[int] = None
    progress: bool = False
    atoms_per_core: Tuple[Tuple[str, int], ...] = ()
    auto_atoms: bool = True
    binarize: bool = False
    strict: bool = BUDGETS["strict"]
    max_chips: int = 1
    sys_tick: float = 1e-3
    enforce_realtime: bool = False
    #: vendor profile (``s2emu.profiles``: ``--profile`` / ``--s2-profile``); None: the model's ``s2gate.profile``, if any
    profile: Optional[str] = None
    #: largest share of float-model spike trains the converter's own change of meaning (bias folding) may
    #: change (check ``vendor-semantics``); None: report only
    vendor_semantics_budget: Optional[float] = None
    #: calibration inputs (.npz, array ``spikes``) for calibrated PTQ (harness.quantize.calibrate); None: fixed percentile
    calibrate: Optional[str] = None
    #: add the threshold-scaling ablation to the report (scaled / unscaled / searched thresholds on the emulator,
    #: :mod:`harness.quantize.thresholds`); off by default (it lowers and runs the PTQ graph a few dozen times)
    threshold_ablation: bool = False
    #: test samples of the ablation (the first N of the split) and calibration samples of its search (the first N
    #: of ``calibrate``, else of the other split of the dataset)
    threshold_ablation_samples: int = 64

    #: fields that do not change any number of the evaluation (left out of the digest)
    NOT_IN_DIGEST = ("report", "batch_size", "progress", "ptq_budget", "qat_budget", "min_memory_reduction", "strict",
                     "vendor_semantics_budget", "enforce_realtime")

    def __post_init__(self) -> None:
        if int(self.max_chips) < 1 or not float(self.sys_tick) > 0:
            from s2common.errors import InputDataError

            raise InputDataError(f"max chips must be >= 1 and the tick > 0 s (got {self.max_chips}, {self.sys_tick})",
                                 rule="bad-option", hint="e.g. --max-chips 48 --sys-tick 2e-3")
        if int(self.threshold_ablation_samples) < 1:
            from s2common.errors import InputDataError

            raise InputDataError(f"threshold-ablation samples must be >= 1 (got {self.threshold_ablation_samples})",
                                 rule="bad-option", hint="e.g. --threshold-ablation-samples 64")
        if self.profile is not None:
            from s2emu.profiles import get_profile

            get_profile(self.profile)  # an unknown name: one InputDataError naming the known ones
        if self.qat_model == AUTO:  # the bundled Q-SNN goes with the bundled P-SNN only
            same = os.path.abspath(self.model) == os.path.abspath(bundled_model("psnn"))
            object.__setattr__(self, "qat_model", bundled_model("qsnn") if same else None)

    def replace(self, **changes: Any) -> "GateConfig":
        """A copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> Dict[str, Any]:
        """JSON-ready dict of every field."""
        d = dataclasses.asdict(self)
        d["sweep"] = list(self.sweep)
        d["atoms_per_core"] = {k: int(v) for k, v in self.atoms_per_core}
        return d

    def sweep_percentiles(self) -> Tuple[float, ...]:
        """The sweep's percentiles, sorted, including the configured ``percentile``."""
        if not self.sweep:
            return ()
        return tuple(sorted(set(float(p) for p in self.sweep) | {float(self.percentile)}))

    def digest(self) -> str:
        """sha256 over the result-relevant fields, the model files' bytes and the code version."""
        h = hashlib.sha256()
        fields = {k: v for k, v in self.as_dict().items() if k not in self.NOT_IN_DIGEST}
        for key in ("model", "qat_model", "data_root", "calibrate"):
            if fields.get(key):
                fields[key] = os.path.abspath(fields[key])
        h.update(json.dumps(fields, sort_keys=True).encode())
        for path in (self.model, self.qat_model) + ((self.calibrate,) if self.calibrate else ()):
            h.update(b"\0file\0")
            h.update(_file_digest(path).encode())
        h.update(b"\0code\0")
        h.update(code_version().encode())
        return h.hexdigest()

    def budgets(self) -> Dict[str, Any]:
        return {k: getattr(self, k) for k in BUDGETS}


def build_config(*, model: Optional[str] = None, qat_model: Optional[str] = None, dataset: Optional[str] = None,
                 data_root: Optional[str] = None, atoms: "Optional[list]" = None, no_auto_atoms: bool = False,
                 **fields: Any) -> GateConfig:
    """The one constructor of a :class:`GateConfig` from user options (pytest ``--s2-*`` and ``s2gate gate``).

    Paths become absolute; ``qat_model`` ``"none"`` (any case) means no Q-SNN, None the default
    (:data:`AUTO`); ``dataset`` is a name in :data:`DATASETS` or a path; ``atoms`` are
    ``POP=N`` strings (:func:`parse_atoms`); options given as None keep the field's default.
    """
    kw: Dict[str, Any] = {k: v for k, v in fields.items() if v is not None}
    if model:
        kw["model"] = os.path.abspath(model)
    if qat_model:
        kw["qat_model"] = None if str(qat_model).lower() == "none" else os.path.abspath(qat_model)
    if dataset:
        kw["dataset"] = dataset if dataset in DATASETS else os.path.abspath(dataset)
    if data_root:
        kw["data_root"] = os.path.abspath(data_root)
    if kw.get("calibrate"):
        kw["calibrate"] = os.path.abspath(kw["calibrate"])
    kw["atoms_per_core"] = parse_atoms(atoms)
    kw["auto_atoms"] = not no_auto_atoms
    if "sweep" in kw:
        kw["sweep"] = tuple(kw["sweep"])
    return GateConfig(**kw)


def parse_atoms(values: "Optional[list]") -> Tuple[Tuple[str, int], ...]:
    """``["if3=4", "lif1=64"]`` -> ``(("if3", 4), ("lif1", 64))``; a bad item raises InputDataError."""
    from s2common.errors import InputDataError

    out = []
    for item in values or []:
        name, sep, num = str(item).rpartition("=")
        try:
            atoms = int(num)
        except ValueError:
            atoms = 0
        if not sep or not name or atoms < 1:
            from harness.flags import flag

            raise InputDataError(f"{flag('atoms')} (atoms per core) expects POPULATION=N with N >= 1, got {item!r}",
                                 rule="bad-option",
                                 hint="e.g. if3=4 (see the hint of the population-exceeds-pe design rule)")
        out.append((name, atoms))
    return tuple(out)


def _file_digest(path: Optional[str]) -> str:
    if not path:
        return "none"
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except OSError as exc:
        return f"unreadable:{type(exc).__name__}"


_CODE_VERSION: Optional[str] = None


def code_version() -> str:
    """sha256 of the Python sources (and bundled files) of s2gate's packages, computed once per process."""
    global _CODE_VERSION
    if _CODE_VERSION is None:
        h = hashlib.sha256()
        root = Path(__file__).resolve().parents[2]
        for pkg in CODE_PACKAGES:
            base = root / pkg
            if not base.is_dir():
                continue
            for path in sorted(base.rglob("*")):
                if path.suffix not in (".py", ".nir", ".npz", ".json") or "__pycache__" in path.parts:
                    continue
                h.update(str(path.relative_to(root)).encode())
                h.update(path.read_bytes())
        _CODE_VERSION = h.hexdigest()
    return _CODE_VERSION
