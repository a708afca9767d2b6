"""Reference simulator speed (float64, the gate's float semantics)."""
from __future__ import annotations

from .common import MODELS, flat_graph, spikes


class Reference:
    params = (MODELS, [1, 64])
    param_names = ["model", "batch"]
    timeout = 300

    def setup(self, model, batch):
        self.flat = flat_graph(model)
        self.x = spikes(model, batch)

    def time_simulate(self, model, batch):
        from reference import simulate

        simulate(self.flat, self.x, preset="spinnaker2")
