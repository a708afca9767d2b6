"""Event arrays -> binary spike frames, with tonic's transforms (the paper-style pipeline).

Pipeline: optional Denoise with the semantics of ``tonic.transforms.Denoise(filter_time)``
(:func:`denoise`, a compiled loop: the same events kept, checked against tonic on seeded
recordings) -> ``Downsample`` 128×128 -> 32×32 -> ``ToFrame`` into ``T`` bins -> clip counts to 1
(the chip's ``spike_list`` input is binary).
Frames come out as uint8 arrays of shape (T, 2, H, W) = (time, polarity, height, width); a
batch is stacked to (batch, T, 2, H, W).

tonic is imported lazily (it imports torch: ~4 s).
"""
from __future__ import annotations

from dataclasses import dataclass, asdict
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np


@dataclass(frozen=True)
class FramePipeline:
    """Parameters of the event -> frame pipeline.

    Attributes:
        n_bins: number of frames T.
        sensor_size: (W, H, P) of the events.
        out_size: (W, H) after downsampling.
        denoise_us: ``Denoise.filter_time`` in µs, or None to skip denoising.
        window_us: if set, bins are fixed windows ``[k·window_us/T, (k+1)·window_us/T)`` starting at
            t = 0 (``ToFrame(time_window=..., start_time=0, end_time=window_us)``); if None, the
            recording's own span is cut into T bins (``ToFrame(n_time_bins=T)``, as for DVS Gesture).
    """

    n_bins: int = 20
    sensor_size: Tuple[int, int, int] = (128, 128, 2)
    out_size: Tuple[int, int] = (32, 32)
    denoise_us: Optional[float] = None
    window_us: Optional[int] = None

    def key(self) -> Dict[str, object]:
        """The parameters as a dict (used in cache keys)."""
        return asdict(self)

    def tonic_transform(self, denoise: bool = True):
        """The tonic ``Compose`` of this pipeline (without the final binarisation); ``denoise=False``
        leaves tonic's Denoise out (:func:`events_to_frames` runs :func:`denoise` instead)."""
        import tonic.transforms as tt

        steps = []
        if self.denoise_us and denoise:
            steps.append(tt.Denoise(filter_time=self.denoise_us))
        steps.append(tt.Downsample(sensor_size=self.sensor_size, target_size=self.out_size))
        small = (self.out_size[0], self.out_size[1], self.sensor_size[2])
        if self.window_us is None:
            steps.append(tt.ToFrame(sensor_size=small, n_time_bins=self.n_bins))
        else:
            steps.append(tt.ToFrame(sensor_size=small, time_window=self.window_us / self.n_bins,
                                    start_time=0, end_time=self.window_us))
        return tt.Compose(steps)

    def __call__(self, events: np.ndarray) -> np.ndarray:
        """One event array -> binary frames (T, P, H, W) uint8."""
        return events_to_frames(events, self)


def events_to_frames(events: np.ndarray, pipe: FramePipeline, transform=None) -> np.ndarray:
    """Apply ``pipe`` to one structured event array; returns uint8 (T, P, H, W) in {0, 1}.

    An empty recording gives all-zero frames; tonic's ToFrame may return one bin too few or
    too many at float boundaries, so the result is padded/truncated to exactly T bins.
    """
    T = pipe.n_bins
    W, H = pipe.out_size
    P = pipe.sensor_size[2]
    out = np.zeros((T, P, H, W), dtype=np.uint8)
    if events.size == 0:
        return out
    if transform is None:
        transform = pipe.tonic_transform(denoise=False)
    steps = list(transform.transforms)
    if steps and type(steps[0]).__name__ == "Denoise":  # a caller's transform with tonic's Denoise: ours instead
        steps.pop(0)
    if pipe.denoise_us:  # Denoise may drop every event; tonic's ToFrame cannot bin nothing
        events = denoise(events, pipe.denoise_us)
        if events.size == 0:
            return out
    for step in steps:
        events = step(events)
    frames = np.asarray(events)
    n = min(T, frames.shape[0])
    out[:n] = np.minimum(frames[:n], 1).astype(np.uint8)
    return out


def denoise(events: np.ndarray, filter_time: float = 10_000) -> np.ndarray:
    """tonic's ``Denoise`` (``tonic.functional.denoise_numpy``), compiled: the same events kept, in order.

    An event is kept if one of its 4 neighbour pixels (x +- 1, y +- 1; polarity ignored) holds a
    "timestamp memory" greater than its ``t``; every event first sets its own pixel's memory to
    ``t + filter_time``; memories start at ``filter_time`` (so an event earlier than
    ``filter_time`` passes if it has a neighbour inside the frame). The frame is
    ``(max x + 1) x (max y + 1)``, memories float64, as in tonic.

    Args:
        events: structured array with fields ``x``, ``y``, ``t`` (any order of other fields).
        filter_time: in the unit of ``t`` (µs for tonic's datasets).
    Returns the kept events (a new array).
    """
    if events.size == 0:
        return events[:0].copy()
    x = np.ascontiguousarray(events["x"], dtype=np.int64)
    y = np.ascontiguousarray(events["y"], dtype=np.int64)
    t = np.ascontiguousarray(events["t"], dtype=np.float64)
    keep = np.empty(events.shape[0], dtype=np.bool_)
    _denoise_kernel()(x, y, t, float(filter_time), int(x.max()) + 1, int(y.max()) + 1, keep)
    return events[keep]


def _denoise_loop(x, y, t, filter_time, width, height, keep):  # pragma: no cover - compiled
    mem = np.full((width, height), filter_time)
    for i in range(x.shape[0]):
        xi, yi, ti = x[i], y[i], t[i]
        mem[xi, yi] = ti + filter_time
        keep[i] = ((xi > 0 and mem[xi - 1, yi] > ti) or (xi < width - 1 and mem[xi + 1, yi] > ti)
                   or (yi > 0 and mem[xi, yi - 1] > ti) or (yi < height - 1 and mem[xi, yi + 1] > ti))


_DENOISE = []


def _denoise_kernel():
    """The numba-compiled :func:`_denoise_loop` (numba is a dependency of s2emu; compiled once, cached on disk)."""
    if not _DENOISE:
        from numba import njit

        _DENOISE.append(njit(cache=True, nogil=True)(_denoise_loop))
    return _DENOISE[0]


def batch_to_frames(events: Sequence[np.ndarray], pipe: FramePipeline, progress: bool = False) -> np.ndarray:
    """A list of event arrays -> uint8 (batch, T, P, H, W)."""
    transform = pipe.tonic_transform(denoise=False)
    it: Iterable[np.ndarray] = events
    if progress:
        from tqdm import tqdm
        it = tqdm(events, desc="events -> frames", unit="sample")
    return np.stack([events_to_frames(ev, pipe, transform) for ev in it]) if len(events) else \
        np.zeros((0, pipe.n_bins, pipe.sensor_size[2], pipe.out_size[1], pipe.out_size[0]), np.uint8)
