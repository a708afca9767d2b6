"""The report's tables, as rows of strings (the terminal, Markdown and HTML render the same rows).

Everything reads the evaluation's JSON dict (``Evaluation.to_json()``; :func:`as_json` turns a
typed :class:`~harness.gate.results.Evaluation` into it), so ``summary.json`` alone is enough
to redraw a report.
"""
from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Optional, Sequence

from ..checks import Check, FAIL, PASS, SKIP
from ..results import as_json

VERDICT_TEXT = {PASS: "PASS", FAIL: "FAIL", SKIP: "SKIP"}


def summary_rows(checks: Sequence[Check]) -> List[List[str]]:
    return [[c.name, c.measured, c.budget, VERDICT_TEXT.get(c.verdict, c.verdict)] for c in checks]


def summary_table(checks: Sequence[Check], tablefmt: str = "simple") -> str:
    """Each check with its measured value, budget and verdict, as a tabulate table."""
    from tabulate import tabulate

    return tabulate(summary_rows(checks), headers=["check", "measured", "budget", "verdict"], tablefmt=tablefmt, disable_numparse=True)


def overall(checks: Sequence[Check]) -> str:
    """``"PASS"`` if no check failed, else ``"FAIL"``."""
    return "FAIL" if any(c.verdict == FAIL for c in checks) else "PASS"


def accuracy_rows(ev: Dict[str, Any]) -> List[List[str]]:
    """Accuracies and drops of each flow (float, PTQ, QAT) as table rows."""
    acc = ev.get("accuracy") or {}
    rows = []

    def f(x: Optional[float]) -> str:
        return "-" if x is None else f"{x:.2f} %"

    def d(x: Optional[float]) -> str:
        return "-" if x is None else f"{x:.2f} pp"

    if "float" in acc:
        rows.append(["P-SNN float (reference)", f(acc.get("float")), ""])
    if "ptq" in acc:
        rows.append([f"P-SNN PTQ p={ev.get('config', {}).get('percentile')} (emulator)", f(acc.get("ptq")),
                     d(acc.get("ptq_drop"))])
    if "qat_float" in acc:
        rows.append(["Q-SNN float (reference, dequantized)", f(acc.get("qat_float")), ""])
    if "qat" in acc:
        rows.append(["Q-SNN int8 (emulator)", f(acc.get("qat")), d(acc.get("qat_drop"))])
    return rows


def accuracy_table(ev: Dict[str, Any], tablefmt: str = "simple") -> str:
    from tabulate import tabulate

    return tabulate(accuracy_rows(ev), headers=["model / flow", "accuracy", "drop"], tablefmt=tablefmt, disable_numparse=True)


NEUROBENCH_LABELS = {
    "memory_footprint_bytes": "memory footprint (B)",
    "activation_sparsity": "activation sparsity",
    "synaptic_operations": "synaptic operations / sample",
    "dense_operations": "dense synaptic operations / sample",
    "effective_acs": "effective ACs / sample",
    "effective_macs": "effective MACs / sample",
}


def neurobench_rows(ev: Dict[str, Any]) -> List[List[str]]:
    nb = ev.get("neurobench") or {}
    columns = [k for k in ("float", "int8", "qat_int8") if k in nb]
    keys: List[str] = [k for k in NEUROBENCH_LABELS if any(k in nb[c] for c in columns)]
    for col in columns:
        for k in sorted(nb[col]):
            if k not in keys:
                keys.append(k)
    rows = []
    for k in keys:
        row = [NEUROBENCH_LABELS.get(k, k)]
        for col in columns:
            v = nb[col].get(k)
            row.append(_fmt_number(v))
        rows.append(row)
    return rows


def neurobench_headers(ev: Dict[str, Any]) -> List[str]:
    names = {"float": "P-SNN float", "int8": "P-SNN int8 (PTQ)", "qat_int8": "Q-SNN int8"}
    nb = ev.get("neurobench") or {}
    return ["NeuroBench figure"] + [names[k] for k in ("float", "int8", "qat_int8") if k in nb]


def neurobench_table(ev: Dict[str, Any], tablefmt: str = "simple") -> str:
    """NeuroBench's figures, float and int8, as a tabulate table."""
    from tabulate import tabulate

    return tabulate(neurobench_rows(ev), headers=neurobench_headers(ev), tablefmt=tablefmt, disable_numparse=True)


def equivalence_rows(ev: Dict[str, Any]) -> List[List[str]]:
    rows = []
    for flow, eq in (ev.get("equivalence") or {}).items():
        if not eq:
            continue
        rows.append([flow.upper(), f"{eq['spike_trains']:,}", f"{100 * eq['identical_share']:.3f} %",
                     f"{eq['ambiguous']:,}", f"{eq['diverging']:,}", f"{100 * eq['prediction_agreement']:.2f} %"])
    return rows


EQUIVALENCE_HEADERS = ["graph", "spike trains", "identical", "ambiguous", "diverging", "same prediction"]


def _fmt_number(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        return f"{v:.4g}"
    return str(v)


def data_text(ev: Dict[str, Any]) -> str:
    """``'stand-in test split, 660 samples x 20 ticks'``."""
    cfg = ev.get("config", {})
    data = ev.get("data") or {}
    name = str(data.get("dataset", cfg.get("dataset")))
    if name not in ("stand-in", "dvsgesture", "given"):
        name = os.path.basename(name)
    return (f"{name} {data.get('split', cfg.get('split'))} split, {data.get('samples', '?')} samples x "
            f"{data.get('ticks', '?')} ticks")


def warnings(ev: Any, checks: Sequence[Check] = ()) -> List[str]:
    """Warnings about the data and the models that no check turns into a FAIL: a float model at or
    below chance (its accuracy is no evidence the gate compared anything meaningful) and data that
    was changed on the way in (``--binarize``); then each check's own caveat (``Check.warning``,
    e.g. a resolution coarser than the budget)."""
    ev = as_json(ev)
    out: List[str] = []
    data = ev.get("data") or {}
    acc = ev.get("accuracy") or {}
    chance = data.get("chance")
    if chance is not None:
        for key, name in (("float", "P-SNN float"), ("qat_float", "Q-SNN float")):
            a = acc.get(key)
            if a is not None and a <= chance + 1e-9:
                out.append(f"{name} accuracy {a:.2f} % is at or below chance ({chance:.2f} %: the larger of "
                           f"1/classes and the most frequent label's share): the accuracy checks compare noise; "
                           f"check that the data belongs to the model (labels, input layout, ticks)")
    out.extend(str(n) for n in data.get("notes") or [])
    out.extend(str(w) for w in ev.get("warnings") or [] if str(w) not in out)
    out.extend(c.warning for c in checks if getattr(c, "warning", None) and c.warning not in out)
    return out


def _base(path: Any) -> str:
    return "none" if not path else os.path.basename(str(path))


def terminal_summary(ev: Dict[str, Any], checks: Sequence[Check]) -> str:
    """The block printed at the end of a pytest run and by ``s2gate gate``."""
    ev = as_json(ev)  # an Evaluation (harness.gate.results) or its JSON dict
    from tabulate import tabulate

    cfg = ev.get("config", {})
    lines = [f"s2gate: {overall(checks)}  (model {_base(cfg.get('model'))}, Q-SNN {_base(cfg.get('qat_model'))}; "
             f"{data_text(ev)})", "", summary_table(checks)]
    if accuracy_rows(ev):
        lines += ["", accuracy_table(ev)]
    if stats_rows(ev):
        lines += ["", tabulate(stats_rows(ev), headers=STATS_HEADERS, disable_numparse=True)]
    if equivalence_rows(ev):
        lines += ["", tabulate(equivalence_rows(ev), headers=EQUIVALENCE_HEADERS, disable_numparse=True)]
    if neurobench_rows(ev):
        lines += ["", neurobench_table(ev)]
    failed = [c for c in checks if c.verdict == FAIL]
    if failed:
        lines += [""] + [f"FAILED {c.message}" for c in failed]
    warned = warnings(ev, checks)
    if warned:
        lines += [""] + [f"WARNING {w}" for w in warned]
    return "\n".join(lines)


def report_json(ev: Dict[str, Any], checks: Sequence[Check]) -> Dict[str, Any]:
    """The summary as a JSON-ready dict: verdict, checks, and the evaluation."""
    ev = as_json(ev)  # an Evaluation (harness.gate.results) or its JSON dict
    return {"verdict": overall(checks), "checks": [c.as_dict() for c in checks], "warnings": warnings(ev, checks),
            "evaluation": ev}


def dumps(obj: Any) -> str:
    """Deterministic JSON text (sorted keys, 2-space indent, trailing newline)."""
    return json.dumps(obj, indent=2, sort_keys=True, default=_default) + "\n"


def _default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)




# ---------------------------------------------------------------- the chip

CHIP_HEADERS = ["layer", "S2 model", "neurons", "atoms/PE", "PEs", "bytes on the fullest PE", "of data SRAM", "fits"]


def chip_rows(ev: Dict[str, Any]) -> List[List[str]]:
    """The chip map of the PTQ flow: per population its S2 neuron model, neurons, atoms per PE
    (chosen automatically where marked), PEs, and the bytes of its fullest PE against the PE's
    data SRAM."""
    chip = ((ev.get("memory") or {}).get("chip")) or {}
    sram = chip.get("data_sram_per_pe")
    auto = chip.get("auto_atoms") or (ev.get("auto_atoms") or {}).get("ptq") or {}
    rows = []
    for r in chip.get("layers") or []:
        per_pe = r.get("max_bytes_per_pe")
        share = f"{100 * per_pe / sram:.1f} % of {sram:,} B" if per_pe is not None and sram else "-"
        atoms = "-" if r.get("atoms_per_core") is None else f"{r['atoms_per_core']:,}"
        if r["name"] in auto:
            atoms += " (auto)"
        rows.append([r["name"], r.get("model", ""), f"{r['neurons']:,}", atoms, f"{r['pes']:,}",
                     "-" if per_pe is None else f"{per_pe:,}", share, "yes" if r.get("fits") else "NO"])
    if rows:
        rows.append(["total", f"{chip.get('chips', '?')} chip(s)", "", "", f"{chip.get('pes', 0):,}",
                     f"{chip.get('max_bytes_per_pe', 0):,}", "", "yes" if chip.get("fits") else "NO"])
    return rows


QUANT_HEADERS = ["weight node", "population", "type", "λ (scale)", "percentile", "clipped", "max rounding error",
                 "weights", "codes used (of 255)"]
CODE_HEADERS = ["weight node", "type", "weights", "codes used (of 255)", "largest |code|", "codes beyond ±127"]


def _codes_used(hist: List[int]) -> str:
    return f"{sum(1 for h in hist if h):,}" if hist else "-"


def _largest_code(hist: List[int], outside: int) -> str:
    if outside:
        return "> 127"
    nz = [i - 127 for i, h in enumerate(hist) if h]
    return str(max(abs(c) for c in nz)) if nz else "-"


def quant_rows(ev: Dict[str, Any], flow: str = "ptq") -> List[List[str]]:
    """PTQ (``flow="ptq"``): per weight node λ (per channel: its range), percentile, clipped
    share, the largest rounding error in float units, weights and how many of the 255 int8
    levels its codes use. A flow whose graph came with codes (the Q-SNN): :data:`CODE_HEADERS`."""
    rows = []
    for r in (ev.get("quantization") or {}).get(flow) or []:
        hist = r.get("histogram") or []
        if r.get("scale_min") is None:
            rows.append([r["layer"], r.get("node_type", ""), f"{r['n_weights']:,}", _codes_used(hist),
                         _largest_code(hist, r.get("outside", 0)), f"{r.get('outside', 0):,}"])
            continue
        lo, hi = r["scale_min"], r["scale_max"]
        lam = f"{lo:.5g}" if lo == hi else f"{lo:.5g}..{hi:.5g}"
        pct = "-" if r.get("percentile") is None else f"{r['percentile']:g}"
        clipped = "-" if r.get("clipped_fraction") is None else f"{100 * r['clipped_fraction']:.3f} %"
        err = "-" if r.get("max_rounding_error") is None else f"{r['max_rounding_error']:.3g}"
        rows.append([r["layer"], r.get("population") or "-", r.get("node_type", ""), lam, pct, clipped, err,
                     f"{r['n_weights']:,}", _codes_used(hist)])
    return rows


RUN_NAMES = {("ptq", "float"): "P-SNN float", ("ptq", "int8"): "PTQ int8", ("qat", "float"): "Q-SNN float",
             ("qat", "int8"): "Q-SNN int8"}


def per_class_rows(ev: Dict[str, Any]) -> "tuple[List[str], List[List[str]]]":
    """(headers, rows): per class, its samples and each run's accuracy on it (from the confusion matrices)."""
    conf = ev.get("confusion") or {}
    runs = [(f, k) for f in ("ptq", "qat") for k in ("float", "int8") if k in (conf.get(f) or {})]
    if not runs:
        return [], []
    mats = {r: conf[r[0]][r[1]] for r in runs}
    k = max(len(m) for m in mats.values())
    headers = ["class", "samples"] + [RUN_NAMES[r] for r in runs]
    rows = []
    for c in range(k):
        n = sum(mats[runs[0]][c]) if c < len(mats[runs[0]]) else 0
        row = [str(c), f"{n:,}"]
        for r in runs:
            m = mats[r]
            total = sum(m[c]) if c < len(m) else 0
            row.append("-" if not total else f"{100 * m[c][c] / total:.1f} %")
        rows.append(row)
    return headers, rows


def confusion_rows(matrix: List[List[int]]) -> "tuple[List[str], List[List[str]]]":
    """(headers, rows) of one confusion matrix: rows = true class, columns = predicted class."""
    k = len(matrix)
    headers = ["true \\ predicted"] + [str(c) for c in range(k)]
    return headers, [[str(c)] + [str(x) for x in matrix[c]] for c in range(k)]


STATS_HEADERS = ["flow", "samples", "drop", "95 % interval", "1 sample", "lost / gained", "method"]


def stats_rows(ev: Dict[str, Any]) -> List[List[str]]:
    """The paired accuracy comparison of each flow: drop, its interval, the resolution and McNemar's discordant pairs."""
    rows = []
    for flow, st in (ev.get("accuracy_stats") or {}).items():
        if not st or st.get("drop") is None:
            continue
        iv = st.get("interval")
        rows.append([flow.upper(), f"{st['samples']:,}", f"{st['drop']:.2f} pp",
                     "-" if not iv else f"[{iv[0]:.2f}, {iv[1]:.2f}] pp",
                     "-" if st.get("resolution") is None else f"{st['resolution']:.2f} pp",
                     f"{st.get('lost', 0)} / {st.get('gained', 0)}", st.get("method") or "-"])
    return rows


def memory_lines(ev: Dict[str, Any]) -> List[str]:
    """Each flow's labelled memory figures (weights float32 -> stored codes; the deployed
    footprint), the same lines ``s2gate map`` and ``s2gate quantize`` print."""
    from harness.quantize.memory import FlowMemory

    out: List[str] = []
    for _, fm in sorted(((ev.get("memory") or {}).get("flows") or {}).items()):
        try:
            out.extend(FlowMemory.from_json(fm).lines())
        except (KeyError, TypeError, ValueError):  # an older summary.json without these fields
            continue
    return out
