"""The vendor pieces through the CLI: ``--profile``, ``s2gate compare --graph`` voltages, the gate's vendor-semantics
check and report section. Expected values come from the profile files and the converter, not from s2gate."""
from __future__ import annotations

from pathlib import Path

import nir
import numpy as np
import pytest

from ..fixtures import REPO

TP = REPO.parent / "shared" / "fixtures" / "third_party"
BRAILLE = TP / "braille_noDelay_noBias_subtract.nir"
F = np.float32


def _cli(argv, capsys):
    from harness.cli import main

    capsys.readouterr()
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return rc, out, err


def test_map_profile_applies_the_notebooks_atoms(capsys) -> None:
    """``02_cnn/s2_apply.ipynb``: ``max_atoms_per_core = {"3": 256, "6": 128, "10": 16}``."""
    rc, out, _ = _cli(["map", REPO / "harness" / "bundled" / "cnn_sinabs.nir", "--profile", "nir-paper-cnn"], capsys)
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.split()[:1] in (["3"], ["6"], ["10"])}
    assert rc == 0 and rows["3"][3] == "256" and rows["6"][3] == "128" and rows["10"][3] == "16"


def test_run_profile_sets_the_emulators_options(tmp_path: Path, capsys) -> None:
    """``03_rnn/s2_apply.py``: dt 0.0001, FORWARD, SUBTRACT; ``converter-defaults``: ``dt: float = 1.0``."""
    from s2common.recording import Recording

    out = tmp_path / "r.h5"
    rc, text, _ = _cli(["run", BRAILLE, "--backend", "emulator", "--profile", "nir-paper-braille", "--ticks", "5",
                        "--out", out], capsys)
    opts = Recording.load(out).meta["options"]
    assert rc == 0 and (opts["dt"], opts["integrator"], opts["reset"], opts["scale_weights"]) == \
        (1e-4, "euler", "subtract", True)
    with pytest.raises(SystemExit):  # argparse: invalid choice, names the profiles
        _cli(["run", BRAILLE, "--backend", "emulator", "--profile", "bogus"], capsys)
    assert "nir-paper-cnn" in capsys.readouterr().err


def test_compare_graph_checks_voltages_in_nir_units(tmp_path: Path, capsys) -> None:
    from harness.quantize import quantize_ptq
    from reference import simulate
    from s2emu import ConversionOptions, Engine, lower

    q = quantize_ptq(nir.read(str(TP / "lif_norse.nir")), percentile=100.0)
    q.write(tmp_path / "q.nir")
    net = lower(q.graph, ConversionOptions(scale_weights=False))
    x = np.random.default_rng(0).random((2, 50, 1)) < 0.3
    Engine(net).run(x, record="all").save(tmp_path / "b.h5")
    simulate(q.graph, x, preset="spinnaker2", record=["1"]).save(tmp_path / "a.h5")
    rc, out, _ = _cli(["compare", tmp_path / "a.h5", tmp_path / "b.h5", "--graph", tmp_path / "q.nir"], capsys)
    assert rc == 0 and "[float32-rounding tier]" in out and "within the float32 rounding bound" in out


def _biased_braille(path: Path) -> None:
    g = nir.read(str(BRAILLE))
    rng = np.random.default_rng(0)
    nodes = dict(g.nodes)
    for name in ("fc1", "fc2"):
        w = np.asarray(nodes[name].weight, F)
        nodes[name] = nir.Affine(weight=w, bias=(rng.normal(0, 1, w.shape[0]) * np.abs(w).mean() * 4).astype(F))
    nir.write(str(path), nir.NIRGraph(nodes=nodes, edges=list(g.edges), type_check=False))


@pytest.mark.slow
def test_gate_on_a_biased_cubalif_graph(tmp_path: Path, capsys) -> None:
    """The converter folds the biases into ``i_offset`` (``convert_CubaLIF``) and the reference's ``spinnaker2``
    preset does too, so the equivalence check is 100 % consistent; the vendor-semantics check reports the share
    of float-model spike trains the folding changes (> 0 with biases), report only by default."""
    model = tmp_path / "b.nir"
    _biased_braille(model)
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "d.npz", spikes=(rng.random((16, 40, 12)) < 0.15).astype(np.uint8), labels=np.arange(16) % 7)
    rc, out, _ = _cli(["gate", "--model", model, "--dataset", tmp_path / "d.npz", "--qat-model", "none", "--sweep",
                       "--quiet", "--report", tmp_path / "rep"], capsys)
    eq = next(line for line in out.splitlines() if line.startswith("equivalence.ptq"))
    vs = next(line for line in out.splitlines() if line.startswith("vendor-semantics"))
    assert "100.00 % consistent" in eq and "PASS" in eq
    assert "report only" in vs and "PASS" in vs and not vs.split()[1] == "0"
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "Vendor semantics (the converter alone" in md
    rc2, out2, _ = _cli(["gate", "--model", model, "--dataset", tmp_path / "d.npz", "--qat-model", "none", "--sweep",
                         "--quiet", "--no-report", "--vendor-semantics-budget", "0"], capsys)
    assert rc2 == 1 and "FAILED vendor-semantics" in out2
