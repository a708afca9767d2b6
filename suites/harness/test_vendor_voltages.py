"""Reference vs emulator voltages in NIR units (the converter's ``nir_v_scale``) within the float32 bound.

``create_populations``: ``pop.nir_v_scale = v_scale  # save scaling factors to rescale recorded voltages``;
``paper/03_rnn/s2_apply.py`` plots ``vs / v_scale``. The bound is derived in ``harness.vendor_voltages``.
"""
from __future__ import annotations

import nir
import numpy as np
import pytest

from harness.quantize import quantize_ptq
from harness.vendor_voltages import TIER, voltage_agreement
from reference import simulate
from s2emu import ConversionOptions, Engine, lower

from ..fixtures import REPO

TP = REPO.parent / "shared" / "fixtures" / "third_party"


def _run(name: str, ticks: int, batch: int = 2):
    q = quantize_ptq(nir.read(str(TP / name)), percentile=100.0).graph
    net = lower(q, ConversionOptions(scale_weights=False))
    x = np.random.default_rng(0).random((batch, ticks) + tuple(net.populations[net.input_name].shape)) < 0.2
    emu = Engine(net).run(x, record="all")
    pops = [p for p, pop in net.populations.items() if pop.model != "spike_list"]
    return simulate(q, x, preset="spinnaker2", record=pops), emu, net


@pytest.mark.parametrize("name,ticks", [("lif_norse.nir", 100), ("cnn_sinabs.nir", 12),
                                        ("braille_noDelay_noBias_subtract.nir", 80)])
def test_voltages_agree_within_the_float32_bound(name: str, ticks: int) -> None:
    ref, emu, net = _run(name, ticks)
    assert set(emu.meta["v_scale"]) == {p for p, pop in net.populations.items() if pop.model != "spike_list"}
    r = voltage_agreement(ref, emu, net)
    assert r.tier == TIER == "float32-rounding" and "[float32-rounding tier]" in r.describe()
    assert r.ok, r.describe()
    assert r.compared >= emu.batch * ticks  # at least one population compared over the whole run
    assert 0 < r.worst <= 1


def test_the_voltage_scale_is_the_converters_nir_v_scale() -> None:
    """``convert_LIF``: ``v_scale = 1.0 / r_factor``, ``scale = v_scale * w_scale``, ``r_factor = (dt / tau) * r``
    (FORWARD). lif_norse.nir's LIF, weights scaled: ``w_scale = 127 / max|W|``; the value is recomputed here."""
    g = nir.read(str(TP / "lif_norse.nir"))
    lif, fc = g.nodes["1"], g.nodes["0"]
    net = lower(g, ConversionOptions())
    w_scale = 127.0 / float(np.abs(np.asarray(fc.weight, np.float64)).max())
    expect = w_scale / ((1e-4 / np.asarray(lif.tau, np.float64)) * np.asarray(lif.r, np.float64))
    np.testing.assert_allclose(net.populations["1"].v_scale, expect.ravel(), rtol=1e-15)
    rec = Engine(net).run(np.zeros((1, 3, 1), bool), record="all")
    np.testing.assert_allclose(rec.in_nir_units().get("1", "v"), rec.get("1", "v") / expect.ravel(), rtol=0)


def test_a_wrong_scale_is_caught() -> None:
    """A voltage scale off by 1e-5 (far beyond float32 rounding) fails the comparison, naming the population."""
    ref, emu, net = _run("lif_norse.nir", 100)
    emu.meta["v_scale"] = {k: float(np.asarray(v).ravel()[0]) * (1 + 1e-5) for k, v in emu.meta["v_scale"].items()}
    r = voltage_agreement(ref, emu, net)
    assert not r.ok and r.first_violation[0] == "1" and "beyond the bound" in r.describe()


def test_agreement_from_saved_recordings(tmp_path) -> None:
    """What ``s2gate compare A.h5 B.h5 --graph Q.nir`` reads: both recordings from disk, options from B's meta."""
    from s2common.recording import Recording
    from harness.vendor_voltages import agreement_for_graph

    q = quantize_ptq(nir.read(str(TP / "lif_norse.nir")), percentile=100.0)
    qpath = tmp_path / "q.nir"
    q.write(qpath)
    ref, emu, _ = _run("lif_norse.nir", 60)
    ref.save(tmp_path / "a.h5")
    emu.save(tmp_path / "b.h5")
    r = agreement_for_graph(Recording.load(tmp_path / "a.h5"), Recording.load(tmp_path / "b.h5"), str(qpath))
    assert r is not None and r.ok and r.compared == 2 * 60
