"""The reference's fast paths keep every sample's bits independent of the batch, the block of ticks and the
walk: the event-driven sums (``reference.kernels``) follow the order the docs state, checked against plain
Python loops written from that statement; sums that are not exact (weights spanning ~60 binary orders,
non-integer inputs) still give each row the bits it gets alone; the layer-major walk equals the tick-major one;
the fused IF/LIF loop equals ``step`` tick by tick; the float32 convolution runs only where exact."""
from __future__ import annotations

import math

import nir
import numpy as np
import pytest

import sys

import reference  # noqa: F401  (loads reference.simulate)
from reference import simulate
from reference.kernels import conv2d_events, matvec_events, pool_sum
from reference.neurons import make_stateful
from reference.discretisation import resolve

sim = sys.modules["reference.simulate"]  # the module (the package attribute is the function)
from reference.ops import exact_input_bound, exact_row_bounds, make_op


def wide_weights(rng, shape):
    """Gaussian weights times 2**k, k uniform in [-60, 0]: no summation order is exact."""
    return rng.standard_normal(shape) * np.exp2(rng.integers(-60, 1, shape))


def conv_by_hand(x, w, b, pad):
    """One row: each output starts at 0 and adds w * x over the non-zero inputs of its window in (kernel row,
    input channel, kernel column) order, then b."""
    c_in, h, wd = x.shape
    c_out, _, kh, kw = w.shape
    oh, ow = h + 2 * pad - kh + 1, wd + 2 * pad - kw + 1
    out = np.zeros((c_out, oh, ow))
    for o in range(c_out):
        for a in range(oh):
            for bb in range(ow):
                acc = 0.0
                for i in range(kh):
                    for c in range(c_in):
                        for j in range(kw):
                            y, z = a + i - pad, bb + j - pad
                            if 0 <= y < h and 0 <= z < wd and x[c, y, z] != 0:
                                acc = acc + x[c, y, z] * w[o, c, i, j]
                out[o, a, bb] = acc
    return out + b[:, None, None]


class Conv2d:  # duck-typed nir.Conv2d
    def __init__(self, w, b, pad=1):
        self.weight, self.bias, self.padding = w, b, pad
        self.stride, self.dilation, self.groups = 1, 1, 1


def test_conv_events_follow_the_stated_order_where_no_order_is_exact():
    rng = np.random.default_rng(5)
    w, b = wide_weights(rng, (3, 2, 3, 3)), rng.standard_normal(3)
    x = (rng.random((6, 2, 5, 5)) < 0.2) * rng.standard_normal((6, 2, 5, 5))  # non-integer: no proof
    op = make_op("c", Conv2d(w, b), (2, 5, 5), (3, 5, 5), np.dtype(np.float64))
    batch = op(x)
    for r in range(6):
        want = conv_by_hand(x[r], w, b, 1)
        assert np.array_equal(batch[r], want)
        assert np.array_equal(op(x[r:r + 1])[0], want)          # alone: the same bits
        assert np.array_equal(op(x[::-1])[5 - r], want)         # another batch order: the same bits
    # not vacuous: some output is not the correctly rounded sum (the order matters for these weights)
    exact = [math.fsum([x[q, c, y, z] * w[o, c, y - a + 1, z - bb + 1] for c in range(2)
                        for y in range(max(0, a - 1), min(5, a + 2)) for z in range(max(0, bb - 1), min(5, bb + 2))])
             for q in range(6) for o in range(3) for a in range(5) for bb in range(5)]
    ours = [batch[q, o, a, bb] - b[o] for q in range(6) for o in range(3) for a in range(5) for bb in range(5)]
    assert any(e != s for e, s in zip(exact, ours))


def test_conv_dense_rows_and_sparse_rows_each_keep_their_bits():
    # a dense row takes the per-row torch path, a sparse one the event path: mixing them in one call changes nothing
    rng = np.random.default_rng(6)
    w, b = wide_weights(rng, (4, 3, 3, 3)), np.zeros(4)
    dense = rng.standard_normal((2, 3, 6, 6))
    sparse = (rng.random((3, 3, 6, 6)) < 0.1) * rng.standard_normal((3, 3, 6, 6))
    op = make_op("c", Conv2d(w, b), (3, 6, 6), (4, 6, 6), np.dtype(np.float64))
    mixed = op(np.concatenate([dense, sparse]))
    for r, row in enumerate(np.concatenate([dense, sparse])):
        assert np.array_equal(mixed[r], op(row[None])[0])
    for r in range(3):
        assert np.array_equal(mixed[2 + r], conv_by_hand(sparse[r], w, b, 1))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_float32_conv_runs_only_where_exact_and_equals_the_exact_sum(dtype):
    rng = np.random.default_rng(7)
    w = rng.integers(-127, 128, (5, 4, 3, 3)).astype(np.float64)  # a quantized graph's integer weights
    b = np.zeros(5)
    assert exact_input_bound(w.reshape(5, -1), None, np.float32) >= 4
    x = rng.integers(0, 5, (7, 4, 8, 8)).astype(dtype) * (rng.random((7, 4, 8, 8)) < 0.15)
    op = make_op("c", Conv2d(w, b), (4, 8, 8), (5, 8, 8), np.dtype(dtype))
    got = op(x)
    assert got.dtype == dtype
    for r in range(7):
        assert np.array_equal(got[r], conv_by_hand(x[r].astype(np.float64), w, b, 1).astype(dtype))  # exact: any order
    # the event kernel (no proof needed) gives the same bits
    wt = np.ascontiguousarray(w.astype(dtype).transpose(1, 2, 3, 0))
    assert np.array_equal(got, conv2d_events(x, wt, None, (1, 1), (1, 1), (1, 1), (8, 8)))


def test_affine_splits_provable_and_unprovable_outputs():
    rng = np.random.default_rng(8)
    w = (rng.standard_normal((6, 50)) * 0.1).astype(np.float32).astype(np.float64)
    w[3] = wide_weights(rng, 50)       # output 3 has no proof; the others (float32 values) do for inputs <= 4
    bounds = exact_row_bounds(w, None, np.float64)
    assert bounds[3] < 1 and np.all(np.delete(bounds, 3) >= 4)
    b = rng.standard_normal(6)

    class Affine:
        weight, bias = w, b

    op = make_op("fc", Affine(), (50,), (6,), np.dtype(np.float64))
    x = (rng.random((9, 50)) < 0.2) * rng.integers(1, 5, (9, 50)).astype(np.float64)
    got = op(x)
    for r in range(9):
        nz = np.flatnonzero(x[r])
        for i in range(6):
            seq = 0.0
            for j in nz:                      # the stated order: increasing j, from 0
                seq = seq + w[i, j] * x[r, j]
            if i == 3:
                assert got[r, i] == seq + b[i]
            else:
                assert got[r, i] == math.fsum(w[i] * x[r]) + b[i]
                assert got[r, i] == seq + b[i]
        assert np.array_equal(op(x[r:r + 1])[0], got[r])


def test_matvec_events_leave_dense_rows_alone():
    wt = np.arange(6.0).reshape(3, 2)
    out = np.zeros((2, 2))
    matvec_events(np.array([[1.0, 0.0, 2.0], [1.0, 1.0, 1.0]]), wt, np.array([True, False]), out)
    assert out.tolist() == [[0.0 + 2 * 4, 1.0 + 2 * 5], [0.0, 0.0]]


def test_pool_sum_by_hand():
    x = np.arange(2 * 1 * 4 * 4, dtype=np.float64).reshape(2, 1, 4, 4)
    got = pool_sum(x, (2, 2), (2, 2), (2, 2))
    assert got[0, 0].tolist() == [[0 + 1 + 4 + 5, 2 + 3 + 6 + 7], [8 + 9 + 12 + 13, 10 + 11 + 14 + 15]]
    assert got[1, 0, 1, 1] == 26 + 27 + 30 + 31


@pytest.mark.parametrize("typ", ["IF", "LIF"])
@pytest.mark.parametrize("reset", ["subtract", "to_zero", "to_v_reset"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fused_spiking_loop_equals_step(typ, reset, dtype):
    rng = np.random.default_rng(9)
    shape = (3, 4)
    th, vr = rng.random(shape) + 0.5, rng.random(shape) * 0.3
    if typ == "IF":
        node = nir.IF(r=rng.random(shape) + 0.5, v_threshold=th, v_reset=vr)
    else:
        node = nir.LIF(tau=rng.random(shape) * 1e-2 + 1e-3, r=rng.random(shape) + 0.5, v_leak=rng.random(shape) * 0.1,
                       v_threshold=th, v_reset=vr)
    x = (rng.standard_normal((30, 5, *shape)) * (1 if typ == "IF" else 40)).astype(dtype)
    for compare, clamp in ((">", "none"), (">=", "-threshold")):
        opts = {"reset": reset, "compare": compare, **({"if_min_v": clamp} if typ == "IF" else {})}
        disc = resolve("nir", opts, None)
        a, b = (make_stateful("n", node, shape, disc, np.dtype(dtype)) for _ in range(2))
        a.folded = b.folded = (rng.random(shape) * 0.01).astype(dtype)
        a.reset_state(5, 30)
        b.reset_state(5, 30)
        fused = np.concatenate([a.run_ticks(x[:13]), a.run_ticks(x[13:])])
        stepped = np.stack([b.step(x[t]) for t in range(30)])
        assert fused.dtype == np.uint8 and stepped.dtype == dtype   # spikes travel as uint8 0/1 between nodes
        assert np.array_equal(fused, stepped) and np.array_equal(a.v, b.v), opts
        assert stepped.any() and not stepped.all()


def conv_graph(w1, w2):
    return nir.NIRGraph(nodes={
        "input": nir.Input(input_type={"input": np.array([2, 6, 6])}),
        "conv": nir.Conv2d(input_shape=(6, 6), weight=w1, stride=1, padding=1, dilation=1, groups=1, bias=np.full(3, 0.1)),
        "lif": nir.LIF(tau=np.full((3, 6, 6), 2e-3), r=np.ones((3, 6, 6)), v_leak=np.zeros((3, 6, 6)),
                       v_threshold=np.full((3, 6, 6), 0.05), v_reset=np.zeros((3, 6, 6))),
        "pool": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
        "flat": nir.Flatten(input_type={"input": np.array([3, 3, 3])}, start_dim=0, end_dim=-1),
        "fc": nir.Affine(weight=w2, bias=np.zeros(4)),
        "if": nir.IF(r=np.ones(4), v_threshold=np.full(4, 0.01), v_reset=np.zeros(4)),
        "output": nir.Output(output_type={"output": np.array([4])}),
    }, edges=[("input", "conv"), ("conv", "lif"), ("lif", "pool"), ("pool", "flat"), ("flat", "fc"), ("fc", "if"),
              ("if", "output")])


@pytest.mark.parametrize("preset", ["nir", "spinnaker2"])
def test_unprovable_graph_same_bits_for_any_batch_chunk_and_walk(monkeypatch, preset):
    rng = np.random.default_rng(10)
    g = conv_graph(wide_weights(rng, (3, 2, 3, 3)), wide_weights(rng, (4, 27)))
    x = rng.random((6, 40, 2, 6, 6)) < 0.15
    rec = ["conv", "lif", "fc", "if"]
    ref = simulate(g, x, preset=preset, record=rec)
    assert ref.spikes("lif").any() and ref.spikes("if").any()
    runs = [simulate(g, x[2:3], preset=preset, record=rec)]
    monkeypatch.setattr(sim, "CHUNK_BYTES", 1)          # one tick per chunk
    monkeypatch.setattr(sim, "BLOCK_BYTES", 1)          # one sample per block
    runs.append(simulate(g, x, preset=preset, record=rec))
    monkeypatch.setattr(sim, "CHUNK_BYTES", 2 ** 30)
    monkeypatch.setattr(sim, "BLOCK_BYTES", 2 ** 30)
    runs.append(simulate(g, x, preset=preset, record=rec))
    monkeypatch.setattr(sim, "LAYER_MAJOR", False)      # the tick-major walk
    runs.append(simulate(g, x, preset=preset, record=rec))
    for k, run in enumerate(runs):
        rows = slice(2, 3) if k == 0 else slice(None)
        for node, obs in ref.data.items():
            for name, arr in obs.items():
                assert np.array_equal(arr[rows], run.data[node][name]), (k, node, name)


def test_spikes_of_several_sources_are_summed_as_numbers(monkeypatch):
    # two IF populations feed one IF directly: their uint8 spikes add as numbers (converted to the run dtype first),
    # as tick by tick
    one = np.ones(5)
    g = nir.NIRGraph(nodes={
        "input": nir.Input(input_type={"input": np.array([5])}),
        "a": nir.IF(r=one, v_threshold=one * 0.5, v_reset=0 * one), "b": nir.IF(r=one, v_threshold=one * 0.5, v_reset=0 * one),
        "c": nir.IF(r=one, v_threshold=one * 1.5, v_reset=0 * one),
        "output": nir.Output(output_type={"output": np.array([5])}),
    }, edges=[("input", "a"), ("input", "b"), ("a", "c"), ("b", "c"), ("c", "output")])
    x = np.random.default_rng(11).random((3, 20, 5)) < 0.5
    layer = simulate(g, x, preset="nir")
    monkeypatch.setattr(sim, "LAYER_MAJOR", False)
    tick = simulate(g, x, preset="nir")
    assert np.array_equal(layer.spikes("c"), tick.spikes("c"))
    assert layer.spikes("c").any() and layer.spikes("a").any() != layer.spikes("c").all()
