"""The bad-input corpus table printed at the end of a pytest run (also under pytest-xdist).

Corpus tests call :func:`record_result` (file, channel, what error it got). The rows travel
with each test's report (``user_properties``), so the xdist controller sees every worker's
rows; :func:`pytest_terminal_summary` prints them as one tabulate table. The hooks are
registered by ``suites/conftest.py`` (a sub-folder conftest is not loaded by the xdist
controller).
"""
from __future__ import annotations

from typing import List, Tuple

import pytest

_KEY = "s2gate-hardening-corpus"
#: rows recorded by the test that is running in this process
_PENDING: List[Tuple[str, str, str]] = []
#: rows of every finished test (in the controller under xdist)
CORPUS_RESULTS: List[Tuple[str, str, str]] = []


def record_result(name: str, channel: str, outcome: str) -> None:
    """Remember what error corpus file ``name`` got through ``channel`` (read_flat, s2gate run, ...)."""
    _PENDING.append((name, channel, outcome.replace("\n", " ")))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):  # noqa: ANN001
    outcome = yield
    report = outcome.get_result()
    if _PENDING and report.when in ("call", "setup", "teardown"):
        report.user_properties.extend((_KEY, row) for row in _PENDING)
        _PENDING.clear()


def pytest_runtest_logreport(report) -> None:  # noqa: ANN001
    for key, value in getattr(report, "user_properties", ()):
        if key == _KEY:
            CORPUS_RESULTS.append(tuple(value))


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # noqa: ANN001
    if not CORPUS_RESULTS:
        return
    from tabulate import tabulate

    rows = sorted(set(CORPUS_RESULTS))
    width = 150
    table = tabulate([(f, c, (o if len(o) <= width else o[: width - 3] + "...")) for f, c, o in rows],
                     headers=["corpus file", "through", "error it got"])
    terminalreporter.write_sep("=", f"bad-input corpus: {len({r[0] for r in rows})} files, {len(rows)} checks")
    terminalreporter.write_line(table)
