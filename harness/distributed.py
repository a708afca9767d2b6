"""The gate's evaluation sharded by sample batches over ``dask.distributed``.

:class:`DaskRunner` is a drop-in for :func:`harness.gate.flow.run_batches`, the one place where
:func:`harness.gate.evaluate.evaluate` (and :func:`~harness.gate.evaluate.sweep`) feeds the data
to its :class:`~harness.gate.flow.FlowRun` s. It cuts the data into shards of whole batches
(``config.batch_size`` samples each, so every batch is the one the serial run makes), runs
each (shard, flow) pair as one Dask task - so the PTQ and QAT flows and every sweep point are
spread as well as the samples - and joins the shards' runs with :meth:`FlowRun.merge`, whose
sums are over integers and whose "first divergence" is a minimum over (tick, layer, sample,
neuron): the result is the serial one, bit for bit. :func:`evaluate_distributed` and
:func:`sweep_distributed` are ``evaluate`` / ``sweep`` with that runner.

Where the cluster comes from (:func:`cluster_client`):

* ``workers=N``: a ``LocalCluster`` of N worker processes, one thread each, on this machine;
* ``scheduler="tcp://host:8786"``: an existing cluster. On a SLURM machine, start one with
  ``dask-jobqueue`` (``SLURMCluster(cores=..., memory=..., processes=...)``, ``cluster.scale(jobs=...)``)
  and pass ``cluster.scheduler_address``; every worker needs s2gate installed (the models and the
  data travel inside the tasks).

A worker lost mid-run (killed, out of memory) is handled by Dask: its tasks run again on another
worker (``distributed.scheduler.allowed-failures``, default 3 losses per task); a task is a pure
function of its flow and its shard (its inputs travel inside it, nothing is scattered), so the
result does not change.

A task that records an error (a section that could not be computed) makes the runner feed the
data again here, serially, through the evaluation's own error bookkeeping, so the errors read
exactly as they do in a serial run.

Dask is an optional extra: ``pip install "s2gate[dist]"``; without it :func:`cluster_client`
raises :class:`~s2common.errors.UnsupportedError` saying so.
"""
from __future__ import annotations

import contextlib
import math
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from s2common.errors import UnsupportedError

INSTALL_HINT = 'install the optional extra: pip install "s2gate[dist]" (dask[distributed])'


def _import_distributed() -> Any:
    try:
        import distributed  # noqa: F401
    except ImportError as exc:
        raise UnsupportedError("distributed evaluation needs dask.distributed, which is not installed",
                               rule="missing-dask", hint=INSTALL_HINT) from exc
    return distributed


@contextlib.contextmanager
def cluster_client(workers: Optional[int] = None, scheduler: Optional[str] = None) -> Iterator[Any]:
    """A ``distributed.Client``: on a new ``LocalCluster`` of ``workers`` processes (one thread
    each), or connected to the scheduler at ``scheduler``. Closed (and the cluster shut down) on exit.

    Raises:
        UnsupportedError: dask.distributed is not installed (rule ``missing-dask``).
        InputDataError: neither or both of ``workers`` / ``scheduler``, or ``workers < 1``.
    """
    from s2common.errors import InputDataError

    if (workers is None) == (scheduler is None):
        raise InputDataError("give either a number of workers or a scheduler address", rule="bad-option",
                             hint="--workers N (a local cluster) or --scheduler tcp://HOST:PORT")
    if workers is not None and int(workers) < 1:
        raise InputDataError(f"--workers must be >= 1, got {workers}", rule="bad-option")
    distributed = _import_distributed()
    import logging

    if scheduler is not None:
        try:
            client = distributed.Client(scheduler, timeout="30s")
        except (OSError, TimeoutError) as exc:
            raise InputDataError(f"cannot connect to the Dask scheduler at {scheduler} ({exc})", rule="no-scheduler",
                                 hint="start one (dask scheduler / dask-jobqueue) or use --workers N") from exc
        try:
            yield client
        finally:
            client.close()
        return
    import dask

    # Dask starts its workers with MALLOC_TRIM_THRESHOLD_=65536 (config distributed.nanny.pre-spawn-environ)
    # so that freed memory goes back to the OS at once. The simulators free and allocate large per-tick
    # temporaries, so every one of them was mapped and page-faulted anew: measured 2.7x the thread CPU
    # time of the same numpy loop outside a worker, 2.3x for the reference. Unset here (glibc's adaptive
    # default); a remote cluster's workers should be started the same way (harness/gate/README.md).
    with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
        cluster = distributed.LocalCluster(n_workers=int(workers), threads_per_worker=1, processes=True,
                                           dashboard_address=":0", silence_logs=logging.ERROR)
    client = distributed.Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


# ----------------------------------------------------------------------------- shards

def shard_bounds(n: int, batch_size: int, shards: int) -> List[Tuple[int, int]]:
    """``[start, stop)`` of ``shards`` (at most; fewer if there are fewer batches) consecutive runs
    of whole batches covering ``n`` samples; the batches are split as evenly as possible."""
    bs = max(1, int(batch_size))
    n_batches = max(1, math.ceil(n / bs))
    k = max(1, min(int(shards), n_batches))
    bounds, b0 = [], 0
    for i in range(k):
        b1 = b0 + n_batches // k + (1 if i < n_batches % k else 0)
        bounds.append((b0 * bs, min(n, b1 * bs)))
        b0 = b1
    return bounds


def _run_shard(flow: Any, x: np.ndarray, start: int, batch_size: int) -> Tuple[Dict[str, str], Any]:
    """One Dask task: ``flow`` on samples ``start .. start + len(x) - 1`` in batches of ``batch_size``.

    Returns ``(errors, run)``: the sections that failed (one-line messages) and the
    :class:`~harness.gate.flow.FlowRun` with its accumulators only (backends and flow dropped,
    they are not needed to merge it)."""
    import torch

    from harness.gate.evaluate import _Sections
    from harness.gate.flow import FlowRun

    torch.set_num_threads(1)  # the workers fill the cores; bits do not depend on it
    guard = _Sections()
    run = FlowRun(flow, guard=guard, threads=1)
    bs = max(1, int(batch_size))
    for off in range(0, int(x.shape[0]), bs):
        run.add(start + off, x[off:off + bs])
    run.emulator = run.reference = run.int8_reference = None
    run.guard = None
    run.flow = None
    return dict(guard.errors), run


class DaskRunner:
    """``runner(runs, spikes, batch_size, progress=None)`` for :func:`harness.gate.evaluate.evaluate`:
    the runs' batches computed as Dask tasks on ``client``, merged into ``runs``.

    Args:
        client: a ``distributed.Client`` (see :func:`cluster_client`).
        shards: shards of whole batches (default: two per worker, at most one per batch).
        on_result: called as ``on_result(task_index, client)`` when a task finishes (tests use it to
            kill a worker mid-run).
    """

    def __init__(self, client: Any, shards: Optional[int] = None,
                 on_result: Optional[Callable[[int, Any], None]] = None) -> None:
        self.client = client
        self.shards = shards
        self.on_result = on_result
        self.fell_back = False

    def __call__(self, runs: List[Any], spikes: np.ndarray, batch_size: int,
                 progress: Optional[Callable[[int], None]] = None) -> None:
        from distributed import as_completed

        from harness.gate.flow import run_batches

        n = int(spikes.shape[0])
        if not runs or n == 0:
            return
        workers = max(1, len(self.client.scheduler_info().get("workers", {})))
        bounds = shard_bounds(n, batch_size, self.shards or 2 * workers)
        futures, where = [], {}
        for si, (a, b) in enumerate(bounds):
            x = spikes[a:b]
            for ri, run in enumerate(runs):
                fut = self.client.submit(_run_shard, run.flow, x, a, batch_size, pure=False)
                where[fut.key] = (si, ri)
                futures.append(fut)
        results: Dict[Tuple[int, int], Tuple[Dict[str, str], Any]] = {}
        left = {si: len(runs) for si in range(len(bounds))}
        for i, fut in enumerate(as_completed(futures)):
            si, ri = where[fut.key]
            results[(si, ri)] = fut.result()
            left[si] -= 1
            if left[si] == 0 and progress is not None:
                progress(bounds[si][1] - bounds[si][0])
            if self.on_result is not None:
                self.on_result(i, self.client)
        if any(errors for errors, _ in results.values()):
            self.fell_back = True  # let the evaluation's own bookkeeping record the errors, as serially
            run_batches(runs, spikes, batch_size)
            return
        for ri, run in enumerate(runs):
            for si in range(len(bounds)):
                run.merge(results[(si, ri)][1])


# ----------------------------------------------------------------------------- entry points

def evaluate_distributed(config: Any, client: Any, *, data: Optional[Tuple[np.ndarray, np.ndarray]] = None,
                         shards: Optional[int] = None, debug: bool = False,
                         on_result: Optional[Callable[[int, Any], None]] = None) -> Any:
    """:func:`harness.gate.evaluate.evaluate` with its batches on ``client`` (same result, bit for bit)."""
    from harness.gate.evaluate import evaluate

    return evaluate(config, data=data, debug=debug, runner=DaskRunner(client, shards=shards, on_result=on_result))


def sweep_distributed(config: Any, client: Any, *, data: Optional[Tuple[np.ndarray, np.ndarray]] = None,
                      shards: Optional[int] = None) -> Dict[str, Any]:
    """:func:`harness.gate.evaluate.sweep` with one task per (shard, percentile) (same result, bit for bit)."""
    from harness.gate.evaluate import sweep

    return sweep(config, data=data, runner=DaskRunner(client, shards=shards))
