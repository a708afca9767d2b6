"""Quantization of NIR graphs to int8 for SpiNNaker2: PTQ, QAT export, the quantized-NIR format, memory.

Public API (see ``docs/contracts.md``, "Quantized NIR")::

    from harness.quantize import quantize_ptq, dequantize, is_quantized, memory_account
    qg = quantize_ptq(graph, percentile=100.0, per_channel=False, rounding="nearest", source=path)
    qg.graph          # nir.NIRGraph with int codes + s2gate.quant metadata
    qg.layers         # per weight node: LayerReport(lambda, clipped fraction, errors, bytes)
    qg.write("out.nir")
    float_view = dequantize(qg.graph)
    acct = memory_account(qg.graph)   # per-layer float32 vs int8 bytes, total reduction

Calibrated PTQ (percentile per population chosen on calibration samples; :mod:`.calibrate`)::

    from harness.quantize.calibrate import quantize_calibrated, load_calibration
    qg = quantize_calibrated(graph, load_calibration("cal.npz"), per_channel=True, bias_correction=False)
    qg.calibration.table()   # chosen percentile and objective per population

Q-SNNs exported the way ``brevitas_to_nir.py`` writes them (:mod:`.brevitas_nir`)::

    from harness.quantize.brevitas_nir import from_brevitas_nir, is_brevitas_export
    qgraph, warnings = from_brevitas_nir(nir.read("qsnn_brevitas.nir"))

Threshold-scaling ablation on the emulator (:mod:`.thresholds`): ``threshold_ablation(...)``.

QAT export helpers (need torch + brevitas, imported lazily)::

    from harness.quantize.qat import qat_weight_node, scale_population
"""
from __future__ import annotations

from .format import META_KEY, dequantize, is_quantized, quant_meta, source_digest, write_graph
from .memory import FlowMemory, MemoryAccount, flow_memory, memory_account, storage_of
from .ptq import LayerReport, QuantizedGraph, quantize_ptq, scale_populations

__all__ = [
    "META_KEY", "dequantize", "is_quantized", "quant_meta", "source_digest", "write_graph",
    "FlowMemory", "MemoryAccount", "flow_memory", "memory_account", "storage_of", "LayerReport", "QuantizedGraph", "quantize_ptq", "scale_populations",
]


def __getattr__(name: str):
    # torch/brevitas are heavy: import the QAT helpers only when asked for
    if name in ("qat_weight_node", "scale_population"):
        from . import qat

        return getattr(qat, name)
    raise AttributeError(name)
