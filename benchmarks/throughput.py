"""Throughput of the emulator next to its golden model, the reference, Sinabs and Norse (a script, not a test).

    python benchmarks/throughput.py [--quick] [--json OUT] [--models cnn_sinabs psnn seedscale] [--ticks 100]
                                    [--density 0.02] [--threads N] [--no-gate] [--no-seed-gate]

In one run, on the same seeded inputs and the same machine, prints samples x ticks per second of

* the emulator's fast engine (``s2emu.Engine``, batched) at batch 1 and 64,
* its golden model (``s2emu.GoldenModel``, scalar; fewer ticks, throughput scales linearly;
  batch 64 on a quarter of those ticks),
* the reference (``reference.simulate``, float64, preset ``spinnaker2`` as the gate runs it),
* Sinabs 3.1.3 (``sinabs.nir.from_nir(graph, batch_size=B)``, float32, batched: batch-major
  (B*T, ...) input, the peer to beat; an optional ``peers`` dependency, left out if missing),
* Norse 1.1.0 (``norse.torch.from_nir``, float32, 1 torch thread by default), one sample at a time: the Flatten that Norse
  imports from NIR (``torch.nn.Flatten(start_dim=0)``) flattens the batch axis too, so a batch
  of >1 fails in the first Affine (checked at run time: if a batched call works it is used),

on ``cnn_sinabs.nir``, the bundled P-SNN (batch 64, ``--density``) and the seed-scale model
(``harness.models.seedscale``, generated from its seed: batch 32, 5 % input). Then, all in the same run:

* the ratios engine / Sinabs (target >= 5x) and engine / Norse,
* the float32 dense bound: the graph's multiply-adds per sample and tick (conv:
  C_out*H_out*W_out*C_in/groups*kh*kw, dense: in*out; pooling adds not counted) over this
  machine's float32 matrix-multiply rate (best of ``torch.matmul`` at a few sizes, in
  multiply-adds per second = FLOP/s / 2), as "engine time / float32 bound = X x" (target <= 3x),
* the exact int8 bound: each weight node's multiply-adds over ``torch._int_mm``'s rate at that
  node's own GEMM shape (conv: (C_out, C_in*kh*kw) x (C_in*kh*kw, rows*H_out*W_out); dense:
  (rows, in) x (in, out); rows = the batch), as "engine time / int8 bound",
* the engine against input spike density (time falls with activity), next to the same engine
  forced onto its dense kernel (``Engine(synapses="dense")``),
* the full gate ``s2gate gate`` on the bundled default, timed in a subprocess, and the full gate
  (``harness.gate.evaluate.evaluate``: PTQ and QAT flows, the default sweep) on the seed-scale
  model with 264 samples x 100 ticks (DVS Gesture's test split), wall time and peak memory
  (target <= 3 min on 2 cores).

Inputs: Bernoulli spikes with ``--density`` per input pixel and tick, seed 0. Each engine, Sinabs
and bound measurement is the best of 3 after a full warm-up call on the same input (torch chooses
kernels on the first call, the engine measures its kernels and builds synapse rows on first use);
the load average is printed because other processes on a 2-core machine change every number:
compare ratios measured in one run, not absolute times.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List, Optional

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BUNDLED = os.path.join(ROOT, "harness", "bundled")
GATE_TARGET_S = 120.0
SEED_GATE_TARGET_S = 180.0
SINABS_TARGET = 5.0
BOUND_TARGET = 3.0
#: per generated model: batch and input density of its main rows (the issue's seed-scale setting)
GENERATED = {"seedscale": {"batch": 32, "density": 0.05}}


# ----------------------------------------------------------------------------- inputs and models

def model_file(name: str, folder: Optional[str] = None) -> str:
    """``<folder or harness/bundled>/<name>.nir``; a path ending in .nir is returned as is; a
    generated model (``seedscale``) is written into a temporary folder from its seed."""
    if name.endswith(".nir"):
        return name
    if name in GENERATED and folder is None:
        from harness.models import seedscale

        return seedscale.write(os.path.join(tempfile.gettempdir(), f"s2gate-bench-{os.getpid()}"))[0]
    return os.path.join(folder or BUNDLED, f"{name}.nir")


def make_spikes(input_shape, batch: int, ticks: int, density: float, seed: int = 0) -> np.ndarray:
    """Seeded Bernoulli spikes, bool, (batch, ticks, *input_shape)."""
    rng = np.random.default_rng(seed)
    return rng.random((batch, ticks, *input_shape)) < density


def lower_model(flat) -> Any:
    """The graph lowered for the emulator (float: py-spinnaker2's weight scaling; quantized: as is)."""
    from s2emu import ConversionOptions, lower

    g = flat.graph
    meta = getattr(g, "metadata", None) or {}
    quantized = any(str(k).startswith("s2gate.quant") for k in meta) or any(
        "s2gate.quant" in (getattr(n, "metadata", None) or {}) for n in g.nodes.values())
    return lower(flat, ConversionOptions(scale_weights=not quantized))


# ----------------------------------------------------------------------------- dense bound

def macs_per_tick(flat) -> Dict[str, int]:
    """Multiply-adds per sample and tick of every weight node of a flattened NIR graph.

    Conv2d/Conv1d: ``prod(output shape) * C_in/groups * prod(kernel)`` (= the weight's size
    per output channel); Linear/Affine: ``in * out`` (the weight's size). Output shapes come
    from ``FlatGraph.out_shape`` (the graph's own shape inference).
    """
    out: Dict[str, int] = {}
    for name, node in flat.nodes.items():
        kind = type(node).__name__
        if kind in ("Conv2d", "Conv1d"):
            w = np.asarray(node.weight)
            out[name] = int(np.prod(flat.out_shape[name])) * int(np.prod(w.shape[1:]))
        elif kind in ("Linear", "Affine"):
            out[name] = int(np.asarray(node.weight).size)
    return out


def matmul_rate(threads: int, sizes=(256, 512, 1024, 2048), budget_s: float = 0.5) -> Dict[str, Any]:
    """Best float32 ``torch.matmul`` rate of this machine over square sizes: GFLOP/s and MAC/s."""
    import torch

    best = 0.0
    per_size = {}
    for n in sizes:
        a = torch.randn(n, n, dtype=torch.float32)
        b = torch.randn(n, n, dtype=torch.float32)
        torch.matmul(a, b)  # warm-up
        reps, t0 = 0, CLOCK[0]()
        while True:
            torch.matmul(a, b)
            reps += 1
            el = CLOCK[0]() - t0
            if el > budget_s and reps >= 2:
                break
        gflops = 2.0 * n ** 3 * reps / el / 1e9
        per_size[n] = gflops
        best = max(best, gflops)
    return {"gflops": best, "macs_per_s": best * 1e9 / 2.0, "per_size_gflops": per_size, "threads": threads}


def gemm_shapes(flat, rows: int) -> Dict[str, tuple]:
    """Per weight node, the (m, k, n) int8 GEMM the engine runs for ``rows`` (sample, tick) rows.

    Conv2d: ``(C_out, C_in/groups*kh*kw) x (C_in/groups*kh*kw, rows*H_out*W_out)`` (im2col);
    Linear/Affine: ``(rows, in) x (in, out)``.
    """
    out: Dict[str, tuple] = {}
    for name, node in flat.nodes.items():
        kind = type(node).__name__
        w = getattr(node, "weight", None)
        if kind == "Conv2d":
            w = np.asarray(w)
            out[name] = (int(w.shape[0]), int(np.prod(w.shape[1:])), rows * int(np.prod(flat.out_shape[name][1:])))
        elif kind in ("Linear", "Affine"):
            w = np.asarray(w)
            out[name] = (rows, int(w.shape[1]), int(w.shape[0]))
    return out


def int8_bound(flat, rows: int, budget_s: float = 0.2) -> Dict[str, Any]:
    """Seconds per sample-tick of the exact int8 products alone: each weight node's GEMM at its own
    shape (:func:`gemm_shapes`) timed with ``torch._int_mm`` (best of a few), divided by ``rows``."""
    import torch

    per_node = {}
    total = 0.0
    for name, (m, k, n) in gemm_shapes(flat, rows).items():
        a = torch.randint(0, 2, (m, k), dtype=torch.int8)
        b = torch.randint(-127, 128, (k, n), dtype=torch.int8)
        torch._int_mm(a, b)
        best, t_all = float("inf"), CLOCK[0]()
        while True:
            t0 = CLOCK[0]()
            torch._int_mm(a, b)
            best = min(best, CLOCK[0]() - t0)
            if CLOCK[0]() - t_all > budget_s:
                break
        per_node[name] = {"shape": [m, k, n], "seconds": best, "macs_per_s": m * k * n / best}
        total += best
    return {"rows": rows, "s_per_sample_tick": total / rows, "per_node": per_node}


# ----------------------------------------------------------------------------- runners

#: the clock of every measurement: wall time, or with ``--cpu-time`` (needs ``--threads 1``: all work then
#: runs on the calling thread) the process CPU time (all its threads: numpy's BLAS pool too), which other
#: processes on a loaded machine do not inflate; run it with OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
CLOCK = [time.perf_counter]


def timed(fn: Callable[[], Any]) -> tuple:
    t0 = CLOCK[0]()
    res = fn()
    return CLOCK[0]() - t0, res


def run_engine(net, x: np.ndarray, synapses: str = "auto", repeats: int = 3, kernels: str = "auto"):
    """Best of ``repeats`` timings of ``Engine(net, synapses=..., kernels=...).run(x)`` after one warm-up run on the same input.

    The warm-up is a full run: torch picks its kernels on the first call of a shape, and the
    engine builds a projection's synapse rows the first time it chooses event-driven delivery.
    The best of a few runs, because one 0.2 s run on a 2-core machine varies by +-30 %.
    """
    from s2emu import Engine

    eng = Engine(net, synapses=synapses, kernels=kernels)
    eng.run(x)  # warm-up
    runs = [timed(lambda: eng.run(x)) for _ in range(max(1, repeats))]
    return min(r[0] for r in runs), runs[-1][1]


def run_golden(net, x: np.ndarray):
    from s2emu import GoldenModel

    gold = GoldenModel(net)
    return timed(lambda: gold.run(x))


def run_reference(flat, x: np.ndarray):
    from reference import simulate

    simulate(flat, x[:, :2], preset="spinnaker2", dtype=np.float64)  # warm-up
    return timed(lambda: simulate(flat, x, preset="spinnaker2", dtype=np.float64))


def run_norse(graph, x: np.ndarray, dt: float, threads: int = 1) -> tuple:
    """Norse on ``x`` (batch, T, ...): batched if its imported model accepts a batch, else sample
    by sample, on ``threads`` torch threads. Returns (seconds, mode, output spikes (batch, T, n_out))."""
    with torch_threads(threads):
        return _run_norse(graph, x, dt)


def _run_norse(graph, x: np.ndarray, dt: float) -> tuple:
    import torch
    import norse.torch as nt

    model = nt.from_nir(graph, dt=dt)
    xt = torch.from_numpy(x.astype(np.float32))
    batched = False
    if x.shape[0] > 1:
        try:
            with torch.no_grad():
                o, _ = model(xt[:2, 0], None)
            batched = o.shape[0] == 2 and o.ndim == 2
        except RuntimeError:
            batched = False
    with torch.no_grad():
        model(xt[:1, 0], None)  # warm-up
        outs: List[np.ndarray] = []
        t0 = time.perf_counter()
        if batched:
            state = None
            for t in range(x.shape[1]):
                o, state = model(xt[:, t], state)
                outs.append(o.reshape(x.shape[0], -1).numpy())
            out = np.stack(outs, axis=1)
        else:
            per = []
            for b in range(x.shape[0]):
                state, seq = None, []
                for t in range(x.shape[1]):
                    o, state = model(xt[b:b + 1, t], state)
                    seq.append(o.reshape(-1).numpy())
                per.append(np.stack(seq))
            out = np.stack(per)
        sec = time.perf_counter() - t0
    return sec, ("batched" if batched else "sample by sample"), out


def run_sinabs(graph, x: np.ndarray, repeats: int = 3) -> tuple:
    """Sinabs 3.1.3 on ``x`` (batch, T, ...): ``sinabs.nir.from_nir(graph, batch_size=batch)``, input
    batch-major (batch*T, ...) float32, states reset before each call; best of ``repeats`` after a
    warm-up call. Returns (seconds, output)."""
    import torch
    import sinabs.nir

    batch, ticks = x.shape[:2]
    model = sinabs.nir.from_nir(graph, batch_size=batch)
    xt = torch.from_numpy(x.astype(np.float32)).reshape((batch * ticks,) + x.shape[2:])

    def once():
        for m in model.modules():
            if hasattr(m, "reset_states"):
                m.reset_states()
        with torch.no_grad():
            return model(xt)

    once()
    runs = [timed(once) for _ in range(max(1, repeats))]
    return min(r[0] for r in runs), runs[-1][1]


def spikes_total(rec, names) -> int:
    return int(sum(int(np.count_nonzero(rec.get(n, "spikes"))) for n in names))


# ----------------------------------------------------------------------------- gate

def measure_gate(timeout: float = 900.0, model_dir: Optional[str] = None, threads: Optional[int] = None) -> Dict[str, Any]:
    """``s2gate gate`` on the bundled default in a subprocess (fresh interpreter, temp folder);
    with ``model_dir``, on ``model_dir/psnn.nir`` and ``model_dir/qsnn.nir`` instead; ``threads`` sets
    ``OMP_NUM_THREADS`` (torch's intra-op threads) of the subprocess."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads)) if threads else None
    exe = os.path.join(os.path.dirname(sys.executable), "s2gate")
    cmd = [exe] if os.path.exists(exe) else ([shutil.which("s2gate")] if shutil.which("s2gate") else None)
    if cmd is None:
        return {"skipped": "no s2gate command"}
    missing = [m for m in ("psnn", "qsnn") if not os.path.exists(model_file(m, model_dir))]
    if missing:
        return {"skipped": f"bundled model(s) missing: {', '.join(m + '.nir' for m in missing)}"}
    help_ = subprocess.run(cmd + ["gate", "--help"], capture_output=True, text=True)
    if help_.returncode != 0:
        return {"skipped": "s2gate has no gate command"}
    with tempfile.TemporaryDirectory() as tmp:
        full = cmd + ["gate", "--quiet", "--report", os.path.join(tmp, "report")]
        if model_dir:
            full += ["--model", model_file("psnn", model_dir), "--qat-model", model_file("qsnn", model_dir)]
        t0 = time.perf_counter()
        try:
            p = subprocess.run(full, cwd=tmp, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"command": " ".join(full[1:]), "seconds": None, "exit": None, "timeout": timeout}
        sec = time.perf_counter() - t0
    tail = (p.stdout + p.stderr).strip().splitlines()[-3:]
    prefix = f"OMP_NUM_THREADS={threads} " if threads else ""
    return {"command": prefix + "s2gate " + " ".join(full[1:]), "seconds": sec, "exit": p.returncode, "tail": tail}


# ----------------------------------------------------------------------------- main

@contextlib.contextmanager
def torch_threads(n: int):
    """Run the block with ``n`` torch intra-op threads."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def measure_model(name: str, path: str, args, rate: Dict[str, Any], log) -> Dict[str, Any]:
    import nir
    import torch

    from s2common.graph import flatten_graph

    graph = nir.read(path)
    flat = flatten_graph(graph, file=path)
    net = lower_model(flat)
    T = args.ticks
    gen = GENERATED.get(name, {})
    B = gen.get("batch", 64)
    density = gen.get("density", args.density)
    xb = make_spikes(flat.input_shape, B, T, density, seed=0)
    x1 = xb[:1]
    pops = [p.name for p in net.populations.values() if p.model != "spike_list"]
    rows: List[Dict[str, Any]] = []

    def add(sim: str, batch: int, ticks: int, sec: float, note: str = "") -> Dict[str, Any]:
        row = {"model": name, "simulator": sim, "batch": batch, "ticks": ticks, "seconds": sec,
               "samples_ticks_per_s": batch * ticks / sec, "note": note}
        rows.append(row)
        log(f"  {sim:<22} batch {batch:>2}: {sec:8.2f} s  {row['samples_ticks_per_s']:10.1f} samples*ticks/s {note}")
        return row

    log(f"{name}: {path} (batch {B}, input density {density})")
    sec, _ = run_engine(net, x1)
    add("emulator (engine)", 1, T, sec)
    sec, rec64 = run_engine(net, xb)
    e64 = add("emulator (engine)", B, T, sec)
    sec, _ = run_engine(net, xb, kernels="float")
    e_float = add("emulator (engine)", B, T, sec, "float kernels, torch neuron update (the previous engine)")
    e64_1 = None
    if torch.get_num_threads() > 1:  # the same run on one thread (a loaded machine punishes OpenMP threads)
        with torch_threads(1):
            sec, _ = run_engine(net, xb)
        e64_1 = add("emulator (engine)", B, T, sec, "1 thread")
    gt = args.golden_ticks if name not in GENERATED else max(1, args.golden_ticks // 10)
    sec, _ = run_golden(net, x1[:, :gt])
    add("golden model", 1, gt, sec, f"{gt} ticks")
    if name not in GENERATED:
        g64 = max(1, gt // 4)  # the golden model loops over samples: batch 64 costs 64x batch 1, so fewer ticks
        sec, _ = run_golden(net, xb[:, :g64])
        add("golden model", B, g64, sec, f"{g64} ticks")
    ref_b = xb if name not in GENERATED else xb[:8]
    sec, _ = run_reference(flat, ref_b)
    add("reference float64", ref_b.shape[0], T, sec)
    res: Dict[str, Any] = {"model": name, "file": path, "batch": B, "input_density": density, "rows": rows}
    try:
        import sinabs  # noqa: F401
    except ImportError as exc:
        log(f"  sinabs not available: {exc}")
    else:
        with torch_threads(args.norse_threads if args.sinabs_threads is None else args.sinabs_threads):
            sec, _ = run_sinabs(graph, xb)
        s_row = add("sinabs 3.1.3 float32", B, T, sec, f"batched, from_nir(batch_size={B})")
        res["ratio_engine_over_sinabs"] = e64["samples_ticks_per_s"] / s_row["samples_ticks_per_s"]
        res["ratio_float_engine_over_sinabs"] = e_float["samples_ticks_per_s"] / s_row["samples_ticks_per_s"]
        if e64_1 is not None:
            res["ratio_engine_1thread_over_sinabs"] = e64_1["samples_ticks_per_s"] / s_row["samples_ticks_per_s"]
    norse_rows = []
    try:
        import norse  # noqa: F401
    except ImportError as exc:
        log(f"  norse not available: {exc}")
    else:
        dt = float((getattr(graph, "metadata", None) or {}).get("s2gate.dt", 1e-3))
        sec, mode, _ = run_norse(graph, x1, dt, args.norse_threads)
        th = f", {args.norse_threads} thread(s)"
        norse_rows.append(add("norse 1.1.0 float32", 1, T, sec, mode + th))
        if name not in GENERATED:
            nb = min(B, args.norse_samples)
            sec, mode, _ = run_norse(graph, xb[:nb], dt, args.norse_threads)
            norse_rows.append(add("norse 1.1.0 float32", nb, T, sec, mode + th + ("" if nb == B else f", {nb} of {B}")))
    if norse_rows:
        best_norse = max(r["samples_ticks_per_s"] for r in norse_rows)
        res["ratio_engine_over_norse"] = e64["samples_ticks_per_s"] / best_norse
    macs = macs_per_tick(flat)
    total = sum(macs.values())
    bound = total / rate["macs_per_s"]  # seconds per sample-tick
    i8 = int8_bound(flat, B)
    per = e64["seconds"] / (B * T)
    res["dense"] = {"macs_per_sample_tick": total, "macs_per_node": macs, "bound_s_per_sample_tick": bound,
                    "emulator_s_per_sample_tick": per, "emulator_over_bound": per / bound,
                    "float_engine_over_bound": e_float["seconds"] / (B * T) / bound,
                    "int8_bound_s_per_sample_tick": i8["s_per_sample_tick"], "int8_bound": i8,
                    "emulator_over_int8_bound": per / i8["s_per_sample_tick"],
                    "float32_bound_over_int8_bound": bound / i8["s_per_sample_tick"]}
    if e64_1 is not None:
        per1 = e64_1["seconds"] / (B * T)
        res["dense"].update({"emulator_1thread_s_per_sample_tick": per1, "emulator_1thread_over_bound": per1 / bound})
    dens = []
    for d in args.densities:
        xd = make_spikes(flat.input_shape, B, T, d, seed=1)
        sec, rec = run_engine(net, xd)
        sec_dense, _ = run_engine(net, xd, synapses="dense")
        paths = rec.meta["synapse_paths"]
        n_ev = sum(v["events"] for v in paths.values())
        n_all = n_ev + sum(v["dense"] for v in paths.values())
        dens.append({"model": name, "density": d, "batch": B, "seconds": sec, "samples_ticks_per_s": B * T / sec,
                     "seconds_dense_kernel_only": sec_dense, "event_chunks": n_ev, "chunks": n_all,
                     "input_spikes": int(np.count_nonzero(xd)), "network_spikes": spikes_total(rec, pops)})
        log(f"  density {d:6.3f}: {sec:8.2f} s (dense kernel only: {sec_dense:.2f} s; {n_ev} of {n_all} chunks by events)")
    res["density"] = dens
    res["network_spikes_at_default_density"] = spikes_total(rec64, pops)
    return res


def measure_denoise(n_events: int = 300_000, recordings: int = 3) -> Dict[str, Any]:
    """tonic's ``Denoise(filter_time=10 ms)`` against ``harness.data.transforms.denoise`` on seeded
    DVS-sized recordings (128 x 128, ``n_events`` events over 6 s): seconds each (best of the
    recordings' times, after a compile/warm-up call) and whether the kept events are identical."""
    import tonic.transforms as tt

    from harness.data.transforms import denoise

    dt = np.dtype([("x", np.int16), ("y", np.int16), ("p", bool), ("t", np.int64)])
    rng = np.random.default_rng(0)
    tonic_s, ours_s, same = [], [], True
    for _ in range(recordings):
        ev = np.zeros(n_events, dt)
        ev["x"], ev["y"] = rng.integers(0, 128, n_events), rng.integers(0, 128, n_events)
        ev["p"] = rng.random(n_events) < 0.5
        ev["t"] = np.sort(rng.integers(0, 6_000_000, n_events))
        denoise(ev[:10], 10_000)
        sec_t, a = timed(lambda: tt.Denoise(filter_time=10_000)(ev))
        sec_o, b = timed(lambda: denoise(ev, 10_000))
        tonic_s.append(sec_t)
        ours_s.append(sec_o)
        same = same and bool(np.array_equal(a, b))
    return {"events": n_events, "tonic_seconds": min(tonic_s), "s2gate_seconds": min(ours_s),
            "speedup": min(tonic_s) / min(ours_s), "identical": same}


def measure_seed_gate(samples: int = 264, timeout: float = 1800.0, threads: Optional[int] = None,
                      workers: int = 1) -> Dict[str, Any]:
    """The full gate on the seed-scale model: ``harness.gate.evaluate.evaluate(GateConfig(...))`` (PTQ and
    QAT flows, the default sweep, the automatic batch size) on ``samples`` seeded samples x 100 ticks at 5 %
    input, in a fresh subprocess; with ``workers > 1`` on a local Dask cluster of that many processes
    (``harness.distributed.evaluate_distributed``: the same result bit for bit; the cluster's start-up is
    timed too). Wall time of the evaluation and of the whole subprocess, the CPU seconds of the process
    tree, and its peak memory: the largest sum of the resident sets of the process and all its
    descendants and the largest single process (both sampled every 0.1 s with psutil)."""
    import resource

    try:
        import psutil  # installed with dask.distributed (the "dist" extra)
    except ImportError:  # pragma: no cover - then only the largest single process is known
        psutil = None

    with tempfile.TemporaryDirectory() as tmp:
        code = (
            "import json, sys, time, numpy as np\n"
            "from harness.models import seedscale\n"
            "from harness.gate.config import GateConfig\n"
            "from harness.gate.evaluate import evaluate\n"
            f"tmp = {tmp!r}\n"
            "f, q = seedscale.write(tmp)\n"
            f"n = {int(samples)}\n"
            f"workers = {int(workers)}\n"
            "x = seedscale.spikes(n, 0.05)\n"
            "np.savez(tmp + '/data.npz', spikes=x, labels=np.arange(n) % seedscale.N_CLASSES)\n"
            "del x\n"
            "cfg = GateConfig(model=f, qat_model=q, dataset=tmp + '/data.npz')\n"
            "t0 = time.perf_counter()\n"
            "if workers > 1:\n"
            "    from harness.distributed import cluster_client, evaluate_distributed\n"
            "    with cluster_client(workers=workers) as client:\n"
            "        ev = evaluate_distributed(cfg, client)\n"
            "else:\n"
            "    ev = evaluate(cfg)\n"
            "sec = time.perf_counter() - t0\n"
            "errs = getattr(ev, 'errors', None)\n"
            "print(json.dumps({'evaluate_seconds': sec, 'errors': dict(errs) if errs else {}}))\n")
        env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
        if threads:
            env["OMP_NUM_THREADS"] = str(threads)
        t0 = time.perf_counter()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        proc = subprocess.Popen([sys.executable, "-c", code], cwd=tmp, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        peak_total, peak_single, cpu_tree = 0, 0, {}
        root = psutil.Process(proc.pid) if psutil else None
        while proc.poll() is None:
            if time.perf_counter() - t0 > timeout:
                proc.kill()
                proc.communicate()
                return {"samples": samples, "seconds": None, "timeout": timeout, "workers": workers}
            if root is None:
                time.sleep(0.1)
                continue
            try:
                tree = [root] + root.children(recursive=True)
                rss = 0
                for q in tree:
                    with contextlib.suppress(psutil.Error):
                        one = q.memory_info().rss
                        rss += one
                        peak_single = max(peak_single, one)
                        t = q.cpu_times()
                        cpu_tree[q.pid] = t.user + t.system  # last reading of each process
                peak_total = max(peak_total, rss)
            except psutil.Error:
                pass
            time.sleep(0.1)
        stdout, stderr = proc.communicate()
        wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    out: Dict[str, Any] = {"samples": samples, "ticks": 100, "workers": workers, "process_seconds": wall,
                           # the subprocess itself (and what it waited for); Dask's workers are seen only by the sampler
                           "process_cpu_seconds": max(cpu, sum(cpu_tree.values())),
                           "exit": proc.returncode,
                           "peak_rss_mib": (peak_total / 2 ** 20) if peak_total else after.ru_maxrss / 1024.0,
                           # sampled: ru_maxrss of the children would count the resident memory a forked child
                           # shares with this (large) benchmark process until it execs (read 11 GiB once)
                           "peak_single_process_rss_mib": (peak_single / 2 ** 20) if peak_single else None}
    try:
        out.update(json.loads(stdout.strip().splitlines()[-1]))
    except (ValueError, IndexError):
        out["tail"] = (stdout + stderr).strip().splitlines()[-5:]
    return out


def main(argv: Optional[List[str]] = None) -> int:
    from tabulate import tabulate

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="*", default=["cnn_sinabs", "psnn", "seedscale"],
                   help="bundled model names, 'seedscale' (generated) or .nir paths (default cnn_sinabs psnn seedscale)")
    p.add_argument("--model-dir", default=None, help="folder of the <name>.nir files (default harness/bundled)")
    p.add_argument("--ticks", type=int, default=None, help="ticks per run (default 100; --quick 20)")
    p.add_argument("--golden-ticks", type=int, default=None, help="golden-model ticks (default 20; --quick 5)")
    p.add_argument("--density", type=float, default=0.02, help="input spike density of the main table (0.02)")
    p.add_argument("--densities", type=float, nargs="*", default=[0.005, 0.02, 0.10])
    p.add_argument("--norse-samples", type=int, default=None,
                   help="samples Norse runs for the batch-64 row (default 64; --quick 8)")
    p.add_argument("--threads", type=int, default=None, help="torch threads for every simulator (default: torch's)")
    p.add_argument("--norse-threads", type=int, default=1,
                   help="torch threads for Norse (default 1: its batch-1 steps are tiny, and two threads made it "
                        "up to 50x slower on a loaded 2-core machine; 1 is Norse's best case, so the ratio is "
                        "conservative)")
    p.add_argument("--sinabs-threads", type=int, default=None,
                   help="torch threads for Sinabs (default: the engine's, --threads or torch's)")
    p.add_argument("--quick", action="store_true", help="20 ticks, 5 golden ticks, 8 Norse samples")
    p.add_argument("--no-gate", action="store_true", help="do not time s2gate gate on the bundled default")
    p.add_argument("--no-seed-gate", action="store_true", help="do not time the gate on the seed-scale model")
    p.add_argument("--seed-gate-samples", type=int, default=264, help="samples of the seed-scale gate (264)")
    p.add_argument("--seed-gate-workers", type=int, default=None, metavar="N",
                   help="processes of the seed-scale gate: N > 1 runs it on a local Dask cluster of N workers "
                        "(s2gate gate --workers N; same result), 1 serially (default: the number of CPUs)")
    p.add_argument("--cpu-time", action="store_true",
                   help="time on the process CPU clock (requires --threads 1; for a loaded machine)")
    p.add_argument("--json", metavar="OUT", default=None, help="also write every number to OUT (JSON)")
    args = p.parse_args(argv)
    if args.cpu_time:
        if args.threads != 1 or args.norse_threads != 1 or (args.sinabs_threads not in (None, 1)):
            p.error("--cpu-time needs --threads 1 (every simulator on the calling thread)")
        CLOCK[0] = time.process_time
    args.ticks = args.ticks or (20 if args.quick else 100)
    args.golden_ticks = args.golden_ticks or (5 if args.quick else 20)
    args.norse_samples = args.norse_samples or (8 if args.quick else 64)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    if args.sinabs_threads is None:
        args.sinabs_threads = threads
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    log("measuring float32 matmul rate...")
    rate = matmul_rate(threads)
    results: Dict[str, Any] = {"ticks": args.ticks, "density": args.density, "threads": threads,
                               "clock": "process CPU time" if args.cpu_time else "wall time",
                               "cpus": os.cpu_count(), "load_before": os.getloadavg()[0], "matmul": rate,
                               "torch": torch.__version__, "models": []}
    for m in args.models:
        path = model_file(m, args.model_dir)
        if not os.path.exists(path):
            log(f"{m}: {path} does not exist, left out")
            results["models"].append({"model": m, "skipped": f"{path} missing"})
            continue
        name = m if m in GENERATED else os.path.basename(path)[:-4]
        results["models"].append(measure_model(name, path, args, rate, log))
    results["gate"] = {"skipped": "--no-gate"} if args.no_gate else measure_gate(model_dir=args.model_dir, threads=args.threads)
    if args.no_seed_gate:
        results["seed_gate"] = {"skipped": "--no-seed-gate"}
    else:
        log(f"seed-scale gate on {args.seed_gate_samples} samples...")
        workers = args.seed_gate_workers or os.cpu_count() or 1
        results["seed_gate"] = measure_seed_gate(args.seed_gate_samples, threads=args.threads, workers=workers)
    try:
        results["denoise"] = measure_denoise()
    except ImportError as exc:
        results["denoise"] = {"skipped": f"tonic not available: {exc}"}
    results["load_after"] = os.getloadavg()[0]

    done = [r for r in results["models"] if "rows" in r]
    print(f"throughput: {args.ticks} ticks, torch {torch.__version__} on {threads} thread(s), {os.cpu_count()} CPUs, "
          f"load average {results['load_before']:.1f} -> {results['load_after']:.1f} (ratios within this run count)")
    table = [[r["model"], r["simulator"], r["batch"], r["ticks"], f"{r['seconds']:.2f}",
              f"{r['samples_ticks_per_s']:.1f}", r["note"]] for m in done for r in m["rows"]]
    print(tabulate(table, headers=["model", "simulator", "batch", "ticks", "seconds", "samples x ticks / s", "note"]))
    print()
    print(f"float32 matmul: best {rate['gflops']:.1f} GFLOP/s = {rate['macs_per_s'] / 1e9:.1f} G multiply-adds/s "
          f"({', '.join(f'{n}: {g:.1f}' for n, g in rate['per_size_gflops'].items())} GFLOP/s)")
    ratio_rows = []
    fmt = lambda v: "-" if v is None else f"{v:.2f}x"  # noqa: E731
    for m in done:
        d = m["dense"]
        ratio_rows.append([m["model"], m["batch"], f"{100 * m['input_density']:.1f} %",
                           fmt(m.get("ratio_engine_over_sinabs")), fmt(m.get("ratio_float_engine_over_sinabs")),
                           fmt(m.get("ratio_engine_over_norse")), fmt(d["emulator_over_bound"]),
                           fmt(d["float_engine_over_bound"]), fmt(d["emulator_over_int8_bound"]),
                           fmt(d["float32_bound_over_int8_bound"])])
    print(tabulate(ratio_rows, headers=["model", "batch", "input", f"engine / Sinabs (>= {SINABS_TARGET:.0f}x)",
                                        "previous engine / Sinabs", "engine / Norse",
                                        f"engine time / f32 bound (<= {BOUND_TARGET:.0f}x)",
                                        "previous engine / f32 bound", "engine time / int8 bound",
                                        "f32 bound / int8 bound"]))
    print()
    drows = []
    for m in done:
        top = m["density"][-1]
        for r in m["density"]:
            drows.append([m["model"], f"{100 * r['density']:.1f} %", r["batch"], f"{r['seconds']:.2f}",
                          f"{r['samples_ticks_per_s']:.1f}", r["input_spikes"], r["network_spikes"],
                          f"{r['seconds'] / top['seconds']:.2f}", f"{r['seconds_dense_kernel_only']:.2f}",
                          f"{r['event_chunks']} / {r['chunks']}"])
    print("engine against input spike density: time falls with activity (event-driven synapses where the source\n"
          "is sparse, spike rows skipped); the neuron updates (every neuron, every tick, as on the chip) are the floor")
    print(tabulate(drows, headers=["model", "input density", "batch", "seconds", "samples x ticks / s", "input spikes",
                                   "network spikes", "time / time at max", "s, dense kernel only",
                                   "chunks by events"]))
    print()
    g = results["gate"]
    if "skipped" in g:
        print(f"full gate: not timed ({g['skipped']})")
    elif g.get("seconds") is None:
        print(f"full gate: {g['command']} did not finish in {g['timeout']:.0f} s (target {GATE_TARGET_S:.0f} s)")
    else:
        print(f"full gate: {g['command']}: {g['seconds']:.1f} s, exit {g['exit']} (target < {GATE_TARGET_S:.0f} s: "
              f"{'met' if g['seconds'] < GATE_TARGET_S else 'NOT met'})")
    sg = results["seed_gate"]
    if "skipped" in sg:
        print(f"seed-scale gate: not timed ({sg['skipped']})")
    elif sg.get("evaluate_seconds") is None:
        print(f"seed-scale gate: did not finish ({sg})")
    else:
        sec = sg["evaluate_seconds"]
        how = f"{sg['workers']} Dask workers" if sg["workers"] > 1 else "serial"
        print(f"seed-scale gate (evaluate(GateConfig(...)), PTQ + QAT + default sweep, {sg['samples']} samples x 100 "
              f"ticks, {how}): {sec:.1f} s evaluation, {sg['process_seconds']:.1f} s process "
              f"({sg['process_cpu_seconds']:.1f} CPU s), peak memory "
              f"{sg['peak_rss_mib']:.0f} MiB in all, {sg['peak_single_process_rss_mib'] or 0:.0f} MiB the largest process (target <= {SEED_GATE_TARGET_S:.0f} s: "
              f"{'met' if sg['process_seconds'] <= SEED_GATE_TARGET_S else 'NOT met'}); errors: {sg.get('errors') or 'none'}")
    dn = results["denoise"]
    if "skipped" not in dn:
        print(f"Denoise (10 ms, {dn['events']:,} events, 128 x 128): tonic {dn['tonic_seconds']:.3f} s, s2gate "
              f"{dn['s2gate_seconds']:.4f} s = {dn['speedup']:.0f}x (target >= 10x), events identical: {dn['identical']}")
    if args.json:
        from s2common.atomic import write_text_atomic

        write_text_atomic(args.json, json.dumps(results, indent=2, default=float))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
