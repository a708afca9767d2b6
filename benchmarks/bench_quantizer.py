"""Quantizer speed: PTQ of a whole model (per-tensor, p = 100 and 99.9)."""
from __future__ import annotations

from .common import MODELS, flat_graph


class PostTrainingQuantization:
    params = (MODELS, [100.0, 99.9])
    param_names = ["model", "percentile"]

    def setup(self, model, percentile):
        self.graph = flat_graph(model).graph

    def time_quantize_ptq(self, model, percentile):
        from harness.quantize import quantize_ptq

        quantize_ptq(self.graph, percentile=percentile)
