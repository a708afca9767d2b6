"""Throughput of the reference simulator next to Norse on the NIR paper's CNN (a script, not a test).

    python benchmarks/reference_vs_norse.py [--batch 64] [--ticks 100] [--density 0.05] [--model PATH]

Prints samples x ticks per second for the reference (float64 and float32, batched) and for
Norse 1.1.0 (``norse.torch.from_nir``, float32) on the same seeded input in the same run.
Both use one torch thread by default (``--norse-threads``): on a loaded 2-core machine two
OpenMP threads made Norse 50x slower (measured 14 vs 703 samples x ticks / s at load ~12).
Norse's imported Flatten flattens the batch too, so Norse runs the CNN one sample at a
time; the last line checks that both produced the same output spikes (norse preset).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_MODEL = os.path.join(os.path.dirname(HERE), "harness", "bundled", "cnn_sinabs.nir")


def run_reference(graph, x, dtype):
    from reference import simulate

    t0 = time.perf_counter()
    rec = simulate(graph, x, preset="norse", dt=1e-4, dtype=dtype)
    return time.perf_counter() - t0, rec.get("output", "output")


def run_norse(graph, x, threads):
    import torch
    import norse.torch as nt

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _run_norse(nt, torch, graph, x)
    finally:
        torch.set_num_threads(before)


def _run_norse(nt, torch, graph, x):
    model = nt.from_nir(graph, dt=1e-4)
    out = np.zeros((x.shape[0], x.shape[1], 10), dtype=np.float32)
    xt = torch.from_numpy(x.astype(np.float32))
    t0 = time.perf_counter()
    with torch.no_grad():
        for b in range(x.shape[0]):  # batch 1 only: Norse's Flatten(start_dim=0) flattens the batch axis
            state = None
            for t in range(x.shape[1]):
                o, state = model(xt[b:b + 1, t], state)
                out[b, t] = o.reshape(-1).numpy()
    return time.perf_counter() - t0, out


def main(argv=None) -> int:
    from tabulate import tabulate

    import nir

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--ticks", type=int, default=100)
    p.add_argument("--density", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--norse-threads", type=int, default=1,
                   help="torch threads for Norse (default 1, as the reference uses inside simulate)")
    args = p.parse_args(argv)

    graph = nir.read(args.model)
    rng = np.random.default_rng(args.seed)
    x = rng.random((args.batch, args.ticks, 2, 34, 34)) < args.density
    work = args.batch * args.ticks
    rows = []
    t64, out64 = run_reference(graph, x, np.float64)
    rows.append(["reference float64 (batched)", args.batch, f"{t64:.2f}", f"{work / t64:.0f}"])
    t32, out32 = run_reference(graph, x, np.float32)
    rows.append(["reference float32 (batched)", args.batch, f"{t32:.2f}", f"{work / t32:.0f}"])
    try:
        tn, outn = run_norse(graph, x, args.norse_threads)
    except ImportError as exc:
        print(f"norse not available ({exc}); reference only")
        outn = None
    else:
        rows.append([f"norse 1.1.0 float32 (sample by sample, {args.norse_threads} thread(s))", 1, f"{tn:.2f}",
                     f"{work / tn:.0f}"])
    print(f"{os.path.basename(args.model)}: batch {args.batch}, {args.ticks} ticks, input density {args.density}; "
          f"the reference runs torch on 1 thread inside simulate; load average {os.getloadavg()[0]:.1f}")
    print(tabulate(rows, headers=["simulator", "batch per call", "seconds", "samples x ticks / s"]))
    if outn is not None:
        same = np.array_equal(out32 != 0, outn != 0)
        print(f"output spikes identical (reference float32 vs norse): {same}; "
              f"total output spikes {int((out32 != 0).sum())} vs {int((outn != 0).sum())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
