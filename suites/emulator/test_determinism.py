"""The fast engine gives the same bits for any batch size, torch thread count and process."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from s2emu import ConversionOptions, Engine, lower
from suites.fixtures import REPO, third_party

from .bits import assert_same_bits, digest

TICKS = 10


def _net():
    return lower(third_party("cnn_sinabs.nir"), ConversionOptions(scale_weights=True))


def _inputs(batch: int, seed: int = 99) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.random((batch, TICKS, 2, 34, 34)) < 0.15


def _slice(rec, lo: int, hi: int):
    from s2common.recording import Recording

    out = Recording(dt=rec.dt, meta=rec.meta)
    for node, obs in rec.data.items():
        for name, arr in obs.items():
            out.add(node, name, arr[lo:hi])
    return out


def test_same_bits_for_batch_sizes_1_3_64() -> None:
    net = _net()
    engine = Engine(net)
    x = _inputs(64)
    big = engine.run(x, record="all")
    assert sum(int(big.spikes(n).sum()) for n in net.populations if n != net.input_name) > 1000
    assert_same_bits(engine.run(x[:1], record="all"), _slice(big, 0, 1))
    assert_same_bits(engine.run(x[5:8], record="all"), _slice(big, 5, 8))
    assert_same_bits(engine.run(x[63:64], record="all"), _slice(big, 63, 64))


def test_same_bits_for_1_and_2_torch_threads() -> None:
    net = _net()
    x = _inputs(8)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = Engine(net).run(x, record="all")
        torch.set_num_threads(2)
        two = Engine(net).run(x, record="all")
    finally:
        torch.set_num_threads(before)
    assert one.meta["threads"] == 1 and two.meta["threads"] == 2
    assert_same_bits(one, two)


_CHILD = r"""
import json, sys
import numpy as np, torch
torch.set_num_threads(int(sys.argv[1]))
from s2emu import ConversionOptions, Engine, lower
from suites.emulator.bits import digest
net = lower(sys.argv[2], ConversionOptions(scale_weights=True))
x = np.random.default_rng(99).random((6, 10, 2, 34, 34)) < 0.15
print(json.dumps({"digest": digest(Engine(net).run(x, record="all")), "threads": torch.get_num_threads()}))
"""


@pytest.mark.parametrize("threads", [1, 2])
def test_digest_matches_a_fresh_process(threads: int) -> None:
    """Meaningful under ``pytest -n 2`` too: the worker's bits equal a fresh interpreter's."""
    path = str(third_party("cnn_sinabs.nir"))
    here = digest(Engine(_net()).run(_inputs(6), record="all"))
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", _CHILD, str(threads), path], capture_output=True, text=True,
                         env=env, cwd=str(REPO), timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    child = json.loads(out.stdout.strip().splitlines()[-1])
    assert child["threads"] == threads
    assert child["digest"] == here


def test_tick_and_layer_schedules_give_the_same_bits() -> None:
    net = _net()
    x = _inputs(5)
    layers = Engine(net, mode="layers").run(x, record="all")
    ticks = Engine(net, mode="ticks").run(x, record="all")
    assert layers.meta["schedule"] == "layers" and ticks.meta["schedule"] == "ticks"
    assert_same_bits(layers, ticks)


def test_layer_schedule_refuses_a_recurrent_network() -> None:
    net = lower(third_party("braille_noDelay_noBias_subtract.nir"), ConversionOptions())
    assert Engine(net).schedule == "ticks"
    with pytest.raises(ValueError, match="feed-forward"):
        Engine(net, mode="layers").run(np.zeros((1, 3, 12), bool))


def test_flush_denormal_elsewhere_does_not_change_bits() -> None:
    """A LIF whose voltage decays into float32 subnormals: same bits with torch's flush-to-zero on."""
    import nir

    from s2emu import GoldenModel

    f = np.float32
    lif = nir.LIF(tau=f([1.2e-4]), r=f([1.0]), v_leak=f([0.0]), v_threshold=f([1e9]), v_reset=f([0.0]))
    g = nir.NIRGraph(nodes={"input": nir.Input(input_type={"input": np.array([1])}),
                            "fc": nir.Linear(weight=f([[1.0]])), "n": lif,
                            "output": nir.Output(output_type={"output": np.array([1])})},
                     edges=[("input", "fc"), ("fc", "n"), ("n", "output")])
    net = lower(g, ConversionOptions(scale_weights=False))   # alpha = 1 - 1/1.2 = 0.1667: fast decay
    x = np.zeros((1, 60, 1), bool)
    x[0, 0, 0] = True
    gold = GoldenModel(net).run(x, record="all").get("n", "v")
    assert np.any((gold > 0) & (gold < np.finfo(np.float32).tiny))  # the trace passes through subnormals
    if not torch.set_flush_denormal(True):
        pytest.skip("this CPU cannot flush denormals")
    try:
        fast = Engine(net).run(x, record="all").get("n", "v")
        assert (torch.tensor([1e-39]) * 1.0).item() == 0.0       # flushing is still on afterwards
    finally:
        torch.set_flush_denormal(False)
    assert np.array_equal(fast.view(np.uint32), gold.view(np.uint32))
