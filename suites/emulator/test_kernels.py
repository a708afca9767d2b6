"""The int8 kernels and the fused neuron update (s2emu.kernels) against independent int64 / float32 numpy
arithmetic, and golden model == engine with each kernel mode forced."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from s2emu import ConversionOptions, Engine, GoldenModel, kernels, lower
from suites.fixtures import third_party
from suites.strategies import PATTERNS, conversion_options, nir_graphs, spike_inputs

from .bits import assert_same_bits

pytestmark = pytest.mark.skipif(not kernels.available(), reason="numba or torch._int_mm missing")


def _conv_int64(x: np.ndarray, w: np.ndarray, stride, padding, dilation) -> np.ndarray:
    """Sliding-window convolution in int64, written out: (n, C, H, W) x (O, C, kh, kw) -> (n, O, Ho, Wo)."""
    n, C, H, W = x.shape
    O, _, kh, kw = w.shape
    (sy, sx), (py, px), (dy, dx) = stride, padding, dilation
    xp = np.zeros((n, C, H + 2 * py, W + 2 * px), np.int64)
    xp[:, :, py:py + H, px:px + W] = x
    ho = (H + 2 * py - dy * (kh - 1) - 1) // sy + 1
    wo = (W + 2 * px - dx * (kw - 1) - 1) // sx + 1
    out = np.zeros((n, O, ho, wo), np.int64)
    for i in range(kh):
        for j in range(kw):
            patch = xp[:, :, i * dy:i * dy + sy * (ho - 1) + 1:sy, j * dx:j * dx + sx * (wo - 1) + 1:sx]
            out += np.einsum("nchw,oc->nohw", patch, w[:, :, i, j].astype(np.int64))
    return out


@pytest.mark.parametrize("m,k,n", [(1, 1, 1), (1, 1, 2), (2, 1, 2), (1, 7, 1), (3, 18, 11), (17, 144, 32)])
def test_int_mm_is_the_exact_integer_product_even_for_size_one_axes(m: int, k: int, n: int) -> None:
    # torch reports a (1, 2) tensor with strides (1, 1) as contiguous; torch._int_mm then reads it
    # with the wrong leading dimension (garbage sums): int_mm must copy such operands first
    rng = np.random.default_rng(m * 100 + k * 10 + n)
    a = rng.integers(-127, 128, (m, k))
    b = rng.integers(-127, 128, (k, n))
    ta = torch.from_numpy(a.astype(np.int8)).as_strided((m, k), (1, 1) if m == 1 else (k, 1))
    tb = torch.from_numpy(b.astype(np.int8).copy()).as_strided((k, n), (1, 1) if k == 1 else (n, 1))
    assert np.array_equal(kernels.int_mm(ta, tb).numpy(), a @ b)


@pytest.mark.parametrize("stride,padding,dilation", [((1, 1), (1, 1), (1, 1)), ((2, 1), (0, 2), (1, 1)),
                                                     ((1, 2), (1, 0), (2, 1))])
def test_im2col_product_is_the_integer_convolution(stride, padding, dilation) -> None:
    rng = np.random.default_rng(7)
    x = (rng.random((3, 4, 9, 8)) < 0.3).astype(np.int8) * rng.integers(1, 5, (3, 4, 9, 8)).astype(np.int8)
    w = rng.integers(-127, 128, (5, 4, 3, 2))
    expected = _conv_int64(x, w, stride, padding, dilation)
    ho, wo = expected.shape[2:]
    cols = kernels.im2col(torch.from_numpy(x), (3, 2), stride, padding, dilation, (ho, wo))
    got = kernels.int_mm(torch.from_numpy(w.reshape(5, -1).astype(np.int8)), cols).view(5, 3, ho, wo)
    assert np.array_equal(got.permute(1, 0, 2, 3).numpy(), expected)


def test_sum_pool_and_pool_index_floor_the_last_rows() -> None:
    rng = np.random.default_rng(3)
    x = (rng.random((2, 3, 7, 6)) < 0.5).astype(np.int8)          # 7 rows: the last is dropped by 2x2 floor pooling
    expected = x[:, :, :6, :6].astype(np.int64).reshape(2, 3, 3, 2, 3, 2).sum(axis=(3, 5))
    assert np.array_equal(kernels.sum_pool(torch.from_numpy(x), (2, 2)).numpy(), expected)
    idx = kernels.pool_index(3, 7, 6, 2, 2)
    # neuron (c=1, y=3, x=5) -> pooled (1, 1, 2) = 1*9 + 1*3 + 2; row y=6 is dropped
    assert idx[1 * 42 + 3 * 6 + 5] == 1 * 9 + 1 * 3 + 2 and idx[2 * 42 + 6 * 6 + 0] == -1


@pytest.mark.parametrize("C,H,W,ph,pw", [(3, 7, 6, 2, 2), (2, 9, 10, 3, 2), (2, 4, 8, 1, 2), (3, 7, 6, 2, 3),
                                        (2, 5, 7, 2, 2)])
def test_update_writes_the_sum_pooled_counts(C: int, H: int, W: int, ph: int, pw: int) -> None:
    # the byte-pair pass (pw = 2, W even) and the sparse pass (else) against numpy's floor sum pooling
    rng = np.random.default_rng(C * 1000 + H * 100 + W * 10 + ph)
    B, L, N = 2, 5, C * H * W
    e = rng.integers(0, 3, (1, L * B, N)).astype(np.int32)    # thr 1.5: v > thr whenever 2 arrives
    e[0, B] = 0                                              # one silent tick (sample 0, tick 1)
    thr = np.full(1, 1.5, np.float32)
    zero = np.zeros(1, np.float32)
    v = np.zeros((B, N), np.float32)
    spikes = np.zeros((B, L, N), bool)
    count = np.zeros((B, L), np.int32)
    hp, wp = H // ph, W // pw
    pooled = np.full((B, L, C * hp * wp), 99, np.int8)
    kernels.neuron_update(e, v, zero, thr, zero, zero, False, spikes, count, 0, None, pooled, (C, H, W, ph, pw))
    m = spikes.reshape(B, L, C, H, W)[:, :, :, :hp * ph, :wp * pw].astype(np.int64)
    expected = m.reshape(B, L, C, hp, ph, wp, pw).sum(axis=(4, 6)).reshape(B, L, -1)
    assert spikes.any() and count[0, 1] == 0
    assert np.array_equal(pooled, expected)


@pytest.mark.parametrize("uniform", [True, False])
@pytest.mark.parametrize("subtract", [True, False])
def test_fused_update_is_the_golden_float32_order(uniform: bool, subtract: bool) -> None:
    rng = np.random.default_rng(11)
    B, L, G, S = 3, 4, 2, 5
    N = G * S
    e = rng.integers(-60, 60, (G, L * B, S)).astype(np.int32)
    size = 1 if uniform else N
    alpha = rng.uniform(0.5, 1.0, size).astype(np.float32)
    thr = rng.uniform(5, 40, size).astype(np.float32)
    off = rng.uniform(-1, 1, size).astype(np.float32)
    vr = rng.uniform(-2, 2, size).astype(np.float32)
    v = rng.uniform(-5, 5, (B, N)).astype(np.float32)
    v_ref = v.copy()
    spikes = np.zeros((B, L, N), bool)
    count = np.zeros((B, L), np.int32)
    v_rec = np.zeros((B, L, N), np.float32)
    pooled = np.zeros((B, L, G), np.int8)             # map (G, 1, S) pooled by (1, S): one count per channel
    kernels.neuron_update(e, v, alpha, thr, off, vr, subtract, spikes, count, 0, v_rec, pooled, (G, 1, S, 1, S))
    F = np.float32
    for b, j, n in itertools.product(range(B), range(L), range(N)):
        p = 0 if uniform else n
        x = F(F(v_ref[b, n] * alpha[p]) + F(int(e[n // S, j * B + b, n % S])))
        x = F(x + off[p])
        fired = bool(x > thr[p])
        if fired:
            x = F(x - thr[p]) if subtract else vr[p]
        v_ref[b, n] = x
        assert spikes[b, j, n] == fired and v_rec[b, j, n].tobytes() == x.tobytes(), (b, j, n)
    assert np.array_equal(count, spikes.sum(axis=2))
    assert np.array_equal(pooled, spikes.reshape(B, L, G, S).sum(axis=3))
    assert np.array_equal(v.view(np.uint32), v_ref.view(np.uint32))


def test_int_eligibility() -> None:
    w = np.zeros((2, 3), np.float32)
    assert kernels.int_eligible("dense", w, None, 1)
    assert not kernels.int_eligible("dense", w + 128, None, 1)          # beyond int8
    assert not kernels.int_eligible("dense", w + 0.5, None, 1)          # not an integer code
    assert not kernels.int_eligible("conv2d", np.zeros((2, 2, 3, 3)), None, 2)   # groups
    assert not kernels.int_eligible("dense", w, (16, 8), 1)              # 128 spikes per window overflow int8
    assert not kernels.int_eligible("pool", None, (2, 2), 1)


@pytest.mark.parametrize("fixture,ticks,batch,density", [("braille_noDelay_noBias_subtract.nir", 60, 2, 0.15),
                                                         ("cnn_sinabs.nir", 5, 2, 0.15)])
def test_every_kernel_mode_equals_the_golden_model(fixture: str, ticks: int, batch: int, density: float) -> None:
    net = lower(third_party(fixture), ConversionOptions(scale_weights=True))
    x = np.random.default_rng(4).random((batch, ticks) + net.populations[net.input_name].shape) < density
    gold = GoldenModel(net).run(x, record="all")
    for mode in ("int", "float", "auto"):
        for threads in (1, 2):
            assert_same_bits(Engine(net, kernels=mode, threads=threads).run(x, record="all"), gold)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_golden_equals_engine_with_int_kernels_forced(data) -> None:
    graph = data.draw(nir_graphs(patterns=PATTERNS, max_neurons=16))
    options = data.draw(conversion_options(graph))
    net = lower(graph, options)
    x = data.draw(spike_inputs(net.populations[net.input_name].shape))
    gold = GoldenModel(net).run(x, record="all")
    for mode in ("int", "float"):
        assert_same_bits(Engine(net, kernels=mode).run(x, record="all"), gold)
        assert_same_bits(Engine(net, kernels=mode, mode="ticks").run(x, record="all"), gold)


def test_an_unknown_kernel_mode_is_refused() -> None:
    net = lower(third_party("braille_noDelay_noBias_subtract.nir"), ConversionOptions(scale_weights=True))
    with pytest.raises(ValueError, match="kernels must be one of"):
        Engine(net, kernels="gpu")
