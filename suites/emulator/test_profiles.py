"""Vendor profiles carry the values of the file they cite (values written here from those files)."""
from __future__ import annotations

import nir
import numpy as np
import pytest

from s2common.errors import InputDataError
from s2emu.network import ConversionOptions
from s2emu.profiles import PROFILES, get_profile, profile_of


def test_converter_defaults_are_conversionconfigs_field_defaults() -> None:
    """sPiNNIRker 47c758b ``ConversionConfig``: ``dt: float = 1.0``, ``conn_delay: int = 1``,
    ``scale_weights: bool = False``, ``weight_scale_percentile: float = 100``,
    ``integrator ... = IntegratorMethod.EXPONENTIAL``, ``reset ... = ResetMethod.SUBTRACT``."""
    o = PROFILES["converter-defaults"].conversion_options()
    assert (o.dt, o.conn_delay, o.scale_weights, o.percentile, o.integrator, o.reset) == \
        (1.0, 1, False, 100.0, "exp", "subtract")


def test_nir_paper_profiles() -> None:
    """``02_cnn/s2_apply.ipynb``: dt 0.0001, conn_delay 0, scale_weights True, ResetMethod.ZERO, FORWARD,
    atoms {"3": 256, "6": 128, "10": 16}; ``03_rnn/s2_apply.py``: the same with SUBTRACT and lif1.lif 10 atoms;
    ``01_lif/lif_spinnaker2.py``: scale_weights False, ZERO, FORWARD."""
    cnn = PROFILES["nir-paper-cnn"]
    o = cnn.conversion_options()
    assert (o.dt, o.conn_delay, o.scale_weights, o.integrator, o.reset) == (1e-4, 0, True, "euler", "to_v_reset")
    assert cnn.atoms() == {"3": 256, "6": 128, "10": 16}
    assert cnn.reference_options() == {"dt": 1e-4, "integrator": "euler", "reset": "to_zero"}
    br = PROFILES["nir-paper-braille"]
    assert br.conversion_options().reset == "subtract" and br.atoms() == {"lif1.lif": 10}
    lif = PROFILES["nir-paper-lif"].conversion_options()
    assert (lif.scale_weights, lif.reset, lif.integrator, lif.vendor_cast) == (False, "to_v_reset", "euler", True)
    for p in PROFILES.values():
        assert "neuromorphs/NIR" in p.source or "sPiNNIRker" in p.source


def test_the_readme_defaults_are_not_the_nir_papers_cnn_settings() -> None:
    """s2gate's defaults reset by subtraction; the NIR paper's CNN notebook resets to zero."""
    assert ConversionOptions().reset == "subtract" != PROFILES["nir-paper-cnn"].conversion_options().reset


def test_profile_from_metadata_and_unknown_names() -> None:
    g = nir.NIRGraph(nodes={"i": nir.Input(input_type={"input": np.array([1])}),
                            "o": nir.Output(output_type={"output": np.array([1])})}, edges=[("i", "o")])
    assert profile_of(g) is None
    g.metadata = {"s2gate.profile": "nir-paper-braille"}
    assert profile_of(g).name == "nir-paper-braille"
    with pytest.raises(InputDataError, match="nir-paper-cnn"):
        get_profile("nir-paper")
