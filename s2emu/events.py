"""Event-driven synaptic delivery: each source spike adds its synapse row to the targets' input.

SpiNNaker2 delivers spikes this way: every source neuron has a *synapse row* (its targets and
integer weights), and an arriving spike adds that row into the targets' input buffers. The
engine does the same when a projection's source is sparse: work is proportional to
``spikes x synapses per spike`` instead of ``rows x dense multiply-adds per row``.

Exactness: the rows hold the projection's integer weights as float32 (or float64), every
partial sum of a target's input is an integer of magnitude at most the projection's static
bound (``s2emu.engine.exactness_bound``, below 2**24 resp. 2**53), so adding the rows in any
order gives exactly the integer sum the dense kernel gives. The zero-initialised buffer is
+0.0 and no row holds a zero (zeros are not stored), so no -0.0 can appear either.

Two row formats. **Scalar rows** (:class:`SynapseRows`, one (target, weight) pair per synapse):
a dense projection without pooling takes them straight from its weight matrix
(:func:`rows_from_matrices`); pool-only projections and grouped convolutions get them from
the projection's own dense kernel applied to one-hot inputs (:func:`synapse_rows`, limited
to ``MAX_BUILD_ELEMENTS``), so pooling, padding, stride, dilation and groups mean exactly what
they mean on the dense path. **Vector rows** (:class:`s2emu.vector_rows.VectorRows`): conv2d
(groups 1, with or without a sum pool) and pooled dense projections, built from the
projection's geometry, each entry one contiguous add over the output channels; no size
limit. :func:`deliver` takes either. The scatter loops are compiled with numba (one thread,
no Python per spike); without numba the engine keeps its dense path (:data:`AVAILABLE`).
"""
from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, List, Optional, Sequence

import numpy as np
import torch

#: numba is installed with the package (pyproject); it is imported on first use (it adds ~0.2 s to
#: an import), and if it cannot be imported the engine keeps its dense path (see :func:`available`)
AVAILABLE = importlib.util.find_spec("numba") is not None

#: largest ``pre x max(pre, post)`` (neurons) for which synapse rows are built from one-hot inputs
#: (pool-only projections and grouped convs; convs and pooled dense projections get vector rows
#: from their geometry, without this limit): building runs the dense kernel on ``pre`` one-hot
#: rows of ``pre`` elements each, producing ``post`` outputs each (about 0.1-0.3 s at this size)
MAX_BUILD_ELEMENTS = 2 ** 26
#: largest number of stored synapses per weight set (8 bytes each: int32 target + weight)
MAX_SYNAPSES = 2 ** 24


@dataclass(frozen=True)
class SynapseRows:
    """One projection's synapse rows in compressed-row form (as SpiNNaker's synaptic matrix).

    Attributes:
        indptr: (pre + 1,) int64; row ``j`` is ``indices[indptr[j]:indptr[j+1]]``.
        indices: (synapses,) uint32 target neuron, NIR (C, H, W) order of the post population (unsigned:
            numba then indexes without the negative-index check, measured ~20 % faster per synapse).
        weights: (synapses,) float32 or float64 integer-valued weights (never 0).
        post_size: number of target neurons.
    """

    indptr: np.ndarray
    indices: np.ndarray
    weights: np.ndarray
    post_size: int

    @property
    def synapses_per_spike(self) -> float:
        """Mean row length (synapses a spike of a random source neuron adds)."""
        pre = len(self.indptr) - 1
        return float(self.indptr[-1]) / max(1, pre)


def synapse_rows(dense_kernel: Callable[[torch.Tensor], List[torch.Tensor]], pre_size: int, post_size: int,
                 dtype: torch.dtype, chunk_elements: int = 2 ** 22) -> Optional[List[SynapseRows]]:
    """Synapse rows of a projection, from its dense kernel applied to one-hot source vectors.

    Args:
        dense_kernel: maps (n, pre_size) 0/1 rows of ``dtype`` to a list of (n, post_size)
            exact integer inputs in NIR order (one per weight set, e.g. excitatory/inhibitory).
        pre_size, post_size: neuron counts.
        dtype: the projection's accumulation dtype (float32 or float64).
        chunk_elements: one-hot rows per kernel call are ``chunk_elements // max(pre_size, post_size)``
            (bounds the memory of the one-hot block and of the kernel's output).

    Returns one :class:`SynapseRows` per weight set, or None when the projection is too large
    for rows (``pre_size * max(pre_size, post_size) > MAX_BUILD_ELEMENTS`` or more than
    ``MAX_SYNAPSES`` synapses): the engine then stays on its dense path.
    """
    if not available() or pre_size * max(pre_size, post_size) > MAX_BUILD_ELEMENTS:
        return None
    step = max(1, chunk_elements // max(1, pre_size, post_size))

    def blocks() -> Iterator[List[torch.Tensor]]:
        for j0 in range(0, pre_size, step):
            j1 = min(pre_size, j0 + step)
            onehot = torch.zeros((j1 - j0, pre_size), dtype=dtype)
            onehot[torch.arange(j1 - j0), torch.arange(j0, j1)] = 1.0
            yield dense_kernel(onehot)

    return rows_from_blocks(blocks(), pre_size, post_size)


def rows_from_matrices(matrices: Sequence[torch.Tensor], chunk_rows: int = 4096) -> Optional[List[SynapseRows]]:
    """Synapse rows from explicit (pre, post) integer weight matrices (a dense projection's ``W.T``)."""
    if not available():
        return None
    pre_size, post_size = matrices[0].shape
    return rows_from_blocks(([m[j0:j0 + chunk_rows] for m in matrices] for j0 in range(0, pre_size, chunk_rows)),
                            pre_size, post_size)


def rows_from_blocks(blocks: Iterable[List[torch.Tensor]], pre_size: int, post_size: int
                     ) -> Optional[List[SynapseRows]]:
    """Compress consecutive (n_k, post) blocks of the (pre, post) matrix per weight set into rows.

    Returns None if a weight set has more than ``MAX_SYNAPSES`` non-zero synapses.
    """
    parts: List[List[tuple]] = []
    stored: List[int] = []
    for outs in blocks:
        if not parts:
            parts, stored = [[] for _ in outs], [0] * len(outs)
        for k, y in enumerate(outs):
            y = y.reshape(-1, post_size)
            nz = torch.nonzero(y)                               # row-major: sorted by source, then target
            counts = torch.bincount(nz[:, 0], minlength=y.shape[0])
            parts[k].append((counts, nz[:, 1].to(torch.int32), y[nz[:, 0], nz[:, 1]].contiguous()))
            stored[k] += int(nz.shape[0])
            if stored[k] > MAX_SYNAPSES:
                return None
    rows = []
    for chunks in parts:
        counts = torch.cat([c for c, _, _ in chunks])
        assert counts.numel() == pre_size
        indptr = np.zeros(pre_size + 1, dtype=np.int64)
        np.cumsum(counts.numpy(), out=indptr[1:])
        rows.append(SynapseRows(indptr=indptr,
                                indices=np.ascontiguousarray(torch.cat([i for _, i, _ in chunks]).numpy()).view(np.uint32),
                                weights=np.ascontiguousarray(torch.cat([w for _, _, w in chunks]).numpy()),
                                post_size=post_size))
    return rows


def deliver(spikes: np.ndarray, samples: np.ndarray, ticks: np.ndarray, out_rows: np.ndarray,
            rows: Sequence[SynapseRows], outs: Sequence[np.ndarray]) -> None:
    """Add the synapse rows of every spike in the listed (sample, tick) rows into ``outs``.

    Args:
        spikes: (batch, time, pre) bool, C-contiguous: the source's spike record.
        samples, ticks: (m,) int64: the (sample, tick) rows to read (rows without spikes may be listed).
        out_rows: (m,) int64: the output row each (sample, tick) row adds into.
        rows: synapse rows, one per weight set (:class:`SynapseRows` or vector rows).
        outs: (n, post) arrays of the rows' dtype, C-contiguous, one per weight set; added into.
    """
    src8 = spikes.view(np.uint8)
    pre = src8.shape[2]
    # whole 8-byte words of a neuron row let the scan skip 8 silent neurons at a time
    src64 = src8.view(np.uint64) if pre % 8 == 0 else np.zeros((src8.shape[0], src8.shape[1], 0), np.uint64)
    kernel = _kernel()
    for r, out in zip(rows, outs):
        if isinstance(r, SynapseRows):
            kernel(src8, src64, samples, ticks, out_rows, r.indptr, r.indices, r.weights, out)
        else:  # s2emu.vector_rows.VectorRows: contiguous runs over the output channels
            r.deliver_into(src8, src64, samples, ticks, out_rows, out)


def available() -> bool:
    """True if the compiled scatter loop can be used (numba importable); compiles it lazily."""
    return AVAILABLE and _kernel() is not None


@functools.lru_cache(maxsize=None)
def _kernel():
    """The numba-compiled :func:`_scatter` (cached on disk by numba), or None if numba fails to import."""
    try:
        from numba import njit
    except Exception:  # pragma: no cover - a broken numba install: dense path only
        return None
    return njit(cache=True, nogil=True)(_scatter)


def _scatter(src8, src64, samples, ticks, out_rows, indptr, indices, weights, out):  # pragma: no cover - compiled
    words = src64.shape[2]
    pre = src8.shape[2]
    for q in range(samples.shape[0]):
        s = samples[q]
        t = ticks[q]
        o = out[out_rows[q]]
        for w in range(words):
            if src64[s, t, w] != 0:
                for j in range(w * 8, w * 8 + 8):
                    if src8[s, t, j]:
                        for p in range(indptr[j], indptr[j + 1]):
                            o[indices[p]] += weights[p]
        for j in range(words * 8, pre):
            if src8[s, t, j]:
                for p in range(indptr[j], indptr[j + 1]):
                    o[indices[p]] += weights[p]


@functools.lru_cache(maxsize=None)
def unit_costs() -> tuple:
    """(ns per target element, ns per synapse) of event delivery, timed once per process on this machine.

    Per target: a zeroed float32 input buffer, allocated and read once (the events path starts
    from zeros and hands the rows on). Per synapse: the compiled scatter loop adding synthetic
    rows (64 synapses per spike into 4096 targets, 2 % of 1024 sources spiking). The best of 5
    short runs each, on this thread's CPU clock (other processes on a loaded machine do not
    count); the engine's events-or-kernel choice compares them with its own measured dense
    kernel cost.
    """
    rng = np.random.default_rng(0)
    pre, post, per = 1024, 4096, 64
    n_rows = 64
    zero_elems = n_rows * post
    best_zero = min(_timed(lambda: float(np.zeros((n_rows, post), dtype=np.float32).sum())) for _ in range(5))
    if not available():
        return (best_zero * 1e9 / zero_elems, float("inf"))
    rows = SynapseRows(indptr=np.arange(0, (pre + 1) * per, per, dtype=np.int64),
                       indices=rng.integers(0, post, pre * per).astype(np.uint32),
                       weights=np.ones(pre * per, dtype=np.float32), post_size=post)
    spikes = rng.random((n_rows, 1, pre)) < 0.02
    samples = np.arange(n_rows, dtype=np.int64)
    ticks = np.zeros(n_rows, dtype=np.int64)
    out = np.zeros((n_rows, post), dtype=np.float32)
    deliver(spikes, samples, ticks, samples, [rows], [out])  # compile / load from numba's cache
    best = min(_timed(lambda: deliver(spikes, samples, ticks, samples, [rows], [out])) for _ in range(5))
    synapses = int(np.count_nonzero(spikes)) * per
    return (best_zero * 1e9 / zero_elems, best * 1e9 / max(1, synapses))


def _timed(fn: Callable[[], object]) -> float:
    """CPU seconds of this thread spent in ``fn()`` (single-threaded work only)."""
    import time

    t0 = time.thread_time()
    fn()
    return time.thread_time() - t0
