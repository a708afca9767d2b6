"""The seed-scale benchmark model: a DVS-Gesture-sized IF CNN generated from a seed (no training).

Graph (node names are stable; benchmarks refer to them)::

    input (2, 64, 64) -> conv1 (2->16, 3x3, pad 1) -> if1 -> pool1 (SumPool 2)
      -> conv2 (16->32) -> if2 -> pool2 -> conv3 (32->64) -> if3 -> pool3 -> flatten (64*8*8 = 4096)
      -> fc1 (Affine 4096->256) -> if4 -> fc2 (Affine 256->11) -> if5 -> output (11)

Weights are seeded Gaussians scaled by ``gain / sqrt(fan_in)`` (He-style), thresholds ``IF(r=1,
v_threshold=1)``; the gains are chosen so that, at 5 % input density, each IF layer fires at a
moderate rate (measured with the emulator at seed 0: 3, 5, 6, 7 and 5 % of neurons per tick for
if1..if5; measurable work on every layer, no saturation).
It exists to time simulators and the gate at the scale of the seed's DVS Gesture task
(T = 100 ticks, 264 test samples); its accuracy means nothing.

``quantized_graph`` is the same model quantized by s2gate's PTQ (``harness.quantize.quantize_ptq``,
p = 100): the gate's QAT flow takes it as its "Q-SNN" (any quantized NIR graph is accepted there).

    python -m harness.models.seedscale OUT_DIR      # writes seedscale.nir and seedscale_q.nir
"""
from __future__ import annotations

import os
import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

#: input (channels, height, width)
INPUT_SHAPE: Tuple[int, int, int] = (2, 64, 64)
#: output channels of the three convs
CONV_CHANNELS: Tuple[int, int, int] = (16, 32, 64)
HIDDEN = 256
N_CLASSES = 11
T = 100
DT = 1e-3
#: per weight layer: std of a weight is gain / sqrt(fan_in) (activity at 5 % input density, see module doc)
GAINS: Tuple[float, ...] = (1.6, 0.7, 0.5, 0.4, 0.8)
NODE_ORDER = ("input", "conv1", "if1", "pool1", "conv2", "if2", "pool2", "conv3", "if3", "pool3", "flatten",
              "fc1", "if4", "fc2", "if5", "output")


def weights(seed: int = 0, gains: Sequence[float] = GAINS) -> List[np.ndarray]:
    """The five weight arrays (conv1, conv2, conv3: (C_out, C_in, 3, 3); fc1 (256, 4096); fc2 (11, 256)), float32."""
    rng = np.random.default_rng(seed)
    shapes = []
    c_in = INPUT_SHAPE[0]
    for c in CONV_CHANNELS:
        shapes.append((c, c_in, 3, 3))
        c_in = c
    flat = CONV_CHANNELS[-1] * (INPUT_SHAPE[1] // 8) * (INPUT_SHAPE[2] // 8)
    shapes += [(HIDDEN, flat), (N_CLASSES, HIDDEN)]
    out = []
    for shape, gain in zip(shapes, gains):
        fan_in = int(np.prod(shape[1:]))
        w = rng.normal(0.0, gain / np.sqrt(fan_in), size=shape)
        out.append(w.astype(np.float32))
    return out


def graph(seed: int = 0, gains: Sequence[float] = GAINS) -> Any:
    """The float model as a ``nir.NIRGraph`` (metadata: ``s2gate.T``, ``s2gate.dt``, ``s2gate.preset``, ``s2gate.seed``)."""
    import nir

    w = weights(seed, gains)
    C, H, W = INPUT_SHAPE
    c1, c2, c3 = CONV_CHANNELS

    def if_(shape):
        shape = tuple(shape)
        return nir.IF(r=np.ones(shape, np.float32), v_threshold=np.ones(shape, np.float32),
                      v_reset=np.zeros(shape, np.float32))

    def conv(k, hw):
        return nir.Conv2d(input_shape=hw, weight=w[k], stride=1, padding=1, dilation=1, groups=1,
                          bias=np.zeros(w[k].shape[0], np.float32))

    def pool():
        return nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0]))

    nodes: Dict[str, Any] = {
        "input": nir.Input(input_type={"input": np.array(INPUT_SHAPE)}),
        "conv1": conv(0, (H, W)), "if1": if_((c1, H, W)), "pool1": pool(),
        "conv2": conv(1, (H // 2, W // 2)), "if2": if_((c2, H // 2, W // 2)), "pool2": pool(),
        "conv3": conv(2, (H // 4, W // 4)), "if3": if_((c3, H // 4, W // 4)), "pool3": pool(),
        "flatten": nir.Flatten(input_type={"input": np.array([c3, H // 8, W // 8])}, start_dim=0, end_dim=-1),
        "fc1": nir.Affine(weight=w[3], bias=np.zeros(HIDDEN, np.float32)), "if4": if_((HIDDEN,)),
        "fc2": nir.Affine(weight=w[4], bias=np.zeros(N_CLASSES, np.float32)), "if5": if_((N_CLASSES,)),
        "output": nir.Output(output_type={"output": np.array([N_CLASSES])}),
    }
    meta = {"s2gate.preset": "spinnaker2", "s2gate.T": T, "s2gate.dt": DT, "s2gate.model": "seedscale",
            "s2gate.readout": "spike-count-argmax", "s2gate.seed": int(seed)}
    return nir.NIRGraph(nodes=nodes, edges=list(zip(NODE_ORDER[:-1], NODE_ORDER[1:])), metadata=meta)


def quantized_graph(seed: int = 0) -> Any:
    """The float model quantized by s2gate's PTQ at p = 100 (a quantized NIR graph for the QAT flow)."""
    from harness.quantize import quantize_ptq

    return quantize_ptq(graph(seed), percentile=100.0).graph


def write(folder: str, seed: int = 0) -> Tuple[str, str]:
    """Write ``seedscale.nir`` (float) and ``seedscale_q.nir`` (quantized) into ``folder``; returns both paths."""
    import nir

    from harness.quantize import write_graph

    os.makedirs(folder, exist_ok=True)
    f = os.path.join(folder, "seedscale.nir")
    q = os.path.join(folder, "seedscale_q.nir")
    nir.write(f, graph(seed))
    write_graph(quantized_graph(seed), q)
    return f, q


def spikes(n: int, density: float = 0.05, seed: int = 0, ticks: int = T) -> np.ndarray:
    """Seeded Bernoulli input, bool (n, ticks, 2, 64, 64), generated sample by sample (same bytes for any n prefix)."""
    out = np.empty((n, ticks) + INPUT_SHAPE, dtype=bool)
    for i in range(n):
        out[i] = np.random.default_rng([seed, i]).random((ticks,) + INPUT_SHAPE) < density
    return out


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m harness.models.seedscale OUT_DIR", file=sys.stderr)
        return 2
    for p in write(argv[0]):
        print(p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
