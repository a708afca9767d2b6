"""The converter's own change of meaning (bias folding), measured on the float model before quantization."""
from __future__ import annotations

import nir
import numpy as np

from harness.vendor_semantics import check_vendor_semantics, vendor_semantics

from ..fixtures import REPO

BRAILLE = REPO.parent / "shared" / "fixtures" / "third_party" / "braille_noDelay_noBias_subtract.nir"
F = np.float32


def _biased_braille(scale: float) -> object:
    g = nir.read(str(BRAILLE))
    rng = np.random.default_rng(0)
    nodes = dict(g.nodes)
    for name in ("fc1", "fc2"):
        w = np.asarray(nodes[name].weight, F)
        nodes[name] = nir.Affine(weight=w, bias=(rng.normal(0, 1, w.shape[0]) * np.abs(w).mean() * scale).astype(F))
    return nir.NIRGraph(nodes=nodes, edges=list(g.edges), type_check=False)


def _x(n=16, t=40):
    return np.random.default_rng(1).random((n, t, 12)) < 0.15


def test_without_biases_nothing_changes() -> None:
    """``get_accumulated_bias`` of bias-free Linear layers is 0: both semantics are the same model."""
    r = vendor_semantics(str(BRAILLE), _x(), labels=np.arange(16) % 7)
    g = nir.read(str(BRAILLE))
    neurons = sum(np.asarray(g.nodes[n].v_threshold).size for n in ("lif1.lif", "lif2"))
    assert r.changed == 0 and r.trains == 16 * neurons and r.predictions_changed == 0.0
    assert r.accuracy_nir == r.accuracy_chip
    assert check_vendor_semantics(r)["verdict"] == "REPORT"


def test_biases_on_cubalif_change_spike_trains() -> None:
    """``convert_CubaLIF``: ``i_offset = ... + bias * node.w_in * I_scale * w_scale``: a bias at full strength from tick
    0 instead of through the synaptic filter, so the first ticks differ wherever the bias moves a neuron across its
    threshold. The share is measured, not assumed: it must be > 0 and the check must fail a zero budget."""
    r = vendor_semantics(_biased_braille(4.0), _x(), labels=np.arange(16) % 7)
    assert 0 < r.changed <= r.trains and set(r.per_population) == {"lif1.lif", "lif2"}
    assert check_vendor_semantics(r, budget=0.0)["verdict"] == "FAIL"
    assert check_vendor_semantics(r, budget=1.0)["verdict"] == "PASS"
    assert "spike trains" in r.summary_line() and "pp" in r.summary_line()
    assert r.options["nir"]["bias"] == "input" and r.options["chip"]["bias"] == "i_offset"


def test_markdown_section_names_the_numbers() -> None:
    from harness.vendor_semantics import markdown_section

    r = vendor_semantics(_biased_braille(4.0), _x(), labels=np.arange(16) % 7)
    md = markdown_section(r.as_dict(), check_vendor_semantics(r))
    assert f"| all | {r.trains} | {r.changed} (" in md and "report only" in md and "REPORT" in md
