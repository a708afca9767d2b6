"""Stateless NIR nodes as batched array functions, one sample at a time where it matters.

Every function takes ``x`` of shape ``(batch, *in_shape)`` (one tick) and returns
``(batch, *out_shape)``. Weighted sums (Affine, Linear, Conv) are computed **sample by
sample**: BLAS and convolution kernels pick a different summation order for a different
batch size (numpy's ``x @ W.T`` uses gemv for one row and gemm for many; oneDNN's float32
convolution blocks over the batch), so looping keeps each sample's result bit-identical
whatever batch it runs in. The per-call cost is about that of one sample of a batched call
at these sizes (measured: torch conv2d 16x16x16, 35 us per sample either way).

**Exact sums run batched.** When a weighted sum is provably exact in the run's float format, its
rounding cannot depend on the order of the additions, so the whole batch goes through one
``x @ W.T`` (gemm) and every sample still gets the bits the per-sample loop gives (the exact sum,
then the same bias add). Convolutions stay per sample: torch's float64 convolution already runs
one im2col + gemm per sample (``slow_conv2d``), and one batched call measured slower on the larger
maps (the im2col tile leaves the cache). The proof (:func:`exact_input_bound`): for one
output row with weights ``w_j`` (and its bias, when the kernel adds it inside the sum), let ``q`` be the smallest lowest-set-bit value of the non-zero terms and ``S = M * sum|w_j|
(+ |b|)`` for integer inputs ``|x_j| <= M``. Every product ``w_j x_j`` is a multiple of ``q`` of
magnitude ``<= S``, so is every partial sum in any order; when ``S < 2**p q`` (``p`` = 53 bits for
float64, 24 for float32) they are all representable, so no addition rounds. The input's maximum
and integrality are checked on every call (spikes are 0/1, sum-pooled spikes small integers);
otherwise the per-sample loop runs.
"""
from __future__ import annotations

import contextlib
from typing import Callable, Iterator, Tuple

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
    bound = float(np.floor(m.min())) if m.size else np.inf
    return max(bound, 0.0)


def integer_within(x: np.ndarray, bound: float) -> bool:
    """True when every value of ``x`` is a whole number of magnitude ``<= bound``."""
    if bound <= 0:
        return False
    top = float(np.max(np.abs(x))) if x.size else 0.0
    return top <= bound and bool(np.all(np.rint(x) == x))


def _per_sample(fn: Callable[[np.ndarray], np.ndarray], out_shape: Tuple[int, ...], dtype: np.dtype) -> Op:
    def run(x: np.ndarray) -> np.ndarray:
        out = np.empty((x.shape[0], *out_shape), dtype=dtype)
        for b in range(x.shape[0]):
            out[b] = fn(x[b])
        return out
    return run


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
    the stored ``W.T``, added one after another), denser rows as ``W @ s`` (BLAS gemv). Which
    of the two, and every rounding, follows from the row's own values, so a sample's result
    does not depend on the batch it runs in; the sparse form skips the columns of silent
    inputs (the fully connected layers' weights are megabytes, read once per row by gemv).
    """
    wt = np.ascontiguousarray(w.T)
    limit = SPARSE_FRACTION * w.shape[1]
    bound = exact_input_bound(w, None, dtype)  # y = W s exact for integer |s| <= bound
    import torch

    wt_t = torch.from_numpy(wt)

    def one(s: np.ndarray) -> np.ndarray:
        nz = np.flatnonzero(s)
        if nz.size > limit:
            y = w @ s
        else:
            y = np.zeros(w.shape[0], dtype=dtype)
            cols = wt[nz]
            vals = s[nz]
            if nz.size and not np.all(vals == 1):
                cols = cols * vals[:, None]
            for k in range(nz.size):       # row by row, increasing j: a fixed order
                y += cols[k]
        return y + b if b is not None else y

    loop = _per_sample(lambda s: one(s.reshape(-1)), out_shape, dtype)

    def run(x: np.ndarray) -> np.ndarray:
        rows = x.reshape(x.shape[0], -1)
        if x.shape[0] > 1 and integer_within(rows, bound):
            # exact: the bits of `one` for every row. torch's matmul on the thread count `simulate` fixes
            # (numpy's BLAS may start threads of its own, which stalled for milliseconds on a loaded machine)
            y = torch.from_numpy(np.ascontiguousarray(rows, dtype=dtype)).matmul(wt_t).numpy()
            if b is not None:
                y = y + b.reshape(-1)
            return y.reshape((x.shape[0], *out_shape))
        return loop(x)

    return run


def _conv(name: str, node: object, in_shape: Tuple[int, ...], out_shape: Tuple[int, ...], dtype: np.dtype) -> Op:
    import torch

    typ = node_type(node)
    tdtype = torch.float64 if np.dtype(dtype) == np.float64 else torch.float32
    w = torch.as_tensor(np.asarray(node.weight, dtype=dtype), dtype=tdtype)
    bias = np.asarray(node.bias, dtype=dtype)
    b = torch.as_tensor(np.broadcast_to(bias, (w.shape[0],)).copy(), dtype=tdtype)
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

    def one(s: np.ndarray) -> np.ndarray:
        t = torch.from_numpy(np.ascontiguousarray(s))[None]
        return fn(t, w, b, stride=stride, padding=pad, dilation=dil, groups=groups)[0].numpy()

    return _per_sample(one, out_shape, dtype)


def _pool(name: str, node: object, typ: str, in_shape: Tuple[int, ...], out_shape: Tuple[int, ...], dtype: np.dtype) -> Op:
    """Sum/average pooling with zero padding; AvgPool divides by the full kernel area
    (padding counted, PyTorch's ``count_include_pad=True``). Pure numpy, exact order:
    the window is summed row by row in a fixed order, independent of the batch."""
    kh, kw = pair(node.kernel_size, "kernel_size", name)
    sh, sw = pair(node.stride, "stride", name)
    ph, pw = pair(node.padding, "padding", name)
    _, oh, ow = out_shape
    area = float(kh * kw)

    def run(x: np.ndarray) -> np.ndarray:
        if ph or pw:
            x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
        out = np.zeros((x.shape[0], *out_shape), dtype=dtype)
        for i in range(kh):
            for j in range(kw):
                out += x[:, :, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw]
        if typ == "AvgPool2d":
            out /= np.asarray(area, dtype=dtype)
        return out

    return run
