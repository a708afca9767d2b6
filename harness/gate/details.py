"""What the report shows of the chip beyond the checks: per-layer quantization and the confusion matrices.

Computed once during the evaluation (so ``summary.json`` holds everything the report draws):

* :func:`ptq_layers`: per weight node of the PTQ graph, the scale λ, percentile, clipped share,
  largest rounding error and the histogram of its int8 codes;
* :func:`code_layers`: the same histogram for a graph that already holds codes (the Q-SNN);
* :func:`confusion`: the confusion matrix of predictions against labels.

A code histogram has :data:`BINS` = 255 bins, bin ``i`` counting code ``i - 127`` (the int8
grid ``[-127, 127]`` that s2gate's quantizer uses); codes outside it (an int16 export) are
counted in ``outside`` instead.
"""
from __future__ import annotations

from typing import Any, List, Optional, Sequence

import numpy as np

from .results import QuantLayer

#: int8 codes -127..127: one histogram bin each
BINS = 255
CODE_MAX = 127


def code_histogram(codes: Any) -> "tuple[List[int], int]":
    """(counts of codes -127..127, number of codes outside that grid) of an integer-valued array."""
    c = np.rint(np.asarray(codes, dtype=np.float64)).astype(np.int64).reshape(-1)
    inside = np.abs(c) <= CODE_MAX
    counts = np.bincount(c[inside] + CODE_MAX, minlength=BINS)
    return [int(x) for x in counts], int((~inside).sum())


def _weight(node: Any) -> Optional[np.ndarray]:
    w = getattr(node, "weight", None)
    return None if w is None else np.asarray(w)


def ptq_layers(q: Any) -> List[QuantLayer]:
    """One :class:`QuantLayer` per weight node of a :class:`~harness.quantize.ptq.QuantizedGraph`."""
    out = []
    nodes = getattr(q.graph, "nodes", {})
    for r in q.layers:
        scale = r.scale if isinstance(r.scale, list) else [float(r.scale)]
        w = _weight(nodes.get(r.layer)) if r.layer in nodes else None
        hist, outside = code_histogram(w) if w is not None else ([], 0)
        out.append(QuantLayer(layer=r.layer, population=r.population, node_type=r.node_type,
                              scale_min=float(min(scale)), scale_max=float(max(scale)), percentile=float(r.percentile),
                              clipped_fraction=float(r.clipped_fraction), max_rounding_error=float(r.max_rounding_error),
                              n_weights=int(r.n_weights), histogram=hist, outside=outside))
    return out


def code_layers(graph: Any) -> List[QuantLayer]:
    """Histograms of the codes of each weight node of a quantized graph (the Q-SNN), in graph order."""
    out = []
    for name, node in sorted(getattr(graph, "nodes", {}).items()):
        w = _weight(node)
        if w is None or w.size == 0:
            continue
        hist, outside = code_histogram(w)
        out.append(QuantLayer(layer=name, population="", node_type=type(node).__name__, n_weights=int(w.size),
                              histogram=hist, outside=outside))
    return out


def confusion(pred: Optional[Sequence[int]], labels: Sequence[int], classes: int) -> Optional[List[List[int]]]:
    """``m[true][predicted]`` counts over the samples that have a prediction (None: no predictions)."""
    if pred is None:
        return None
    p = np.asarray(pred, dtype=np.int64).reshape(-1)
    y = np.asarray(labels, dtype=np.int64).reshape(-1)[: p.size]
    k = int(max(classes, (p.max() + 1) if p.size else 0, (y.max() + 1) if y.size else 0))
    m = np.zeros((k, k), dtype=np.int64)
    ok = p >= 0  # a sample without any output spike may be predicted as -1
    np.add.at(m, (y[ok], p[ok]), 1)
    return m.tolist()
