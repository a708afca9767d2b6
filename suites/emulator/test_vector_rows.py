"""Vector synapse rows built from conv geometry (``s2emu.vector_rows``) and their fused delivery.

Oracles: torch's own float64 ``conv2d`` / ``avg_pool2d(divisor_override=1)`` applied to one-hot
inputs (exact for these small integers: the dense kernel the rows replace), the plain
delivery + :func:`s2emu.kernels.neuron_update` for the fused pass, and the golden model for a
deliberately wrong (channel-reversed) table.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from s2emu import ConversionOptions, Engine, GoldenModel, events, kernels, lower, vector_rows
from suites.fixtures import third_party

from .bits import assert_same_bits

pytestmark = pytest.mark.skipif(not (events.AVAILABLE and kernels.AVAILABLE), reason="numba is not installed")


def _decode(rows: vector_rows.VectorRows, c_in: int) -> np.ndarray:
    """(pre, post) int64 matrix from the rows' format (written here, not with ``to_dense``)."""
    m = np.zeros((c_in * rows.in_positions, rows.post_size), dtype=np.int64)
    co = np.arange(rows.channels) * rows.positions
    for ci in range(c_in):
        for s in range(rows.in_positions):
            for e in range(rows.indptr[s], rows.indptr[s + 1]):
                m[ci * rows.in_positions + s, co + rows.pos[e]] += \
                    rows.table[ci * rows.n_patterns + rows.pat[e]].astype(np.int64)
    return m


def _torch_matrix(w: np.ndarray, shape, stride, padding, dilation, pool, pool_stride, pool_padding) -> np.ndarray:
    """Each one-hot source through float64 sum pooling (explicit zero padding) and conv2d: (pre, post)."""
    c, h, wd = shape
    x = torch.eye(c * h * wd, dtype=torch.float64).view(-1, c, h, wd)
    if pool is not None:
        x = F.pad(x, (pool_padding[1], pool_padding[1], pool_padding[0], pool_padding[0]))
        x = F.avg_pool2d(x, kernel_size=pool, stride=pool_stride or pool, divisor_override=1)
    y = F.conv2d(x, torch.from_numpy(w.astype(np.float64)), stride=stride, padding=padding, dilation=dilation)
    return y.reshape(c * h * wd, -1).numpy().astype(np.int64), tuple(y.shape[2:])


@st.composite
def conv_geometries(draw):
    c_in = draw(st.integers(1, 3))
    c_out = draw(st.sampled_from([1, 3, 8, 16, 17]))
    h, w = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    k = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    pool = pool_stride = None
    pool_padding = (0, 0)
    if draw(st.booleans()):
        pool = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
        pool_stride = draw(st.sampled_from([None, (1, 1), (2, 1), (2, 2), (3, 2)]))
        pool_padding = (draw(st.integers(0, pool[0] // 2)), draw(st.integers(0, pool[1] // 2)))
    hp, wp = h, w
    if pool is not None:
        ps = pool_stride or pool
        hp = (h + 2 * pool_padding[0] - pool[0]) // ps[0] + 1
        wp = (w + 2 * pool_padding[1] - pool[1]) // ps[1] + 1
    ho = (hp + 2 * padding[0] - dilation[0] * (k[0] - 1) - 1) // stride[0] + 1 if hp > 0 else 0
    wo = (wp + 2 * padding[1] - dilation[1] * (k[1] - 1) - 1) // stride[1] + 1 if wp > 0 else 0
    from hypothesis import assume

    assume(ho >= 1 and wo >= 1)
    weight = draw(st.lists(st.integers(-127, 127), min_size=c_out * c_in * k[0] * k[1],
                           max_size=c_out * c_in * k[0] * k[1]))
    return dict(weight=np.array(weight, dtype=np.int64).reshape(c_out, c_in, *k), shape=(c_in, h, w), out_hw=(ho, wo),
                stride=stride, padding=padding, dilation=dilation, pool=pool, pool_stride=pool_stride,
                pool_padding=pool_padding)


def _rows(g, dtype=np.float32):
    return vector_rows.conv_rows([g["weight"]], g["shape"], g["out_hw"], g["stride"], g["padding"], g["dilation"],
                                 g["pool"], g["pool_stride"], g["pool_padding"], dtype)[0]


@settings(max_examples=150, deadline=None)
@given(g=conv_geometries())
def test_conv_rows_are_the_pooled_convolution(g) -> None:
    """Every stride, padding, dilation, pool window / stride / padding (overlapping windows too),
    several C_out, maps down to 1 x 1: the rows' matrix is torch's conv of each one-hot source."""
    expect, out_hw = _torch_matrix(g["weight"], g["shape"], g["stride"], g["padding"], g["dilation"], g["pool"],
                                   g["pool_stride"], g["pool_padding"])
    assert out_hw == g["out_hw"]
    rows = _rows(g)
    assert rows.table.dtype == np.float32 and rows.table.flags.c_contiguous
    assert np.array_equal(_decode(rows, g["shape"][0]), expect)
    assert np.array_equal(rows.to_dense(), expect)


@settings(max_examples=40, deadline=None)
@given(c=st.integers(1, 3), h=st.integers(2, 8), w=st.integers(2, 8), pool=st.sampled_from([(2, 2), (3, 2), (1, 2)]),
       post=st.sampled_from([1, 5, 16]), seed=st.integers(0, 2 ** 16))
def test_pooled_dense_rows_are_pool_flatten_affine(c, h, w, pool, post, seed) -> None:
    hp, wp = h // pool[0], w // pool[1]
    if hp == 0 or wp == 0:
        return
    rng = np.random.default_rng(seed)
    weight = rng.integers(-127, 128, (post, c * hp * wp))
    rows = vector_rows.pooled_dense_rows([weight], (c, h, w), pool, None, (0, 0), np.float32)[0]
    x = torch.eye(c * h * w, dtype=torch.float64).view(-1, c, h, w)
    pooled = F.avg_pool2d(x, kernel_size=pool, divisor_override=1).reshape(c * h * w, -1)
    expect = (pooled @ torch.from_numpy(weight.T.astype(np.float64))).numpy().astype(np.int64)
    assert rows.positions == 1 and rows.channels == post
    assert np.array_equal(_decode(rows, c), expect)


@settings(max_examples=60, deadline=None)
@given(g=conv_geometries(), seed=st.integers(0, 2 ** 16), density=st.sampled_from([0.05, 0.3, 1.0]))
def test_vector_delivery_adds_the_rows_of_every_spike(g, seed, density) -> None:
    """Listed (sample, tick) rows in any order into their output rows: spikes @ matrix, float32 bits, no -0.0."""
    rows = _rows(g)
    pre = int(np.prod(g["shape"]))
    rng = np.random.default_rng(seed)
    spikes = rng.random((3, 4, pre)) < density
    pairs = [(b, t) for b in range(3) for t in range(4) if rng.random() < 0.7]
    samples = np.array([b for b, _ in pairs], dtype=np.int64)
    ticks = np.array([t for _, t in pairs], dtype=np.int64)
    out_rows = rng.permutation(len(pairs)).astype(np.int64)
    out = np.zeros((len(pairs), rows.post_size), dtype=np.float32)
    events.deliver(spikes, samples, ticks, out_rows, [rows], [out])
    m = _decode(rows, g["shape"][0])
    expect = np.zeros_like(out)
    for q, (b, t) in enumerate(pairs):
        expect[out_rows[q]] = (spikes[b, t].astype(np.int64) @ m).astype(np.float32)
    assert np.array_equal(out.view(np.uint32), expect.view(np.uint32))   # bits: +0.0 where the sum is 0


@settings(max_examples=80, deadline=None)
@given(g=conv_geometries(), seed=st.integers(0, 2 ** 16), uniform=st.booleans(), subtract=st.booleans(),
       delay=st.integers(0, 2), batch=st.integers(1, 3), density=st.sampled_from([0.05, 0.4]))
def test_fused_delivery_and_update_equal_delivery_then_update(g, seed, uniform, subtract, delay, batch, density) -> None:
    """:func:`kernels.events_update` = :func:`events.deliver` into an input buffer, then
    :func:`kernels.neuron_update`: same v, spikes, counts and sum-pooled counts, bit for bit."""
    rows = _rows(g)
    pre = int(np.prod(g["shape"]))
    post_shape = (g["weight"].shape[0],) + g["out_hw"]
    n = rows.post_size
    rng = np.random.default_rng(seed)
    ticks, t0, length = 7, 2, 4
    src = rng.random((batch, ticks, pre)) < density
    size = 1 if uniform else n

    def param(lo, hi):
        return rng.uniform(lo, hi, size).astype(np.float32)

    alpha, thr, off, v_reset = param(0.5, 1.0), param(0.5, 300.0), param(-1.0, 1.0), param(-2.0, 0.0)
    v0 = rng.uniform(-50, 50, (batch, n)).astype(np.float32)
    ph, pw = (2, 2) if post_shape[1] >= 2 and post_shape[2] >= 2 else (1, 1)
    geometry = post_shape + (ph, pw)
    pooled_size = post_shape[0] * (post_shape[1] // ph) * (post_shape[2] // pw)

    def state():
        return (v0.copy(), np.zeros((batch, ticks, n), bool), np.full((batch, ticks), -1, np.int32),
                np.full((batch, ticks, pooled_size), 99, np.int8))

    v_a, sp_a, cnt_a, po_a = state()
    kernels.events_update(rows, src, -1 - delay, v_a, alpha, thr, off, v_reset, subtract, sp_a, cnt_a, t0, length,
                          po_a, geometry)
    v_b, sp_b, cnt_b, po_b = state()
    e = np.zeros((length * batch, n), np.float32)        # row j * batch + b = tick t0 + j of sample b
    pairs = [(b, t0 + j - 1 - delay, j * batch + b) for j in range(length) for b in range(batch)
             if t0 + j - 1 - delay >= 0]
    if pairs:
        s_, t_, r_ = (np.array(col, dtype=np.int64) for col in zip(*pairs))
        events.deliver(src, s_, t_, r_, [rows], [e])
    kernels.neuron_update(e.reshape(1, length * batch, n), v_b, alpha, thr, off, v_reset, subtract, sp_b, cnt_b, t0,
                          None, po_b, geometry)
    assert np.array_equal(v_a.view(np.uint32), v_b.view(np.uint32))
    assert np.array_equal(sp_a[:, t0:t0 + length], sp_b[:, t0:t0 + length])
    assert np.array_equal(cnt_a[:, t0:t0 + length], cnt_b[:, t0:t0 + length])
    assert np.array_equal(po_a[:, t0:t0 + length], po_b[:, t0:t0 + length])


def test_rows_keep_float64_tables_for_float64_projections() -> None:
    g = dict(weight=np.full((2, 1, 3, 3), 127), shape=(1, 5, 5), out_hw=(5, 5), stride=(1, 1), padding=(1, 1),
             dilation=(1, 1), pool=None, pool_stride=None, pool_padding=(0, 0))
    rows = _rows(g, np.float64)
    assert rows.table.dtype == np.float64
    spikes = np.ones((1, 1, 25), bool)
    out = np.zeros((1, rows.post_size), np.float64)
    events.deliver(spikes, np.zeros(1, np.int64), np.zeros(1, np.int64), np.zeros(1, np.int64), [rows], [out])
    # the centre output sees all 9 taps: 9 x 127; a corner 4 taps
    assert out[0, 12] == 9 * 127 and out[0, 0] == 4 * 127 and out[0, 25 + 12] == 9 * 127


def test_a_transposed_vector_table_is_caught_by_the_golden_comparison(monkeypatch) -> None:
    """A vector path that adds the channels in the wrong order (a table transposed over C_out, as a
    channel-last / NIR mix-up would give) must not pass: the rows' matrix differs from torch's conv,
    and the engine's spikes differ from the golden model's, so the checks above would fail."""
    net = lower(third_party("cnn_sinabs.nir"), ConversionOptions(scale_weights=True))
    proj = next(p for p in net.projections if p.pre == net.input_name)
    good = vector_rows.conv_rows

    def transposed(*args, **kwargs):
        return [dataclasses.replace(r, table=np.ascontiguousarray(r.table[:, ::-1])) for r in good(*args, **kwargs)]

    pre = net.populations[proj.pre]
    g = dict(weight=proj.weight.astype(np.int64), shape=tuple(pre.shape),
             out_hw=tuple(net.populations[proj.post].shape[1:]), stride=tuple(proj.stride),
             padding=tuple(proj.padding), dilation=tuple(proj.dilation), pool=None, pool_stride=None,
             pool_padding=(0, 0))
    expect, _ = _torch_matrix(g["weight"], g["shape"], g["stride"], g["padding"], g["dilation"], None, None, (0, 0))
    assert np.array_equal(_decode(_rows(g), pre.shape[0]), expect)
    monkeypatch.setattr(vector_rows, "conv_rows", transposed)
    assert not np.array_equal(_decode(_rows(g), pre.shape[0]), expect)
    rng = np.random.default_rng(7)
    x = rng.random((1, 4) + tuple(pre.shape)) < 0.1
    wrong = Engine(net, synapses="events").run(x, record="all")
    with pytest.raises(AssertionError):
        assert_same_bits(wrong, GoldenModel(net).run(x, record="all"))
