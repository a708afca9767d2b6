"""Reference simulator speed (the gate's float semantics, preset ``spinnaker2``)."""
from __future__ import annotations

import numpy as np

from .common import BATCHES, MODELS, flat_graph, spikes


class Reference:
    """``reference.simulate`` (float64, as the gate runs it); seconds per call of batch x TICKS."""

    params = (MODELS, BATCHES)
    param_names = ["model", "batch"]
    timeout = 300

    def setup(self, model, batch):
        self.flat = flat_graph(model)
        self.x = spikes(model, batch)

    def time_simulate(self, model, batch):
        from reference import simulate

        simulate(self.flat, self.x, preset="spinnaker2", dtype=np.float64)
