"""The gate's summary and report: a tabulate table, JSON, and Markdown/HTML with plots.

* :func:`summary_table`: each check, measured value, budget, verdict (plain text, tabulate).
* :func:`neurobench_table`: NeuroBench's figures (memory footprint, activation sparsity,
  synaptic operations per sample), float and int8.
* :func:`report_json`: everything above plus the evaluation, JSON-ready and deterministic
  (no timestamps: the same evaluation gives byte-identical files).
* :func:`write_report`: ``summary.json``, ``report.md``, ``report.html`` (plots embedded) and the
  PNG plots (matplotlib, Agg backend) into a folder; every file is written atomically.

Plots: accuracy against PTQ percentile; per-layer spike rates float vs int8; per-layer weight
memory float32 vs int8; a raster of the first divergence between emulator and reference.
"""
from __future__ import annotations

import base64
import html
import io
import json
import os
from typing import Any, Dict, List, Optional, Sequence

from s2common.atomic import write_bytes_atomic, write_text_atomic

from .checks import Check, FAIL, PASS, SKIP

VERDICT_TEXT = {PASS: "PASS", FAIL: "FAIL", SKIP: "SKIP"}
PLOTS = ("accuracy_vs_percentile", "spike_rates", "memory", "divergence_raster")


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


def warnings(ev: Dict[str, Any]) -> List[str]:
    """Warnings about the data and the models that no check turns into a FAIL: a float model at or
    below chance (its accuracy is no evidence the gate compared anything meaningful) and data that
    was changed on the way in (``--binarize``)."""
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
    return out


def _base(path: Any) -> str:
    return "none" if not path else os.path.basename(str(path))


def terminal_summary(ev: Dict[str, Any], checks: Sequence[Check]) -> str:
    """The block printed at the end of a pytest run and by ``s2gate gate``."""
    from tabulate import tabulate

    cfg = ev.get("config", {})
    lines = [f"s2gate: {overall(checks)}  (model {_base(cfg.get('model'))}, Q-SNN {_base(cfg.get('qat_model'))}; "
             f"{data_text(ev)})", "", summary_table(checks)]
    if accuracy_rows(ev):
        lines += ["", accuracy_table(ev)]
    if equivalence_rows(ev):
        lines += ["", tabulate(equivalence_rows(ev), headers=EQUIVALENCE_HEADERS, disable_numparse=True)]
    if neurobench_rows(ev):
        lines += ["", neurobench_table(ev)]
    failed = [c for c in checks if c.verdict == FAIL]
    if failed:
        lines += [""] + [f"FAILED {c.message}" for c in failed]
    warned = warnings(ev)
    if warned:
        lines += [""] + [f"WARNING {w}" for w in warned]
    return "\n".join(lines)


def report_json(ev: Dict[str, Any], checks: Sequence[Check]) -> Dict[str, Any]:
    """The summary as a JSON-ready dict: verdict, checks, and the evaluation."""
    return {"verdict": overall(checks), "checks": [c.as_dict() for c in checks], "warnings": warnings(ev),
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


# ---------------------------------------------------------------- plots

def _figure(width: float = 6.4, height: float = 3.6):
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def plot_accuracy_vs_percentile(ev: Dict[str, Any]) -> Optional[bytes]:
    """PTQ accuracy on the emulator against the weight-scale percentile, with the float accuracy
    and the budget line. None if no sweep was run."""
    sweep = ev.get("sweep") or []
    if not sweep:
        return None
    fig = _figure()
    ax = fig.add_subplot()
    ps = [s["percentile"] for s in sweep]
    accs = [s["accuracy"] for s in sweep]
    x = list(range(len(ps)))
    ax.plot(x, accs, "o-", color="tab:blue", label="PTQ on emulator")
    for xi, a in zip(x, accs):
        ax.annotate(f"{a:.2f}", (xi, a), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=8)
    acc = ev.get("accuracy") or {}
    if acc.get("float") is not None:
        ax.axhline(acc["float"], color="tab:green", ls="--", label=f"float {acc['float']:.2f} %")
        budget = ev.get("config", {}).get("ptq_budget")
        if budget is not None:
            ax.axhline(acc["float"] - budget, color="tab:red", ls=":", label=f"float - {budget:g} pp budget")
    ax.set_xticks(x, [f"{p:g}" for p in ps])
    ax.set_xlabel("weight-scale percentile p (λ = 127 / percentile_p |W|)")
    ax.set_ylabel("accuracy (%)")
    n = (sweep[0].get("samples") if sweep else None) or ev.get("data", {}).get("samples")
    ax.set_title(f"PTQ accuracy against percentile ({n} samples)")
    ax.margins(y=0.15)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return _png(fig)


def plot_spike_rates(ev: Dict[str, Any]) -> Optional[bytes]:
    """Per-layer spike rates (spikes per neuron per tick), float reference vs int8 emulator,
    for the PTQ model and (if present) the Q-SNN."""
    layers = ev.get("layers") or {}
    panels = [(k, v) for k, v in (("ptq", layers.get("ptq")), ("qat", layers.get("qat"))) if v]
    if not panels:
        return None
    import numpy as np

    fig = _figure(6.4, 3.2 * len(panels))
    titles = {"ptq": "P-SNN: float (reference) vs PTQ int8 (emulator)",
              "qat": "Q-SNN: float (reference, dequantized) vs int8 (emulator)"}
    for i, (flow, rows) in enumerate(panels):
        ax = fig.add_subplot(len(panels), 1, i + 1)
        names = [r["name"] for r in rows]
        xf = np.arange(len(names))
        rf = [r.get("rate_float") or 0.0 for r in rows]
        ri = [r.get("rate_int8") or 0.0 for r in rows]
        ax.bar(xf - 0.2, rf, 0.4, label="float", color="tab:green")
        ax.bar(xf + 0.2, ri, 0.4, label="int8", color="tab:blue")
        ax.set_xticks(xf, names, rotation=20, fontsize=8)
        ax.set_ylabel("spikes / neuron / tick")
        ax.set_title(titles[flow], fontsize=10)
        ax.legend(fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def plot_memory(ev: Dict[str, Any]) -> Optional[bytes]:
    """Per-layer weight memory, float32 vs int8 bytes (log scale), with the reduction."""
    mem = ev.get("memory") or {}
    rows = mem.get("layers") or []
    if not rows:
        return None
    import numpy as np

    fig = _figure()
    ax = fig.add_subplot()
    names = [r["name"] for r in rows]
    x = np.arange(len(names))
    f32 = [max(r["float32_bytes"], 1) for r in rows]
    i8 = [max(r["int8_bytes"], 1) for r in rows]
    ax.bar(x - 0.2, f32, 0.4, label="float32", color="tab:orange")
    ax.bar(x + 0.2, i8, 0.4, label="int8", color="tab:blue")
    for xi, r in zip(x, rows):
        ax.annotate(f"-{100 * r.get('reduction', 0):.0f}%", (xi, max(r["float32_bytes"], 1)), textcoords="offset points",
                    xytext=(0, 3), ha="center", fontsize=8)
    ax.set_yscale("log")
    ax.set_ylim(top=max(f32) * 4)  # room for the reduction labels
    ax.set_xticks(x, names, rotation=20, fontsize=8)
    ax.set_ylabel("bytes")
    ax.set_title(f"weight memory per layer: {mem.get('float32_bytes', 0):,} B -> {mem.get('int8_bytes', 0):,} B "
                 f"({100 * mem.get('reduction', 0):.1f} % less)", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def plot_divergence_raster(ev: Dict[str, Any]) -> Optional[bytes]:
    """Raster (tick x neuron) of one layer around the first divergence: emulator spikes, reference
    spikes, and the divergence marked. With no divergence, the output layer of the first sample."""
    r = ev.get("raster")
    if not r:
        return None
    fig = _figure(8.0, 4.0)
    ax = fig.add_subplot()
    emu = r.get("emulator") or []
    ref = r.get("reference") or []
    if emu:
        ax.scatter([t for t, _ in emu], [n for _, n in emu], marker="|", s=60, color="tab:blue", label="emulator")
    if ref:
        ax.scatter([t for t, _ in ref], [n for _, n in ref], marker="_", s=60, color="tab:red", label="reference")
    div = r.get("divergence")
    if div:
        ax.scatter([div[0]], [div[1]], marker="o", s=160, facecolors="none", edgecolors="black", linewidths=1.5,
                   label=f"first divergence (tick {div[0]}, neuron {div[1]})")
    from matplotlib.ticker import MaxNLocator

    ax.set_xlim(r["ticks"][0] - 0.5, r["ticks"][1] - 0.5)
    ax.set_ylim(r["neurons"][0] - 0.5, r["neurons"][1] - 0.5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("tick")
    ax.set_ylabel("neuron (flat index)")
    title = r.get("title") or f"layer '{r.get('layer')}', sample {r.get('sample')}"
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(alpha=0.2)
    return _png(fig)


def make_plots(ev: Dict[str, Any]) -> Dict[str, bytes]:
    """name -> PNG bytes for each plot the evaluation has data for."""
    out: Dict[str, bytes] = {}
    for name, fn in (("accuracy_vs_percentile", plot_accuracy_vs_percentile), ("spike_rates", plot_spike_rates),
                     ("memory", plot_memory), ("divergence_raster", plot_divergence_raster)):
        png = fn(ev)
        if png is not None:
            out[name] = png
    return out


PLOT_CAPTIONS = {
    "accuracy_vs_percentile": "PTQ accuracy on the emulator against the weight-scale percentile",
    "spike_rates": "Per-layer spike rates, float vs int8",
    "memory": "Per-layer weight memory, float32 vs int8",
    "divergence_raster": "First divergence between emulator and reference",
}


# ---------------------------------------------------------------- documents

def _md_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    from tabulate import tabulate

    return tabulate(rows, headers=list(headers), tablefmt="github", disable_numparse=True)


def markdown_report(ev: Dict[str, Any], checks: Sequence[Check], plots: Dict[str, str]) -> str:
    """The report as Markdown; ``plots`` maps plot name -> relative PNG path."""
    cfg = ev.get("config", {})
    parts = [f"# s2gate report: {overall(checks)}", "",
             f"- model: `{cfg.get('model')}`", f"- Q-SNN: `{cfg.get('qat_model')}`",
             f"- data: {data_text(ev)}, seed {cfg.get('seed')}",
             f"- PTQ percentile: {cfg.get('percentile')}; backend: {cfg.get('backend')}",
             f"- evaluation digest: `{str(ev.get('digest', ''))[:16]}`", "",
             "## Checks", "", _md_table(["check", "measured", "budget", "verdict"], summary_rows(checks)), ""]
    failed = [c for c in checks if c.verdict == FAIL]
    if failed:
        parts += ["### Failures", ""] + [f"- {c.message}" for c in failed] + [""]
    if warnings(ev):
        parts += ["### Warnings", ""] + [f"- {w}" for w in warnings(ev)] + [""]
    skipped = [c for c in checks if c.verdict == SKIP]
    if skipped:
        parts += ["### Skipped", ""] + [f"- {c.message}" for c in skipped] + [""]
    if accuracy_rows(ev):
        parts += ["## Accuracy", "", _md_table(["model / flow", "accuracy", "drop"], accuracy_rows(ev)), ""]
    if equivalence_rows(ev):
        parts += ["## Equivalence (emulator vs reference on the int8 graph)", "",
                  _md_table(EQUIVALENCE_HEADERS, equivalence_rows(ev)), "",
                  "A spike train is *ambiguous* when it differs only at ticks where the float reference's voltage lies "
                  "within rounding of the threshold; *diverging* trains differ beyond that.", ""]
    if neurobench_rows(ev):
        parts += ["## NeuroBench figures", "", _md_table(neurobench_headers(ev), neurobench_rows(ev)), ""]
    mem = ev.get("memory") or {}
    if mem.get("layers"):
        rows = [[r["name"], f"{r['float32_bytes']:,}", f"{r['int8_bytes']:,}", f"{100 * r.get('reduction', 0):.1f} %"]
                for r in mem["layers"]]
        rows.append(["total", f"{mem['float32_bytes']:,}", f"{mem['int8_bytes']:,}", f"{100 * mem['reduction']:.1f} %"])
        parts += ["## Memory", "", _md_table(["layer", "float32 B", "int8 B", "reduction"], rows), ""]
    if ev.get("errors"):
        parts += ["## Errors", ""] + [f"- `{k}`: {v}" for k, v in sorted(ev["errors"].items())] + [""]
    if plots:
        parts += ["## Plots", ""]
        for name, rel in plots.items():
            parts += [f"### {PLOT_CAPTIONS.get(name, name)}", "", f"![{PLOT_CAPTIONS.get(name, name)}]({rel})", ""]
    return "\n".join(parts)


def html_report(ev: Dict[str, Any], checks: Sequence[Check], pngs: Dict[str, bytes]) -> str:
    """The report as one self-contained HTML page (plots embedded as base64 PNG)."""
    from tabulate import tabulate

    cfg = ev.get("config", {})
    verdict = overall(checks)
    color = {"PASS": "#1a7f37", "FAIL": "#cf222e"}[verdict]
    esc = html.escape

    def table(headers, rows):
        return tabulate([[esc(str(c)) for c in r] for r in rows], headers=[esc(h) for h in headers], tablefmt="unsafehtml",
                        disable_numparse=True)

    body = [f"<h1>s2gate report: <span style='color:{color}'>{verdict}</span></h1>",
            "<ul>",
            f"<li>model: <code>{esc(str(cfg.get('model')))}</code></li>",
            f"<li>Q-SNN: <code>{esc(str(cfg.get('qat_model')))}</code></li>",
            f"<li>data: {esc(data_text(ev))}, seed {esc(str(cfg.get('seed')))}</li>",
            f"<li>PTQ percentile: {esc(str(cfg.get('percentile')))}; backend: {esc(str(cfg.get('backend')))}</li>",
            "</ul>", "<h2>Checks</h2>", table(["check", "measured", "budget", "verdict"], summary_rows(checks))]
    failed = [c for c in checks if c.verdict == FAIL]
    if failed:
        body += ["<h3>Failures</h3><ul>"] + [f"<li>{esc(c.message)}</li>" for c in failed] + ["</ul>"]
    if warnings(ev):
        body += ["<h3>Warnings</h3><ul>"] + [f"<li>{esc(w)}</li>" for w in warnings(ev)] + ["</ul>"]
    skipped = [c for c in checks if c.verdict == SKIP]
    if skipped:
        body += ["<h3>Skipped</h3><ul>"] + [f"<li>{esc(c.message)}</li>" for c in skipped] + ["</ul>"]
    if accuracy_rows(ev):
        body += ["<h2>Accuracy</h2>", table(["model / flow", "accuracy", "drop"], accuracy_rows(ev))]
    if equivalence_rows(ev):
        body += ["<h2>Equivalence</h2>", table(EQUIVALENCE_HEADERS, equivalence_rows(ev))]
    if neurobench_rows(ev):
        body += ["<h2>NeuroBench figures</h2>", table(neurobench_headers(ev), neurobench_rows(ev))]
    if ev.get("errors"):
        body += ["<h2>Errors</h2><ul>"] + [f"<li><code>{esc(k)}</code>: {esc(v)}</li>" for k, v in sorted(ev["errors"].items())] + ["</ul>"]
    for name, png in pngs.items():
        b64 = base64.b64encode(png).decode()
        body += [f"<h2>{esc(PLOT_CAPTIONS.get(name, name))}</h2>",
                 f"<img alt='{esc(name)}' src='data:image/png;base64,{b64}'>"]
    style = ("body{font-family:sans-serif;max-width:60em;margin:2em auto;}table{border-collapse:collapse;}"
             "td,th{border:1px solid #ccc;padding:2px 8px;text-align:left;}img{max-width:100%;}")
    return ("<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>s2gate report</title>"
            f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def write_report(ev: Dict[str, Any], checks: Sequence[Check], folder: "str | os.PathLike[str]") -> Dict[str, str]:
    """Write ``summary.json``, ``report.md``, ``report.html`` and the PNG plots into ``folder``
    (created if needed), each atomically. Returns name -> path of what was written."""
    folder = os.fspath(folder)
    os.makedirs(folder, exist_ok=True)
    written: Dict[str, str] = {}
    pngs = make_plots(ev)
    rel: Dict[str, str] = {}
    for name, png in pngs.items():
        path = os.path.join(folder, f"{name}.png")
        write_bytes_atomic(path, png)
        written[name] = path
        rel[name] = f"{name}.png"
    path = os.path.join(folder, "summary.json")
    write_text_atomic(path, dumps(report_json(ev, checks)))
    written["json"] = path
    path = os.path.join(folder, "report.md")
    write_text_atomic(path, markdown_report(ev, checks, rel))
    written["markdown"] = path
    path = os.path.join(folder, "report.html")
    write_text_atomic(path, html_report(ev, checks, pngs))
    written["html"] = path
    return written
