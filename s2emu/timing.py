"""Real-time budget per tick and energy per inference, from a PE map, a placement and an activity.

Work of one PE in one tick (the timer callback of NESTML's SpiNNaker2 target, GitHub
``nest/nestml`` ``pynestml/codegeneration/resources_spinnaker2/main.c.jinja2``: receive the
spikes, process their synapse rows, update every neuron, send spikes; it logs "Deadline missed
in systick" when the work outlasts the tick)::

    cycles = tick_overhead
           + packets_received * cycles_per_packet_received
           + synaptic_events  * cycles_per_synaptic_event        (ARM, dense / pool rows)
           + neurons          * cycles_per_neuron_update
           + packets_sent     * cycles_per_packet_sent
           + lif_conv2d: mla_calls * cycles_per_mla_call + MACs / mla_macs_per_cycle
           + rows in DRAM: packets_received * (cycles_per_dma + row_bytes / dram_bytes_per_cycle)
    load   = cycles / (clock_hz * sys_tick_s)                     (<= 1: the PE keeps up)

Constants (all parameters of :class:`TimingSpec`):

* ``clock_hz`` 250 MHz: the PE clock at the chip's 0.5 V minimum-energy point [src, secondary:
  eeNews Analog, 27 July 2021, "Manchester, Dresden, Globalfoundries produce SpiNNaker2 chip":
  DVFS from 100 MHz at 0.45 V through 250 MHz at 0.5 V up to 500 MHz at 0.6 V (design targets)].
* ``sys_tick_s`` 1 ms: py-spinnaker2's ``hw.run(..., sys_tick_in_s=1.0e-3)`` in its examples;
  2 ms in the low-power (DVFS) N-MNIST demo (``sys_tick_in_s = 2.0e-3``) [src: public copies of
  py-spinnaker2 examples].
* ``mla_macs_per_cycle`` 64: the PE's machine-learning accelerator, "64 MAC units with 8 bit
  multiplier ... running 64 MAC operations per clock cycle" [src: TU Dresden SpiNNaker2 FAQ].
  ``lif_conv2d`` runs its PE's output atoms as one dense convolution of the pooled input map per
  tick on the MLA [inf].
* ``dram_bytes_per_s`` 6.4 GB/s: "up to 6.4 Gbytes/s sustained block transfer rate" [src:
  SpiNNaker2 datasheet v0.03], shared by a chip's PEs; a PE gets ``1 / usable PEs`` of it [inf].
* Cycle counts per operation [inf: no public cycle counts for py-spinnaker2's apps; set to the
  order of SpiNNaker1's published costs on an ARM968, a Cortex-M4F being no slower per cycle]:
  ``tick_overhead`` 2000 (timer ISR, DMA of the spike record, bookkeeping), ``cycles_per_packet_received``
  100 (packet ISR, master population table lookup, row address), ``cycles_per_synaptic_event`` 10
  (read a 16-bit word, decode weight / target, add to the input buffer), ``cycles_per_neuron_update``
  40 (float32 decay, two adds, compare, reset, buffer clear), ``cycles_per_packet_sent`` 20,
  ``cycles_per_mla_call`` 200, ``cycles_per_dma`` 100.

Energy per inference (``ticks`` ticks, :func:`energy`) [inf, every constant a parameter of
:class:`EnergySpec`]::

    E = ticks * sys_tick_s * chips * chip_baseline_w          (static + router + DRAM idle)
      + sum over PEs and ticks of cycles * joules_per_cycle       (ARM at 0.5 V)
      + MLA MACs * joules_per_mac
      + link hops * joules_per_link_packet

``chip_baseline_w`` 0.5 W, ``joules_per_cycle`` 10 pJ (a Cortex-M4F near threshold in 22FDX,
about 10 uW/MHz), ``joules_per_mac`` 1 pJ (8-bit MAC), ``joules_per_link_packet`` 1 nJ
(40 bits over a serial link at ~25 pJ/bit): all [inf]. The study behind this project reports
about 0.46 J per gesture on chip [study]; :func:`energy` reports the ratio to it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Optional

import numpy as np

#: energy per gesture on chip reported by the study behind this project (J) [study].
STUDY_JOULES_PER_GESTURE = 0.46


@dataclass(frozen=True)
class TimingSpec:
    """PE clock, tick and cycle costs per operation (Hz, seconds, cycles); sources in the module docstring."""

    clock_hz: float = 250e6
    sys_tick_s: float = 1e-3
    tick_overhead: float = 2000.0
    cycles_per_packet_received: float = 100.0
    cycles_per_synaptic_event: float = 10.0
    cycles_per_neuron_update: float = 40.0
    cycles_per_packet_sent: float = 20.0
    mla_macs_per_cycle: float = 64.0
    cycles_per_mla_call: float = 200.0
    cycles_per_dma: float = 100.0
    dram_bytes_per_s: float = 6.4e9

    @property
    def cycles_per_tick(self) -> float:
        return self.clock_hz * self.sys_tick_s

    def as_dict(self) -> Dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class EnergySpec:
    """Energy constants (W, J); all [inf], see the module docstring."""

    chip_baseline_w: float = 0.5
    joules_per_cycle: float = 10e-12
    joules_per_mac: float = 1e-12
    joules_per_link_packet: float = 1e-9

    def as_dict(self) -> Dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}


@dataclass
class PELoad:
    """One PE's work in one tick at the activity (cycles by kind, and the load)."""

    index: int
    population: str
    model: str
    chip: int
    neurons: int
    packets_received: float
    synaptic_events: float
    packets_sent: float
    macs: float
    cycles: float
    load: float


@dataclass
class Realtime:
    """Result of :func:`realtime`: every PE's load, the worst one and whether all keep up."""

    pes: List[PELoad]
    spec: TimingSpec

    @property
    def worst(self) -> Optional[PELoad]:
        return max(self.pes, key=lambda p: (p.load, -p.index)) if self.pes else None

    @property
    def keeps_up(self) -> bool:
        w = self.worst
        return w is None or w.load <= 1.0

    @property
    def cycles(self) -> float:
        return float(sum(p.cycles for p in self.pes))

    @property
    def macs(self) -> float:
        return float(sum(p.macs for p in self.pes))


def _conv_macs(net: Any, pe: Any) -> float:
    """MLA multiply-accumulates of one lif_conv2d PE per tick: its atoms x C_in/groups x kh x kw per conv projection."""
    macs = 0.0
    for proj in net.projections:
        if proj.post == pe.population and proj.kind == "conv2d":
            _, cin_g, kh, kw = proj.weight.shape
            macs += float(pe.atoms) * int(cin_g) * int(kh) * int(kw)
    return macs


def _row_bytes_per_packet(net: Any, pe: Any) -> float:
    """Bytes of one synapse row of a PE whose rows are in DRAM (header + words), the DMA per packet."""
    if not pe.dram_bytes:
        return 0.0
    from .chip import ROW_HEADER_BYTES, SYNAPSE_WORD_BITS, _words

    return float(ROW_HEADER_BYTES + _words(pe.atoms * SYNAPSE_WORD_BITS / 8))


def realtime(net: Any, chip_map: Any, placement: Any, traffic: Any, spec: TimingSpec = TimingSpec()) -> Realtime:
    """Cycles and load of every PE in one tick (see the module docstring for the formula).

    Args:
        net: the lowered :class:`~s2emu.network.S2Network`.
        chip_map: its :class:`~s2emu.chip.ChipMap`.
        placement: the :class:`~s2emu.board.Placement` (for the chip of each PE).
        traffic: the :class:`~s2emu.board.Traffic` at the activity (packets per tick per PE).
        spec: clock, tick and cycle costs.
    """
    pes: List[PELoad] = []
    usable = max(1, int(chip_map.spec.usable_pes_per_chip))
    dram_per_cycle = spec.dram_bytes_per_s / usable / spec.clock_hz
    for i, pe in enumerate(chip_map.pes):
        rec = float(traffic.received[i])
        ev = float(traffic.synaptic_events[i])
        sent = float(traffic.sent[i])
        neurons = 0 if pe.model == "spike_list" else pe.atoms
        macs = _conv_macs(net, pe) if pe.model == "lif_conv2d" else 0.0
        cyc = spec.tick_overhead + rec * spec.cycles_per_packet_received + neurons * spec.cycles_per_neuron_update
        cyc += sent * spec.cycles_per_packet_sent
        if pe.model == "lif_conv2d":
            n_conv = sum(1 for p in net.projections if p.post == pe.population and p.kind == "conv2d")
            cyc += n_conv * spec.cycles_per_mla_call + macs / spec.mla_macs_per_cycle
            ev_arm = ev if any(p.post == pe.population and p.kind != "conv2d" for p in net.projections) else 0.0
            cyc += ev_arm * spec.cycles_per_synaptic_event
        else:
            cyc += ev * spec.cycles_per_synaptic_event
        row = _row_bytes_per_packet(net, pe)
        if row:
            cyc += rec * (spec.cycles_per_dma + row / dram_per_cycle)
        pes.append(PELoad(index=i, population=pe.population, model=pe.model, chip=int(placement.pe_chip[i]),
                          neurons=int(neurons), packets_received=rec, synaptic_events=ev, packets_sent=sent,
                          macs=macs, cycles=cyc, load=cyc / spec.cycles_per_tick))
    return Realtime(pes=pes, spec=spec)


def energy(rt: Realtime, placement: Any, traffic: Any, ticks: int, spec: EnergySpec = EnergySpec()
           ) -> Dict[str, Any]:
    """Energy of one inference of ``ticks`` ticks (J), by part, with the assumptions next to it.

    Returns:
        ``{"joules", "static_j", "compute_j", "mla_j", "links_j", "ticks", "seconds",
        "study_joules", "ratio_to_study", "constants", "assumptions"}``.
    """
    seconds = float(ticks) * rt.spec.sys_tick_s
    hops = float(sum(traffic.links.values())) if traffic is not None else 0.0
    static = seconds * placement.n_chips * spec.chip_baseline_w
    compute = float(ticks) * rt.cycles * spec.joules_per_cycle
    mla = float(ticks) * rt.macs * spec.joules_per_mac
    links = float(ticks) * hops * spec.joules_per_link_packet
    total = static + compute + mla + links
    return {"joules": total, "static_j": static, "compute_j": compute, "mla_j": mla, "links_j": links,
            "ticks": int(ticks), "seconds": seconds, "chips": int(placement.n_chips),
            "study_joules": STUDY_JOULES_PER_GESTURE, "ratio_to_study": total / STUDY_JOULES_PER_GESTURE,
            "constants": {**spec.as_dict(), "clock_hz": rt.spec.clock_hz, "sys_tick_s": rt.spec.sys_tick_s},
            "assumptions": "every used chip draws chip_baseline_w for the whole inference; each PE cycle "
                           "costs joules_per_cycle, each MLA MAC joules_per_mac, each packet on a chip-to-chip "
                           "link joules_per_link_packet; activity = the mean spikes per neuron per tick; "
                           "all constants inferred [inf], see s2emu/timing.py"}


def summary(rt: Realtime) -> Dict[str, Any]:
    """JSON-ready: worst PE, its load and cycles, PEs over budget, per population the max load."""
    w = rt.worst
    per_pop: Dict[str, float] = {}
    for p in rt.pes:
        per_pop[p.population] = max(per_pop.get(p.population, 0.0), p.load)
    return {"keeps_up": bool(rt.keeps_up), "worst_load": float(w.load) if w else 0.0,
            "worst_pe": None if w is None else {"index": w.index, "population": w.population, "model": w.model,
                                                "chip": w.chip, "cycles": float(w.cycles),
                                                "packets_received": float(w.packets_received),
                                                "synaptic_events": float(w.synaptic_events),
                                                "macs": float(w.macs), "neurons": w.neurons},
            "pes_over_budget": int(sum(1 for p in rt.pes if p.load > 1.0)),
            "cycles_per_tick_budget": float(rt.spec.cycles_per_tick),
            "max_load_per_population": {k: float(v) for k, v in per_pop.items()},
            "constants": rt.spec.as_dict()}


def loads(rt: Realtime) -> np.ndarray:
    """(n_pes,) load of every PE."""
    return np.asarray([p.load for p in rt.pes], np.float64)


def estimate(net: Any, rates: Any, *, max_chips: int = 1, atoms_per_core: Optional[Dict[str, int]] = None,
             input_ticks: int = 1, ticks: int = 20, timing: TimingSpec = TimingSpec(),
             energy_spec: EnergySpec = EnergySpec(), board: Any = None) -> Dict[str, Any]:
    """Board map, packets, real-time budget and energy of ``net`` at ``rates``, JSON-ready.

    Args:
        net: the lowered network.
        rates: spikes per neuron per tick per population (:func:`s2emu.board.neuron_rates`).
        max_chips: chips allowed (:func:`s2emu.board.map_to_board`).
        atoms_per_core, input_ticks: as for the chip map.
        ticks: ticks of one inference (energy).
        timing, energy_spec, board: the constants.

    Returns:
        ``{"fits", "reasons", "chips", "per_chip", "inter_chip_packets_per_tick", "by_projection",
        "busiest_link", "link_capacity_per_tick", "realtime", "energy"}``; the traffic, real-time and
        energy parts are None when the placement leaves the board.
    """
    from .board import BoardSpec, map_to_board, traffic

    bm = map_to_board(net, max_chips=max_chips, board=board or BoardSpec(), atoms_per_core=atoms_per_core,
                      input_ticks=input_ticks)
    out: Dict[str, Any] = {"fits": bool(bm.fits), "reasons": list(bm.reasons), "chips": int(bm.placement.n_chips),
                           "max_chips": int(max_chips), "per_chip": bm.chip_rows(), "inter_chip_packets_per_tick": None,
                           "by_projection": {}, "busiest_link": None, "link_capacity_per_tick": None,
                           "realtime": None, "energy": None}
    try:
        tr = traffic(net, bm.chip_map, bm.placement, rates, sys_tick_s=timing.sys_tick_s)
    except ValueError as exc:
        out["reasons"].append(f"packets not estimated: {exc}")
        return out
    b = tr.busiest_link
    out.update({"inter_chip_packets_per_tick": float(tr.inter_chip),
                "by_projection": {k: float(v) for k, v in tr.by_projection.items()},
                "busiest_link": None if b is None else {"from": int(b[0][0]), "to": int(b[0][1]),
                                                        "packets_per_tick": float(b[1]),
                                                        "load": float(tr.link_load)},
                "link_capacity_per_tick": float(tr.capacity)})
    rt = realtime(net, bm.chip_map, bm.placement, tr, timing)
    out["realtime"] = summary(rt)
    out["energy"] = energy(rt, bm.placement, tr, ticks, energy_spec)
    return out
