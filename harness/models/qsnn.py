"""The Q-SNN: the P-SNN's architecture with Brevitas 8-bit weight quantisation (QAT).

Weight layers are ``brevitas.nn.QuantConv2d`` / ``QuantLinear`` with
``Int8WeightPerTensorFloat`` (8-bit, one float scale per tensor, narrow range: codes in
[-127, 127], zero point 0), no bias. Activations are spikes (0/1) and need no quantiser.
The forward pass uses the fake-quantised weights ``codes · scale`` (float32), so the float
network it trains is exactly the one whose chip-unit form (codes, thresholds × 1/scale) the
export writes.
"""
from __future__ import annotations

from typing import Optional

import torch

from .psnn import Arch, ConvSNN, PSNN


class QSNN(ConvSNN):
    """Q-SNN with Brevitas ``QuantConv2d`` / ``QuantLinear`` (brevitas imported lazily)."""

    def make_layers(self, arch: Arch):
        from brevitas.nn import QuantConv2d, QuantLinear
        from brevitas.quant import Int8WeightPerTensorFloat

        c1, c2 = arch.conv_channels
        k = arch.kernel
        flat = c2 * (arch.in_size // 4) ** 2
        q = dict(weight_quant=Int8WeightPerTensorFloat, bias=False)
        return (
            QuantConv2d(arch.in_channels, c1, k, padding=k // 2, **q),
            QuantConv2d(c1, c2, k, padding=k // 2, **q),
            QuantLinear(flat, arch.hidden, **q),
            QuantLinear(arch.hidden, arch.n_classes, **q),
        )

    @classmethod
    def from_psnn(cls, psnn: PSNN) -> "QSNN":
        """A Q-SNN initialised with the float P-SNN's weights (for QAT fine-tuning)."""
        q = cls(psnn.arch)
        with torch.no_grad():
            for dst, src in zip(q.weight_layers, psnn.weight_layers):
                dst.weight.copy_(src.weight)
        return q
