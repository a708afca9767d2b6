"""Memory account: int8 vs float32 weight bytes per layer, parameters/state from the chip model."""
from __future__ import annotations

import pytest

from harness.quantize import memory_account, quantize_ptq
from suites.fixtures import third_party

# cnn_sinabs.nir weight shapes (from the NIR paper's CNN: Conv 16x2x5x5, 16x16x3x3, 8x16x3x3, Affine 256x128, 10x256)
CNN_WEIGHTS = {"1": 16 * 2 * 5 * 5, "3": 16 * 16 * 3 * 3, "6": 8 * 16 * 3 * 3, "10": 256 * 128, "12": 10 * 256}


@pytest.fixture(scope="module")
def cnn():
    import nir

    return nir.read(str(third_party("cnn_sinabs.nir")))


def test_int8_weight_bytes_at_most_a_quarter_of_float32_per_layer(cnn):
    acct = memory_account(quantize_ptq(cnn).graph)
    rows = {r.layer: r for r in acct.rows}
    assert {k: rows[k].weights for k in CNN_WEIGHTS} == CNN_WEIGHTS
    for r in acct.rows:
        if r.weights:
            assert r.weight_bytes_float32 == 4 * r.weights
            assert r.weight_bytes_int8 <= 0.25 * r.weight_bytes_float32
    total = sum(CNN_WEIGHTS.values())  # 39584 weights
    assert acct.weight_bytes_float32 == 4 * total and acct.weight_bytes_int8 == total
    assert acct.weight_reduction_percent == pytest.approx(75.0)


def test_total_reduction_counts_params_and_state_from_the_chip_model(cnn):
    pytest.importorskip("s2emu.chip")
    acct = memory_account(quantize_ptq(cnn).graph)
    assert acct.source == "s2emu.chip", acct.note
    rows = {r.layer: r for r in acct.rows}
    # the chip model keeps 4 float32 parameters (threshold, alpha_decay, i_offset, v_reset) and 1 float32
    # voltage per neuron for lif_conv2d / lif_no_delay (s2emu/chip.py); layer '1' has 16*16*16 = 4096 neurons
    assert rows["1"].param_bytes == 4 * 4 * 4096 and rows["1"].state_bytes == 4 * 4096
    other = sum(r.param_bytes + r.state_bytes for r in acct.rows)
    f32 = 4 * 39584 + other
    i8 = 39584 + other
    assert acct.total_float32 == f32 and acct.total_int8 == i8
    assert acct.total_reduction_percent == pytest.approx(100 * (1 - i8 / f32))
    assert 0 < acct.total_reduction_percent < 75  # params/state do not shrink
    assert "reduction" in acct.summary_line()


def test_weights_only_account_without_the_chip_model(cnn):
    acct = memory_account(cnn, use_chip_model=False)
    assert acct.source == "graph"
    assert all(r.param_bytes is None for r in acct.rows)
    assert acct.total_reduction_percent == pytest.approx(75.0)
    # layer order follows the graph
    assert [r.layer for r in acct.rows] == ["1", "3", "6", "10", "12"]


def test_recurrent_weights_count_once_under_their_population():
    import nir

    g = nir.read(str(third_party("braille_noDelay_noBias_subtract.nir")))
    acct = memory_account(g, use_chip_model=False)
    rows = {r.layer: r.weights for r in acct.rows}
    # fc1 (40x12) + recurrent w_rec (40x40) feed lif1.lif; fc2 (7x40) feeds lif2
    assert rows == {"lif1.lif": 40 * 12 + 40 * 40, "lif2": 7 * 40}


def test_account_of_a_lowered_network_matches_the_graph_account(cnn):
    s2emu = pytest.importorskip("s2emu")
    pytest.importorskip("s2emu.chip")
    q = quantize_ptq(cnn).graph
    net = s2emu.lower(q, s2emu.ConversionOptions(scale_weights=False))
    a, b = memory_account(net), memory_account(q)
    assert [(r.layer, r.weights, r.param_bytes, r.state_bytes) for r in a.rows] == \
           [(r.layer, r.weights, r.param_bytes, r.state_bytes) for r in b.rows]
