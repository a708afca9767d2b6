"""The gate's checks: each turns the evaluation's numbers into a verdict against a budget.

A :class:`Check` carries the check's name, the measured value, the budget, the verdict
(``"pass"``, ``"fail"`` or ``"skip"``) and a one-line message. A failing check's message names
the check and, where one layer is to blame, the layer (and for equivalence the neuron and
tick of the first divergence). A check whose inputs could not be computed (a corrupt model
file, a missing dataset) fails with the one-line :class:`~s2common.errors.S2GateError` message
that stopped the evaluation.

Checks are pure functions of the evaluation dict (see :mod:`harness.gate.evaluate`) and the
budgets, so the pytest plugin, ``s2gate gate`` and the report all agree.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence

PASS, FAIL, SKIP = "pass", "fail", "skip"

#: Relative spike-rate change above which a layer is blamed for an accuracy drop.
RATE_TOLERANCE = 0.10


@dataclass(frozen=True)
class Check:
    """One verdict of the gate.

    Attributes:
        name: dotted check name, e.g. ``"accuracy.ptq"``.
        title: what is checked, in a few words.
        measured: the measured value as shown (e.g. ``"0.83 pp"``), or ``"-"``.
        budget: the budget as shown (e.g. ``"<= 1.10 pp"``).
        verdict: ``"pass"``, ``"fail"`` or ``"skip"``.
        message: one line; for a failure it names the check and, where possible, the layer.
        value: the measured number (None if not measured), for JSON.
        layer: the layer blamed for a failure, if any.
    """

    name: str
    title: str
    measured: str
    budget: str
    verdict: str
    message: str
    value: Optional[float] = None
    layer: Optional[str] = None

    @property
    def passed(self) -> bool:
        return self.verdict == PASS

    def as_dict(self) -> Dict[str, Any]:
        return asdict(self)


#: check name -> (title, evaluation sections it needs)
CHECKS: Dict[str, tuple] = {
    "equivalence.ptq": ("emulator = reference on the PTQ int8 graph",
                        ("model", "data", "ptq", "ptq_lower", "ptq_run", "equivalence_ptq")),
    "equivalence.qat": ("emulator = reference on the Q-SNN int8 graph",
                        ("qat_model", "data", "qat_lower", "qat_run", "equivalence_qat")),
    "accuracy.ptq": ("float -> PTQ on the emulator, accuracy drop",
                     ("model", "data", "float_run", "ptq", "ptq_lower", "ptq_run")),
    "accuracy.qat": ("Q-SNN float -> Q-SNN on the emulator, accuracy drop",
                     ("qat_model", "data", "qat_float_run", "qat_lower", "qat_run")),
    "memory.reduction": ("weight memory float32 -> int8", ("model", "ptq", "ptq_lower", "memory")),
    "memory.fits-chip": ("PTQ model fits SpiNNaker2", ("model", "ptq", "ptq_lower", "chip")),
    "design-rules.ptq": ("design rules on the PTQ int8 graph", ("model", "ptq", "rules_ptq")),
    "design-rules.qat": ("design rules on the Q-SNN int8 graph", ("qat_model", "rules_qat")),
    "hardware-in-the-loop": ("board = emulator, spike for spike", ("hil",)),
}
CHECK_NAMES: List[str] = list(CHECKS)


def _first_error(ev: Dict[str, Any], sections: Sequence[str]) -> Optional[str]:
    errors = ev.get("errors", {})
    for s in sections:
        if s in errors:
            return errors[s]
    return None


def _cannot_run(ev: Dict[str, Any], name: str, title: str, sections: Sequence[str], budget: str,
                flow: Optional[str] = None) -> Optional[Check]:
    """The SKIP (no Q-SNN configured for a QAT check) or FAIL (an input it needs could not be
    evaluated) verdict of a check that cannot measure anything; None when it can."""
    if flow == "qat" and not ev.get("config", {}).get("qat_model"):
        return Check(name, title, "-", budget, SKIP, f"{name}: no Q-SNN model configured (--s2-qat-model)")
    err = _first_error(ev, sections)
    if err:
        return Check(name, title, "-", budget, FAIL, f"{name}: could not run: {err}")
    return None


def _pct(x: Optional[float]) -> str:
    return "-" if x is None else f"{x:.2f} %"


def _blame_layer(layers: List[Dict[str, Any]], a: str, b: str) -> Optional[Dict[str, Any]]:
    """The first layer (in network order) whose spike rate changes by more than RATE_TOLERANCE
    (relative) between runs ``a`` and ``b``; if none does, the layer with the largest change."""
    best, best_dev = None, -1.0
    for layer in layers:
        ra, rb = layer.get(a), layer.get(b)
        if ra is None or rb is None:
            continue
        dev = abs(rb - ra) / max(ra, 1e-3)
        if dev > RATE_TOLERANCE:
            return {**layer, "deviation": dev}
        if dev > best_dev:
            best, best_dev = {**layer, "deviation": dev}, dev
    return best


def _rate_text(layer: Dict[str, Any], a: str, b: str, la: str, lb: str) -> str:
    fed = f" (fed by {', '.join(repr(w) for w in layer['weights'])})" if layer.get("weights") else ""
    what = (f"first layer whose spike rate changes by more than {100 * RATE_TOLERANCE:.0f} %"
            if layer["deviation"] > RATE_TOLERANCE else "largest spike-rate change")
    return (f"{what}: layer '{layer['name']}'{fed}, {la} {layer[a]:.4f} -> {lb} {layer[b]:.4f} "
            "spikes per neuron per tick")


def check_equivalence(ev: Dict[str, Any], flow: str) -> Check:
    name = f"equivalence.{flow}"
    title, sections = CHECKS[name]
    budget = "100 % consistent"
    blocked = _cannot_run(ev, name, title, sections, budget, flow)
    if blocked:
        return blocked
    eq = ev["equivalence"][flow]
    share = eq["consistent_share"]
    measured = (f"{100 * share:.2f} % consistent, {100 * eq['identical_share']:.2f} % identical, "
                f"{100 * eq['prediction_agreement']:.2f} % same prediction")
    if eq["diverging"] == 0:
        return Check(name, title, measured, budget, PASS,
                     f"{name}: {eq['identical']} of {eq['spike_trains']} spike trains identical, "
                     f"{eq['ambiguous']} differ only where the reference voltage is within rounding of the threshold",
                     value=share)
    fd = eq.get("first_divergence") or {}
    where = describe_divergence(fd)
    return Check(name, title, measured, budget, FAIL,
                 f"{name}: {eq['diverging']} of {eq['spike_trains']} spike trains differ beyond rounding; "
                 f"first divergence {where}", value=share, layer=fd.get("layer"))


def describe_divergence(fd: Dict[str, Any]) -> str:
    """'at layer 'x', neuron (c, h, w) [flat n], tick t, sample s (...)' for a first-divergence dict."""
    if not fd:
        return "(location unknown)"
    neuron = fd.get("neuron")
    ntext = f"({', '.join(str(i) for i in neuron)})" if isinstance(neuron, (list, tuple)) else str(neuron)
    text = f"at layer '{fd.get('layer')}', neuron {ntext}"
    if fd.get("flat_neuron") is not None and isinstance(neuron, (list, tuple)) and len(neuron) > 1:
        text += f" [flat {fd['flat_neuron']}]"
    text += f", tick {fd.get('tick')}"
    if fd.get("sample") is not None:
        text += f", sample {fd['sample']}"
    if fd.get("detail"):
        text += f" ({fd['detail']})"
    return text


def check_accuracy(ev: Dict[str, Any], flow: str, budget_pp: float) -> Check:
    name = f"accuracy.{flow}"
    title, sections = CHECKS[name]
    budget = f"<= {budget_pp:.2f} pp"
    blocked = _cannot_run(ev, name, title, sections, budget, flow)
    if blocked:
        return blocked
    acc = ev["accuracy"]
    if flow == "ptq":
        a, b, la, lb, ra, rb = acc["float"], acc["ptq"], "float", "PTQ", "rate_float", "rate_int8"
        layers = ev.get("layers", {}).get("ptq", [])
    else:
        a, b, la, lb, ra, rb = acc["qat_float"], acc["qat"], "Q-SNN float", "Q-SNN emulator", "rate_float", "rate_int8"
        layers = ev.get("layers", {}).get("qat", [])
    drop = a - b
    measured = f"{drop:.2f} pp ({la} {a:.2f} % -> {lb} {b:.2f} %)"
    if drop <= budget_pp + 1e-9:
        return Check(name, title, measured, budget, PASS, f"{name}: {la} {a:.2f} % -> {lb} {b:.2f} %, drop {drop:.2f} pp",
                     value=drop)
    blame = _blame_layer(layers, ra, rb)
    msg = f"{name}: accuracy drops by {drop:.2f} pp ({la} {a:.2f} % -> {lb} {b:.2f} %), over the {budget_pp:.2f} pp budget"
    if blame:
        msg += "; " + _rate_text(blame, ra, rb, la, lb)
    return Check(name, title, measured, budget, FAIL, msg, value=drop, layer=blame["name"] if blame else None)


def check_memory_reduction(ev: Dict[str, Any], minimum: float) -> Check:
    name = "memory.reduction"
    title, sections = CHECKS[name]
    budget = f">= {100 * minimum:.1f} %"
    blocked = _cannot_run(ev, name, title, sections, budget)
    if blocked:
        return blocked
    mem = ev["memory"]
    red = mem["reduction"]
    measured = f"{100 * red:.2f} % ({mem['float32_bytes']:,} -> {mem['int8_bytes']:,} B)"
    if red + 1e-12 >= minimum:
        return Check(name, title, measured, budget, PASS, f"{name}: weight memory {mem['float32_bytes']:,} B float32 -> "
                     f"{mem['int8_bytes']:,} B int8, {100 * red:.2f} % less", value=red)
    worst = min(mem.get("layers", []), key=lambda l: l.get("reduction", 1.0), default=None)
    msg = f"{name}: weight memory falls by only {100 * red:.2f} % (minimum {100 * minimum:.1f} %)"
    if worst:
        msg += (f"; layer '{worst['name']}' saves least: {worst['float32_bytes']:,} B -> {worst['int8_bytes']:,} B "
                f"({100 * worst['reduction']:.1f} %)")
    return Check(name, title, measured, budget, FAIL, msg, value=red, layer=worst["name"] if worst else None)


def check_fits_chip(ev: Dict[str, Any]) -> Check:
    name = "memory.fits-chip"
    title, sections = CHECKS[name]
    budget = "fits"
    blocked = _cannot_run(ev, name, title, sections, budget)
    if blocked:
        return blocked
    chip = ev["memory"]["chip"]
    measured = f"{chip['pes']} PEs on {chip['chips']} chip(s)"
    budget = f"fits ({chip.get('pes_per_chip', '?')} PEs per chip)"
    auto = chip.get("auto_atoms") or {}
    if auto:
        measured += " (" + ", ".join(f"{k}: {v} atoms/PE" for k, v in auto.items()) + ")"
    if chip["fits"]:
        msg = f"{name}: {measured}"
        if auto:
            msg += (" - atoms per PE chosen by the gate so each layer fits one PE's SRAM; set them in py-spinnaker2 "
                    "with pop.set_max_atoms_per_core(n)")
        return Check(name, title, measured, budget, PASS, msg, value=float(chip["pes"]))
    bad = chip.get("failing_layers") or []
    msg = f"{name}: the model does not fit SpiNNaker2: {chip.get('detail') or measured}"
    layer = None
    if bad:
        layer = bad[0]["name"]
        msg += "; " + "; ".join(f"layer '{b['name']}': {b['reason']}" for b in bad[:3])
        if "on one PE" in bad[0]["reason"]:
            msg += (f" (hint: spread '{layer}' over more PEs with --atoms {layer}=N / --s2-atoms {layer}=N or the model's "
                    "s2gate.atoms_per_core metadata; design-rules.ptq names the largest N that fits)")
    return Check(name, title, measured, budget, FAIL, msg, value=float(chip["pes"]), layer=layer)


def check_rules(ev: Dict[str, Any], flow: str) -> Check:
    name = f"design-rules.{flow}"
    title, sections = CHECKS[name]
    budget = "0 violations"
    blocked = _cannot_run(ev, name, title, sections, budget, flow)
    if blocked:
        return blocked
    violations = [v for v in ev["design_rules"][flow] if v.get("severity", "error") == "error"]
    warnings = [v for v in ev["design_rules"][flow] if v.get("severity", "error") != "error"]
    measured = f"{len(violations)} violations" + (f", {len(warnings)} warnings" if warnings else "")
    if not violations:
        return Check(name, title, measured, budget, PASS, f"{name}: all design rules pass" +
                     (f" ({len(warnings)} warnings: {warnings[0]['rule']} at '{warnings[0]['node']}')" if warnings else ""),
                     value=0.0)
    first = violations[0]
    msg = (f"{name}: {len(violations)} design rule violation(s); first: [{first['rule']}] layer '{first['node']}': "
           f"{first['message']}" + (f" (hint: {first['hint']})" if first.get("hint") else ""))
    return Check(name, title, measured, budget, FAIL, msg, value=float(len(violations)), layer=first["node"])


def check_hil(ev: Dict[str, Any]) -> Check:
    name = "hardware-in-the-loop"
    title, sections = CHECKS[name]
    budget = "100 % identical"
    hil = ev.get("hil") or {"status": "skipped", "reason": "not evaluated"}
    if hil.get("status") == "skipped":
        return Check(name, title, "-", budget, SKIP, f"{name}: skipped: {hil.get('reason')}")
    blocked = _cannot_run(ev, name, title, sections, budget)
    if blocked:
        return blocked
    eq = hil["comparison"]
    measured = f"{100 * eq['identical_share']:.2f} % identical spike trains"
    if eq["diverging"] == 0 and not eq.get("voltage_mismatches"):
        return Check(name, title, measured, budget, PASS, f"{name}: board and emulator agree on all "
                     f"{eq['spike_trains']} spike trains", value=eq["identical_share"])
    fd = eq.get("first_divergence") or {}
    return Check(name, title, measured, budget, FAIL,
                 f"{name}: board and emulator differ in {eq['diverging']} of {eq['spike_trains']} spike trains and "
                 f"{eq.get('voltage_mismatches', 0)} voltages; first divergence {describe_divergence(fd)}",
                 value=eq["identical_share"],
                 layer=fd.get("layer"))


def run_checks(ev: Dict[str, Any], budgets: Optional[Dict[str, float]] = None) -> List[Check]:
    """Every check of the gate, in :data:`CHECK_NAMES` order.

    ``budgets`` defaults to the evaluation's own config (``ptq_budget``, ``qat_budget``,
    ``min_memory_reduction``).
    """
    return [run_check(ev, name, budgets) for name in CHECK_NAMES]


def run_check(ev: Dict[str, Any], name: str, budgets: Optional[Dict[str, float]] = None) -> Check:
    """One check by name (see :data:`CHECK_NAMES`)."""
    cfg = ev.get("config", {})
    b = {"ptq_budget": cfg.get("ptq_budget", 1.1), "qat_budget": cfg.get("qat_budget", 0.6),
         "min_memory_reduction": cfg.get("min_memory_reduction", 0.75)}
    b.update(budgets or {})
    table: Dict[str, Callable[[], Check]] = {
        "equivalence.ptq": lambda: check_equivalence(ev, "ptq"),
        "equivalence.qat": lambda: check_equivalence(ev, "qat"),
        "accuracy.ptq": lambda: check_accuracy(ev, "ptq", b["ptq_budget"]),
        "accuracy.qat": lambda: check_accuracy(ev, "qat", b["qat_budget"]),
        "memory.reduction": lambda: check_memory_reduction(ev, b["min_memory_reduction"]),
        "memory.fits-chip": lambda: check_fits_chip(ev),
        "design-rules.ptq": lambda: check_rules(ev, "ptq"),
        "design-rules.qat": lambda: check_rules(ev, "qat"),
        "hardware-in-the-loop": lambda: check_hil(ev),
    }
    if name not in table:
        raise KeyError(f"unknown check {name!r}; one of {CHECK_NAMES}")
    try:
        return table[name]()
    except (KeyError, TypeError) as exc:  # an evaluation that lacks what the check needs
        title = CHECKS[name][0]
        return Check(name, title, "-", "-", FAIL, f"{name}: the evaluation has no result for this check "
                     f"({type(exc).__name__}: {exc})")
