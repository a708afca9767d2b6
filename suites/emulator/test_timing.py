"""Real-time budget per tick and energy per inference (``s2emu.timing``).

Cycle counts are worked out by hand from the formula in ``s2emu/timing.py``'s docstring with
round made-up costs, so every term shows; not copied from the code's output.
"""
from __future__ import annotations

import numpy as np
import pytest

from s2emu.board import map_to_board, place, traffic
from s2emu.chip import map_to_chip
from s2emu.network import ConversionOptions, Projection, S2Network

from suites.emulator.tiny_networks import population
from s2emu.timing import STUDY_JOULES_PER_GESTURE, EnergySpec, TimingSpec, energy, realtime, summary

SPEC = TimingSpec(clock_hz=1e6, sys_tick_s=1e-3, tick_overhead=100, cycles_per_packet_received=10,
                  cycles_per_synaptic_event=2, cycles_per_neuron_update=5, cycles_per_packet_sent=3,
                  mla_macs_per_cycle=9, cycles_per_mla_call=7, cycles_per_dma=11, dram_bytes_per_s=148e6)


_pop = population


def _dense():
    pops = [_pop("in", "spike_list", (4,)), _pop("h", "lif_no_delay", (4,))]
    return S2Network(populations={p.name: p for p in pops},
                     projections=[Projection("p", "in", "h", "dense", weight=np.ones((4, 4), np.int8))],
                     input_name="in", output_names=["h"], options=ConversionOptions())


def test_dense_pe_cycles_by_hand():
    net = _dense()
    cm = map_to_chip(net, atoms_per_core={"h": 2})
    pl = place(cm)
    rt = realtime(net, cm, pl, traffic(net, cm, pl, {"in": 0.5, "h": 0.25}), SPEC)
    # input PE: overhead 100 + 2 packets sent x 3 = 106 (a spike_list updates no neuron)
    # h PE: 100 + 2 received x 10 + 4 synaptic events x 2 + 2 neurons x 5 + 0.5 sent x 3 = 139.5
    assert [p.cycles for p in rt.pes] == [106.0, 139.5, 139.5]
    assert rt.worst.index == 1 and rt.worst.load == pytest.approx(139.5 / 1000)
    assert rt.keeps_up
    s = summary(rt)
    assert s["worst_load"] == pytest.approx(0.1395) and s["pes_over_budget"] == 0
    assert s["cycles_per_tick_budget"] == 1000


def test_realtime_fails_when_the_inputs_outrun_the_tick():
    net = _dense()
    cm = map_to_chip(net, atoms_per_core={"h": 2})
    pl = place(cm)
    rt = realtime(net, cm, pl, traffic(net, cm, pl, {"in": 30.0}), SPEC)
    # h PE: 100 + 120 x 10 + 240 x 2 + 2 x 5 = 1790 cycles > 1000 per tick: it cannot keep up
    assert rt.pes[1].cycles == 1790.0 and not rt.keeps_up
    assert summary(rt)["pes_over_budget"] == 2
    # a 2 ms tick gives 2000 cycles: it keeps up again
    slow = realtime(net, cm, pl, traffic(net, cm, pl, {"in": 30.0}), TimingSpec(**{**SPEC.as_dict(), "sys_tick_s": 2e-3}))
    assert slow.keeps_up and slow.worst.load == pytest.approx(1790 / 2000)


def test_conv_pe_uses_the_mla():
    pops = [_pop("in", "spike_list", (1, 3, 3)), _pop("c", "lif_conv2d", (1, 3, 3))]
    net = S2Network(populations={p.name: p for p in pops},
                    projections=[Projection("p", "in", "c", "conv2d", weight=np.ones((1, 1, 3, 3), np.int8),
                                            padding=(1, 1))],
                    input_name="in", output_names=["c"], options=ConversionOptions())
    cm = map_to_chip(net, atoms_per_core={"c": 3})
    pl = place(cm)
    rates = np.zeros(9)
    rates[4] = 1.0
    rt = realtime(net, cm, pl, traffic(net, cm, pl, {"in": rates}), SPEC)
    # a conv PE of 3 atoms: 100 + 1 packet x 10 + 3 neurons x 5 + 1 MLA call x 7 + 3 x 1 x 3 x 3 MACs / 9 per cycle
    assert rt.pes[1].macs == 27 and rt.pes[1].cycles == 100 + 10 + 15 + 7 + 3


def test_dram_rows_cost_a_dma_per_packet():
    # 1 input -> 1 neuron... made to overflow SRAM: 30000 inputs x 1 output, 1 atom: 30000 rows of 16 B = 480 kB
    pops = [_pop("in", "spike_list", (30000,)), _pop("h", "lif_no_delay", (1,))]
    net = S2Network(populations={p.name: p for p in pops},
                    projections=[Projection("p", "in", "h", "dense", weight=np.ones((1, 30000), np.int8))],
                    input_name="in", output_names=["h"], options=ConversionOptions())
    bm = map_to_board(net, max_chips=2)
    assert bm.fits
    h = [i for i, pe in enumerate(bm.chip_map.pes) if pe.population == "h"][0]
    assert bm.chip_map.pes[h].dram_bytes == 30000 * 16
    tr = traffic(net, bm.chip_map, bm.placement, {"in": 0.001})
    rt = realtime(net, bm.chip_map, bm.placement, tr, SPEC)
    # 30 packets: 100 + 30 x 10 + 30 x 1 x 2 + 1 x 5 + 30 x (11 + 16 B / (148e6 / 148 / 1e6 B per cycle))
    assert rt.pes[h].cycles == pytest.approx(100 + 300 + 60 + 5 + 30 * (11 + 16))
    # one chip: the rows stay in SRAM and the PE does not fit
    assert not map_to_board(net, max_chips=1).fits


def test_energy_by_hand():
    net = _dense()
    cm = map_to_chip(net, atoms_per_core={"h": 2})
    pl = place(cm)
    tr = traffic(net, cm, pl, {"in": 0.5, "h": 0.25})
    rt = realtime(net, cm, pl, tr, SPEC)
    e = energy(rt, pl, tr, ticks=20, spec=EnergySpec(chip_baseline_w=0.5, joules_per_cycle=1e-9,
                                                     joules_per_mac=0.0, joules_per_link_packet=1.0))
    # 20 ticks x 1 ms x 1 chip x 0.5 W = 0.01 J; 20 x (106 + 139.5 + 139.5) cycles x 1 nJ; no link on one chip
    assert e["static_j"] == pytest.approx(0.01)
    assert e["compute_j"] == pytest.approx(20 * 385 * 1e-9)
    assert e["links_j"] == 0.0
    assert e["joules"] == pytest.approx(0.01 + 20 * 385e-9)
    assert e["ratio_to_study"] == pytest.approx(e["joules"] / STUDY_JOULES_PER_GESTURE)
    assert "assumptions" in e and e["constants"]["sys_tick_s"] == 1e-3


def test_estimate_json_agrees_with_the_parts():
    import json

    from s2emu.timing import estimate

    net = _dense()
    e = estimate(net, {"in": 0.5, "h": 0.25}, atoms_per_core={"h": 2}, ticks=20, timing=SPEC)
    json.dumps(e)  # JSON-ready
    assert e["fits"] and e["chips"] == 1 and e["inter_chip_packets_per_tick"] == 0.0
    assert e["realtime"]["worst_load"] == pytest.approx(0.1395)
    assert e["energy"]["ticks"] == 20 and e["per_chip"][0]["pes"] == 3
