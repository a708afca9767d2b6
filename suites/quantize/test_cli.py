"""``s2gate quantize``: table, memory line, atomic output."""
from __future__ import annotations

import shutil

import nir
import numpy as np

from harness.cli import main
from harness.quantize import quant_meta
from suites.fixtures import third_party


def test_quantize_cli_prints_table_and_writes_int_codes(tmp_path, capsys):
    src = third_party("cnn_sinabs.nir")
    out = tmp_path / "q.nir"
    assert main(["quantize", str(src), "--percentile", "99", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    g = nir.read(str(src))
    # lambda of layer 0 at p = 99, computed here from its definition
    lam0 = 127 / np.percentile(np.abs(g.nodes["0"].weight.astype(np.float64)), 99)
    assert f"{lam0:.6g}" in text
    for col in ("lambda_s", "clipped %", "max rounding err", "bytes f32", "bytes int8"):
        assert col in text
    assert "131072" in text and "32768" in text  # Affine 256x128: float32 vs int8 bytes
    assert "reduction 75.00 %" in text  # 4 B -> 1 B per weight (the labelled memory line of issue 13a)
    q = nir.read(str(out))
    w = q.nodes["9"].weight
    assert np.all(w == np.rint(w)) and np.abs(w).max() == 127
    meta = quant_meta(q.nodes["9"])
    assert meta["percentile"] == 99.0 and meta["flow"] == "ptq" and meta["rounding"] == "nearest"


def test_quantize_cli_truncate_and_per_channel(tmp_path, capsys):
    src = third_party("cnn_sinabs.nir")
    assert main(["quantize", str(src), "-p", "99", "--rounding", "truncate", "-o", str(tmp_path / "t.nir")]) == 0
    assert "wrapped" in capsys.readouterr().out
    assert main(["quantize", str(src), "--per-channel", "-o", str(tmp_path / "c.nir")]) == 0
    assert "per channel" in capsys.readouterr().out
    assert quant_meta(nir.read(str(tmp_path / "c.nir")).nodes["0"])["per_channel"] is True


def test_failure_leaves_existing_output_untouched(tmp_path, capsys):
    src = third_party("cnn_sinabs.nir")
    out = tmp_path / "q.nir"
    shutil.copy(src, out)
    before = out.read_bytes()
    assert main(["quantize", str(src), "--percentile", "0", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "percentile" in err and "Traceback" not in err
    assert out.read_bytes() == before
    # a graph with a NaN weight: one-line error naming the node, output untouched
    g = nir.read(str(src))
    g.nodes["5"].weight[0, 0, 0, 0] = np.nan
    bad = tmp_path / "bad.nir"
    nir.write(str(bad), g)
    assert main(["quantize", str(bad), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "'5'" in err and "NaN" in err
    assert out.read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]
    assert main(["quantize", str(tmp_path / "missing.nir"), "-o", str(out)]) == 2


def test_quantize_cli_calibrate(tmp_path, capsys):
    """``--calibrate CAL.npz``: percentiles chosen on the file's samples, recorded in the output's metadata."""
    from suites.quantize.test_calibrate import _one_layer, _weights

    src = tmp_path / "one.nir"
    nir.write(str(src), _one_layer(_weights(), np.zeros(2)))
    x = (np.random.default_rng(0).random((6, 10, 8)) < 0.3)
    x[:, :, 0] = False  # the outlier weight's input is silent: clipping it (p < 100) is free
    np.savez(tmp_path / "cal.npz", spikes=x)
    out = tmp_path / "q.nir"
    assert main(["quantize", str(src), "--calibrate", str(tmp_path / "cal.npz"), "--calibrate-preset", "nir",
                 "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "calibrated on 6 samples x 10 ticks" in text and "objective p=100" in text
    meta = quant_meta(nir.read(str(out)).nodes["fc"])
    assert meta["percentile"] < 100.0
    assert quant_meta(nir.read(str(out)))["calibrated"] is True
    # options that need calibration data are refused without it; a bad file is one line, exit 2
    assert main(["quantize", str(src), "--bias-correction", "-o", str(out)]) == 2
    assert "--calibrate" in capsys.readouterr().err
    assert main(["quantize", str(src), "--calibrate", str(tmp_path / "none.npz"), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "bad-calibration" in err and "Traceback" not in err
