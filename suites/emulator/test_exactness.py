"""Integer synaptic sums computed in floating point are exact: the static bound, driven to its limit."""
from __future__ import annotations

import nir
import numpy as np
import torch

from s2emu import ConversionOptions, Engine, GoldenModel, exactness_bound, lower

Q = ConversionOptions(scale_weights=False)  # integer weights used as they are


def _dense_graph(fan_in: int) -> object:
    w = np.full((1, fan_in), 127.0, dtype=np.float32)
    return nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type={"input": np.array([fan_in])}),
            "fc": nir.Linear(weight=w),
            "n": nir.IF(r=np.ones(1, np.float32), v_threshold=np.full(1, 1e9, np.float32), v_reset=np.zeros(1, np.float32)),
            "output": nir.Output(output_type={"output": np.array([1])}),
        },
        edges=[("input", "fc"), ("fc", "n"), ("n", "output")],
    )


def _run_all_ones(net, ticks: int = 2):
    x = np.ones((1, ticks) + net.populations[net.input_name].shape, dtype=bool)
    return x, Engine(net).run(x, record="all")


def test_dense_projection_at_the_float32_bound_is_exact() -> None:
    fan_in = (2 ** 24 - 1) // 127          # 132104: 127 * fan_in = 16777208 < 2**24
    net = lower(_dense_graph(fan_in), Q)
    engine = Engine(net)
    assert exactness_bound(net.projections[0], net.populations["input"]) == 127 * fan_in
    assert engine.compiled[0].dtype == torch.float32
    _, rec = _run_all_ones(net)
    assert rec.get("n", "i")[0, 1, 0] == 127 * fan_in == 16777208
    # the voltage got the exact integer too (16777208 is a float32)
    assert rec.get("n", "v")[0, 1, 0] == np.float32(16777208)


def test_dense_projection_beyond_the_float32_bound_falls_back_to_float64() -> None:
    fan_in = (2 ** 24 - 1) // 127 + 1      # 132105: 127 * fan_in = 16777335 > 2**24
    assert int(np.float32(127 * fan_in)) != 127 * fan_in  # float32 could not even hold the answer
    net = lower(_dense_graph(fan_in), Q)
    engine = Engine(net)
    assert engine.compiled[0].dtype == torch.float64
    x, rec = _run_all_ones(net)
    assert rec.get("n", "i")[0, 1, 0] == 16777335
    gold = GoldenModel(net).run(x, record="all")
    assert gold.get("n", "i")[0, 1, 0] == 16777335


def test_pooled_conv_projection_at_the_bound_is_exact() -> None:
    """SumPool2d 2x2 -> Conv2d 7x7 over 674 channels, all weights 127: 127 * 674*49 * 4 = 16777208."""
    c, k = 674, 7
    w = np.full((1, c, k, k), 127.0, dtype=np.float32)
    graph = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type={"input": np.array([c, 2 * k, 2 * k])}),
            "pool": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
            "conv": nir.Conv2d(input_shape=(k, k), weight=w, stride=1, padding=0, dilation=1, groups=1,
                               bias=np.zeros(1, np.float32)),
            "n": nir.IF(r=np.ones((1, 1, 1), np.float32), v_threshold=np.full((1, 1, 1), 1e9, np.float32),
                        v_reset=np.zeros((1, 1, 1), np.float32)),
            "output": nir.Output(output_type={"output": np.array([1, 1, 1])}),
        },
        edges=[("input", "pool"), ("pool", "conv"), ("conv", "n"), ("n", "output")],
    )
    net = lower(graph, Q)
    proj = net.projections[0]
    assert proj.kind == "conv2d" and proj.pool == (2, 2)
    engine = Engine(net)
    assert engine.compiled[0].bound == 127 * c * k * k * 4 == 16777208
    assert engine.compiled[0].dtype == torch.float32
    x, rec = _run_all_ones(net)
    assert rec.get("n", "i")[0, 1].item() == 16777208
    # a checkerboard input: exactly half of each pooling window fires
    x = np.zeros((1, 2, c, 2 * k, 2 * k), dtype=bool)
    x[:, :, :, ::2, ::2] = True
    x[:, :, :, 1::2, 1::2] = True
    assert Engine(net).run(x, record="all").get("n", "i")[0, 1].item() == 127 * c * k * k * 2


def test_integrality_guard_catches_an_inexact_kernel(monkeypatch) -> None:
    """If a kernel ever returned a non-integer sum, the engine stops instead of rounding silently."""
    import pytest

    from s2common.errors import UnsupportedError

    net = lower(_dense_graph(8), Q)
    engine = Engine(net)
    real = engine.compiled[0].weights[0]
    engine.compiled[0].weights = (real + 0.3,)
    x = np.ones((1, 3, 8), dtype=bool)
    with pytest.raises(UnsupportedError, match="non-integer"):
        engine.run(x)
