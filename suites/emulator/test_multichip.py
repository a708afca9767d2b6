"""Multi-chip placement, routes and spike packets per tick (``s2emu.board``, ``s2gate map --chips``).

Expected numbers are worked out by hand from the rules in ``s2emu/board.py``'s docstring
(8 x 6 triangular mesh, E/NE/N/W/SW/S links, diagonal hops first, one multicast packet per spike
that crosses each link of the union of its routes once), not copied from the code's output.
"""
from __future__ import annotations

import nir
import numpy as np
import pytest

from s2emu.board import BoardSpec, _multicast_links, fanout, map_to_board, place, traffic
from s2emu.chip import map_to_chip
from s2emu.network import ConversionOptions, Projection, S2Network

from suites.emulator.tiny_networks import population


_pop = population


def _net(pops, projs):
    return S2Network(populations={p.name: p for p in pops}, projections=projs, input_name=pops[0].name,
                     output_names=[pops[-1].name], options=ConversionOptions())


def test_board_links_and_routes():
    b = BoardSpec()
    # chip = y * 8 + x; a corner has E, NE, N; an inner chip has all six
    assert sorted(b.neighbours(0)) == [1, 8, 9]
    assert sorted(b.neighbours(9)) == sorted([10, 18, 17, 8, 0, 1])
    assert b.route(0, 0) == []
    assert b.route(0, 9) == [(0, 9)]                    # (0,0) -> (1,1): one NE hop
    assert b.route(0, 10) == [(0, 9), (9, 10)]          # (2,1): NE then E
    assert b.route(1, 8) == [(1, 0), (0, 8)]            # (1,0) -> (0,1): signs differ: W then N
    assert b.route(47, 0) == [(47, 38), (38, 29), (29, 20), (20, 11), (11, 2), (2, 1), (1, 0)]  # (7,5): 5 SW, 2 W
    # one packet to chips 1 and 2 crosses 0->1 once
    assert _multicast_links(b, 0, [1, 2]) == [(0, 1), (1, 2)]
    # 1 Gbit/s, 40-bit packets, 1 ms: 25,000 packets per tick per link direction
    assert b.packets_per_link_per_tick(1e-3) == pytest.approx(25_000)
    assert b.chip_order()[:10] == [0, 1, 2, 3, 4, 5, 6, 7, 15, 14]


def test_placement_keeps_a_layer_together_or_packs_when_that_fits():
    # 10 usable PEs per chip; layers of 6, 6, 6 PEs (1 atom per PE)
    net = _net([_pop("a", "spike_list", (6,)), _pop("b", "lif_no_delay", (6,)), _pop("c", "lif_no_delay", (6,))],
               [Projection("ab", "a", "b", "dense", weight=np.ones((6, 6), np.int8)),
                Projection("bc", "b", "c", "dense", weight=np.ones((6, 6), np.int8))])
    cm = map_to_chip(net, usable_pes_per_chip=10, atoms_per_core={"a": 1, "b": 1, "c": 1})
    together = place(cm, max_chips=3)
    assert together.pe_chip == [0] * 6 + [1] * 6 + [2] * 6 and together.fits
    # 3 chips are more than allowed, plain packing needs ceil(18 / 10) = 2: layer b spans chips 0 and 1
    packed = place(cm, max_chips=2)
    assert packed.pe_chip == [0] * 10 + [1] * 8 and packed.fits
    assert [u.pes for u in packed.chips] == [10, 8]
    assert not place(cm, max_chips=1).fits


def test_dense_packets_per_tick_and_link():
    # input (4) on chip 0; h (4 neurons, 2 per PE, 2 usable PEs per chip: h does not fit the 1 PE left) on chip 1
    net = _net([_pop("in", "spike_list", (4,)), _pop("h", "lif_no_delay", (4,))],
               [Projection("p", "in", "h", "dense", weight=np.ones((4, 4), np.int8))])
    cm = map_to_chip(net, usable_pes_per_chip=2, atoms_per_core={"h": 2})
    pl = place(cm, max_chips=2)
    assert pl.pe_chip == [0, 1, 1]
    tr = traffic(net, cm, pl, {"in": 0.5, "h": 0.25})
    assert tr.sent.tolist() == [2.0, 0.5, 0.5]          # 4 x 0.5; 2 x 0.25 each
    assert tr.received.tolist() == [0.0, 2.0, 2.0]      # every input spike reaches both h PEs
    assert tr.synaptic_events.tolist() == [0.0, 4.0, 4.0]  # 2 packets x 2 synapses (atoms) per row
    assert tr.inter_chip == pytest.approx(2.0)          # h spikes have no target
    assert tr.links == {(0, 1): pytest.approx(2.0)}


def test_conv_fanout_by_hand():
    # 1x3x3 input -> conv 1->1 3x3 pad 1 -> 1x3x3, 3 atoms (one output row) per PE
    net = _net([_pop("in", "spike_list", (1, 3, 3)), _pop("c", "lif_conv2d", (1, 3, 3))],
               [Projection("p", "in", "c", "conv2d", weight=np.ones((1, 1, 3, 3), np.int8), padding=(1, 1))])
    cm = map_to_chip(net, atoms_per_core={"c": 3})
    fo = fanout(net, cm, net.projections[0])
    pairs = {(int(n), int(pe)): int(k) for n, pe, k in zip(fo.pre, fo.pe, fo.synapses)}
    # input PE is global PE 0; output rows y = 0, 1, 2 are PEs 1, 2, 3
    # centre (1,1) reaches all 9 outputs: 3 on each PE; corner (0,0) reaches (0,0),(0,1),(1,0),(1,1)
    assert pairs[(4, 1)] == pairs[(4, 2)] == pairs[(4, 3)] == 3
    assert pairs[(0, 1)] == 2 and pairs[(0, 2)] == 2 and (0, 3) not in pairs
    assert sum(k for (n, _), k in pairs.items() if n == 0) == 4
    # all 9 inputs: each output sees its 3x3 window clipped at the border: 4+6+4+6+9+6+4+6+4 = 49 synapses
    assert sum(pairs.values()) == 49
    rates = np.zeros(9)
    rates[4] = 1.0
    tr = traffic(net, cm, place(cm), {"in": rates})
    assert tr.received.tolist() == [0, 1, 1, 1] and tr.synaptic_events.tolist() == [0, 3, 3, 3]
    assert tr.inter_chip == 0 and tr.links == {}


def _big_graph(n_out: int = 11) -> nir.NIRGraph:
    """The issue's model: Input 2x128x128 -> Conv 2->32 3x3 pad 1 -> IF -> SumPool 4 -> Flatten -> Affine -> IF."""
    rng = np.random.default_rng(0)
    return nir.NIRGraph(nodes={
        "input": nir.Input(input_type=np.array([2, 128, 128])),
        "conv": nir.Conv2d(input_shape=(128, 128), weight=rng.normal(size=(32, 2, 3, 3)).astype(np.float32), stride=1,
                           padding=1, dilation=1, groups=1, bias=np.zeros(32, np.float32)),
        "if1": nir.IF(r=np.ones((32, 128, 128), np.float32), v_threshold=np.ones((32, 128, 128), np.float32)),
        "pool": nir.SumPool2d(kernel_size=np.array([4, 4]), stride=np.array([4, 4]), padding=np.array([0, 0])),
        "flat": nir.Flatten(input_type={"input": np.array([32, 32, 32])}, start_dim=0, end_dim=-1),
        "fc": nir.Affine(weight=rng.normal(size=(n_out, 32 * 32 * 32)).astype(np.float32),
                         bias=np.zeros(n_out, np.float32)),
        "if2": nir.IF(r=np.ones(n_out, np.float32), v_threshold=np.ones(n_out, np.float32)),
        "output": nir.Output(output_type=np.array([n_out]))},
        edges=[("input", "conv"), ("conv", "if1"), ("if1", "pool"), ("pool", "flat"), ("flat", "fc"), ("fc", "if2"),
               ("if2", "output")])


@pytest.fixture(scope="module")
def big_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("big") / "big.nir"
    nir.write(str(path), _big_graph())
    return str(path)


def test_big_model_on_48_chips_by_hand(big_model):
    from s2common.graph import read_flat
    from s2emu.lowering import lower

    net = lower(read_flat(big_model))
    bm = map_to_board(net, max_chips=48)
    assert bm.fits, bm.reasons
    # PEs: input 32768 / 500 -> 66, conv 32*128*128 / 256 = 2048, if2 1: 2115 -> chip 0 holds input + 82 conv PEs,
    # then 13 full chips of conv, the 15th 2048 - 82 - 13*148 = 42 conv PEs + if2
    cm, pl = bm.chip_map, bm.placement
    assert cm.total.pes == 2115 and pl.n_chips == 15
    order = BoardSpec().chip_order()
    assert [u.chip for u in pl.chips] == order[:15]
    assert [u.pes for u in pl.chips] == [148] * 14 + [43]
    # if2's rows: 524288 pre-pool rows of 12 B header + 11 16-bit words padded to 24 B -> 36 B each, in DRAM
    assert pl.chips[-1].dram_bytes == 524288 * 36 and sum(u.dram_bytes for u in pl.chips) == 524288 * 36
    tr = traffic(net, cm, pl, {"*": 0.02})
    # every input pixel reaches all 32 output channels, which span all 15 chips: all 32768 inputs leave chip 0;
    # every if1 neuron (all inside a 4x4 pooling window) reaches if2 on the last chip, except the 42 x 256 there
    assert tr.by_projection["input->if1 via conv"] == pytest.approx(32768 * 0.02)
    assert tr.by_projection["if1->if2 via pool/flat/fc"] == pytest.approx((524288 - 42 * 256) * 0.02)
    assert tr.inter_chip == pytest.approx((32768 + 524288 - 42 * 256) * 0.02)


def test_map_cli_big_model_48_chips_and_1_chip(big_model, capsys):
    from harness.cli import main

    assert main(["map", big_model, "--chips", "48"]) == 0
    out = capsys.readouterr().out
    assert "chips: 15 used of 48" in out
    assert f"inter-chip packets per tick at 0.02 spikes/neuron/tick: {(32768 + 524288 - 42 * 256) * 0.02:.2f}" in out
    chip_lines = [l.split() for l in out.splitlines() if l.split()[:1] and l.split()[0].isdigit() and len(l.split()) >= 6]
    last = [c for c in chip_lines if c[0] == str(BoardSpec().chip_order()[14])][0]
    assert last[2] == "43" and last[4] == str(524288 * 36)     # PEs and DRAM bytes of the 15th chip
    assert "real-time" in out and "energy per inference" in out
    assert main(["map", big_model, "--chips", "1"]) == 1
    out = capsys.readouterr().out
    assert "does not fit: needs 2115 PEs on 15 chips" in out and "more than the 1 chip(s) allowed" in out
    assert out.splitlines()[-1].startswith("result: does not fit")


def test_map_cli_bad_chips_option(capsys):
    from harness.cli import main

    from ..fixtures import REPO

    cnn = REPO / "harness" / "bundled" / "cnn_sinabs.nir"
    assert main(["map", str(cnn), "--chips", "0"]) == 2
    assert "--chips" in capsys.readouterr().err
