"""Bit-level comparison of two emulator recordings, reporting the first divergence."""
from __future__ import annotations

import hashlib
from typing import Iterable, Optional

import numpy as np


def raw(arr: np.ndarray) -> np.ndarray:
    """The raw bits: float32 as uint32, bool as uint8, ints as they are."""
    arr = np.ascontiguousarray(arr)
    if arr.dtype == np.float32:
        return arr.view(np.uint32)
    if arr.dtype == bool:
        return arr.view(np.uint8)
    return arr


def first_divergence(a: np.ndarray, b: np.ndarray) -> Optional[tuple]:
    """(sample, tick, neuron index) of the first differing element, or None."""
    if a.shape != b.shape:
        return ("shape", a.shape, b.shape)
    diff = raw(a).reshape(a.shape[0], a.shape[1], -1) != raw(b).reshape(b.shape[0], b.shape[1], -1)
    if not diff.any():
        return None
    s, t, n = np.argwhere(diff)[0]
    return int(s), int(t), int(n)


def assert_same_bits(rec_a, rec_b, observables: Iterable[str] = ("spikes", "i", "v")) -> None:
    """Every recorded observable of every node equal bit for bit; message names (node, obs, sample, tick, neuron)."""
    assert sorted(rec_a.data) == sorted(rec_b.data)
    for node in rec_a.data:
        for obs in observables:
            a, b = rec_a.get(node, obs), rec_b.get(node, obs)
            if a is None and b is None:
                continue
            assert a is not None and b is not None, (node, obs)
            assert a.dtype == b.dtype, (node, obs, a.dtype, b.dtype)
            where = first_divergence(a, b)
            assert where is None, f"first divergence in {node}.{obs} at (sample, tick, neuron) = {where}"


def digest(rec) -> str:
    """sha256 over every observable's raw bits, in sorted order."""
    h = hashlib.sha256()
    for node in sorted(rec.data):
        for obs in sorted(rec.data[node]):
            arr = np.ascontiguousarray(rec.data[node][obs])
            h.update(f"{node}/{obs}/{arr.dtype}/{arr.shape}".encode())
            h.update(raw(arr).tobytes())
    return h.hexdigest()
