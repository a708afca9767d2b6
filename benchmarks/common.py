"""Shared setup for the asv benchmarks: models and seeded inputs.

Models: ``psnn`` (the bundled P-SNN, 2x32x32 DVS-gesture input) and ``cnn_sinabs`` (the NIR
paper's N-MNIST CNN, 2x34x34), both shipped in ``harness/bundled``.
"""
from __future__ import annotations

import os
from functools import lru_cache

import numpy as np

BUNDLED = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "harness", "bundled")
MODELS = ["psnn", "cnn_sinabs"]
TICKS = 50
DENSITY = 0.02


def model_path(name: str) -> str:
    """Path of a bundled model file (``<name>.nir``)."""
    try:
        from harness.bundled_paths import bundled_model

        return str(bundled_model(name))
    except Exception:
        return os.path.join(BUNDLED, f"{name}.nir")


@lru_cache(maxsize=None)
def flat_graph(name: str):
    from s2common.graph import read_flat

    return read_flat(model_path(name))


def spikes(name: str, batch: int, ticks: int = TICKS, density: float = DENSITY, seed: int = 0) -> np.ndarray:
    """Seeded Bernoulli input spikes (batch, ticks, *input_shape), bool."""
    rng = np.random.default_rng(seed)
    return rng.random((batch, ticks, *flat_graph(name).input_shape)) < density


@lru_cache(maxsize=None)
def network(name: str):
    """The model lowered with py-spinnaker2's default weight scaling (float models) or as is (quantized)."""
    from s2emu import ConversionOptions, lower

    flat = flat_graph(name)
    meta = getattr(flat.graph, "metadata", None) or {}
    quantized = any(str(k).startswith("s2gate.quant") for k in meta)
    return lower(flat, ConversionOptions(scale_weights=not quantized))
