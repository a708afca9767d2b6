"""The bundled models (harness/bundled/{psnn,qsnn}.nir) on the stand-in test split, measured by
the reference simulator on the exported NIR files (not by torch)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

BUNDLED = Path(__file__).resolve().parents[2] / "harness" / "bundled"
PSNN = BUNDLED / "psnn.nir"
QSNN = BUNDLED / "qsnn.nir"


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path.name} not bundled yet")
    return path


def test_bundled_psnn_fits_one_chip_and_uses_supported_patterns():
    import nir

    g = nir.read(str(_need(PSNN)))
    types = {k: type(v).__name__ for k, v in g.nodes.items()}
    assert sorted(set(types.values())) == sorted({"Input", "Conv2d", "IF", "SumPool2d", "Flatten", "Affine", "Output"})
    neurons = {k: int(np.prod(np.shape(v.v_threshold))) for k, v in g.nodes.items() if types[k] == "IF"}
    # 256 conv neurons / 250 dense neurons per PE (py-spinnaker2 defaults), about 148 PEs per chip
    pes = sum(-(-n // (256 if k in ("if1", "if2") else 250)) for k, n in neurons.items())
    assert neurons == {"if1": 8192, "if2": 4096, "if3": 128, "if4": 11}
    assert pes <= 148
    atoms = {k: int(v) for k, v in g.metadata["s2gate.atoms_per_core"].items()}
    assert atoms == {"if3": 4}
    s2emu = pytest.importorskip("s2emu")
    opt = s2emu.ConversionOptions(dt=0.05)
    chip = s2emu.map_to_chip(s2emu.lower(g, opt), atoms_per_core=atoms)
    assert chip.total.fits and chip.total.pes <= 148
    assert s2emu.check_design_rules(g, options=opt, atoms_per_core=atoms) == []
    assert int(g.metadata["s2gate.T"]) == 20


def test_bundled_psnn_nir_reproduces_torch_on_a_subset():
    pytest.importorskip("reference")
    from harness.data import standin_split
    from harness.models.evaluate import reference_accuracy
    from harness.models.pipeline import load_psnn
    from harness.models.train import predict_all

    x, y = standin_split("test", seed=0, n=66)  # the first 66 test samples, 6 per class
    torch_pred = predict_all(load_psnn(_need(PSNN)), x)
    _, ref_pred = reference_accuracy(str(PSNN), x, y)
    assert np.mean(ref_pred == torch_pred) >= 0.99


@pytest.mark.slow
def test_bundled_psnn_accuracy_on_the_reference_simulator():
    """Float P-SNN accuracy >= 90 % on the full stand-in test split (660 samples)."""
    pytest.importorskip("reference")
    from harness.data import standin_split
    from harness.models.evaluate import reference_accuracy

    from harness.models.pipeline import load_psnn
    from harness.models.train import predict_all

    x, y = standin_split("test", seed=0)
    acc, pred = reference_accuracy(str(_need(PSNN)), x, y)
    assert acc >= 0.90
    # and the exported file reproduces the torch model's predictions on >= 99 % of the samples
    assert np.mean(pred == predict_all(load_psnn(PSNN), x)) >= 0.99
    # every class is recognised well above chance (1/11)
    per_class = [np.mean(pred[y == c] == c) for c in range(11)]
    assert min(per_class) > 0.5


@pytest.mark.slow
def test_bundled_qsnn_on_the_reference_simulator():
    """The quantized Q-SNN graph (chip units) is accurate under the float reference too."""
    pytest.importorskip("reference")
    from harness.data import standin_split
    from harness.models.evaluate import reference_accuracy

    x, y = standin_split("test", seed=0)
    acc, _ = reference_accuracy(str(_need(QSNN)), x, y)
    assert acc >= 0.88
