"""Smoke test of the asv suite: every benchmark runs once (``asv run --quick --dry-run``).

CI runs only ``pytest suites/ -n auto``, so a broken benchmark must fail a test. The run uses
the installed environment (``--python=same``), tiny sizes (``S2GATE_BENCH_SMOKE=1``), a
throw-away HOME (asv keeps its machine file in ``~/.asv-machine.json``) and saves nothing.
A benchmark whose model is not bundled yet is skipped by asv (``n/a``), which is fine here.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _asv() -> list:
    exe = Path(sys.executable).with_name("asv")
    if exe.exists():
        return [str(exe)]
    if shutil.which("asv"):
        return [shutil.which("asv")]
    pytest.skip("asv is not installed (pip install s2gate[bench])")


def failed_benchmarks(output: str) -> list:
    """Names of the benchmarks asv reports as failed in ``output`` (its console log)."""
    bad = []
    for line in output.splitlines():
        # "[ 3.33%] ··· bench_x.Class.time_y      2/4 failed" or "...  failed"
        m = re.match(r"^\[\s*[\d.]+%\]\s+\S+\s+(\S+)\s+.*\bfailed\s*$", line)
        if m:
            bad.append(m.group(1))
    return bad


def test_failed_benchmarks_parser():
    log = ("[ 3.33%] ··· bench_emulator.FastEngine.time_run                 2/4 failed\n"
           "[ 6.67%] ··· bench_emulator.GoldenModel.time_run                ok\n"
           "[ 9.00%] ··· bench_gate.GateAccuracy.track_ptq_drop             failed\n"
           "[10.0%] ··· bench_gate.GateAccuracy.track_qat_drop              n/a\n"
           "                 psnn       failed    failed \n")
    assert failed_benchmarks(log) == ["bench_emulator.FastEngine.time_run", "bench_gate.GateAccuracy.track_ptq_drop"]


@pytest.mark.slow
def test_every_benchmark_runs_once(tmp_path):
    asv = _asv()
    env = dict(os.environ, HOME=str(tmp_path), S2GATE_BENCH_SMOKE="1", OMP_NUM_THREADS="1")
    env.pop("S2GATE_BENCH_MODELS", None)
    machine = subprocess.run(asv + ["machine", "--yes", "--machine", "ci"], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=120)
    assert machine.returncode == 0, machine.stdout + machine.stderr
    run = subprocess.run(asv + ["run", "--python=same", "--quick", "--dry-run", "--show-stderr", "--machine", "ci"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    out = run.stdout + run.stderr
    assert "Running" in out and "benchmarks" in out, out[-3000:]
    assert failed_benchmarks(out) == [], out[-6000:]
    assert run.returncode == 0, out[-6000:]
    # the suite really ran: at least one result table of the emulator engine
    assert "bench_emulator.FastEngine.time_run" in out
