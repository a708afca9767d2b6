"""Both engines refuse bad input with one-line InputDataErrors that name the Input node."""
from __future__ import annotations

import numpy as np
import pytest

import s2emu
from s2common.errors import InputDataError
from s2emu import ConversionOptions, Engine, GoldenModel, lower
from suites.fixtures import third_party


@pytest.fixture(scope="module")
def net():
    return lower(third_party("braille_noDelay_noBias_subtract.nir"), ConversionOptions())


@pytest.mark.parametrize("engine", [Engine, GoldenModel])
def test_wrong_shape_names_the_input(net, engine) -> None:
    with pytest.raises(InputDataError) as err:
        engine(net).run(np.zeros((5, 12), bool))       # no batch dimension
    assert err.value.node == "input" and "(batch, time, 12)" in str(err.value)


@pytest.mark.parametrize("engine", [Engine, GoldenModel])
def test_non_binary_and_nan_inputs_are_refused(net, engine) -> None:
    x = np.zeros((1, 3, 12))
    x[0, 1, 2] = 2.0
    with pytest.raises(InputDataError, match="0 or 1"):
        engine(net).run(x)
    x[0, 1, 2] = np.nan
    with pytest.raises(InputDataError, match="NaN"):
        engine(net).run(x)


def test_unknown_record_name_is_refused(net) -> None:
    with pytest.raises(InputDataError) as err:
        Engine(net).run(np.zeros((1, 3, 12), bool), record=["lif9"])
    assert err.value.node == "lif9" and "lif1.lif" in str(err.value)


def test_default_record_is_spikes_of_every_population_and_the_input(net) -> None:
    x = np.random.default_rng(0).random((2, 5, 12)) < 0.5
    rec = Engine(net).run(x.astype(np.float32))
    assert sorted(rec.data) == ["input", "lif1.lif", "lif2"]
    assert all(list(obs) == ["spikes"] for obs in rec.data.values())
    assert np.array_equal(rec.spikes("input"), x)
    assert rec.spikes("lif1.lif").shape == (2, 5, 40) and rec.spikes("lif1.lif").dtype == bool
    assert rec.meta["backend"] == "emulator" and rec.meta["engine"] == "torch"
    assert rec.meta["options"]["dt"] == 1e-4 and rec.dt == 1e-4
    one = Engine(net).run(x, record=["lif2"])
    assert sorted(one.data["lif2"]) == ["i", "spikes", "v"] and sorted(one.data["lif1.lif"]) == ["spikes"]
    assert one.get("lif2", "i").dtype == np.int32 and one.get("lif2", "v").dtype == np.float32


def test_public_api_exports() -> None:
    for name in ("ConversionOptions", "lower", "find_projection_paths", "GoldenModel", "Engine",
                 "check_design_rules", "map_to_chip"):
        assert callable(getattr(s2emu, name)), name
