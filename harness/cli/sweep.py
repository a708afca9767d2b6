"""``s2gate sweep``: PTQ accuracy on the emulator against the weight-scale percentile.

For each percentile p, the float model is quantized (λ = 127 / percentile_p |W| per population,
round to nearest, clip, thresholds scaled by λ) and run on the emulator; the table shows the
accuracy, the drop against the float reference and the share of clipped weights, and the plot
(``--out``) shows accuracy against p with the float accuracy and the PTQ budget.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

from .gate import add_common, config_from_args


def add_parser(subparsers: "argparse._SubParsersAction") -> argparse.ArgumentParser:
    from harness.cli.options import add_budget_arguments, add_subcommand, output_file

    p = add_subcommand(subparsers, "sweep", "accuracy against PTQ percentile, with a plot", __doc__)
    add_common(p)
    p.add_argument("--percentiles", type=float, nargs="+", default=[90.0, 95.0, 99.0, 99.9, 100.0], metavar="P",
                   help="percentiles in (0, 100] (default 90 95 99 99.9 100)")
    add_budget_arguments(p, which=("ptq",))
    p.add_argument("--out", default="sweep.png", metavar="PNG", type=output_file,
                   help="where to write the plot (default sweep.png)")
    p.add_argument("--json", default=None, metavar="PATH", type=output_file, help="also write the numbers as JSON")
    return p


def run(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from s2common.atomic import write_bytes_atomic, write_text_atomic

    from harness.gate.evaluate import sweep
    from harness.gate.report import dumps, plot_accuracy_vs_percentile

    cfg = config_from_args(args, qat_model=None, sweep=tuple(args.percentiles), ptq_budget=args.ptq_budget)
    t0 = time.perf_counter()
    from harness.data.checks import precheck

    precheck(cfg)
    res = sweep(cfg)
    rows = [[f"{r['percentile']:g}", f"{r['accuracy']:.2f} %", f"{res['accuracy']['float'] - r['accuracy']:.2f} pp",
             f"{100 * r['clipped_fraction']:.3f} %", "yes" if res["accuracy"]["float"] - r["accuracy"] <= cfg.ptq_budget + 1e-9 else "no"]
            for r in res["sweep"]]
    print(f"PTQ sweep of {cfg.model} on {res['data']['samples']} samples x {res['data']['ticks']} ticks of "
          f"{cfg.dataset}/{cfg.split}; float (reference) {res['accuracy']['float']:.2f} %")
    print(tabulate(rows, headers=["percentile", "PTQ accuracy (emulator)", "drop", "clipped weights",
                                  f"within {cfg.ptq_budget:g} pp"]))
    png = plot_accuracy_vs_percentile(res)
    write_bytes_atomic(args.out, png)
    print(f"plot: {args.out}")
    if args.json:
        write_text_atomic(args.json, dumps(res))
        print(f"numbers: {args.json}")
    print(f"s2gate sweep: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return 0
