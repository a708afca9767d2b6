"""``report.md`` and ``report.html`` from one list of sections, so the HTML holds everything the
Markdown holds (and the Markdown everything the HTML holds but the embedded images, which it links).

A :class:`Section` is a title, paragraphs, bullet lists, tables (headers + rows of strings) and
plot names; :func:`sections` builds them from the evaluation, :func:`markdown_report` and
:func:`html_report` render them. Verdict cells (PASS / FAIL / SKIP / WARNING) are coloured in
the HTML.
"""
from __future__ import annotations

import base64
import html
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

from s2common.atomic import write_bytes_atomic, write_text_atomic

from ..checks import Check, FAIL, SKIP
from ..results import as_json
from . import tables as t
from .plots import PLOT_CAPTIONS, make_plots
from .provenance import Provenance

VERDICT_COLOURS = {"PASS": "#1a7f37", "FAIL": "#cf222e", "SKIP": "#6e7781", "WARNING": "#9a6700"}


@dataclass
class Table:
    headers: List[str]
    rows: List[List[str]]
    caption: str = ""


@dataclass
class Section:
    """One heading of the report and what goes under it (in this order)."""

    title: str
    level: int = 2
    paragraphs: List[str] = field(default_factory=list)
    bullets: List[str] = field(default_factory=list)
    tables: List[Table] = field(default_factory=list)
    plots: List[str] = field(default_factory=list)


def _config_bullets(ev: Dict[str, Any]) -> List[str]:
    cfg = ev.get("config", {})
    return [f"model: {cfg.get('model')}", f"Q-SNN: {cfg.get('qat_model')}",
            f"data: {t.data_text(ev)}, seed {cfg.get('seed')}",
            f"PTQ percentile: {cfg.get('percentile')}; backend: {cfg.get('backend')}",
            f"evaluation digest: {str(ev.get('digest', ''))[:16]}"]


def sections(ev: Any, checks: Sequence[Check], provenance: Optional[Provenance] = None,
             plots: Sequence[str] = ()) -> List[Section]:
    """The report's sections, in order; ``plots`` = names of the plots that were drawn."""
    ev = as_json(ev)
    out = [Section("Run", bullets=_config_bullets(ev)),
           Section("Checks", tables=[Table(["check", "measured", "budget", "verdict"], t.summary_rows(checks))])]
    failed = [c for c in checks if c.verdict == FAIL]
    if failed:
        out.append(Section("Failures", level=3, bullets=[c.message for c in failed]))
    warned = t.warnings(ev, checks)
    if warned:
        out.append(Section("Warnings", level=3, bullets=warned))
    skipped = [c for c in checks if c.verdict == SKIP]
    if skipped:
        out.append(Section("Skipped", level=3, bullets=[c.message for c in skipped]))
    if t.accuracy_rows(ev):
        acc = Section("Accuracy", tables=[Table(["model / flow", "accuracy", "drop"], t.accuracy_rows(ev))])
        if t.stats_rows(ev):
            acc.tables.append(Table(t.STATS_HEADERS, t.stats_rows(ev),
                                    "paired comparison on the same samples (lost / gained: McNemar's discordant pairs)"))
        headers, rows = t.per_class_rows(ev)
        if rows:
            acc.tables.append(Table(headers, rows, "accuracy per class"))
        conf = ev.get("confusion") or {}
        for flow in ("ptq", "qat"):
            for kind in ("float", "int8"):
                m = (conf.get(flow) or {}).get(kind)
                if m:
                    h, r = t.confusion_rows(m)
                    acc.tables.append(Table(h, r, f"confusion matrix, {t.RUN_NAMES[(flow, kind)]}"))
        acc.plots = [p for p in ("confusion", "accuracy_vs_percentile") if p in plots]
        out.append(acc)
    if t.equivalence_rows(ev):
        out.append(Section("Equivalence (emulator vs reference on the int8 graph)",
                           tables=[Table(t.EQUIVALENCE_HEADERS, t.equivalence_rows(ev))],
                           paragraphs=["A spike train is ambiguous when it differs only at ticks where the float "
                                       "reference's voltage lies within rounding of the threshold; diverging trains "
                                       "differ beyond that."],
                           plots=[p for p in ("divergence_raster",) if p in plots]))
    if ev.get("vendor_semantics"):
        from harness.vendor_semantics import report_rows

        headers, rows, paragraphs = report_rows(ev["vendor_semantics"])
        out.append(Section("Vendor semantics (the converter alone, float model, before quantization)",
                           tables=[Table(headers, rows)], paragraphs=paragraphs))
    chip = t.chip_rows(ev)
    if chip:
        sram = (((ev.get("memory") or {}).get("chip")) or {}).get("data_sram_per_pe")
        out.append(Section("The chip (PTQ model)", tables=[Table(t.CHIP_HEADERS, chip)],
                           paragraphs=[f"Each PE has {sram:,} B of data SRAM; a population is split over PEs of at "
                                       "most 'atoms/PE' neurons; '(auto)': chosen by the gate as the largest number "
                                       "that fits." if sram else "Chip map of the PTQ model."]))
    board = board_section(ev)
    if board is not None:
        out.append(board)
    quant = Section("Quantization per layer")
    for flow, caption in (("ptq", "PTQ: λ maps float weights to int8 codes"),
                          ("qat", "Q-SNN: the codes it was exported with")):
        rows = t.quant_rows(ev, flow)
        if rows:
            quant.tables.append(Table(t.QUANT_HEADERS if len(rows[0]) == len(t.QUANT_HEADERS) else t.CODE_HEADERS,
                                      rows, caption))
    if quant.tables:
        quant.plots = [p for p in ("weight_histograms",) if p in plots]
        out.append(quant)
    ablation = threshold_ablation_section(ev)
    if ablation is not None:
        out.append(ablation)
    mem = ev.get("memory") or {}
    if mem.get("layers"):
        rows = [[r["name"], f"{r['float32_bytes']:,}", f"{r['int8_bytes']:,}", r.get("storage", "int8"),
                 f"{100 * r.get('reduction', 0):.1f} %"] for r in mem["layers"]]
        rows.append(["total", f"{mem['float32_bytes']:,}", f"{mem['int8_bytes']:,}", "",
                     f"{100 * mem['reduction']:.1f} %"])
        out.append(Section("Memory", tables=[Table(["layer", "float32 B", "stored B", "storage", "reduction"], rows,
                                                   "PTQ flow, weights per population")],
                           bullets=t.memory_lines(ev), plots=[p for p in ("memory",) if p in plots]))
    if t.neurobench_rows(ev):
        out.append(Section("NeuroBench figures", tables=[Table(t.neurobench_headers(ev), t.neurobench_rows(ev))]))
    if "spike_rates" in plots:
        out.append(Section("Spike rates", plots=["spike_rates"]))
    if ev.get("errors"):
        out.append(Section("Errors", bullets=[f"{k}: {v}" for k, v in sorted(ev["errors"].items())]))
    if provenance is not None:
        out.append(Section("Provenance", tables=[Table(["what", "value"], provenance.rows())]))
    return out


ABLATION_TITLE = "Threshold scaling (ablation)"


def threshold_ablation_section(ev: Dict[str, Any]) -> Optional[Section]:
    """Float reference, then the PTQ graph on the emulator with thresholds scaled with the weights, left
    unscaled and searched on calibration samples: accuracy, agreement, spike rate per population
    (``Evaluation.threshold_ablation``; None when the option was off or it failed)."""
    a = ev.get("threshold_ablation")
    if not a:
        return None
    from harness.quantize.thresholds import DEFAULT_FACTORS

    pops = list(a["populations"])
    rows = [[r["variant"], f"{r['accuracy']:.2f}", f"{r['agreement']:.2f}"]
            + [f"{r['rates'][p]:.4f}" if p in r["rates"] else "-" for p in pops] for r in a["rows"]]
    by = {r["variant"]: r for r in a["rows"]}
    paras = [f"PTQ at p = {a['percentile']:g} on the first {a['samples']} test samples; float reference preset "
             f"{a['preset']}. 'scaled': every population's threshold, reset and leak voltages multiplied by the λ of "
             "its weights (what s2gate deploys); 'unscaled': the same int8 codes with the float thresholds; "
             f"'searched': the scaled thresholds times a factor per population ({min(DEFAULT_FACTORS):g} to "
             f"{max(DEFAULT_FACTORS):g}) chosen to best agree with "
             f"the float model on {a['calibration_samples']} calibration samples: {a['calibration_source']}. "
             "Rates in spikes per neuron per tick; agreement = same predicted class as the float reference."]
    if (ev.get("config") or {}).get("calibrate") or (ev.get("config") or {}).get("profile"):
        paras.append("The ablation quantizes at the fixed percentile and runs the model's own conversion options: "
                     "the calibrated percentiles and the vendor profile of the gate's PTQ flow are not applied here.")
    if "scaled" in by and "unscaled" in by:
        sc, un, se = by["scaled"], by["unscaled"], by.get("searched")
        lesson = (f"What it shows: thresholds must be scaled with the weights. Left unscaled they are λ times too low "
                  f"in chip units, the neurons fire too often and accuracy falls from {sc['accuracy']:.2f} % to "
                  f"{un['accuracy']:.2f} %")
        if se is not None:
            lesson += f"; searching the thresholds on calibration data gives {se['accuracy']:.2f} %"
        paras.append(lesson + ".")
    factors = (by.get("searched") or {}).get("factors") or {}
    tables = [Table(["thresholds", "accuracy %", "agreement %"] + [f"rate {p}" for p in pops], rows)]
    if factors:
        tables.append(Table(["population", "searched factor"], [[p, f"{factors.get(p, 1.0):g}"] for p in pops],
                            "threshold factor per population relative to the scaled threshold"))
    return Section(ABLATION_TITLE, paragraphs=paras, tables=tables)


def board_section(ev: Dict[str, Any]) -> Optional[Section]:
    """Chips, per-chip PEs / SRAM / DRAM, inter-chip packets, worst PE's load per tick, energy (issue 17)."""
    rt = ev.get("realtime")
    if not rt:
        return None
    rows = [[str(c["chip"]), "-" if c["xy"] is None else f"{c['xy'][0]},{c['xy'][1]}", str(c["pes"]),
             f"{c['sram_bytes']:,}", f"{c['dram_bytes']:,}", ", ".join(c["populations"])] for c in rt["per_chip"]]
    paras = [f"Placement of the PTQ model on up to {rt['max_chips']} chip(s) of a 48-chip board: {rt['chips']} used, "
             "a layer's PEs kept together" + ("." if rt["fits"] else "; does not fit: " + "; ".join(rt["reasons"]) + ".")]
    if rt.get("inter_chip_packets_per_tick") is not None:
        b = rt.get("busiest_link")
        paras.append(f"Activity: {rt.get('activity', 'recorded')}. Inter-chip packets per tick: "
                     f"{rt['inter_chip_packets_per_tick']:.2f}" + (
                         f"; busiest link chip {b['from']} -> {b['to']}: {b['packets_per_tick']:.2f} packets per tick "
                         f"({100 * b['load']:.1f} % of its inferred capacity)" if b else "") + ".")
    r = rt.get("realtime")
    if r:
        w = r["worst_pe"] or {}
        paras.append(f"Real-time: worst PE {w.get('index')} (layer '{w.get('population')}', {w.get('model')}, chip "
                     f"{w.get('chip')}) needs {w.get('cycles', 0):,.0f} of {r['cycles_per_tick_budget']:,.0f} cycles per "
                     f"tick = {r['worst_load']:.3f} of the tick; {r['pes_over_budget']} PE(s) over budget (PE clock "
                     f"{r['constants']['clock_hz'] / 1e6:g} MHz, sys_tick {1e3 * r['constants']['sys_tick_s']:g} ms; "
                     "cycle costs per operation inferred: s2emu/timing.py).")
    e = rt.get("energy")
    if e:
        paras.append(f"Energy per inference ({e['ticks']} ticks): {e['joules']:.3g} J (static {e['static_j']:.3g}, "
                     f"ARM {e['compute_j']:.3g}, MLA {e['mla_j']:.3g}, links {e['links_j']:.3g}) = "
                     f"{e['ratio_to_study']:.2g} x the study's {e['study_joules']} J per gesture. Assumptions: "
                     f"{e['assumptions']}.")
    return Section("Board: chips, packets, real-time budget, energy", paragraphs=paras,
                   tables=[Table(["chip", "x,y", "PEs", "SRAM B", "DRAM B", "layers"], rows)])


# ---------------------------------------------------------------- Markdown

def _md_table(table: Table) -> str:
    from tabulate import tabulate

    return tabulate(table.rows, headers=list(table.headers), tablefmt="github", disable_numparse=True)


def markdown_report(ev: Any, checks: Sequence[Check], plots: Dict[str, str],
                    provenance: Optional[Provenance] = None) -> str:
    """The report as Markdown; ``plots`` maps plot name -> relative PNG path."""
    ev = as_json(ev)
    parts = [f"# s2gate report: {t.overall(checks)}", ""]
    for sec in sections(ev, checks, provenance, tuple(plots)):
        parts += ["#" * sec.level + " " + sec.title, ""]
        for p in sec.paragraphs:
            parts += [p, ""]
        if sec.bullets:
            parts += [f"- {b}" for b in sec.bullets] + [""]
        for table in sec.tables:
            if table.caption:
                parts += [f"*{table.caption}*", ""]
            parts += [_md_table(table), ""]
        for name in sec.plots:
            cap = PLOT_CAPTIONS.get(name, name)
            parts += [f"![{cap}]({plots[name]})", ""]
    return "\n".join(parts)


# ---------------------------------------------------------------- HTML

def _cell(text: str) -> str:
    esc = html.escape(str(text))
    colour = VERDICT_COLOURS.get(str(text).strip().upper())
    if colour:
        return f"<td class='verdict' style='color:#fff;background:{colour}'>{esc}</td>"
    if str(text).strip() == "NO":
        return f"<td style='color:{VERDICT_COLOURS['FAIL']};font-weight:bold'>{esc}</td>"
    return f"<td>{esc}</td>"


def _html_table(table: Table) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in table.headers)
    body = "\n".join("<tr>" + "".join(_cell(c) for c in row) + "</tr>" for row in table.rows)
    cap = f"<caption>{html.escape(table.caption)}</caption>" if table.caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table>"


STYLE = ("body{font-family:sans-serif;max-width:72em;margin:2em auto;color:#1f2328}"
         "table{border-collapse:collapse;margin:0.6em 0 1.2em}caption{text-align:left;font-style:italic;padding:2px 0}"
         "td,th{border:1px solid #d0d7de;padding:2px 8px;text-align:left;font-size:0.92em}th{background:#f6f8fa}"
         "td.verdict{font-weight:bold;text-align:center}img{max-width:100%;border:1px solid #eee}"
         "h1 span{padding:0 0.3em;color:#fff;border-radius:4px}li{margin:0.2em 0}")


def html_report(ev: Any, checks: Sequence[Check], pngs: Dict[str, bytes],
                provenance: Optional[Provenance] = None) -> str:
    """The report as one self-contained HTML page (plots embedded as base64 PNG): the same
    sections, tables, bullets and paragraphs as :func:`markdown_report`."""
    ev = as_json(ev)
    verdict = t.overall(checks)
    body = [f"<h1>s2gate report: <span style='background:{VERDICT_COLOURS[verdict]}'>{verdict}</span></h1>"]
    for sec in sections(ev, checks, provenance, tuple(pngs)):
        body.append(f"<h{sec.level}>{html.escape(sec.title)}</h{sec.level}>")
        for p in sec.paragraphs:
            body.append(f"<p>{html.escape(p)}</p>")
        if sec.bullets:
            body.append("<ul>" + "".join(f"<li>{html.escape(b)}</li>" for b in sec.bullets) + "</ul>")
        for table in sec.tables:
            body.append(_html_table(table))
        for name in sec.plots:
            b64 = base64.b64encode(pngs[name]).decode()
            cap = html.escape(PLOT_CAPTIONS.get(name, name))
            body.append(f"<figure><img alt='{cap}' src='data:image/png;base64,{b64}'><figcaption>{cap}</figcaption>"
                        "</figure>")
    return ("<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>s2gate report</title>"
            f"<style>{STYLE}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def write_report(ev: Any, checks: Sequence[Check], folder: "str | os.PathLike[str]",
                 provenance: Optional[Provenance] = None) -> Dict[str, str]:
    """Write ``summary.json``, ``report.md``, ``report.html`` and the PNG plots into ``folder``
    (created if needed), each atomically. Returns name -> path of what was written.

    ``provenance`` (:func:`harness.gate.report.provenance.collect`) goes into the Markdown and
    HTML only; without it (tests) every file is a pure function of the evaluation.
    """
    ev = as_json(ev)
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
    write_text_atomic(path, t.dumps(t.report_json(ev, checks)))
    written["json"] = path
    path = os.path.join(folder, "report.md")
    write_text_atomic(path, markdown_report(ev, checks, rel, provenance))
    written["markdown"] = path
    path = os.path.join(folder, "report.html")
    write_text_atomic(path, html_report(ev, checks, pngs, provenance))
    written["html"] = path
    return written
