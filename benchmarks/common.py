"""Shared setup for the asv benchmarks: models, seeded inputs, sizes.

Models: ``psnn`` (the bundled P-SNN, input 2x32x32, DVS-gesture) and ``cnn_sinabs`` (the NIR
paper's N-MNIST CNN, input 2x34x34), both shipped in ``harness/bundled``. A model whose file
is missing makes the benchmark's ``setup`` raise ``NotImplementedError``, which asv reports as
skipped (``n/a``), not as failed.

Environment variables (read when a benchmark module is imported):

* ``S2GATE_BENCH_MODELS``: folder to take ``<model>.nir`` from instead of ``harness/bundled``
  (benchmark other files under the same names).
* ``S2GATE_BENCH_SMOKE=1``: tiny sizes (few ticks, few gate samples) so that
  ``asv run --quick --dry-run`` only checks that every benchmark runs (the pytest smoke test
  sets it). Numbers measured this way are meaningless; never save them.
"""
from __future__ import annotations

import os
from functools import lru_cache

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUNDLED = os.path.join(ROOT, "harness", "bundled")
#: parameter values of the ``model`` axis
MODELS = ["psnn", "cnn_sinabs"]
#: parameter values of the ``batch`` axis
BATCHES = [1, 64]
SMOKE = os.environ.get("S2GATE_BENCH_SMOKE", "") not in ("", "0")
#: ticks per engine/reference run (the P-SNN is trained on 100; 50 keeps a full asv run short)
TICKS = 4 if SMOKE else 50
#: ticks per golden-model run (the scalar model costs ~0.5 s per sample and tick)
GOLDEN_TICKS = 2
#: input spike density (fraction of input pixels spiking per tick)
DENSITY = 0.02
#: samples the gate's track_* benchmarks evaluate
GATE_SAMPLES = 4 if SMOKE else 32


def model_path(name: str) -> str:
    """Path of the model file ``<name>.nir`` (bundled, or in ``$S2GATE_BENCH_MODELS``)."""
    folder = os.environ.get("S2GATE_BENCH_MODELS") or BUNDLED
    return os.path.join(folder, f"{name}.nir")


def require(name: str) -> str:
    """The model's path; ``NotImplementedError`` (asv: skipped) if the file does not exist."""
    path = model_path(name)
    if not os.path.exists(path):
        raise NotImplementedError(f"{path} does not exist (not bundled yet)")
    return path


@lru_cache(maxsize=None)
def flat_graph(name: str):
    """The model as an ``s2common.graph.FlatGraph`` (skips if missing)."""
    from s2common.graph import read_flat

    return read_flat(require(name))


def spikes(name: str, batch: int, ticks: int = TICKS, density: float = DENSITY, seed: int = 0) -> np.ndarray:
    """Seeded Bernoulli input spikes, bool, shape (batch, ticks, *input_shape)."""
    rng = np.random.default_rng(seed)
    return rng.random((batch, ticks, *flat_graph(name).input_shape)) < density


def is_quantized(graph) -> bool:
    """Whether the graph carries s2gate quantization metadata (then it is lowered as is)."""
    meta = getattr(graph, "metadata", None) or {}
    if any(str(k).startswith("s2gate.quant") for k in meta):
        return True
    return any("s2gate.quant" in (getattr(n, "metadata", None) or {}) for n in graph.nodes.values())


@lru_cache(maxsize=None)
def network(name: str):
    """The model lowered for the emulator: py-spinnaker2's default weight scaling for float
    models, as is (``scale_weights=False``) for quantized ones."""
    from s2emu import ConversionOptions, lower

    flat = flat_graph(name)
    return lower(flat, ConversionOptions(scale_weights=not is_quantized(flat.graph)))
