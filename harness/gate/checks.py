"""The gate's checks: each turns the evaluation's typed results into a verdict against a budget.

A :class:`Check` carries the check's name, the measured value, the budget, the verdict
(``"pass"``, ``"fail"`` or ``"skip"``) and a one-line message. A failing check's message names
the check and, where one layer is to blame, the layer (and for equivalence the neuron and
tick of the first divergence). A check whose inputs could not be computed (a corrupt model
file, a missing dataset) fails with the one-line :class:`~s2common.errors.S2GateError` message
that stopped the evaluation; a check of a flow without a model (no Q-SNN given) is skipped with
the reason. Each flow's checks look only at that flow's sections, so one unreadable model does
not fail the other model's checks.

Checks are pure functions of the :class:`~harness.gate.results.Evaluation` (its fields, never
string keys) and the budgets, so the pytest plugin, ``s2gate gate`` and the report agree. A
check that meets a result it does not expect raises (a bug in s2gate is an error, not a FAIL).

Adding a check: write ``check_x(ev, budgets) -> Check`` here, add its name, title and the
evaluation sections it needs to :data:`CHECKS`, and its entry to :func:`_table`; add a field to
the result in :mod:`harness.gate.results` if it measures something new; give it a test where
it fails for the right reason (``suites/gate/``).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import Any, Callable, Dict, List, Optional, Sequence

from .results import Evaluation, LayerRates, as_evaluation

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
        interval: for accuracy checks, the 95 % interval of the drop (pp).
        warning: a one-line caveat (e.g. the data's resolution is coarser than the budget).
        values: per-flow measured numbers (``memory.reduction``: ``{"ptq": 0.75, "qat": 0.75}``).
        tier: ``exact``, ``bounded`` or ``statistical`` (architecture note, "Name the tier").
    """

    name: str
    title: str
    measured: str
    budget: str
    verdict: str
    message: str
    value: Optional[float] = None
    layer: Optional[str] = None
    interval: Optional[List[float]] = None
    warning: Optional[str] = None
    values: Optional[Dict[str, float]] = None
    tier: Optional[str] = None

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
    "realtime": ("worst PE's work per tick within sys_tick (report only)",
                 ("model", "data", "ptq", "ptq_lower", "ptq_run", "realtime")),
    "hardware-in-the-loop": ("board = emulator, spike for spike", ("hil",)),
    "vendor-semantics": ("float model: NIR semantics vs the converter's chip semantics", ("model", "data",
                                                                                          "vendor_semantics")),
}
CHECK_NAMES: List[str] = list(CHECKS)
#: the sections behind each flow's memory figures
MEMORY_SECTIONS = {"ptq": ("model", "ptq", "ptq_lower", "memory"), "qat": ("qat_model", "qat_lower", "memory_qat")}
#: why a QAT check has nothing to judge
def no_qsnn() -> str:
    """Why a QAT check has nothing to judge, naming the option of the interface in use."""
    from harness.flags import flag

    return f"no Q-SNN model given ({flag('qat-model')}; the bundled Q-SNN is used only with the bundled P-SNN)"


def _first_error(ev: Evaluation, sections: Sequence[str]) -> Optional[str]:
    for s in sections:
        if s in ev.errors:
            return ev.errors[s]
    return None


def _cannot_run(ev: Evaluation, name: str, title: str, sections: Sequence[str], budget: str,
                flow: Optional[str] = None) -> Optional[Check]:
    """The SKIP (no Q-SNN configured for a QAT check) or FAIL (an input it needs could not be
    evaluated) verdict of a check that cannot measure anything; None when it can."""
    if flow == "qat" and not ev.config.get("qat_model"):
        return Check(name, title, "-", budget, SKIP, f"{name}: {no_qsnn()}")
    err = _first_error(ev, sections)
    if err:
        return Check(name, title, "-", budget, FAIL, f"{name}: could not run: {err}")
    return None


def _blame_layer(layers: List[LayerRates]) -> Optional[Dict[str, Any]]:
    """The first layer (in network order) whose spike rate changes by more than RATE_TOLERANCE
    (relative) between the float view and the emulator; if none does, the layer with the largest change."""
    best, best_dev = None, -1.0
    for layer in layers:
        dev = abs(layer.rate_int8 - layer.rate_float) / max(layer.rate_float, 1e-3)
        if dev > RATE_TOLERANCE:
            return {"layer": layer, "deviation": dev}
        if dev > best_dev:
            best, best_dev = {"layer": layer, "deviation": dev}, dev
    return best


def _rate_text(blame: Dict[str, Any], la: str, lb: str) -> str:
    layer: LayerRates = blame["layer"]
    fed = f" (fed by {', '.join(repr(w) for w in layer.weights)})" if layer.weights else ""
    what = (f"first layer whose spike rate changes by more than {100 * RATE_TOLERANCE:.0f} %"
            if blame["deviation"] > RATE_TOLERANCE else "largest spike-rate change")
    return (f"{what}: layer '{layer.name}'{fed}, {la} {layer.rate_float:.4f} -> {lb} {layer.rate_int8:.4f} "
            "spikes per neuron per tick")


def check_equivalence(ev: Evaluation, flow: str) -> Check:
    name = f"equivalence.{flow}"
    title, sections = CHECKS[name]
    budget = "100 % consistent"
    blocked = _cannot_run(ev, name, title, sections, budget, flow)
    if blocked:
        return blocked
    eq = ev.equivalence[flow]
    share = eq.consistent_share
    measured = (f"{100 * share:.2f} % consistent, {100 * eq.identical_share:.2f} % identical, "
                f"{100 * eq.prediction_agreement:.2f} % same prediction")
    if eq.diverging == 0:
        return Check(name, title, measured, budget, PASS,
                     f"{name}: {eq.identical} of {eq.spike_trains} spike trains identical, "
                     f"{eq.ambiguous} differ only where the reference voltage is within rounding of the threshold",
                     value=share, tier=eq.tier)
    fd = eq.first_divergence
    return Check(name, title, measured, budget, FAIL,
                 f"{name}: {eq.diverging} of {eq.spike_trains} spike trains differ beyond rounding; "
                 f"first divergence {describe_divergence(fd)}", value=share, layer=fd.layer if fd else None,
                 tier=eq.tier)


def describe_divergence(fd: Any) -> str:
    """'at layer 'x', neuron (c, h, w) [flat n], tick t, sample s (...)' for a :class:`Divergence` (or its dict)."""
    if not fd:
        return "(location unknown)"
    get = fd.get if isinstance(fd, dict) else (lambda k: getattr(fd, k, None))
    neuron = get("neuron")
    ntext = f"({', '.join(str(i) for i in neuron)})" if isinstance(neuron, (list, tuple)) else str(neuron)
    text = f"at layer '{get('layer')}', neuron {ntext}"
    if get("flat_neuron") is not None and isinstance(neuron, (list, tuple)) and len(neuron) > 1:
        text += f" [flat {get('flat_neuron')}]"
    text += f", tick {get('tick')}"
    if get("sample") is not None:
        text += f", sample {get('sample')}"
    if get("detail"):
        text += f" ({get('detail')})"
    return text


def _at_most(numerator: int, denominator: int, budget: float) -> bool:
    """``numerator / denominator <= budget`` exactly (``budget`` read as the decimal it prints as)."""
    return Fraction(numerator, denominator) <= Fraction(repr(float(budget)))


def check_accuracy(ev: Evaluation, flow: str, budget_pp: float, strict: bool = False) -> Check:
    """Point estimate of the drop against the budget (exact, in whole samples); with ``strict``
    the upper bound of its 95 % interval. Warns when one sample is more than the budget."""
    name = f"accuracy.{flow}"
    title, sections = CHECKS[name]
    budget = f"<= {budget_pp:.2f} pp" + (" (95 % upper bound)" if strict else "")
    blocked = _cannot_run(ev, name, title, sections, budget, flow)
    if blocked:
        return blocked
    st = ev.accuracy_stats[flow]
    la, lb = ("float", "PTQ") if flow == "ptq" else ("Q-SNN float", "Q-SNN emulator")
    a, b, drop = st.reference, st.candidate, st.drop
    measured = f"{drop:.2f} pp ({la} {a:.2f} % -> {lb} {b:.2f} %)"
    warning = None
    if st.resolution is not None and st.resolution > budget_pp:
        warning = (f"{name}: one sample is {st.resolution:.2f} pp of accuracy ({st.samples} samples), coarser than "
                   f"the {budget_pp:.2f} pp budget: the drop can only be judged in steps of {st.resolution:.2f} pp; "
                   "use more samples")
    lo, hi = st.interval
    if strict:
        ok = hi <= budget_pp
    else:
        ok = _at_most(100 * (st.lost - st.gained), st.samples, budget_pp)
    common = dict(value=drop, interval=[lo, hi], warning=warning, tier=st.tier)
    if ok:
        return Check(name, title, measured, budget, PASS, f"{name}: {la} {a:.2f} % -> {lb} {b:.2f} %, drop {drop:.2f} pp",
                     **common)
    blame = _blame_layer(ev.layers.get(flow, []))
    if strict and _at_most(100 * (st.lost - st.gained), st.samples, budget_pp):
        msg = (f"{name}: the 95 % interval of the drop reaches {hi:.2f} pp ({la} {a:.2f} % -> {lb} {b:.2f} %, drop "
               f"{drop:.2f} pp, interval [{lo:.2f}, {hi:.2f}] pp), over the {budget_pp:.2f} pp budget (strict mode)")
    else:
        msg = (f"{name}: accuracy drops by {drop:.2f} pp ({la} {a:.2f} % -> {lb} {b:.2f} %), over the "
               f"{budget_pp:.2f} pp budget")
    if blame:
        msg += "; " + _rate_text(blame, la, lb)
    return Check(name, title, measured, budget, FAIL, msg, layer=blame["layer"].name if blame else None, **common)


def check_memory_reduction(ev: Evaluation, minimum: float) -> Check:
    """Every flow's weight memory, by the storage width its codes need, falls by at least ``minimum``
    (exact fractions). The P-SNN's (PTQ) memory is needed: without it the check fails with the
    error that stopped it. The Q-SNN's is judged when it could be counted; an unreadable Q-SNN
    is left to the QAT checks, so it does not fail this one."""
    name = "memory.reduction"
    title, sections = CHECKS[name]
    budget = f">= {100 * minimum:.1f} %"
    flows = dict(ev.memory.flows) if ev.memory is not None else {}
    if "ptq" not in flows:  # the P-SNN's memory is this check's first input, as it always was
        blocked = _cannot_run(ev, name, title, sections, budget)
        if blocked:
            return blocked
    if not flows:
        raise ValueError(f"{name}: the evaluation counted no flow's memory and recorded no error")
    order = sorted(flows, key=lambda k: (flows[k].reduction_fraction(), k != "ptq", k))
    worst = flows[order[0]]
    values = {k: flows[k].reduction for k in sorted(flows)}
    label = "int8" if all(r.storage == "int8" for r in worst.layers) else "as stored"
    measured = f"{100 * worst.reduction:.2f} % ({worst.float32_bytes:,} -> {worst.stored_bytes:,} B)"
    if worst.meets(minimum):
        return Check(name, title, measured, budget, PASS, f"{name}: weight memory {worst.float32_bytes:,} B float32 -> "
                     f"{worst.stored_bytes:,} B {label}, {100 * worst.reduction:.2f} % less", value=worst.reduction,
                     values=values, tier="exact")
    wide = [r for r in worst.layers if r.storage != "int8"]
    culprit = wide[0] if wide else min(worst.layers, key=lambda r: r.reduction, default=None)
    flow_name = "Q-SNN" if worst.flow == "qat" else worst.flow.upper()
    msg = f"{name}: {flow_name} weight memory falls by only {100 * worst.reduction:.2f} % (minimum {100 * minimum:.1f} %)"
    if culprit is not None:
        codes = "" if culprit.max_abs_code is None or culprit.storage == "float32" else \
            f", codes up to +-{culprit.max_abs_code:g}"
        why = "left in float" if culprit.storage == "float32" else f"stored as {culprit.storage}{codes}"
        msg += (f"; layer '{culprit.name}' is {why}: {culprit.float32_bytes:,} B -> {culprit.int8_bytes:,} B "
                f"({100 * culprit.reduction:.1f} %)")
    return Check(name, title, measured, budget, FAIL, msg, value=worst.reduction,
                 layer=culprit.name if culprit else None, values=values, tier="exact")


def check_fits_chip(ev: Evaluation) -> Check:
    name = "memory.fits-chip"
    title, sections = CHECKS[name]
    budget = "fits"
    blocked = _cannot_run(ev, name, title, sections, budget)
    if blocked:
        return blocked
    chip = ev.memory.chip
    measured = f"{chip.pes} PEs on {chip.chips} chip(s)"
    budget = f"fits ({chip.pes_per_chip} PEs per chip)"
    auto = chip.auto_atoms
    if auto:
        measured += " (" + ", ".join(f"{k}: {v} atoms/PE" for k, v in auto.items()) + ")"
    if chip.fits:
        msg = f"{name}: {measured}"
        if auto:
            msg += (" - atoms per PE chosen by the gate so each layer fits one PE's SRAM; set them in py-spinnaker2 "
                    "with pop.set_max_atoms_per_core(n)")
        return Check(name, title, measured, budget, PASS, msg, value=float(chip.pes), tier="exact")
    bad = chip.failing_layers
    msg = f"{name}: the model does not fit SpiNNaker2: {chip.detail or measured}"
    layer = None
    if bad:
        layer = bad[0].name
        msg += "; " + "; ".join(f"layer '{b.name}': {b.reason}" for b in bad[:3])
        if "on one PE" in bad[0].reason:
            from harness.flags import flag

            msg += (f" (hint: spread '{layer}' over more PEs with {flag('atoms')} {layer}=N or the model's "
                    "s2gate.atoms_per_core metadata; design-rules.ptq names the largest N that fits)")
    return Check(name, title, measured, budget, FAIL, msg, value=float(chip.pes), layer=layer, tier="exact")


def check_rules(ev: Evaluation, flow: str) -> Check:
    name = f"design-rules.{flow}"
    title, sections = CHECKS[name]
    budget = "0 violations"
    blocked = _cannot_run(ev, name, title, sections, budget, flow)
    if blocked:
        return blocked
    found = ev.design_rules[flow]
    violations = [v for v in found if v.severity == "error"]
    warnings = [v for v in found if v.severity != "error"]
    measured = f"{len(violations)} violations" + (f", {len(warnings)} warnings" if warnings else "")
    if not violations:
        return Check(name, title, measured, budget, PASS, f"{name}: all design rules pass" +
                     (f" ({len(warnings)} warnings: {warnings[0].rule} at '{warnings[0].node}')" if warnings else ""),
                     value=0.0, tier="exact")
    first = violations[0]
    msg = (f"{name}: {len(violations)} design rule violation(s); first: [{first.rule}] layer '{first.node}': "
           f"{first.message}" + (f" (hint: {first.hint})" if first.hint else ""))
    return Check(name, title, measured, budget, FAIL, msg, value=float(len(violations)), layer=first.node, tier="exact")


def check_hil(ev: Evaluation) -> Check:
    name = "hardware-in-the-loop"
    title, sections = CHECKS[name]
    budget = "100 % identical"
    hil = ev.hil
    if hil is None or hil.status == "skipped":
        return Check(name, title, "-", budget, SKIP, f"{name}: skipped: {hil.reason if hil else 'not evaluated'}")
    blocked = _cannot_run(ev, name, title, sections, budget)
    if blocked:
        return blocked
    eq = hil.comparison
    measured = f"{100 * eq.identical_share:.2f} % identical spike trains"
    if eq.diverging == 0 and not eq.voltage_mismatches:
        return Check(name, title, measured, budget, PASS, f"{name}: board and emulator agree on all "
                     f"{eq.spike_trains} spike trains", value=eq.identical_share, tier=eq.tier)
    fd = eq.first_divergence
    return Check(name, title, measured, budget, FAIL,
                 f"{name}: board and emulator differ in {eq.diverging} of {eq.spike_trains} spike trains and "
                 f"{eq.voltage_mismatches} voltages; first divergence {describe_divergence(fd)}",
                 value=eq.identical_share, layer=fd.layer if fd else None, tier=eq.tier)


def check_vendor_semantics(ev: Evaluation) -> Check:
    """Share of float-model spike trains the converter's bias folding changes; budget
    ``config["vendor_semantics_budget"]`` (None: report only, the check passes and shows the number)."""
    name = "vendor-semantics"
    title, sections = CHECKS[name]
    budget_v = ev.config.get("vendor_semantics_budget")
    budget = "report only" if budget_v is None else f"<= {100 * float(budget_v):.2f} % of trains"
    blocked = _cannot_run(ev, name, title, sections, budget)
    if blocked:
        return blocked
    vs = ev.vendor_semantics
    if not vs:
        return Check(name, title, "-", budget, SKIP, f"{name}: skipped: no float model and data to compare")
    share = float(vs.get("changed_share", 0.0))
    measured = f"{vs['changed']} of {vs['trains']} trains ({100 * share:.2f} %)"
    msg = f"{name}: {vs.get('summary', '')}"
    if budget_v is None or share <= float(budget_v):
        return Check(name, title, measured, budget, PASS, msg, value=share, tier="exact")
    return Check(name, title, measured, budget, FAIL, msg + f"; more than the budget {budget}", value=share,
                 tier="exact")


def budgets_of(ev: Evaluation, budgets: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """The budgets: ``budgets`` over the evaluation's config over the defaults (:data:`~harness.gate.config.BUDGETS`)."""
    from .config import BUDGETS

    b: Dict[str, Any] = {k: ev.config.get(k, v) for k, v in BUDGETS.items()}
    b.update(budgets or {})
    return b


def _table(ev: Evaluation, b: Dict[str, Any]) -> Dict[str, Callable[[], Check]]:
    return {
        "equivalence.ptq": lambda: check_equivalence(ev, "ptq"),
        "equivalence.qat": lambda: check_equivalence(ev, "qat"),
        "accuracy.ptq": lambda: check_accuracy(ev, "ptq", b["ptq_budget"], bool(b.get("strict"))),
        "accuracy.qat": lambda: check_accuracy(ev, "qat", b["qat_budget"], bool(b.get("strict"))),
        "memory.reduction": lambda: check_memory_reduction(ev, b["min_memory_reduction"]),
        "memory.fits-chip": lambda: check_fits_chip(ev),
        "design-rules.ptq": lambda: check_rules(ev, "ptq"),
        "design-rules.qat": lambda: check_rules(ev, "qat"),
        "realtime": lambda: check_realtime(ev, bool(ev.config.get("enforce_realtime", False))),
        "hardware-in-the-loop": lambda: check_hil(ev),
        "vendor-semantics": lambda: check_vendor_semantics(ev),
    }


def check_realtime(ev: Evaluation, enforce: bool = False) -> Check:
    """The worst PE's cycles per tick at the recorded activity against the PE clock x sys_tick
    (``ev.realtime``, :func:`s2emu.timing.estimate`). Report only - SKIP when a PE cannot keep up
    or the section could not run - unless ``enforce`` (then FAIL)."""
    name = "realtime"
    title, sections = CHECKS[name]
    budget = "<= 1.00 x sys_tick" + ("" if enforce else " (report only)")
    blocked = _cannot_run(ev, name, title, sections, budget)
    if blocked:  # report only: a model that cannot run fails the other checks, not this one
        return blocked if enforce else Check(name, title, "-", budget, SKIP, blocked.message)
    rt = ev.realtime or {}
    r = rt.get("realtime")
    if not r:
        reason = "; ".join(rt.get("reasons") or []) or "the batches did not run"
        return Check(name, title, "-", budget, FAIL if enforce else SKIP, f"{name}: not estimated: {reason}")
    w = r["worst_pe"] or {}
    measured = f"{r['worst_load']:.3f} x {1e3 * r['constants']['sys_tick_s']:g} ms"
    where = (f"PE {w.get('index')} of layer '{w.get('population')}' on chip {w.get('chip')}: {w.get('cycles', 0):,.0f} "
             f"cycles of {r['cycles_per_tick_budget']:,.0f} per tick ({w.get('packets_received', 0):.1f} packets, "
             f"{w.get('synaptic_events', 0):.1f} synaptic events, {w.get('neurons', 0)} neurons)")
    e = rt.get("energy") or {}
    energy = (f"; energy {e['joules']:.3g} J per inference of {e['ticks']} ticks ({e['ratio_to_study']:.2g} x the "
              f"study's {e['study_joules']} J per gesture; constants inferred)") if e else ""
    if r["keeps_up"]:
        return Check(name, title, measured, budget, PASS, f"{name}: every PE keeps up; worst {where}{energy}",
                     value=float(r["worst_load"]), layer=w.get("population"))
    head = f"{name}: " if enforce else f"{name}: report only: "
    msg = (f"{head}{r['pes_over_budget']} PE(s) cannot finish a tick in time; worst {where}{energy} (hint: fewer "
           f"atoms per PE spread the work: --atoms {w.get('population')}=N; or a longer --sys-tick)")
    return Check(name, title, measured, budget, FAIL if enforce else SKIP, msg, value=float(r["worst_load"]),
                 layer=w.get("population"))


def run_checks(ev: Any, budgets: Optional[Dict[str, Any]] = None) -> List[Check]:
    """Every check of the gate, in :data:`CHECK_NAMES` order.

    ``ev``: an :class:`Evaluation` or its JSON dict. ``budgets`` defaults to the evaluation's own
    config (``ptq_budget``, ``qat_budget``, ``min_memory_reduction``, ``strict``).
    """
    ev = as_evaluation(ev)
    return [run_check(ev, name, budgets) for name in CHECK_NAMES]


def run_check(ev: Any, name: str, budgets: Optional[Dict[str, Any]] = None) -> Check:
    """One check by name (see :data:`CHECK_NAMES`); ``ev``: an :class:`Evaluation` or its JSON dict."""
    ev = as_evaluation(ev)
    table = _table(ev, budgets_of(ev, budgets))
    if name not in table:
        raise KeyError(f"unknown check {name!r}; one of {CHECK_NAMES}")
    return table[name]()
