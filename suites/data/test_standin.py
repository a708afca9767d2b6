"""The generated DVS-gesture stand-in: determinism, balance, event format, frame pipeline."""
from __future__ import annotations

import numpy as np
import pytest

from harness.data import DEFAULT_N, N_CLASSES, standin_split
from harness.data.standin import (EVENT_DTYPE, SENSOR_SIZE, SensorConfig, generate_events,
                                  generate_split_events, sample_labels)
from harness.data.transforms import FramePipeline, events_to_frames


def test_same_bytes_twice():
    labels = np.arange(N_CLASSES)
    a = generate_events(labels, seed=7, split="test")
    b = generate_events(labels, seed=7, split="test")
    assert len(a) == len(b) == N_CLASSES
    for ea, eb in zip(a, b):
        assert ea.tobytes() == eb.tobytes()


def test_sample_does_not_depend_on_batching():
    one, _ = generate_split_events("train", seed=1, n=5, batch=5)
    split, _ = generate_split_events("train", seed=1, n=5, batch=2)
    assert [e.tobytes() for e in one] == [e.tobytes() for e in split]


def test_seed_and_split_change_the_data():
    a = generate_events([3], seed=0, split="train")[0]
    b = generate_events([3], seed=1, split="train")[0]
    c = generate_events([3], seed=0, split="test")[0]
    assert a.tobytes() != b.tobytes()
    assert a.tobytes() != c.tobytes()


def test_event_format_is_tonics():
    cfg = SensorConfig()
    ev = generate_events([0, 4, 10], seed=0, split="test")
    for e in ev:
        assert e.dtype == EVENT_DTYPE
        assert e.dtype.names == ("x", "y", "p", "t")
        assert e.size > 1000  # a moving person makes thousands of events per second
        assert np.all(np.diff(e["t"]) >= 0)
        assert e["x"].min() >= 0 and e["x"].max() < SENSOR_SIZE[0]
        assert e["y"].min() >= 0 and e["y"].max() < SENSOR_SIZE[1]
        assert e["t"].min() >= 0 and e["t"].max() < cfg.duration_us
        assert 0.2 < e["p"].mean() < 0.8  # both polarities


def test_background_noise_rate():
    """With a still, empty scene only noise remains, at the configured rate."""
    rate = 0.5
    cfg = SensorConfig(noise_hz=(rate, rate), hand_contrast=(0.0, 0.0), distractor_prob=0.0)
    ev = generate_events([0], seed=3, split="test", config=cfg)[0]
    expected = rate * 128 * 128 * cfg.duration_us * 1e-6
    # body/arm blobs still sway a little: allow some events above the Poisson count
    assert expected * 0.95 < ev.size < expected * 1.6


@pytest.mark.parametrize("split", ["train", "test"])
def test_class_balance(split):
    n = DEFAULT_N[split]
    assert n >= {"train": 2000, "test": 600}[split]
    counts = np.bincount(sample_labels(split, n), minlength=N_CLASSES)
    assert counts.tolist() == [n // N_CLASSES] * N_CLASSES


def test_frames_count_events_like_a_histogram():
    """tonic's Downsample + ToFrame(time_window) equals a plain numpy histogram of the events."""
    ev = generate_events([8], seed=2, split="train")[0]
    pipe = FramePipeline(n_bins=20, window_us=1_000_000)
    frames = events_to_frames(ev, pipe)
    hist = np.zeros((20, 2, 32, 32), np.int64)
    np.add.at(hist, (ev["t"] // 50_000, ev["p"].astype(int), ev["y"] // 4, ev["x"] // 4), 1)
    assert frames.dtype == np.uint8
    assert np.array_equal(frames, np.minimum(hist, 1))


def test_standin_split_shapes_and_values(tmp_path, monkeypatch):
    monkeypatch.setenv("S2GATE_CACHE_DIR", str(tmp_path))
    x, y = standin_split("test", seed=0, n=22, T=20)
    assert x.shape == (22, 20, 2, 32, 32) and x.dtype == np.uint8
    assert y.shape == (22,) and y.dtype == np.int64
    assert set(np.unique(x)) <= {0, 1}
    assert np.bincount(y).tolist() == [2] * N_CLASSES
    assert 0.01 < x.mean() < 0.5
    # the disk cache gives the same bytes
    files = list(tmp_path.glob("standin-test-*.npz"))
    assert len(files) == 1
    from harness import data as data_mod

    data_mod._MEMORY.clear()
    x2, y2 = standin_split("test", seed=0, n=22, T=20)
    assert x2.tobytes() == x.tobytes() and np.array_equal(y2, y)
    # a prefix of a bigger split is the same data
    x3, _ = standin_split("test", seed=0, n=11, T=20, cache=False)
    assert x3.tobytes() == x[:11].tobytes()


def test_parallel_generation_gives_the_same_bytes():
    a, ya = standin_split("train", seed=5, n=70, T=10, cache=False, workers=1)
    b, yb = standin_split("train", seed=5, n=70, T=10, cache=False, workers=2)
    assert a.tobytes() == b.tobytes() and np.array_equal(ya, yb)
