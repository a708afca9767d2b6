"""harness.data.transforms.denoise keeps exactly the events tonic's Denoise keeps (the speed-up is
measured by benchmarks/throughput.py, not here)."""
from __future__ import annotations

import numpy as np
import pytest

from harness.data.transforms import denoise

tonic_transforms = pytest.importorskip("tonic.transforms")

DT = np.dtype([("x", np.int16), ("y", np.int16), ("p", bool), ("t", np.int64)])


def _events(rng: np.random.Generator, n: int, size: int, span: int, clustered: bool) -> np.ndarray:
    ev = np.zeros(n, DT)
    if clustered:  # blobs moving around plus noise: many neighbours within the filter time
        k = rng.integers(0, 8, n)
        cx, cy = rng.integers(0, size, 8), rng.integers(0, size, 8)
        ev["x"] = np.clip(cx[k] + rng.integers(-2, 3, n), 0, size - 1)
        ev["y"] = np.clip(cy[k] + rng.integers(-2, 3, n), 0, size - 1)
    else:
        ev["x"], ev["y"] = rng.integers(0, size, n), rng.integers(0, size, n)
    ev["p"] = rng.random(n) < 0.5
    ev["t"] = np.sort(rng.integers(0, span, n))
    return ev


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("filter_time", [10_000, 2_500.5])
def test_the_same_events_as_tonic_on_seeded_recordings(seed: int, filter_time: float) -> None:
    rng = np.random.default_rng(seed)
    ev = _events(rng, int(rng.integers(2_000, 20_000)), int(rng.choice([16, 128])), int(rng.integers(10**5, 10**7)),
                 clustered=bool(seed % 2))
    expected = tonic_transforms.Denoise(filter_time=filter_time)(ev)
    got = denoise(ev, filter_time)
    assert 0 < len(expected) < len(ev)              # the recording exercises both outcomes
    assert got.dtype == ev.dtype and np.array_equal(got, expected)


def test_hand_worked_cases() -> None:
    # (x, y, t): a pair of neighbours 5 us apart, an isolated event, a neighbour too late, and an event
    # before filter_time next to an untouched pixel (memories start at filter_time, so it passes)
    rows = [(5, 5, 20_000), (6, 5, 20_005), (20, 20, 20_010), (5, 6, 40_006), (1, 0, 3)]
    ev = np.zeros(len(rows), DT)
    for i, (x, y, t) in enumerate(rows):
        ev[i]["x"], ev[i]["y"], ev[i]["t"] = x, y, t
    ev = ev[np.argsort(ev["t"], kind="stable")]
    kept = denoise(ev, 10_000)
    # t=3 at (1, 0): neighbour (0, 0) still holds 10,000 > 3 -> kept; (5,5) at 20,000: no neighbour
    # memory above 20,000 yet -> dropped; (6,5) at 20,005: (5,5) holds 30,000 -> kept; (20,20) isolated ->
    # dropped; (5,6) at 40,006: (5,5) holds 30,000 < 40,006, others untouched (10,000) -> dropped
    assert [(int(e["x"]), int(e["y"]), int(e["t"])) for e in kept] == [(1, 0, 3), (6, 5, 20_005)]
    assert np.array_equal(kept, tonic_transforms.Denoise(filter_time=10_000)(ev))


def test_an_empty_recording_stays_empty() -> None:
    out = denoise(np.zeros(0, DT), 10_000)
    assert out.shape == (0,) and out.dtype == DT
