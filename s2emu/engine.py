"""The fast engine: the golden model's arithmetic, batched over samples with torch.

Same bits as :class:`s2emu.golden.GoldenModel` for any batch size and thread count:

* Integer synaptic sums are computed as int8 x int8 -> int32 products (exact whatever the order),
  or as float32 (or float64) matmul / conv2d / sum-pool on 0/1 spike maps. Those are **exact** too: every partial sum is an integer of magnitude at most
  the projection's static bound ``B = max over post neurons of sum(|w|) * pool_area``, and
  every integer below ``2**24`` (float32) or ``2**53`` (float64) is representable, so no
  summation order (BLAS blocking, threads, batch size) can round. The bound is checked per
  projection at construction (:func:`exactness_bound`): float32 if ``B < 2**24``, float64 if
  ``B < 2**53``, else :class:`s2common.errors.DesignRuleError`. As a second guard the engine
  checks that conv/matmul outputs are integral (a convolution algorithm with non-integer
  transforms, e.g. Winograd, would break the argument) and raises UnsupportedError if not.
* The per-population sum over projections is exact (float32 below 2**24, else int32); the
  float32 state update is elementwise, in the golden model's order (see :mod:`s2emu.golden`),
  one IEEE operation per rounding (separate in-place torch ops, no fused kernels, no
  torch.compile); operations that are provable identities (``1.0 * v``, ``v + 0.0`` where v
  cannot be -0.0) are skipped, see :class:`_Plan`.
* Work follows spikes: a projection is skipped when its source emitted no spike in the
  delivered ticks, and only the (sample, tick) rows with at least one source spike go through
  the conv/matmul (the others' input is exactly 0). When the source is sparse enough that
  adding each spike's synapse row costs less than the dense kernel (:func:`_prefer_events`),
  the input is built event by event instead (:mod:`s2emu.events`; same exact integers). Conv
  and pooled-dense projections use vector rows built from their geometry
  (:mod:`s2emu.vector_rows`: per spike, one contiguous add over the output channels per target
  position); when such a projection is its population's only input, delivery and neuron
  update run as one compiled pass (:func:`s2emu.kernels.events_update`), with no input buffer.

Layout (the Recording's): buffers are ``(batch, time, neurons)`` with neurons in NIR (C, H, W)
order, so the Recording shares their memory. Spike maps are copied into channels-last float
tensors for ``conv2d``/``avg_pool2d`` (faster on CPU), fused with the bool -> float conversion;
conv outputs go back to C order in the pass that normalises -0.0 (see :func:`_rows`).

Threads: the kernels (conv/matmul/pool and the per-chunk copies) run on the caller's torch
setting (``torch.get_num_threads()``, recorded in the meta) unless ``Engine(threads=n)`` asks
for n during the run; the per-tick elementwise loop runs
on one thread (see :func:`_one_thread`; the caller's setting is restored). Results do not
depend on either. On a loaded machine ``torch.set_num_threads(1)`` before the run is faster
still (cnn_sinabs, batch 64, 2-core machine at load ~9: ~3 s with 2 threads, ~0.5-0.9 s with 1).
Kernels (:mod:`s2emu.kernels`): int8 x int8 -> int32 products (``torch._int_mm`` on spike rows and
im2col tiles; exact by construction) where the weights are int8 codes, or the float kernels above;
``kernels="auto"`` keeps whichever measured cheaper on the projection's first chunks. The neuron
update of LIF/IF populations without FMA is one compiled loop (same float32 order, same bits).
The events-or-kernel choice compares the projection's measured dense cost per row (median of
its recent chunks, after ``MEASURED_CHUNKS``) with event costs measured on this machine: per
process for scalar rows (:func:`s2emu.events.unit_costs`), on the projection's own rows for
vector rows (:func:`s2emu.vector_rows.measure`, :func:`s2emu.kernels.fused_target_cost`); not
constants fitted to one CPU.
"""
from __future__ import annotations

import functools
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from s2common.errors import DesignRuleError, UnsupportedError
from s2common.recording import Recording

from . import events
from . import kernels as _k
from . import vector_rows
from .kernels import zeros
from .network import Population, Projection, RuleViolation, S2Network
from .runio import Record, check_inputs, detail_set, meta

FLOAT32_EXACT = 2 ** 24
FLOAT64_EXACT = 2 ** 53
INT32_MAX = 2 ** 31 - 1
#: budget of one tile's synaptic input in the layer schedule (4 bytes per neuron and row): a few
#: cores' L2, so the kernel's output is read back by the neuron update from (L2/L3) cache, and
#: below glibc's largest dynamic mmap threshold (32 MiB: freed tile buffers are reused without page
#: faults). Measured 2026-12-01 (2-core AVX-512 machine, 1 thread, in one process): 8 MiB ran
#: seed-scale / psnn / cnn_sinabs 12 % / 10 % / 1 % faster than 2 MiB (fewer, larger chunks with the
#: fused event pass and bigger int8 GEMMs), 16 MiB slower again
TILE_BYTES = 8 * 2 ** 20
#: fraction of active (sample, tick) rows above which all rows go through the kernel in one slice
#: (gathering and scattering the active rows costs about two passes over the output)
DENSE_ROWS = 0.9
SYNAPSE_MODES = ("auto", "dense", "events")
#: what :meth:`Engine._deliver` returns when the chunk was delivered and updated in one fused pass
FUSED = object()
#: ``Engine(kernels=...)``: ``"auto"`` (int8 kernels where eligible if measured faster than the
#: float kernel on the projection's first chunks; fused neuron update), ``"int"`` (int8 kernels
#: wherever eligible; fused update), ``"float"`` (float32/64 kernels and the torch neuron update)
KERNEL_MODES = ("auto", "int", "float")
#: chunks of a projection on which both dense kernels are timed before the cheaper is kept ("auto":
#: the lower of the per-row costs measured on those chunks)
MEASURED_CHUNKS = 3
#: dense chunks whose median per-row cost the events-or-kernel choice compares with (:meth:`Engine.dense_ns_per_row`)
RECENT_CHUNKS = 5


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


@dataclass
class _Compiled:
    proj: Projection
    dtype: torch.dtype
    bound: int
    weights: Tuple[Optional[torch.Tensor], ...]  # (all,) or (exc, inh) for curr_exp posts
    split: bool
    pre_shape: Tuple[int, ...]                  # NIR shape of the pre population
    post_size: int
    macs_per_row: int                           # dense kernel multiply-adds per (sample, tick) row
    rows: object = None                         # synapse rows: None = not built yet, False = too large
    int_weights: Optional[Tuple[torch.Tensor, ...]] = None  # int8 operands (_k.int8_weights), None = float only
    conv: Optional[dict] = None                 # im2col geometry of a conv2d projection
    #: dense kernel timings per torch thread count: {threads: {"int": [ns per row, ...], "float": [...]}}
    timings: Optional[dict] = None
    #: (ns per target element, ns per source spike) of event delivery with ``rows``, measured when they are built
    event_cost: Optional[Tuple[float, float]] = None
    #: ns per target element the fused delivery-and-update pass costs beyond the plain update (vector rows)
    fused_target: Optional[float] = None
    #: the path of the projection's latest chunk with spikes ("dense" / "events"; None before the first)
    last_path: Optional[str] = None
    #: ns per target element of the plain compiled update, timed with ``fused_target``
    plain_update_ns: Optional[float] = None
    #: recent (timed / predicted) costs of the projection's event chunks (see :func:`_prefer_events`)
    event_ratios: Optional[list] = None

    @property
    def event_scale(self) -> float:
        """Median of ``event_ratios`` (1.0 before ``MEASURED_CHUNKS`` timed event chunks: one chunk is a noisy sample)."""
        if not self.event_ratios or len(self.event_ratios) < MEASURED_CHUNKS:
            return 1.0
        r = sorted(self.event_ratios)
        mid = len(r) // 2
        return r[mid] if len(r) % 2 else 0.5 * (r[mid - 1] + r[mid])

    @property
    def pre_size(self) -> int:
        return int(np.prod(self.pre_shape))

    @property
    def spike_map(self) -> bool:
        """True if the kernel takes the pre spikes as a (n, C, H, W) map (conv or pooling), else (n, pre.size)."""
        return len(self.pre_shape) == 3 and (self.proj.kind != "dense" or self.proj.pool is not None)


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
        threads: torch threads for the kernels during :meth:`run` (the caller's setting is
            restored afterwards); None (default) uses the caller's ``torch.get_num_threads()``.
            Results are the same bits for any value. On a loaded machine 1 is much faster (OpenMP
            threads spin at every barrier while the other one waits to be scheduled).
        synapses: how synaptic input is computed: ``"auto"`` (default: per projection and chunk of
            ticks, event by event when the source's spike count makes that cheaper than the dense
            kernel, see :func:`_prefer_events`), ``"dense"`` (always the conv/matmul kernel) or
            ``"events"`` (always synapse rows where they can be built). Same bits in every mode.
    """

    name = "torch"

    def __init__(self, net: S2Network, check_integral: str = "first", mode: str = "auto",
                 threads: Optional[int] = None, synapses: str = "auto", kernels: str = "auto") -> None:
        if check_integral is True:
            check_integral = "always"
        elif check_integral is False:
            check_integral = "never"
        if check_integral not in ("first", "always", "never"):
            raise ValueError(f"check_integral must be 'first', 'always' or 'never', got {check_integral!r}")
        if mode not in ("auto", "layers", "ticks"):
            raise ValueError(f"mode must be 'auto', 'layers' or 'ticks', got {mode!r}")
        if threads is not None and (not isinstance(threads, int) or threads < 1):
            raise ValueError(f"threads must be a positive int or None, got {threads!r}")
        if synapses not in SYNAPSE_MODES:
            raise ValueError(f"synapses must be one of {SYNAPSE_MODES}, got {synapses!r}")
        if kernels not in KERNEL_MODES:
            raise ValueError(f"kernels must be one of {KERNEL_MODES}, got {kernels!r}")
        self.synapses = synapses if events.AVAILABLE else "dense"
        self.kernels = kernels if kernels == "float" or _kernels_available() else "float"
        self.threads = threads
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
            comp = _Compiled(proj, dtype, bound, self._weights(proj, pre, dtype, split), split,
                             tuple(pre.shape), post.size, macs_per_row(proj, pre, post), timings={})
            simple_pool = proj.pool is None or (tuple(proj.pool_stride or proj.pool) == tuple(proj.pool)
                                                and tuple(proj.pool_padding) == (0, 0))
            if self.kernels != "float" and simple_pool and (proj.kind == "dense" or len(pre.shape) == 3) \
                    and _k.int_eligible(proj.kind, proj.weight, proj.pool, proj.groups):
                comp.int_weights = _k.int8_weights(proj.weight, proj.kind, split)
                if proj.kind == "conv2d":
                    comp.conv = _conv_geometry(proj, pre, post)
            self.compiled.append(comp)
        for name, b in self.post_bound.items():
            if b > INT32_MAX:
                problems.append(RuleViolation("accumulator-overflow", name,
                                              f"the summed synaptic input can reach {b}, beyond int32"))
        if problems:
            raise DesignRuleError("; ".join(p.one_line() for p in problems), violations=problems,
                                  rule=problems[0].rule, node=problems[0].node)
        self.neurons = [p for p in net.populations.values() if p.model != "spike_list"]
        # populations whose whole input (all projections summed) stays below 2**24 are summed in
        # float32 directly: every partial sum is an exactly representable integer, so this is
        # the same number as the int32 sum converted to float32
        self.float_sum = {p.name: self.post_bound.get(p.name, 0) < FLOAT32_EXACT for p in self.neurons}
        self.params = {p.name: {k: torch.from_numpy(np.ascontiguousarray(
                                    np.asarray(getattr(p, k), dtype=np.float32).reshape(-1)))
                                for k in ("alpha_decay", "threshold", "i_offset", "v_reset", "exc_decay", "inh_decay")
                                if getattr(p, k) is not None}
                       for p in self.neurons}
        self.plan = {p.name: _plan(self.params[p.name]) for p in self.neurons}
        # per population: the fused (compiled) neuron update's parameters, or None for the torch update
        self.fused = {p.name: self._fused_params(p) for p in self.neurons}
        # per fused population: the sum-pool window an int8 projection out of it reads, so that the
        # update writes the pooled counts as it writes the spikes (the projection then skips pooling)
        self.pooled_by: Dict[str, Tuple[int, int]] = {}
        self.pooled_for: Dict[str, _Compiled] = {}      # ... and that projection
        for c in self.compiled:
            pre = net.populations[c.proj.pre]
            if c.int_weights is not None and c.proj.pool is not None and self.fused.get(pre.name) is not None \
                    and len(pre.shape) == 3:
                if pre.name not in self.pooled_by:
                    self.pooled_by[pre.name] = tuple(int(k) for k in c.proj.pool)
                    self.pooled_for[pre.name] = c

    def _fused_params(self, p: Population) -> Optional[Dict[str, np.ndarray]]:
        """(size,) float32 parameter arrays of the compiled update, or None if ``p`` keeps the torch update."""
        if self.kernels == "float" or p.model == "lif_curr_exp_no_delay" or self.net.options.fused_multiply_add:
            return None
        raw = {"alpha": p.alpha_decay, "thr": p.threshold, "off": p.i_offset,
               "v_reset": p.v_reset if p.v_reset is not None else np.zeros(1, np.float32)}
        arrays = {k: np.ascontiguousarray(np.broadcast_to(np.asarray(a, dtype=np.float32).reshape(-1), (p.size,)))
                  for k, a in raw.items()}
        # every parameter the same for all neurons (bit for bit): one value each (the update keeps it in a register)
        if all(a.size and np.all(a.view(np.uint32) == a.view(np.uint32)[0]) for a in arrays.values()):
            return {k: a[:1].copy() for k, a in arrays.items()}
        return arrays

    @staticmethod
    def _weights(proj: Projection, pre: Population, dtype: torch.dtype, split: bool) -> Tuple[Optional[torch.Tensor], ...]:
        if proj.kind == "pool":
            return (None,)
        t = torch.from_numpy(np.ascontiguousarray(proj.weight.astype(np.int64)))
        fmt = torch.channels_last if proj.kind == "conv2d" else torch.contiguous_format
        if not split:
            return (t.to(dtype).contiguous(memory_format=fmt),)
        return (t.clamp(min=0).to(dtype).contiguous(memory_format=fmt),
                (-t).clamp(min=0).to(dtype).contiguous(memory_format=fmt))

    # ------------------------------------------------------------------ synapses
    def _apply(self, c: _Compiled, spikes: torch.Tensor, check: bool) -> List[torch.Tensor]:
        """Exact integer input(s) of one projection from its pre spikes.

        ``spikes``: 0/1 in ``c.dtype``, (n, C, H, W) (channels-last memory is fastest) if
        ``c.spike_map``, else (n, pre.size); ``n`` is batch x ticks rows. Returns one tensor per
        weight set, (n, C', H', W') for conv/pool (any memory format) or (n, post.size) for dense.
        """
        proj = c.proj
        n = spikes.shape[0]
        x = spikes if spikes.dtype == c.dtype else spikes.to(c.dtype)
        if c.spike_map and x.dim() == 2:
            x = x.view((n,) + c.pre_shape)
        if proj.pool is not None:
            x = sum_pool(x, proj)
        outs = []
        if proj.kind == "pool":
            outs.append(x)
        elif proj.kind == "dense":
            x = x.reshape(n, -1)  # pooled map -> C-order rows (a copy from channels-last)
            for wt in c.weights:
                outs.append(torch.mm(x, wt.t()))
        else:
            for wt in c.weights:
                outs.append(F.conv2d(x, wt, stride=proj.stride, padding=proj.padding, dilation=proj.dilation,
                                     groups=proj.groups))
        if check:
            _check_integral(c, outs)
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
        Runs on torch's current thread setting (``torch.get_num_threads()``, recorded in the meta).
        The meta also records ``synapse_paths``: per projection, how many chunks of ticks used the
        dense kernel and how many the synapse rows (chunks without a source spike count as neither).
        """
        net = self.net
        xs = check_inputs(net, input_spikes)
        batch, ticks = xs[net.input_name].shape[:2]
        detail = detail_set(net, record)
        mode = self.schedule
        run = _Run(self, batch, ticks, detail)
        for name, x_np in xs.items():  # one spike_list per Input
            x_int = _to_internal(x_np, net.populations[name].shape)
            run.spikes[name] = torch.from_numpy(x_int)
            run.count[name] = torch.from_numpy(np.count_nonzero(x_int, axis=2).astype(np.int32))
        # IEEE subnormals as the golden model (numpy) has them, even if someone enabled
        # torch.set_flush_denormal(True) in this process
        flushed = _denormals_flushed()
        if flushed:
            torch.set_flush_denormal(False)
        caller_threads = torch.get_num_threads()
        if self.threads is not None and self.threads != caller_threads:
            torch.set_num_threads(self.threads)
        used_threads = torch.get_num_threads()
        try:
            if mode == "layers":
                self._run_layers(run)
            else:
                self._run_ticks(run)
        finally:
            if flushed:
                torch.set_flush_denormal(True)
            if torch.get_num_threads() != caller_threads:
                torch.set_num_threads(caller_threads)

        rec = Recording(dt=float(net.options.dt),
                        meta=meta(net, "torch", {"threads": used_threads, "schedule": mode, "synapses": self.synapses,
                                                 "synapse_paths": run.paths}))
        for name, x_np in xs.items():
            rec.add(name, "spikes", x_np.copy())
        for p in self.neurons:
            rec.add(p.name, "spikes", _to_nir(run.spikes[p.name], p.shape))
            if p.name in detail:
                rec.add(p.name, "i", _to_nir(run.i_rec[p.name], p.shape))
                rec.add(p.name, "v", _to_nir(run.v_rec[p.name], p.shape))
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

    def _deliver(self, run: "_Run", k: int, c: _Compiled, t0: int, t1: int, checked: set,
                 fuse: Optional[Callable[[], None]] = None) -> object:
        """Exact input(s) of projection ``c`` for target ticks ``t0..t1-1``: C-contiguous
        (G, (t1 - t0) * batch, S) tensors (row ``j * batch + b`` = tick ``t0 + j`` of sample ``b``,
        neuron ``g * S + s`` in NIR order; float32/64 or int32), or None if no spike is delivered
        in that window.

        Work follows activity: only the (sample, source tick) rows in which the source emitted at
        least one spike go through the kernel; the other rows' input is exactly 0.

        ``fuse``: when given (the post population's only input is ``c`` and it has the compiled
        update), a chunk that goes by vector rows calls ``fuse()`` instead, which delivers and
        updates the population in one pass, and :data:`FUSED` is returned.
        """
        batch, length = run.batch, t1 - t0
        a, b = t0 - 1 - c.proj.delay, t1 - 1 - c.proj.delay      # source ticks of targets t0..t1-1
        lo = max(a, 0)
        if b <= lo:
            return None
        counts_np = run.count[c.proj.pre].numpy()[:, lo:b]      # (batch, b - lo) source spikes per row
        n_act = int(np.count_nonzero(counts_np))                 # (numpy: ~10x less per-call overhead than torch)
        if n_act == 0:                                           # no spike in the window: no synaptic work
            return None
        check = self._check(k, checked)
        pad = lo - a                                              # first ticks of the run: no source tick yet
        all_rows = n_act >= DENSE_ROWS * batch * length           # (nearly) every row active: one slice
        dense_rows = batch * length if all_rows else n_act
        if self._use_events(c, int(counts_np.sum()), n_act, batch * length, dense_rows,
                            fusable=fuse is not None and not check):
            run.paths[c.proj.name]["events"] += 1
            c.last_path = "events"
            fused = fuse is not None and not check and _fusable_rows(c)
            predicted = _events_ns(c, int(counts_np.sum()), batch * length, True, n_act, fused, scaled=False)
            start = _now()
            if fused:
                fuse()          # delivery and neuron update in one compiled pass (_fused_events)
                # the fused pass includes the update the dense path runs separately: take it out
                spent = (_now() - start) * 1e9 - batch * length * c.post_size * (c.plain_update_ns or 0.0)
                _record_events(c, spent, predicted)
                return FUSED
            act = torch.from_numpy(counts_np > 0)
            outs = self._deliver_events(run, c, act, lo, pad, length, check)
            _record_events(c, (_now() - start) * 1e9, predicted)
            return [o.view(1, length * batch, c.post_size) for o in outs]
        run.paths[c.proj.name]["dense"] += 1
        c.last_path = "dense"
        act = torch.from_numpy(counts_np > 0)
        which = self._dense_kernel(c)
        times = c.timings.setdefault(torch.get_num_threads(), {"int": [], "float": [], "last": None, "recent": []})
        if not times["recent"]:
            # first dense chunk at this thread count: run the kernel(s) once untimed (oneDNN and torch
            # pick and JIT their kernels on a new shape; that would inflate the first measurement,
            # and the events-or-kernel choice compares with it)
            for kernel in ((self._dense_float, self._dense_int) if which == "measure" else
                           (self._dense_int if which == "int" else self._dense_float,)):
                kernel(run, c, act, lo, b, pad, length, all_rows, False)
        if which != "measure":
            start = _now()
            outs = (self._dense_int if which == "int" else self._dense_float)(run, c, act, lo, b, pad, length,
                                                                              all_rows, check)
            _record_dense(times, (_now() - start) / dense_rows)
            return outs
        # measure both kernels on this chunk (same exact integers), keep the result of the int one
        start = _now()
        outs = self._dense_float(run, c, act, lo, b, pad, length, all_rows, check)
        times["float"].append((_now() - start) / dense_rows)
        start = _now()
        outs = self._dense_int(run, c, act, lo, b, pad, length, all_rows, check)
        times["int"].append((_now() - start) / dense_rows)
        _record_dense(times, min(times["int"][-1], times["float"][-1]))
        return outs

    def _dense_kernel(self, c: _Compiled) -> str:
        """``"int"``, ``"float"`` or ``"measure"`` (time both on this chunk) for projection ``c``."""
        if c.int_weights is None:
            return "float"
        if self.kernels == "int":
            return "int"
        times = c.timings.get(torch.get_num_threads())
        if times is None or len(times["int"]) < MEASURED_CHUNKS:
            return "measure"
        return "int" if min(times["int"]) <= min(times["float"]) else "float"

    @staticmethod
    def dense_ns_per_row(c: _Compiled) -> Optional[float]:
        """Measured cost of ``c``'s dense kernel per (sample, tick) row, in ns: the median of its
        latest ``RECENT_CHUNKS`` dense chunks (None before ``MEASURED_CHUNKS`` dense chunks at the
        current thread count: the kernels choice settles on those, and one chunk is a noisy sample). A median, not the latest chunk alone: once a noisy chunk made events look
        cheaper the dense kernel would never be timed again to correct it."""
        times = c.timings.get(torch.get_num_threads())
        if not times or len(times["recent"]) < min(MEASURED_CHUNKS, RECENT_CHUNKS):
            return None
        recent = sorted(times["recent"])                             # a handful: no numpy call per chunk
        mid = len(recent) // 2
        return 1e9 * (recent[mid] if len(recent) % 2 else 0.5 * (recent[mid - 1] + recent[mid]))

    def _dense_float(self, run: "_Run", c: _Compiled, act: torch.Tensor, lo: int, b: int, pad: int, length: int,
                     all_rows: bool, check: bool) -> List[torch.Tensor]:
        """The float32/64 conv/matmul kernel on 0/1 maps (exact below the static bound)."""
        batch, ticks = run.batch, run.ticks
        src = run.spikes[c.proj.pre]                              # (batch, ticks, pre) bool
        shape4 = (1, length * batch, c.post_size)
        if all_rows:
            x = _kernel_input(c, length * batch)
            per = (length, batch) + tuple(x.shape[1:])
            if pad:
                x.view(per)[:pad].zero_()
            # bool -> float, (batch, tick) -> (tick, batch) rows, C order -> kernel layout, in one copy
            x.view(per)[pad:].copy_(src[:, lo:b].transpose(0, 1).view((b - lo, batch) + per[2:]))
            return [_rows(y, length * batch).view(shape4) for y in self._apply(c, x, check)]
        rows = act.nonzero()                                      # (m, 2): sample, tick - lo
        picked = src.reshape(batch * ticks, -1).index_select(0, rows[:, 0] * ticks + rows[:, 1] + lo)
        x = _kernel_input(c, rows.shape[0])
        x.copy_(picked.view(x.shape))
        dst = (rows[:, 1] + pad) * batch + rows[:, 0]
        full = []
        for y in self._apply(c, x, check):
            z = zeros((length * batch, c.post_size), y.dtype)
            z.index_copy_(0, dst, _rows(y, rows.shape[0]))
            full.append(z.view(shape4))
        return full

    def _dense_int(self, run: "_Run", c: _Compiled, act: torch.Tensor, lo: int, b: int, pad: int, length: int,
                   all_rows: bool, check: bool) -> List[torch.Tensor]:
        """The int8 x int8 -> int32 kernels (:mod:`s2emu.kernels`): exact by construction."""
        batch, ticks = run.batch, run.ticks
        src8 = run.spikes[c.proj.pre].numpy().view(np.uint8).reshape(batch * ticks, -1)
        pre_shape, pool = c.pre_shape, c.proj.pool
        if c.proj.pre in run.pooled and tuple(pool) == self.pooled_by[c.proj.pre] \
                and run.pooled_ok[c.proj.pre][:, lo:b].all():
            # the source's update wrote its sum-pooled counts for these ticks: read those
            src8 = run.pooled[c.proj.pre].numpy().reshape(batch * ticks, -1)
            pre_shape = (pre_shape[0], pre_shape[1] // pool[0], pre_shape[2] // pool[1])
            pool = None
        if all_rows:  # every (tick, sample) row of the window, silent ones included; pad ticks are row -1 (zeros)
            t_idx = np.arange(lo, b, dtype=np.int64)
            rows = (np.arange(batch, dtype=np.int64)[None, :] * ticks + t_idx[:, None]).reshape(-1)
            if pad:
                rows = np.concatenate([np.full(pad * batch, -1, dtype=np.int64), rows])
            dst = None
        else:
            nz = act.nonzero()                                    # (m, 2): sample, tick - lo
            rows = (nz[:, 0] * ticks + nz[:, 1] + lo).numpy()
            dst = (nz[:, 1] + pad) * batch + nz[:, 0]
        outs, (g, s) = _k.int_apply(c.proj.kind, c.int_weights, src8, rows, pre_shape, pool, c.conv)
        full = []
        for y in outs:                                            # (G, n, S)
            if dst is not None:
                z = zeros((g, length * batch, s), torch.int32)
                z.index_copy_(1, dst, y)
                y = z
            full.append(y)
        return full

    def _use_events(self, c: _Compiled, n_spikes: int, n_act: int, rows: int, dense_rows: int,
                    fusable: bool = False) -> bool:
        """Whether this chunk's input is built from synapse rows (building them on first use).

        ``n_spikes``: source spikes in the chunk; ``n_act``: its (sample, tick) rows with a spike;
        ``rows``: the chunk's rows;
        ``dense_rows``: the rows the dense kernel would process. ``"events"`` mode takes rows
        wherever they can be built, ``"auto"`` where :func:`_prefer_events` predicts them cheaper.
        """
        if self.synapses == "dense" or c.rows is False:
            return False
        forced = self.synapses == "events"
        dense_ns = self.dense_ns_per_row(c)
        if not forced:
            if dense_ns is None:    # the dense kernel has not been measured yet: run (and time) it first
                return False
            if not _prefer_events(c, n_spikes, rows, dense_rows * dense_ns, built=False):
                return False
        if c.rows is None:
            c.rows = self._build_rows(c) or False
        return c.rows is not False and (forced or _prefer_events(c, n_spikes, rows, dense_rows * dense_ns, built=True,
                                                                 active_rows=n_act,
                                                                 fused=fusable and _fusable_rows(c)))

    def _build_rows(self, c: _Compiled) -> Optional[list]:
        """Synapse rows of projection ``c`` (None if they cannot be built), and their measured cost.

        A dense projection: its ``W.T`` as scalar rows. A conv2d (groups 1, with or without a sum
        pool before it) or a dense projection after a sum pool of a map: vector rows from the
        geometry (:mod:`s2emu.vector_rows`). Anything else (pool-only projections, grouped convs):
        the dense kernel on one-hot inputs (:func:`s2emu.events.synapse_rows`, size-limited).
        Sets ``c.event_cost`` = (ns per target element, ns per source spike), measured here.
        """
        proj = c.proj
        rows: Optional[list] = None
        if proj.kind == "dense" and proj.pool is None:
            rows = events.rows_from_matrices([w.t() for w in c.weights])
        elif events.available() and len(c.pre_shape) == 3 and (
                (proj.kind == "conv2d" and proj.groups == 1) or (proj.kind == "dense" and proj.pool is not None)):
            np_dtype = np.float32 if c.dtype == torch.float32 else np.float64
            w = proj.weight.astype(np.int64)
            sets = [w] if not c.split else [np.clip(w, 0, None), np.clip(-w, 0, None)]
            if proj.kind == "conv2d":
                post_hw = tuple(int(v) for v in self.net.populations[proj.post].shape[1:])
                rows = vector_rows.conv_rows(sets, c.pre_shape, post_hw, tuple(proj.stride), tuple(proj.padding),
                                             tuple(proj.dilation), proj.pool, proj.pool_stride,
                                             tuple(proj.pool_padding), np_dtype)
            else:
                rows = vector_rows.pooled_dense_rows(sets, c.pre_shape, tuple(proj.pool), proj.pool_stride,
                                                     tuple(proj.pool_padding), np_dtype)
        else:
            rows = events.synapse_rows(lambda onehot: [_rows(y, onehot.shape[0]) for y in self._apply(c, onehot, False)],
                                       c.pre_size, c.post_size, c.dtype)
        if rows:
            if isinstance(rows[0], vector_rows.VectorRows):
                c.event_cost = vector_rows.measure(rows, c.pre_size)
                if len(rows) == 1 and _k.available():
                    c.fused_target, c.plain_update_ns = _k.fused_target_cost(rows[0], c.pre_size)
            else:
                ns_target, ns_synapse = events.unit_costs()
                c.event_cost = (ns_target, sum(r.synapses_per_spike for r in rows) * ns_synapse)
        return rows

    def _deliver_events(self, run: "_Run", c: _Compiled, act: torch.Tensor, lo: int, pad: int, length: int,
                        check: bool) -> List[torch.Tensor]:
        """Event-driven version of :meth:`_deliver`: each spike of an active row adds its synapse row."""
        batch = run.batch
        rows = act.nonzero()                                      # (m, 2): sample, tick - lo
        samples = rows[:, 0].numpy()
        src_ticks = (rows[:, 1] + lo).numpy()
        dst = ((rows[:, 1] + pad) * batch + rows[:, 0]).numpy()
        outs = [zeros((length * batch, c.post_size), c.dtype) for _ in c.rows]
        events.deliver(run.spikes[c.proj.pre].numpy(), samples, src_ticks, dst, c.rows, [o.numpy() for o in outs])
        if check:
            _check_integral(c, outs)
        return [o.view(length, batch, c.post_size) for o in outs]

    def _run_layers(self, run: "_Run") -> None:
        net, batch, ticks = self.net, run.batch, run.ticks
        checked: set = set()
        for p in self.neurons:
            incoming = [(k, c) for k, c in enumerate(self.compiled) if c.proj.post == p.name]
            biggest = max([p.size] + [net.populations[c.proj.pre].size for _, c in incoming])
            # tiles of (samples x ticks) rows whose input fits TILE_BYTES: a tile's kernel output is
            # still in cache when the neuron update reads it, and each sample's state stays in cache
            # over the tile's ticks
            rows = max(1, TILE_BYTES // max(1, biggest * 4))
            chunk = min(ticks, rows)
            tile = min(batch, max(1, rows // chunk))
            state = run.new_state(p)
            # one projection in, compiled update, nothing but spikes recorded: vector-row chunks fuse
            # delivery and update (_fused_events)
            fusable = len(incoming) == 1 and self.fused[p.name] is not None and p.name not in run.detail
            for s0 in range(0, batch, tile):
                s1 = min(batch, s0 + tile)
                sub = run.tile(s0, s1)
                sub_state = {k: v[s0:s1] for k, v in state.items()}
                for t0 in range(0, ticks, chunk):
                    t1 = min(ticks, t0 + chunk)
                    exc: List[torch.Tensor] = []
                    inh: List[torch.Tensor] = []
                    outs: object = None
                    for k, c in incoming:
                        fuse = functools.partial(self._fused_events, sub, p, sub_state, c, t0, t1) if fusable else None
                        outs = self._deliver(sub, k, c, t0, t1, checked, fuse)
                        if outs is None or outs is FUSED:
                            continue
                        exc.append(outs[0])
                        if len(outs) > 1:  # a pool projection has only positive (excitatory) counts
                            inh.append(outs[1])
                    if outs is FUSED:
                        continue
                    self._step(sub, p, sub_state, t0, t1 - t0, exc, inh)

    def _pooled_out(self, run: "_Run", p: Population, t0: int, t1: int) -> Optional[np.ndarray]:
        """The sum-pooled counts buffer the update of ``p`` should write for ticks ``t0..t1-1``, or None.

        Written (and marked in ``run.pooled_ok``) unless the int8 projection that reads them went by
        synapse rows on its latest chunk: it then does not read them, and the pooling pass would be
        wasted (0.2 of ~1.1 ns per neuron-tick on psnn's if1). A chunk of that projection that
        goes through the kernel after all finds them missing and pools the raw spikes itself.
        """
        if p.name not in run.pooled or self.pooled_for[p.name].last_path == "events":
            return None
        run.pooled_ok[p.name][:, t0:t1] = True
        return run.pooled[p.name].numpy()

    def _fused_events(self, run: "_Run", p: Population, state: Dict[str, torch.Tensor], c: _Compiled,
                      t0: int, t1: int) -> None:
        """Ticks ``t0 .. t1 - 1`` of ``p`` from its only projection ``c``'s vector rows, delivery and
        update in one compiled pass (:func:`s2emu.kernels.events_update`; same bits as
        :meth:`_deliver_events` followed by :meth:`_step`)."""
        fused = self.fused[p.name]
        pooled = self._pooled_out(run, p, t0, t1)
        _k.events_update(c.rows[0], run.spikes[c.proj.pre].numpy(), -1 - c.proj.delay, state["v"].numpy(),
                         fused["alpha"], fused["thr"], fused["off"], fused["v_reset"], p.reset == "subtract",
                         run.spikes[p.name].numpy(), run.count[p.name].numpy(), t0, t1 - t0, pooled,
                         tuple(p.shape) + self.pooled_by[p.name] if pooled is not None else (0, 0, 0, 1, 1))

    def _run_ticks(self, run: "_Run") -> None:
        batch = run.batch
        checked: set = set()
        states = {p.name: run.new_state(p) for p in self.neurons}
        for t in range(run.ticks):
            exc: Dict[str, List[torch.Tensor]] = {p.name: [] for p in self.neurons}
            inh: Dict[str, List[torch.Tensor]] = {p.name: [] for p in self.neurons}
            for k, c in enumerate(self.compiled):
                outs = self._deliver(run, k, c, t, t + 1, checked)
                if outs is None:
                    continue
                exc[c.proj.post].append(outs[0])
                if len(outs) > 1:
                    inh[c.proj.post].append(outs[1])
            for p in self.neurons:
                self._step(run, p, states[p.name], t, 1, exc[p.name], inh[p.name])

    def _step(self, run: "_Run", p: Population, state: Dict[str, torch.Tensor], t0: int, length: int,
              exc: List[torch.Tensor], inh: List[torch.Tensor]) -> None:
        """Ticks ``t0 .. t0 + length - 1`` of population ``p`` from its projections' inputs
        (:meth:`_deliver`'s (G, length * batch, S) tensors): the fused compiled update, or the torch one."""
        shape = (length, run.batch, p.size)
        want_int = p.name in run.detail
        fused = self.fused[p.name]
        if fused is not None:
            e = _combine(exc, shape)
            pooled = self._pooled_out(run, p, t0, t0 + length)
            with _one_thread():
                _k.neuron_update(e.numpy(), state["v"].numpy(), fused["alpha"], fused["thr"], fused["off"],
                                      fused["v_reset"], p.reset == "subtract", run.spikes[p.name].numpy(),
                                      run.count[p.name].numpy(), t0,
                                      run.v_rec[p.name].numpy() if want_int else None,
                                      pooled, tuple(p.shape) + self.pooled_by[p.name] if pooled is not None else (0, 0, 0, 1, 1))
            if want_int:
                run.i_rec[p.name][:, t0:t0 + length].copy_(_tick_major(e, shape).transpose(0, 1))
            return
        e_f, e_i = self._sum([_tick_major(y, shape) for y in exc], self.float_sum[p.name], want_int, shape)
        h_f, h_i = self._sum([_tick_major(y, shape) for y in inh], self.float_sum[p.name], want_int, shape)
        with _one_thread():
            run.advance(p, state, t0, e_f, h_f, e_i, h_i)

    @staticmethod
    def _sum(parts: List[torch.Tensor], float_ok: bool, want_int: bool, shape: Tuple[int, ...]
             ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Sum exact per-projection inputs: (float32 value used by the update, int32 value or None).

        ``float_ok``: the post's summed bound is below 2**24, so a float32 sum is exact.
        Otherwise the sum is taken in int32 (exact) and rounded once to float32, as the
        golden model converts its integer sum. The parts are fresh kernel outputs (they are
        modified in place).
        """
        if not parts:
            return zeros(shape, torch.float32), (zeros(shape, torch.int32) if want_int else None)
        if float_ok:
            # the parts are already normalised to +0.0 (see _rows)
            total = parts[0] if parts[0].dtype == torch.float32 else parts[0].to(torch.float32)
            for y in parts[1:]:
                total.add_(y)   # float64 parts: exact integers below 2**24, same sum
            return total, (total.to(torch.int32) if want_int else None)
        total_i = parts[0].to(torch.int32)
        for y in parts[1:]:
            total_i.add_(y.to(torch.int32))
        return total_i.to(torch.float32), total_i


def _combine(parts: List[torch.Tensor], shape: Tuple[int, int, int]) -> torch.Tensor:
    """One (G, L * batch, S) exact input for the fused update: the single part as it is (int32 or
    float32; float64 parts are converted to int32, exactly), or the int32 sum of all parts (exact:
    the population's summed bound is at most 2**31 - 1), or zeros."""
    length, batch, size = shape
    if not parts:
        return zeros((1, length * batch, size), torch.int32)
    if len(parts) == 1:
        y = parts[0]
        return y.to(torch.int32) if y.dtype == torch.float64 else y
    total = zeros((length * batch, size), torch.int32)
    for y in parts:
        g, r, s = y.shape
        total.view(r, g, s).add_((y if y.dtype == torch.int32 else y.to(torch.int32)).permute(1, 0, 2))
    return total.view(1, length * batch, size)


def _tick_major(y: torch.Tensor, shape: Tuple[int, int, int]) -> torch.Tensor:
    """(G, L * batch, S) -> (L, batch, G * S) in NIR neuron order (a view if G == 1, else a copy)."""
    g, r, s = y.shape
    return (y.view(r, s) if g == 1 else y.permute(1, 0, 2).reshape(r, g * s)).view(shape)


def _conv_geometry(proj: Projection, pre: Population, post: Population) -> dict:
    """im2col geometry of a conv2d projection (the kernel's input is the pooled map if ``proj.pool``)."""
    kh, kw = (int(d) for d in proj.weight.shape[2:])
    return {"kernel": (kh, kw), "stride": tuple(int(v) for v in proj.stride),
            "padding": tuple(int(v) for v in proj.padding), "dilation": tuple(int(v) for v in proj.dilation),
            "out_hw": tuple(int(v) for v in post.shape[1:])}


def _kernels_available() -> bool:
    return _k.available()


def _now() -> float:
    """A clock for the kernel measurements: this thread's CPU time when torch runs on one thread
    (robust to other processes on a loaded machine), else wall time (several threads work)."""
    return time.thread_time() if torch.get_num_threads() == 1 else time.perf_counter()


def sum_pool(x: torch.Tensor, proj: Projection) -> torch.Tensor:
    """Sum pooling of a (n, C, H, W) spike map by ``proj.pool`` with ``pool_stride`` and zero ``pool_padding``.

    The output size is floor((H + 2p - k) / s) + 1, as NIR's SumPool2d (and torch) define it.
    Zero padding is added explicitly (avg_pool2d accepts at most half the kernel as padding);
    padded zeros add nothing to an exact sum.
    """
    stride = proj.pool_stride or proj.pool
    ph, pw = proj.pool_padding
    if ph or pw:
        x = F.pad(x, (pw, pw, ph, ph))
    return F.avg_pool2d(x, kernel_size=proj.pool, stride=stride, divisor_override=1)


def _check_integral(c: _Compiled, outs: List[torch.Tensor]) -> None:
    """Run-time guard of the exactness argument: every synaptic sum must be an integer."""
    for y in outs:
        if not torch.equal(y, torch.round(y)):
            raise UnsupportedError(f"projection {c.proj.name}: the {c.dtype} kernel returned a non-integer sum; "
                                   "the exactness argument does not hold for this torch build",
                                   rule="inexact-integer-kernel", node=c.proj.name,
                                   hint="report this; run with a float64 build or the golden model")


def macs_per_row(proj: Projection, pre: Population, post: Population) -> int:
    """Multiply-adds (plus pooling adds) of the dense kernel for one (sample, tick) row.

    Pooling: one add per pre neuron; dense: ``in x out``; conv2d: ``post x C_in/groups x kh x kw``.
    """
    pool = pre.size if proj.pool is not None else 0
    if proj.kind == "pool":
        return pre.size
    w = proj.weight
    if proj.kind == "dense":
        return pool + int(w.size)
    return pool + post.size * int(np.prod(w.shape[1:]))


def _fusable_rows(c: _Compiled) -> bool:
    """True if ``c``'s rows can be delivered fused with the post's update (one weight set of vector rows)."""
    return bool(c.rows) and len(c.rows) == 1 and isinstance(c.rows[0], vector_rows.VectorRows)


def _prefer_events(c: _Compiled, n_spikes: int, rows: int, dense_ns: float, built: bool,
                   active_rows: Optional[int] = None, fused: bool = False) -> bool:
    """True if the synapse rows are predicted to be cheaper than the dense kernel for this chunk.

    Both sides are measured on this machine, in this process: ``dense_ns`` is the projection's
    dense kernel cost per row on its latest chunk (:meth:`Engine.dense_ns_per_row`) times the rows
    it would process; the event side is ``rows x post x (ns per target) + spikes x (ns per spike)``,
    both measured on the projection's own rows when they are built (``c.event_cost``: scalar rows
    from the per-process unit costs of :func:`s2emu.events.unit_costs` times the mean row length;
    vector rows timed on their own delivery, :func:`s2emu.vector_rows.measure`, where only the
    ``active_rows`` with a spike pay the per-target pass).

    The unit costs are timed on synthetic spikes with the caches warm; the real chunks' costs are
    timed too and the prediction is scaled by their median ratio to it (``c.event_scale``), so a
    projection whose rows run slower in the real run than on the synthetic spikes moves back to
    the kernel.

    Args:
        n_spikes: source spikes delivered in the chunk; rows: (sample, tick) rows of the chunk;
        active_rows: of those, the rows with at least one source spike (default: all);
        fused: the chunk would be delivered fused with the post's update (:func:`s2emu.kernels.events_update`):
            the per-target cost is then ``c.fused_target``, measured against the plain update;
        dense_ns: predicted dense cost of the chunk (ns); built: whether ``c.rows`` exists (before
            the rows are built their length is unknown, and a spike adds at least one synapse, so
            ``built=False`` answers whether events could pay at all and the rows are worth building).
    """
    return _events_ns(c, n_spikes, rows, built, active_rows, fused) < dense_ns


def _events_ns(c: _Compiled, n_spikes: int, rows: int, built: bool, active_rows: Optional[int] = None,
               fused: bool = False, scaled: bool = True) -> float:
    """Predicted ns of delivering a chunk by synapse rows (see :func:`_prefer_events`), times the
    projection's measured correction ``c.event_scale`` (``scaled``; built rows only)."""
    targets = rows
    active_rows = rows if active_rows is None else active_rows
    if built:
        ns_target, ns_spike = c.event_cost
        if isinstance(c.rows[0], vector_rows.VectorRows):
            targets = active_rows   # vector rows pass only the rows with a spike through their scratch
            if fused:
                # delivered inside the post's update: per target only what the fused pass costs
                # beyond the plain update that the dense path runs as well (c.fused_target)
                ns_target, targets = c.fused_target, rows
    else:
        ns_target, ns_spike = events.unit_costs()
    events_ns = targets * c.post_size * ns_target + n_spikes * ns_spike
    return events_ns * (c.event_scale if built and scaled else 1.0)


@contextmanager
def _one_thread() -> Iterator[None]:
    """Run the per-tick elementwise loop on one torch thread, then restore the caller's setting.

    Each tick is a handful of small ops (batch x neurons elements); with several OpenMP threads
    every op ends in a barrier, and on a loaded machine a descheduled thread stalls every one of
    them. Elementwise results do not depend on the thread count, so the bits are the same.
    """
    before = torch.get_num_threads()
    if before == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _record_dense(times: dict, seconds_per_row: float) -> None:
    """Note one dense chunk's cost per row (``last`` and the ``recent`` window of :meth:`Engine.dense_ns_per_row`)."""
    times["last"] = seconds_per_row
    times["recent"] = (times["recent"] + [seconds_per_row])[-RECENT_CHUNKS:]


def _record_events(c: _Compiled, spent_ns: float, predicted_ns: float) -> None:
    """Note one event chunk's timed cost against its prediction (``c.event_ratios``, the latest
    RECENT_CHUNKS). The projection's first event chunk is not noted: it loads the compiled loops."""
    if c.event_ratios is None:
        c.event_ratios = []
    elif predicted_ns > 0:
        c.event_ratios = (c.event_ratios + [max(spent_ns, 0.0) / predicted_ns])[-RECENT_CHUNKS:]


def _denormals_flushed() -> bool:
    """True if torch currently flushes float32 subnormals to zero."""
    tiny = torch.tensor([1e-39], dtype=torch.float32)  # a subnormal
    return bool((tiny * torch.tensor([1.0], dtype=torch.float32)).item() == 0.0)


def _kernel_input(c: _Compiled, n: int) -> torch.Tensor:
    """An uninitialised kernel input for ``n`` rows: (n, C, H, W) channels-last for maps, else (n, pre.size)."""
    if c.spike_map:
        return torch.empty((n,) + c.pre_shape, dtype=c.dtype, memory_format=torch.channels_last)
    return torch.empty((n, int(np.prod(c.pre_shape))), dtype=c.dtype)


def _rows(y: torch.Tensor, n: int) -> torch.Tensor:
    """Kernel output -> fresh contiguous (n, post.size) rows in NIR (C, H, W) order, plus 0.0.

    "+ 0.0" turns an empty floating-point sum's -0.0 (0 * negative weights, if a kernel
    accumulates that way) into the +0.0 that the chip's integer 0 converts to; the same
    pass converts a channels-last conv output to C order.
    """
    out = torch.empty((n, int(np.prod(y.shape[1:]))), dtype=y.dtype)
    torch.add(y, 0.0, out=out.view(y.shape))
    return out


def _to_internal(x: np.ndarray, shape: Tuple[int, ...]) -> np.ndarray:
    """(batch, time, *shape) -> contiguous (batch, time, neurons), neurons in NIR (C order)."""
    batch, ticks = x.shape[:2]
    return np.ascontiguousarray(x).reshape(batch, ticks, -1)


def _to_nir(a: torch.Tensor, shape: Tuple[int, ...]) -> np.ndarray:
    """(batch, time, neurons) -> (batch, time, *shape) numpy, sharing memory."""
    return a.numpy().reshape(a.shape[:2] + tuple(shape))


class _Run:
    """Buffers and neuron state of one :meth:`Engine.run` call.

    Buffers are (batch, time, neurons), neurons in NIR (C, H, W) order: the Recording's layout
    (no copy at the end), and a chunk of ticks of one sample is contiguous.
    ``count[name]`` (batch, time) int32 says how many spikes a population emitted in each tick.
    """

    def __init__(self, engine: Engine, batch: int, ticks: int, detail: set) -> None:
        net = engine.net
        self.batch, self.ticks, self.detail = batch, ticks, detail
        self.fma = net.options.fused_multiply_add
        self.spikes: Dict[str, torch.Tensor] = {p.name: torch.empty((batch, ticks, p.size), dtype=torch.bool)
                                                for p in engine.neurons}
        self.count: Dict[str, torch.Tensor] = {p.name: torch.empty((batch, ticks), dtype=torch.int32)
                                               for p in engine.neurons}
        #: per projection: how many chunks of ticks went through the dense kernel / synapse rows
        self.paths: Dict[str, Dict[str, int]] = {c.proj.name: {"dense": 0, "events": 0} for c in engine.compiled}
        # every tick writes every population's buffers, so these need no zeroing
        self.i_rec = {n: torch.empty((batch, ticks, net.populations[n].size), dtype=torch.int32) for n in detail}
        self.v_rec = {n: torch.empty((batch, ticks, net.populations[n].size), dtype=torch.float32) for n in detail}
        self.params = engine.params
        self.plan = engine.plan
        #: sum-pooled spike counts (batch, time, pooled neurons) int8 of the populations in ``engine.pooled_by``
        self.pooled: Dict[str, torch.Tensor] = {}
        for name, (ph, pw) in engine.pooled_by.items():
            c, h, w = net.populations[name].shape
            self.pooled[name] = torch.empty((batch, ticks, c * (h // ph) * (w // pw)), dtype=torch.int8)
        #: per pooled population: (batch, time) bool, True where ``pooled`` was written
        self.pooled_ok: Dict[str, np.ndarray] = {name: np.zeros((batch, ticks), dtype=bool) for name in self.pooled}

    def tile(self, s0: int, s1: int) -> "_Run":
        """The same run restricted to samples ``s0 .. s1 - 1``: every buffer is a view (batch is the leading axis)."""
        sub = object.__new__(_Run)
        sub.__dict__.update(self.__dict__)
        sub.batch = s1 - s0
        for key in ("spikes", "count", "i_rec", "v_rec", "pooled", "pooled_ok"):
            setattr(sub, key, {k: v[s0:s1] for k, v in getattr(self, key).items()})
        return sub

    def new_state(self, p: Population) -> Dict[str, torch.Tensor]:
        z = lambda: zeros((self.batch, p.size), torch.float32)  # noqa: E731
        return {"v": z(), "i_exc": z(), "i_inh": z()}

    def advance(self, p: Population, state: Dict[str, torch.Tensor], t0: int, e_f: torch.Tensor, h_f: torch.Tensor,
                e_i: Optional[torch.Tensor], h_i: Optional[torch.Tensor]) -> None:
        """Ticks ``t0 .. t0 + L - 1`` of one population; inputs (L, batch, size) float32 (tick-major, so each tick is contiguous) (int32 or None).

        Float32 elementwise in the golden model's order, one IEEE operation per rounding, done in
        place on the state (see :class:`_Plan` for the operations that are provably identities and
        are skipped). Spikes are produced as float32 0/1 into a chunk buffer, then stored as bool.
        """
        pr, plan, n = self.params[p.name], self.plan[p.name], p.name
        fma, curr_exp = self.fma, p.model == "lif_curr_exp_no_delay"
        length = e_f.shape[0]
        fired = torch.empty((length, self.batch, p.size), dtype=torch.float32)
        v = state["v"]
        i_exc, i_inh = state["i_exc"], state["i_inh"]
        alpha, thr, off = pr["alpha_decay"], pr["threshold"], pr["i_offset"]
        v_rec = self.v_rec.get(n)
        for j in range(length):
            # the tick's v is computed where it is recorded (no copy), else in place in the state
            dst = v if v_rec is None else v_rec[:, t0 + j]
            if curr_exp:
                if fma:
                    i_exc = fma_f32(pr["exc_decay"], i_exc, e_f[j])
                    i_inh = fma_f32(pr["inh_decay"], i_inh, h_f[j])
                    dst.copy_(fma_f32(alpha, v, i_exc))
                else:
                    torch.mul(i_exc, pr["exc_decay"], out=i_exc)
                    i_exc.add_(e_f[j])
                    torch.mul(i_inh, pr["inh_decay"], out=i_inh)
                    i_inh.add_(h_f[j])
                    torch.mul(v, alpha, out=dst)
                    dst.add_(i_exc)
                dst.sub_(i_inh)
            elif fma and not plan.alpha_one:
                dst.copy_(fma_f32(alpha, v, e_f[j]))
            elif plan.alpha_one:
                torch.add(v, e_f[j], out=dst)
            else:
                torch.mul(v, alpha, out=dst)
                dst.add_(e_f[j])
            v = dst
            if not plan.offset_zero:
                v.add_(off)
            s = fired[j]
            torch.gt(v, thr, out=s)                     # 1.0 where v > threshold (strict), else 0.0
            if p.reset == "subtract":
                if plan.subtract_by_product:
                    v.addcmul_(s, plan.neg_threshold)   # v + s * (-thr): see _Plan
                else:
                    torch.where(s.bool(), v - thr, v, out=v)
            else:
                torch.where(s.bool(), pr["v_reset"], v, out=v)
        state["v"], state["i_exc"], state["i_inh"] = v, i_exc, i_inh
        t1 = t0 + length
        self.spikes[n][:, t0:t1].copy_(fired.transpose(0, 1))  # float 0/1 -> bool, (tick, batch) -> (batch, tick)
        self.count[n][:, t0:t1].copy_(fired.sum(dim=2).t())  # exact: at most post.size < 2**24 ones
        if n in self.detail:
            self.i_rec[n][:, t0:t1].copy_((e_i if not curr_exp else e_i - h_i).transpose(0, 1))


@dataclass
class _Plan:
    """Per population: float32 operations of the update that are exact identities, and can be skipped.

    * ``alpha_one``: every alpha is 1.0, and ``fl32(1.0 * v) == v`` for every float32 (with FMA on,
      ``fl32(1.0 * v + I) == fl32(v + I)``, the plain add).
    * ``offset_zero``: every i_offset is +0.0 or -0.0. ``v + (-0.0) == v`` always; ``v + (+0.0) == v``
      unless v is -0.0, which cannot happen here: v was just produced by ``x + I`` (or ``x - I_inh``)
      where I is never -0.0 (the input sum is normalised to +0.0, currents start at +0.0 and
      ``y + (+0.0)`` is never -0.0), and a round-to-nearest sum or difference is -0.0 only when both
      terms are -0.0 (resp. -0.0 minus +0.0).
    * ``subtract_by_product``: every threshold is finite with its sign bit clear, so for a spike
      s in {0.0, 1.0} the product ``s * (-thr)`` is exact (``-thr`` or ``-0.0``) and
      ``v + s * (-thr)`` equals ``where(s, fl32(v - thr), v)`` bit for bit (``v + (-0.0) == v`` for
      every v; a fused multiply-add cannot change it because the product is exact).
    """

    alpha_one: bool
    offset_zero: bool
    subtract_by_product: bool
    neg_threshold: torch.Tensor


def _plan(params: Dict[str, torch.Tensor]) -> _Plan:
    thr = params["threshold"].numpy()
    return _Plan(alpha_one=bool(np.all(params["alpha_decay"].numpy() == 1.0)),
                 offset_zero=bool(np.all(params["i_offset"].numpy() == 0.0)),
                 subtract_by_product=bool(np.all(np.isfinite(thr)) and not np.any(np.signbit(thr))),
                 neg_threshold=torch.neg(params["threshold"]))


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
