"""``s2gate map MODEL.nir``: map a NIR graph onto SpiNNaker2 PEs, print the memory table and the design rules.

Exit codes: 0 the model fits and every design rule passes; 1 it does not fit or a rule fails
(the lines after the table say which); 2 the file cannot be read (printed by the dispatcher).

The conversion flags (``--dt``, ``--integrator``, ``--reset``, ``--conn-delay``,
``--no-scale-weights``, ``--percentile``) are shared with ``s2gate run --backend emulator``:
:func:`add_conversion_arguments` and :func:`conversion_options`.
"""
from __future__ import annotations

import argparse
from typing import Dict, List, Optional

#: accepted spellings of the reset method -> ConversionOptions.reset
RESETS = {"subtract": "subtract", "to_v_reset": "to_v_reset", "zero": "to_v_reset"}
INTEGRATORS = {"euler": "euler", "forward": "euler", "exp": "exp", "exponential": "exp"}


def add_conversion_arguments(parser: argparse.ArgumentParser) -> None:
    """The NIR -> SpiNNaker2 conversion flags (defaults: py-spinnaker2's, see ConversionOptions)."""
    from s2emu.network import ConversionOptions

    d = ConversionOptions()
    g = parser.add_argument_group("conversion (py-spinnaker2's s2_nir options)")
    g.add_argument("--dt", type=float, default=d.dt, help=f"tick in seconds (default {d.dt:g})")
    g.add_argument("--integrator", choices=sorted(INTEGRATORS), default=d.integrator,
                   help="euler: alpha = 1 - dt/tau (default); exp: alpha = exp(-dt/tau)")
    g.add_argument("--reset", choices=sorted(RESETS), default=d.reset,
                   help="subtract (default) or to_v_reset / zero (reset to v_reset = 0)")
    g.add_argument("--conn-delay", type=int, default=d.conn_delay,
                   help="extra synaptic delay in ticks (0: lif_no_delay; > 0: lif with 4-bit weights)")
    g.add_argument("--no-scale-weights", dest="scale_weights", action="store_false", default=None,
                   help="do not derive a weight scale per population (for graphs with integer weights; the default "
                        "for a graph written by s2gate quantize or a QAT export, which is already int8)")
    g.add_argument("--percentile", type=float, default=d.percentile,
                   help=f"percentile of |W| mapped to 127 when scaling weights (default {d.percentile:g})")
    g.add_argument("--vendor-cast", action="store_true", default=False,
                   help="with --no-scale-weights, cast non-integer weights to int8 by truncation as py-spinnaker2 "
                        "does (as the NIR paper's lif_spinnaker2.py relied on) instead of rejecting them")


def conversion_options(args: argparse.Namespace, graph=None):
    """A :class:`~s2emu.network.ConversionOptions` from the flags of :func:`add_conversion_arguments`.

    Without ``--no-scale-weights`` the weights are scaled unless ``graph`` is quantized
    (:func:`harness.run.emulator_options` decides, the one place that does)."""
    from harness.run import emulator_options
    from s2emu.network import ConversionOptions

    base = ConversionOptions(dt=args.dt, integrator=INTEGRATORS[args.integrator], reset=RESETS[args.reset],
                             conn_delay=args.conn_delay, percentile=args.percentile,
                             vendor_cast=bool(getattr(args, "vendor_cast", False)))
    scale = args.scale_weights
    if scale is None:
        scale = emulator_options(graph).scale_weights if graph is not None else ConversionOptions().scale_weights
    return emulator_options(base=base, scale_weights=scale)


def _atoms(values: Optional[List[str]]) -> Dict[str, int]:
    """``--atoms POP=N`` values as a dict (parsed as the gate's ``--atoms`` are)."""
    from harness.gate.config import parse_atoms

    return dict(parse_atoms(values))


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("map", help="map a NIR graph onto SpiNNaker2 PEs and print the memory table",
                              description="Lower a NIR graph as py-spinnaker2 would, split its populations over PEs, "
                                          "print per-layer memory (weights float32 vs int8) and the design rules.")
    p.add_argument("model", metavar="MODEL.nir", help="NIR graph (float or quantized)")
    add_conversion_arguments(p)
    p.add_argument("--max-chips", type=int, default=1, help="chips the model may use (default 1)")
    p.add_argument("--atoms", action="append", metavar="POP=N",
                   help="max_atoms_per_core of one population (repeatable), e.g. --atoms 10=16")
    p.add_argument("--no-auto-atoms", action="store_true",
                   help="do not choose atoms per PE for layers that overflow one PE (they then do not fit), "
                        "as the gate's --no-auto-atoms")
    p.add_argument("--input-ticks", type=int, default=1, metavar="T",
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

    from harness.quantize.memory import flow_memory
    from harness.run import choose_atoms

    flat = read_flat(args.model, isolate=True)
    options = conversion_options(args, flat)
    try:
        net = lower(flat, options)
    except DesignRuleError:
        net = lower_for_rules(flat, options)  # weight problems are reported by the rules below
    ticks = max(1, args.input_ticks)
    # atoms per PE exactly as the gate chooses them: --atoms, the model's metadata, then automatic
    choice = choose_atoms(net, flat, _atoms(args.atoms), auto=not getattr(args, "no_auto_atoms", False),
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
        chip = map_to_chip(net, max_chips=args.max_chips, atoms_per_core=atoms, input_ticks=ticks)
        fits = chip.total.fits
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
