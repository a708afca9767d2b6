"""The scalar golden model: one sample, one tick, one neuron at a time, like the chip's C code.

Slow on purpose. It is the oracle the fast :mod:`s2emu.engine` is checked against, bit for
bit, so it is written to be read, not to be fast:

* Synapses are rows: for every presynaptic neuron a list of ``(post neuron, int weight)``,
  built once from the projection (sum pooling folded in: a spike adds the row of every
  pooling window that contains it; windows may overlap and be zero-padded). Spikes emitted in tick ``t`` are delivered in tick ``t + 1 + delay``.
* Synaptic input is a Python ``int`` accumulated over the spikes' rows (exact).
* Neuron state is ``numpy.float32`` scalars; every arithmetic step below rounds to float32.

One tick of a ``lif_no_delay`` / ``lif`` / ``lif_conv2d`` neuron (``fused_multiply_add`` off)::

    v = fl32(alpha * v)
    v = fl32(v + fl32(I))            # I: the tick's integer input
    v = fl32(v + i_offset)
    spike = v > threshold            # strict
    v = fl32(v - threshold)  if spike and reset == "subtract"
    v = v_reset              if spike and reset == "to_v_reset"

With ``fused_multiply_add`` on, the first two lines are one rounding: ``v = fl32(alpha*v + I)``
(:func:`fma_f32`, an exact IEEE fused multiply-add).

``lif_curr_exp_no_delay`` (CubaLIF) keeps two synaptic currents; positive weights feed
``I_exc``, negative ones ``I_inh`` (as magnitudes)::

    I_exc = fl32(fl32(exc_decay * I_exc) + fl32(E))
    I_inh = fl32(fl32(inh_decay * I_inh) + fl32(H))
    v = fl32(alpha * v); v = fl32(v + I_exc); v = fl32(v - I_inh); v = fl32(v + i_offset)
    then spike and reset as above.

The recorded ``i`` is the tick's net integer input ``E - H`` (int32).
"""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import numpy as np

from s2common.recording import Recording

from .network import Population, Projection, S2Network
from .runio import Record, check_inputs, detail_set, meta

F32 = np.float32
F64 = np.float64

Row = List[Tuple[int, int]]


def _pool_index(shape: Tuple[int, ...], proj: Projection) -> Tuple[List[List[int]], Tuple[int, ...]]:
    """Map each pre neuron (C order) to the pooling windows that contain it (none if cut off by the floor).

    Windows of ``proj.pool`` (kh, kw) at stride ``proj.pool_stride`` (None: the kernel) over the
    map zero-padded by ``proj.pool_padding``: window (py, px) covers rows ``py*sy - ph ..
    py*sy - ph + kh - 1``; ``Hp = (H + 2 ph - kh) // sy + 1``. Overlapping windows give a neuron
    several windows; its spike then adds each window's row (``connection_list_for_sumpool2d``).
    """
    if proj.pool is None:
        return [[j] for j in range(int(np.prod(shape)))], tuple(shape)
    c_n, h_n, w_n = shape
    kh, kw = proj.pool
    sy, sx = proj.pool_stride or proj.pool
    ph, pw = proj.pool_padding
    hp = (h_n + 2 * ph - kh) // sy + 1
    wp = (w_n + 2 * pw - kw) // sx + 1
    index: List[List[int]] = []
    for c in range(c_n):
        for y in range(h_n):
            for x in range(w_n):
                windows = []
                for py in range(hp):
                    if not py * sy - ph <= y < py * sy - ph + kh:
                        continue
                    for px in range(wp):
                        if py * sy - ph <= y and px * sx - pw <= x < px * sx - pw + kw:
                            windows.append(c * hp * wp + py * wp + px)
                index.append(windows)
    return index, (c_n, hp, wp)


def _conv_rows(proj: Projection, in_shape: Tuple[int, int, int]) -> Tuple[List[Row], Tuple[int, int, int]]:
    """Rows of a convolution: for each input pixel (c, y, x), the outputs it touches and the weight."""
    w = proj.weight.astype(np.int64)
    c_out, cin_g, kh, kw = w.shape
    c_in, h, wd = in_shape
    sy, sx = proj.stride
    py, px = proj.padding
    dy, dx = proj.dilation
    g = proj.groups
    cout_g = c_out // g
    ho = (h + 2 * py - dy * (kh - 1) - 1) // sy + 1
    wo = (wd + 2 * px - dx * (kw - 1) - 1) // sx + 1
    rows: List[Row] = []
    for ci in range(c_in):
        grp = ci // cin_g
        for yi in range(h):
            for xi in range(wd):
                row: Row = []
                for co in range(grp * cout_g, (grp + 1) * cout_g):
                    for ky in range(kh):
                        ny = yi + py - ky * dy
                        if ny % sy:
                            continue
                        oy = ny // sy
                        if not 0 <= oy < ho:
                            continue
                        for kx in range(kw):
                            nx = xi + px - kx * dx
                            if nx % sx:
                                continue
                            ox = nx // sx
                            if not 0 <= ox < wo:
                                continue
                            wt = int(w[co, ci - grp * cin_g, ky, kx])
                            if wt:
                                row.append((co * ho * wo + oy * wo + ox, wt))
                rows.append(row)
    return rows, (c_out, ho, wo)


def synapse_rows(proj: Projection, pre: Population) -> List[Row]:
    """For each pre neuron (C order), its synapses ``(post index, weight)`` after pooling."""
    index, pooled_shape = _pool_index(pre.shape, proj)
    if proj.kind == "pool":
        base: List[Row] = [[(q, 1)] for q in range(int(np.prod(pooled_shape)))]
    elif proj.kind == "dense":
        w = proj.weight.astype(np.int64)
        base = [[(int(i), int(w[i, q])) for i in range(w.shape[0]) if w[i, q]] for q in range(w.shape[1])]
    elif proj.kind == "conv2d":
        base, _ = _conv_rows(proj, pooled_shape)
    else:  # pragma: no cover
        raise ValueError(f"unknown projection kind {proj.kind}")
    return [[syn for q in windows for syn in base[q]] for windows in index]


class GoldenModel:
    """Scalar reference implementation of the lowered network (see module docstring)."""

    def __init__(self, net: S2Network) -> None:
        self.net = net
        self.rows: List[List[Row]] = [synapse_rows(p, net.populations[p.pre]) for p in net.projections]

    def run(self, input_spikes: object, record: Record = None) -> Recording:
        """Run ``input_spikes`` (batch, time, *input_shape), sample by sample, tick by tick.

        Returns a :class:`Recording` with spikes of every population (and the Input); with
        ``record="all"`` or a list of population names also ``i`` (int32) and ``v`` (float32).
        """
        net = self.net
        xs = check_inputs(net, input_spikes)
        batch, ticks = xs[net.input_name].shape[:2]
        detail = detail_set(net, record)
        neurons = [p for p in net.populations.values() if p.model != "spike_list"]
        spikes_out = {p.name: np.zeros((batch, ticks, p.size), dtype=bool) for p in neurons}
        i_out = {n: np.zeros((batch, ticks, net.populations[n].size), dtype=np.int32) for n in detail}
        v_out = {n: np.zeros((batch, ticks, net.populations[n].size), dtype=np.float32) for n in detail}
        fma = net.options.fused_multiply_add
        for b in range(batch):
            history: Dict[str, List[np.ndarray]] = {p.name: [] for p in net.populations.values()}
            v = {p.name: [F32(0.0)] * p.size for p in neurons}
            i_exc = {p.name: [F32(0.0)] * p.size for p in neurons}
            i_inh = {p.name: [F32(0.0)] * p.size for p in neurons}
            for t in range(ticks):
                exc = {p.name: [0] * p.size for p in neurons}
                inh = {p.name: [0] * p.size for p in neurons}
                # 1. deliver the spikes emitted in tick t - 1 - delay
                for proj, rows in zip(net.projections, self.rows):
                    src_tick = t - 1 - proj.delay
                    if src_tick < 0:
                        continue
                    pre_spikes = history[proj.pre][src_tick]
                    e, h = exc[proj.post], inh[proj.post]
                    for j in range(len(pre_spikes)):
                        if not pre_spikes[j]:
                            continue
                        for post, wt in rows[j]:
                            if wt > 0:
                                e[post] += wt
                            else:
                                h[post] -= wt
                # 2. update every neuron
                for name, x in xs.items():
                    history[name].append(x[b, t].reshape(-1))
                for pop in neurons:
                    name = pop.name
                    fired = np.zeros(pop.size, dtype=bool)
                    vs = v[name]
                    for n in range(pop.size):
                        e_n, h_n = exc[name][n], inh[name][n]
                        alpha = pop.alpha_decay[n]
                        if pop.model == "lif_curr_exp_no_delay":
                            i_exc[name][n] = _decay_add(pop.exc_decay[n], i_exc[name][n], e_n, fma)
                            i_inh[name][n] = _decay_add(pop.inh_decay[n], i_inh[name][n], h_n, fma)
                            vn = _decay_add(alpha, vs[n], i_exc[name][n], fma)
                            vn = F32(vn - i_inh[name][n])
                        else:
                            vn = _decay_add(alpha, vs[n], F32(e_n - h_n), fma)
                        vn = F32(vn + pop.i_offset[n])
                        if vn > pop.threshold[n]:
                            fired[n] = True
                            vn = F32(vn - pop.threshold[n]) if pop.reset == "subtract" else F32(pop.v_reset[n])
                        vs[n] = vn
                        if name in detail:
                            i_out[name][b, t, n] = e_n - h_n
                            v_out[name][b, t, n] = vn
                    history[name].append(fired)
                    spikes_out[name][b, t] = fired
        rec = Recording(dt=float(net.options.dt), meta=meta(net, "golden"))
        for name, x in xs.items():
            rec.add(name, "spikes", x.copy())
        for pop in neurons:
            shape = (batch, ticks) + tuple(pop.shape)
            rec.add(pop.name, "spikes", spikes_out[pop.name].reshape(shape))
            if pop.name in detail:
                rec.add(pop.name, "i", i_out[pop.name].reshape(shape))
                rec.add(pop.name, "v", v_out[pop.name].reshape(shape))
        return rec


def _decay_add(decay: np.float32, state: np.float32, inc: object, fma: bool) -> np.float32:
    """``decay * state + inc`` in float32: two roundings, or one with ``fma``.

    ``inc`` is an integer (exact input sum) or a float32 current; it is first made float32
    (round to nearest; exact for integers below 2**24).
    """
    inc32 = F32(inc)
    if fma:
        return fma_f32(decay, state, inc32)
    return F32(F32(decay * state) + inc32)


def fma_f32(a: np.float32, b: np.float32, c: np.float32) -> np.float32:
    """``a * b + c`` rounded once to float32 (round to nearest, ties to even), like ``vfma.f32``.

    The product of two float32 is exact in float64. The float64 sum ``s`` may be rounded, but
    rounding is monotonic, so it can only land *on* a float32 rounding boundary (a midpoint
    between two float32), never across it. On such a tie the exact remainder ``err`` of the
    sum (Knuth's TwoSum: ``p + q == s + err`` exactly) says which side the true value is on.
    (Finite values only; overflow to inf is not treated specially.)
    """
    p = F64(a) * F64(b)
    q = F64(c)
    s = p + q
    bb = s - p
    err = (p - (s - bb)) + (q - bb)
    r = F32(s)
    if err == 0.0 or F64(r) == s:
        return r
    toward = np.nextafter(r, F32(np.inf) if s > F64(r) else F32(-np.inf))
    if (F64(r) + F64(toward)) / 2.0 != s:  # not a tie: float64 rounding cannot have crossed it
        return r
    # a tie in float64 but not in exact arithmetic: go to the neighbour on err's side
    return toward if (err > 0) == (F64(toward) > F64(r)) else r
