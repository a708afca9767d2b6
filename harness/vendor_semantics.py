"""What py-spinnaker2's converter alone does to a float model, before any quantization.

The same float NIR graph is run by the reference twice, with the same discretisation (by default
the ``spinnaker2`` preset: forward Euler, reset by subtraction, one tick of latency per projection):

* **NIR semantics**: the graph's own meaning (``bias="input"``: an Affine/Conv bias is part of the
  input, so a CubaLIF's bias passes its synaptic filter);
* **chip semantics**: what the converter builds from it (``bias="i_offset"``: ``get_accumulated_bias``
  folds the bias into the neuron's ``i_offset``, at full strength from tick 0; GitHub
  ``SpiNNakerManchester/sPiNNIRker`` 47c758b ``spinnirker/__init__.py`` ``convert_CubaLIF``).

:func:`vendor_semantics` compares the two runs spike train by spike train (one train = one neuron of one
sample over all ticks) and, with labels, in accuracy. It is a pure function of the graph and the data;
the gate report shows it as a report-only section (``check_vendor_semantics`` turns it into a check with
a budget on the share of changed trains; the default budget is ``None``: report only).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional

import numpy as np

#: Samples the gate's vendor-semantics section runs (the first ones; independent of the batch size).
GATE_SAMPLES = 64
#: The converter's change of meaning, as reference options applied on top of the chip preset.
NIR_SEMANTICS: Mapping[str, Any] = {"bias": "input"}
CHIP_SEMANTICS: Mapping[str, Any] = {"bias": "i_offset"}


@dataclass
class VendorSemantics:
    """Float model, NIR semantics vs chip semantics.

    Attributes:
        trains: spike trains compared (samples x neurons of every spiking population).
        changed: trains that differ in at least one tick.
        per_population: ``{population: {"trains": n, "changed": k}}``.
        accuracy_nir / accuracy_chip: accuracy of the two runs (None without labels).
        predictions_changed: share of samples whose predicted class differs.
        options: the reference options of each side.
    """

    trains: int
    changed: int
    per_population: Dict[str, Dict[str, int]]
    accuracy_nir: Optional[float]
    accuracy_chip: Optional[float]
    predictions_changed: float
    options: Dict[str, Dict[str, Any]] = field(default_factory=dict)

    @property
    def changed_share(self) -> float:
        return self.changed / self.trains if self.trains else 0.0

    @property
    def accuracy_drop_pp(self) -> Optional[float]:
        """Accuracy NIR semantics minus chip semantics, percentage points (None without labels)."""
        if self.accuracy_nir is None or self.accuracy_chip is None:
            return None
        return 100.0 * (self.accuracy_nir - self.accuracy_chip)

    def as_dict(self) -> Dict[str, Any]:
        return {"trains": self.trains, "changed": self.changed, "changed_share": self.changed_share,
                "per_population": self.per_population, "accuracy_nir": self.accuracy_nir,
                "accuracy_chip": self.accuracy_chip, "accuracy_drop_pp": self.accuracy_drop_pp,
                "predictions_changed": self.predictions_changed, "options": self.options}

    def summary_line(self) -> str:
        acc = ""
        if self.accuracy_nir is not None:
            acc = (f"; accuracy {100 * self.accuracy_nir:.2f} % (NIR) -> {100 * self.accuracy_chip:.2f} % (chip), "
                   f"{self.accuracy_drop_pp:+.2f} pp")
        return (f"bias folding changes {self.changed} of {self.trains} spike trains "
                f"({100 * self.changed_share:.2f} %), {100 * self.predictions_changed:.2f} % of predictions{acc}")


def vendor_semantics(graph: Any, inputs: np.ndarray, labels: Optional[np.ndarray] = None, *,
                     readout: Optional[str] = None, preset: str = "spinnaker2",
                     options: Optional[Mapping[str, Any]] = None, dt: Optional[float] = None) -> VendorSemantics:
    """Run ``graph`` (float NIR) on ``inputs`` (batch, time, *input_shape) in NIR and in chip semantics.

    Args:
        graph: NIR graph, FlatGraph or path.
        inputs: 0/1 spikes.
        labels: (batch,) class indices, for the two accuracies (readout: ``readout`` or the population
            feeding the Output, argmax of its spike counts, :func:`harness.metrics.predict`).
        preset, options: the discretisation both sides share (e.g. a vendor profile's reference options).
        dt: the tick (default: the preset's / ``options["dt"]``).
    """
    from harness.metrics import accuracy, predict
    from reference import simulate
    from s2common.graph import as_flat, feeding_population

    flat = as_flat(graph)
    shared = dict(options or {})
    nir_opts = {**shared, **NIR_SEMANTICS}
    chip_opts = {**shared, **CHIP_SEMANTICS}
    a = simulate(flat, inputs, preset=preset, options=nir_opts, dt=dt)
    b = simulate(flat, inputs, preset=preset, options=chip_opts, dt=dt)
    per: Dict[str, Dict[str, int]] = {}
    trains = changed = 0
    for node in flat.order:
        sa, sb = a.get(node, "spikes"), b.get(node, "spikes")
        if sa is None or sb is None or flat.type_of(node) == "Input":
            continue
        ra = np.asarray(sa).reshape(sa.shape[0], sa.shape[1], -1)
        rb = np.asarray(sb).reshape(sb.shape[0], sb.shape[1], -1)
        diff = np.any(ra != rb, axis=1)  # (batch, neurons)
        per[node] = {"trains": int(diff.size), "changed": int(diff.sum())}
        trains += int(diff.size)
        changed += int(diff.sum())
    out = readout or feeding_population(flat)
    pa, pb = predict(a, out), predict(b, out)
    acc_a = acc_b = None
    if labels is not None:
        acc_a, acc_b = accuracy(pa, labels), accuracy(pb, labels)
    return VendorSemantics(trains=trains, changed=changed, per_population=per, accuracy_nir=acc_a,
                           accuracy_chip=acc_b, predictions_changed=float(np.mean(pa != pb)),
                           options={"nir": dict(a.meta["options"]), "chip": dict(b.meta["options"])})


def check_vendor_semantics(result: VendorSemantics, budget: Optional[float] = None) -> Dict[str, Any]:
    """A check record: ``measured`` = share of changed spike trains; ``budget`` None (default) = report only.

    Returns ``{"name": "vendor-semantics", "measured", "budget", "verdict": "REPORT" | "PASS" | "FAIL",
    "message"}``.
    """
    share = result.changed_share
    if budget is None:
        verdict = "REPORT"
    else:
        verdict = "PASS" if share <= budget else "FAIL"
    return {"name": "vendor-semantics", "measured": share, "budget": budget, "verdict": verdict,
            "message": result.summary_line()}


def markdown_section(result: Mapping[str, Any], check: Optional[Mapping[str, Any]] = None) -> str:
    """The gate report's "Vendor semantics" section (markdown) from :meth:`VendorSemantics.as_dict`."""
    lines = ["## Vendor semantics: what py-spinnaker2's converter alone does to the float model", "",
             "Float model, before any quantization, run by the reference in NIR semantics (an Affine bias passes the "
             "synaptic filter) and in chip semantics (`get_accumulated_bias` folds it into `i_offset`, full strength "
             "from tick 0).", "",
             "| population | spike trains | changed |", "|---|---|---|"]
    for pop, c in result.get("per_population", {}).items():
        lines.append(f"| {pop} | {c['trains']} | {c['changed']} |")
    lines.append(f"| all | {result['trains']} | {result['changed']} ({100 * result['changed_share']:.2f} %) |")
    lines.append("")
    if result.get("accuracy_nir") is not None:
        lines.append(f"Accuracy: {100 * result['accuracy_nir']:.2f} % (NIR semantics) -> "
                     f"{100 * result['accuracy_chip']:.2f} % (chip semantics), {result['accuracy_drop_pp']:+.2f} pp; "
                     f"{100 * result['predictions_changed']:.2f} % of predictions change.")
    if check is not None:
        budget = "report only" if check.get("budget") is None else f"budget {100 * check['budget']:.2f} % of trains"
        lines.append(f"Check `vendor-semantics`: {check['verdict']} ({budget}).")
    return "\n".join(lines) + "\n"


def gate_vendor_semantics(float_graph: Any, spikes: np.ndarray, labels: np.ndarray, cfg: Any) -> Dict[str, Any]:
    """The gate's vendor-semantics figures (JSON-ready) for a float model and its data.

    Runs :func:`vendor_semantics` on the first :data:`GATE_SAMPLES` samples with the model's preset and the
    vendor profile's reference options, when the converter folds a bias into a CubaLIF (the only case where
    the two semantics differ: for IF and LIF the folded bias is the same update, see
    ``reference.neurons.fold_bias``); otherwise records that nothing changes, without running.
    """
    from harness.run.options import model_dt, model_preset, reference_options
    from reference.simulate import fold_biases
    from s2common.graph import as_flat

    flat = as_flat(float_graph)
    folded, _ = fold_biases(flat)
    cuba = sorted(n for n in folded if flat.type_of(n) == "CubaLIF")
    n = int(min(int(spikes.shape[0]), GATE_SAMPLES))
    if not cuba:
        pops = [p for p in flat.order if flat.type_of(p) in ("IF", "LIF", "CubaLIF")]
        per = {p: {"trains": n * int(np.prod(flat.out_shape[p])), "changed": 0} for p in pops}
        trains = sum(c["trains"] for c in per.values())
        return {"trains": trains, "changed": 0, "changed_share": 0.0, "per_population": per, "accuracy_nir": None,
                "accuracy_chip": None, "accuracy_drop_pp": None, "predictions_changed": 0.0, "samples": n,
                "measured": False, "folded_cubalif": [],
                "summary": "no Affine/Conv bias reaches a CubaLIF: the converter's bias folding changes nothing "
                           "(for IF/LIF it is the same update)"}
    opts = reference_options(float_graph, getattr(cfg, "profile", None))
    r = vendor_semantics(flat, spikes[:n], labels[:n], preset=model_preset(float_graph), options=opts,
                         dt=None if opts else model_dt(float_graph))
    d = r.as_dict()
    d.update(samples=n, measured=True, folded_cubalif=cuba, summary=r.summary_line() + f" (first {n} samples)")
    return d


def report_rows(vs: Mapping[str, Any]) -> "tuple[list, list, list]":
    """(headers, rows, paragraphs) of the gate report's vendor-semantics section."""
    rows = [[p, f"{c['trains']:,}", f"{c['changed']:,}"] for p, c in vs.get("per_population", {}).items()]
    rows.append(["all", f"{vs['trains']:,}", f"{vs['changed']:,} ({100 * vs['changed_share']:.2f} %)"])
    paras = ["The float model run by the reference in NIR semantics (an Affine bias passes a CubaLIF's synaptic "
             "filter) and in chip semantics (py-spinnaker2's get_accumulated_bias folds it into i_offset, full "
             "strength from tick 0), before any quantization: what the converter alone changes.",
             str(vs.get("summary", ""))]
    if vs.get("accuracy_nir") is not None:
        paras.append(f"Accuracy {100 * vs['accuracy_nir']:.2f} % (NIR semantics) -> {100 * vs['accuracy_chip']:.2f} % "
                     f"(chip semantics), {vs['accuracy_drop_pp']:+.2f} pp, on {vs.get('samples')} samples.")
    return ["population", "spike trains", "changed"], rows, paras
