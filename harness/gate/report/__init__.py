"""The gate's summary and report.

* :mod:`.tables`: each table as rows of strings (checks, accuracies and their paired
  statistics, per-class accuracy and confusion matrices, equivalence, the chip map, per-layer
  quantization, memory, NeuroBench), the terminal summary and ``summary.json``'s content;
* :mod:`.plots`: the PNG plots (accuracy against percentile, spike rates, memory, the first
  divergence, weight codes against the int8 grid, confusion matrices);
* :mod:`.documents`: ``report.md`` and ``report.html`` rendered from the same sections, and
  :func:`write_report`;
* :mod:`.provenance`: versions, date, wall time and file digests (Markdown and HTML only).

Everything reads the evaluation's JSON dict (a typed
:class:`~harness.gate.results.Evaluation` is converted), so ``summary.json`` can redraw a report.
"""
from .documents import Section, Table, html_report, markdown_report, sections, write_report
from .plots import (PLOT_CAPTIONS, PLOTS, make_plots, plot_accuracy_vs_percentile, plot_confusion,
                    plot_divergence_raster, plot_memory, plot_spike_rates, plot_weight_histograms)
from .provenance import Provenance, collect as collect_provenance
from .tables import (EQUIVALENCE_HEADERS, VERDICT_TEXT, accuracy_rows, accuracy_table, chip_rows, confusion_rows,
                     data_text, dumps, equivalence_rows, neurobench_headers, neurobench_rows, neurobench_table, overall,
                     per_class_rows, quant_rows, report_json, stats_rows, summary_rows, summary_table,
                     terminal_summary, warnings)

__all__ = ["Section", "Table", "html_report", "markdown_report", "sections", "write_report", "PLOT_CAPTIONS", "PLOTS",
           "make_plots", "plot_accuracy_vs_percentile", "plot_confusion", "plot_divergence_raster", "plot_memory",
           "plot_spike_rates", "plot_weight_histograms", "Provenance", "collect_provenance", "EQUIVALENCE_HEADERS",
           "VERDICT_TEXT", "accuracy_rows", "accuracy_table", "chip_rows", "confusion_rows", "data_text", "dumps",
           "equivalence_rows", "neurobench_headers", "neurobench_rows", "neurobench_table", "overall",
           "per_class_rows", "quant_rows", "report_json", "stats_rows", "summary_rows", "summary_table",
           "terminal_summary", "warnings"]
