"""Stateless NIR nodes as batched array functions; each row's result depends on that row alone.

Every function takes ``x`` of shape ``(rows, *in_shape)`` (a row is one sample in one tick; the
layer-major walk passes a chunk's ticks x samples as rows) and returns ``(rows, *out_shape)``.
BLAS and convolution kernels pick a different summation order for a different number of rows
(numpy's ``x @ W.T`` uses gemv for one row and gemm for many; oneDNN's float32 convolution blocks
over the batch), so a weighted sum (Affine, Linear, Conv) runs batched only where its result is
provably exact, and otherwise in an order stated per row (``reference/README.md``, "Determinism"):
event by event for sparse rows (:mod:`reference.kernels`), one gemv / one torch convolution per
dense row.

**Exact sums run batched.** When a weighted sum is provably exact in a float format, its
rounding cannot depend on the order of the additions, so all rows go through one kernel call
(Affine: ``x @ W.T`` for the provable outputs; Conv: one float32 convolution when the float32
weights are provably exact in float32) and every row gets the bits the per-row orders give (the
exact sum, then the same bias add). The proof (:func:`exact_input_bound`): for one
output row with weights ``w_j`` (and its bias, when the kernel adds it inside the sum), let ``q`` be the smallest lowest-set-bit value of the non-zero terms and ``S = M * sum|w_j|
(+ |b|)`` for integer inputs ``|x_j| <= M``. Every product ``w_j x_j`` is a multiple of ``q`` of
magnitude ``<= S``, so is every partial sum in any order; when ``S < 2**p q`` (``p`` = 53 bits for
float64, 24 for float32) they are all representable, so no addition rounds. The input's maximum
and integrality are checked on every call (spikes are 0/1, sum-pooled spikes small integers);
otherwise the per-row orders run.
"""
from __future__ import annotations

import contextlib
from typing import Any, Callable, Dict, Iterator, Tuple

import numpy as np

from s2common.graph import conv_padding, node_type, pair

Op = Callable[[np.ndarray], np.ndarray]


@contextlib.contextmanager
def torch_single_thread() -> Iterator[None]:
    """Run torch on one thread inside the block, restoring the previous count after.

    One sample's convolution is too small to gain from threads (measured on 2 cores under
    load: 2 threads 3.9 ms, 1 thread 0.17 ms for cnn_sinabs' first layer), and a fixed thread
    count keeps the kernels' choices fixed from machine to machine.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def lowest_bit(values: np.ndarray) -> np.ndarray:
    """Value of the lowest set bit of each finite float (same shape, float64; ``inf`` for 0).

    ``v = m * 2**e`` with ``0.5 <= |m| < 1`` (``frexp``); ``m * 2**53`` is an integer whose
    trailing zero bits ``z`` give ``2**(e - 53 + z)``.
    """
    v = np.asarray(values, dtype=np.float64)
    m, e = np.frexp(v)
    ints = np.abs(m * 2.0 ** 53).astype(np.int64)
    low = ints & -ints  # lowest set bit of the 53-bit significand (0 for v = 0)
    with np.errstate(divide="ignore"):
        z = np.where(low > 0, np.log2(np.maximum(low, 1)).round(), 0).astype(np.int64)
    out = np.ldexp(1.0, (e - 53 + z).astype(np.int64))
    return np.where(v == 0, np.inf, out)


def exact_input_bound(w2d: np.ndarray, bias: "np.ndarray | None", dtype: np.dtype) -> float:
    """Largest integer input magnitude ``M`` for which every row sum ``sum_j w[r, j] x_j (+ b_r)``
    with integer ``|x_j| <= M`` is exact in ``dtype`` in any summation order (0 if none; see the
    module docstring). ``w2d``: (rows, terms) as cast to ``dtype``; ``bias``: (rows,) or None."""
    bounds = exact_row_bounds(w2d, bias, dtype)
    return float(bounds.min()) if bounds.size else np.inf


def exact_row_bounds(w2d: np.ndarray, bias: "np.ndarray | None", dtype: np.dtype) -> np.ndarray:
    """:func:`exact_input_bound` of each row on its own: (rows,) float64, ``inf`` for an all-zero row."""
    w = np.asarray(w2d, dtype=np.float64)
    bits = 53 if np.dtype(dtype) == np.float64 else 24
    terms = lowest_bit(w)
    b = None if bias is None else np.asarray(bias, dtype=np.float64).reshape(-1)
    q = terms.min(axis=1) if w.shape[1] else np.full(w.shape[0], np.inf)
    if b is not None:
        q = np.minimum(q, lowest_bit(b))
    s = np.abs(w).sum(axis=1) * (1 + 1e-9)      # an upper bound of sum |w| (a few roundings)
    room = np.ldexp(q, bits) / (1 + 1e-9) - (0.0 if b is None else np.abs(b) * (1 + 1e-9))
    with np.errstate(divide="ignore", invalid="ignore"):
        m = np.where(s > 0, room / s, np.inf)
    m = np.where(np.isfinite(q), m, np.inf)     # an all-zero row sums to 0 exactly
    return np.maximum(np.floor(m), 0.0)


def integer_within(x: np.ndarray, bound: float) -> bool:
    """True when every value of ``x`` is a whole number of magnitude ``<= bound``."""
    if bound <= 0:
        return False
    top = float(np.max(np.abs(x))) if x.size else 0.0
    return top <= bound and bool(np.all(np.rint(x) == x))


def make_op(name: str, node: object, in_shape: Tuple[int, ...], out_shape: Tuple[int, ...], dtype: np.dtype) -> Op:
    """The tick function of a stateless node (Affine, Linear, Scale, Conv1d/2d, pools, Flatten,
    Threshold, Input, Output). Parameters are cast to ``dtype`` once."""
    typ = node_type(node)
    if typ in ("Input", "Output"):
        return lambda x: x
    if typ in ("Affine", "Linear"):
        w = np.ascontiguousarray(np.asarray(node.weight, dtype=dtype))
        b = np.asarray(node.bias, dtype=dtype).reshape(out_shape) if typ == "Affine" else None
        return _matvec(w, b, out_shape, dtype)
    if typ == "Scale":
        s = np.asarray(node.scale, dtype=dtype).reshape(in_shape)
        return lambda x: x * s
    if typ in ("Conv1d", "Conv2d"):
        return _conv(name, node, in_shape, out_shape, dtype)
    if typ in ("SumPool2d", "AvgPool2d"):
        return _pool(name, node, typ, in_shape, out_shape, dtype)
    if typ == "Flatten":
        return lambda x: x.reshape((x.shape[0], *out_shape))
    if typ == "Threshold":
        th = np.asarray(node.threshold, dtype=dtype).reshape(in_shape)
        # nir.Threshold: z = 1 if v > threshold (strict, independent of the neurons' `compare`)
        return lambda x: (x > th).astype(dtype)
    raise NotImplementedError(f"{typ} is not a stateless node")  # neurons/Delay are handled elsewhere


#: an Affine/Linear input row with at most this fraction of non-zero entries is summed column by column
SPARSE_FRACTION = 0.25


def _matvec(w: np.ndarray, b: "np.ndarray | None", out_shape: Tuple[int, ...], dtype: np.dtype) -> Op:
    """``W @ s (+ b)`` for each row ``s`` of the batch, in an order that depends on the row alone.

    Spike inputs are sparse: a row with at most ``SPARSE_FRACTION`` non-zeros is computed as
    ``sum over the non-zero j, in increasing j, of W[:, j] * s_j`` (the columns of W are rows of
    the stored ``W.T``, added one after another from 0: :func:`reference.kernels.matvec_events`),
    denser rows as ``W @ s`` (BLAS gemv, the whole matrix). Which of the two, and every rounding,
    follows from the row's own values, so a sample's result does not depend on the batch it runs
    in; the sparse form skips the columns of silent inputs.

    Outputs whose sum is provably exact for this call's inputs (integers within the output's
    :func:`exact_row_bounds`) are computed for all rows at once by one matrix product instead:
    the exact sum is what either order gives, so the bits are the same.
    """
    import torch

    from .kernels import matvec_events, row_stats

    wt = np.ascontiguousarray(w.T)
    limit = SPARSE_FRACTION * w.shape[1]
    bounds = exact_row_bounds(w, None, dtype)  # (W s)_i exact for integer |s| <= bounds[i]
    wt_t = torch.from_numpy(wt)
    n_out = w.shape[0]

    splits: Dict[bytes, Tuple[np.ndarray, np.ndarray]] = {}

    def split(exact: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """(the outputs without a proof for this input, their W.T columns), cached."""
        key = np.packbits(exact).tobytes()
        if key not in splits:
            rest = np.flatnonzero(~exact)
            splits[key] = (rest, np.ascontiguousarray(wt[:, rest]))
        return splits[key]

    def run(x: np.ndarray) -> np.ndarray:
        rows = np.ascontiguousarray(x.reshape(x.shape[0], -1), dtype=dtype)
        nnz, top, whole = row_stats(rows)
        exact = bounds >= top if whole else np.zeros(n_out, bool)
        if exact.all():
            # torch's matmul on the thread count `simulate` fixes (numpy's BLAS may start threads of its own,
            # which stalled for milliseconds on a loaded machine)
            y = torch.from_numpy(rows).matmul(wt_t).numpy()
        else:
            rest_cols, rest_wt = split(exact)
            sparse = nnz <= limit
            part = np.zeros((rows.shape[0], rest_cols.size), dtype=dtype)
            matvec_events(rows, rest_wt, sparse, part)   # the other outputs of the sparse rows, in the fixed order
            for r in np.flatnonzero(~sparse):
                part[r] = (w @ rows[r])[rest_cols]         # gemv on the whole matrix, as for one row alone
            if rest_cols.size * 2 < n_out:
                # mostly provable: one product for every output (the provable ones are exact), the others replaced
                y = torch.from_numpy(rows).matmul(wt_t).numpy()
            else:
                y = np.empty((rows.shape[0], n_out), dtype=dtype)
                ex_cols = np.flatnonzero(exact)
                if ex_cols.size:
                    y[:, ex_cols] = torch.from_numpy(rows).matmul(torch.from_numpy(np.ascontiguousarray(wt[:, ex_cols]))).numpy()
            y[:, rest_cols] = part
        if b is not None:
            y = y + b.reshape(-1)
        return y.reshape((x.shape[0], *out_shape))

    return run


#: a conv with at most this many input channels on sparse rows takes the event loop even where float32 is exact
EVENTS_MAX_CHANNELS = 4
#: a Conv input row with at most this fraction of non-zero entries is summed event by event
CONV_SPARSE_FRACTION = 0.25


def _float32_exact_bound(w: np.ndarray, bias: np.ndarray) -> float:
    """:func:`exact_input_bound` in float32 of a conv's weights (C_out, ...) and bias, 0 unless both are
    float32 values (so a float32 kernel sees exactly the run's weights)."""
    w64 = np.asarray(w, dtype=np.float64)
    b64 = np.asarray(bias, dtype=np.float64)
    if not (np.array_equal(w64.astype(np.float32), w64) and np.array_equal(b64.astype(np.float32), b64)):
        return 0.0
    return exact_input_bound(w64.reshape(w64.shape[0], -1), b64 if np.any(b64) else None, np.float32)


def _float32_conv_is_ieee() -> bool:
    """True unless torch was told to run float32 convolutions at a lower internal precision (bf16/tf32)."""
    import torch

    prec = getattr(getattr(torch.backends.mkldnn, "conv", None), "fp32_precision", "none")
    return prec in ("none", "ieee")


def _conv(name: str, node: object, in_shape: Tuple[int, ...], out_shape: Tuple[int, ...], dtype: np.dtype) -> Op:
    """Conv1d/Conv2d of each row (rows, C, *spatial), in an order that depends on the row alone.

    * Provably exact in float32 (integer inputs within :func:`exact_input_bound` of the float32 weights and
      bias, e.g. a quantized graph's integer weights on spikes or pooled spikes): one float32 torch call
      for all rows; the exact sum is what any kernel and order gives, so the bits are those of the other
      two paths.
    * Otherwise, groups 1: a row with at most ``CONV_SPARSE_FRACTION`` non-zeros is summed event by event
      (:func:`reference.kernels.conv2d_events`: terms in (kernel row, input channel, kernel column) order, then
      the bias); denser rows and
      grouped convolutions run one torch call per row (one im2col + gemm each, ``slow_conv2d`` in float64).
    """
    import torch

    from .kernels import conv2d_events, row_stats

    typ = node_type(node)
    tdtype = torch.float64 if np.dtype(dtype) == np.float64 else torch.float32
    w_np = np.asarray(node.weight, dtype=dtype)
    w = torch.as_tensor(w_np, dtype=tdtype)
    bias = np.broadcast_to(np.asarray(node.bias, dtype=dtype), (w.shape[0],)).copy()
    b = torch.as_tensor(bias, dtype=tdtype)
    groups = int(np.asarray(node.groups).ravel()[0])
    pad = conv_padding(node, name, in_shape[1:])
    if typ == "Conv2d":
        stride = pair(node.stride, "stride", name)
        dil = pair(node.dilation, "dilation", name)
        fn = torch.nn.functional.conv2d
    else:
        stride = (int(np.atleast_1d(node.stride)[0]),)
        dil = (int(np.atleast_1d(node.dilation)[0]),)
        fn = torch.nn.functional.conv1d
    bound32 = _float32_exact_bound(w_np, bias)
    w32, b32 = w.to(torch.float32), b.to(torch.float32)
    # the event kernel works on 2-d maps: a Conv1d is a Conv2d of height 1
    w4 = w_np if typ == "Conv2d" else w_np[:, :, None, :]
    wt = np.ascontiguousarray(w4.transpose(1, 2, 3, 0))     # (C_in, KH, KW, C_out)
    ev_stride, ev_pad, ev_dil = ((stride, pad, dil) if typ == "Conv2d" else ((1, *stride), (0, *pad), (1, *dil)))
    ev_out = tuple(out_shape[1:]) if typ == "Conv2d" else (1, out_shape[1])
    ev_bias = bias if np.any(bias) else None
    size = int(np.prod(in_shape))
    # few input channels: the float32 kernel gains little over the event loop (measured: 2 -> 16 channels)
    ev_cheaper = w_np.shape[1] <= EVENTS_MAX_CHANNELS

    def one(s: np.ndarray) -> np.ndarray:
        t = torch.from_numpy(np.ascontiguousarray(s))[None]
        return fn(t, w, b, stride=stride, padding=pad, dilation=dil, groups=groups)[0].numpy()

    def run(x: np.ndarray) -> np.ndarray:
        n = x.shape[0]
        x = np.ascontiguousarray(x, dtype=dtype)
        if groups == 1 and bound32 == 0:
            # no float32 path: the event loop on every row (it counts each row's non-zeros), dense rows again by torch
            nnz = np.empty(n, dtype=np.int64)
            out = conv2d_events(x if typ == "Conv2d" else x[:, :, None, :], wt, ev_bias, ev_stride, ev_pad, ev_dil,
                                ev_out, nnz).reshape((n, *out_shape))
            for r in np.flatnonzero(nnz > CONV_SPARSE_FRACTION * size):
                out[r] = one(x[r])
            return out
        nnz, top, whole = row_stats(x)
        sparse = nnz <= CONV_SPARSE_FRACTION * size
        if n and whole and top <= bound32 and not (groups == 1 and sparse.all() and ev_cheaper) and _float32_conv_is_ieee():
            t = torch.from_numpy(x.astype(np.float32))
            y = fn(t, w32, b32, stride=stride, padding=pad, dilation=dil, groups=groups)
            return y.numpy().astype(dtype)
        if groups == 1 and sparse.all():
            got = conv2d_events(x if typ == "Conv2d" else x[:, :, None, :], wt, ev_bias, ev_stride, ev_pad, ev_dil, ev_out)
            return got.reshape((n, *out_shape))
        out = np.empty((n, *out_shape), dtype=dtype)
        if groups == 1 and sparse.any():
            idx = np.flatnonzero(sparse)
            rows = x[idx]
            if typ == "Conv1d":
                rows = rows[:, :, None, :]
            got = conv2d_events(rows, wt, ev_bias, ev_stride, ev_pad, ev_dil, ev_out)
            out[idx] = got.reshape((idx.size, *out_shape))
        else:
            sparse[:] = False
        for r in np.flatnonzero(~sparse):
            out[r] = one(x[r])
        return out

    return run


def _pool(name: str, node: object, typ: str, in_shape: Tuple[int, ...], out_shape: Tuple[int, ...], dtype: np.dtype) -> Op:
    """Sum/average pooling with zero padding; AvgPool divides by the full kernel area
    (padding counted, PyTorch's ``count_include_pad=True``). Exact order: the window is summed
    row by row in a fixed order, independent of the batch (:func:`reference.kernels.pool_sum`)."""
    kh, kw = pair(node.kernel_size, "kernel_size", name)
    sh, sw = pair(node.stride, "stride", name)
    ph, pw = pair(node.padding, "padding", name)
    _, oh, ow = out_shape
    area = float(kh * kw)

    from .kernels import pool_sum

    def run(x: np.ndarray) -> np.ndarray:
        if ph or pw:
            x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
        # out = 0; out += each window offset's slice, (i, j) row-major: one pass in numba
        src = x if x.dtype == np.uint8 else np.asarray(x, dtype=dtype)   # uint8: spikes of the layer-major walk
        out = pool_sum(src, (kh, kw), (sh, sw), (oh, ow), dtype)
        if typ == "AvgPool2d":
            out /= np.asarray(area, dtype=dtype)
        return out

    return run
