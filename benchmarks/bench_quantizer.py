"""Quantizer speed: post-training quantization of a whole model (per-tensor, p = 100 and 99.9)."""
from __future__ import annotations

from .common import MODELS, flat_graph


class PostTrainingQuantization:
    """``harness.quantize.quantize_ptq`` of the float graph; seconds per call."""

    params = (MODELS, [100.0, 99.9])
    param_names = ["model", "percentile"]

    def setup(self, model, percentile):
        from .common import is_quantized

        self.graph = flat_graph(model).graph
        if is_quantized(self.graph):
            raise NotImplementedError(f"{model} is already quantized")

    def time_quantize_ptq(self, model, percentile):
        from harness.quantize import quantize_ptq

        quantize_ptq(self.graph, percentile=percentile)
