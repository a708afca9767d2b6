"""``s2gate train``: train the bundled P-SNN / Q-SNN and export them to NIR.

    s2gate train --model psnn --dataset stand-in --epochs 20 --seed 0 --out harness/bundled/psnn.nir
    s2gate train --model qsnn --dataset stand-in --init harness/bundled/psnn.nir --out harness/bundled/qsnn.nir

Progress is shown with tqdm; a tabulate table of epoch / loss / accuracy closes the run; the NIR
file is written atomically.
"""
from __future__ import annotations

import argparse
import shlex
import sys
from typing import Optional

DEFAULTS = {"psnn": {"epochs": 20, "lr": 2e-3}, "qsnn": {"epochs": 6, "lr": 5e-4}}  # the bundled models


def add_parser(subparsers) -> argparse.ArgumentParser:
    from harness.cli.options import add_subcommand, output_file

    p = add_subcommand(subparsers, "train", "train the bundled P-SNN / Q-SNN and export them to NIR", __doc__)
    p.add_argument("--model", choices=["psnn", "qsnn"], required=True)
    p.add_argument("--dataset", choices=["stand-in", "dvsgesture"], default="stand-in")
    p.add_argument("--epochs", type=int, default=None, help="default: 20 (psnn) / 6 (qsnn), as for the bundled models")
    p.add_argument("--seed", type=int, default=0, help="training seed (also the stand-in's generator seed)")
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--T", type=int, default=20, help="time bins / ticks per sample")
    p.add_argument("--n-train", type=int, default=None, help="stand-in: number of training samples")
    p.add_argument("--n-test", type=int, default=None, help="stand-in: number of test samples")
    p.add_argument("--init", default=None,
                   help="qsnn: start from this float P-SNN NIR file (default: train the float model first)")
    p.add_argument("--data-root", default=None, help="DVS Gesture root (else $S2GATE_DVSGESTURE_ROOT)")
    p.add_argument("--out", default=None, type=output_file, help="output NIR file (default: <model>.nir)")
    p.add_argument("--standin", action="append", default=[], metavar="KEY=VALUE",
                   help="override a stand-in sensor parameter (harness.data.standin.SensorConfig), e.g. "
                        "--standin noise_hz=0.02,0.25 --standin sloppiness=0.15; repeatable")
    p.add_argument("--max-steps", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    return p


def _parse_standin(items):
    """``["k=v", ...]`` -> dict of SensorConfig overrides (tuples for comma-separated values)."""
    from s2common.errors import InputDataError
    from harness.data.standin import SensorConfig

    fields = SensorConfig.__dataclass_fields__
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key not in fields:
            raise InputDataError(f"bad --standin '{item}'", rule="bad-option",
                                 hint=f"use KEY=VALUE with KEY one of {', '.join(fields)}")
        vals = [float(v) for v in value.split(",")]
        out[key] = tuple(vals) if len(vals) > 1 else (int(vals[0]) if fields[key].type == "int" else vals[0])
    return out


def run(args: argparse.Namespace) -> int:
    from harness.models.pipeline import TrainRequest, run_training
    from tabulate import tabulate

    req = TrainRequest(
        model=args.model, dataset=args.dataset, epochs=args.epochs or DEFAULTS[args.model]["epochs"],
        seed=args.seed, lr=args.lr or DEFAULTS[args.model]["lr"], batch_size=args.batch_size, T=args.T,
        n_train=args.n_train, n_test=args.n_test, init=args.init, data_root=args.data_root,
        out=args.out or f"{args.model}.nir", max_steps=args.max_steps, threads=args.threads,
        standin=_parse_standin(args.standin),
        command="s2gate train " + " ".join(shlex.quote(a) for a in sys.argv[2:]) if sys.argv[1:2] == ["train"]
        else "s2gate " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
    )
    result = run_training(req, progress=True)
    rows = [(s.epoch, f"{s.loss:.4f}", f"{100 * s.train_acc:.2f}", f"{100 * s.test_acc:.2f}", f"{s.seconds:.1f}")
            for s in result.history]
    print(tabulate(rows, headers=["epoch", "loss", "train acc %", "test acc % (torch)", "s"]))
    print(f"wrote {result.out}: torch test accuracy {100 * result.torch_acc:.2f} %")
    return 0
