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
    from harness.cli.options import add_atoms_arguments, add_model_argument, add_subcommand

    p = add_subcommand(subparsers, "map", "map a NIR graph onto SpiNNaker2 PEs and print the memory table", __doc__)
    add_model_argument(p, "NIR graph (float or quantized)")
    add_conversion_arguments(p)
    c = p.add_argument_group("chip")
    c.add_argument("--max-chips", type=int, default=1, metavar="N", help="chips the model may use (default 1)")
    add_atoms_arguments(c, auto=False)
    c.add_argument("--input-ticks", type=int, default=1, metavar="T",
                   help="ticks of input spikes a spike_list PE holds at once (default 1: streamed)")
    return p


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
    from s2emu.chip import map_to_chip
    from s2emu.lowering import lower
    from s2emu.rules import check_design_rules, lower_for_rules

    flat = read_flat(args.model, isolate=True, several_inputs=True)  # one spike_list per Input, as the converter
    options = conversion_options(args, flat.graph)
    atoms = _atoms(args.atoms)
    try:
        net = lower(flat, options)
    except DesignRuleError:
        net = lower_for_rules(flat, options)  # weight problems are reported by the rules below
    ticks = max(1, args.input_ticks)
    violations = check_design_rules(flat, net, options, max_chips=args.max_chips, atoms_per_core=atoms,
                                    input_ticks=ticks)
    errors = [v for v in violations if v.severity == "error"]
    unknown = sorted(set(atoms) - set(net.populations)) if net is not None else []
    fits = False
    if net is None:
        print(f"{args.model}: cannot be lowered to SpiNNaker2 populations, so it cannot be mapped")
    else:
        chip = map_to_chip(net, max_chips=args.max_chips, atoms_per_core=atoms, input_ticks=ticks)
        fits = chip.total.fits
        print(f"{args.model}: {len(chip.rows)} populations on {chip.total.pes} PEs, {chip.total.chips} chip(s) "
              f"(max {args.max_chips}); {chip.spec.data_sram_per_pe} B data SRAM per PE, "
              f"{chip.spec.usable_pes_per_chip} usable PEs per chip")
        print(format_table(chip))
        if chip.total.weight_bytes_int8:
            print(f"weights: {chip.total.weight_bytes_float32} B as float32 -> {chip.total.weight_bytes_int8} B as int8 "
                  f"({chip.total.weight_bytes_float32 / chip.total.weight_bytes_int8:.2f}x smaller)")
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
