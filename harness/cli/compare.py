"""``s2gate compare A.h5 B.h5``: compare two recordings and print the first divergence.

Exit code 0 if the recordings are identical on every compared (node, observable), 1 if not,
2 if a file cannot be read or the two cannot be compared (different batch or shapes).
Either file may come from the reference, the emulator (``s2gate vectors``' expected.h5) or a
board (``BoardBackend`` recordings); ``--time-shift K`` compares B's tick ``t + K`` with A's
tick ``t`` (a board that starts one tick late: ``--time-shift 1``).
"""
from __future__ import annotations

import argparse
import json
import sys


def add_parser(subparsers) -> argparse.ArgumentParser:
    from harness.cli.options import add_subcommand, output_file

    p = add_subcommand(subparsers, "compare", "compare two recordings and print the first divergence", __doc__)
    p.add_argument("expected", metavar="A.h5", help="the expected recording (e.g. vectors' expected.h5)")
    p.add_argument("actual", metavar="B.h5", help="the recording to check (e.g. from a board)")
    p.add_argument("--time-shift", type=int, default=0, metavar="K",
                   help="compare B's tick t+K with A's tick t (default 0)")
    p.add_argument("--nodes", nargs="+", default=None, metavar="NODE", help="only these nodes (default: all of A's)")
    p.add_argument("--observables", nargs="+", default=["spikes", "v", "i"], choices=["spikes", "v", "i", "output"],
                   help="what to compare (default: spikes v i)")
    p.add_argument("--json", default=None, metavar="PATH", type=output_file, help="also write the comparison as JSON")
    p.add_argument("--graph", default=None, metavar="QUANTIZED.nir",
                   help="A is the float reference and B the int8 emulator/board run of this quantized graph: compare "
                        "spikes with the ambiguity-aware rule (A needs voltages) instead of exactly, and B's voltages, "
                        "converted to NIR units by its v_scale, with A's within the float32 rounding bound")
    return p


def run(args: argparse.Namespace) -> int:
    from s2common.atomic import write_text_atomic
    from s2common.recording import Recording

    from harness.compare import compare_recordings

    expected = Recording.load(args.expected)
    actual = Recording.load(args.actual)
    comp_ok_volts = True
    if args.graph:
        from s2common.graph import read_flat

        from harness.compare import check_equivalence

        flat = read_flat(args.graph)
        comp = check_equivalence(expected, actual, flat, nodes=args.nodes, time_shift=args.time_shift)
        if "v" in args.observables and not args.time_shift:
            from harness.vendor_voltages import agreement_for_graph

            volts = agreement_for_graph(expected, actual, flat)  # B's chip voltages / nir_v_scale vs A's
            if volts is not None:
                print(volts.describe())
                comp_ok_volts = volts.ok
    else:
        comp = compare_recordings(expected, actual, nodes=args.nodes, observables=tuple(args.observables),
                                  time_shift=args.time_shift)
    print(comp.table())
    if comp.trains is not None:
        from tabulate import tabulate

        t = comp.trains
        rows = [[n, c["trains"], c["identical"], c["ambiguous"], c["unexplained"]] for n, c in t.per_node.items()]
        rows.append(["all", t.trains, f"{t.identical} ({100 * t.share('identical'):.2f} %)",
                     f"{t.ambiguous} ({100 * t.share('ambiguous'):.2f} %)",
                     f"{t.unexplained} ({100 * t.share('unexplained'):.2f} %)"])
        print()
        print(tabulate(rows, headers=["node", "spike trains", "identical", "ambiguous", "unexplained"]))
        if t.predictions_identical is not None:
            print(f"identical predictions ('{t.output_node}'): {100 * t.predictions_identical:.2f} %")
    print()
    print(comp.describe())
    if args.json:
        write_text_atomic(args.json, json.dumps({"expected": args.expected, "actual": args.actual, **comp.to_dict()},
                                                indent=2, default=str) + "\n")
    sys.stdout.flush()
    return 0 if comp.ok and comp_ok_volts else 1
