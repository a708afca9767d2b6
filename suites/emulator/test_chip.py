"""The chip (PE / SRAM) model and ``s2gate map``.

Expected byte counts are worked out by hand from the layout documented in ``s2emu/chip.py``
(row header 12 B, 16-bit synapse words padded per row to 32-bit words, 4 float32 parameters
and 1 state word per lif neuron, 2 int32 input slots, a spike record of bitmap words + 2 header
words, the conv kernel once per PE and the pooled int8 input map) - not copied from the code's output.
"""
from __future__ import annotations

import math

import nir
import numpy as np

from s2emu.chip import ChipSpec, LayerMemory, layer_memory, map_to_chip
from s2emu.network import ConversionOptions, Population, Projection, S2Network

from ..fixtures import REPO


def _pop(name, model, shape):
    n = int(np.prod(shape))
    if model == "spike_list":
        return Population(name=name, model=model, shape=tuple(shape), nir_type="Input")
    z = np.zeros(n, np.float32)
    extra = {}
    if model == "lif_curr_exp_no_delay":
        extra = dict(exc_decay=z + 0.5, inh_decay=z + 0.5)
    return Population(name=name, model=model, shape=tuple(shape), threshold=z + 1, alpha_decay=z + 1, i_offset=z,
                      v_reset=z, **extra)


def _net(pops, projs, options=ConversionOptions()):
    return S2Network(populations={p.name: p for p in pops}, projections=projs, input_name=pops[0].name,
                     output_names=[pops[-1].name], options=options)


def test_dense_rows_split_over_two_pes():
    # 10 inputs -> 7 lif_no_delay neurons, 4 atoms per core: PEs of 4 and 3 atoms.
    net = _net([_pop("in", "spike_list", (10,)), _pop("h", "lif_no_delay", (7,))],
               [Projection("p", "in", "h", "dense", weight=np.ones((7, 10), np.int8))])
    chip = map_to_chip(net, atoms_per_core={"h": 4})
    pes = [p for p in chip.pes if p.population == "h"]
    assert [p.atoms for p in pes] == [4, 3]
    # PE 0: 10 rows x (12 B header + 4 synapses x 2 B = 8 B) = 200 B of rows, 40 weights of which
    # 40 B are int8 weights; params 4 x 4 x 4 = 64; state 4 x 4 = 16; buffers 2 x 4 x 4 + 4 + 8 = 44.
    assert (pes[0].weights, pes[0].weight_bytes_int8, pes[0].weight_bytes_float32) == (40, 40, 160)
    assert pes[0].synapse_bytes == 200 - 40
    assert (pes[0].param_bytes, pes[0].state_bytes, pes[0].buffer_bytes) == (64, 16, 44)
    assert pes[0].total_bytes == 324
    # PE 1: 3 synapses x 2 B = 6 B -> padded to 8 B per row: 10 x 20 = 200 B; params 48, state 12, buffers 36.
    assert pes[1].total_bytes == 200 + 48 + 12 + 36
    row = chip.row("h")
    assert (row.neurons, row.pes, row.weights) == (7, 2, 70)
    assert row.weight_bytes_float32 == 4 * 70 and row.weight_bytes_int8 == 70
    assert row.max_bytes_per_pe == 324 and row.fits
    assert row.total_bytes_float32 == row.total_bytes - 70 + 280
    # input: spike_list, default 500 atoms per core -> 1 PE holding one spike record (1 bitmap word + 2).
    assert chip.row("in").pes == 1 and chip.row("in").total_bytes == 12
    assert chip.total.pes == 3 and chip.total.chips == 1 and chip.total.fits


def test_conv_kernel_is_stored_on_every_pe():
    # (2, 6, 6) -> Conv 3x3, 4 out channels -> (4, 4, 4) = 64 lif_conv2d neurons, 32 atoms per core.
    net = _net([_pop("in", "spike_list", (2, 6, 6)), _pop("c", "lif_conv2d", (4, 4, 4))],
               [Projection("p", "in", "c", "conv2d", weight=np.ones((4, 2, 3, 3), np.int8))])
    row = map_to_chip(net, atoms_per_core={"c": 32}).row("c")
    assert row.pes == 2
    # per PE: kernel 72 B (int8) / 288 B (float32); params 32 x 16 = 512; state 128;
    # buffers 2 x 32 x 4 + 4 + 8 (spike record) + 72 (input map 2 x 6 x 6 int8) = 340.
    assert row.weight_bytes_int8 == 2 * 72 and row.weight_bytes_float32 == 2 * 288
    assert row.buffer_bytes == 2 * 340
    assert row.max_bytes_per_pe == 72 + 512 + 128 + 340
    assert row.synapse_bytes == 0


def test_pooled_conv_input_map_and_odd_kernel_padding():
    # SumPool 2x2 folded into a conv: input map (3, 8, 8) -> pooled (3, 4, 4) = 48 B; kernel 1x3x1x1 = 3 B -> 4 B.
    net = _net([_pop("in", "spike_list", (3, 8, 8)), _pop("c", "lif_conv2d", (1, 4, 4))],
               [Projection("p", "in", "c", "conv2d", weight=np.ones((1, 3, 1, 1), np.int8), pool=(2, 2))])
    pe = [p for p in map_to_chip(net).pes if p.population == "c"][0]
    assert pe.weight_bytes_int8 == 4 and pe.weight_bytes_float32 == 12
    assert pe.buffer_bytes == 2 * 16 * 4 + 4 + 8 + 48


def test_pool_then_flatten_then_affine_expands_rows_by_pool_area():
    # (2, 4, 4) -> SumPool 2x2 -> (2, 2, 2) = 8 -> Affine 8 -> 5: every one of the 32 pre neurons gets a row of 5.
    net = _net([_pop("in", "spike_list", (2, 4, 4)), _pop("d", "lif_no_delay", (5,))],
               [Projection("p", "in", "d", "dense", weight=np.ones((5, 8), np.int8), pool=(2, 2))])
    row = map_to_chip(net).row("d")
    assert row.weights == 32 * 5
    # rows: 32 x (12 + 10 B -> 12 B) = 768 B
    assert row.weight_bytes_int8 + row.synapse_bytes == 32 * 24


def test_pool_projection_one_synapse_per_row():
    net = _net([_pop("in", "spike_list", (2, 4, 4)), _pop("q", "lif_no_delay", (2, 2, 2))],
               [Projection("p", "in", "q", "pool", pool=(2, 2))])
    row = map_to_chip(net).row("q")
    # 8 post atoms x 4 pre each = 32 rows of 1 synapse: 32 x (12 + 4) = 512 B
    assert row.weights == 32 and row.weight_bytes_int8 + row.synapse_bytes == 512


def test_lif_four_bit_weights_and_curr_exp_state():
    opts = ConversionOptions(conn_delay=1)
    net = _net([_pop("in", "spike_list", (3,)), _pop("l", "lif", (5,)), _pop("c", "lif_curr_exp_no_delay", (2,))],
               [Projection("a", "in", "l", "dense", weight=np.ones((5, 3), np.int8), delay=1),
                Projection("b", "l", "c", "dense", weight=np.ones((2, 5), np.int8))], opts)
    chip = map_to_chip(net)
    lif = chip.row("l")
    assert lif.weights == 15 and lif.weight_bytes_int8 == 8  # 15 x 4 bit = 7.5 B -> 8 B
    assert lif.weight_bytes_float32 == 60
    assert lif.buffer_bytes == 16 * 4 * 5 + 4 + 8  # 8 delay slots x 2 types of int32
    c = chip.row("c")
    assert (c.param_bytes, c.state_bytes) == (2 * 6 * 4, 2 * 3 * 4)
    assert c.buffer_bytes == 4 * 4 * 2 + 4 + 8


def test_spike_list_holds_input_ticks_records():
    net = _net([_pop("in", "spike_list", (40,)), _pop("h", "lif_no_delay", (2,))],
               [Projection("p", "in", "h", "dense", weight=np.ones((2, 40), np.int8))])
    # 40 atoms -> 2 bitmap words + 2 header words = 16 B per tick held
    assert map_to_chip(net).row("in").buffer_bytes == 16
    assert map_to_chip(net, input_ticks=300).row("in").buffer_bytes == 300 * 16


def test_fit_and_chip_count():
    net = _net([_pop("in", "spike_list", (10,)), _pop("h", "lif_no_delay", (7,))],
               [Projection("p", "in", "h", "dense", weight=np.ones((7, 10), np.int8))])
    small = map_to_chip(net, data_sram_per_pe=300, atoms_per_core={"h": 4})
    assert not small.row("h").fits and not small.total.fits  # PE 0 needs 324 B
    assert small.row("in").fits
    # 148 usable PEs per chip: 1 input PE + 148 PEs of 1 atom -> 149 PEs -> 2 chips
    many = _net([_pop("in", "spike_list", (1,)), _pop("h", "lif_no_delay", (148,))],
                [Projection("p", "in", "h", "dense", weight=np.ones((148, 1), np.int8))])
    chip = map_to_chip(many, atoms_per_core={"h": 1})
    assert chip.total.pes == 149 and chip.total.chips == 2 and chip.total.boards == 1 and not chip.total.fits
    assert map_to_chip(many, atoms_per_core={"h": 1}, max_chips=2).total.fits
    assert ChipSpec().sram_per_pe == 128 * 1024 and ChipSpec().pes_per_chip == 152


def test_layer_memory_rows():
    net = _net([_pop("in", "spike_list", (2, 4, 4)), _pop("d", "lif_no_delay", (5,))],
               [Projection("p", "in", "d", "dense", weight=np.ones((5, 8), np.int8), pool=(2, 2))])
    rows = layer_memory(net)
    assert [r.name for r in rows] == ["in", "d"] and all(isinstance(r, LayerMemory) for r in rows)
    d = rows[1]
    assert (d.neurons, d.weights, d.unique_weights) == (5, 160, 40)
    assert (d.weight_bytes_int8, d.weight_bytes_float32, d.param_bytes, d.state_bytes) == (160, 640, 80, 20)


# ----------------------------------------------------------------------------------------
# cnn_sinabs, end to end, numbers from the graph's shapes
# ----------------------------------------------------------------------------------------

CNN = REPO / "harness" / "bundled" / "cnn_sinabs.nir"


def _expected_cnn_rows(atoms):
    """Per population: (neurons, PEs, weight bytes f32, weight bytes int8, total bytes), from the graph's shapes."""
    from s2common.graph import read_flat

    flat = read_flat(CNN)
    w = lambda n: np.asarray(flat.nodes[n].weight).shape  # noqa: E731
    words = lambda b: 4 * math.ceil(b / 4)  # noqa: E731
    out = {}
    n_in = int(np.prod(flat.out_shape["input"]))
    pes = math.ceil(n_in / atoms["spike_list"])
    out["input"] = (n_in, pes, 0, 0, sum(words(math.ceil(min(atoms["spike_list"], n_in - i) / 8)) + 8
                                          for i in range(0, n_in, atoms["spike_list"])))

    def lif_common(n):
        return 16 * n + 4 * n + 8 * n + words(math.ceil(n / 8)) + 8  # params, v, 2 int32 slots, spike record

    # conv layers: (population, conv node, pre map (C, H, W), pool)
    for pop, conv, pre, pool in (("1", "0", "input", 1), ("3", "2", "1", 1), ("6", "5", "3", 2)):
        size = int(np.prod(flat.in_shape[pop]))
        a = atoms.get(pop, atoms["lif_conv2d"])
        k = int(np.prod(w(conv)))
        c, h, wd = flat.out_shape[pre]
        in_map = words(c * (h // pool) * (wd // pool))
        slices = [min(a, size - i) for i in range(0, size, a)]
        total = sum(words(k) + lif_common(n) + in_map for n in slices)
        out[pop] = (size, len(slices), 4 * k * len(slices), words(k) * len(slices), total)
    # dense layers: (population, affine node, pre-pool neurons feeding it)
    for pop, aff, rows in (("10", "9", int(np.prod(flat.out_shape["6"]))), ("12", "11", 256)):
        size = int(np.prod(flat.in_shape[pop]))
        a = atoms.get(pop, atoms["lif_no_delay"])
        assert rows == w(aff)[1] * (4 if pop == "10" else 1)  # SumPool 2x2 expands the Affine's 128 inputs
        slices = [min(a, size - i) for i in range(0, size, a)]
        total = sum(rows * (12 + words(2 * n)) + lif_common(n) for n in slices)
        out[pop] = (size, len(slices), 4 * rows * size, rows * size, total)
    return out


def _table(text):
    rows = {}
    for line in text.splitlines():
        cols = line.split()
        if len(cols) == 10 and cols[-1] in ("yes", "NO"):
            rows[cols[0]] = cols
    return rows


def test_map_cli_cnn_sinabs_default_does_not_fit(capsys):
    """At py-spinnaker2's default atoms per PE (--no-auto-atoms: map refuses to choose, as the gate's flag)."""
    from harness.cli import main

    rc = main(["map", str(CNN), "--no-auto-atoms"])
    out = capsys.readouterr().out
    assert rc == 1
    table = _table(out)
    exp = _expected_cnn_rows({"spike_list": 500, "lif_conv2d": 256, "lif_no_delay": 250})
    for pop, (neurons, pes, f32, i8, total) in exp.items():
        cols = table[pop]
        assert [int(cols[2]), int(cols[4]), int(cols[5]), int(cols[6]), int(cols[7])] == [neurons, pes, f32, i8, total], pop
    assert table["10"][-1] == "NO" and table["12"][-1] == "yes"
    assert int(table["total"][4]) == sum(v[1] for v in exp.values())
    assert "[population-exceeds-pe] node '10'" in out


def test_map_cli_cnn_sinabs_paper_atoms_fit(capsys):
    """The NIR paper's py-spinnaker2 run set max_atoms_per_core 3=256, 6=128, 10=16 (s2_apply.ipynb)."""
    from harness.cli import main

    rc = main(["map", str(CNN), "--atoms", "3=256", "--atoms", "6=128", "--atoms", "10=16"])
    out = capsys.readouterr().out
    assert rc == 0, out
    table = _table(out)
    exp = _expected_cnn_rows({"spike_list": 500, "lif_conv2d": 256, "lif_no_delay": 250, "3": 256, "6": 128, "10": 16})
    for pop, (neurons, pes, f32, i8, total) in exp.items():
        cols = table[pop]
        assert [int(cols[2]), int(cols[4]), int(cols[5]), int(cols[6]), int(cols[7])] == [neurons, pes, f32, i8, total], pop
    assert int(table["total"][4]) == 5 + 16 + 16 + 4 + 16 + 1
    assert int(table["total"][5]) == sum(v[2] for v in exp.values())
    assert "design rules: all pass" in out


def _wide_graph(n: int):
    """Input (1,) -> Affine (n, 1) -> IF (n,): n / 250 PEs with tiny arrays."""
    return nir.NIRGraph(
        nodes={"input": nir.Input(input_type=np.array([1])),
               "fc": nir.Affine(weight=np.ones((n, 1), np.float32), bias=np.zeros(n, np.float32)),
               "lif": nir.IF(r=np.ones(n, np.float32), v_threshold=np.ones(n, np.float32), v_reset=np.zeros(n, np.float32)),
               "output": nir.Output(output_type=np.array([n]))},
        edges=[("input", "fc"), ("fc", "lif"), ("lif", "output")])


def test_map_cli_network_exceeding_one_chip(tmp_path, capsys):
    from harness.cli import main

    path = tmp_path / "wide.nir"
    nir.write(str(path), _wide_graph(148 * 250))  # 148 PEs of IF + 1 input PE = 149 > 148 usable
    rc = main(["map", str(path)])
    out = capsys.readouterr().out
    assert rc == 1
    table = _table(out)
    assert int(table["lif"][4]) == 148 and int(table["total"][4]) == 149
    assert "[network-exceeds-chip]" in out and "149 PEs = 2 chips" in out
    assert main(["map", str(path), "--max-chips", "2"]) == 0
    capsys.readouterr()


def test_map_cli_bad_file_exits_2(tmp_path, capsys):
    from harness.cli import main

    bad = tmp_path / "not.nir"
    bad.write_text("hello")
    assert main(["map", str(bad)]) == 2
    assert "not-hdf5" in capsys.readouterr().err


def test_map_cli_bad_atoms_option(capsys):
    from harness.cli import main

    assert main(["map", str(CNN), "--atoms", "10"]) == 2
    assert "--atoms" in capsys.readouterr().err


def test_map_cli_conversion_flags(capsys):
    """Flags reach the lowering: percentile 99 makes the vendor's conv cast wrap (a rule failure, exit 1)."""
    import argparse

    from harness.cli import main
    from harness.cli.map import add_conversion_arguments, conversion_options

    rc = main(["map", str(CNN), "--atoms", "10=16", "--percentile", "99"])
    out = capsys.readouterr().out
    assert rc == 1
    from s2common.graph import read_flat

    flat = read_flat(CNN)
    wrapping = []
    for conv in ("0", "2", "5"):  # each Conv2d is the only weight layer into its population
        w = np.abs(np.asarray(flat.nodes[conv].weight, dtype=np.float64))
        if (np.trunc(w * 127.0 / np.percentile(w, 99)) > 127).any():
            wrapping.append(conv)
    assert wrapping
    for conv in ("0", "2", "5"):
        assert (f"[vendor-int8-wrap] node '{conv}'" in out) == (conv in wrapping), conv
    assert out.splitlines()[-1] == f"result: {len(wrapping)} design rule(s) fail: vendor-int8-wrap"
    p = argparse.ArgumentParser()
    add_conversion_arguments(p)
    o = conversion_options(p.parse_args(["--dt", "1e-3", "--integrator", "forward", "--reset", "zero", "--conn-delay",
                                         "2", "--no-scale-weights", "--vendor-cast"]))
    assert (o.dt, o.integrator, o.reset, o.conn_delay, o.scale_weights, o.vendor_cast) == \
        (1e-3, "euler", "to_v_reset", 2, False, True)
    d = conversion_options(p.parse_args([]))
    assert (d.dt, d.integrator, d.reset, d.conn_delay, d.scale_weights, d.percentile) == \
        (1e-4, "euler", "subtract", 0, True, 100.0)
