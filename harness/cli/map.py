"""``s2gate map MODEL.nir``: map a NIR graph onto SpiNNaker2 PEs, print the memory table and the design rules.

Exit codes: 0 the model fits and every design rule passes; 1 it does not fit or a rule fails
(the lines after the table say which); 2 the file cannot be read (printed by the dispatcher).

The conversion flags (``--dt``, ``--integrator``, ``--reset``, ``--conn-delay``,
``--no-scale-weights``, ``--percentile``, ``--vendor-cast``) are the same as ``s2gate run``'s
(one builder, :func:`harness.cli.options.add_conversion_arguments`).
"""
from __future__ import annotations

import argparse
from typing import Dict, List, Optional

from harness.cli.options import add_conversion_arguments, conversion_options  # noqa: F401 (shared flags)


def _atoms(values: Optional[List[str]]) -> Dict[str, int]:
    """``--atoms POP=N`` values as a dict (parsed as the gate's ``--atoms`` are)."""
    from harness.gate.config import parse_atoms

    return dict(parse_atoms(values))


def add_parser(subparsers) -> argparse.ArgumentParser:
    from harness.cli.options import add_atoms_arguments, add_board_arguments, add_model_argument, add_subcommand

    p = add_subcommand(subparsers, "map", "map a NIR graph onto SpiNNaker2 PEs and print the memory table", __doc__)
    add_model_argument(p, "NIR graph (float or quantized)")
    add_conversion_arguments(p)
    c = p.add_argument_group("chip")
    add_board_arguments(c)  # --max-chips / --chips, --sys-tick
    add_atoms_arguments(c, auto=True)  # --no-auto-atoms as in the gate
    c.add_argument("--input-ticks", type=int, default=1, metavar="T",
                   help="ticks of input spikes a spike_list PE holds at once (default 1: streamed)")
    add_activity_arguments(p)
    return p


def add_activity_arguments(p: argparse.ArgumentParser) -> None:
    """The stated activity and tick of the packet, real-time and energy estimates."""
    g = p.add_argument_group("activity estimate (packets per tick, real-time budget, energy)")
    g.add_argument("--activity", type=float, default=0.02, metavar="R",
                   help="spikes per neuron per tick of every population, the Input included (default 0.02)")
    g.add_argument("--ticks", type=int, default=None, metavar="T",
                   help="ticks of one inference for the energy estimate (default: the model's s2gate.T, else 20)")


def board_report(net, bm, activity: float, sys_tick: float, ticks: int) -> List[str]:
    """Lines on the chips, inter-chip packets, busiest link, worst PE load and energy of a board map."""
    from tabulate import tabulate

    from s2emu.board import traffic
    from s2emu.timing import TimingSpec, energy, realtime

    pl = bm.placement
    lines = [f"chips: {pl.n_chips} used of {pl.board.chips} on the board (max {pl.max_chips}); a layer's PEs kept together"]
    rows = [[r["chip"], "-" if r["xy"] is None else f"{r['xy'][0]},{r['xy'][1]}", r["pes"], r["sram_bytes"],
             r["dram_bytes"], ", ".join(r["populations"])] for r in bm.chip_rows()]
    lines.append(tabulate(rows, headers=["chip", "x,y", "PEs", "SRAM [B]", "DRAM [B]", "populations"],
                          tablefmt="simple", disable_numparse=True))
    try:
        tr = traffic(net, bm.chip_map, pl, {"*": activity}, sys_tick_s=sys_tick)
    except ValueError as exc:
        lines.append(f"packets: not estimated ({exc})")
        return lines
    per = ", ".join(f"{k}: {v:.2f}" for k, v in tr.by_projection.items() if v)
    lines.append(f"inter-chip packets per tick at {activity:g} spikes/neuron/tick: {tr.inter_chip:.2f}"
                 + (f" ({per})" if per else ""))
    b = tr.busiest_link
    if b is not None:
        lines.append(f"busiest link: chip {b[0][0]} -> chip {b[0][1]}: {b[1]:.2f} packets per tick of "
                     f"{tr.capacity:.0f} ({100 * tr.link_load:.1f} %) [link bandwidth inferred]")
    spec = TimingSpec(sys_tick_s=sys_tick)
    rt = realtime(net, bm.chip_map, pl, tr, spec)
    w = rt.worst
    if w is not None:
        lines.append(f"real-time (sys_tick {sys_tick * 1e3:g} ms, PE clock {spec.clock_hz / 1e6:g} MHz): worst PE "
                     f"{w.index} ('{w.population}', chip {w.chip}) {w.cycles:,.0f} cycles = {w.load:.3f} x the tick "
                     f"-> {'keeps up' if rt.keeps_up else 'does NOT keep up'} (report only; cycle costs inferred)")
    e = energy(rt, pl, tr, ticks)
    lines.append(f"energy per inference ({ticks} ticks): {e['joules']:.4g} J (static {e['static_j']:.3g}, ARM "
                 f"{e['compute_j']:.3g}, MLA {e['mla_j']:.3g}, links {e['links_j']:.3g}) = {e['ratio_to_study']:.3g} x "
                 f"the study's {e['study_joules']} J per gesture [inf constants, s2emu/timing.py]")
    return lines


def _model_ticks(path: str) -> Optional[int]:
    try:
        import nir

        meta = nir.read(path).metadata or {}
        import numpy as np

        return int(np.asarray(meta["s2gate.T"]).reshape(-1)[0])
    except Exception:  # noqa: BLE001 - no metadata: the default
        return None


def format_table(chip) -> str:
    """The per-layer memory table plus a total line (tabulate, plain text)."""
    from tabulate import tabulate

    headers = ["layer", "model", "neurons", "atoms/PE", "PEs", "weights f32 [B]", "weights int8 [B]",
               "total [B]", "max/PE [B]", "fits"]
    rows = [[r.name, r.model, r.neurons, r.atoms_per_core, r.pes, r.weight_bytes_float32, r.weight_bytes_int8,
             r.total_bytes, r.max_bytes_per_pe, "yes" if r.fits else "NO"] for r in chip.rows]
    t = chip.total
    rows.append(["total", f"{t.chips} chip(s)", t.neurons, "", t.pes, t.weight_bytes_float32, t.weight_bytes_int8,
                 t.total_bytes, t.max_bytes_per_pe, "yes" if t.fits else "NO"])
    return tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True)


def run(args: argparse.Namespace) -> int:
    from s2common.errors import DesignRuleError
    from s2common.graph import read_flat
    from s2emu.lowering import lower
    from s2emu.rules import check_design_rules, lower_for_rules

    from s2common.errors import InputDataError

    from harness.quantize.memory import flow_memory
    from harness.run import choose_atoms
    from harness.run.options import profile_atoms

    if args.max_chips < 1 or not (args.activity >= 0) or not (args.sys_tick > 0) or (args.ticks is not None and args.ticks < 1):
        raise InputDataError(f"--chips must be >= 1, --activity >= 0, --sys-tick > 0 and --ticks >= 1 (got "
                             f"{args.max_chips}, {args.activity}, {args.sys_tick}, {args.ticks})", rule="bad-option")
    flat = read_flat(args.model, isolate=True, several_inputs=True)  # one spike_list per Input, as the converter
    options = conversion_options(args, flat.graph)
    overrides = {**profile_atoms(flat.graph, getattr(args, "profile", None)), **_atoms(args.atoms)}  # --atoms wins
    try:
        net = lower(flat, options)
    except DesignRuleError:
        net = lower_for_rules(flat, options)  # weight problems are reported by the rules below
    ticks = max(1, args.input_ticks)
    # atoms per PE exactly as the gate chooses them: --atoms, the model's metadata, then automatic
    choice = choose_atoms(net, flat, overrides, auto=not getattr(args, "no_auto_atoms", False),
                          max_chips=args.max_chips, input_ticks=ticks)
    atoms = choice.atoms
    violations = check_design_rules(flat, net, options, max_chips=args.max_chips, atoms_per_core=atoms,
                                    input_ticks=ticks)
    errors = [v for v in violations if v.severity == "error"]
    unknown = sorted(set(atoms) - set(net.populations)) if net is not None else []
    fits = False
    if net is None:
        print(f"{args.model}: cannot be lowered to SpiNNaker2 populations, so it cannot be mapped")
    else:
        from s2emu.board import map_to_board

        bm = map_to_board(net, max_chips=max(1, args.max_chips), atoms_per_core=atoms, input_ticks=ticks)
        chip = bm.chip_map
        fits = bm.fits
        print(f"{args.model}: {len(chip.rows)} populations on {chip.total.pes} PEs, {chip.total.chips} chip(s) "
              f"(max {args.max_chips}); {chip.spec.data_sram_per_pe} B data SRAM per PE, "
              f"{chip.spec.usable_pes_per_chip} usable PEs per chip")
        print(format_table(chip))
        if choice.chosen:
            print("atoms per PE chosen so each layer fits one PE (as the gate does; --no-auto-atoms to refuse): "
                  + ", ".join(f"{k}={v}" for k, v in choice.chosen.items()))
        fm = flow_memory(flat, net=net, atoms=atoms, vendor_scaling=bool(options.scale_weights),
                         chip_kw={"max_chips": args.max_chips, "input_ticks": ticks})
        for line in fm.lines():
            print(line)
        if args.max_chips > 1 or not fits:
            for line in board_report(net, bm, args.activity, args.sys_tick, args.ticks or _model_ticks(args.model) or 20):
                print(line)
        for reason in bm.reasons:
            print(f"does not fit: {reason}")
    for name in unknown:
        print(f"warning: --atoms names '{name}', which is not a population (populations: "
              f"{', '.join(net.populations)})")
    if violations:
        print(f"design rules: {len(errors)} error(s), {len(violations) - len(errors)} warning(s)")
        for v in violations:
            print(f"  {v.severity}: {v.one_line()}")
    else:
        print("design rules: all pass")
    if net is not None and fits and not errors:
        print("result: fits and passes")
        return 0
    why = []
    if net is not None and not fits:
        why.append("does not fit")
    if errors:
        why.append(f"{len(errors)} design rule(s) fail: " + ", ".join(sorted({v.rule for v in errors})))
    if net is None:
        why.append("cannot be lowered")
    print("result: " + "; ".join(why))
    return 1
