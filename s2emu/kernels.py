"""Exact integer synaptic kernels and the fused neuron update of the fast engine.

**Integer kernels.** Spikes are 0/1 bytes and the lowered weights are int8 codes, so a
projection's synaptic input is an int8 x int8 product with int32 sums: ``torch._int_mm``
(oneDNN; VNNI / AMX-INT8 where the CPU has them). The sums are exact integers by construction,
in any summation order and for any thread count, so the bits cannot depend on the kernel, the
batch size or the threads (the float kernels need the static ``2**24`` bound for that).

* dense ``(n, pre) @ (pre, post)``: the spike rows viewed as int8, straight from the record;
* conv2d: an **im2col** tile ``(C_in*kh*kw, n*H_out*W_out)`` int8 (:func:`im2col`, one strided copy),
  then ``W (C_out, K) @ cols`` gives ``(C_out, n, H_out*W_out)``, read by the neuron update
  through strides (no transpose pass);
* sum pooling before either (kernel = stride) is done on the bytes first (:func:`sum_pool`);
  pooled counts must fit int8 (``pool area <= 127``).

A projection can use them if its weights are integers in [-127, 127] and it has one group
(:func:`int_eligible`); the engine measures the int and the float kernel on the projection's
first chunk and keeps the faster (same bits either way).

**Fused neuron update** (:func:`neuron_update`): one compiled pass per chunk of ticks over
every neuron of a population, sample by sample so that the sample's state stays in cache over
the chunk's ticks; it reads the input (int32 or exact-integer float32, any strides), updates
v in the golden model's float32 order (``fl32(alpha*v)``, ``+ fl32(I)``, ``+ i_offset``,
``v > threshold``, reset), writes the spike bytes and the per-tick spike count. One IEEE
float32 operation per rounding (numba without fastmath: LLVM neither fuses multiply-add
nor reassociates), so the bits are the golden model's. It covers ``lif_no_delay`` /
``lif_conv2d`` / ``lif`` without the FMA option; ``lif_curr_exp_no_delay`` and FMA keep the
torch path.

**Fused delivery and update** (:func:`events_update`): a population whose only input is one
projection's vector rows (:mod:`s2emu.vector_rows`) adds each tick's spike rows into a
channel-last scratch in cache and updates its neurons straight from it (same operations,
same order, same bits as :func:`neuron_update` on the delivered input).

numba is imported on first use (as in :mod:`s2emu.events`); without it the engine keeps its
torch paths (:func:`available`).
"""
from __future__ import annotations

import functools
import importlib.util
from typing import Optional, Sequence, Tuple

import numpy as np
import torch

AVAILABLE = importlib.util.find_spec("numba") is not None and hasattr(torch, "_int_mm")
#: the compiled per-tick sum pooling the loops call (set by :func:`_compiled` before they compile)
_pool_tick = None
_pool_pairs = None
#: largest weight magnitude and pooled count that fit an int8 operand
INT8_MAX = 127


_NP_DTYPES = {torch.float32: np.float32, torch.float64: np.float64, torch.int32: np.int32, torch.int8: np.int8}


def zeros(shape: Tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """A zero tensor from numpy's calloc (one thread): ``torch.zeros`` fills with OpenMP threads,
    which stall for milliseconds when another process holds the second core."""
    return torch.from_numpy(np.zeros(shape, dtype=_NP_DTYPES[dtype]))


def available() -> bool:
    """True if the compiled kernels can be used (numba importable and ``torch._int_mm`` present)."""
    return AVAILABLE and _compiled() is not None


def int_eligible(kind: str, weight: Optional[np.ndarray], pool: Optional[Tuple[int, int]], groups: int) -> bool:
    """Whether a projection can run on the int8 kernels.

    Args:
        kind: ``"dense"``, ``"conv2d"`` or ``"pool"`` (pool projections have no weights: not eligible).
        weight: the projection's integer weights; every |w| must be at most 127.
        pool: sum-pool window (kh, kw) before the weights, or None; ``kh * kw <= 127``.
        groups: conv groups; only 1 is supported.
    """
    if kind not in ("dense", "conv2d") or weight is None or groups != 1:
        return False
    if pool is not None and int(np.prod(pool)) > INT8_MAX:
        return False
    w = np.asarray(weight)
    return bool(w.size == 0 or (np.all(np.abs(w) <= INT8_MAX) and np.all(w == np.round(w))))


def int8_weights(weight: np.ndarray, kind: str, split: bool) -> Tuple[torch.Tensor, ...]:
    """The weight operand(s) of :func:`int_apply`: (all,) or (excitatory, inhibitory magnitudes).

    dense: ``(pre, post)`` int8 (``W.T``); conv2d: ``(C_out, C_in*kh*kw)`` int8 (``W`` flattened).
    """
    w = torch.from_numpy(np.ascontiguousarray(np.asarray(weight).astype(np.int64)))
    sets = (w,) if not split else (w.clamp(min=0), (-w).clamp(min=0))
    if kind == "dense":
        return tuple(s.t().contiguous().to(torch.int8) for s in sets)
    return tuple(s.reshape(s.shape[0], -1).contiguous().to(torch.int8) for s in sets)


def gather_rows(src8: np.ndarray, rows: np.ndarray) -> torch.Tensor:
    """The listed rows of a (R, P) uint8 0/1 record as (n, P) int8; row -1 gives zeros."""
    idx = torch.from_numpy(rows)
    src = torch.from_numpy(src8).view(torch.int8)
    if rows.size and int(rows.min()) < 0:
        out = zeros((rows.shape[0], src.shape[1]), torch.int8)
        keep = (idx >= 0).nonzero().view(-1)
        out.index_copy_(0, keep, src.index_select(0, idx.index_select(0, keep)))
        return out
    return src.index_select(0, idx)


def sum_pool(x: torch.Tensor, pool: Tuple[int, int]) -> torch.Tensor:
    """Sum pooling with kernel = stride (floor, no padding) of (n, C, H, W) int8: (n, C, H // ph, W // pw) int8.

    Counts are at most ``ph * pw <= 127`` (:func:`int_eligible`), so int8 adds are exact.
    """
    ph, pw = pool
    n, C, H, W = x.shape
    hp, wp = H // ph, W // pw
    v = x[:, :, :hp * ph, :wp * pw].reshape(n, C, hp, ph, wp, pw)
    out = v[:, :, :, 0, :, 0].clone()
    for dy in range(ph):
        for dx in range(pw):
            if dy or dx:
                out.add_(v[:, :, :, dy, :, dx])
    return out


def im2col(x: torch.Tensor, kernel: Tuple[int, int], stride: Sequence[int], padding: Sequence[int],
           dilation: Sequence[int], out_hw: Tuple[int, int]) -> torch.Tensor:
    """im2col tile of a conv on (n, C, H, W) int8 maps: (C*kh*kw, n*H_out*W_out) int8, zeros in the padding.

    One zero-padded copy, then one copy of the windows' rows (compiled: ``wo``-long row copies
    that LLVM vectorises, measured 1.8x faster than torch's strided copy of the same ``as_strided``
    view at seed-scale conv2/conv3's shapes; the torch copy without numba).
    """
    n, C, H, W = x.shape
    kh, kw = kernel
    (sy, sx), (py, px), (dy, dx) = stride, padding, dilation
    ho, wo = out_hw
    hp, wp = H + 2 * py, W + 2 * px
    if py or px:
        xp = zeros((n, C, hp, wp), torch.int8)
        xp[:, :, py:py + H, px:px + W] = x
    else:
        xp = x.contiguous()
    cols = torch.empty((C, kh, kw, n, ho, wo), dtype=torch.int8)
    loops = _compiled() if AVAILABLE else None
    if loops is not None and n and C and ho and wo:
        loops["cols"](xp.numpy(), kh, kw, sy, sx, dy, dx, ho, wo, cols.numpy())
    else:
        cols.copy_(xp.as_strided((C, kh, kw, n, ho, wo), (hp * wp, dy * wp, dx, C * hp * wp, sy * wp, sx)))
    return cols.view(C * kh * kw, n * ho * wo)


@functools.lru_cache(maxsize=64)
def pool_index(C: int, H: int, W: int, ph: int, pw: int) -> np.ndarray:
    """(C*H*W,) int32: the pooled neuron (C, H // ph, W // pw order) each neuron of a (C, H, W) map adds
    to under sum pooling with kernel = stride, or -1 for the rows/columns that floor pooling drops."""
    c, y, x = np.meshgrid(np.arange(C), np.arange(H), np.arange(W), indexing="ij")
    hp, wp = H // ph, W // pw
    idx = (c * hp + y // ph) * wp + x // pw
    idx[(y // ph >= hp) | (x // pw >= wp)] = -1
    out = idx.reshape(-1).astype(np.int32)
    out.setflags(write=False)
    return out


def neuron_update(e: np.ndarray, v: np.ndarray, alpha: np.ndarray, thr: np.ndarray, off: np.ndarray,
                  v_reset: np.ndarray, subtract: bool, spikes: np.ndarray, count: np.ndarray, t0: int,
                  v_rec: Optional[np.ndarray], pooled: Optional[np.ndarray] = None,
                  pool_geometry: Tuple[int, int, int, int, int] = (0, 0, 0, 1, 1)) -> None:
    """Ticks ``t0 .. t0 + L - 1`` of one population, in place.

    Args:
        e: (G, L * batch, S) int32 or float32 exact integer input, C-contiguous; row ``j * batch + b``
            is tick ``t0 + j`` of sample ``b``, neuron ``g * S + s`` (NIR C order): (1, L * batch, N)
            for dense rows, (C_out, L * batch, H*W) for a conv tile.
        v: (batch, N) float32 membrane state (updated).
        alpha, thr, off, v_reset: float32 parameters, all (N,) (per neuron) or all (1,) (uniform).
        subtract: reset by subtraction (else to ``v_reset``).
        spikes: (batch, T, N) bool record (ticks t0.. written); count: (batch, T) int32 spikes per tick.
        v_rec: (batch, T, N) float32 voltage record (after reset) or None.
        pooled: (batch, T, C * H//ph * W//pw) int8, or None: the tick's spikes sum-pooled with
            kernel = stride ``(ph, pw)`` (what a pooled projection out of this population reads);
            ``pool_geometry`` = (C, H, W, ph, pw) of this population's map.
    """
    rec = v_rec if v_rec is not None else np.empty((1, 1, 1), np.float32)
    sp8 = spikes.view(np.uint8)
    sp64 = sp8.view(np.uint64) if sp8.shape[2] % 8 == 0 else np.zeros(sp8.shape[:2] + (0,), np.uint64)
    _compiled()["update"](np.ascontiguousarray(e), v, alpha, thr, off, v_reset, bool(subtract), sp8, sp64,
                          count, int(t0), rec, v_rec is not None, *_pool_args(sp8, pooled, pool_geometry))


def _pool_args(sp8: np.ndarray, pooled: Optional[np.ndarray], geometry: Tuple[int, int, int, int, int]) -> tuple:
    """The pooling arguments of the compiled loops: (pooled or a dummy, pooling, pool_index, pairs,
    uint16 view of the spike record, C, H, W, ph).

    ``pairs``: the window is 2 wide and the map's width even, so each pooled row is summed by
    :func:`_pool_pairs_py` (a dense pass over the record viewed as byte pairs, vectorised; measured
    ~5 us per tick of a 16x64x64 map against 30-100 us for the sparse pass at 2-10 % activity);
    else :func:`_pool_tick_py` through ``pool_index``.
    """
    if pooled is None:
        return (np.empty((1, 1, 1), np.int8), False, np.empty(0, np.int32), False,
                np.empty((1, 1, 0), np.uint16), 0, 0, 0, 1)
    C, H, W, ph, pw = (int(k) for k in geometry)
    pairs = pw == 2 and W % 2 == 0
    sp16 = sp8.view(np.uint16) if pairs else np.empty((1, 1, 0), np.uint16)
    index = np.empty(0, np.int32) if pairs else pool_index(C, H, W, ph, pw)
    return pooled, True, index, pairs, sp16, C, H, W, ph


# ----------------------------------------------------------------------------- compiled loops

def _update(e, v, alpha, thr, off, v_reset, subtract, spikes, sp64, count, t0, v_rec, record,
            pooled, pooling, pool_index, pairs, sp16, pc, ph_, pw_, pky):  # pragma: no cover - compiled
    G, R, S = e.shape
    B = v.shape[0]
    L = R // B
    uniform = alpha.shape[0] == 1
    a0, th0, o0, r0 = alpha[0], thr[0], off[0], v_reset[0]
    for b in range(B):
        vb = v[b]
        for j in range(L):
            t = t0 + j
            sp = spikes[b, t]
            cnt = 0
            for g in range(G):
                eg = e[g, j * B + b]
                base = g * S
                # golden order: fl32(alpha * v); + fl32(I) (exact integer, one rounding); + i_offset;
                # spike = v > threshold (strict); reset: fl32(v - threshold) or v_reset
                if uniform and subtract:
                    for s in range(S):
                        x = vb[base + s] * a0
                        x = x + np.float32(eg[s])
                        x = x + o0
                        fired = x > th0
                        vb[base + s] = x - th0 if fired else x
                        sp[base + s] = fired
                        cnt += fired
                elif uniform:
                    for s in range(S):
                        x = vb[base + s] * a0
                        x = x + np.float32(eg[s])
                        x = x + o0
                        fired = x > th0
                        vb[base + s] = r0 if fired else x
                        sp[base + s] = fired
                        cnt += fired
                elif subtract:
                    for s in range(S):
                        n = base + s
                        x = vb[n] * alpha[n]
                        x = x + np.float32(eg[s])
                        x = x + off[n]
                        fired = x > thr[n]
                        vb[n] = x - thr[n] if fired else x
                        sp[n] = fired
                        cnt += fired
                else:
                    for s in range(S):
                        n = base + s
                        x = vb[n] * alpha[n]
                        x = x + np.float32(eg[s])
                        x = x + off[n]
                        fired = x > thr[n]
                        vb[n] = v_reset[n] if fired else x
                        sp[n] = fired
                        cnt += fired
            count[b, t] = cnt
            if record:
                v_rec[b, t, :] = vb
            if pooling:
                if pairs:
                    _pool_pairs(sp16[b, t], pooled[b, t], pc, ph_, pw_, pky, cnt)
                else:
                    _pool_tick(sp, sp64[b, t], pooled[b, t], pool_index, cnt)


def events_update(rows, src: np.ndarray, src_offset: int, v: np.ndarray, alpha: np.ndarray, thr: np.ndarray,
                  off: np.ndarray, v_reset: np.ndarray, subtract: bool, spikes: np.ndarray, count: np.ndarray,
                  t0: int, length: int, pooled: Optional[np.ndarray] = None,
                  pool_geometry: Tuple[int, int, int, int, int] = (0, 0, 0, 1, 1)) -> None:
    """Ticks ``t0 .. t0 + length - 1`` of a population whose only input is one projection's vector rows, fused.

    Per (sample, tick): the source's spikes of tick ``t + src_offset`` add their vector rows
    (:class:`s2emu.vector_rows.VectorRows`) into a channel-last (H*W, C) scratch that stays in
    cache, and the neuron update reads the scratch directly (blocks of 32 positions, each
    channel's run of neurons contiguous) and re-zeroes it: no (rows, neurons) input buffer is
    written or read. Same float32 operations and order as :func:`neuron_update` (the scratch holds
    the exact integer input, +0.0 where no spike arrived), so the same bits.

    Args:
        rows: the projection's (single weight set) vector rows.
        src: (batch, T, pre) bool source record; ``src_offset`` = -1 - delay (source tick - target tick);
            source ticks before 0 deliver nothing.
        v, alpha, thr, off, v_reset, subtract, spikes, count, pooled, pool_geometry: as :func:`neuron_update`.
    """
    s8 = src.view(np.uint8)
    s64 = s8.view(np.uint64) if s8.shape[2] % 8 == 0 else np.zeros(s8.shape[:2] + (0,), np.uint64)
    sp8 = spikes.view(np.uint8)
    sp64 = sp8.view(np.uint64) if sp8.shape[2] % 8 == 0 else np.zeros(sp8.shape[:2] + (0,), np.uint64)
    scratch = np.zeros((rows.positions, rows.channels), dtype=rows.table.dtype)
    _compiled()["events_update"](s8, s64, int(src_offset), rows.indptr, rows.pos, rows.pat, rows.table,
                                 rows.in_positions, rows.n_patterns, scratch, v, alpha, thr, off, v_reset,
                                 bool(subtract), alpha.shape[0] != 1, sp8, sp64, count, int(t0), int(length),
                                 *_pool_args(sp8, pooled, pool_geometry))


def fused_target_cost(rows, pre_size: int, n_rows: int = 8, repeats: int = 3) -> Tuple[float, float]:
    """(ns per target element that :func:`events_update` costs beyond :func:`neuron_update`, ns per
    target element of :func:`neuron_update` itself) on this machine.

    Both timed on ``n_rows`` ticks of one sample with one source spike per tick (the per-spike
    cost is :func:`s2emu.vector_rows.measure`'s), best of ``repeats`` on this thread's CPU clock;
    the plain update reads a zeroed input buffer (as the dense path hands it one). The first is
    never negative.
    """
    import time

    post = rows.post_size
    one = np.zeros((1, n_rows + 1, pre_size), dtype=bool)
    one[0, np.arange(n_rows), np.random.default_rng(0).integers(0, pre_size, n_rows)] = True
    p = {k: np.array([v], np.float32) for k, v in (("alpha", 1.0), ("thr", 1e30), ("off", 0.0), ("v_reset", 0.0))}
    v = np.zeros((1, post), np.float32)
    spikes = np.zeros((1, n_rows + 1, post), dtype=bool)
    count = np.zeros((1, n_rows + 1), np.int32)

    def fused() -> None:
        events_update(rows, one, -1, v, p["alpha"], p["thr"], p["off"], p["v_reset"], True, spikes, count, 1, n_rows)

    def plain() -> None:
        e = zeros((1, n_rows, post), torch.float32).numpy()
        neuron_update(e, v, p["alpha"], p["thr"], p["off"], p["v_reset"], True, spikes, count, 1, None)

    best = {}
    for name, fn in (("fused", fused), ("plain", plain)):
        fn()  # compile / load from numba's cache
        runs = []
        for _ in range(repeats):
            t0 = time.thread_time()
            fn()
            runs.append(time.thread_time() - t0)
        best[name] = min(runs)
    per_target = 1e9 / (n_rows * post)
    return max(0.0, best["fused"] - best["plain"]) * per_target, best["plain"] * per_target


def _events_update(src8, src64, src_offset, indptr, pos, pat, table, in_positions, n_patterns, scratch,
                   v, alpha, thr, off, v_reset, subtract, per_neuron, spikes, sp64, count, t0, length,
                   pooled, pooling, pool_index, pairs, sp16, pc, ph_, pw_, pky):  # pragma: no cover - compiled
    B = v.shape[0]
    pre = src8.shape[2]
    positions, channels = scratch.shape
    a0, th0, o0, r0 = alpha[0], thr[0], off[0], v_reset[0]
    active = np.empty(pre, np.int64)
    # positions per block: a (bp, C) block of the scratch of about 16 KiB stays in L1 while each
    # channel's column of it is copied into a contiguous buffer and its bp neurons are updated
    bp = max(32, 4096 // channels)
    col_buf = np.empty(bp, scratch.dtype)
    for b in range(B):
        vb = v[b]
        for j in range(length):
            t = t0 + j
            ts = t + src_offset
            n_act = _spiking_sources(src8, src64, b, ts, active) if ts >= 0 else 0
            for a_ in range(n_act):
                _add_source_vectors(active[a_], in_positions, n_patterns, indptr, pos, pat, table, scratch)
            sp = spikes[b, t]
            cnt = 0
            # golden order (see _update): fl32(alpha * v); + fl32(I); + i_offset; v > threshold; reset.
            # Blocks of bp positions: the scratch block (bp x C) stays in L1 while each channel's
            # run of bp neurons is updated contiguously
            for p0 in range(0, positions, bp):
                p1 = min(positions, p0 + bp)
                m = p1 - p0
                # per channel: its column of the block's input copied into a contiguous buffer, so that
                # the update runs over contiguous slices (indices from range(): LLVM vectorises it)
                for c in range(channels):
                    lo = c * positions + p0
                    vs = vb[lo:lo + m]
                    ss = sp[lo:lo + m]
                    bs = col_buf
                    col = scratch[p0:p1, c]
                    for i in range(m):
                        bs[i] = col[i]
                    if not per_neuron and subtract:
                        for i in range(m):
                            x = vs[i] * a0
                            x = x + np.float32(bs[i])
                            x = x + o0
                            fired = x > th0
                            vs[i] = x - th0 if fired else x
                            ss[i] = fired
                            cnt += fired
                    elif not per_neuron:
                        for i in range(m):
                            x = vs[i] * a0
                            x = x + np.float32(bs[i])
                            x = x + o0
                            fired = x > th0
                            vs[i] = r0 if fired else x
                            ss[i] = fired
                            cnt += fired
                    else:
                        al, th, of, rs = alpha[lo:lo + m], thr[lo:lo + m], off[lo:lo + m], v_reset[lo:lo + m]
                        for i in range(m):
                            x = vs[i] * al[i]
                            x = x + np.float32(bs[i])
                            x = x + of[i]
                            fired = x > th[i]
                            if subtract:
                                vs[i] = x - th[i] if fired else x
                            else:
                                vs[i] = rs[i] if fired else x
                            ss[i] = fired
                            cnt += fired
                if n_act:
                    scratch[p0:p1, :] = 0.0
            count[b, t] = cnt
            if pooling:
                if pairs:
                    _pool_pairs(sp16[b, t], pooled[b, t], pc, ph_, pw_, pky, cnt)
                else:
                    _pool_tick(sp, sp64[b, t], pooled[b, t], pool_index, cnt)


def _pool_pairs_py(sp16, po, C, H, W, ph, cnt):  # pragma: no cover - compiled
    """Sum-pool one tick's spike bytes, viewed as byte pairs ``sp16`` (C*H*W/2,) uint16, into ``po``
    (C * H//ph * W/2,) int8: 2-wide windows (``W`` even), ``ph`` rows (the last ``H % ph`` rows are
    dropped by the floor). Each pooled row adds its ``ph`` source rows as uint16 lanes (each byte a
    count of at most ``ph <= 63``, so no carry crosses into the other byte), then adds each lane's
    two bytes. Contiguous slices indexed by range(): LLVM vectorises every loop."""
    hp = H // ph
    wp = W // 2
    if cnt == 0:
        po[:] = 0
        return
    acc = np.empty(wp, np.uint16)
    for c in range(C):
        for yp in range(hp):
            r = (c * H + yp * ph) * wp
            row = sp16[r:r + wp]
            for k in range(wp):
                acc[k] = row[k]
            for dy in range(1, ph):
                r2 = r + dy * wp
                row = sp16[r2:r2 + wp]
                for k in range(wp):
                    acc[k] += row[k]
            ob = (c * hp + yp) * wp
            out = po[ob:ob + wp]
            for k in range(wp):
                a = acc[k]
                out[k] = np.int8((a & np.uint16(0xFF)) + (a >> np.uint16(8)))


def _cols_py(xp, kh, kw, sy, sx, dy, dx, ho, wo, out):  # pragma: no cover - compiled
    """im2col rows: ``out[c, i, j, s, y, q] = xp[s, c, y*sy + i*dy, j*dx + q*sx]`` for the zero-padded
    (n, C, Hp, Wp) int8 maps ``xp``; out (C, kh, kw, n, ho, wo) int8."""
    n, C = xp.shape[0], xp.shape[1]
    for c in range(C):
        for i in range(kh):
            for j in range(kw):
                for s in range(n):
                    for y in range(ho):
                        row = xp[s, c, y * sy + i * dy]
                        o = out[c, i, j, s, y]
                        if sx == 1:
                            seg = row[j * dx:j * dx + wo]
                            for q in range(wo):
                                o[q] = seg[q]
                        else:
                            for q in range(wo):
                                o[q] = row[j * dx + q * sx]


def _pool_tick_py(sp, sp64, po, pool_index, cnt):  # pragma: no cover - compiled
    """Sum-pool one tick's spike bytes ``sp`` (N,) into ``po`` (pooled,) int8 through ``pool_index``
    (:func:`pool_index`; -1: dropped by the floor): zero the pooled row, add one per spike (spikes
    are sparse: whole 8-byte words ``sp64`` of silent neurons are skipped; measured ~2-4x cheaper
    than a dense pass over the map at 1-5 % activity)."""
    po[:] = 0
    if cnt == 0:
        return
    words = sp64.shape[0]
    for w in range(words):
        if sp64[w] != 0:
            for n in range(w * 8, w * 8 + 8):
                if sp[n] and pool_index[n] >= 0:
                    po[pool_index[n]] += 1
    for n in range(words * 8, sp.shape[0]):
        if sp[n] and pool_index[n] >= 0:
            po[pool_index[n]] += 1


@functools.lru_cache(maxsize=None)
def _compiled():
    """The numba-compiled loops (cached on disk by numba), or None if numba cannot be imported."""
    try:
        from numba import njit
    except Exception:  # pragma: no cover - a broken numba install: torch paths only
        return None
    from .vector_rows import compiled_helpers

    jit = njit(cache=True, nogil=True)
    global _pool_tick, _pool_pairs, _spiking_sources, _add_source_vectors
    _pool_tick = jit(_pool_tick_py)      # called by the loops below (bound before they compile)
    _pool_pairs = jit(_pool_pairs_py)
    _spiking_sources, _add_source_vectors = compiled_helpers()
    return {"update": jit(_update), "events_update": jit(_events_update), "cols": jit(_cols_py)}


def int_apply(kind: str, weights: Tuple[torch.Tensor, ...], src8: np.ndarray, rows: np.ndarray,
              pre_shape: Tuple[int, ...], pool: Optional[Tuple[int, int]], conv: Optional[dict]
              ) -> Tuple[Tuple[torch.Tensor, ...], Tuple[int, int]]:
    """Exact int32 synaptic input of one projection for the listed (sample, tick) rows.

    Args:
        kind: ``"dense"`` or ``"conv2d"``; weights: from :func:`int8_weights`.
        src8: (R, pre) uint8 0/1 source record, one row per (sample, tick).
        rows: (n,) int64 rows of ``src8`` in output order (-1: a silent row).
        pre_shape: the source population's NIR shape; pool: (ph, pw) or None.
        conv: ``{"kernel", "stride", "padding", "dilation", "out_hw"}`` for conv2d.

    Returns ``(outputs, (G, S))``: one int32 tensor (G, n, S) per weight set; dense: (G, S) =
    (1, post); conv2d: (G, S) = (C_out, H_out*W_out).
    """
    n = rows.shape[0]
    x = gather_rows(src8, rows)
    if pool is not None or kind == "conv2d":
        x = x.view((n,) + tuple(pre_shape))
    if pool is not None:
        x = sum_pool(x, pool)
    if kind == "dense":
        a = x.reshape(n, -1)
        return tuple(int_mm(a, w).unsqueeze(0) for w in weights), (1, int(weights[0].shape[1]))
    cols = im2col(x, conv["kernel"], conv["stride"], conv["padding"], conv["dilation"], conv["out_hw"])
    hw = int(conv["out_hw"][0] * conv["out_hw"][1])
    return tuple(int_mm(w, cols).view(w.shape[0], n, hw) for w in weights), (int(weights[0].shape[0]), hw)


def int_mm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``torch._int_mm`` (int8 (m, k) x int8 (k, n) -> int32 (m, n), exact) on row-major operands.

    torch calls a tensor with a size-1 axis contiguous whatever that axis' stride is (e.g.
    (1, 1) for a (1, 2) matrix), and ``_int_mm`` then reads it with the wrong leading
    dimension and returns garbage: such operands are copied into canonical strides first.
    """
    return torch._int_mm(_row_major(a), _row_major(b))


def _row_major(t: torch.Tensor) -> torch.Tensor:
    rows, cols = t.shape
    if t.stride() == (cols, 1):
        return t
    out = torch.empty((rows, cols), dtype=t.dtype)
    out.copy_(t)
    return out
