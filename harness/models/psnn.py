"""The P-SNN: a small float convolutional SNN for 32×32 two-polarity event frames, 11 classes.

Architecture (every projection is a pattern SpiNNaker2's NIR converter accepts):

    Input (2, 32, 32)
    -> Conv2d 2→8, 3×3, pad 1, no bias   -> IF (8, 32, 32)    8192 neurons
    -> SumPool2d 2×2 -> Conv2d 8→16, 3×3, pad 1 -> IF (16, 16, 16)  4096 neurons
    -> SumPool2d 2×2 -> Flatten -> Affine 1024→128 -> IF (128)
    -> Affine 128→11 -> IF (11)  -> Output

Semantics (the "spinnaker2" discretisation, float32): one tick of latency per projection (the
input of layer k at tick t is the spike output of layer k-1 at tick t-1, zero at t = 0; the
Input's spikes at tick t reach layer 1 at t+1), IF neurons ``v += I; s = v > θ; v -= θ·s``.
Readout: spike counts of the last layer over all T ticks; predicted class = argmax (ties ->
lowest index).

Input shape (batch, T, 2, 32, 32), values 0/1.
"""
from __future__ import annotations

from dataclasses import dataclass, field, asdict
from typing import Dict, List, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .neurons import delay_one_tick, if_sequence


@dataclass(frozen=True)
class Arch:
    """Architecture hyper-parameters of the P-SNN / Q-SNN."""

    in_channels: int = 2
    in_size: int = 32
    conv_channels: Tuple[int, int] = (8, 16)
    hidden: int = 128
    n_classes: int = 11
    kernel: int = 3
    thresholds: Tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)

    def to_dict(self) -> Dict[str, object]:
        return asdict(self)


def sum_pool2d(x: torch.Tensor) -> torch.Tensor:
    """2×2 sum pooling, stride 2, no padding, on (N, C, H, W) (exact for 0/1 inputs)."""
    return F.avg_pool2d(x, 2, stride=2, divisor_override=1)


class ConvSNN(nn.Module):
    """The shared body of the P-SNN and Q-SNN; subclasses choose the weight layers."""

    arch: Arch

    def make_layers(self, arch: Arch) -> Tuple[nn.Module, nn.Module, nn.Module, nn.Module]:
        raise NotImplementedError

    def __init__(self, arch: Arch = Arch()) -> None:
        super().__init__()
        self.arch = arch
        self.conv1, self.conv2, self.fc1, self.fc2 = self.make_layers(arch)

    @property
    def weight_layers(self) -> List[nn.Module]:
        return [self.conv1, self.conv2, self.fc1, self.fc2]

    def forward(self, x: torch.Tensor, return_all: bool = False):
        """Spike counts of the output layer, (batch, n_classes) float32.

        Args:
            x: input spikes (batch, T, 2, 32, 32), 0/1.
            return_all: also return the spike trains of every IF population as a list of
                (batch, T, *shape) tensors (if1, if2, if3, if4).
        """
        a = self.arch
        x = x.to(torch.float32)
        B, T = x.shape[:2]
        th = a.thresholds
        # layer 1: Input -> Conv2d -> IF
        cur = self.conv1(delay_one_tick(x).flatten(0, 1))
        s1 = if_sequence(cur.unflatten(0, (B, T)), th[0])
        # layer 2: IF -> SumPool2d -> Conv2d -> IF
        cur = self.conv2(sum_pool2d(delay_one_tick(s1).flatten(0, 1)))
        s2 = if_sequence(cur.unflatten(0, (B, T)), th[1])
        # layer 3: IF -> SumPool2d -> Flatten -> Affine -> IF
        cur = self.fc1(sum_pool2d(delay_one_tick(s2).flatten(0, 1)).flatten(1))
        s3 = if_sequence(cur.unflatten(0, (B, T)), th[2])
        # layer 4: IF -> Affine -> IF
        cur = self.fc2(delay_one_tick(s3).flatten(0, 1))
        s4 = if_sequence(cur.unflatten(0, (B, T)), th[3])
        counts = s4.sum(1)
        if return_all:
            return counts, [s1, s2, s3, s4]
        return counts


class PSNN(ConvSNN):
    """Float P-SNN (torch ``Conv2d`` / ``Linear`` without bias)."""

    def make_layers(self, arch: Arch):
        c1, c2 = arch.conv_channels
        k = arch.kernel
        flat = c2 * (arch.in_size // 4) ** 2
        return (
            nn.Conv2d(arch.in_channels, c1, k, padding=k // 2, bias=False),
            nn.Conv2d(c1, c2, k, padding=k // 2, bias=False),
            nn.Linear(flat, arch.hidden, bias=False),
            nn.Linear(arch.hidden, arch.n_classes, bias=False),
        )


def predict(counts: torch.Tensor) -> torch.Tensor:
    """Predicted classes from spike counts (batch, classes): argmax, ties -> lowest index."""
    # torch.argmax returns the first maximal index on CPU; make it explicit and portable
    best = counts.max(1, keepdim=True).values
    idx = torch.arange(counts.shape[1], device=counts.device).expand_as(counts)
    return torch.where(counts == best, idx, counts.shape[1]).min(1).values
