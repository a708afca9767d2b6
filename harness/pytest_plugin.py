"""s2gate's pytest plugin: ``pytest suites/`` (or ``pytest --pyargs harness.gate.suite``) is the gate.

Registered as the ``pytest11`` entry point ``s2gate``, so any ``pytest`` finds it once s2gate is
installed. It adds the ``--s2-*`` options, the session fixtures ``s2gate_config`` and
``s2gate_evaluation`` that the gate's checks use, and, at the end of the run, the summary:
each check's measured value, budget and verdict, the accuracies, the equivalence figures and
NeuroBench's figures (tabulate), plus JSON / Markdown / HTML files with ``--s2-report DIR``.

The evaluation is expensive and runs at most once per pytest session, whatever the number of
xdist workers: the first worker that needs it computes it under a file lock and stores it as
JSON in the session's temporary root (shared by all workers), keyed by
:meth:`harness.gate.config.GateConfig.digest`; the others (and the controller, for the
summary) read that file. Numbers are the same with and without ``-n``.

Heavy modules (torch, brevitas, tonic, the simulators) are imported only when the evaluation
runs, so collection stays fast.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, Optional

import pytest

_GROUP = "s2gate"


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup(_GROUP, "s2gate deployment gate (defaults: the bundled P-SNN / Q-SNN on the stand-in test split)")
    g.addoption("--s2-model", default=None, metavar="NIR",
                help="float P-SNN to quantize with PTQ (default: the bundled psnn.nir)")
    g.addoption("--s2-qat-model", default=None, metavar="NIR",
                help="quantized Q-SNN (int8 weights, chip-unit thresholds) (default: the bundled qsnn.nir; 'none' skips QAT)")
    g.addoption("--s2-dataset", default="stand-in", metavar="NAME",
                help="stand-in | dvsgesture | PATH.npz with arrays 'spikes' (N, T, *input_shape) and 'labels' (N,)")
    g.addoption("--s2-data-root", default=None, metavar="DIR", help="folder of the local DVS Gesture copy")
    g.addoption("--s2-samples", default=None, type=int, metavar="N", help="use the first N samples (default: all)")
    g.addoption("--s2-percentile", default=100.0, type=float, metavar="P", help="PTQ weight-scale percentile (default 100)")
    g.addoption("--s2-backend", default="emulator", choices=("emulator", "board"),
                help="emulator (default) or board: also run the board and compare it with the emulator")
    g.addoption("--s2-board-host", default=None, metavar="IP", help="the SpiNNaker2 board's Ethernet IP")
    g.addoption("--s2-ptq-budget", default=1.1, type=float, metavar="PP", help="max accuracy drop float -> PTQ (pp, 1.1)")
    g.addoption("--s2-qat-budget", default=0.6, type=float, metavar="PP", help="max accuracy drop Q-SNN float -> int8 (pp, 0.6)")
    g.addoption("--s2-min-memory-reduction", default=0.75, type=float, metavar="FRACTION",
                help="min weight-memory reduction float32 -> int8 (0.75)")
    g.addoption("--s2-atoms", action="append", default=None, metavar="POP=N",
                help="max_atoms_per_core of one population for the chip map and design rules (repeatable)")
    g.addoption("--s2-no-auto-atoms", action="store_true", default=False,
                help="do not choose atoms per PE for layers that overflow one PE's SRAM (they then fail memory.fits-chip)")
    g.addoption("--s2-binarize", action="store_true", default=False,
                help="accept event counts in the data and turn them into spikes (x > 0 -> 1); the report says so")
    g.addoption("--s2-seed", default=0, type=int, metavar="S", help="seed of the data and sample order (0)")
    g.addoption("--s2-report", default=None, metavar="DIR",
                help="write summary.json, report.md, report.html and plots into DIR")


def pytest_configure(config: pytest.Config) -> None:
    from harness.flags import use_interface

    use_interface("pytest")  # hints name --s2-* options from here on
    config.addinivalue_line("markers", "s2gate_check: a check of the s2gate deployment gate (uses the session evaluation)")


def pytest_sessionstart(session: pytest.Session) -> None:
    """A user's ``--s2-dataset FILE.npz`` that is not spikes and labels stops the session with one
    error line naming the file (pytest's usage error), before any test runs: not one error per
    check and no summary."""
    config = session.config
    if hasattr(config, "workerinput"):
        return  # the controller already checked
    ds = config.getoption("--s2-dataset", default="stand-in")
    if ds in ("stand-in", "dvsgesture") or not ds:
        return
    from harness.data.checks import precheck
    from s2common.errors import S2GateError

    try:
        precheck(config_from_options(config))
    except S2GateError as err:
        raise pytest.UsageError(f"s2gate: {err}") from None


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list) -> None:
    """Run the gate's checks first, and keep them on one xdist worker under ``--dist loadgroup``.

    The checks share one expensive evaluation. Serially their position does not matter; with
    ``-n 2 --dist loadgroup`` one worker computes the evaluation while the other runs the rest
    of the suite. (Under plain ``--dist load`` the on-disk result with its file lock still makes
    the evaluation run once, but a second worker that gets a check waits for it.)
    """
    gate = [i for i in items if i.get_closest_marker("s2gate_check") is not None]
    if not gate:
        return
    for item in gate:
        item.add_marker(pytest.mark.xdist_group("s2gate"))
    ids = {id(i) for i in gate}
    items[:] = gate + [i for i in items if id(i) not in ids]


def config_from_options(config: pytest.Config) -> "Any":
    """The :class:`~harness.gate.config.GateConfig` the command line asks for."""
    from harness.gate.config import GateConfig, parse_atoms

    opt = config.getoption
    kw: Dict[str, Any] = dict(
        dataset=opt("--s2-dataset"), data_root=opt("--s2-data-root"), samples=opt("--s2-samples"),
        percentile=opt("--s2-percentile"), backend=opt("--s2-backend"), board_host=opt("--s2-board-host"),
        ptq_budget=opt("--s2-ptq-budget"), qat_budget=opt("--s2-qat-budget"),
        min_memory_reduction=opt("--s2-min-memory-reduction"), report=opt("--s2-report"), seed=opt("--s2-seed"),
        atoms_per_core=parse_atoms(opt("--s2-atoms")), auto_atoms=not opt("--s2-no-auto-atoms"),
        binarize=bool(opt("--s2-binarize")))
    if opt("--s2-model"):
        kw["model"] = os.path.abspath(opt("--s2-model"))
    qat = opt("--s2-qat-model")
    if qat:
        kw["qat_model"] = None if qat.lower() == "none" else os.path.abspath(qat)
    if kw["data_root"]:
        kw["data_root"] = os.path.abspath(kw["data_root"])
    ds = kw["dataset"]
    if ds not in ("stand-in", "dvsgesture"):
        kw["dataset"] = os.path.abspath(ds)
    return GateConfig(**kw)


def _shared_root(config: pytest.Config) -> Path:
    """A folder that the controller and all xdist workers of this session share."""
    base = config._tmp_path_factory.getbasetemp()  # type: ignore[attr-defined]
    return base.parent if hasattr(config, "workerinput") else base


def _result_path(config: pytest.Config, gate_config: Any) -> Path:
    return _shared_root(config) / f"s2gate-evaluation-{gate_config.digest()[:24]}.json"


def load_or_evaluate(config: pytest.Config, gate_config: Any) -> Dict[str, Any]:
    """The evaluation for ``gate_config``: read from the session's shared file, or computed
    (under a file lock, once per session) and written there."""
    import filelock

    from harness.gate.evaluate import evaluate
    from s2common.atomic import write_text_atomic

    path = _result_path(config, gate_config)
    with filelock.FileLock(str(path) + ".lock"):
        if path.exists():
            return json.loads(path.read_text(encoding="utf-8"))
        ev = evaluate(gate_config)
        from harness.gate.report import dumps

        write_text_atomic(path, dumps(ev))
        # the JSON round trip is what everyone else reads: return exactly that
        return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def s2gate_config(pytestconfig: pytest.Config) -> Any:
    """The gate's configuration from the ``--s2-*`` options."""
    return config_from_options(pytestconfig)


@pytest.fixture(scope="session")
def s2gate_evaluation(pytestconfig: pytest.Config, s2gate_config: Any) -> Dict[str, Any]:
    """The evaluation of the configured models (computed once per session, shared by xdist workers).

    Never raises for bad user input: errors are recorded per section and the checks that need
    them fail with the one-line message.
    """
    return load_or_evaluate(pytestconfig, s2gate_config)


def assert_check(ev: Dict[str, Any], name: str) -> None:
    """Pass, skip (with the reason) or fail (with the check's one-line message, no traceback)."""
    from harness.gate.checks import FAIL, SKIP, run_check

    check = run_check(ev, name)
    if check.verdict == SKIP:
        pytest.skip(check.message)
    if check.verdict == FAIL:
        pytest.fail(check.message, pytrace=False)


def _finished_evaluation(config: pytest.Config) -> Optional[Dict[str, Any]]:
    """The evaluation a worker (or this process) stored in this session's shared root, if any.

    The file is found by name pattern rather than by recomputing the digest: the digest covers
    the source files, which may change while a long session runs (a developer editing code).
    """
    try:
        root = _shared_root(config)
        found = sorted(root.glob("s2gate-evaluation-*.json"), key=lambda p: p.stat().st_mtime)
    except Exception:  # noqa: BLE001 - the summary must never break a test run
        return None
    if not found:
        return None
    return json.loads(found[-1].read_text(encoding="utf-8"))


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):
        return
    ev = _finished_evaluation(config)
    if ev is None:
        return
    from harness.gate.checks import run_checks
    from harness.gate.report import terminal_summary, write_report

    checks = run_checks(ev)
    terminalreporter.section("s2gate summary")
    for line in terminal_summary(ev, checks).splitlines():
        terminalreporter.write_line(line)
    folder = config.getoption("--s2-report")
    if folder:
        try:
            written = write_report(ev, checks, folder)
        except OSError as exc:
            terminalreporter.write_line(f"s2gate report: could not write into {folder}: {exc}", red=True)
            return
        terminalreporter.write_line(f"s2gate report: {written['html']} ({written['json']}, {written['markdown']})")
