"""The gate's evaluation sharded by sample batches over ``dask.distributed``.

:func:`evaluate_distributed` cuts the data into shards of whole batches (``config.batch_size``
samples each, so every batch is the same as in the serial run), evaluates each shard with
:func:`harness.gate.evaluate.evaluate` as one Dask task, and merges the shards' results into
the result the serial run gives, bit for bit: every number of the result is a ratio of integer
counts (correct predictions, spikes, synaptic operations, identical trains), which are recovered
exactly from each shard and summed; the first divergence is the smallest (tick, layer, sample,
neuron) over the shards, with the shard's offset added to its sample. :func:`sweep_distributed`
spreads the sweep's percentiles (one task each; they are independent).

Where the cluster comes from (:func:`cluster_client`):

* ``workers=N``: a ``LocalCluster`` of N worker processes, one thread each, on this machine;
* ``scheduler="tcp://host:8786"``: an existing cluster. On a SLURM machine, start one with
  ``dask-jobqueue`` (``SLURMCluster(cores=..., memory=..., processes=...)``, ``cluster.scale(jobs=...)``)
  and pass ``cluster.scheduler_address``; every worker needs s2gate and the model / data files at
  the same paths (or use ``--dataset PATH.npz`` on a shared file system).

A worker lost mid-run (killed, out of memory) is handled by Dask: its tasks are run again on
another worker (``distributed.scheduler.allowed-failures``, default 3 losses per task), and since
a task is a pure function of its shard the result does not change.

A shard that records an error (a section that could not be computed) makes the whole evaluation
fall back to the serial run, so the errors read exactly as they would there.

Dask is an optional extra: ``pip install "s2gate[dist]"``; without it :func:`cluster_client`
raises :class:`~s2common.errors.UnsupportedError` saying so.
"""
from __future__ import annotations

import contextlib
import copy
import math
import re
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from s2common.errors import S2GateError, UnsupportedError

INSTALL_HINT = 'install the optional extra: pip install "s2gate[dist]" (dask[distributed])'

#: the result sections computed once per shard whose value is the same in every shard
SAME_IN_EVERY_SHARD = ("memory", "design_rules", "auto_atoms")


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


def _shard_config(config: Any, start: int, stop: int, n: int) -> Any:
    """The config one shard runs: its own data, the part of the sweep that falls in it, no report,
    hardware in the loop only in the first shard (the serial run uses the first batch)."""
    sweep_n = min(n, config.sweep_samples or n)
    k = max(0, min(stop - start, sweep_n - start))
    changes: Dict[str, Any] = dict(samples=None, report=None, progress=False)
    if k == 0:
        changes["sweep"] = ()
        changes["sweep_samples"] = None
    else:
        changes["sweep_samples"] = None if k == stop - start else k
    if start > 0:
        changes["backend"] = "emulator"
    return config.replace(**changes)


def _evaluate_shard(config: Any, spikes: np.ndarray, labels: np.ndarray, debug: bool = False) -> Dict[str, Any]:
    """One Dask task: the gate's evaluation of one shard (one torch thread: the workers fill the cores)."""
    import torch

    from harness.gate.evaluate import evaluate

    torch.set_num_threads(1)
    return evaluate(config, data=(spikes, labels), debug=debug)


# ----------------------------------------------------------------------------- merge

class _Fallback(Exception):
    """Internal: the shards cannot be merged exactly; run serially."""


def _count(share: float, n: int) -> int:
    """The integer count behind ``share = count / n`` (exact for counts below 2**52)."""
    return int(round(float(share) * n))


def _merge_accuracy(parts: Sequence[Dict[str, Any]], sizes: Sequence[int], n: int) -> Dict[str, Any]:
    a: Dict[str, Any] = {}
    keys = [k for k in parts[0]["accuracy"] if not k.endswith("_drop")]
    for key in keys:
        if any(key not in p["accuracy"] for p in parts):
            raise _Fallback(f"accuracy {key} missing in a shard")
        correct = sum(_count(p["accuracy"][key] / 100.0, m) for p, m in zip(parts, sizes))
        a[key] = 100.0 * (correct / n)
    out: Dict[str, Any] = {}
    for key in parts[0]["accuracy"]:  # the serial run's key order
        if key == "ptq_drop":
            out[key] = a["float"] - a["ptq"]
        elif key == "qat_drop":
            out[key] = a["qat_float"] - a["qat"]
        else:
            out[key] = a[key]
    return out


def _merge_equivalence(flow: str, parts: Sequence[Dict[str, Any]], offsets: Sequence[int]) -> Dict[str, Any]:
    eqs = [p["equivalence"].get(flow) for p in parts]
    if any(e is None for e in eqs):
        raise _Fallback(f"equivalence {flow} missing in a shard")
    trains = sum(e["spike_trains"] for e in eqs)
    identical = sum(e["identical"] for e in eqs)
    ambiguous = sum(e["ambiguous"] for e in eqs)
    diverging = sum(e["diverging"] for e in eqs)
    samples = [p["data"]["samples"] for p in parts]
    same = sum(_count(e["prediction_agreement"], m) for e, m in zip(eqs, samples))
    rank = {layer["name"]: i for i, layer in enumerate(parts[0].get("layers", {}).get(flow, []))}
    best = None
    for e, off in zip(eqs, offsets):
        d = e["first_divergence"]
        if d is None:
            continue
        if d["layer"] not in rank:
            raise _Fallback(f"divergence in a layer not in the layer list: {d['layer']}")
        d = {**d, "sample": int(d["sample"]) + off}
        key = (int(d["tick"]), rank[d["layer"]], d["sample"], int(d["flat_neuron"]))
        if best is None or key < best[0]:
            best = (key, d)
    t = max(trains, 1)
    n = sum(samples)
    return {"spike_trains": trains, "identical": identical, "ambiguous": ambiguous, "diverging": diverging,
            "identical_share": identical / t if trains else 1.0,
            "consistent_share": (identical + ambiguous) / t if trains else 1.0,
            "prediction_agreement": same / n if n else 1.0,
            "first_divergence": None if best is None else best[1]}


def _merge_layers(parts: Sequence[Dict[str, Any]], sizes: Sequence[int], ticks: int) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for flow, rows in parts[0].get("layers", {}).items():
        merged = []
        for i, row in enumerate(rows):
            new = dict(row)
            for key in ("rate_float", "rate_int8"):
                spikes = 0
                for p, m in zip(parts, sizes):
                    r = p["layers"][flow][i]
                    if r["name"] != row["name"]:
                        raise _Fallback("layer lists differ between shards")
                    spikes += _count(r[key], r["neurons"] * ticks * m)
                denom = row["neurons"] * ticks * sum(sizes)
                new[key] = spikes / denom if denom else 0.0
            merged.append(new)
        out[flow] = merged
    return out


def _merge_neurobench(parts: Sequence[Dict[str, Any]], sizes: Sequence[int], ticks: int) -> Dict[str, Any]:
    out = copy.deepcopy(parts[0].get("neurobench", {}))
    n = sum(sizes)
    for col, vals in out.items():
        if "activation_sparsity" not in vals:
            continue
        neurons = _column_neurons(parts[0], col)
        if neurons is None:
            raise _Fallback(f"cannot size neurobench column {col}")
        total = neurons * ticks * n
        spikes = sum(_count(1.0 - p["neurobench"][col]["activation_sparsity"], neurons * ticks * m)
                     for p, m in zip(parts, sizes))
        sums = {k: sum(_count(p["neurobench"][col][k], m) for p, m in zip(parts, sizes))
                for k in ("effective_acs", "effective_macs", "dense_operations")}
        ops = {k: v / max(n, 1) for k, v in sums.items()}
        vals["activation_sparsity"] = 1.0 - spikes / total if total else 1.0
        vals["synaptic_operations"] = ops["effective_acs"] + ops["effective_macs"]
        vals["effective_acs"] = ops["effective_acs"]
        vals["effective_macs"] = ops["effective_macs"]
        vals["dense_operations"] = ops["dense_operations"]
    return out


def _column_neurons(part: Dict[str, Any], col: str) -> Optional[int]:
    """Neurons of all layers counted in a neurobench column (from the layer list of its flow)."""
    flow = "qat" if col.startswith("qat") else "ptq"
    rows = part.get("layers", {}).get(flow)
    if rows is None:
        return None
    return int(sum(r["neurons"] for r in rows))


def _merge_sweep(parts: Sequence[Dict[str, Any]]) -> List[Dict[str, Any]]:
    entries: Dict[float, List[int]] = {}
    order: List[float] = []
    for p in parts:
        for e in p.get("sweep", []):
            pc = float(e["percentile"])
            if pc not in entries:
                entries[pc] = [0, 0]
                order.append(pc)
            entries[pc][0] += _count(e["accuracy"] / 100.0, e["samples"])
            entries[pc][1] += int(e["samples"])
    return [{"percentile": pc, "accuracy": 100.0 * (entries[pc][0] / entries[pc][1]), "samples": entries[pc][1]}
            for pc in order]


_SAMPLE = re.compile(r"sample (\d+)")


def _merge_raster(parts: Sequence[Dict[str, Any]], offsets: Sequence[int], ptq_first: Optional[Dict[str, Any]]
                  ) -> Optional[Dict[str, Any]]:
    """The serial run's raster: at the smallest PTQ divergence if any; else at the first shard's first
    Q-SNN divergence; else the first shard's (sample 0, no divergence)."""
    def shifted(i: int) -> Optional[Dict[str, Any]]:
        r = parts[i].get("raster")
        if r is None:
            return None
        r = copy.deepcopy(r)
        r["title"] = _SAMPLE.sub(lambda m: f"sample {int(m.group(1)) + offsets[i]}", r["title"])
        return r

    if ptq_first is not None:
        for i, p in enumerate(parts):
            d = (p.get("equivalence", {}).get("ptq") or {}).get("first_divergence")
            if d is not None and int(d["sample"]) + offsets[i] == ptq_first["sample"] and \
                    d["layer"] == ptq_first["layer"] and int(d["tick"]) == ptq_first["tick"]:
                return shifted(i)
        raise _Fallback("no shard holds the first PTQ divergence")
    for i, p in enumerate(parts):
        if (p.get("equivalence", {}).get("qat") or {}).get("first_divergence") is not None:
            return shifted(i)
    return shifted(0)


def merge(config: Any, parts: Sequence[Dict[str, Any]], bounds: Sequence[Tuple[int, int]], labels: np.ndarray,
          dataset: str, checked: Any = None) -> Dict[str, Any]:
    """The serial evaluation's result from the shards' results (see the module docstring).

    Raises:
        _Fallback: a shard recorded an error, or the shards disagree where they must not.
    """
    if any(p.get("errors") for p in parts):
        raise _Fallback("a shard recorded an error")
    first = parts[0]
    for key in SAME_IN_EVERY_SHARD:
        if any(p.get(key) != first.get(key) for p in parts):
            raise _Fallback(f"shards disagree on {key}")
    sizes = [b - a for a, b in bounds]
    offsets = [a for a, _ in bounds]
    n = sum(sizes)
    ev = copy.deepcopy(first)
    ev["digest"] = config.digest()
    cfg = config.as_dict()
    for key in ("report", "batch_size", "progress"):
        cfg.pop(key, None)
    ev["config"] = cfg
    ticks = int(first["data"]["ticks"])
    data = {**first["data"], "dataset": dataset, "samples": n, "classes": int(labels.max()) + 1}
    if "chance" in data:  # the share of the most frequent label: of all labels, not of one shard's
        from harness.data.checks import chance_level

        data["chance"] = chance_level(labels, data.get("model_classes"))
    if checked is not None:  # what the data check did to the whole split (the shards got its result)
        for key in ("binarized", "notes"):
            if key in data:
                data[key] = copy.deepcopy(getattr(checked, key))
    ev["data"] = data
    if "accuracy" in first:
        ev["accuracy"] = _merge_accuracy(parts, sizes, n)
    if "equivalence" in first:
        ev["equivalence"] = {flow: _merge_equivalence(flow, parts, offsets) for flow in first["equivalence"]}
    if "layers" in first:
        ev["layers"] = _merge_layers(parts, sizes, ticks)
    if "neurobench" in first:
        ev["neurobench"] = _merge_neurobench(parts, sizes, ticks)
    if "sweep" in first:
        ev["sweep"] = _merge_sweep(parts)
    if "raster" in first:
        ptq = ev.get("equivalence", {}).get("ptq") or {}
        ev["raster"] = _merge_raster(parts, offsets, ptq.get("first_divergence"))
    return ev


# ----------------------------------------------------------------------------- entry points

def _load_for_shards(config: Any, data: Optional[Tuple[np.ndarray, np.ndarray]] = None) -> Any:
    """The data as the serial evaluation sees it: loaded (or given) and checked
    (:func:`harness.data.checks.check_dataset`, which may binarize counts)."""
    import os

    from harness.data.checks import check_dataset, model_classes
    from harness.gate.evaluate import _ticks, load_data
    from s2common.graph import flatten_graph, load_graph

    graph = load_graph(config.model, isolate=True)
    flat = flatten_graph(graph, file=config.model)
    spikes, labels = data if data is not None else load_data(config, _ticks(graph))
    return check_dataset(spikes, labels, file=config.dataset if os.path.exists(str(config.dataset)) else None,
                         n_classes=model_classes(flat), binarize=config.binarize)


def evaluate_distributed(config: Any, client: Any, *, data: Optional[Tuple[np.ndarray, np.ndarray]] = None,
                         shards: Optional[int] = None, debug: bool = False,
                         on_result: Optional[Callable[[int, Any], None]] = None) -> Dict[str, Any]:
    """The gate's evaluation, sharded by sample batches over ``client`` (a ``distributed.Client``).

    Args:
        config: the :class:`~harness.gate.config.GateConfig`.
        client: where to run (see :func:`cluster_client`).
        data: (spikes, labels) instead of ``config.dataset`` (as for ``evaluate``).
        shards: number of shards (default: two per worker, at most one per batch).
        debug: let bugs propagate with their traceback (as for ``evaluate``).
        on_result: called as ``on_result(shard_index, client)`` when a shard finishes (tests use it
            to kill a worker mid-run).

    Returns:
        The same dict as :func:`harness.gate.evaluate.evaluate` on the same inputs, bit for bit.
    """
    from harness.gate.evaluate import evaluate

    try:
        checked = _load_for_shards(config, data)
        spikes = np.asarray(checked.spikes)
        labels = np.asarray(checked.labels).astype(np.int64).reshape(-1)
        if spikes.shape[0] != labels.shape[0] or spikes.shape[0] == 0:
            raise _Fallback("bad data")
    except (S2GateError, _Fallback, OSError, ValueError):
        return evaluate(config, data=data, debug=debug)  # the serial run records the error
    n = int(spikes.shape[0])
    n_workers = max(1, len(client.scheduler_info().get("workers", {})))
    bounds = shard_bounds(n, config.batch_size, shards or 2 * n_workers)
    from distributed import as_completed

    futures = []
    for a, b in bounds:
        # the shard's arrays travel inside its task (not scattered): a task whose worker is lost
        # can then be rerun anywhere, its inputs are held by the scheduler
        futures.append(client.submit(_evaluate_shard, _shard_config(config, a, b, n), spikes[a:b], labels[a:b], debug,
                                     pure=False))
    index = {f.key: i for i, f in enumerate(futures)}
    parts: List[Optional[Dict[str, Any]]] = [None] * len(futures)
    for fut in as_completed(futures):
        i = index[fut.key]
        parts[i] = fut.result()
        if on_result is not None:
            on_result(i, client)
    try:
        return merge(config, parts, bounds, labels, config.dataset if data is None else "given", checked)
    except _Fallback:
        return evaluate(config, data=data, debug=debug)


def _sweep_point(config: Any, spikes: np.ndarray, labels: np.ndarray) -> Dict[str, Any]:
    import torch

    from harness.gate.evaluate import sweep

    torch.set_num_threads(1)
    return sweep(config, data=(spikes, labels))


def sweep_distributed(config: Any, client: Any, *, data: Optional[Tuple[np.ndarray, np.ndarray]] = None
                      ) -> Dict[str, Any]:
    """:func:`harness.gate.evaluate.sweep` with one Dask task per percentile (same result, bit for bit)."""
    from harness.gate.evaluate import sweep

    checked = _load_for_shards(config, data)
    spikes, labels = checked.spikes, checked.labels
    ps = sorted(set(float(p) for p in config.sweep))
    if len(ps) < 2:
        return sweep(config, data=(spikes, labels))
    x, y = np.asarray(spikes), np.asarray(labels)
    futs = [client.submit(_sweep_point, config.replace(sweep=(p,)), x, y, pure=False) for p in ps]
    parts = client.gather(futs)
    out = copy.deepcopy(parts[0])
    out["config"] = {k: v for k, v in config.as_dict().items() if k not in ("report", "batch_size", "progress")}
    out["sweep"] = [e for part in parts for e in part["sweep"]]
    return out
