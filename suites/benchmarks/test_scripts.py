"""The benchmark scripts' own arithmetic: multiply-add counts and the regression gate's parser."""
from __future__ import annotations

import numpy as np
import pytest

from benchmarks.gate_regression import regressions
from benchmarks.throughput import macs_per_tick

COMPARE = """
Benchmarks that have got worse:

| Change   | Before [ff7995ce] <main~1>   | After [cbf42f73] <main>   | Ratio   | Benchmark (Parameter)                       |
|----------|------------------------------|---------------------------|---------|---------------------------------------------|
| +        | 50.3±3ms                     | 75.2±4ms                  | 1.50    | bench_emulator.GoldenModel.time_run('cnn_sinabs', 1) |
| !        | 7.58±3ms                     | failed                    | n/a     | bench_quantizer.PostTrainingQuantization.time_quantize_ptq('psnn', 100.0) |

Benchmarks that have stayed the same:

| Change   | Before [ff7995ce] <main~1>   | After [cbf42f73] <main>   | Ratio   | Benchmark (Parameter)                       |
|----------|------------------------------|---------------------------|---------|---------------------------------------------|
|          | 7.72±3ms                     | 7.42±4ms                  | 0.96    | bench_reference.Reference.time_simulate('cnn_sinabs', 1) |
| -        | 7.72±3ms                     | 3.42±4ms                  | 0.44    | bench_emulator.FastEngine.time_run('cnn_sinabs', 1) |
"""


def test_regressions_are_the_plus_and_failed_rows():
    assert regressions(COMPARE) == [
        ("+", "1.50", "bench_emulator.GoldenModel.time_run('cnn_sinabs', 1)"),
        ("!", "n/a", "bench_quantizer.PostTrainingQuantization.time_quantize_ptq('psnn', 100.0)"),
    ]
    assert regressions(COMPARE.split("Benchmarks that have stayed")[1]) == []


def test_macs_of_cnn_sinabs_match_torch_output_shapes():
    """Independent count: run each conv on a zero input of its declared input shape with torch."""
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    from benchmarks.common import flat_graph

    flat = flat_graph("cnn_sinabs")
    macs = macs_per_tick(flat)
    expected = {}
    for name, node in flat.nodes.items():
        kind = type(node).__name__
        if kind == "Conv2d":
            w = torch.from_numpy(np.asarray(node.weight, dtype=np.float32))
            x = torch.zeros(1, w.shape[1] * int(node.groups), *flat.in_shape[name][-2:])
            pad = node.padding if not isinstance(node.padding, str) else node.padding
            y = F.conv2d(x, w, stride=tuple(np.atleast_1d(node.stride).tolist()) * (2 // np.size(node.stride)),
                         padding=pad if isinstance(pad, str) else tuple(np.atleast_1d(pad).tolist()) * (2 // np.size(pad)),
                         dilation=tuple(np.atleast_1d(node.dilation).tolist()) * (2 // np.size(node.dilation)),
                         groups=int(node.groups))
            expected[name] = int(y[0].numel()) * int(w[0].numel())
        elif kind in ("Affine", "Linear"):
            o, i = np.asarray(node.weight).shape
            expected[name] = o * i
    assert macs == expected
    assert sum(macs.values()) > 100_000  # three convs on 34x34 maps: far more than the dense layers alone
