"""``s2gate import`` on files, then ``s2gate map``, ``run`` and ``gate`` on every cleaned export."""
from __future__ import annotations

from pathlib import Path

import nir
import numpy as np
import pytest

from harness.cli import main
from s2common.errors import InvalidGraphError

from . import peers as P
from .test_exports import REFUSED, RAW, cleaned

DATA = Path(__file__).parent / "data"
CLEAN = [c for c in sorted(RAW) if c not in REFUSED]
IDS = [f"{f}-{k}" for f, k in CLEAN]


def test_import_lif_rockpool(tmp_path, capsys):
    """The NIR paper's lif_rockpool.nir fails nir.read's type check; after `s2gate import` it reads, and the
    repairs are printed and stored."""
    src = DATA / "lif_rockpool.nir"
    with pytest.raises(ValueError, match="type mismatch"):
        nir.read(src)
    out = tmp_path / "clean.nir"
    assert main(["import", str(src), "-o", str(out), "--framework", "rockpool"]) == 0
    printed = capsys.readouterr().out
    assert "repaired output: batch/time axes stripped from input_type (1, 1, 1) -> (1,)" in printed
    graph = nir.read(out)
    assert graph.metadata["s2gate.preset"] == "rockpool"
    # r = tau*exp(-dt/tau)/dt as Rockpool writes it (tau = 2.5 ms here) solved back for dt: the paper's 0.1 ms
    assert graph.metadata["s2gate.dt"] == pytest.approx(1e-4, rel=1e-5)
    assert len(graph.metadata["s2gate.repairs"].splitlines()) == printed.count("repaired ")


def test_import_rockpool_export_file(tmp_path, capsys):
    """A Rockpool export written by nir.write that nir.read refuses, repaired by the CLI."""
    P.require("rockpool")
    from rockpool.nn.modules.torch.nir import to_nir

    raw = tmp_path / "raw.nir"
    nir.write(raw, to_nir(P.rockpool_mlp()))
    with pytest.raises(ValueError, match="type mismatch"):
        nir.read(raw)
    out = tmp_path / "clean.nir"
    assert main(["import", str(raw), "-o", str(out), "--framework", "rockpool"]) == 0
    assert "batch/time axes stripped from the Input shape (1, 20) -> (20,)" in capsys.readouterr().out
    assert tuple(nir.read(out).nodes["input"].input_type["input"]) == (20,)


def test_import_refuses_a_sample_batch_of_eight(tmp_path, capsys):
    """A Rockpool export traced with a sample of batch 8: Input (8, 20). Stripping the 8 would make the graph
    chain, but 8 could be a layer as well as a batch: refused with one line naming the file and node."""
    P.require("rockpool")
    import torch
    from rockpool.nn.modules.torch.nir import to_nir

    src = tmp_path / "batch8.nir"
    nir.write(src, to_nir(P.rockpool_mlp(), torch.zeros(8, 20)))
    assert main(["import", str(src), "-o", str(tmp_path / "out.nir"), "--framework", "rockpool"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "[sample-batch]" in err and str(src) in err and "node 'input'" in err
    assert "(8, 20)" in err
    assert not (tmp_path / "out.nir").exists()


def test_clean_refuses_contradicting_declared_shape():
    """A hidden node declaring a shape that differs from the graph's by more than leading 1s is refused."""
    from harness.intake import clean

    g = nir.NIRGraph(nodes={"input": nir.Input(input_type=np.array([4])),
                            "fc": nir.Affine(weight=np.ones((6, 4)), bias=np.zeros(6)),
                            "lif": nir.IF(r=np.ones(6), v_threshold=np.ones(6)),
                            "output": nir.Output(output_type=np.array([6]))},
                     edges=[("input", "fc"), ("fc", "lif"), ("lif", "output")], type_check=False)
    g.nodes["lif"].input_type = {"input": np.array([2, 3])}
    with pytest.raises(InvalidGraphError) as info:
        clean(g)
    assert info.value.rule == "ambiguous-shape" and info.value.node == "lif"


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """Every cleaned export written to a file, with a 4-sample, 20-tick data set for the gate."""
    root = tmp_path_factory.mktemp("intake")
    files = {}
    for fw, kind in CLEAN:
        pytest.importorskip(fw)
        _, graph, _ = cleaned(fw, kind)
        path = root / f"{fw}-{kind}.nir"
        nir.write(path, graph)
        shape = P.CONV_IN if kind == "conv" else P.MLP_IN
        data = root / f"{fw}-{kind}.npz"
        np.savez(data, spikes=P.spikes(shape, seed=3, batch=4, ticks=20), labels=np.arange(4) % 5)
        files[(fw, kind)] = (path, data)
    return files


#: exports that are valid NIR but that py-spinnaker2's converter cannot lower (s2gate names the rule)
NOT_LOWERABLE = {("norse", "conv"): "vendor-drops-flatten-without-pool",
                 ("snntorch", "conv"): "vendor-drops-flatten-without-pool"}


@pytest.mark.parametrize("fw,kind", CLEAN, ids=IDS)
def test_map_and_run(fw, kind, exports, capsys):
    path, _ = exports[(fw, kind)]
    rule = NOT_LOWERABLE.get((fw, kind))
    assert main(["map", str(path)]) == (1 if rule else 0)
    out = capsys.readouterr().out
    assert ("result: fits and passes" in out) if rule is None else (f"error: [{rule}]" in out)
    args = ["--ticks", "20", "--batch", "2", "--density", "0.3"]
    assert main(["run", str(path), "--backend", "reference", *args]) == 0
    assert "reference: batch 2, 20 ticks" in capsys.readouterr().out
    assert main(["run", str(path), "--backend", "emulator", *args]) == (2 if rule else 0)
    captured = capsys.readouterr()
    assert ("emulator: batch 2, 20 ticks" in captured.out) if rule is None else (rule in captured.err)


@pytest.mark.parametrize("fw,kind", CLEAN, ids=IDS)
def test_gate(fw, kind, exports, capsys):
    """A tiny gate run (4 samples, 20 ticks, no QAT model): every check passes (exit 0), except on the exports
    py-spinnaker2 cannot lower, where the gate evaluates and fails them (exit 1), naming the design rule."""
    path, data = exports[(fw, kind)]
    code = main(["gate", "--model", str(path), "--qat-model", "none", "--dataset", str(data), "--no-report",
                 "--sweep", "--quiet"])
    out = capsys.readouterr().out
    assert "equivalence.ptq" in out and "memory.fits-chip" in out
    rule = NOT_LOWERABLE.get((fw, kind))
    assert code == (1 if rule else 0), out
    if rule:
        assert any(line.startswith("design-rules.ptq") and line.rstrip().endswith("FAIL") for line in out.splitlines())


from suites.hardening.make_corpus import cases as _corpus_cases  # noqa: E402

BAD_FILES = [c for c in _corpus_cases() if c.stage == "load"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from suites.hardening.make_corpus import build_corpus

    root = tmp_path_factory.mktemp("corpus")
    build_corpus(root)
    return root


@pytest.mark.slow
@pytest.mark.parametrize("case", BAD_FILES, ids=[c.name for c in BAD_FILES])
def test_import_rejects_every_bad_file_of_the_corpus(case, corpus, tmp_path, capsys):
    """Each file the loader must reject (the hardening corpus' 'load' cases, e.g. no Output node, NaN weights,
    shapes that do not chain): `s2gate import` exits 2 with one line naming the file and writes nothing."""
    out = tmp_path / "out.nir"
    assert main(["import", str(corpus / case.name), "-o", str(out)]) == 2
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("s2gate import: error: [") and case.name in lines[0], lines
    if case.rules:
        assert any(f"[{r}]" in lines[0] for r in case.rules), lines[0]
    if case.node:
        assert f"'{case.node}" in lines[0] or f"{case.node}'" in lines[0] or f" {case.node} " in lines[0], lines[0]
    assert not out.exists()
