"""The gate's evaluation sharded over dask.distributed (``harness.distributed``).

The distributed result is compared with the serial one as JSON bytes (every float to the last
bit); one test kills a worker of the LocalCluster while (shard, flow) tasks are running and still
gets the serial result. Small runs: the bundled models on 12 stand-in samples, batches of 2, a
LocalCluster of 2 processes with one thread each.
"""
from __future__ import annotations

import json
import os
import signal

import pytest

distributed = pytest.importorskip("distributed")

from harness.distributed import cluster_client, evaluate_distributed, shard_bounds, sweep_distributed  # noqa: E402
from harness.gate.config import GateConfig  # noqa: E402

CFG = GateConfig(samples=12, batch_size=2, sweep=(99.0, 100.0))


def _bytes(ev) -> str:
    return json.dumps(ev.to_json() if hasattr(ev, "to_json") else ev, sort_keys=True)


def test_shard_bounds_whole_batches():
    # 10 samples in batches of 3: batches [0,3) [3,6) [6,9) [9,10); 2 shards of 2 batches
    assert shard_bounds(10, 3, 2) == [(0, 6), (6, 10)]
    assert shard_bounds(10, 3, 3) == [(0, 6), (6, 9), (9, 10)]   # 4 batches over 3 shards: 2, 1, 1
    assert shard_bounds(10, 3, 99) == [(0, 3), (3, 6), (6, 9), (9, 10)]
    assert shard_bounds(1, 64, 4) == [(0, 1)]


def test_without_dask_the_error_says_how_to_install(monkeypatch):
    import builtins

    from s2common.errors import UnsupportedError

    real = builtins.__import__

    def fake(name, *a, **kw):
        if name.split(".")[0] in ("distributed", "dask"):
            raise ImportError(name)
        return real(name, *a, **kw)

    monkeypatch.setattr(builtins, "__import__", fake)
    with pytest.raises(UnsupportedError) as err:
        with cluster_client(workers=2):
            pass
    assert 's2gate[dist]' in str(err.value) and "missing-dask" in str(err.value)


@pytest.fixture(scope="module")
def client():
    with cluster_client(workers=2) as c:
        yield c


@pytest.fixture(scope="module")
def serial():
    from harness.gate.evaluate import evaluate

    return evaluate(CFG)


@pytest.mark.slow
def test_distributed_equals_serial(client, serial):
    from harness.gate.checks import run_checks

    assert not serial.errors
    from harness.distributed import DaskRunner
    from harness.gate.evaluate import evaluate

    runner = DaskRunner(client, shards=4)
    dist = evaluate(CFG, runner=runner)
    assert not runner.fell_back  # the shards ran on the cluster and were merged
    assert _bytes(dist) == _bytes(serial)
    assert [c.as_dict() for c in run_checks(dist)] == [c.as_dict() for c in run_checks(serial)]


@pytest.mark.slow
def test_worker_killed_mid_run_same_result(client, serial):
    killed = []

    def kill_one(i, c):
        if killed:
            return
        busy = [w for w, keys in c.processing().items() if keys]
        if not busy:
            return
        pid = c.run(os.getpid, workers=[busy[0]])[busy[0]]
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)

    dist = evaluate_distributed(CFG, client, shards=6, on_result=kill_one)
    assert killed, "no worker was busy after the first shard finished"
    assert _bytes(dist) == _bytes(serial)
    client.wait_for_workers(2, timeout=120)  # the nanny restarted it


@pytest.mark.slow
def test_sweep_distributed_equals_serial(client):
    from harness.gate.evaluate import sweep

    cfg = CFG.replace(sweep=(90.0, 99.0, 100.0))
    assert _bytes(sweep_distributed(cfg, client)) == _bytes(sweep(cfg))


def test_unreadable_model_falls_back_to_the_serial_errors(client, tmp_path):
    from harness.gate.evaluate import evaluate

    cfg = CFG.replace(model=str(tmp_path / "missing.nir"))
    dist = evaluate_distributed(cfg, client)
    assert dist.errors and _bytes(dist) == _bytes(evaluate(cfg))


def _summary_lines(out: str):
    """The printed checks / accuracy / equivalence / NeuroBench tables (no timing, no paths)."""
    return [l for l in out.splitlines() if l.strip() and not l.startswith(("report:", "s2gate gate:"))]


@pytest.mark.slow
def test_gate_cli_workers_2_same_checks_and_values(capsys):
    from harness.cli import main

    args = ["gate", "--samples", "8", "--batch-size", "2", "--sweep", "100", "--quiet", "--no-report"]
    rc_serial = main(args)
    serial = capsys.readouterr().out
    rc_dist = main(args + ["--workers", "2"])
    dist = capsys.readouterr().out
    assert rc_dist == rc_serial
    assert _summary_lines(dist) == _summary_lines(serial)
    assert "equivalence.ptq" in serial and "accuracy.qat" in serial


def test_gate_cli_workers_and_scheduler_are_exclusive(capsys):
    from harness.cli import main

    assert main(["gate", "--samples", "2", "--quiet", "--no-report", "--workers", "2", "--scheduler",
                 "tcp://127.0.0.1:1"]) == 2
    assert "either a number of workers or a scheduler" in capsys.readouterr().err


def _worker_environment() -> dict:
    import os

    return {k: os.environ.get(k) for k in ("MALLOC_TRIM_THRESHOLD_", "OMP_NUM_THREADS")}


def test_local_workers_keep_glibc_trimming_default(client):
    """Dask's default MALLOC_TRIM_THRESHOLD_=65536 made the simulators 2-3x slower per CPU second (every
    per-tick temporary mapped and faulted anew); the local cluster starts its workers without it (and
    still one OpenMP thread each)."""
    import dask

    dask_default = str(dask.config.get("distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_"))
    assert dask_default == "65536"  # what Dask would set (its distributed.yaml)
    env = client.run(_worker_environment)
    assert len(env) == 2
    for got in env.values():
        assert got["MALLOC_TRIM_THRESHOLD_"] != dask_default
        assert got["OMP_NUM_THREADS"] == "1"
