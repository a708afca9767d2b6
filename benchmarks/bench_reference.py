"""Reference simulator speed (the gate's float semantics, preset ``spinnaker2``)."""
from __future__ import annotations

import os
import tempfile
from functools import lru_cache

import numpy as np

from .common import BATCHES, MODELS, SMOKE, TICKS, flat_graph, spikes


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


@lru_cache(maxsize=None)
def _seedscale_files() -> tuple:
    from harness.models import seedscale

    return seedscale.write(os.path.join(tempfile.gettempdir(), f"s2gate-asv-refseed-{os.getpid()}"))


class ReferenceSeedScale:
    """``reference.simulate`` (float64) on the seed-scale model (``harness.models.seedscale``): the float graph
    and its PTQ graph (``seedscale_q.nir``: integer weights, the gate's int8 graph); batch 8 x TICKS of
    seeded 5 % spikes. The gate runs the reference on both kinds of graph."""

    params = (["float", "ptq"],)
    param_names = ["graph"]
    timeout = 600
    BATCH = 2 if SMOKE else 8

    def setup(self, graph):
        from harness.models import seedscale
        from s2common.graph import read_flat

        self.flat = read_flat(_seedscale_files()[0 if graph == "float" else 1])
        self.x = seedscale.spikes(self.BATCH, 0.05, ticks=TICKS)

    def time_simulate(self, graph):
        from reference import simulate

        simulate(self.flat, self.x, preset="spinnaker2", dtype=np.float64)
