"""Emulator speed and memory: the fast engine and the scalar golden model."""
from __future__ import annotations

from .common import MODELS, network, spikes


class FastEngine:
    """``Engine(net).run`` on seeded input, 50 ticks; time per call (batch x 50 sample-ticks)."""

    params = (MODELS, [1, 64])
    param_names = ["model", "batch"]
    timeout = 300

    def setup(self, model, batch):
        from s2emu import Engine

        self.engine = Engine(network(model))
        self.x = spikes(model, batch)

    def time_run(self, model, batch):
        self.engine.run(self.x)


class FastEngineMemory:
    """Peak resident memory of a batch-64 engine run (spikes recorded for every population)."""

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
    """The scalar golden model (reads like the chip's C code): one sample, 2 ticks."""

    params = (MODELS,)
    param_names = ["model"]
    timeout = 600
    number = 1
    repeat = 1

    def setup(self, model):
        from s2emu import GoldenModel as Golden

        self.golden = Golden(network(model))
        self.x = spikes(model, 1, ticks=2)

    def time_run(self, model):
        self.golden.run(self.x)
