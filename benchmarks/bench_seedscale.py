"""The seed-scale model (``harness.models.seedscale``: DVS-Gesture-sized IF CNN, input 2x64x64, generated
from its seed): the engine next to Sinabs (the batched peer) and Norse, and the full gate on it.

Inputs: seeded Bernoulli spikes at 5 % (``seedscale.spikes``), batch 32. Sinabs and Norse are the
optional ``peers`` extra: without them their benchmarks are skipped (``NotImplementedError`` in setup).
The gate benchmark runs ``harness.gate.evaluate.evaluate(GateConfig(...))`` (PTQ and QAT flows, the
default sweep) on ``GATE_SAMPLES`` samples of 100 ticks (264, DVS Gesture's test split, in
``benchmarks/throughput.py``; fewer here so that a full asv run stays short).
"""
from __future__ import annotations

import os
import tempfile
from functools import lru_cache

import numpy as np

from .common import SMOKE

BATCH = 32
TICKS = 4 if SMOKE else 50
GATE_SAMPLES = 4 if SMOKE else 64
GATE_TICKS = 4 if SMOKE else 100


@lru_cache(maxsize=None)
def _files() -> tuple:
    from harness.models import seedscale

    return seedscale.write(os.path.join(tempfile.gettempdir(), f"s2gate-asv-seedscale-{os.getpid()}"))


@lru_cache(maxsize=None)
def _network():
    from s2common.graph import read_flat
    from s2emu import ConversionOptions, lower

    return lower(read_flat(_files()[0]), ConversionOptions())


def _spikes(batch: int, ticks: int) -> np.ndarray:
    from harness.models import seedscale

    return seedscale.spikes(batch, 0.05, ticks=ticks)


class SeedScaleEngine:
    """``Engine(net).run(x)`` on the seed-scale model, x (32, TICKS, 2, 64, 64); ``kernels``: ``auto``
    (int8 kernels where measured faster, fused update) or ``float`` (the float kernels and torch update)."""

    params = (["auto", "float"],)
    param_names = ["kernels"]
    timeout = 600

    def setup(self, kernels):
        from s2emu import Engine

        self.engine = Engine(_network(), kernels=kernels)
        self.x = _spikes(BATCH, TICKS)
        self.engine.run(self.x)  # warm-up: kernel measurements, torch's kernel choice

    def time_run(self, kernels):
        self.engine.run(self.x)

    def peakmem_run(self, kernels):
        self.engine.run(self.x)


class SeedScalePeers:
    """The same input through Sinabs (``sinabs.nir.from_nir(graph, batch_size=32)``, batch-major) and
    Norse (sample by sample, one sample: it cannot batch this graph's Flatten)."""

    timeout = 900

    def setup(self):
        import nir

        self.graph = nir.read(_files()[0])
        self.x = _spikes(BATCH, TICKS)

    def time_sinabs(self):
        from benchmarks.throughput import run_sinabs

        try:
            import sinabs  # noqa: F401
        except ImportError as exc:
            raise NotImplementedError(f"sinabs not installed: {exc}")
        run_sinabs(self.graph, self.x, repeats=1)

    def time_norse_one_sample(self):
        from benchmarks.throughput import run_norse

        try:
            import norse  # noqa: F401
        except ImportError as exc:
            raise NotImplementedError(f"norse not installed: {exc}")
        run_norse(self.graph, self.x[:1], 1e-3)


class SeedScaleGate:
    """The full gate (``evaluate(GateConfig(...))``: PTQ, QAT, default sweep) on the seed-scale model."""

    timeout = 1800

    def setup(self):
        from harness.models import seedscale

        self.model, self.qat = _files()
        self.data = os.path.join(os.path.dirname(self.model), f"gate-{GATE_SAMPLES}x{GATE_TICKS}.npz")
        if not os.path.exists(self.data):
            x = seedscale.spikes(GATE_SAMPLES, 0.05, ticks=GATE_TICKS)
            np.savez(self.data, spikes=x, labels=np.arange(GATE_SAMPLES) % seedscale.N_CLASSES)

    def _evaluate(self):
        from harness.gate.config import GateConfig
        from harness.gate.evaluate import evaluate

        return evaluate(GateConfig(model=self.model, qat_model=self.qat, dataset=self.data))

    def time_gate(self):
        self._evaluate()

    def peakmem_gate(self):
        self._evaluate()
