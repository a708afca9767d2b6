"""Event-driven synaptic delivery (``s2emu.events``): same integers and bits as the dense kernel.

The synapse rows are checked against independent int64 convolutions written here with numpy;
the engine's three synapse modes against each other and the golden model; the cost model's
choice against inputs where the answer is obvious (a handful of spikes vs every input on).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from s2emu import ConversionOptions, Engine, GoldenModel, events, lower, vector_rows
from suites.fixtures import third_party

from s2emu.engine import MEASURED_CHUNKS

from .bits import assert_same_bits

PSNN = Path(__file__).resolve().parents[2] / "harness" / "bundled" / "psnn.nir"
pytestmark = pytest.mark.skipif(not events.AVAILABLE, reason="numba is not installed")


def _cnn():
    return lower(third_party("cnn_sinabs.nir"), ConversionOptions(scale_weights=True))


def _engine_rows(engine: Engine, proj_name: str):
    c = next(c for c in engine.compiled if c.proj.name == proj_name)
    return c, engine._build_rows(c)


def _dense_matrix(rows, pre: int) -> np.ndarray:
    """(pre, post) int64 matrix of scalar rows (``events.SynapseRows``) or vector rows
    (``vector_rows.VectorRows``: per source position, (target position, pattern) entries, the
    vector ``table[ci * n_patterns + pattern]`` over output channels, NIR post ``co * positions + pos``)."""
    m = np.zeros((pre, rows.post_size), dtype=np.int64)
    if isinstance(rows, events.SynapseRows):
        for j in range(pre):
            sl = slice(rows.indptr[j], rows.indptr[j + 1])
            m[j, rows.indices[sl]] = rows.weights[sl].astype(np.int64)
        return m
    co = np.arange(rows.channels) * rows.positions
    for j in range(pre):
        ci, s = divmod(j, rows.in_positions)
        for e in range(rows.indptr[s], rows.indptr[s + 1]):
            m[j, co + rows.pos[e]] += rows.table[ci * rows.n_patterns + rows.pat[e]].astype(np.int64)
    return m


def _conv_int64(x: np.ndarray, w: np.ndarray, stride: int, pad: int) -> np.ndarray:
    """(n, C, H, W) int64 * (O, C, k, k) -> (n, O, Ho, Wo) by sliding windows (no torch)."""
    k = w.shape[-1]
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    win = np.lib.stride_tricks.sliding_window_view(xp, (k, k), axis=(2, 3))[:, :, ::stride, ::stride]
    return np.einsum("nchwij,ocij->nohw", win, w)


def test_synapse_rows_of_the_first_conv_are_the_integer_convolution() -> None:
    net = _cnn()
    engine = Engine(net)
    proj = next(p for p in net.projections if p.pre == net.input_name)
    c, rows = _engine_rows(engine, proj.name)
    assert rows is not None and len(rows) == 1
    m = _dense_matrix(rows[0], c.pre_size)
    rng = np.random.default_rng(3)
    picks = rng.choice(c.pre_size, 300, replace=False)
    onehot = np.zeros((len(picks), c.pre_size), dtype=np.int64)
    onehot[np.arange(len(picks)), picks] = 1
    expect = _conv_int64(onehot.reshape((-1,) + c.pre_shape), proj.weight.astype(np.int64), 2, 1)
    assert np.array_equal(m[picks], expect.reshape(len(picks), -1))
    # vector rows: a source pixel reaches at most 3 x 3 output positions (5x5 kernel, stride 2), each
    # one contiguous vector over the 16 output channels
    assert isinstance(rows[0], vector_rows.VectorRows) and rows[0].channels == 16
    assert np.diff(rows[0].indptr).max() == 9


def test_synapse_rows_through_a_sum_pool_are_pool_then_conv() -> None:
    """cnn_sinabs 3 -> 6 goes through SumPool2d(2) and Conv2d(16 -> 8, 3x3, padding 1)."""
    net = _cnn()
    engine = Engine(net)
    proj = next(p for p in net.projections if p.pool is not None and p.kind == "conv2d")
    c, rows = _engine_rows(engine, proj.name)
    m = _dense_matrix(rows[0], c.pre_size)
    rng = np.random.default_rng(4)
    picks = rng.choice(c.pre_size, 200, replace=False)
    onehot = np.zeros((len(picks),) + c.pre_shape, dtype=np.int64)
    onehot.reshape(len(picks), -1)[np.arange(len(picks)), picks] = 1
    ph, pw = proj.pool
    n, ch, h, w = onehot.shape
    pooled = onehot.reshape(n, ch, h // ph, ph, w // pw, pw).sum(axis=(3, 5))
    expect = _conv_int64(pooled, proj.weight.astype(np.int64), proj.stride[0], proj.padding[0])
    assert np.array_equal(m[picks], expect.reshape(len(picks), -1))


@pytest.mark.parametrize("synapses", ["events", "auto", "dense"])
def test_every_synapse_mode_gives_the_golden_bits_on_the_bundled_psnn(synapses: str) -> None:
    net = lower(PSNN, ConversionOptions(scale_weights=True))
    rng = np.random.default_rng(11)
    x = rng.random((2, 7) + net.populations[net.input_name].shape) < 0.25
    fast = Engine(net, synapses=synapses).run(x, record="all")
    assert_same_bits(fast, GoldenModel(net).run(x, record="all"))
    paths = fast.meta["synapse_paths"]
    if synapses == "events":
        assert all(p["dense"] == 0 for p in paths.values()) and sum(p["events"] for p in paths.values()) > 0
    if synapses == "dense":
        assert all(p["events"] == 0 for p in paths.values())
    hidden = [n for n, p in net.populations.items() if p.model != "spike_list"]
    assert all(int(fast.spikes(n).sum()) > 0 for n in hidden[:2])


def test_events_and_dense_agree_on_a_long_cnn_run_at_every_batch_size() -> None:
    """No golden model here (12k neurons x 60 ticks is slow in it): the two engine paths, all observables."""
    net = _cnn()
    rng = np.random.default_rng(5)
    x = rng.random((5, 60) + net.populations[net.input_name].shape) < 0.03
    dense = Engine(net, synapses="dense").run(x, record="all")
    ev = Engine(net, synapses="events")
    assert_same_bits(ev.run(x, record="all"), dense)
    for b in (1, 3):
        assert_same_bits(ev.run(x[:b], record="all"), Engine(net, synapses="dense").run(x[:b], record="all"))
    assert int(dense.spikes("12").sum()) > 0  # activity reached the output layer


def test_the_cost_model_takes_events_for_a_few_spikes_and_the_kernel_for_all_inputs_on() -> None:
    """Both sides are measured: the first chunk runs (and times) the dense kernel; later chunks
    compare that cost with the event cost from the per-process unit costs. On one kernel thread
    (the measurement then uses the thread's CPU clock: two OpenMP threads on a loaded machine
    really are slower by orders of magnitude, and the choice would rightly follow)."""
    net = _cnn()
    first = next(p for p in net.projections if p.pre == net.input_name).name
    shape = net.populations[net.input_name].shape
    sparse = np.zeros((4, 5) + shape, dtype=bool)
    sparse[:, :, 0, 10, 10] = True  # one input spike per (sample, tick): 81 synapses instead of 204,800 MACs
    engine = Engine(net, threads=1)
    rec = engine.run(sparse)
    paths = rec.meta["synapse_paths"][first]
    assert paths["dense"] >= 1                       # nothing measured yet: the kernel runs first, timed
    c = next(c for c in engine.compiled if c.proj.name == first)
    assert c.timings[1]["last"] > 0                  # seconds per row, measured on one thread
    for _ in range(MEASURED_CHUNKS - 1):             # one chunk per run here: the kernel is measured on a few
        engine.run(sparse)
    rec = engine.run(sparse)
    assert rec.meta["synapse_paths"][first]["dense"] == 0 and rec.meta["synapse_paths"][first]["events"] >= 1
    full = np.ones((4, 5) + shape, dtype=bool)  # 2,312 spikes x 81 synapses per row: the kernel is cheaper
    engine = Engine(net, threads=1)
    for _ in range(MEASURED_CHUNKS):
        engine.run(full)
    rec = engine.run(full)
    assert rec.meta["synapse_paths"][first]["events"] == 0 and rec.meta["synapse_paths"][first]["dense"] >= 1


def test_the_event_unit_costs_are_measured_and_positive() -> None:
    per_target, per_synapse = events.unit_costs()
    assert 0 < per_target < 1e3 and 0 < per_synapse < 1e3     # ns; a broken timer would give 0 or inf


def test_a_projection_too_large_for_rows_stays_on_the_kernel(monkeypatch) -> None:
    monkeypatch.setattr(events, "MAX_SYNAPSES", 500)
    net = lower(third_party("braille_noDelay_noBias_subtract.nir"), ConversionOptions(scale_weights=True))
    rng = np.random.default_rng(2)
    x = rng.random((2, 40) + net.populations[net.input_name].shape) < 0.2
    engine = Engine(net, synapses="events")
    rec = engine.run(x, record="all")
    assert_same_bits(rec, GoldenModel(net).run(x, record="all"))
    big = [c for c in engine.compiled if np.count_nonzero(c.proj.weight) > 500]
    small = [c for c in engine.compiled if np.count_nonzero(c.proj.weight) <= 500]
    assert big and all(c.rows is False for c in big)
    assert all(c.rows not in (None, False) for c in small)   # the small ones did use rows
    assert all(rec.meta["synapse_paths"][c.proj.name]["events"] == 0 for c in big)


def test_conv_rows_come_from_geometry_whatever_the_one_hot_build_limit(monkeypatch) -> None:
    """Vector rows are built from the conv's geometry, not from one-hot kernel calls: the one-hot
    size limit (which still guards pool-only and grouped projections) does not apply to them."""
    monkeypatch.setattr(events, "MAX_BUILD_ELEMENTS", 1)
    net = _cnn()
    x = np.zeros((2, 4) + net.populations[net.input_name].shape, dtype=bool)
    x[:, :, 1, 3, 4] = True
    engine = Engine(net, synapses="events")
    rec = engine.run(x, record="all")
    first = next(c for c in engine.compiled if c.proj.pre == net.input_name)
    assert isinstance(first.rows[0], vector_rows.VectorRows) and rec.meta["synapse_paths"][first.proj.name]["events"] > 0
    assert_same_bits(rec, Engine(net, synapses="dense").run(x, record="all"))


def test_a_pool_projection_too_large_to_build_rows_for_stays_on_the_kernel(monkeypatch) -> None:
    """A pool-only projection still gets its rows from one-hot kernel calls, under the size limit."""
    import nir

    graph = nir.NIRGraph.from_list(nir.Input(np.array([1, 8, 8])), nir.SumPool2d(np.array([2, 2]), np.array([2, 2]),
                                                                                np.array([0, 0])),
                                   nir.IF(r=np.ones((1, 4, 4)), v_threshold=np.full((1, 4, 4), 1.5)),
                                   nir.Output(np.array([1, 4, 4])))
    net = lower(graph, ConversionOptions(scale_weights=False))
    assert net.projections[0].kind == "pool"
    monkeypatch.setattr(events, "MAX_BUILD_ELEMENTS", 64 * 64 - 1)
    rng = np.random.default_rng(1)
    x = rng.random((2, 5, 1, 8, 8)) < 0.3
    engine = Engine(net, synapses="events")
    rec = engine.run(x, record="all")
    assert engine.compiled[0].rows is False and rec.meta["synapse_paths"][net.projections[0].name]["events"] == 0
    assert_same_bits(rec, GoldenModel(net).run(x, record="all"))


def test_without_numba_the_engine_uses_the_kernel(monkeypatch) -> None:
    monkeypatch.setattr(events, "AVAILABLE", False)
    engine = Engine(_cnn(), synapses="events")
    assert engine.synapses == "dense"


def test_an_unknown_synapse_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="synapses must be one of"):
        Engine(_cnn(), synapses="sparse")


def test_rows_in_float64_for_a_projection_beyond_the_float32_bound() -> None:
    """A projection whose bound passes 2**24 accumulates in float64; its rows do too."""
    import nir

    n_in = 140_000                       # 127 x 140,000 = 17,780,000 > 2**24
    w = np.full((2, n_in), 127.0)
    w[1, ::2] = -127.0
    graph = nir.NIRGraph.from_list(nir.Input(np.array([n_in])), nir.Linear(weight=w),
                                   nir.IF(r=np.ones(2), v_threshold=np.full(2, 1e9)), nir.Output(np.array([2])))
    net = lower(graph, ConversionOptions(scale_weights=False))
    x = np.zeros((2, 3, n_in), dtype=bool)
    x[0, 0, :139_999] = True
    x[1, 1, 1:] = True
    engine = Engine(net, synapses="events")
    assert engine.compiled[0].dtype == torch.float64
    rec = engine.run(x, record="all")
    assert rec.meta["synapse_paths"][net.projections[0].name]["events"] > 0
    assert_same_bits(rec, GoldenModel(net).run(x, record="all"))
    i = rec.get(net.projections[0].post, "i")
    # 127 x 139,999 = 17,779,873 is odd and above 2**24: a float32 sum could not hold it
    # neuron 1, sample 0: inputs 0..139,998 hold 70,000 even (-127) and 69,999 odd (+127) indices -> -127
    assert i[0, 1].tolist() == [17_779_873, -127]
    # sample 1: inputs 1..139,999 on: neuron 1 sees 70,000 odd (+127) and 69,999 even (-127)
    assert i[1, 2].tolist() == [17_779_873, 127]


def test_pooled_counts_skipped_for_an_events_consumer_are_pooled_again_when_it_turns_dense() -> None:
    """The update skips writing sum-pooled counts while the int8 projection that reads them goes by
    synapse rows; a chunk of that projection that then goes through the kernel must pool the raw
    spikes itself (the skipped buffer is uninitialised memory), giving the same bits."""
    net = _cnn()
    rng = np.random.default_rng(9)
    x = rng.random((3, 9) + net.populations[net.input_name].shape) < 0.05
    engine = Engine(net, kernels="int")
    assert engine.pooled_for, "cnn_sinabs has an int8 conv after a SumPool"
    for name, c in engine.pooled_for.items():
        c.last_path = "events"   # as if its latest chunk went by rows: the update skips the pooling
        c.rows = False           # ... but now every chunk goes through the kernel
    rec = engine.run(x, record="all")
    assert all(rec.meta["synapse_paths"][c.proj.name]["dense"] > 0 for c in engine.pooled_for.values())
    assert_same_bits(rec, Engine(net, synapses="dense", kernels="float").run(x, record="all"))


def test_event_chunks_are_timed_and_a_slower_than_predicted_projection_returns_to_the_kernel() -> None:
    """The event side's prediction is scaled by the timed cost of the projection's real event chunks:
    after a few event chunks the ratios are recorded; if they say the rows run 1000x slower than
    predicted, the next chunks go through the kernel."""
    net = _cnn()
    first = next(p for p in net.projections if p.pre == net.input_name).name
    shape = net.populations[net.input_name].shape
    sparse = np.zeros((4, 5) + shape, dtype=bool)
    sparse[:, :, 0, 10, 10] = True
    engine = Engine(net, threads=1)
    c = next(c for c in engine.compiled if c.proj.name == first)
    for _ in range(MEASURED_CHUNKS + 4):
        rec = engine.run(sparse)
    assert rec.meta["synapse_paths"][first]["events"] >= 1
    assert c.event_ratios and len(c.event_ratios) >= MEASURED_CHUNKS and all(r > 0 for r in c.event_ratios)
    c.event_ratios = [1000.0] * MEASURED_CHUNKS
    rec = engine.run(sparse)
    assert rec.meta["synapse_paths"][first] == {"dense": 1, "events": 0}
