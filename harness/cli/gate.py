"""``s2gate gate``: the deployment gate from the command line.

Runs the same checks as ``pytest suites/`` (equivalence, accuracy against the PTQ and QAT
budgets, memory, chip fit, design rules, hardware in the loop) on a float model, a Q-SNN and a
data split; shows progress, prints the summary table and writes the report (``summary.json``,
``report.md``, ``report.html``, PNG plots) into ``--report`` (default ``s2gate-report/``).

Exit code: 0 when every check passes (skips allowed), 1 when a check fails, 2 on bad input
(a model or dataset that cannot be read: the one-line error is printed).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

#: sections whose failure means the user's input could not be read (exit code 2)
INPUT_SECTIONS = ("model", "qat_model", "data")


def add_common(p: argparse.ArgumentParser) -> None:
    """Options shared by ``gate`` and ``sweep``: model, data, seed, batching."""
    p.add_argument("--model", metavar="NIR", default=None, help="float P-SNN (default: the bundled psnn.nir)")
    p.add_argument("--dataset", default="stand-in", metavar="NAME",
                   help="stand-in (default) | dvsgesture | PATH.npz with arrays spikes (N, T, *input_shape) and labels (N,)")
    p.add_argument("--data-root", default=None, metavar="DIR", help="folder of the local DVS Gesture copy")
    p.add_argument("--split", default="test", choices=("test", "train"), help="data split (default test)")
    p.add_argument("--samples", type=int, default=None, metavar="N", help="use the first N samples (default: all)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="seed of the data (default 0)")
    p.add_argument("--batch-size", type=int, default=64, metavar="B", help="samples per simulator call (default 64)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def add_parser(subparsers: "argparse._SubParsersAction") -> argparse.ArgumentParser:
    p = subparsers.add_parser("gate", help="run the deployment gate (equivalence, accuracy, memory, design rules)",
                              description=__doc__.split("\n\n")[1])
    add_common(p)
    p.add_argument("--qat-model", metavar="NIR", default=None,
                   help="quantized Q-SNN (default: the bundled qsnn.nir; 'none' skips the QAT checks)")
    p.add_argument("--percentile", type=float, default=100.0, metavar="P", help="PTQ weight-scale percentile (default 100)")
    p.add_argument("--backend", choices=("emulator", "board"), default="emulator",
                   help="board: also run a SpiNNaker2 board and compare it with the emulator")
    p.add_argument("--board-host", default=None, metavar="IP", help="the board's Ethernet IP")
    from harness.gate.config import BUDGETS

    p.add_argument("--ptq-budget", type=float, default=BUDGETS["ptq_budget"], metavar="PP",
                   help=f"max drop float -> PTQ, pp ({BUDGETS['ptq_budget']})")
    p.add_argument("--qat-budget", type=float, default=BUDGETS["qat_budget"], metavar="PP",
                   help=f"max drop Q-SNN float -> int8, pp ({BUDGETS['qat_budget']})")
    p.add_argument("--min-memory-reduction", type=float, default=BUDGETS["min_memory_reduction"], metavar="F",
                   help=f"min weight-memory reduction float32 -> stored codes, a fraction ({BUDGETS['min_memory_reduction']})")
    p.add_argument("--strict", action="store_true",
                   help="judge accuracy by the upper bound of the drop's 95 %% interval, not the point estimate")
    p.add_argument("--sweep", type=float, nargs="*", default=None, metavar="P",
                   help="percentiles of the report's accuracy-against-percentile plot (default 99 99.9 100; none: no sweep)")
    p.add_argument("--atoms", action="append", metavar="POP=N",
                   help="max_atoms_per_core of one population for the chip map and design rules (repeatable), "
                        "e.g. --atoms if3=4; overrides the model's s2gate.atoms_per_core metadata")
    p.add_argument("--no-auto-atoms", action="store_true",
                   help="do not choose atoms per PE for layers that overflow one PE (they then fail memory.fits-chip)")
    p.add_argument("--report", default="s2gate-report", metavar="DIR", help="report folder (default s2gate-report/)")
    p.add_argument("--no-report", action="store_true", help="print the summary only")
    return p


def config_from_args(args: argparse.Namespace, **extra):
    """The :class:`~harness.gate.config.GateConfig` of parsed arguments (:func:`~harness.gate.config.build_config`)."""
    from harness.gate.config import build_config

    kw = dict(model=args.model, dataset=args.dataset, data_root=args.data_root, split=args.split, samples=args.samples,
              seed=args.seed, batch_size=args.batch_size, progress=not args.quiet)
    kw.update(extra)
    return build_config(**kw)


def run(args: argparse.Namespace) -> int:
    from harness.gate.checks import FAIL, run_checks
    from harness.gate.evaluate import evaluate
    from harness.gate.report import terminal_summary, write_report

    extra = dict(atoms=args.atoms, no_auto_atoms=args.no_auto_atoms, percentile=args.percentile, backend=args.backend,
                 board_host=args.board_host, ptq_budget=args.ptq_budget, qat_budget=args.qat_budget,
                 min_memory_reduction=args.min_memory_reduction, strict=args.strict, qat_model=args.qat_model,
                 report=None if args.no_report else os.path.abspath(args.report))
    if args.sweep is not None:
        extra["sweep"] = tuple(args.sweep)
    cfg = config_from_args(args, **extra)
    t0 = time.perf_counter()
    if cfg.progress:
        print(f"s2gate gate: {os.path.basename(cfg.model)} + {os.path.basename(str(cfg.qat_model))} on "
              f"{cfg.dataset}/{cfg.split}" + (f" (first {cfg.samples} samples)" if cfg.samples else ""), file=sys.stderr)
    ev = evaluate(cfg, debug=bool(getattr(args, "debug", False)))
    checks = run_checks(ev)
    print(terminal_summary(ev, checks))
    if cfg.report:
        try:
            written = write_report(ev, checks, cfg.report)
        except OSError as exc:
            print(f"s2gate gate: error: cannot write the report into {cfg.report}: {exc.strerror or exc}", file=sys.stderr)
            return 2
        print(f"\nreport: {written['html']}  ({written['markdown']}, {written['json']})")
    bad_input = [ev.errors[s] for s in INPUT_SECTIONS if s in ev.errors]
    if bad_input:
        for msg in bad_input:
            print(f"s2gate gate: error: {msg}", file=sys.stderr)
        return 2
    print(f"s2gate gate: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return 1 if any(c.verdict == FAIL for c in checks) else 0
