"""The fast engine: the golden model's arithmetic, batched over samples with torch.

Same bits as :class:`s2emu.golden.GoldenModel` for any batch size and thread count:

* Integer synaptic sums are computed as float32 (or float64) matmul / conv2d / sum-pool on
  0/1 spike maps. They are **exact**: every partial sum is an integer of magnitude at most
  the projection's static bound ``B = max over post neurons of sum(|w|) * pool_area``, and
  every integer below ``2**24`` (float32) or ``2**53`` (float64) is representable, so no
  summation order (BLAS blocking, threads, batch size) can round. The bound is checked per
  projection at construction (:func:`exactness_bound`): float32 if ``B < 2**24``, float64 if
  ``B < 2**53``, else :class:`s2common.errors.DesignRuleError`. As a second guard the engine
  checks that conv outputs are integral (a convolution algorithm with non-integer transforms,
  e.g. Winograd, would break the argument) and raises if not.
* The per-population sum over projections is done in int32; the float32 state update is
  elementwise, in the golden model's order (see :mod:`s2emu.golden`), one torch op per
  rounding (no fused kernels), so it is the same IEEE float32 arithmetic.
* Work is skipped when a source population emitted no spike in the tick that is delivered.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from s2common.errors import DesignRuleError
from s2common.recording import Recording

from .network import Population, Projection, RuleViolation, S2Network
from .runio import Record, check_input, detail_set, meta

FLOAT32_EXACT = 2 ** 24
FLOAT64_EXACT = 2 ** 53
INT32_MAX = 2 ** 31 - 1


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


class Engine:
    """Fast batched engine. ``Engine(net).run(x)`` with x (batch, time, *input_shape) 0/1.

    Args:
        net: the lowered network.
        check_integral: run-time guard of the exactness argument: ``"first"`` (default) checks
            that each projection's first non-empty output of a run is integral (kernels are
            chosen per shape, so that is where a non-exact algorithm would show); ``"always"``
            checks every tick; ``"never"`` trusts the static bound alone.
    """

    name = "torch"

    def __init__(self, net: S2Network, check_integral: str = "first") -> None:
        if check_integral is True:
            check_integral = "always"
        elif check_integral is False:
            check_integral = "never"
        if check_integral not in ("first", "always", "never"):
            raise ValueError(f"check_integral must be 'first', 'always' or 'never', got {check_integral!r}")
        self.net = net
        self.check_integral = check_integral
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
            self.compiled.append(_Compiled(proj, dtype, bound, self._weights(proj, dtype, split), split))
        for name, b in self.post_bound.items():
            if b > INT32_MAX:
                problems.append(RuleViolation("accumulator-overflow", name,
                                              f"the summed synaptic input can reach {b}, beyond int32"))
        if problems:
            raise DesignRuleError("; ".join(p.one_line() for p in problems), violations=problems,
                                  rule=problems[0].rule, node=problems[0].node)
        self.neurons = [p for p in net.populations.values() if p.model != "spike_list"]
        self.max_delay = max((p.delay for p in net.projections), default=0)
        # populations whose whole input (all projections summed) stays below 2**24 are summed in
        # float32 directly: every partial sum is an exactly representable integer, so this is
        # the same number as the int32 sum converted to float32
        self.float_sum = {p.name: self.post_bound.get(p.name, 0) < FLOAT32_EXACT for p in self.neurons}

    @staticmethod
    def _weights(proj: Projection, dtype: torch.dtype, split: bool) -> Tuple[Optional[torch.Tensor], ...]:
        if proj.kind == "pool":
            return (None,)
        w = torch.from_numpy(proj.weight.astype(np.int64))
        if not split:
            return (w.to(dtype).contiguous(),)
        return (w.clamp(min=0).to(dtype).contiguous(), (-w).clamp(min=0).to(dtype).contiguous())

    # ------------------------------------------------------------------ synapses
    def _apply(self, c: _Compiled, spikes: torch.Tensor, batch: int, check: bool) -> List[torch.Tensor]:
        """Exact integer input(s) (batch, post.size), as float tensors, from pre spikes (batch, *pre.shape)."""
        proj = c.proj
        x = spikes if spikes.dtype == c.dtype else spikes.to(c.dtype)
        if proj.pool is not None:
            x = F.avg_pool2d(x, kernel_size=proj.pool, stride=proj.pool, divisor_override=1)
        outs = []
        if proj.kind == "pool":
            outs.append(x.reshape(batch, -1))
        elif proj.kind == "dense":
            x = x.reshape(batch, -1)
            for w in c.weights:
                outs.append(torch.mm(x, w.t()))
        else:
            for w in c.weights:
                y = F.conv2d(x, w, stride=proj.stride, padding=proj.padding, dilation=proj.dilation, groups=proj.groups)
                outs.append(y.reshape(batch, -1))
        if check:
            for y in outs:
                if not torch.equal(y, torch.round(y)):
                    raise DesignRuleError(f"projection {proj.name}: the {c.dtype} kernel returned a non-integer sum; "
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
        """
        net = self.net
        x_np = check_input(net, input_spikes)
        batch, ticks = x_np.shape[:2]
        detail = detail_set(net, record)
        fma = net.options.fused_multiply_add
        x = torch.from_numpy(x_np.reshape(batch, ticks, -1))

        params = {}
        for p in self.neurons:
            params[p.name] = {k: torch.from_numpy(np.asarray(getattr(p, k), dtype=np.float32))
                              for k in ("alpha_decay", "threshold", "i_offset", "v_reset", "exc_decay", "inh_decay")
                              if getattr(p, k) is not None}
        v = {p.name: torch.zeros(batch, p.size, dtype=torch.float32) for p in self.neurons}
        i_exc = {p.name: torch.zeros(batch, p.size, dtype=torch.float32) for p in self.neurons}
        i_inh = {p.name: torch.zeros(batch, p.size, dtype=torch.float32) for p in self.neurons}
        zeros_f = {p.name: torch.zeros(batch, p.size, dtype=torch.float32) for p in self.neurons}
        spikes_rec = {p.name: np.zeros((batch, ticks, p.size), dtype=bool) for p in self.neurons}
        i_rec = {n: np.zeros((batch, ticks, net.populations[n].size), dtype=np.int32) for n in detail}
        v_rec = {n: np.zeros((batch, ticks, net.populations[n].size), dtype=np.float32) for n in detail}
        # spikes per population and tick as float32 0/1 (None: no spike anywhere in the batch)
        history: Dict[str, List[Optional[torch.Tensor]]] = {n: [] for n in net.populations}
        shapes = {n: (batch,) + tuple(p.shape) for n, p in net.populations.items()}
        checked = set()

        for t in range(ticks):
            exc: Dict[str, List[torch.Tensor]] = {p.name: [] for p in self.neurons}
            inh: Dict[str, List[torch.Tensor]] = {p.name: [] for p in self.neurons}
            for k, c in enumerate(self.compiled):
                src_tick = t - 1 - c.proj.delay
                if src_tick < 0:
                    continue
                s = history[c.proj.pre][src_tick]
                if s is None:  # no spike in that tick: no synaptic work
                    continue
                check = self.check_integral == "always" or (self.check_integral == "first" and k not in checked)
                checked.add(k)
                outs = self._apply(c, s.reshape(shapes[c.proj.pre]), batch, check)
                exc[c.proj.post].append(outs[0])
                if c.split and len(outs) > 1:  # a pool projection has only positive (excitatory) counts
                    inh[c.proj.post].append(outs[1])
            xt = x[:, t]
            history[net.input_name].append(xt.to(torch.float32) if bool(xt.any()) else None)
            for p in self.neurons:
                n = p.name
                pr = params[n]
                e_f, e_i = self._sum(exc[n], self.float_sum[n], zeros_f[n], n in detail)
                if p.model == "lif_curr_exp_no_delay":
                    h_f, h_i = self._sum(inh[n], self.float_sum[n], zeros_f[n], n in detail)
                    i_exc[n] = _decay_add(pr["exc_decay"], i_exc[n], e_f, fma)
                    i_inh[n] = _decay_add(pr["inh_decay"], i_inh[n], h_f, fma)
                    vn = _decay_add(pr["alpha_decay"], v[n], i_exc[n], fma)
                    vn = torch.sub(vn, i_inh[n])
                    net_in = None if e_i is None else e_i - h_i
                else:
                    net_in = e_i
                    vn = _decay_add(pr["alpha_decay"], v[n], e_f, fma)
                vn = torch.add(vn, pr["i_offset"])
                fired = vn > pr["threshold"]
                any_fired = bool(fired.any())
                if any_fired:
                    if p.reset == "subtract":
                        vn = torch.where(fired, vn - pr["threshold"], vn)
                    else:
                        vn = torch.where(fired, pr["v_reset"].expand_as(vn), vn)
                    spikes_rec[n][:, t] = fired.numpy()
                v[n] = vn
                history[n].append(fired.to(torch.float32) if any_fired else None)
                if n in detail:
                    i_rec[n][:, t] = net_in.numpy()
                    v_rec[n][:, t] = vn.numpy()
            # only keep what a delayed projection can still read
            keep = self.max_delay + 1
            for hist in history.values():
                if len(hist) > keep:
                    hist[-keep - 1] = None

        rec = Recording(dt=float(net.options.dt), meta=meta(net, "torch", {"threads": torch.get_num_threads()}))
        rec.add(net.input_name, "spikes", x_np.copy())
        for p in self.neurons:
            shape = (batch, ticks) + tuple(p.shape)
            rec.add(p.name, "spikes", spikes_rec[p.name].reshape(shape))
            if p.name in detail:
                rec.add(p.name, "i", i_rec[p.name].reshape(shape))
                rec.add(p.name, "v", v_rec[p.name].reshape(shape))
        return rec

    @staticmethod
    def _sum(parts: List[torch.Tensor], float_ok: bool, zero: torch.Tensor, want_int: bool
             ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Sum exact per-projection inputs: (float32 value used by the update, int32 value or None).

        ``float_ok``: the post's summed bound is below 2**24, so a float32 sum is exact.
        Otherwise the sum is taken in int32 (exact) and rounded once to float32, as the
        golden model converts its integer sum.
        """
        if not parts:
            return zero, (torch.zeros(zero.shape, dtype=torch.int32) if want_int else None)
        if float_ok:
            total = parts[0] if parts[0].dtype == torch.float32 else parts[0].to(torch.float32)
            for y in parts[1:]:
                total = total + (y if y.dtype == torch.float32 else y.to(torch.float32))
            return total, (total.to(torch.int32) if want_int else None)
        total_i = parts[0].to(torch.int32)
        for y in parts[1:]:
            total_i = total_i + y.to(torch.int32)
        return total_i.to(torch.float32), total_i


def _decay_add(decay: torch.Tensor, state: torch.Tensor, inc: torch.Tensor, fma: bool) -> torch.Tensor:
    """``decay * state + inc`` in float32, rounding as :func:`s2emu.golden._decay_add` does."""
    if fma:
        return (decay.double() * state.double() + inc.double()).to(torch.float32)
    return torch.add(torch.mul(decay, state), inc)  # two ops, two roundings
