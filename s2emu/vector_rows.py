"""Synapse rows that add as contiguous vector runs: conv (and pooled conv / pooled dense) rows from geometry.

A conv spike of source neuron ``(ci, y, x)`` adds, at each target position ``(y', x')`` it reaches,
the weight vector ``W[:, ci, dy, dx]`` over all ``C_out`` output channels. Stored channel-last,
that is one contiguous add of ``C_out`` numbers per (spike, target position) instead of ``C_out``
scalar adds at scattered NIR (C, H, W) targets. The rows are built from the projection's
geometry (weight, stride, padding, dilation, sum-pool window / stride / padding), not from
one-hot calls of the dense kernel, so building costs ``O(pre x taps)`` and no size limit applies.

**Layout.** Rows depend only on the source's *spatial* position ``s = y * W + x``:
``indptr`` (H*W + 1,), and per entry a target position ``pos`` (``y' * W_out + x'``) and a
*pattern* ``pat``; the vector added is ``table[ci * n_patterns + pat]`` (C_out,). A pattern is
the multiset of kernel taps through which the source reaches that target: one tap for a plain
conv or a pool with kernel = stride; several when overlapping pool windows (pool stride <
pool kernel) bring the same source to the same target through different taps, whose integer
weight vectors are then summed (exact: integers far below 2**24). Patterns factor per axis
(:func:`_axis_entries`): pattern = (y pattern, x pattern), table entry = the sum over taps of
``count_y[dy] * count_x[dx] * W[:, ci, dy, dx]``.

A dense projection after a sum pool (``Flatten`` of the pooled map, then ``Affine``) is the same
thing with one target position: the conv whose kernel is the whole pooled map (W reshaped to
(post, C, Hp, Wp), no padding, 1 x 1 output): each spike adds one contiguous run of ``post``.

**Exactness.** The vectors hold integer weights (or exact integer sums of a few) as float32
(float64 beyond the float32 bound); every partial sum of a target's input is an integer of
magnitude at most the projection's static bound (``s2emu.engine.exactness_bound``, < 2**24
resp. 2**53), so any order of the adds gives the exact integer the dense kernel gives. Vectors
may hold zero entries (a zero weight, or an output channel the tap does not feed): the
accumulator starts at +0.0, the table's zeros are +0.0 (converted from integer 0), and a
round-to-nearest sum is -0.0 only if both terms are -0.0, so no -0.0 can appear.

**Delivery** (:func:`deliver`, compiled with numba, one thread): per listed (sample, tick) row,
every spike's entries are added into a channel-last (H_out*W_out, C_out) scratch that stays in
cache, which is then added into the row's NIR-order output (one transpose pass) and re-zeroed
in the same pass.
"""
from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np


@dataclass(frozen=True)
class VectorRows:
    """One weight set's vector rows (see the module docstring).

    Attributes:
        indptr: (H_in*W_in + 1,) int64 per source spatial position ``s``: entries
            ``indptr[s]:indptr[s+1]``.
        pos: (entries,) uint32 target spatial position ``y' * W_out + x'``.
        pat: (entries,) uint32 pattern; the vector is ``table[ci * n_patterns + pat]``.
        table: (C_in * n_patterns, C_out) float32/float64 C-contiguous integer-valued vectors.
        in_positions: H_in * W_in (source neurons are ``ci * in_positions + s``, NIR C order).
        positions: H_out * W_out; channels: C_out (post neuron ``co * positions + pos``).
        n_patterns: patterns per source channel.
        in_channels: C_in.
    """

    indptr: np.ndarray
    pos: np.ndarray
    pat: np.ndarray
    table: np.ndarray
    in_positions: int
    positions: int
    channels: int
    n_patterns: int
    in_channels: int

    @property
    def post_size(self) -> int:
        return self.positions * self.channels

    @property
    def pre_size(self) -> int:
        return self.in_positions * self.in_channels

    @property
    def entries_per_spike(self) -> float:
        """Mean vector adds (each of ``channels`` numbers) a spike of a random source neuron makes."""
        return float(self.indptr[-1]) / max(1, self.in_positions)

    @property
    def synapses_per_spike(self) -> float:
        """Mean scalar adds per spike (entries x channels; zeros in the vectors included)."""
        return self.entries_per_spike * self.channels

    def deliver_into(self, src8: np.ndarray, src64: np.ndarray, samples: np.ndarray, ticks: np.ndarray,
                     out_rows: np.ndarray, out: np.ndarray) -> None:
        """:func:`deliver` with these rows (the interface :func:`s2emu.events.deliver` calls)."""
        deliver(src8, src64, samples, ticks, out_rows, self, out)

    def to_dense(self) -> np.ndarray:
        """(pre, post) int64 matrix in NIR order (for tests and small projections only)."""
        c_in = self.in_channels
        m = np.zeros((self.pre_size, self.post_size), dtype=np.int64)
        co = np.arange(self.channels) * self.positions
        for ci in range(c_in):
            for s in range(self.in_positions):
                j = ci * self.in_positions + s
                for e in range(self.indptr[s], self.indptr[s + 1]):
                    m[j, co + self.pos[e]] += self.table[ci * self.n_patterns + self.pat[e]].astype(np.int64)
        return m


def _axis_entries(n_in: int, pool: int, pool_stride: int, pool_pad: int, n_pooled: int,
                  kernel: int, stride: int, pad: int, dilation: int, n_out: int
                  ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One axis of pool-then-conv: which targets a source coordinate reaches, through which taps.

    Source ``y`` (0..n_in-1) lies in pooled windows ``Y`` with ``Y*ps - pp <= y < Y*ps - pp + pk``
    (0 <= Y < n_pooled); pooled ``Y`` reaches target ``y'`` through tap ``d`` when
    ``y'*stride - pad + d*dilation == Y`` (0 <= y' < n_out). Returns ``(src, dst, pattern_id)``
    over the (source, target) pairs with at least one tap, sorted by source then target, and
    ``patterns`` (n_patterns, kernel) int64 tap counts; as arrays ``(src, dst, pid), patterns``.
    """
    counts = np.zeros((n_in, n_out, kernel), dtype=np.int64)
    for y in range(n_in):
        lo = -(-(y + pool_pad - pool + 1) // pool_stride)            # ceil((y + pp - pk + 1) / ps)
        hi = (y + pool_pad) // pool_stride
        for Y in range(max(lo, 0), min(hi, n_pooled - 1) + 1):
            for d in range(kernel):
                num = Y + pad - d * dilation
                if num % stride == 0 and 0 <= num // stride < n_out:
                    counts[y, num // stride, d] += 1
    src, dst = np.nonzero(counts.any(axis=2))
    patterns, pid = np.unique(counts[src, dst], axis=0, return_inverse=True)
    return (src, dst, pid.reshape(-1)), patterns


def conv_rows(weights: Sequence[np.ndarray], in_shape: Tuple[int, int, int], out_hw: Tuple[int, int],
              stride: Tuple[int, int], padding: Tuple[int, int], dilation: Tuple[int, int],
              pool: Optional[Tuple[int, int]], pool_stride: Optional[Tuple[int, int]],
              pool_padding: Tuple[int, int], dtype: type) -> List[VectorRows]:
    """Vector rows of ``conv2d(sum_pool(x))`` (groups = 1), one :class:`VectorRows` per weight set.

    Args:
        weights: (C_out, C_in, kh, kw) integer arrays, one per weight set (e.g. excitatory, inhibitory).
        in_shape: the source population's (C_in, H, W).
        out_hw: (H_out, W_out) of the post map.
        stride, padding, dilation: the conv's, per axis (y, x).
        pool: sum-pool window (ph, pw) before the conv, or None; ``pool_stride`` (None: the window)
            and ``pool_padding`` (zeros) as NIR's SumPool2d defines them.
        dtype: np.float32 or np.float64 (the projection's accumulation dtype).
    """
    c_in, h, w = in_shape
    c_out, cin_w, kh, kw = weights[0].shape
    if cin_w != c_in:
        raise ValueError(f"conv_rows: weight has {cin_w} input channels, the source map {c_in} (groups must be 1)")
    if pool is None:
        pk, ps, pp, hp, wp = (1, 1), (1, 1), (0, 0), h, w
    else:
        pk = tuple(int(v) for v in pool)
        ps = tuple(int(v) for v in (pool_stride or pool))
        pp = tuple(int(v) for v in pool_padding)
        hp = (h + 2 * pp[0] - pk[0]) // ps[0] + 1
        wp = (w + 2 * pp[1] - pk[1]) // ps[1] + 1
    ho, wo = out_hw
    (ys, yd, yp), ypat = _axis_entries(h, pk[0], ps[0], pp[0], hp, kh, stride[0], padding[0], dilation[0], ho)
    (xs, xd, xp), xpat = _axis_entries(w, pk[1], ps[1], pp[1], wp, kw, stride[1], padding[1], dilation[1], wo)
    # 2-D entries: every y entry with every x entry, ordered by source position then target
    src = (ys[:, None] * w + xs[None, :])
    dst = (yd[:, None] * wo + xd[None, :])
    pat = (yp[:, None] * len(xpat) + xp[None, :])
    order = np.lexsort((dst.reshape(-1), src.reshape(-1)))
    src, dst, pat = src.reshape(-1)[order], dst.reshape(-1)[order], pat.reshape(-1)[order]
    indptr = np.zeros(h * w + 1, dtype=np.int64)
    np.cumsum(np.bincount(src, minlength=h * w), out=indptr[1:])
    # tap counts of each 2-D pattern: outer product of the axis patterns, (n_pat, kh, kw)
    taps = (ypat[:, None, :, None] * xpat[None, :, None, :]).reshape(-1, kh, kw)
    n_pat = taps.shape[0]
    out = []
    for wt in weights:
        wi = np.asarray(wt).astype(np.int64)
        table = np.einsum("pyx,ocyx->cpo", taps, wi).reshape(c_in * n_pat, c_out)   # exact int64
        out.append(VectorRows(indptr=indptr, pos=dst.astype(np.uint32), pat=pat.astype(np.uint32),
                              table=np.ascontiguousarray(table.astype(dtype)), in_positions=h * w,
                              positions=ho * wo, channels=c_out, n_patterns=n_pat, in_channels=c_in))
    return out


def pooled_dense_rows(weights: Sequence[np.ndarray], in_shape: Tuple[int, int, int], pool: Tuple[int, int],
                      pool_stride: Optional[Tuple[int, int]], pool_padding: Tuple[int, int],
                      dtype: type) -> List[VectorRows]:
    """Vector rows of ``W @ flatten(sum_pool(x))``: the conv whose kernel is the whole pooled map.

    Args:
        weights: (post, C * Hp * Wp) integer arrays (NIR Affine after Flatten of the pooled map).
    """
    c, h, w = in_shape
    ps = pool_stride or pool
    hp = (h + 2 * pool_padding[0] - pool[0]) // ps[0] + 1
    wp = (w + 2 * pool_padding[1] - pool[1]) // ps[1] + 1
    kernels = [np.asarray(wt).reshape(wt.shape[0], c, hp, wp) for wt in weights]
    return conv_rows(kernels, in_shape, (1, 1), (1, 1), (0, 0), (1, 1), pool, pool_stride, pool_padding, dtype)


def deliver(src8: np.ndarray, src64: np.ndarray, samples: np.ndarray, ticks: np.ndarray, out_rows: np.ndarray,
            rows: VectorRows, out: np.ndarray) -> None:
    """Add the vector rows of every spike in the listed (sample, tick) rows into ``out`` (n, post) NIR order.

    ``src8`` (batch, time, pre) uint8 0/1; ``src64`` its uint64 view (or (…, 0) if pre % 8 != 0).
    """
    scratch = np.zeros((rows.positions, rows.channels), dtype=rows.table.dtype)
    _kernel()(src8, src64, samples, ticks, out_rows, rows.indptr, rows.pos, rows.pat, rows.table,
              rows.in_positions, rows.n_patterns, scratch, out.reshape(out.shape[0], rows.channels, rows.positions))


@functools.lru_cache(maxsize=None)
def _kernel():
    from numba import njit

    global _spiking_sources, _add_source_vectors
    _spiking_sources, _add_source_vectors = compiled_helpers()  # bound before the loop compiles
    return njit(cache=True, nogil=True)(_scatter_vectors)


@functools.lru_cache(maxsize=None)
def compiled_helpers() -> tuple:
    """``(spiking_sources, add_source_vectors)`` compiled: the two steps every vector-row delivery
    loop shares (this module's scatter and ``s2emu.kernels``' fused delivery + update)."""
    from numba import njit

    # inlined into the caller at numba's IR level: as separate calls (one per spike) cnn_sinabs' engine read
    # ~6 % slower in paired runs; inlined, the difference is within the noise (+-8 %)
    jit = njit(cache=True, nogil=True, inline="always")
    return jit(spiking_sources_py), jit(add_source_vectors_py)


def spiking_sources_py(src8, src64, s, t, active):  # pragma: no cover - compiled
    """The spiking sources of row (sample ``s``, tick ``t``) into ``active[:n]``, ascending; returns ``n``.

    ``src8`` (batch, time, pre) uint8 0/1, ``src64`` its uint64 view: whole 8-byte words of silent
    sources are skipped."""
    words = src64.shape[2]
    pre = src8.shape[2]
    n = 0
    for wd in range(words):
        if src64[s, t, wd] != 0:
            for j in range(wd * 8, wd * 8 + 8):
                if src8[s, t, j]:
                    active[n] = j
                    n += 1
    for j in range(words * 8, pre):
        if src8[s, t, j]:
            active[n] = j
            n += 1
    return n


def add_source_vectors_py(j, in_positions, n_patterns, indptr, pos, pat, table, scratch):  # pragma: no cover
    """Add source ``j``'s vector row into the channel-last (positions, C) ``scratch``."""
    channels = scratch.shape[1]
    ci = j // in_positions
    sp = j - ci * in_positions
    base = np.uint64(ci * n_patterns)                 # unsigned indices: no negative-index check
    for e in range(indptr[sp], indptr[sp + 1]):
        # 2-D indexing (not row views): numba/LLVM then vectorises the run over channels
        tp = pos[e]
        tv = base + pat[e]
        for c in range(channels):
            scratch[tp, c] += table[tv, c]


def _scatter_vectors(src8, src64, samples, ticks, out_rows, indptr, pos, pat, table, in_positions, n_patterns,
                     scratch, out):  # pragma: no cover - compiled
    pre = src8.shape[2]
    positions, channels = scratch.shape
    active = np.empty(pre, np.int64)
    for q in range(samples.shape[0]):
        n_act = _spiking_sources(src8, src64, samples[q], ticks[q], active)
        for k in range(n_act):
            _add_source_vectors(active[k], in_positions, n_patterns, indptr, pos, pat, table, scratch)
        any_spike = n_act > 0
        if not any_spike:
            continue
        # channel-last scratch -> NIR (C, H*W) output, in blocks of 32 positions (a block of the
        # scratch stays in L1 while each channel's run of the output is written contiguously)
        o = out[out_rows[q]]
        for p0 in range(0, positions, 32):
            p1 = min(positions, p0 + 32)
            for c in range(channels):
                oc = o[c]
                for p in range(p0, p1):
                    oc[p] += scratch[p, c]
            scratch[p0:p1, :] = 0.0


def measure(rows: Sequence[VectorRows], pre_size: int, n_rows: int = 16, density: float = 0.02,
            repeats: int = 3) -> Tuple[float, float]:
    """(ns per active target element, ns per source spike) of delivering ``rows`` (all weight sets), on this machine.

    Timed on the projection's own rows with seeded random spikes (``density`` of the sources, in
    ``n_rows`` rows) and with one spike per row (what is left is the per-row scratch-to-output
    pass), best of ``repeats`` each, on this thread's CPU clock (as :func:`s2emu.events.unit_costs`).
    """
    rng = np.random.default_rng(0)
    pre_pad = pre_size
    full = rng.random((n_rows, 1, pre_pad)) < density
    one = np.zeros_like(full)
    one[np.arange(n_rows), 0, rng.integers(0, pre_pad, n_rows)] = True
    samples = np.arange(n_rows, dtype=np.int64)
    ticks = np.zeros(n_rows, dtype=np.int64)
    outs = [np.zeros((n_rows, r.post_size), dtype=r.table.dtype) for r in rows]

    def run(spikes: np.ndarray) -> Callable[[], None]:
        s8 = spikes.view(np.uint8)
        s64 = s8.view(np.uint64) if pre_pad % 8 == 0 else np.zeros((n_rows, 1, 0), np.uint64)

        def go() -> None:
            for r, o in zip(rows, outs):
                deliver(s8, s64, samples, ticks, samples, r, o)
        return go

    go_full, go_one = run(full), run(one)
    go_full()  # compile / load from numba's cache
    t_full = min(_timed(go_full) for _ in range(repeats))
    t_one = min(_timed(go_one) for _ in range(repeats))
    post = sum(r.post_size for r in rows)
    spikes = max(1, int(np.count_nonzero(full)) - n_rows)
    ns_target = t_one * 1e9 / (n_rows * post)
    ns_spike = max(t_full - t_one, 0.0) * 1e9 / spikes
    return ns_target, ns_spike


def _timed(fn: Callable[[], object]) -> float:
    t0 = time.thread_time()
    fn()
    return time.thread_time() - t0
