"""The fast engine: the golden model's arithmetic, batched over samples with torch.

Same bits as :class:`s2emu.golden.GoldenModel` for any batch size and thread count:

* Integer synaptic sums are computed as float32 (or float64) matmul / conv2d / sum-pool on
  0/1 spike maps. They are **exact**: every partial sum is an integer of magnitude at most
  the projection's static bound ``B = max over post neurons of sum(|w|) * pool_area``, and
  every integer below ``2**24`` (float32) or ``2**53`` (float64) is representable, so no
  summation order (BLAS blocking, threads, batch size) can round. The bound is checked per
  projection at construction (:func:`exactness_bound`): float32 if ``B < 2**24``, float64 if
  ``B < 2**53``, else :class:`s2common.errors.DesignRuleError`. As a second guard the engine
  checks that conv/matmul outputs are integral (a convolution algorithm with non-integer
  transforms, e.g. Winograd, would break the argument) and raises UnsupportedError if not.
* The per-population sum over projections is done in int32; the float32 state update is
  elementwise, in the golden model's order (see :mod:`s2emu.golden`), one torch op per
  rounding (no fused kernels), so it is the same IEEE float32 arithmetic.
* Work is skipped when a source population emitted no spike in the ticks that are delivered.

Internal layout (invisible in the Recording): buffers are time-major ``(time, batch, neurons)``
so that a chunk of ticks is one contiguous slice, and the neurons of a (C, H, W) population are
stored in (H, W, C) order so that a spike map is a channels-last view that ``conv2d`` and
``avg_pool2d`` take without copying. Parameters and dense weight columns are permuted to match;
the Recording is put back in NIR's (C, H, W) order at the end.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from s2common.errors import DesignRuleError, UnsupportedError
from s2common.recording import Recording

from .network import Population, Projection, RuleViolation, S2Network
from .runio import Record, check_input, detail_set, meta

FLOAT32_EXACT = 2 ** 24
FLOAT64_EXACT = 2 ** 53
INT32_MAX = 2 ** 31 - 1
#: memory budget of one chunk of ticks in the layer schedule (float64 worst case)
CHUNK_BYTES = 64 * 2 ** 20


def exactness_bound(proj: Projection, pre: Population) -> int:
    """Largest |partial sum| the projection can produce in one tick, from its weights alone.

    Every spike is 0 or 1; sum pooling adds at most ``pool_area`` spikes per pooled input.
    dense: ``max_i sum_j |W_ij| * area``; conv2d: ``max_co sum |W[co]| * area`` (an output
    sees each kernel tap at most once); pool: ``kh * kw``.
    """
    area = int(np.prod(proj.pool)) if proj.pool is not None else 1
    if proj.kind == "pool":
        return area
    w = np.abs(proj.weight.astype(np.int64))
    if proj.kind == "dense":
        return int(w.sum(axis=1).max(initial=0)) * area
    return int(w.reshape(w.shape[0], -1).sum(axis=1).max(initial=0)) * area


def hwc_order(shape: Tuple[int, ...]) -> np.ndarray:
    """For each internal neuron position, its C-order (NIR) index. 3-D shapes are stored as (H, W, C)."""
    size = int(np.prod(shape))
    if len(shape) != 3:
        return np.arange(size)
    return np.arange(size).reshape(shape).transpose(1, 2, 0).ravel()


@dataclass
class _Compiled:
    proj: Projection
    dtype: torch.dtype
    bound: int
    weights: Tuple[Optional[torch.Tensor], ...]  # (all,) or (exc, inh) for curr_exp posts
    split: bool
    pre_shape: Tuple[int, ...]                  # NIR shape of the pre population
    post_size: int


class Engine:
    """Fast batched engine. ``Engine(net).run(x)`` with x (batch, time, *input_shape) 0/1.

    Args:
        net: the lowered network.
        check_integral: run-time guard of the exactness argument: ``"first"`` (default) checks
            that each projection's first non-empty output of a run is integral (kernels are
            chosen per shape, so that is where a non-exact algorithm would show); ``"always"``
            checks every tick; ``"never"`` trusts the static bound alone.
        mode: ``"auto"`` (default: ``"layers"`` for feed-forward networks, else ``"ticks"``),
            or force a schedule (``"layers"`` is only valid without recurrent projections).
    """

    name = "torch"

    def __init__(self, net: S2Network, check_integral: str = "first", mode: str = "auto") -> None:
        if check_integral is True:
            check_integral = "always"
        elif check_integral is False:
            check_integral = "never"
        if check_integral not in ("first", "always", "never"):
            raise ValueError(f"check_integral must be 'first', 'always' or 'never', got {check_integral!r}")
        if mode not in ("auto", "layers", "ticks"):
            raise ValueError(f"mode must be 'auto', 'layers' or 'ticks', got {mode!r}")
        self.net = net
        self.check_integral = check_integral
        self.mode = mode
        self.compiled: List[_Compiled] = []
        problems: List[RuleViolation] = []
        self.post_bound: Dict[str, int] = {}
        for proj in net.projections:
            pre = net.populations[proj.pre]
            post = net.populations[proj.post]
            bound = exactness_bound(proj, pre)
            self.post_bound[proj.post] = self.post_bound.get(proj.post, 0) + bound
            if bound < FLOAT32_EXACT:
                dtype = torch.float32
            elif bound < FLOAT64_EXACT:
                dtype = torch.float64
            else:  # pragma: no cover - needs > 2**53 / 127 synapses per neuron
                problems.append(RuleViolation("accumulator-overflow", proj.name, f"input bound {bound} exceeds 2**53"))
                continue
            split = post.model == "lif_curr_exp_no_delay"
            self.compiled.append(_Compiled(proj, dtype, bound, self._weights(proj, pre, dtype, split), split,
                                           tuple(pre.shape), post.size))
        for name, b in self.post_bound.items():
            if b > INT32_MAX:
                problems.append(RuleViolation("accumulator-overflow", name,
                                              f"the summed synaptic input can reach {b}, beyond int32"))
        if problems:
            raise DesignRuleError("; ".join(p.one_line() for p in problems), violations=problems,
                                  rule=problems[0].rule, node=problems[0].node)
        self.neurons = [p for p in net.populations.values() if p.model != "spike_list"]
        self.order = {n: hwc_order(p.shape) for n, p in net.populations.items()}
        # populations whose whole input (all projections summed) stays below 2**24 are summed in
        # float32 directly: every partial sum is an exactly representable integer, so this is
        # the same number as the int32 sum converted to float32
        self.float_sum = {p.name: self.post_bound.get(p.name, 0) < FLOAT32_EXACT for p in self.neurons}
        self.params = {p.name: {k: torch.from_numpy(np.ascontiguousarray(
                                    np.asarray(getattr(p, k), dtype=np.float32)[self.order[p.name]]))
                                for k in ("alpha_decay", "threshold", "i_offset", "v_reset", "exc_decay", "inh_decay")
                                if getattr(p, k) is not None}
                       for p in self.neurons}

    @staticmethod
    def _weights(proj: Projection, pre: Population, dtype: torch.dtype, split: bool) -> Tuple[Optional[torch.Tensor], ...]:
        if proj.kind == "pool":
            return (None,)
        w = proj.weight.astype(np.int64)
        if proj.kind == "dense" and len(pre.shape) == 3:
            # the (pooled) pre map arrives flattened in (H, W, C) order: permute the columns
            c, h, wd = pre.shape
            if proj.pool is not None:
                h, wd = h // proj.pool[0], wd // proj.pool[1]
            w = w[:, hwc_order((c, h, wd))]
        t = torch.from_numpy(np.ascontiguousarray(w))
        fmt = torch.channels_last if proj.kind == "conv2d" else torch.contiguous_format
        if not split:
            return (t.to(dtype).contiguous(memory_format=fmt),)
        return (t.clamp(min=0).to(dtype).contiguous(memory_format=fmt),
                (-t).clamp(min=0).to(dtype).contiguous(memory_format=fmt))

    # ------------------------------------------------------------------ synapses
    def _apply(self, c: _Compiled, spikes: torch.Tensor, check: bool) -> List[torch.Tensor]:
        """Exact integer input(s) (n, post.size) in internal order, from pre spikes (n, pre.size) internal.

        ``n`` is batch (tick schedule) or ticks x batch (layer schedule).
        """
        proj = c.proj
        n = spikes.shape[0]
        x = spikes if spikes.dtype == c.dtype else spikes.to(c.dtype)
        if len(c.pre_shape) == 3:
            ch, h, w = c.pre_shape
            x = x.reshape(n, h, w, ch).permute(0, 3, 1, 2)  # NCHW view in channels-last memory
            if proj.pool is not None:
                x = F.avg_pool2d(x, kernel_size=proj.pool, stride=proj.pool, divisor_override=1)
        outs = []
        if proj.kind == "pool":
            outs.append(_flat_hwc(x, n))
        elif proj.kind == "dense":
            x = _flat_hwc(x, n) if x.dim() == 4 else x
            for wt in c.weights:
                outs.append(torch.mm(x, wt.t()))
        else:
            for wt in c.weights:
                y = F.conv2d(x, wt, stride=proj.stride, padding=proj.padding, dilation=proj.dilation, groups=proj.groups)
                outs.append(_flat_hwc(y, n))
        if check:
            for y in outs:
                if not torch.equal(y, torch.round(y)):
                    raise UnsupportedError(f"projection {proj.name}: the {c.dtype} kernel returned a non-integer sum; "
                                           "the exactness argument does not hold for this torch build",
                                           rule="inexact-integer-kernel", node=proj.name,
                                           hint="report this; run with a float64 build or the golden model")
        return outs

    # ------------------------------------------------------------------ run
    def run(self, input_spikes: object, record: Record = None) -> Recording:
        """Run a batch. ``input_spikes`` (batch, time, *input_shape), bool or 0/1.

        Returns spikes of all populations (and the Input); with ``record="all"`` or a list of
        population names also ``i`` (int32, the tick's net integer input) and ``v`` (float32,
        after reset), each (batch, time, *population_shape).

        Two schedules, same arithmetic and bits: ``"layers"`` (feed-forward networks: one
        population at a time over a chunk of ticks; its synaptic input for the whole chunk
        is one batched matmul/conv, because every input comes from an earlier population or
        an earlier tick) and ``"ticks"`` (recurrent networks: all populations tick by tick).
        """
        net = self.net
        x_np = check_input(net, input_spikes)
        batch, ticks = x_np.shape[:2]
        detail = detail_set(net, record)
        mode = self.schedule
        run = _Run(self, batch, ticks, detail)
        inp = net.populations[net.input_name]
        run.spikes[net.input_name] = torch.from_numpy(_to_internal(x_np, inp.shape))
        # IEEE subnormals as the golden model (numpy) has them, even if someone enabled
        # torch.set_flush_denormal(True) in this process
        flushed = _denormals_flushed()
        if flushed:
            torch.set_flush_denormal(False)
        try:
            if mode == "layers":
                self._run_layers(run)
            else:
                self._run_ticks(run)
        finally:
            if flushed:
                torch.set_flush_denormal(True)

        rec = Recording(dt=float(net.options.dt),
                        meta=meta(net, "torch", {"threads": torch.get_num_threads(), "schedule": mode}))
        rec.add(net.input_name, "spikes", x_np.copy())
        for p in self.neurons:
            rec.add(p.name, "spikes", _to_nir(run.spikes[p.name].numpy(), p.shape))
            if p.name in detail:
                rec.add(p.name, "i", _to_nir(run.i_rec[p.name].numpy(), p.shape))
                rec.add(p.name, "v", _to_nir(run.v_rec[p.name].numpy(), p.shape))
        return rec

    @property
    def schedule(self) -> str:
        """``"layers"`` if every projection goes from an earlier population to a later one, else ``"ticks"``."""
        order = {n: k for k, n in enumerate(self.net.populations)}
        acyclic = all(order[c.proj.pre] < order[c.proj.post] for c in self.compiled)
        if self.mode == "layers" and not acyclic:
            raise ValueError("the 'layers' schedule needs a feed-forward network; this one has recurrent projections")
        if self.mode != "auto":
            return self.mode
        return "layers" if acyclic else "ticks"

    def _check(self, k: int, checked: set) -> bool:
        check = self.check_integral == "always" or (self.check_integral == "first" and k not in checked)
        checked.add(k)
        return check

    def _run_layers(self, run: "_Run") -> None:
        net, batch, ticks = self.net, run.batch, run.ticks
        checked: set = set()
        for p in self.neurons:
            incoming = [(k, c) for k, c in enumerate(self.compiled) if c.proj.post == p.name]
            biggest = max([p.size] + [net.populations[c.proj.pre].size for _, c in incoming])
            chunk = max(1, min(ticks, CHUNK_BYTES // max(1, batch * biggest * 8)))
            state = run.new_state(p)
            for t0 in range(0, ticks, chunk):
                t1 = min(ticks, t0 + chunk)
                length = t1 - t0
                exc: List[torch.Tensor] = []
                inh: List[torch.Tensor] = []
                for k, c in incoming:
                    a, b = t0 - 1 - c.proj.delay, t1 - 1 - c.proj.delay   # source ticks of targets t0..t1-1
                    lo = max(a, 0)
                    if b <= lo:
                        continue
                    src = run.spikes[c.proj.pre][lo:b]                     # (ticks, batch, pre) contiguous
                    if not bool(src.any()):  # no spike in the window: no synaptic work
                        continue
                    outs = self._apply(c, src.reshape((b - lo) * batch, -1), self._check(k, checked))
                    for j, y in enumerate(outs):
                        y = y.reshape(b - lo, batch, p.size)
                        if lo > a:  # the first ticks of the run have no source tick yet
                            y = torch.cat([torch.zeros(lo - a, batch, p.size, dtype=y.dtype), y], dim=0)
                        (exc if j == 0 else inh).append(y)
                shape = (length, batch, p.size)
                e_f, e_i = self._sum(exc, self.float_sum[p.name], p.name in run.detail, shape)
                h_f, h_i = self._sum(inh, self.float_sum[p.name], p.name in run.detail, shape)
                for j in range(length):
                    run.step(p, state, t0 + j, e_f[j], h_f[j],
                             None if e_i is None else e_i[j], None if h_i is None else h_i[j])

    def _run_ticks(self, run: "_Run") -> None:
        batch = run.batch
        checked: set = set()
        states = {p.name: run.new_state(p) for p in self.neurons}
        for t in range(run.ticks):
            exc: Dict[str, List[torch.Tensor]] = {p.name: [] for p in self.neurons}
            inh: Dict[str, List[torch.Tensor]] = {p.name: [] for p in self.neurons}
            for k, c in enumerate(self.compiled):
                src_tick = t - 1 - c.proj.delay
                if src_tick < 0:
                    continue
                src = run.spikes[c.proj.pre][src_tick]
                if not bool(src.any()):  # no spike in that tick: no synaptic work
                    continue
                outs = self._apply(c, src, self._check(k, checked))
                exc[c.proj.post].append(outs[0])
                if c.split and len(outs) > 1:  # a pool projection has only positive (excitatory) counts
                    inh[c.proj.post].append(outs[1])
            for p in self.neurons:
                n = p.name
                e_f, e_i = self._sum(exc[n], self.float_sum[n], n in run.detail, (batch, p.size))
                h_f, h_i = self._sum(inh[n], self.float_sum[n], n in run.detail, (batch, p.size))
                run.step(p, states[n], t, e_f, h_f, e_i, h_i)

    @staticmethod
    def _sum(parts: List[torch.Tensor], float_ok: bool, want_int: bool, shape: Tuple[int, ...]
             ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Sum exact per-projection inputs: (float32 value used by the update, int32 value or None).

        ``float_ok``: the post's summed bound is below 2**24, so a float32 sum is exact.
        Otherwise the sum is taken in int32 (exact) and rounded once to float32, as the
        golden model converts its integer sum.
        """
        if not parts:
            return torch.zeros(shape, dtype=torch.float32), (torch.zeros(shape, dtype=torch.int32) if want_int else None)
        if float_ok:
            # "+ 0.0" turns an empty floating-point sum's -0.0 (0 * negative weights, if a kernel
            # accumulates that way) into the +0.0 that the chip's integer 0 converts to
            total = torch.add(parts[0] if parts[0].dtype == torch.float32 else parts[0].to(torch.float32), 0.0)
            for y in parts[1:]:
                total = total + (y if y.dtype == torch.float32 else y.to(torch.float32))
            return total, (total.to(torch.int32) if want_int else None)
        total_i = parts[0].to(torch.int32)
        for y in parts[1:]:
            total_i = total_i + y.to(torch.int32)
        return total_i.to(torch.float32), total_i


def _denormals_flushed() -> bool:
    """True if torch currently flushes float32 subnormals to zero."""
    tiny = torch.tensor([1e-39], dtype=torch.float32)  # a subnormal
    return bool((tiny * torch.tensor([1.0], dtype=torch.float32)).item() == 0.0)


def _flat_hwc(x: torch.Tensor, n: int) -> torch.Tensor:
    """(n, C, H, W) -> (n, H*W*C) in (H, W, C) order (free when x is channels-last in memory)."""
    return x.permute(0, 2, 3, 1).reshape(n, -1)


def _to_internal(x: np.ndarray, shape: Tuple[int, ...]) -> np.ndarray:
    """(batch, time, *shape) -> (time, batch, neurons) with 3-D shapes in (H, W, C) order."""
    batch, ticks = x.shape[:2]
    if len(shape) == 3:
        x = x.transpose(1, 0, 3, 4, 2)
    else:
        x = x.swapaxes(0, 1)
    return np.ascontiguousarray(x).reshape(ticks, batch, -1)


def _to_nir(a: np.ndarray, shape: Tuple[int, ...]) -> np.ndarray:
    """(time, batch, neurons) internal -> (batch, time, *shape) in NIR (C, H, W) order."""
    ticks, batch = a.shape[:2]
    if len(shape) == 3:
        c, h, w = shape
        return np.ascontiguousarray(a.reshape(ticks, batch, h, w, c).transpose(1, 0, 4, 2, 3))
    return np.ascontiguousarray(a.swapaxes(0, 1)).reshape((batch, ticks) + tuple(shape))


class _Run:
    """Buffers and neuron state of one :meth:`Engine.run` call (time-major, internal neuron order)."""

    def __init__(self, engine: Engine, batch: int, ticks: int, detail: set) -> None:
        net = engine.net
        self.batch, self.ticks, self.detail = batch, ticks, detail
        self.fma = net.options.fused_multiply_add
        self.spikes: Dict[str, torch.Tensor] = {p.name: torch.zeros((ticks, batch, p.size), dtype=torch.bool)
                                                for p in engine.neurons}
        # every tick writes every recorded population, so these need no zeroing
        self.i_rec = {n: torch.empty((ticks, batch, net.populations[n].size), dtype=torch.int32) for n in detail}
        self.v_rec = {n: torch.empty((ticks, batch, net.populations[n].size), dtype=torch.float32) for n in detail}
        self.params = engine.params

    def new_state(self, p: Population) -> Dict[str, torch.Tensor]:
        z = lambda: torch.zeros(self.batch, p.size, dtype=torch.float32)  # noqa: E731
        return {"v": z(), "i_exc": z(), "i_inh": z()}

    def step(self, p: Population, state: Dict[str, torch.Tensor], t: int, e_f: torch.Tensor, h_f: torch.Tensor,
             e_i: Optional[torch.Tensor], h_i: Optional[torch.Tensor]) -> None:
        """One tick of one population, float32 elementwise in the golden model's order."""
        pr, fma, n = self.params[p.name], self.fma, p.name
        if p.model == "lif_curr_exp_no_delay":
            state["i_exc"] = _decay_add(pr["exc_decay"], state["i_exc"], e_f, fma)
            state["i_inh"] = _decay_add(pr["inh_decay"], state["i_inh"], h_f, fma)
            vn = _decay_add(pr["alpha_decay"], state["v"], state["i_exc"], fma)
            vn = torch.sub(vn, state["i_inh"])
            net_in = None if e_i is None else e_i - h_i
        else:
            vn = _decay_add(pr["alpha_decay"], state["v"], e_f, fma)
            net_in = e_i
        vn = torch.add(vn, pr["i_offset"])
        fired = vn > pr["threshold"]
        if bool(fired.any()):
            if p.reset == "subtract":
                vn = torch.where(fired, vn - pr["threshold"], vn)
            else:
                vn = torch.where(fired, pr["v_reset"].expand_as(vn), vn)
            self.spikes[n][t] = fired
        state["v"] = vn
        if n in self.detail:
            self.i_rec[n][t] = net_in
            self.v_rec[n][t] = vn


def _decay_add(decay: torch.Tensor, state: torch.Tensor, inc: torch.Tensor, fma: bool) -> torch.Tensor:
    """``decay * state + inc`` in float32, rounding as :func:`s2emu.golden._decay_add` does."""
    if fma:
        return fma_f32(decay, state, inc)
    return torch.add(torch.mul(decay, state), inc)  # two ops, two roundings


def fma_f32(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Elementwise ``a * b + c`` rounded once to float32 (see :func:`s2emu.golden.fma_f32`)."""
    p = a.double() * b.double()          # exact
    q = c.double()
    s = p + q
    bb = s - p
    err = (p - (s - bb)) + (q - bb)      # p + q == s + err exactly
    r = s.to(torch.float32)
    r64 = r.double()
    up = s > r64
    toward = torch.nextafter(r, torch.where(up, torch.full_like(r, float("inf")), torch.full_like(r, float("-inf"))))
    tie = ((r64 + toward.double()) / 2.0 == s) & (err != 0.0) & (r64 != s)
    if not bool(tie.any()):
        return r
    go = tie & ((err > 0) == (toward.double() > r64))
    return torch.where(go, toward, r)
