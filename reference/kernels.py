"""Event-driven weighted sums (numba): each row's result in an order fixed by that row alone.

A row is one sample in one tick. Only its non-zero inputs are visited, and each adds ``value *
weight`` into the outputs it reaches, in an order stated per kernel (matrix: increasing input
index; convolution: kernel row, input channel, kernel column); an output starts at 0 and gets the
bias (if any) after its last term. The products and
additions are float64 or float32 operations as written (numba without ``fastmath``: LLVM neither
fuses a multiply-add nor reorders the sums), so a row's bits depend on its own values only,
never on the other rows of the call, the batch, the block of ticks or the thread count.

Shapes: ``x`` (rows, C, H, W); weights as the op stores them (below); outputs (rows, C_out, OH, OW)
for convolutions, (rows, n_out) for matrices.
"""
from __future__ import annotations

from typing import Any, Callable, Dict

import numpy as np

_CACHE: Dict[str, Callable[..., Any]] = {}


def _kernels() -> Dict[str, Callable[..., Any]]:
    """Compile (once per process; numba caches on disk) and return the loops."""
    if _CACHE:
        return _CACHE
    from numba import njit

    jit = njit(cache=True, nogil=True)

    @jit
    def conv2d_events(x, wt, bias, use_bias, sh, sw, ph, pw, dh, dw, oh, ow, out, nnz):  # pragma: no cover
        # compiled. x (R, C, H, W); wt (C, KH, KW, O): the weight of input channel c at kernel offset (i, j) for
        # every output channel; out (R, O, OH, OW); nnz (R,) gets each row's count of non-zero inputs.
        # Output (o, a, b) reads input (c, a*sh - ph + i*dh, b*sw - pw + j*dw). Per output row a, the
        # accumulator (OW, O) stays in cache: for each kernel row i, the non-zero inputs of input row
        # y(a, i) in (c, x) order add their terms, i.e. every output sums its terms in (i, c, j) order.
        rows, chans, height, width = x.shape
        kh, kw, n_out = wt.shape[1], wt.shape[2], wt.shape[3]
        ptr = np.zeros(height + 1, np.int64)
        ev_c = np.empty(chans * height * width, np.int64)
        ev_x = np.empty(chans * height * width, np.int64)
        ev_v = np.empty(chans * height * width, x.dtype)
        acc = np.empty((ow, n_out), out.dtype)
        for r in range(rows):
            k = 0
            for y in range(height):          # the row's non-zero inputs, grouped by input row, each in (c, x) order
                ptr[y] = k
                for c in range(chans):
                    for xx in range(width):
                        v = x[r, c, y, xx]
                        if v != 0:
                            ev_c[k] = c
                            ev_x[k] = xx
                            ev_v[k] = v
                            k += 1
            ptr[height] = k
            nnz[r] = k
            for a in range(oh):
                acc[:, :] = 0
                for i in range(kh):
                    y = a * sh - ph + i * dh
                    if y < 0 or y >= height:
                        continue
                    for e in range(ptr[y], ptr[y + 1]):
                        c = ev_c[e]
                        xx = ev_x[e]
                        v = ev_v[e]
                        for j in range(kw):
                            num = xx + pw - j * dw
                            if num < 0:
                                break
                            if num % sw != 0:
                                continue
                            b = num // sw
                            if b >= ow:
                                continue
                            wr = wt[c, i, j]
                            ar = acc[b]
                            for o in range(n_out):
                                ar[o] += v * wr[o]
                for o in range(n_out):
                    bo = bias[o]
                    for b in range(ow):
                        out[r, o, a, b] = acc[b, o] + bo if use_bias else acc[b, o]
        return out

    @jit
    def matvec_events(x, wt, sparse, out):  # pragma: no cover - compiled
        # x (R, N); wt (N, O) = W.T; rows with sparse[r] get y = sum over non-zero j (increasing) of x_j * W[:, j],
        # starting from 0 (out[r] must be 0 on entry); the other rows are left alone
        rows, n_in = x.shape
        n_out = wt.shape[1]
        for r in range(rows):
            if not sparse[r]:
                continue
            for j in range(n_in):
                v = x[r, j]
                if v == 0:
                    continue
                if v == 1:
                    for o in range(n_out):
                        out[r, o] += wt[j, o]
                else:
                    for o in range(n_out):
                        out[r, o] += v * wt[j, o]
        return out

    @jit
    def spiking_ticks(x, first, shifted, v, k, a, gl, folded, th, v_reset, zero, leaky, k_is_one, has_folded, ge, reset,
                      clamp, out, spk, record):  # pragma: no cover
        # compiled; zero: a (1,) array of the run's dtype (a literal 0 would widen float32 to float64).
        # shifted: tick t's input is x[t - 1], first (B, N) for t = 0 (an edge of one tick's delay). x, out (T, B, N); v (B, N) updated in place; the rest (N,).
        # per element and tick, the numpy expressions of reference.neurons in the same order:
        # IF  v = v + (x | k*x) (+ folded);  LIF  v = ((a*v) + gl) + k*x (+ folded)
        # z = v > th (>= with ge); reset 0: v - th, 1: 0, 2: v_reset where z; clamp (IF): v = max(v, -th)
        ticks, batch, n = x.shape
        plain = not leaky and k_is_one and not has_folded and not ge and reset == 0 and not clamp
        for t in range(ticks):
            xt = first if (shifted and t == 0) else x[t - 1 if shifted else t]
            if plain:  # IF, r = 1, no bias, ">", reset by subtraction: the same operations, without branches
                for bb in range(batch):
                    for i in range(n):
                        nv = v[bb, i] + xt[bb, i]
                        fired = nv > th[i]
                        v[bb, i] = nv - th[i] if fired else nv
                        out[t, bb, i] = 1 if fired else 0
                        if record:
                            spk[bb, t, i] = fired
                continue
            for bb in range(batch):
                for i in range(n):
                    if leaky:
                        nv = a[i] * v[bb, i] + gl[i]
                        nv = nv + k[i] * xt[bb, i]
                    elif k_is_one:
                        nv = v[bb, i] + xt[bb, i]
                    else:
                        nv = v[bb, i] + k[i] * xt[bb, i]
                    if has_folded:
                        nv = nv + folded[i]
                    fired = nv >= th[i] if ge else nv > th[i]
                    if fired:
                        if reset == 0:
                            nv = nv - th[i]
                        elif reset == 1:
                            nv = zero[0]
                        else:
                            nv = v_reset[i]
                    if clamp and nv < -th[i]:
                        nv = -th[i]
                    v[bb, i] = nv
                    out[t, bb, i] = 1 if fired else 0
                    if record:
                        spk[bb, t, i] = fired
        return out

    @jit
    def pool_sum(x, zero, kh, kw, sh, sw, oh, ow, out):  # pragma: no cover - compiled
        # x (R, C, H, W) already padded; out (R, C, OH, OW): 0 + the window's values in row-major window order
        rows, chans = x.shape[0], x.shape[1]
        if kh == 2 and kw == 2 and sh == 2 and sw == 2:  # the common 2x2 window, the same four additions
            for r in range(rows):
                for c in range(chans):
                    for a in range(oh):
                        for b in range(ow):
                            acc = zero[0] + x[r, c, 2 * a, 2 * b]
                            acc = acc + x[r, c, 2 * a, 2 * b + 1]
                            acc = acc + x[r, c, 2 * a + 1, 2 * b]
                            out[r, c, a, b] = acc + x[r, c, 2 * a + 1, 2 * b + 1]
            return out
        for r in range(rows):
            for c in range(chans):
                for a in range(oh):
                    for b in range(ow):
                        out[r, c, a, b] = zero[0]
                    for i in range(kh):         # each output adds its window in (i, j) order
                        for j in range(kw):
                            for b in range(ow):
                                out[r, c, a, b] += x[r, c, a * sh + i, b * sw + j]
        return out

    @jit
    def row_stats(x, nnz):  # pragma: no cover - compiled
        # x (R, N): non-zeros per row into nnz; returns (largest |x|, every value a whole number). No branches
        # in the inner loop (sparse spikes would mispredict them).
        top = 0.0
        frac = 0.0
        for r in range(x.shape[0]):
            k = 0
            for j in range(x.shape[1]):
                v = x[r, j]
                k += v != 0
                top = max(top, abs(v))
                frac = max(frac, abs(v - np.floor(v)))
            nnz[r] = k
        return top, frac == 0

    _CACHE["row_stats"] = row_stats
    _CACHE["spiking_ticks"] = spiking_ticks
    _CACHE["pool_sum"] = pool_sum
    _CACHE["conv2d_events"] = conv2d_events
    _CACHE["matvec_events"] = matvec_events
    return _CACHE


def conv2d_events(x: np.ndarray, wt: np.ndarray, bias: "np.ndarray | None", stride: tuple, padding: tuple,
                  dilation: tuple, out_hw: tuple, nnz: "np.ndarray | None" = None) -> np.ndarray:
    """Cross-correlation of every row of ``x`` (rows, C, H, W) with ``wt`` (C, KH, KW, C_out), groups 1,
    zero padding; returns (rows, C_out, OH, OW) in ``x``'s dtype. Each output starts at 0, adds
    ``x * w`` over the non-zero inputs of its window in (kernel row, input channel, kernel column)
    order, then the bias. ``nnz`` (rows,) int64, if given, receives each row's count of non-zero inputs."""
    oh, ow = out_hw
    out = np.empty((x.shape[0], wt.shape[3], oh, ow), dtype=x.dtype)
    b = np.zeros(wt.shape[3], dtype=x.dtype) if bias is None else bias
    counts = np.empty(x.shape[0], dtype=np.int64) if nnz is None else nnz
    return _kernels()["conv2d_events"](np.ascontiguousarray(x), wt, b, bias is not None, stride[0], stride[1],
                                       padding[0], padding[1], dilation[0], dilation[1], oh, ow, out, counts)


def matvec_events(x: np.ndarray, wt: np.ndarray, sparse: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Adds, for each row ``r`` of ``x`` (rows, N) with ``sparse[r]``, ``x_j * wt[j]`` over its non-zero ``j`` in
    increasing order into ``out[r]`` (rows, N_out; zero on entry for those rows). ``wt`` is ``W.T`` (N, N_out)."""
    return _kernels()["matvec_events"](np.ascontiguousarray(x), wt, sparse, out)


def spiking_ticks(x: np.ndarray, v: np.ndarray, p: Dict[str, Any], out: np.ndarray,
                  first: "np.ndarray | None" = None, spikes: "np.ndarray | None" = None) -> np.ndarray:
    """IF/LIF (spike from the new voltage, reset in the same tick) over a chunk: ``x`` (ticks, batch, N) the
    summed inputs, ``v`` (batch, N) the voltage (updated in place), ``p`` the flattened (N,) coefficients and
    flags (see :meth:`reference.neurons._Spiking.run_ticks`); writes spikes 0/1 into ``out`` (ticks, batch, N).
    With ``first`` (batch, N), tick t's input is ``x[t - 1]`` and tick 0's is ``first`` (a one-tick delay).
    With ``spikes`` (batch, ticks, N) bool (a view into a recording), the spikes are written there too."""
    x = np.ascontiguousarray(x)
    shifted = first is not None
    f = np.ascontiguousarray(first, dtype=x.dtype) if shifted else x[0]
    return _kernels()["spiking_ticks"](x, f, shifted, v, p["k"], p["a"], p["gl"], p["folded"], p["th"],
                                       p["v_reset"], np.zeros(1, x.dtype), p["leaky"], p["k_is_one"], p["has_folded"], p["ge"], p["reset"],
                                       p["clamp"], out, spikes if spikes is not None else np.zeros((1, 1, 1), bool),
                                       spikes is not None)


def pool_sum(x: np.ndarray, kernel: tuple, stride: tuple, out_hw: tuple, dtype: Any = None) -> np.ndarray:
    """Window sums of ``x`` (rows, C, H, W, padding included) into (rows, C, OH, OW) of ``dtype`` (default
    ``x``'s): each starts at 0 and adds the window's values row by row, left to right (the order of
    ``reference.ops._pool``'s slices); uint8 spikes are added as the same whole numbers."""
    dt = np.dtype(x.dtype if dtype is None else dtype)
    out = np.empty((x.shape[0], x.shape[1], *out_hw), dtype=dt)
    return _kernels()["pool_sum"](np.ascontiguousarray(x), np.zeros(1, dt), kernel[0], kernel[1], stride[0], stride[1], out_hw[0],
                                  out_hw[1], out)


def row_stats(x: np.ndarray) -> "tuple[np.ndarray, float, bool]":
    """One pass over ``x`` (rows, ...): (non-zeros per row (rows,) int64, largest magnitude, all whole numbers)."""
    rows = np.ascontiguousarray(x).reshape(x.shape[0], -1)
    nnz = np.empty(rows.shape[0], dtype=np.int64)
    top, whole = _kernels()["row_stats"](rows, nnz)
    return nnz, float(top), bool(whole)
