"""Small synthetic models and data for the gate's own tests (fast: a few hundred neurons).

``tiny_float_graph`` mirrors the bundled P-SNN's patterns on an 8x8 input:
Input (2, 8, 8) -> Conv2d 2->4 3x3 pad 1 -> IF (4, 8, 8) -> SumPool2d 2 -> Flatten -> Affine 64->16
-> IF (16) -> Affine 16->4 -> IF (4) -> Output. Labels are the float model's own predictions
on the data, so the float accuracy is 100 % by construction and any loss comes from the int8 path.
"""
from __future__ import annotations

import os
from typing import Tuple

import numpy as np

SHAPE = (2, 8, 8)
T = 12


def tiny_float_graph(seed: int = 0, hidden: int = 16, classes: int = 4):
    """A float NIR graph with IF neurons (threshold 1) and float weights."""
    import nir

    rng = np.random.default_rng(seed)
    w1 = rng.normal(0.0, 0.45, size=(4, 2, 3, 3)).astype(np.float32)
    w2 = rng.normal(0.0, 0.35, size=(hidden, 64)).astype(np.float32)
    w3 = rng.normal(0.0, 0.6, size=(classes, hidden)).astype(np.float32)
    nodes = {
        "input": nir.Input(input_type=np.array(SHAPE)),
        "conv1": nir.Conv2d(input_shape=(8, 8), weight=w1, stride=1, padding=1, dilation=1, groups=1,
                            bias=np.zeros(4, dtype=np.float32)),
        "if1": nir.IF(r=np.ones((4, 8, 8), np.float32), v_threshold=np.ones((4, 8, 8), np.float32),
                      v_reset=np.zeros((4, 8, 8), np.float32)),
        "pool1": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
        "flat": nir.Flatten(input_type={"input": np.array([4, 4, 4])}, start_dim=0, end_dim=-1),
        "fc1": nir.Affine(weight=w2, bias=np.zeros(hidden, dtype=np.float32)),
        "if2": nir.IF(r=np.ones(hidden, np.float32), v_threshold=np.ones(hidden, np.float32),
                      v_reset=np.zeros(hidden, np.float32)),
        "fc2": nir.Affine(weight=w3, bias=np.zeros(classes, dtype=np.float32)),
        "if3": nir.IF(r=np.ones(classes, np.float32), v_threshold=np.ones(classes, np.float32),
                      v_reset=np.zeros(classes, np.float32)),
        "output": nir.Output(output_type=np.array([classes])),
    }
    edges = [("input", "conv1"), ("conv1", "if1"), ("if1", "pool1"), ("pool1", "flat"), ("flat", "fc1"),
             ("fc1", "if2"), ("if2", "fc2"), ("fc2", "if3"), ("if3", "output")]
    graph = nir.NIRGraph(nodes=nodes, edges=edges)
    graph.metadata = {"s2gate.preset": "spinnaker2"}
    return graph


def tiny_data(graph, n: int = 48, seed: int = 1, density: float = 0.25) -> Tuple[np.ndarray, np.ndarray]:
    """Random input spikes (n, T, 2, 8, 8) and the float graph's own predictions as labels."""
    from harness.metrics import predict
    from reference import simulate

    rng = np.random.default_rng(seed)
    x = rng.random((n, T) + SHAPE) < density
    rec = simulate(graph, x, preset="spinnaker2")
    return x, predict(rec, "if3")


def write_models(folder: "str | os.PathLike[str]", seed: int = 0, n: int = 48) -> Tuple[str, str, str]:
    """Write ``float.nir``, ``qat.nir`` (the float model quantized at p = 100, standing in for a
    Q-SNN) and ``data.npz`` into ``folder``; returns their paths."""
    import nir

    from harness.quantize import quantize_ptq

    folder = os.fspath(folder)
    g = tiny_float_graph(seed)
    fpath = os.path.join(folder, "float.nir")
    qpath = os.path.join(folder, "qat.nir")
    dpath = os.path.join(folder, "data.npz")
    nir.write(fpath, g)
    quantize_ptq(g, percentile=100.0, source=fpath).write(qpath)
    x, y = tiny_data(g, n=n)
    np.savez(dpath, spikes=x, labels=y)
    return fpath, qpath, dpath
