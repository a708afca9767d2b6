"""Test vectors and the ``s2gate vectors`` / ``s2gate compare`` commands."""
from __future__ import annotations

import json

import nir
import numpy as np
import pytest

from harness.cli import main
from s2common.errors import InputDataError, QuantizationError
from s2common.recording import Recording

pytest.importorskip("s2emu")
pytest.importorskip("harness.quantize")

from harness.vectors import FILES, load_vectors, sha256_file, write_vectors  # noqa: E402


@pytest.fixture(scope="module")
def model_path(tmp_path_factory, tiny_graph):
    path = tmp_path_factory.mktemp("model") / "tiny.nir"
    nir.write(path, tiny_graph)
    return path


@pytest.fixture(scope="module")
def vector_dir(tmp_path_factory, model_path):
    out = tmp_path_factory.mktemp("vec") / "set"
    code = main(["vectors", str(model_path), "--out", str(out), "--batch", "2", "--ticks", "15", "--seed", "7",
                 "--density", "0.2"])
    assert code == 0
    return out


def test_vector_set_files_and_manifest(vector_dir):
    names = sorted(p.name for p in vector_dir.iterdir())
    assert names == ["expected.h5", "inputs.h5", "model.nir", "vectors.json"]
    man = json.loads((vector_dir / "vectors.json").read_text())
    assert (man["seed"], man["batch"], man["ticks"], man["density"]) == (7, 2, 15, 0.2)
    assert man["options"]["scale_weights"] is False
    for key, name in FILES.items():
        assert man["files"][key]["sha256"] == sha256_file(vector_dir / name)
    # inputs.h5 is NIR's data format: nir.read_data reads the Input's TimeGriddedData
    data = nir.read_data(str(vector_dir / "inputs.h5"))
    obs = data.nodes["input"].observables["spikes"]
    assert obs.data.shape == (2, 15, 2 * 6 * 6)
    expected_inputs = np.random.default_rng(7).random((2, 15, 2, 6, 6)) < 0.2
    np.testing.assert_array_equal(obs.data.reshape(2, 15, 2, 6, 6).astype(bool), expected_inputs)


def test_vector_set_loads_and_reproduces(vector_dir):
    from harness.run import EmulatorBackend
    from harness.compare import compare_recordings
    from harness.quantize import is_quantized

    vs = load_vectors(vector_dir)
    assert is_quantized(vs.graph)
    again = EmulatorBackend().run(vs.graph, vs.inputs, record="all")
    assert compare_recordings(vs.expected, again).ok


def test_tampered_vector_set_is_refused(tmp_path, vector_dir):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(vector_dir, copy)
    rec = Recording.load(copy / "expected.h5")
    rec.save(copy / "expected.h5")  # same content, new bytes (gzip/hdf5 metadata) or not: digest decides
    if sha256_file(copy / "expected.h5") == sha256_file(vector_dir / "expected.h5"):
        (copy / "expected.h5").write_bytes((copy / "expected.h5").read_bytes() + b"\0")
    with pytest.raises(InputDataError, match="sha256"):
        load_vectors(copy)
    (copy / "vectors.json").unlink()
    with pytest.raises(InputDataError, match="no vectors.json"):
        load_vectors(copy)


def test_compare_identical_exits_0(vector_dir, capsys):
    exp = str(vector_dir / "expected.h5")
    assert main(["compare", exp, exp]) == 0
    out = capsys.readouterr().out
    assert "identical" in out and "lif" in out and "mismatches" in out


def test_compare_flipped_spike_exits_1_and_names_the_place(tmp_path, vector_dir, capsys):
    rec = Recording.load(vector_dir / "expected.h5")
    rec.data["if1"]["spikes"][1, 9, 2, 1, 3] ^= True  # flat 2*16 + 1*4 + 3 = 39
    bad = tmp_path / "board.h5"
    rec.save(bad)
    code = main(["compare", str(vector_dir / "expected.h5"), str(bad), "--json", str(tmp_path / "c.json")])
    assert code == 1
    out = capsys.readouterr().out
    assert "first divergence: layer 'if1' neuron 39 (c=2, y=1, x=3) tick 9 sample 1: spikes" in out
    doc = json.loads((tmp_path / "c.json").read_text())
    assert doc["first_divergence"]["tick"] == 9 and doc["ok"] is False


def test_compare_with_time_shift(tmp_path, vector_dir):
    rec = Recording.load(vector_dir / "expected.h5")
    late = Recording(dt=rec.dt, meta=rec.meta)
    for n, d in rec.data.items():
        for o, a in d.items():
            late.add(n, o, np.concatenate([np.zeros_like(a[:, :1]), a], axis=1))
    path = tmp_path / "late.h5"
    late.save(path)
    exp = str(vector_dir / "expected.h5")
    assert main(["compare", exp, str(path)]) == 1
    assert main(["compare", exp, str(path), "--time-shift", "1"]) == 0


def test_compare_bad_files_exit_2(tmp_path, vector_dir, capsys):
    junk = tmp_path / "junk.h5"
    junk.write_text("not hdf5")
    exp = str(vector_dir / "expected.h5")
    assert main(["compare", exp, str(junk)]) == 2
    assert main(["compare", exp, str(tmp_path / "missing.h5")]) == 2
    other = Recording(dt=1e-4)
    other.add("lif", "spikes", np.zeros((5, 15, 5), bool))  # other batch size
    other.save(tmp_path / "other.h5")
    assert main(["compare", exp, str(tmp_path / "other.h5")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 3 and "batch sizes differ" in err


def test_vectors_from_a_given_input_file_and_a_quantized_model(tmp_path, vector_dir):
    x = np.random.default_rng(3).random((1, 10, 2, 6, 6)) < 0.3
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "given"
    assert main(["vectors", str(vector_dir / "model.nir"), "--quantized", "--input", str(tmp_path / "x.npy"),
                 "--out", str(out)]) == 0
    vs = load_vectors(out)
    np.testing.assert_array_equal(vs.inputs, x)
    assert vs.manifest["inputs"] == "given" and vs.manifest["seed"] is None


def test_quantized_flag_on_a_float_model_is_an_error(model_path, tmp_path):
    with pytest.raises(QuantizationError, match="not a quantized graph"):
        write_vectors(model_path, tmp_path / "v", quantized=True)
    assert main(["vectors", str(model_path), "--quantized", "--out", str(tmp_path / "v")]) == 2
    assert not (tmp_path / "v" / "vectors.json").exists()


def test_compare_reference_against_emulator_with_the_ambiguity_rule(tmp_path, vector_dir, capsys):
    from harness.run import ReferenceBackend

    vs = load_vectors(vector_dir)
    ReferenceBackend().run(vs.graph, vs.inputs, record="all").save(tmp_path / "ref.h5")
    model = str(vector_dir / "model.nir")
    assert main(["compare", str(tmp_path / "ref.h5"), str(vector_dir / "expected.h5"), "--graph", model]) == 0
    out = capsys.readouterr().out
    assert "spike trains" in out and "identical predictions ('lif'): 100.00 %" in out
    emu = Recording.load(vector_dir / "expected.h5")
    emu.data["lif"]["spikes"][0, 4, 2] ^= True
    emu.save(tmp_path / "emu.h5")
    assert main(["compare", str(tmp_path / "ref.h5"), str(tmp_path / "emu.h5"), "--graph", model]) == 1
    assert "first unexplained divergence: layer 'lif' neuron 2 tick 4 sample 0" in capsys.readouterr().out
