"""P-SNN semantics, training smoke run, NIR export round trip."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.models.export import NODE_ORDER, export_psnn, write_graph
from harness.models.neurons import delay_one_tick, if_sequence
from harness.models.pipeline import load_psnn
from harness.models.psnn import PSNN, predict
from harness.models.train import TrainConfig, counts_all, train


def test_if_neuron_subtracts_and_is_strict():
    # constant input 0.5, theta 1: v = .5, 1.0 (not > 1), 1.5 -> spike, .5 after reset, 1.0, 1.5 -> spike ...
    cur = torch.full((1, 7, 1), 0.5)
    s = if_sequence(cur, 1.0)
    assert s[0, :, 0].tolist() == [0, 0, 1, 0, 1, 0, 1]
    # a big input spikes once per tick only, the rest stays in v (reset by subtraction)
    cur = torch.tensor([[[3.5], [0.0], [0.0], [0.0]]])
    assert if_sequence(cur, 1.0)[0, :, 0].tolist() == [1, 1, 1, 0]


def test_delay_one_tick():
    x = torch.arange(1, 5, dtype=torch.float32).reshape(1, 4, 1)
    assert delay_one_tick(x)[0, :, 0].tolist() == [0, 1, 2, 3]


def test_shapes():
    m = PSNN()
    x = torch.zeros(3, 6, 2, 32, 32)
    counts, spikes = m(x, return_all=True)
    assert counts.shape == (3, 11)
    assert [tuple(s.shape) for s in spikes] == [(3, 6, 8, 32, 32), (3, 6, 16, 16, 16), (3, 6, 128), (3, 6, 11)]


def test_one_tick_of_latency_per_projection():
    """A single input spike at tick 0 with all-positive weights reaches layer k at tick k."""
    m = PSNN()
    with torch.no_grad():
        for layer in m.weight_layers:
            layer.weight.fill_(5.0)
    x = torch.zeros(1, 8, 2, 32, 32)
    x[0, 0, 0, 10, 10] = 1
    _, spikes = m(x, return_all=True)
    first = [int(torch.nonzero(s[0].flatten(1).sum(1))[0]) for s in spikes]
    assert first == [1, 2, 3, 4]


def test_predict_ties_go_to_lowest_index():
    c = torch.tensor([[0, 3, 3, 1.0], [2, 2, 2, 2], [0, 0, 0, 1]])
    assert predict(c).tolist() == [1, 0, 3]


def _tiny_data(n=22, T=8, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 11
    x = (rng.random((n, T, 2, 32, 32)) < 0.05).astype(np.uint8)
    # a class-dependent stripe so the loss can go down
    for i, lab in enumerate(y):
        x[i, :, 0, 2 * lab:2 * lab + 2, :] = 1
    return x, y.astype(np.int64)


def test_training_smoke_run_reduces_the_loss():
    x, y = _tiny_data(n=22, T=8)
    torch.manual_seed(0)
    m = PSNN()
    with torch.no_grad():
        for layer in m.weight_layers:
            layer.weight.mul_(2.0)  # some output spikes from the start: a short run has gradients
    w0 = m.conv1.weight.detach().clone()
    hist = train(m, x, y, config=TrainConfig(epochs=3, batch_size=22, lr=1e-2, progress=False))
    assert len(hist) == 3 and all(np.isfinite(h.loss) for h in hist)
    assert hist[-1].loss < hist[0].loss
    assert not torch.equal(w0, m.conv1.weight)


def test_export_round_trip(tmp_path):
    import nir

    torch.manual_seed(1)
    m = PSNN()
    g = export_psnn(m, T=20, dt=0.05, seed=3, command="s2gate train --model psnn")
    path = tmp_path / "m.nir"
    write_graph(g, path)
    r = nir.read(str(path))
    assert set(r.nodes) == set(NODE_ORDER)
    assert sorted(r.edges) == sorted(zip(NODE_ORDER[:-1], NODE_ORDER[1:]))
    types = {k: type(v).__name__ for k, v in r.nodes.items()}
    assert types["conv1"] == "Conv2d" and types["pool1"] == "SumPool2d" and types["flatten"] == "Flatten"
    assert types["fc1"] == "Affine" and types["if4"] == "IF"
    assert int(r.nodes["flatten"].start_dim) == 0
    np.testing.assert_array_equal(r.nodes["fc1"].weight, m.fc1.weight.detach().numpy())
    np.testing.assert_array_equal(r.nodes["conv2"].weight, m.conv2.weight.detach().numpy())
    assert np.all(r.nodes["conv1"].bias == 0) and np.all(r.nodes["if2"].v_reset == 0)
    assert np.all(r.nodes["if3"].r == 1) and np.all(r.nodes["if3"].v_threshold == 1.0)
    meta = r.metadata
    assert _s(meta["s2gate.preset"]) == "spinnaker2"
    assert int(meta["s2gate.T"]) == 20 and float(meta["s2gate.dt"]) == 0.05
    # rebuilding the torch model from the file gives the same outputs
    m2 = load_psnn(path)
    x, _ = _tiny_data(n=4, T=10)
    assert np.array_equal(counts_all(m, x), counts_all(m2, x))


def _s(v):
    v = v.item() if hasattr(v, "item") else v
    return v.decode() if isinstance(v, bytes) else str(v)


def test_exported_graph_reproduces_torch_exactly_on_random_weights():
    """Independent simulator (reference, spinnaker2 preset) vs the torch forward, spike for spike."""
    reference = pytest.importorskip("reference")
    torch.manual_seed(0)
    m = PSNN()
    with torch.no_grad():
        for layer in m.weight_layers:
            layer.weight.mul_(3.0)  # make every layer busy
    x = (np.random.default_rng(0).random((4, 12, 2, 32, 32)) < 0.15).astype(np.uint8)
    with torch.no_grad():
        counts, spikes = m(torch.from_numpy(x).float(), return_all=True)
    rec = reference.simulate(export_psnn(m, 12, 0.05, 0), x.astype(bool), preset="spinnaker2", dtype=np.float32)
    for name, s in zip(("if1", "if2", "if3", "if4"), spikes):
        ref = rec.get(name, "spikes")
        assert ref.shape == tuple(s.shape)
        mismatch = np.mean(ref != s.numpy().astype(bool))
        assert mismatch < 1e-4, (name, mismatch)
    assert s.numpy().mean() > 0.05  # the output layer is active, so the comparison means something


@pytest.mark.slow
def test_cli_train_writes_nir_and_prints_a_table(tmp_path, monkeypatch, capsys):
    """``s2gate train`` end to end on a tiny stand-in (a few steps)."""
    import nir

    from harness.cli import main

    monkeypatch.setenv("S2GATE_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "p.nir"
    code = main(["train", "--model", "psnn", "--dataset", "stand-in", "--epochs", "1", "--n-train", "11",
                 "--n-test", "11", "--T", "8", "--batch-size", "11", "--out", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "epoch" in text and "loss" in text and str(out) in text
    g = nir.read(str(out))
    assert int(g.metadata["s2gate.T"]) == 8
    assert np.asarray(g.nodes["conv1"].weight).shape == (8, 2, 3, 3)


def test_cli_train_dvsgesture_without_data_is_one_error(tmp_path, capsys, monkeypatch):
    from harness.cli import main

    monkeypatch.delenv("S2GATE_DVSGESTURE_ROOT", raising=False)
    code = main(["train", "--model", "psnn", "--dataset", "dvsgesture", "--data-root", str(tmp_path),
                 "--out", str(tmp_path / "x.nir")])
    assert code == 2
    err = capsys.readouterr().err
    assert "ibmGestureTrain.tar.gz" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.nir").exists()
