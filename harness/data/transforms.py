"""Event arrays -> binary spike frames, with tonic's transforms (the paper-style pipeline).

Pipeline: optional ``tonic.transforms.Denoise(filter_time)`` -> ``Downsample`` 128×128 -> 32×32
-> ``ToFrame`` into ``T`` bins -> clip counts to 1 (the chip's ``spike_list`` input is binary).
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

    def tonic_transform(self):
        """The tonic ``Compose`` of this pipeline (without the final binarisation)."""
        import tonic.transforms as tt

        steps = []
        if self.denoise_us:
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
        transform = pipe.tonic_transform()
    steps = list(transform.transforms)
    if pipe.denoise_us:  # Denoise may drop every event; tonic's ToFrame cannot bin nothing
        events = steps.pop(0)(events)
        if events.size == 0:
            return out
    for step in steps:
        events = step(events)
    frames = np.asarray(events)
    n = min(T, frames.shape[0])
    out[:n] = np.minimum(frames[:n], 1).astype(np.uint8)
    return out


def batch_to_frames(events: Sequence[np.ndarray], pipe: FramePipeline, progress: bool = False) -> np.ndarray:
    """A list of event arrays -> uint8 (batch, T, P, H, W)."""
    transform = pipe.tonic_transform()
    it: Iterable[np.ndarray] = events
    if progress:
        from tqdm import tqdm
        it = tqdm(events, desc="events -> frames", unit="sample")
    return np.stack([events_to_frames(ev, pipe, transform) for ev in it]) if len(events) else \
        np.zeros((0, pipe.n_bins, pipe.sensor_size[2], pipe.out_size[1], pipe.out_size[0]), np.uint8)
