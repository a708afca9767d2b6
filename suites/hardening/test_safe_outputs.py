"""Safe outputs: an interrupted write never leaves a half-written file where a good one was.

Reports, recordings and quantized models are written through :mod:`s2common.atomic` (a temporary
file beside the target, renamed on success). These tests interrupt real writes midway — by
making the underlying writer emit part of its bytes and then raise ``KeyboardInterrupt``, and
by sending SIGINT / SIGKILL to a subprocess that keeps rewriting a recording — and check that
the previous file is intact and (except after SIGKILL, which no process can clean up after) no
temporary file is left behind. The gate's report also gets its determinism check here, since
it needs the same (expensive) evaluation.
"""
from __future__ import annotations

import copy
import io
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any, Dict, List, Tuple

import numpy as np
import pytest

import s2common.atomic as atomic
from s2common.recording import Recording

REPO = Path(__file__).resolve().parents[2]


def leftovers(folder: Path) -> List[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".tmp-"))


class _HalfWriter(io.RawIOBase):
    """A file object that writes the first half of what it is given, then raises KeyboardInterrupt."""

    def __init__(self, f) -> None:
        self.f = f

    def write(self, data) -> int:
        self.f.write(data[: max(1, len(data) // 2)])
        self.f.flush()
        raise KeyboardInterrupt("simulated Ctrl-C in the middle of a write")

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.f.close()


def interrupt_writes_to(monkeypatch: pytest.MonkeyPatch, basename: str) -> None:
    """Make ``s2common.atomic``'s next write of a temporary file for ``basename`` stop halfway."""
    real_open = open

    def fake_open(path, mode="r", *args, **kw):
        f = real_open(path, mode, *args, **kw)
        if "w" in mode and os.path.basename(str(path)).startswith(f".tmp-{basename}-"):
            return _HalfWriter(f)
        return f

    monkeypatch.setattr(atomic, "open", fake_open, raising=False)


# --------------------------------------------------------------------------- s2common.atomic itself

def test_atomic_path_keeps_previous_file_on_interrupt(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    atomic.write_text_atomic(target, "good\n")
    with pytest.raises(KeyboardInterrupt):
        with atomic.atomic_path(target) as tmp:
            Path(tmp).write_text("half a fi")
            raise KeyboardInterrupt
    assert target.read_text() == "good\n"
    assert leftovers(tmp_path) == []
    atomic.write_bytes_atomic(target, b"new")
    assert target.read_bytes() == b"new" and leftovers(tmp_path) == []


# --------------------------------------------------------------------------- recordings

def _recording(seed: int, batch: int = 2, ticks: int = 50, n: int = 40) -> Recording:
    rng = np.random.default_rng(seed)
    rec = Recording(dt=1e-4, meta={"seed": seed})
    rec.add("lif", "spikes", rng.random((batch, ticks, n)) < 0.2)
    rec.add("lif", "v", rng.normal(size=(batch, ticks, n)).astype(np.float32))
    return rec


def _same(a: Recording, b: Recording) -> bool:
    return all(np.array_equal(a.data[k][o], b.data[k][o]) for k in a.data for o in a.data[k]) and a.meta == b.meta


def test_interrupted_recording_save_keeps_previous(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import nir

    target = tmp_path / "rec.h5"
    good = _recording(1)
    good.save(target)
    before = target.read_bytes()
    real = nir.write_data

    def half_then_interrupt(path, data, *a, **kw):
        real(path, data, *a, **kw)
        with open(path, "r+b") as f:  # leave a truncated HDF5 file in the temporary path
            f.truncate(os.path.getsize(path) // 2)
        raise KeyboardInterrupt

    monkeypatch.setattr(nir, "write_data", half_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        _recording(2).save(target)
    assert target.read_bytes() == before
    assert _same(Recording.load(target), good)
    assert leftovers(tmp_path) == []


# --------------------------------------------------------------------------- quantized models

def test_interrupted_quantized_model_write_keeps_previous(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import nir

    from harness.quantize import quantize_ptq
    from s2common.graph import load_graph, read_flat
    from suites.hardening.make_corpus import carrier, write_nir

    src = tmp_path / "float.nir"
    write_nir(src, carrier("Affine")[0])
    target = tmp_path / "q.nir"
    quantize_ptq(load_graph(src), percentile=100.0, source=str(src)).write(str(target))
    before = target.read_bytes()
    real = nir.write

    def half_then_interrupt(path, graph, *a, **kw):
        real(path, graph, *a, **kw)
        with open(path, "r+b") as f:
            f.truncate(os.path.getsize(path) // 2)
        raise KeyboardInterrupt

    monkeypatch.setattr(nir, "write", half_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        quantize_ptq(load_graph(src), percentile=90.0, source=str(src)).write(str(target))
    assert target.read_bytes() == before
    read_flat(target)  # still a readable NIR file
    assert leftovers(tmp_path) == []


# --------------------------------------------------------------------------- a process killed mid-write

_WRITER = textwrap.dedent("""
    import sys
    sys.path.insert(0, sys.argv[2])
    from suites.hardening.test_safe_outputs import _recording
    target = sys.argv[1]
    big = [_recording(s, batch=8, ticks=400, n=400) for s in (1, 2)]
    print("ready", flush=True)
    k = 0
    while True:          # rewrite the same file until killed
        big[k % 2].save(target)
        k += 1
""")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_killed_writer_leaves_a_complete_file(tmp_path: Path, sig: int) -> None:
    target = tmp_path / "rec.h5"
    p = subprocess.Popen([sys.executable, "-c", _WRITER, str(target), str(REPO)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert p.stdout.readline().strip() == "ready"
        deadline = time.time() + 60
        while not target.exists() and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(0.7)  # several saves in, most likely in the middle of one
        p.send_signal(sig)
        # a KeyboardInterrupt raised inside an h5py finalizer is swallowed ("Exception ignored in ..."),
        # like a user's first Ctrl-C can be: press again until the process ends
        for _ in range(120):
            try:
                p.wait(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                p.send_signal(sig)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    rec = Recording.load(target)  # complete: one of the two recordings, never a mix or a truncation
    assert any(_same(rec, _recording(s, batch=8, ticks=400, n=400)) for s in (1, 2))
    if sig == signal.SIGINT:
        assert leftovers(tmp_path) == [], "KeyboardInterrupt must remove the temporary file"


# --------------------------------------------------------------------------- the gate's report

@pytest.fixture(scope="module")
def gate_result(tmp_path_factory: pytest.TempPathFactory) -> Tuple[Dict[str, Any], list, Any]:
    """One evaluation of the gate on the gate suite's tiny synthetic models (about 5 s)."""
    pytest.importorskip("harness.gate.evaluate")
    from harness.gate.checks import run_checks
    from harness.gate.config import GateConfig
    from harness.gate.evaluate import evaluate
    from suites.gate.synthetic import write_models

    folder = tmp_path_factory.mktemp("gate-models")
    f, q, data = write_models(folder, n=16)
    cfg = GateConfig(model=f, qat_model=q, dataset=data, seed=0, batch_size=8, sweep=(), progress=False)
    ev = evaluate(cfg).to_json()
    return ev, run_checks(ev), cfg


def test_report_files_are_byte_identical(gate_result, tmp_path: Path) -> None:
    from harness.gate.report import write_report

    ev, checks, _ = gate_result
    a = write_report(ev, checks, tmp_path / "a")
    b = write_report(ev, checks, tmp_path / "b")
    assert sorted(a) == sorted(b) and "json" in a
    for key in a:
        assert Path(a[key]).read_bytes() == Path(b[key]).read_bytes(), f"{key} differs between two writes"


@pytest.mark.slow
def test_report_json_is_independent_of_batch_size(gate_result) -> None:
    import dataclasses

    from harness.gate.checks import run_checks
    from harness.gate.evaluate import evaluate
    from harness.gate.report import dumps, report_json

    ev, checks, cfg = gate_result
    ev5 = evaluate(dataclasses.replace(cfg, batch_size=5)).to_json()
    assert dumps(report_json(ev5, run_checks(ev5))) == dumps(report_json(ev, checks))


def test_interrupted_report_write_keeps_previous_report(gate_result, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.gate.report import dumps, report_json, write_report

    ev, checks, _ = gate_result
    folder = tmp_path / "report"
    written = write_report(ev, checks, folder)
    before = {k: Path(p).read_bytes() for k, p in written.items()}
    changed = copy.deepcopy(ev)
    changed["config"]["seed"] = 12345  # a different report, so that "intact" means "the old one"
    assert dumps(report_json(changed, checks)) != dumps(report_json(ev, checks))
    interrupt_writes_to(monkeypatch, "summary.json")
    with pytest.raises(KeyboardInterrupt):
        write_report(changed, checks, folder)
    monkeypatch.undo()
    assert Path(written["json"]).read_bytes() == before["json"], "summary.json was damaged by an interrupted write"
    assert leftovers(folder) == []
    import json

    assert json.loads(Path(written["json"]).read_text())["evaluation"]["config"]["seed"] == ev["config"]["seed"]


# --------------------------------------------------------------------------- output paths that cannot be written

def test_output_path_errors_are_s2gate_errors_and_oserrors(tmp_path: Path) -> None:
    from s2common.errors import OutputError, S2GateError

    with pytest.raises(OutputError) as info:
        atomic.write_text_atomic(tmp_path, "x")  # a directory
    assert isinstance(info.value, S2GateError) and isinstance(info.value, OSError)
    assert info.value.rule == "output-is-directory" and info.value.file == str(tmp_path)
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OSError):  # caches that tolerate OSError keep working
        atomic.write_bytes_atomic(blocker / "below-a-file.bin", b"x")
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("where", ["directory", "below-a-file"])
def test_cli_out_to_an_unwritable_path_is_one_line(where: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from harness.cli import main
    from suites.hardening.make_corpus import carrier, write_nir

    model = tmp_path / "m.nir"
    write_nir(model, carrier("Affine")[0])
    blocker = tmp_path / "file"
    blocker.write_text("")
    out = tmp_path if where == "directory" else blocker / "rec.h5"
    rc = main(["run", str(model), "--ticks", "3", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("s2gate run: error: [") and str(out) in lines[0], err
    assert leftovers(tmp_path) == []
