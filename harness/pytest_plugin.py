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
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

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
    g.addoption("--s2-calibrate", default=None, metavar="CAL.npz",
                help="PTQ with each population's percentile chosen on these samples (array 'spikes', disjoint from the "
                     "test split) instead of --s2-percentile")
    from harness.cli.options import add_threshold_ablation_arguments

    add_threshold_ablation_arguments(g, prefix="s2-")  # --s2-threshold-ablation --s2-threshold-ablation-samples
    g.addoption("--s2-backend", default="emulator", choices=("emulator", "board"),
                help="emulator (default) or board: also run the board and compare it with the emulator")
    g.addoption("--s2-board-host", default=None, metavar="IP", help="the SpiNNaker2 board's Ethernet IP")
    from harness.gate.config import BUDGETS

    g.addoption("--s2-ptq-budget", default=BUDGETS["ptq_budget"], type=float, metavar="PP",
                help=f"max accuracy drop float -> PTQ (pp, {BUDGETS['ptq_budget']})")
    g.addoption("--s2-qat-budget", default=BUDGETS["qat_budget"], type=float, metavar="PP",
                help=f"max accuracy drop Q-SNN float -> int8 (pp, {BUDGETS['qat_budget']})")
    g.addoption("--s2-min-memory-reduction", default=BUDGETS["min_memory_reduction"], type=float, metavar="FRACTION",
                help=f"min weight-memory reduction float32 -> stored codes ({BUDGETS['min_memory_reduction']})")
    g.addoption("--s2-strict", action="store_true", default=False,
                help="judge accuracy by the upper bound of the drop's 95 %% interval, not the point estimate")
    g.addoption("--s2-atoms", action="append", default=None, metavar="POP=N",
                help="max_atoms_per_core of one population for the chip map and design rules (repeatable)")
    g.addoption("--s2-no-auto-atoms", action="store_true", default=False,
                help="do not choose atoms per PE for layers that overflow one PE's SRAM (they then fail memory.fits-chip)")
    g.addoption("--s2-binarize", action="store_true", default=False,
                help="accept event counts in the data and turn them into spikes (x > 0 -> 1); the report says so")
    g.addoption("--s2-seed", default=0, type=int, metavar="S", help="seed of the data and sample order (0)")
    g.addoption("--s2-max-chips", default=None, type=int, metavar="N",
                help="chips of a 48-chip board the PTQ model may use (default 1)")
    g.addoption("--s2-sys-tick", default=None, type=float, metavar="S",
                help="seconds per tick of the realtime check (default 1e-3)")
    g.addoption("--s2-enforce-realtime", action="store_true", default=False,
                help="fail the realtime check when a PE cannot finish a tick in time (default: report only)")
    g.addoption("--s2-workers", default=None, type=int, metavar="N",
                help='shard the evaluation over a local Dask cluster of N processes (pip install "s2gate[dist]")')
    g.addoption("--s2-scheduler", default=None, metavar="ADDRESS",
                help="shard the evaluation over an existing Dask cluster, e.g. tcp://host:8786")
    g.addoption("--s2-profile", default=None, metavar="NAME",
                help="vendor profile of py-spinnaker2 conversion settings (s2emu.profiles; default: the model's "
                     "s2gate.profile metadata, else none)")
    g.addoption("--s2-vendor-semantics-budget", default=None, type=float, metavar="FRACTION",
                help="largest share of float-model spike trains the converter's bias folding may change "
                     "(default: report only)")
    g.addoption("--s2-report", default=None, metavar="DIR",
                help="write summary.json, report.md, report.html and plots into DIR")


def pytest_configure(config: pytest.Config) -> None:
    from harness.flags import use_interface

    use_interface("pytest")  # hints name --s2-* options from here on
    if not hasattr(config, "workerinput"):
        _SESSION["config"] = config
    config.addinivalue_line("markers", "s2gate_check: a check of the s2gate deployment gate (uses the session evaluation)")


_STARTED = pytest.StashKey[float]()


def pytest_sessionstart(session: pytest.Session) -> None:
    """A user's ``--s2-dataset FILE.npz`` that is not spikes and labels stops the session with one
    error line naming the file (pytest's usage error), before any test runs: not one error per
    check and no summary."""
    import time

    config = session.config
    if hasattr(config, "workerinput"):
        return  # the controller already checked
    config.stash[_STARTED] = time.perf_counter()  # the report's wall time
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
    """The :class:`~harness.gate.config.GateConfig` the command line asks for (:func:`~harness.gate.config.build_config`)."""
    from harness.gate.config import build_config

    opt = config.getoption
    return build_config(
        model=opt("--s2-model"), qat_model=opt("--s2-qat-model"), dataset=opt("--s2-dataset"),
        data_root=opt("--s2-data-root"), samples=opt("--s2-samples"), percentile=opt("--s2-percentile"),
        backend=opt("--s2-backend"), board_host=opt("--s2-board-host"), ptq_budget=opt("--s2-ptq-budget"),
        qat_budget=opt("--s2-qat-budget"), min_memory_reduction=opt("--s2-min-memory-reduction"),
        report=opt("--s2-report"), seed=opt("--s2-seed"), atoms=opt("--s2-atoms"),
        no_auto_atoms=opt("--s2-no-auto-atoms"), strict=opt("--s2-strict"),
        binarize=opt("--s2-binarize"), profile=opt("--s2-profile"),
        vendor_semantics_budget=opt("--s2-vendor-semantics-budget"), calibrate=opt("--s2-calibrate"),
        threshold_ablation=opt("--s2-threshold-ablation") or None,
        threshold_ablation_samples=opt("--s2-threshold-ablation-samples"),
        max_chips=opt("--s2-max-chips"), sys_tick=opt("--s2-sys-tick"), enforce_realtime=opt("--s2-enforce-realtime") or None)


def _shared_root(config: pytest.Config) -> Path:
    """A folder that the controller and all xdist workers of this session share."""
    base = config._tmp_path_factory.getbasetemp()  # type: ignore[attr-defined]
    return base.parent if hasattr(config, "workerinput") else base


def _result_path(config: pytest.Config, gate_config: Any) -> Path:
    return _shared_root(config) / f"s2gate-evaluation-{gate_config.digest()[:24]}.json"


def load_or_evaluate(config: pytest.Config, gate_config: Any) -> Any:
    """The evaluation for ``gate_config``: read from the session's shared file, or computed
    (under a file lock, once per session) and written there."""
    import filelock

    from harness.gate.evaluate import evaluate
    from s2common.atomic import write_text_atomic

    from harness.gate.results import Evaluation

    path = _result_path(config, gate_config)
    with filelock.FileLock(str(path) + ".lock"):
        if not path.exists():
            from harness.gate.report import dumps

            workers, scheduler = config.getoption("--s2-workers"), config.getoption("--s2-scheduler")
            if workers is not None or scheduler is not None:  # the batches on a Dask cluster (same result)
                from harness.distributed import cluster_client, evaluate_distributed

                with cluster_client(workers=workers, scheduler=scheduler) as client:
                    ev = evaluate_distributed(gate_config, client)
            else:
                ev = evaluate(gate_config)
            write_text_atomic(path, dumps(ev.to_json()))
        # the JSON round trip is what everyone else reads: return exactly that
        return Evaluation.from_json(json.loads(path.read_text(encoding="utf-8")))


@pytest.fixture(scope="session")
def s2gate_config(pytestconfig: pytest.Config) -> Any:
    """The gate's configuration from the ``--s2-*`` options."""
    return config_from_options(pytestconfig)


@pytest.fixture(scope="session")
def s2gate_evaluation(pytestconfig: pytest.Config, s2gate_config: Any) -> Any:
    """The :class:`~harness.gate.results.Evaluation` of the configured models (computed once per
    session, shared by xdist workers as JSON: ``Evaluation.to_json`` / ``from_json``).

    Never raises for bad user input: errors are recorded per section and the checks that need
    them fail with the one-line message.
    """
    return session_evaluation(pytestconfig)


def check_properties(check: Any) -> List[Tuple[str, Any]]:
    """The (name, value) pairs a check records for JUnit (``record_property``): what it
    measured, against which budget, the verdict and the layer it blames."""
    props: List[Tuple[str, Any]] = [("check", check.name), ("measured", check.measured), ("budget", check.budget),
                                    ("verdict", check.verdict)]
    if check.value is not None:
        props.append(("value", check.value))
    if check.layer:
        props.append(("layer", check.layer))
    return props


def assert_check(ev: Any, name: str, record: Optional[Callable[[str, Any], None]] = None) -> None:
    """Pass, skip (with the reason) or fail (with the check's one-line message, no traceback).

    ``record`` (pytest's ``record_property`` fixture, or an item's ``user_properties.append``)
    receives the check's measured values for the JUnit XML before the verdict is given.
    """
    from harness.gate.checks import FAIL, SKIP, run_check

    check = run_check(ev, name)
    if record is not None:
        for key, value in check_properties(check):
            record(key, value)
    if check.verdict == SKIP:
        pytest.skip(check.message)
    if check.verdict == FAIL:
        pytest.fail(check.message, pytrace=False)


# ----------------------------------------------------------------------------- the checks as test items

class GateChecks:
    """Put one in a test module (``s2gate = GateChecks()``) to collect the gate's checks there.

    Each check becomes one test whose name is the check's name (``equivalence.ptq``, ...), so
    test ids, JUnit names and ``summary.json`` agree; the JUnit classname is the module plus
    the attribute's name (``suites.gate.test_gate_checks.s2gate``).
    """

    def __init__(self, names: Optional[Sequence[str]] = None) -> None:
        self.names = None if names is None else tuple(names)


def pytest_pycollect_makeitem(collector: Any, name: str, obj: Any) -> Any:
    if isinstance(obj, GateChecks):
        kw: Dict[str, Any] = {}
        if not collector.nodeid:
            # a module outside the rootdir (``pytest --pyargs harness.gate.suite`` from a user's
            # repository) has an empty node id, and JUnit's classname would be ".s2gate"
            parts = collector.path.parts
            base = "/".join(parts[-3:]) if parts[-3:] == ("harness", "gate", "suite.py") else collector.path.name
            kw["nodeid"] = f"{base}::{name}"
        return GateCheckCollector.from_parent(collector, name=name, names=obj.names, **kw)
    return None


class GateCheckCollector(pytest.Collector):
    """The gate's checks of one module, in :data:`harness.gate.checks.CHECK_NAMES` order."""

    def __init__(self, *, names: Optional[Sequence[str]] = None, **kw: Any) -> None:
        super().__init__(**kw)
        self.names = names

    def collect(self) -> List["GateCheckItem"]:
        from harness.gate.checks import CHECK_NAMES

        return [GateCheckItem.from_parent(self, name=n) for n in (self.names or CHECK_NAMES)]


class GateCheckItem(pytest.Item):
    """One check of the gate: reads the session's evaluation, records its measured values as JUnit
    properties, then passes, skips with the reason or fails with the check's one-line message."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.add_marker(pytest.mark.s2gate_check)

    def runtest(self) -> None:
        ev = session_evaluation(self.config)
        try:
            assert_check(ev, self.name, record=lambda k, v: self.user_properties.append((k, v)))
        except pytest.skip.Exception as exc:  # report the skip at the check, not inside the plugin
            raise pytest.skip.Exception(exc.msg, _use_item_location=True) from None

    def reportinfo(self):  # type: ignore[override]
        return self.path, 0, f"s2gate check {self.name}"



_EVALUATION = pytest.StashKey[Dict[str, Any]]()
_ANNOUNCED = pytest.StashKey[bool]()
#: the controller's config, for pytest_runtest_logstart (a hook without a config argument)
_SESSION: Dict[str, Any] = {}


def _announce(config: pytest.Config, text: str) -> None:
    """One line on the terminal (the controller's), once per session."""
    if config.stash.get(_ANNOUNCED, False):
        return
    config.stash[_ANNOUNCED] = True
    tr = config.pluginmanager.getplugin("terminalreporter")
    if tr is not None:
        tr.ensure_newline()
        tr.write_line(text)


def _what(gate_config: Any) -> str:
    samples = f"the first {gate_config.samples} samples of " if gate_config.samples else ""
    return (f"{os.path.basename(gate_config.model)} + {os.path.basename(str(gate_config.qat_model))} on "
            f"{samples}{os.path.basename(str(gate_config.dataset))}/{gate_config.split}")


def session_evaluation(config: pytest.Config) -> Dict[str, Any]:
    """The session's evaluation (computed once per session, shared by xdist workers).

    Outside xdist the process that computes it shows tqdm progress bars on the terminal
    (output capture is suspended meanwhile); under xdist the controller announces the wait
    (:func:`pytest_runtest_logstart`).
    """
    if _EVALUATION not in config.stash:
        gate_config = config_from_options(config)
        capman = config.pluginmanager.getplugin("capturemanager")
        if not hasattr(config, "workerinput") and capman is not None \
                and not _result_path(config, gate_config).exists():
            with capman.global_and_fixture_disabled():
                _announce(config, f"s2gate: evaluating {_what(gate_config)} once for all checks")
                config.stash[_EVALUATION] = load_or_evaluate(config, gate_config.replace(progress=True))
        else:
            config.stash[_EVALUATION] = load_or_evaluate(config, gate_config)
    return config.stash[_EVALUATION]


def pytest_runtest_logstart(nodeid: str, location: Tuple[str, Optional[int], str]) -> None:
    """Under xdist (on the controller): say once that the checks wait for the one evaluation."""
    config = _SESSION.get("config")
    if config is None or not str(location[2]).startswith("s2gate check ") \
            or not config.pluginmanager.hasplugin("dsession"):
        return
    try:
        what = _what(config_from_options(config))
    except Exception:  # noqa: BLE001 - a bad option is reported by the checks themselves
        what = "the configured models"
    _announce(config, f"s2gate: one worker evaluates {what} once; the checks wait for it")


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

    checks = run_checks(ev, {"strict": bool(config.getoption("--s2-strict"))})
    terminalreporter.section("s2gate summary")
    for line in terminal_summary(ev, checks).splitlines():
        terminalreporter.write_line(line)
    folder = config.getoption("--s2-report")
    if folder:
        try:
            import time

            from harness.gate.report import collect_provenance

            started = config.stash.get(_STARTED, None)
            wall = None if started is None else time.perf_counter() - started
            written = write_report(ev, checks, folder, provenance=collect_provenance(ev.config if hasattr(ev, "config")
                                                                                     else ev.get("config", {}), wall))
        except OSError as exc:
            terminalreporter.write_line(f"s2gate report: could not write into {folder}: {exc}", red=True)
            return
        terminalreporter.write_line(f"s2gate report: {written['html']} ({written['json']}, {written['markdown']})")
