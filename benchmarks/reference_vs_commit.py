"""The reference simulator of this checkout against the one of another commit, on the seed-scale model
(a script, not a test).

    python benchmarks/reference_vs_commit.py REV [--batch 16] [--ticks 100] [--repeats 2]

Checks REV out into a temporary detached git worktree (removed at the end), then runs
``reference.simulate(graph, x, preset="spinnaker2")`` of each side in alternating fresh subprocesses
(one torch thread, OMP_NUM_THREADS=1, process CPU time: other processes on a loaded machine do not
inflate it; best of two calls after a warm-up) on the same seeded 5 % input, for the float seed-scale
graph and its PTQ graph (``harness.models.seedscale.write``), and prints samples x ticks per second, the
speed-up and whether every layer's spike count is the same on both sides.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

CODE = r'''
import sys, time, json, numpy as np, torch
torch.set_num_threads(1)
import nir
from reference import simulate
from harness.models import seedscale
graph_file, batch, ticks = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
g = nir.read(graph_file)
x = seedscale.spikes(batch, 0.05, ticks=ticks)
simulate(g, x[:2], preset="spinnaker2")  # warm-up (numba compiles or loads its cache)
best = float("inf")
for _ in range(2):
    t = time.process_time()
    r = simulate(g, x, preset="spinnaker2")
    best = min(best, time.process_time() - t)
counts = {n: int(np.asarray(r.spikes(n)).sum()) for n in ("if1", "if2", "if3", "if4", "if5")}
print(json.dumps({"samples_ticks_per_s": batch * ticks / best, "spikes": counts}))
'''


def run_side(root: str, graph_file: str, batch: int, ticks: int) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=root)
    out = subprocess.run([sys.executable, "-c", CODE, graph_file, str(batch), str(ticks)], cwd=root, env=env,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("rev", help="the commit to compare with (e.g. a16a1d2)")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--ticks", type=int, default=100)
    p.add_argument("--repeats", type=int, default=2, help="alternating rounds; the best of each side counts")
    args = p.parse_args(argv)
    sys.path.insert(0, ROOT)
    from harness.models import seedscale

    with tempfile.TemporaryDirectory() as tmp:
        other = os.path.join(tmp, "other")
        subprocess.run(["git", "-C", ROOT, "worktree", "add", "--detach", other, args.rev], check=True,
                       capture_output=True)
        try:
            float_file, ptq_file = seedscale.write(os.path.join(tmp, "models"))
            rows = []
            for kind, graph_file in (("float", float_file), ("PTQ", ptq_file)):
                got = {"other": [], "this": []}
                for _ in range(args.repeats):
                    got["other"].append(run_side(other, graph_file, args.batch, args.ticks))
                    got["this"].append(run_side(ROOT, graph_file, args.batch, args.ticks))
                a = max(d["samples_ticks_per_s"] for d in got["other"])
                b = max(d["samples_ticks_per_s"] for d in got["this"])
                same = got["other"][0]["spikes"] == got["this"][0]["spikes"]
                rows.append([kind, f"{a:.0f}", f"{b:.0f}", f"{b / a:.2f}x", same])
        finally:
            subprocess.run(["git", "-C", ROOT, "worktree", "remove", "--force", other], capture_output=True)
    from tabulate import tabulate

    print(f"reference, seed-scale model, batch {args.batch} x {args.ticks} ticks, 5 % input, 1 thread, CPU time")
    print(tabulate(rows, headers=["graph", f"{args.rev} samples x ticks / s", "this checkout", "speed-up",
                                  "spike counts equal"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
