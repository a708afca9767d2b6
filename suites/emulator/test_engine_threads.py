"""Engine(threads=n): same bits as the caller's setting, and the caller's setting is restored."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from s2emu import ConversionOptions, Engine, GoldenModel, lower
from suites.fixtures import third_party

from .bits import assert_same_bits


def test_threads_option_same_bits_and_restores_the_setting() -> None:
    net = lower(third_party("cnn_sinabs.nir"), ConversionOptions(scale_weights=True))
    x = np.random.default_rng(5).random((4, 6, 2, 34, 34)) < 0.15
    before = torch.get_num_threads()
    other = 2 if before == 1 else 1
    rec = Engine(net, threads=other).run(x, record="all")
    assert torch.get_num_threads() == before
    assert rec.meta["threads"] == other
    assert_same_bits(rec, Engine(net).run(x, record="all"))
    # and the golden model on one sample (the engine's chunked, row-skipping paths against the oracle)
    assert_same_bits(Engine(net, threads=other).run(x[:1, :3], record="all"), GoldenModel(net).run(x[:1, :3], record="all"))


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2"])
def test_threads_option_rejects_nonsense(bad) -> None:
    net = lower(third_party("cnn_sinabs.nir"), ConversionOptions(scale_weights=True))
    with pytest.raises(ValueError, match="threads"):
        Engine(net, threads=bad)
