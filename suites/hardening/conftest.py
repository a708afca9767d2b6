"""Fixtures of the hardening suite: the generated bad-input corpus.

The corpus is written once per session into a pytest temporary folder (see
``suites/hardening/make_corpus.py`` for why it is generated rather than committed). The
end-of-run table of what each file got lives in ``suites/hardening/summary.py``.
"""
from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder holding the whole bad-input corpus (written once per session and worker)."""
    from suites.hardening.make_corpus import build_corpus

    out = tmp_path_factory.mktemp("corpus")
    build_corpus(out)
    return out
