"""Fixtures of the hardening suite: the generated bad-input corpus and the end-of-run corpus table.

The corpus is written once per session into a pytest temporary folder (see
``suites/hardening/make_corpus.py`` for why it is generated rather than committed). Every
corpus test records what error each file got; ``pytest_terminal_summary`` prints them as one
table (tabulate) at the end of the run.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Tuple

import pytest

#: (file, channel, outcome) rows collected by the corpus tests of this process.
CORPUS_RESULTS: List[Tuple[str, str, str]] = []


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder holding the whole bad-input corpus (written once per session)."""
    from suites.hardening.make_corpus import build_corpus

    out = tmp_path_factory.mktemp("corpus")
    build_corpus(out)
    return out


def record_result(name: str, channel: str, outcome: str) -> None:
    """Remember what error ``name`` got through ``channel`` (loader, cli run, plugin...) for the table."""
    CORPUS_RESULTS.append((name, channel, outcome.replace("\n", " ")))


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # noqa: ANN001
    if not CORPUS_RESULTS:
        return
    from tabulate import tabulate

    rows = sorted(CORPUS_RESULTS)
    width = 150
    table = tabulate([(f, c, (o if len(o) <= width else o[: width - 3] + "...")) for f, c, o in rows],
                     headers=["corpus file", "through", "error it got"])
    terminalreporter.write_sep("=", f"bad-input corpus: {len({r[0] for r in rows})} files, {len(rows)} checks")
    terminalreporter.write_line(table)
