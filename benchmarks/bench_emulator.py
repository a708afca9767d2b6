"""Emulator speed and memory: the fast engine (batched torch) and the scalar golden model.

Inputs: seeded Bernoulli spikes at ``common.DENSITY`` (2 %) per input pixel and tick.
"""
from __future__ import annotations

from .common import BATCHES, DENSITY, GOLDEN_TICKS, MODELS, TICKS, network, spikes


class FastEngine:
    """``Engine(net).run(x)``, x (batch, TICKS, *input_shape); seconds per call
    (samples x ticks per second = batch * TICKS / time).

    ``threads``: torch intra-op threads (0 = torch's default, what the gate uses). On a loaded
    2-core machine two OpenMP threads made the engine 10-20x slower than one (measured
    2026-11-27 at load average ~8), so both are tracked.
    """

    params = (MODELS, BATCHES, [0, 1])
    param_names = ["model", "batch", "threads"]
    timeout = 300

    def setup(self, model, batch, threads):
        import torch

        from s2emu import Engine

        self._threads = torch.get_num_threads()
        if threads:
            torch.set_num_threads(threads)
        self.engine = Engine(network(model))
        self.x = spikes(model, batch)
        self.engine.run(self.x)  # warm-up: torch picks kernels, the engine builds synapse rows, on first use

    def teardown(self, model, batch, threads):
        import torch

        torch.set_num_threads(self._threads)

    def time_run(self, model, batch, threads):
        self.engine.run(self.x)


class FastEngineDensity:
    """The engine at batch 64 against input spike density: with ``synapses="auto"`` time should
    fall with density (event-driven synaptic input where the source is sparse); ``"dense"``
    (the conv/matmul kernel only) is the flat baseline it is compared with."""

    params = (MODELS, [0.005, 0.02, 0.1], ["auto", "dense"])
    param_names = ["model", "density", "synapses"]
    timeout = 300

    def setup(self, model, density, synapses):
        from s2emu import Engine

        self.engine = Engine(network(model), synapses=synapses)
        self.x = spikes(model, 64, density=density)
        self.engine.run(self.x)  # warm-up (kernels, synapse rows)

    def time_run_batch64(self, model, density, synapses):
        self.engine.run(self.x)


class FastEngineMemory:
    """Peak resident memory (bytes) of a batch-64 engine run, spikes of every population recorded."""

    params = (MODELS,)
    param_names = ["model"]
    timeout = 300

    def setup(self, model):
        self.x = spikes(model, 64)
        self.net = network(model)

    def peakmem_run_batch64(self, model):
        from s2emu import Engine

        Engine(self.net).run(self.x)


class GoldenModel:
    """The scalar golden model (reads like the chip's C code) on one sample, ``GOLDEN_TICKS`` ticks.

    Only batch 1: the golden model loops over samples in Python, so its time is exactly
    linear in the batch (batch 64 would take about a minute per call).
    """

    params = (MODELS, [1])
    param_names = ["model", "batch"]
    timeout = 600
    number = 1
    repeat = (1, 3, 30.0)

    def setup(self, model, batch):
        from s2emu import GoldenModel as Golden

        self.golden = Golden(network(model))
        self.x = spikes(model, batch, ticks=GOLDEN_TICKS, density=DENSITY)

    def time_run(self, model, batch):
        self.golden.run(self.x)


class VectorRows:
    """Conv synapse rows built from geometry (``s2emu.vector_rows``) and their delivery, per projection.

    ``time_build``: building a projection's rows (numpy over the geometry, no one-hot kernel calls)
    and timing their delivery cost once, as the engine does on first use;
    ``time_deliver_batch64``: adding the rows of a batch-64 tick's spikes (``DENSITY`` of the
    sources, seeded) into NIR-order input rows, the compiled scatter with its transpose pass.
    """

    params = (MODELS,)
    param_names = ["model"]
    timeout = 300

    def setup(self, model):
        import numpy as np

        from s2emu import Engine, events

        self.engine = Engine(network(model))
        self.convs = [c for c in self.engine.compiled if c.proj.kind == "conv2d" and c.proj.groups == 1]
        self.rows = [self.engine._build_rows(c) for c in self.convs]
        rng = np.random.default_rng(0)
        self.src = [rng.random((64, 1, c.pre_size)) < DENSITY for c in self.convs]
        self.idx = np.arange(64, dtype=np.int64)
        self.zero = np.zeros(64, dtype=np.int64)
        self.outs = [np.zeros((64, c.post_size), dtype=np.float32) for c in self.convs]
        self._deliver = events.deliver

    def time_build(self, model):
        for c in self.convs:
            self.engine._build_rows(c)

    def time_deliver_batch64(self, model):
        for rows, src, out in zip(self.rows, self.src, self.outs):
            self._deliver(src, self.idx, self.zero, self.idx, rows, [out])
