"""Paths to test fixtures.

Third-party NIR graphs and traces (the NIR paper's material, see their README for
provenance) live in ``shared/fixtures/third_party`` beside the repository; CI clones the
repository next to a copy of ``shared/``. ``S2GATE_THIRD_PARTY`` overrides the location.
"""
from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
THIRD_PARTY = Path(os.environ.get("S2GATE_THIRD_PARTY", REPO.parent / "shared" / "fixtures" / "third_party"))


def third_party(name: str) -> Path:
    """Path of a third-party fixture file; skips the calling test if it is absent."""
    path = THIRD_PARTY / name
    if not path.exists():
        import pytest

        pytest.skip(f"third-party fixture {name} not found in {THIRD_PARTY} (set S2GATE_THIRD_PARTY)")
    return path
