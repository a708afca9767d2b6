"""``s2gate run``: both backends from the command line, as a user would call them."""
from __future__ import annotations

import nir
import numpy as np
import pytest

from harness.cli import main
from s2common.recording import Recording
from suites.fixtures import third_party

SCALE = 102.02  # what the NIR paper's lif_spinnaker2.py multiplies weight and threshold by


def _paper_inputs(tmp_path):
    d = np.loadtxt(third_party("lif_spinnaker2.csv"), delimiter=",")
    x = np.zeros((1, len(d) + 1, 1), dtype=bool)
    x[0, : len(d), 0] = d[:, 0] > 0
    path = tmp_path / "spikes.npy"
    np.save(path, x)
    return d, path


def test_lif_spinnaker2_py_repeated_from_the_command_line(tmp_path, capsys) -> None:
    """The paper's script (weight, threshold x 102.02; dt 1e-4; Euler; reset to 0; no delay; no scaling)."""
    d, inputs = _paper_inputs(tmp_path)
    graph = nir.read(third_party("lif_norse.nir"))
    graph.nodes["0"].weight = graph.nodes["0"].weight * SCALE
    graph.nodes["1"].v_threshold = graph.nodes["1"].v_threshold * SCALE
    model = tmp_path / "lif_x102.nir"
    nir.write(model, graph)
    out = tmp_path / "rec.h5"
    code = main(["run", str(model), "--backend", "emulator", "--dt", "1e-4", "--integrator", "euler",
                 "--reset", "to_zero", "--conn-delay", "0", "--no-scale-weights", "--vendor-cast",
                 "--input", str(inputs), "--record", "all", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    rec = Recording.load(out)
    spikes = rec.spikes("1")[0, 1:, 0]  # the documented one-tick shift: CSV row t is chip tick t + 1
    assert np.flatnonzero(spikes).tolist() == np.flatnonzero(d[:, 2]).tolist() == [460, 510, 710, 760]
    v = rec.get("1", "v")[0, 1:, 0].astype(np.float64) / SCALE
    # float32 chip arithmetic vs the CSV's float64 /102.02: at most a few float32 ulps of |v| <= 2.6
    assert np.abs(v - d[:, 1]).max() <= 2 * 2.0 ** -24 * 255.05 / (1 - 0.96) / SCALE + 1e-9
    # the per-node table shows the 4 output spikes and the 100 input spikes
    rows = {line.split()[0]: line.split() for line in printed.splitlines() if line and line.split()[0] in ("input", "1")}
    assert int(rows["input"][3]) == int((d[:, 0] > 0).sum()) and rows["1"][3] == "4"


@pytest.mark.parametrize("backend", ["reference", "emulator"])
def test_run_is_seeded_and_batch_independent(tmp_path, backend) -> None:
    """Same seed -> same recording; sample k of a batch-4 run equals the same sample run alone."""
    model = third_party("cnn_sinabs.nir")
    outs = []
    for name, batch in (("a", 4), ("b", 4)):
        out = tmp_path / f"{name}.h5"
        assert main(["run", str(model), "--backend", backend, "--batch", str(batch), "--ticks", "12",
                     "--seed", "3", "--density", "0.1", "--out", str(out)]) == 0
        outs.append(Recording.load(out))
    spiking = [n for n in outs[0].nodes if outs[0].get(n, "spikes") is not None]
    assert "12" in spiking
    for node in spiking:
        assert np.array_equal(outs[0].spikes(node), outs[1].spikes(node))
    # the same input sample alone
    x = np.random.default_rng(3).random((4, 12, 2, 34, 34)) < 0.1
    np.save(tmp_path / "one.npy", x[2:3])
    assert main(["run", str(model), "--backend", backend, "--input", str(tmp_path / "one.npy"),
                 "--out", str(tmp_path / "one.h5")]) == 0
    one = Recording.load(tmp_path / "one.h5")
    for node in spiking:
        assert np.array_equal(one.spikes(node)[0], outs[0].spikes(node)[2])
    assert int(outs[0].spikes("12").sum()) > 0  # the output layer did fire: the comparison says something


def test_reference_presets_differ_where_their_choices_do(capsys) -> None:
    """norse (Euler, reset to 0) and rockpool (exp, jump input) give different output counts on the paper's LIF."""
    counts = {}
    for preset in ("norse", "rockpool"):
        assert main(["run", str(third_party("lif_norse.nir")), "--preset", preset, "--ticks", "400",
                     "--density", "0.2", "--seed", "1"]) == 0
        line = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("1 ")][0]
        counts[preset] = int(line.split()[3])
    # Rockpool adds the raw weight (1.0 > threshold 0.1) per input spike: every input spike fires;
    # Norse adds dt/tau * w = 0.04 per spike: it needs several spikes in close succession.
    assert counts["rockpool"] > counts["norse"]


def test_bad_inputs_are_one_line_errors(tmp_path, capsys) -> None:
    x = np.zeros((1, 5, 3), dtype=bool)  # the paper's LIF takes 1 input channel
    np.save(tmp_path / "bad.npy", x)
    assert main(["run", str(third_party("lif_norse.nir")), "--input", str(tmp_path / "bad.npy")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "expected (batch, time, 1)" in err[0]
    assert main(["run", str(tmp_path / "missing.nir")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing.nir" in err[0] and "file-not-found" in err[0]
