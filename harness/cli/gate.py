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
    """Options shared by ``gate`` and ``sweep``: model, data, seed, batching (one builder)."""
    from harness.cli.options import add_data_arguments

    add_data_arguments(p)


def add_parser(subparsers: "argparse._SubParsersAction") -> argparse.ArgumentParser:
    from harness.cli.options import (add_atoms_arguments, add_board_arguments, add_budget_arguments,
                                     add_percentile_argument, add_report_arguments, add_subcommand)

    p = add_subcommand(subparsers, "gate", "run the deployment gate (equivalence, accuracy, memory, design rules)",
                       __doc__)
    add_common(p)
    g = p.add_argument_group("flows")
    g.add_argument("--qat-model", metavar="NIR", default=None,
                   help="quantized Q-SNN (default: the bundled qsnn.nir with the bundled P-SNN, none with your own model; "
                        "'none' skips the QAT checks)")
    add_percentile_argument(g, default=100.0)
    g.add_argument("--calibrate", metavar="CAL.npz", default=None,
                   help="choose each population's PTQ percentile (99-100) on these samples (.npz with an array "
                        "'spikes', disjoint from the test split) instead of --percentile")
    from harness.cli.options import add_threshold_ablation_arguments

    add_threshold_ablation_arguments(g)  # --threshold-ablation --threshold-ablation-samples
    g.add_argument("--sweep", type=float, nargs="*", default=None, metavar="P",
                   help="percentiles of the report's accuracy-against-percentile plot (default 99 99.9 100; "
                        "--sweep with no value: no sweep)")
    add_budget_arguments(p)  # --ptq-budget --qat-budget --min-memory-reduction --strict
    c = p.add_argument_group("chip and board")
    add_atoms_arguments(c, auto=True)
    c.add_argument("--backend", choices=("emulator", "board"), default="emulator",
                   help="board: also run a SpiNNaker2 board and compare it with the emulator (default emulator)")
    c.add_argument("--board-host", default=None, metavar="IP", help="the board's Ethernet IP")
    add_board_arguments(c, default_chips=None, default_tick=None)  # --max-chips / --chips, --sys-tick
    c.add_argument("--enforce-realtime", action="store_true",
                   help="fail the realtime check when a PE cannot finish a tick in time (default: report only)")
    d = p.add_argument_group('distributed evaluation (dask.distributed: pip install "s2gate[dist]")')
    d.add_argument("--workers", type=int, default=None, metavar="N",
                   help="shard the evaluation over a local Dask cluster of N processes (same results as serial)")
    d.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="shard it over an existing Dask cluster, e.g. tcp://host:8786 (dask-jobqueue on SLURM)")
    from harness.cli.options import add_profile_argument

    add_profile_argument(c)
    c.add_argument("--vendor-semantics-budget", type=float, default=None, metavar="FRACTION",
                   help="largest share of float-model spike trains the converter's bias folding may change "
                        "(default: report only)")
    add_report_arguments(p)
    return p


def config_from_args(args: argparse.Namespace, **extra):
    """The :class:`~harness.gate.config.GateConfig` of parsed arguments (:func:`~harness.gate.config.build_config`)."""
    from harness.gate.config import build_config

    kw = dict(model=args.model, dataset=args.dataset, data_root=args.data_root, split=args.split, samples=args.samples,
              seed=args.seed, batch_size=args.batch_size, progress=not args.quiet,
              binarize=bool(getattr(args, "binarize", False)))
    kw.update(extra)
    return build_config(**kw)


def run(args: argparse.Namespace) -> int:
    from harness.gate.checks import FAIL, run_checks
    from harness.gate.evaluate import evaluate
    from harness.gate.report import terminal_summary, write_report

    extra = dict(atoms=args.atoms, no_auto_atoms=args.no_auto_atoms, percentile=args.percentile, backend=args.backend,
                 board_host=args.board_host, ptq_budget=args.ptq_budget, qat_budget=args.qat_budget,
                 min_memory_reduction=args.min_memory_reduction, strict=args.strict, qat_model=args.qat_model,
                 max_chips=args.max_chips, sys_tick=args.sys_tick, enforce_realtime=args.enforce_realtime or None,
                 profile=args.profile, vendor_semantics_budget=args.vendor_semantics_budget,
                 calibrate=args.calibrate, threshold_ablation=args.threshold_ablation or None,
                 threshold_ablation_samples=args.threshold_ablation_samples,
                 report=None if args.no_report else os.path.abspath(args.report))
    if args.sweep is not None:
        extra["sweep"] = tuple(args.sweep)
    cfg = config_from_args(args, **extra)
    from harness.data.checks import precheck

    precheck(cfg)  # a bad .npz: one line naming it, exit 2, before anything is evaluated
    t0 = time.perf_counter()
    if cfg.progress:
        print(f"s2gate gate: {os.path.basename(cfg.model)} + {os.path.basename(str(cfg.qat_model))} on "
              f"{cfg.dataset}/{cfg.split}" + (f" (first {cfg.samples} samples)" if cfg.samples else ""), file=sys.stderr)
    if args.workers is not None or args.scheduler is not None:
        from harness.distributed import cluster_client, evaluate_distributed

        with cluster_client(workers=args.workers, scheduler=args.scheduler) as client:
            ev = evaluate_distributed(cfg, client, debug=bool(getattr(args, "debug", False)))
    else:
        ev = evaluate(cfg, debug=bool(getattr(args, "debug", False)))
    checks = run_checks(ev)
    print(terminal_summary(ev, checks))
    if cfg.report:
        try:
            from harness.gate.report import collect_provenance

            written = write_report(ev, checks, cfg.report,
                                   provenance=collect_provenance(cfg, wall_seconds=time.perf_counter() - t0))
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
