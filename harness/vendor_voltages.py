"""Reference vs emulator voltages in NIR units, within a bound derived from float32 rounding.

The emulator records chip voltages ``u`` (float32); its recording's ``meta["v_scale"]`` carries each
population's ``nir_v_scale`` (py-spinnaker2's converter, ``convert_LIF``/``convert_IF``/``convert_CubaLIF``:
chip units per NIR volt), so ``u / v_scale`` is in the units of the graph that was lowered (NIR volts of a
float graph, scaled units of a quantized one). The reference runs the same graph in float64.

**Tier ``float32-rounding``.** In exact arithmetic the two agree: ``u = v * v_scale`` tick by tick (the
converter's parameters are the NIR equations times ``v_scale``). The emulator rounds, the reference
(float64, unit roundoff 2**-53) practically does not. With ``u32 = 2**-24`` (float32 round to nearest) and,
per neuron and tick, ``K_t = |a| |u_{t-1}| + M_I + |i_offset|`` an upper bound on every partial sum of the
tick (``M_I``: the largest synaptic term that can be added: ``|I_t|`` for ``lif*`` models, the current
bound ``S/(1 - a_s)`` for ``lif_curr_exp``, ``S`` = sum of the |int8 weights| into the neuron), one tick adds
at most:

* ``u32 |a| |u_{t-1}|`` from ``alpha`` rounded to float32, ``u32 |a u|`` from the product,
* ``u32 K_t`` for each of the (at most 4) additions (input, -inhibitory current, i_offset) and ``u32
  |i_offset|`` from rounding ``i_offset``; after a spike with reset by subtraction ``u32 (K_t + |th|)``
  for ``v - th`` and ``u32 |th|`` for ``th`` itself,
* for ``lif_curr_exp``, the currents' own error ``e_I <= 3 u32 M_I / (1 - a_s)`` (decay, product, add).

so ``delta_t <= u32 (2 |a||u_{t-1}| + 5 K_t + |i_offset| + [spike] (K_t + 2 |th|)) + e_I`` and the error
obeys ``e_t <= |a| e_{t-1} + delta_t`` (errors decay with the membrane; reset to 0 is exact: ``e = 0``).
The bound holds while both sides have produced the same spikes (a different spike changes the voltage
by a threshold), so each sample is compared up to its first spike difference in any population.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import numpy as np

U32 = 2.0 ** -24
TIER = "float32-rounding"


@dataclass
class VoltageAgreement:
    """Result of :func:`voltage_agreement`.

    Attributes:
        tier: ``"float32-rounding"``.
        ok: every compared voltage within its bound.
        compared: voltages compared (sample x tick x neuron, before each sample's first spike difference).
        worst: largest |difference| / bound over the compared voltages (<= 1 when ok).
        per_population: ``{population: {"compared", "max_abs_nir", "max_ratio"}}``.
        first_violation: ``(population, sample, tick, neuron, difference, bound)`` or None.
    """

    tier: str
    ok: bool
    compared: int
    worst: float
    per_population: Dict[str, Dict[str, float]] = field(default_factory=dict)
    first_violation: Optional[tuple] = None

    def describe(self) -> str:
        head = (f"voltages [{self.tier} tier]: {self.compared} compared, worst |diff|/bound = {self.worst:.3g}")
        if self.ok:
            return head + ": within the float32 rounding bound"
        p, b, t, n, d, bound = self.first_violation
        return head + f": first beyond the bound at '{p}' sample {b} tick {t} neuron {n}: {d:.3g} > {bound:.3g}"


def _synaptic_bound(net: Any, pop: str) -> np.ndarray:
    """Per post neuron: sum of |int8 weights| of all its synapses (conv/pool: the projection's static bound)."""
    from s2emu.engine import exactness_bound

    size = net.populations[pop].size
    s = np.zeros(size, dtype=np.float64)
    for proj in net.projections:
        if proj.post != pop:
            continue
        if proj.kind == "dense" and proj.pool is None:
            s += np.abs(proj.weight.astype(np.float64)).sum(axis=1)
        else:
            s += float(exactness_bound(proj, net.populations[proj.pre]))
    return s


def voltage_agreement(reference: Any, emulator: Any, net: Any, nodes: Optional[List[str]] = None) -> VoltageAgreement:
    """Compare ``reference`` voltages (NIR units of the lowered graph) with ``emulator`` voltages / v_scale.

    Args:
        reference, emulator: Recordings of the same inputs with ``"v"`` of ``nodes`` (and spikes of every
            population); the emulator's meta must carry ``v_scale``.
        net: the lowered :class:`~s2emu.network.S2Network` the emulator ran (parameters for the bound).
        nodes: populations to compare (default: every population with ``"v"`` on both sides).
    """
    pops = [p.name for p in net.populations.values() if p.model != "spike_list"]
    if nodes is None:
        nodes = [n for n in pops if reference.get(n, "v") is not None and emulator.get(n, "v") is not None]
    batch, ticks = emulator.batch, emulator.ticks
    first = np.full(batch, ticks)  # per sample: first tick with a spike difference anywhere
    for n in pops:
        a, b = reference.get(n, "spikes"), emulator.get(n, "spikes")
        if a is None or b is None:
            continue
        d = np.any(np.asarray(a).reshape(batch, ticks, -1) != np.asarray(b).reshape(batch, ticks, -1), axis=2)
        hit = np.where(d.any(axis=1), d.argmax(axis=1), ticks)
        first = np.minimum(first, hit)
    compared, worst, ok, violation = 0, 0.0, True, None
    per: Dict[str, Dict[str, float]] = {}
    for n in nodes:
        p = net.populations[n]
        u = np.asarray(emulator.get(n, "v"), dtype=np.float64).reshape(batch, ticks, -1)
        v = np.asarray(reference.get(n, "v"), dtype=np.float64).reshape(batch, ticks, -1)
        spk = np.asarray(emulator.spikes(n)).reshape(batch, ticks, -1)
        scale = np.asarray(emulator.voltage_scale(n), dtype=np.float64).reshape(-1)
        a = np.abs(p.alpha_decay.astype(np.float64))
        off = np.abs(p.i_offset.astype(np.float64))
        th = np.abs(p.threshold.astype(np.float64))
        cuba = p.model == "lif_curr_exp_no_delay"
        if cuba:
            a_s = np.abs(p.exc_decay.astype(np.float64))
            m_i = _synaptic_bound(net, n) / np.maximum(1.0 - a_s, 1e-300)
            e_i = 3 * U32 * m_i / np.maximum(1.0 - a_s, 1e-300)
        else:
            i_rec = emulator.get(n, "i")
            i_abs = (np.abs(np.asarray(i_rec, dtype=np.float64)).reshape(batch, ticks, -1) if i_rec is not None
                     else np.broadcast_to(_synaptic_bound(net, n), (batch, ticks, p.size)))
            e_i = 0.0
        e = np.zeros((batch, p.size))
        prev = np.zeros((batch, p.size))
        max_abs = max_ratio = 0.0
        count = 0
        for t in range(ticks):
            m = m_i if cuba else i_abs[:, t]
            k = a * np.abs(prev) + m + off
            delta = U32 * (2 * a * np.abs(prev) + 5 * k + off + spk[:, t] * (k + 2 * th)) + e_i
            e = a * e + delta
            if p.reset == "to_v_reset":
                e = np.where(spk[:, t], 0.0, e)
            prev = u[:, t]
            live = t < first
            if not live.any():
                continue
            bound = e / scale + 2.0 ** -50 * (np.abs(v[:, t]) + 1e-300)   # float64 side and the division
            diff = np.abs(v[:, t] - u[:, t] / scale)
            ratio = diff / bound
            sel = np.broadcast_to(live[:, None], ratio.shape)
            count += int(sel.sum())
            max_abs = max(max_abs, float(diff[sel].max(initial=0.0)))
            max_ratio = max(max_ratio, float(ratio[sel].max(initial=0.0)))
            bad = sel & (diff > bound)
            if bad.any() and violation is None:
                b_, n_ = np.argwhere(bad)[0]
                violation = (n, int(b_), t, int(n_), float(diff[b_, n_]), float(bound[b_, n_]))
                ok = False
        per[n] = {"compared": count, "max_abs_nir": max_abs, "max_ratio": max_ratio}
        compared += count
        worst = max(worst, max_ratio)
    return VoltageAgreement(tier=TIER, ok=ok, compared=compared, worst=worst, per_population=per,
                            first_violation=violation)


def agreement_for_graph(reference: Any, emulator: Any, graph: Any) -> Optional[VoltageAgreement]:
    """:func:`voltage_agreement` for ``s2gate compare --graph``: lower ``graph`` with the conversion options the
    emulator recording names (``meta["options"]``; scaling off for a quantized graph) and compare.

    Returns None when the recordings carry no voltages to compare (no ``v`` on either side, or no
    ``v_scale`` on the emulator side).
    """
    import dataclasses

    from s2emu import ConversionOptions, lower

    if not emulator.meta.get("v_scale"):
        return None
    if not any(reference.get(n, "v") is not None and emulator.get(n, "v") is not None for n in emulator.meta["v_scale"]):
        return None
    known = {f.name for f in dataclasses.fields(ConversionOptions)} - {"max_atoms_per_core"}
    opts = {k: v for k, v in (emulator.meta.get("options") or {}).items() if k in known}
    net = lower(graph, ConversionOptions(**opts))
    return voltage_agreement(reference, emulator, net)
