"""SpiNNaker2 design rules: named checks that say why a NIR graph cannot run (as given) on the chip.

Every rule has a name, a one-line description and a check; :data:`RULES` keeps them in the
order they run. :func:`check_design_rules` returns every violation
(:class:`~s2emu.network.RuleViolation`: rule, node or edge, message, hint, severity);
:func:`enforce` raises one :class:`~s2common.errors.DesignRuleError` naming every violating
node. Violations of severity ``"warning"`` are reported but do not fail :func:`enforce`.

| rule | what it catches |
|---|---|
| ``unsupported-node-type`` | a node type the converter has no SpiNNaker2 model for (LI, CubaLI, Threshold, Delay, AvgPool2d, Scale, I, ...) |
| ``unsupported-edge-pattern`` | an edge pattern the converter cannot map (neuron -> neuron, two weight layers in a row, SumPool2d with kernel != stride, ...) |
| ``vendor-drops-flatten-without-pool`` | ``neuron -> Flatten -> Affine`` without SumPool2d: py-spinnaker2's converter silently makes no projection |
| ``vendor-drops-conv1d`` | Conv1d: the converter raises NotImplementedError (its ``WEIGHT_NODES`` lists Conv2d twice, no Conv1d) |
| ``vendor-nested-graph`` | a nested NIRGraph node: ``create_populations`` has no branch for it (NotImplementedError) |
| ``vendor-conv-dilation`` | Conv2d with dilation != 1: ``get_conv2d_params`` carries no dilation |
| ``vendor-conv-groups`` | Conv2d with groups != 1: ``weight.swapaxes(0, 1)`` is read as a dense kernel |
| ``vendor-no-weights`` | weight scaling on and no weight node feeds the population: ``127.0 / 0.0`` raises ZeroDivisionError |
| ``vendor-zero-weights`` | weight scaling on and every incoming weight (or its percentile) is 0: ``w_scale`` = inf |
| ``vendor-dense-delay`` | (warning) ``conn_delay > 0`` into a dense/pool connection list: the ``dense_delay`` option decides whether ``lif_no_delay`` honours it (not public) |
| ``vendor-scale-precision`` | (warning) an int8 weight depends on whether ``W * w_scale`` is float32 (numpy 1.x) or float64 (numpy 2) |
| ``unsupported-connection-delay`` | ``conn_delay > 0`` on a conv projection (``create_conv2d_projection`` asserts ``delay == 0``) |
| ``weight-int8-range`` | weights outside int8 [-127, 127] when weight scaling is off; lowered dense weights outside [-127, 127]; (warning) weights saturated by percentile scaling |
| ``weight-not-integer`` | weights that are not integers when weight scaling is off (the graph is not quantized) |
| ``vendor-int8-wrap`` | py-spinnaker2's ``(W * w_scale).astype(np.int8)`` on conv kernels truncates without clipping: weights that would wrap around (percentile < 100) |
| ``accumulator-overflow`` | the worst-case integer input of one neuron in one tick exceeds the accumulator (24-bit signed on the MLA for conv, 32-bit for the synaptic input) |
| ``non-finite-parameter`` | a lowered float32 parameter is inf or NaN (e.g. a threshold that overflows float32 after scaling) |
| ``threshold-not-positive`` | a lowered threshold <= 0 (reset by subtraction then runs away; with reset to 0 a negative threshold fires every tick: warning) |
| ``population-exceeds-pe`` | one PE's slice of a population does not fit the 96 KiB data SRAM (the hint gives the largest ``max_atoms_per_core`` that fits, or says that even 1 atom does not) |
| ``network-exceeds-chip`` | the network needs more PEs than ``max_chips`` chips of 148 usable PEs each |

The pattern rules come from :func:`s2emu.lowering.find_projection_paths`; weights are read
from the lowered network when there is one, else computed from the graph the way the
lowering (and py-spinnaker2's converter) scales them.

Accumulator widths: the MLA's accumulator for ``lif_conv2d`` is reported as 24-bit signed
(``../shared/design/s2-arithmetic.md``: "not settled in public sources, 24 bits is reported"
[inf]); the synaptic input that reaches the neuron is taken as a 32-bit signed integer [inf]
(py-spinnaker2's C code is not public; NESTML's SpiNNaker2 target keeps its ring buffers as
32-bit words - ``REAL`` there, ``nest/nestml`` ``resources_spinnaker2/param_defs.h.jinja2``).
Both widths are parameters (``accumulator_bits={"mla": 24, "input": 32}``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Callable, Dict, List, Mapping, NamedTuple, Optional, Tuple

import numpy as np

from s2common.errors import DesignRuleError
from s2common.graph import FlatGraph, flatten_graph, read_flat

from .chip import ChipMap, ChipSpec, largest_fitting_atoms, map_to_chip, pe_bytes  # noqa: F401 (re-exported)
from .network import ConversionOptions, Projection, RuleViolation, S2Network

#: default accumulator widths (signed bits): ``mla`` for conv projections, ``input`` for the neuron's summed input.
DEFAULT_ACCUMULATOR_BITS = {"mla": 24, "input": 32}
INT8_MAX = 127


@dataclass
class RuleContext:
    """What the checks read. ``net`` may be None (the graph could not be lowered)."""

    flat: FlatGraph
    net: Optional[S2Network]
    options: ConversionOptions
    max_chips: int = 1
    atoms_per_core: Optional[Mapping[str, int]] = None
    accumulator_bits: Dict[str, int] = field(default_factory=lambda: dict(DEFAULT_ACCUMULATOR_BITS))
    spec: ChipSpec = field(default_factory=ChipSpec)
    input_ticks: int = 1
    paths: List[object] = field(default_factory=list)
    problems: List[RuleViolation] = field(default_factory=list)
    _chip: Optional[ChipMap] = None

    @property
    def chip(self) -> Optional[ChipMap]:
        if self.net is None:
            return None
        if self._chip is None:
            self._chip = map_to_chip(self.net, sram_per_pe=self.spec.sram_per_pe,
                                     data_sram_per_pe=self.spec.data_sram_per_pe, pes_per_chip=self.spec.pes_per_chip,
                                     usable_pes_per_chip=self.spec.usable_pes_per_chip, max_chips=self.max_chips,
                                     atoms_per_core=self.atoms_per_core, input_ticks=self.input_ticks,
                                     dram_rows=self.max_chips > 1)  # the multi-chip mapper (s2emu.board)
        return self._chip


class Rule(NamedTuple):
    """A named design rule: ``check(ctx) -> violations``."""

    name: str
    description: str
    check: Callable[[RuleContext], List[RuleViolation]]


def _v(rule: str, node: str, message: str, hint: str = "", severity: str = "error") -> RuleViolation:
    return RuleViolation(rule=rule, node=node, message=message, hint=hint, severity=severity)


# ----------------------------------------------------------------------------------------
# pattern rules (found by the lowering's path walk)
# ----------------------------------------------------------------------------------------

def _from_problems(name: str) -> Callable[[RuleContext], List[RuleViolation]]:
    def check(ctx: RuleContext) -> List[RuleViolation]:
        return [p for p in ctx.problems if p.rule == name]
    check.__name__ = f"check_{name.replace('-', '_')}"
    return check


# ----------------------------------------------------------------------------------------
# weights
# ----------------------------------------------------------------------------------------

def _weight_paths(ctx: RuleContext):
    """(path, weight node name) for every path with a weight node on the converter's patterns."""
    for p in ctx.paths:
        w = getattr(p, "weight_node", None)
        if w is not None and ctx.flat.type_of(w) in ("Affine", "Linear", "Conv2d"):
            yield p, w


def _distinct_weight_nodes(ctx: RuleContext):
    """(first path, weight node name) once per weight node that :func:`_weight_paths` reaches."""
    seen = set()
    for p, w in _weight_paths(ctx):
        if w not in seen:
            seen.add(w)
            yield p, w


def _is_conv(ctx: RuleContext, wnode: str) -> bool:
    return ctx.flat.type_of(wnode) == "Conv2d"


def _w_scale(ctx: RuleContext, post: str) -> float:
    """The post population's weight scale: from the net if lowered, else as the converter computes it."""
    if ctx.net is not None and post in ctx.net.populations:
        return float(ctx.net.populations[post].w_scale)
    from .lowering import weight_scale

    return float(weight_scale(ctx.flat, post, ctx.options))


def _post_model(ctx: RuleContext, post: str) -> str:
    if ctx.net is not None and post in ctx.net.populations:
        return ctx.net.populations[post].model
    typ = ctx.flat.type_of(post)
    if typ == "CubaLIF":
        return "lif_curr_exp_no_delay"
    if any(ctx.flat.type_of(p) == "Conv2d" for p in ctx.flat.predecessors(post)):
        return "lif_conv2d"
    return "lif_no_delay"


def _net_projection(ctx: RuleContext, path) -> Optional[Projection]:
    if ctx.net is None:
        return None
    for proj in ctx.net.projections:
        if proj.pre == path.pre and proj.post == path.post and list(proj.nir_nodes) == list(path.nodes):
            return proj
    return None


def _int_weights(ctx: RuleContext, path, wnode: str) -> np.ndarray:
    """Integer weights of a path (int64): the lowered ones, else the graph's scaled the lowering's way."""
    proj = _net_projection(ctx, path)
    if proj is not None and proj.weight is not None:
        return proj.weight.astype(np.int64)
    w = np.asarray(ctx.flat.nodes[wnode].weight, dtype=np.float64)
    if not ctx.options.scale_weights and not getattr(ctx.options, "vendor_cast", False):
        return np.round(w).astype(np.int64)
    x = w * _w_scale(ctx, path.post)
    if _is_conv(ctx, wnode):
        t = np.trunc(x).astype(np.int64)
        return ((t + 128) % 256) - 128
    return np.clip(np.trunc(x), -INT8_MAX, INT8_MAX).astype(np.int64)


def check_weight_int8_range(ctx: RuleContext) -> List[RuleViolation]:
    """Integer codes outside [-127, 127] (scale off); lowered weights outside it; saturation (warning)."""
    out: List[RuleViolation] = []
    for path, wnode in _distinct_weight_nodes(ctx):
        w = np.asarray(ctx.flat.nodes[wnode].weight, dtype=np.float64)
        typ = ctx.flat.type_of(wnode)
        if not ctx.options.scale_weights:
            big = np.abs(w) > INT8_MAX
            if big.any():
                out.append(_v("weight-int8-range", wnode,
                              f"{typ} has {int(big.sum())} of {w.size} weights outside int8 [-127, 127] "
                              f"(max |w| = {np.abs(w).max():g}) while weight scaling is off",
                              "re-quantize to 8 bits, or turn weight scaling on"))
        elif ctx.options.percentile < 100 and not _is_conv(ctx, wnode):
            x = np.abs(w * _w_scale(ctx, path.post))
            sat = np.trunc(x) > INT8_MAX
            if sat.any():
                out.append(_v("weight-int8-range", wnode,
                              f"{typ}: percentile {ctx.options.percentile:g} scaling saturates {int(sat.sum())} of "
                              f"{w.size} weights at +-127 (largest scaled |w| = {x.max():.4g})",
                              "expected with percentile scaling; raise the percentile to keep outliers",
                              severity="warning"))
    if ctx.net is not None:
        for proj in ctx.net.projections:
            if proj.weight is None or proj.kind == "conv2d":  # conv: -128 only by wrapping (vendor-int8-wrap)
                continue
            wi = proj.weight.astype(np.int64)
            bad = np.abs(wi) > INT8_MAX
            if bad.any():
                node = proj.nir_nodes[-1] if proj.nir_nodes else proj.name
                out.append(_v("weight-int8-range", node,
                              f"lowered projection {proj.pre} -> {proj.post} has {int(bad.sum())} weights at -128, "
                              "outside the symmetric int8 range [-127, 127]",
                              "quantize symmetrically to [-127, 127]"))
    return out


def check_weight_not_integer(ctx: RuleContext) -> List[RuleViolation]:
    """Non-integer weights while weight scaling is off (a graph that claims to be quantized but is not)."""
    out: List[RuleViolation] = []
    if ctx.options.scale_weights or getattr(ctx.options, "vendor_cast", False):
        return out
    for _, wnode in _distinct_weight_nodes(ctx):
        w = np.asarray(ctx.flat.nodes[wnode].weight, dtype=np.float64)
        frac = w != np.round(w)
        if frac.any():
            out.append(_v("weight-not-integer", wnode,
                          f"{ctx.flat.type_of(wnode)} has {int(frac.sum())} of {w.size} weights that are not integers "
                          f"(e.g. {float(w[frac].ravel()[0]):g}) while weight scaling is off",
                          "quantize the graph first (s2gate quantize), or turn weight scaling on"))
    return out


def check_vendor_scale_precision(ctx: RuleContext) -> List[RuleViolation]:
    """Warnings: weight nodes whose int8 weights change with ``scale_dtype`` (numpy 1.x float32 vs numpy 2 float64)."""
    from .lowering import scale_dtype_changes

    return scale_dtype_changes(ctx.flat, ctx.options)


def check_vendor_int8_wrap(ctx: RuleContext) -> List[RuleViolation]:
    """Conv kernels that py-spinnaker2's cast ``(W * w_scale).astype(np.int8)`` would wrap around.

    Source: the converter's ``get_conv2d_params`` (GitHub ``SpiNNakerManchester/sPiNNIRker``,
    commit 5f667281, ``spinnirker/__init__.py``): ``conv_weights = conv2d_node.weight.swapaxes(0, 1)
    * post_node.nir_w_scale; conv_weights = conv_weights.astype(np.int8)``; ``w_scale = 127 /
    percentile_p(|W|)`` from ``create_populations``. The float -> int8 cast truncates toward zero
    and keeps the low 8 bits on x86-64 (checked with numpy 2.4: 130.7 -> -126, -129.2 -> 127;
    the C standard leaves out-of-range casts undefined). With p = 100 the scaled kernel stays in
    [-127, 127]; with p < 100 the largest weights wrap to the opposite sign. The product is taken
    in float64 here (numpy 2 promotion); under the numpy 1.x the converter ran with, a float32
    kernel times a float64 scalar stayed float32, which can move a weight lying within one float32
    ulp of 128 across the boundary - the count may then differ by such weights only.
    """
    out: List[RuleViolation] = []
    seen = set()
    for path, wnode in _weight_paths(ctx):
        if not _is_conv(ctx, wnode) or (wnode, path.post) in seen:
            continue
        seen.add((wnode, path.post))
        w = np.asarray(ctx.flat.nodes[wnode].weight, dtype=np.float64)
        if ctx.options.scale_weights:
            from .lowering import weight_scale

            w_scale = float(weight_scale(ctx.flat, path.post, ctx.options))
        else:
            w_scale = 1.0
        t = np.trunc(w * w_scale)
        wraps = (t > 127) | (t < -128)
        n = int(wraps.sum())
        if n:
            worst = float(np.abs(w * w_scale).max())
            out.append(_v("vendor-int8-wrap", wnode,
                          f"py-spinnaker2 casts this Conv2d's kernel with (W * w_scale).astype(np.int8) "
                          f"(w_scale = {w_scale:.6g}, percentile {ctx.options.percentile:g}): {n} of {w.size} "
                          f"weights leave [-128, 127] (largest |W * w_scale| = {worst:.4g}) and wrap around to the "
                          "opposite sign on the vendor path",
                          "use percentile 100 for conv layers, or quantize with s2gate (rounds and clips) and run "
                          "with weight scaling off"))
    return out


# ----------------------------------------------------------------------------------------
# accumulators
# ----------------------------------------------------------------------------------------

def _pool_area_of(ctx: RuleContext, path) -> int:
    pn = getattr(path, "pool_node", None)
    if pn is None:
        return 1
    k = np.atleast_1d(np.asarray(ctx.flat.nodes[pn].kernel_size)).astype(int)
    return int(k[0] * (k[1] if k.size > 1 else k[0]))


def worst_case_input(ctx: RuleContext) -> Dict[str, Tuple[np.ndarray, np.ndarray]]:
    """Per post population: (worst-case |input| per neuron from conv projections, from all projections).

    For one neuron and one tick: the sum over its fan-in of |w| times the most spikes a synapse
    can carry in one tick (1, or ``ph * pw`` after sum pooling: a window sums at most that many spikes,
    whatever the stride; overlapping windows only repeat spikes in other windows). Padding is
    ignored (an upper bound that interior neurons reach). Shapes: (post.size,), int64.
    """
    res: Dict[str, Tuple[np.ndarray, np.ndarray]] = {}
    for path in ctx.paths:
        post = path.post
        size = int(np.prod(ctx.flat.in_shape[post]))
        conv, total = res.get(post, (np.zeros(size, np.int64), np.zeros(size, np.int64)))
        area = _pool_area_of(ctx, path)
        wnode = getattr(path, "weight_node", None)
        if wnode is None or ctx.flat.type_of(wnode) not in ("Affine", "Linear", "Conv2d"):
            if getattr(path, "kind", "") == "pool":
                total = total + area
            res[post] = (conv, total)
            continue
        q = np.abs(_int_weights(ctx, path, wnode))
        if _is_conv(ctx, wnode):
            per_channel = q.reshape(q.shape[0], -1).sum(axis=1) * area
            per_neuron = np.repeat(per_channel, size // q.shape[0])
            conv = conv + per_neuron
        else:
            per_neuron = q.sum(axis=1) * area
        total = total + per_neuron
        res[post] = (conv, total)
    return res


def check_accumulator_overflow(ctx: RuleContext) -> List[RuleViolation]:
    """Worst-case per-tick integer input above the accumulator's signed range."""
    out: List[RuleViolation] = []
    mla_bits = int(ctx.accumulator_bits.get("mla", 24))
    in_bits = int(ctx.accumulator_bits.get("input", 32))
    mla_max, in_max = 2 ** (mla_bits - 1) - 1, 2 ** (in_bits - 1) - 1
    for post, (conv, total) in worst_case_input(ctx).items():
        if conv.size and conv.max() > mla_max:
            i = int(conv.argmax())
            out.append(_v("accumulator-overflow", post,
                          f"worst-case conv input into neuron {i} in one tick is {int(conv.max())} (sum of |w| x spikes "
                          f"per synapse), beyond the {mla_bits}-bit signed MLA accumulator (max {mla_max}); "
                          f"{int((conv > mla_max).sum())} neurons affected",
                          "reduce the kernel size / input channels or the weight magnitudes (fewer bits)"))
        if total.size and total.max() > in_max:
            i = int(total.argmax())
            out.append(_v("accumulator-overflow", post,
                          f"worst-case synaptic input into neuron {i} in one tick is {int(total.max())}, beyond the "
                          f"{in_bits}-bit signed input accumulator (max {in_max})",
                          "reduce the fan-in or the weight magnitudes"))
    return out


# ----------------------------------------------------------------------------------------
# lowered parameters
# ----------------------------------------------------------------------------------------

_PARAMS = ("threshold", "alpha_decay", "i_offset", "v_reset", "exc_decay", "inh_decay")


def check_non_finite_parameter(ctx: RuleContext) -> List[RuleViolation]:
    """inf/NaN in a lowered float32 parameter."""
    out: List[RuleViolation] = []
    if ctx.net is None:
        return out
    for name, pop in ctx.net.populations.items():
        for param in _PARAMS:
            arr = getattr(pop, param, None)
            if arr is None:
                continue
            a = np.asarray(arr, dtype=np.float32)
            bad = ~np.isfinite(a)
            if bad.any():
                kind = "NaN" if np.isnan(a).any() else "inf"
                out.append(_v("non-finite-parameter", name,
                              f"lowered float32 {param} is {kind} for {int(bad.sum())} of {a.size} neurons "
                              f"(w_scale = {pop.w_scale:.6g}; float32 max is {float(np.finfo(np.float32).max):.4g})",
                              "check the time constants, r, w_in and thresholds: the converter scales thresholds by "
                              "w_scale / (dt/tau * r) (CubaLIF: also / (dt/tau_syn * w_in)), which is inf for "
                              "r = 0 or w_in = 0 and overflows float32 for extreme values"))
    return out


def check_threshold_not_positive(ctx: RuleContext) -> List[RuleViolation]:
    """A lowered threshold <= 0: with subtraction the neuron runs away; with reset to 0, < 0 fires every tick."""
    out: List[RuleViolation] = []
    if ctx.net is None:
        return out
    for name, pop in ctx.net.populations.items():
        if pop.threshold is None:
            continue
        th = np.asarray(pop.threshold, dtype=np.float32)
        finite = np.isfinite(th)
        if pop.reset == "subtract":
            bad = finite & (th <= 0)
            if bad.any():
                out.append(_v("threshold-not-positive", name,
                              f"{int(bad.sum())} of {th.size} neurons have threshold <= 0 (min {float(th[finite].min()):g}) "
                              "with reset by subtraction: after the first spike v - threshold >= v, so the neuron "
                              "spikes every tick and v never comes down",
                              "use a positive threshold (check the sign of v_threshold, r and the weight scale)"))
        else:
            bad = finite & (th < 0)
            if bad.any():
                out.append(_v("threshold-not-positive", name,
                              f"{int(bad.sum())} of {th.size} neurons have threshold < 0 (min {float(th[finite].min()):g}) "
                              "with reset to 0: v = 0 > threshold, so they spike every tick even without input",
                              "use a positive threshold", severity="warning"))
    return out


# ----------------------------------------------------------------------------------------
# chip
# ----------------------------------------------------------------------------------------

def check_population_exceeds_pe(ctx: RuleContext) -> List[RuleViolation]:
    """A population slice that does not fit one PE's data SRAM (the lowering never picks ``lif``: no 256-target limit)."""
    out: List[RuleViolation] = []
    chip = ctx.chip
    if chip is None:
        return out
    limit = ctx.spec.data_sram_per_pe
    for row in chip.rows:
        if row.fits:
            continue
        upper = row.atoms_per_core
        best = largest_fitting_atoms(ctx.net, row.name, limit, upper, ctx.input_ticks)
        if best == 0:
            one = pe_bytes(ctx.net, row.name, 1, ctx.input_ticks)
            out.append(_v("population-exceeds-pe", row.name,
                          f"{row.model} population does not fit one PE even at 1 atom per core: {one} B > "
                          f"{limit} B of data SRAM (at {row.atoms_per_core} atoms: {row.max_bytes_per_pe} B)",
                          "reduce the fan-in (smaller layers / kernels) or split the layer in the model"))
        else:
            out.append(_v("population-exceeds-pe", row.name,
                          f"{row.model} slice of {row.atoms_per_core} atoms needs {row.max_bytes_per_pe} B, more than "
                          f"the {limit} B of data SRAM of one PE",
                          f"set max_atoms_per_core of '{row.name}' to <= {best} "
                          f"(e.g. s2gate map --atoms {row.name}={best})"))
    return out


def check_network_exceeds_chip(ctx: RuleContext) -> List[RuleViolation]:
    """More PEs than ``max_chips`` chips offer."""
    chip = ctx.chip
    if chip is None:
        return []
    usable = ctx.spec.usable_pes_per_chip
    if chip.total.pes <= usable * ctx.max_chips:
        return []
    biggest = sorted(chip.rows, key=lambda r: -r.pes)[:3]
    desc = ", ".join(f"'{r.name}' {r.pes}" for r in biggest)
    node = os.path.basename(ctx.flat.file) if ctx.flat.file else "network"
    return [_v("network-exceeds-chip", node,
               f"the network needs {chip.total.pes} PEs = {chip.total.chips} chips of {usable} usable PEs "
               f"({chip.total.boards} board(s) of {chip.spec.chips_per_board} chips), but max_chips is "
               f"{ctx.max_chips} (largest populations by PEs: {desc})",
               "allow more chips (--max-chips), raise max_atoms_per_core where memory allows, or shrink the model")]


RULES: Dict[str, Rule] = {}
for _rule in (
    Rule("unsupported-node-type", "a node type the converter has no SpiNNaker2 model for",
         _from_problems("unsupported-node-type")),
    Rule("unsupported-edge-pattern", "an edge pattern the converter cannot map", _from_problems("unsupported-edge-pattern")),
    Rule("vendor-drops-flatten-without-pool",
         "neuron -> Flatten -> Affine without SumPool2d: the vendor converter makes no projection",
         _from_problems("vendor-drops-flatten-without-pool")),
    Rule("vendor-drops-conv1d", "Conv1d: the vendor converter makes no projection", _from_problems("vendor-drops-conv1d")),
    Rule("vendor-nested-graph", "a nested NIRGraph node: the vendor converter raises NotImplementedError",
         _from_problems("vendor-nested-graph")),
    Rule("vendor-conv-dilation", "Conv2d dilation != 1: the vendor converter carries no dilation",
         _from_problems("vendor-conv-dilation")),
    Rule("vendor-conv-groups", "Conv2d groups != 1: the vendor converter's kernel layout assumes groups = 1",
         _from_problems("vendor-conv-groups")),
    Rule("vendor-no-weights", "scaling on, no incoming weights: the vendor converter divides 127 by 0.0",
         _from_problems("vendor-no-weights")),
    Rule("vendor-zero-weights", "scaling on, all incoming weights 0: the vendor's w_scale is inf",
         _from_problems("vendor-zero-weights")),
    Rule("vendor-dense-delay", "conn_delay > 0 on dense/pool projections: whether lif_no_delay honours it is not public",
         _from_problems("vendor-dense-delay")),
    Rule("vendor-scale-precision", "int8 weights that depend on numpy's float32/float64 cast of W * w_scale",
         check_vendor_scale_precision),
    Rule("unsupported-connection-delay", "conn_delay > 0 on a conv projection (the vendor asserts delay 0)",
         _from_problems("unsupported-connection-delay")),
    Rule("weight-int8-range", "weights outside int8 [-127, 127] or not integers", check_weight_int8_range),
    Rule("weight-not-integer", "non-integer weights while weight scaling is off", check_weight_not_integer),
    Rule("vendor-int8-wrap", "conv weights that py-spinnaker2's astype(np.int8) would wrap around", check_vendor_int8_wrap),
    Rule("accumulator-overflow", "worst-case integer input per tick beyond the accumulator width",
         check_accumulator_overflow),
    Rule("non-finite-parameter", "a lowered float32 parameter is inf or NaN", check_non_finite_parameter),
    Rule("threshold-not-positive", "a lowered threshold <= 0", check_threshold_not_positive),
    Rule("population-exceeds-pe", "a population slice does not fit one PE", check_population_exceeds_pe),
    Rule("network-exceeds-chip", "the network needs more PEs than the allowed chips", check_network_exceeds_chip),
):
    RULES[_rule.name] = _rule
del _rule


def _as_flat(graph_or_flat: object) -> FlatGraph:
    if isinstance(graph_or_flat, FlatGraph):
        return graph_or_flat
    if isinstance(graph_or_flat, (str, os.PathLike)):
        return read_flat(graph_or_flat, several_inputs=True)
    return flatten_graph(graph_or_flat, several_inputs=True)


def lower_for_rules(flat: FlatGraph, options: ConversionOptions) -> Optional[S2Network]:
    """Lower the graph so that net-based rules can run; None if the graph cannot be lowered.

    Weight problems are this module's to report, so a second try casts weights the vendor's
    way (``vendor_cast``): the chip layout depends on shapes only.
    """
    from .lowering import lower

    for opts in (options, replace(options, vendor_cast=True)):
        try:
            return lower(flat, opts)
        except DesignRuleError:
            continue
    return None


def check_design_rules(graph_or_flat: object, net: Optional[S2Network] = None,
                       options: Optional[ConversionOptions] = None, *, max_chips: int = 1,
                       atoms_per_core: Optional[Mapping[str, int]] = None,
                       accumulator_bits: Optional[Mapping[str, int]] = None,
                       spec: Optional[ChipSpec] = None, input_ticks: int = 1,
                       rules: Optional[List[str]] = None) -> List[RuleViolation]:
    """Run the design rules on a NIR graph (object, :class:`FlatGraph` or path) and its lowering.

    Args:
        graph_or_flat: the graph.
        net: its lowered network; lowered here (if possible) when None.
        options: conversion options (default: ``net.options`` or the converter's defaults).
        max_chips: chips the network may use.
        atoms_per_core: per-population ``max_atoms_per_core`` overrides (name -> atoms).
        accumulator_bits: ``{"mla": 24, "input": 32}`` by default (signed widths).
        spec: the chip (:class:`~s2emu.chip.ChipSpec`).
        input_ticks: spike records a ``spike_list`` PE holds (see :func:`~s2emu.chip.map_to_chip`).
        rules: run only these rule names (default: all of :data:`RULES`, in order).

    Returns:
        Every violation, in rule order. Empty when the graph passes.

    Raises:
        InvalidGraphError / UnsupportedError: the graph itself is malformed (from reading it).
    """
    flat = _as_flat(graph_or_flat)
    if options is None:
        options = net.options if net is not None else ConversionOptions()
    from .lowering import find_projection_paths

    paths, problems = find_projection_paths(flat, options)
    if net is None:
        net = lower_for_rules(flat, options)
    bits = dict(DEFAULT_ACCUMULATOR_BITS)
    bits.update(accumulator_bits or {})
    ctx = RuleContext(flat=flat, net=net, options=options, max_chips=int(max_chips), atoms_per_core=atoms_per_core,
                      accumulator_bits=bits, spec=spec or ChipSpec(), input_ticks=max(1, int(input_ticks)),
                      paths=list(paths), problems=list(problems))
    names = list(RULES) if rules is None else list(rules)
    unknown = [n for n in names if n not in RULES]
    if unknown:
        raise KeyError(f"unknown design rule(s): {', '.join(unknown)}; known: {', '.join(RULES)}")
    out: List[RuleViolation] = []
    for name in names:
        out.extend(RULES[name].check(ctx))
    # problems the lowering reports under names this registry does not know: keep them, never drop
    known = set(RULES)
    out.extend(p for p in problems if p.rule not in known)
    return out


def enforce(graph_or_flat: object, net: Optional[S2Network] = None, options: Optional[ConversionOptions] = None,
            **kw) -> List[RuleViolation]:
    """Run :func:`check_design_rules`; raise :class:`DesignRuleError` if any error-severity rule fails.

    The message names every violating node and its rule. Returns the warnings otherwise.
    """
    violations = check_design_rules(graph_or_flat, net, options, **kw)
    errors = [v for v in violations if v.severity == "error"]
    if errors:
        flat_file = getattr(graph_or_flat, "file", None) or (
            os.fspath(graph_or_flat) if isinstance(graph_or_flat, (str, os.PathLike)) else None)
        nodes = ", ".join(f"'{v.node}' ({v.rule})" for v in errors)
        raise DesignRuleError(f"{len(errors)} design rule violation(s): {nodes}. " +
                              " ".join(v.one_line() for v in errors),
                              violations=errors, file=flat_file, node=errors[0].node, rule=errors[0].rule,
                              hint=errors[0].hint or None)
    return violations
