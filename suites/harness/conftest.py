"""Small graphs and recordings shared by the harness tests."""
from __future__ import annotations

import nir
import numpy as np
import pytest


def tiny_cnn(seed: int = 0) -> nir.NIRGraph:
    """Input (2, 6, 6) -> Conv2d 3x3 (3 ch) -> IF -> SumPool2d 2 -> Flatten -> Affine 12->5 -> LIF -> Output.

    A float graph with random weights, strong enough that every layer spikes on 20 % input.
    """
    rng = np.random.default_rng(seed)
    conv_w = rng.normal(0.1, 0.5, (3, 2, 3, 3)).astype(np.float32)
    fc_w = rng.normal(0.0, 0.5, (5, 12)).astype(np.float32)
    return nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type=np.array([2, 6, 6])),
            "conv": nir.Conv2d(input_shape=(6, 6), weight=conv_w, stride=1, padding=0, dilation=1, groups=1,
                               bias=np.zeros(3, dtype=np.float32)),
            "if1": nir.IF(r=np.ones((3, 4, 4)), v_threshold=np.full((3, 4, 4), 1.5), v_reset=np.zeros((3, 4, 4))),
            "pool": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
            "flat": nir.Flatten(input_type={"input": np.array([3, 2, 2])}, start_dim=0, end_dim=-1),
            "fc": nir.Affine(weight=fc_w, bias=np.zeros(5, dtype=np.float32)),
            "lif": nir.LIF(tau=np.full(5, 2e-3), r=np.full(5, 20.0), v_leak=np.zeros(5), v_threshold=np.ones(5),
                           v_reset=np.zeros(5)),
            "output": nir.Output(output_type=np.array([5])),
        },
        edges=[("input", "conv"), ("conv", "if1"), ("if1", "pool"), ("pool", "flat"), ("flat", "fc"), ("fc", "lif"),
               ("lif", "output")],
    )


@pytest.fixture(scope="session")
def tiny_graph() -> nir.NIRGraph:
    return tiny_cnn()


@pytest.fixture(scope="session")
def tiny_inputs() -> np.ndarray:
    return np.random.default_rng(1).random((3, 25, 2, 6, 6)) < 0.2
