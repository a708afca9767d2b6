"""Accuracy of an exported NIR model measured by the reference simulator (not by torch).

The readout is the one the models are trained with: spike counts of the last neuron population
(the node feeding ``output``) over all T ticks, argmax with ties -> lowest index.
"""
from __future__ import annotations

import os
from typing import Optional, Tuple

import numpy as np

READOUT_NODE = "if4"


def counts_from_recording(rec, node: str = READOUT_NODE) -> np.ndarray:
    """Output spike counts (batch, classes) from a :class:`s2common.recording.Recording`."""
    s = rec.get(node, "spikes")
    if s is None:
        s = rec.get("output", "output")
    return np.asarray(s).sum(1)


def argmax_lowest(counts: np.ndarray) -> np.ndarray:
    """argmax over the last axis, ties -> lowest index (numpy's argmax already does this)."""
    return np.argmax(np.asarray(counts), axis=-1).astype(np.int64)


def reference_counts(graph, x: np.ndarray, batch_size: int = 64, dtype=np.float64, progress: bool = False,
                     preset: str = "spinnaker2") -> np.ndarray:
    """Spike counts of the readout layer, simulated by ``reference.simulate`` (spinnaker2 preset).

    Args:
        graph: NIR graph or path.
        x: spikes (N, T, 2, 32, 32).
    """
    from reference import simulate

    if isinstance(graph, (str, os.PathLike)):
        import nir

        graph = nir.read(str(graph))
    out = []
    it = range(0, len(x), batch_size)
    if progress:
        from tqdm import tqdm
        it = tqdm(it, desc="reference", unit="batch")
    for i in it:
        rec = simulate(graph, np.asarray(x[i:i + batch_size]).astype(bool), preset=preset, dtype=dtype,
                       record=None)
        out.append(counts_from_recording(rec))
    return np.concatenate(out)


def reference_accuracy(graph, x: np.ndarray, y: np.ndarray, **kw) -> Tuple[float, np.ndarray]:
    """(accuracy, predictions) of ``graph`` on (x, y) under the reference simulator."""
    pred = argmax_lowest(reference_counts(graph, x, **kw))
    return float(np.mean(pred == np.asarray(y))), pred
