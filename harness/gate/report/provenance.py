"""Where a report comes from: versions of s2gate, nir and torch, the date, the wall time and the
sha256 of the model and data files.

It is written into ``report.md`` and ``report.html`` only: ``summary.json`` stays a pure
function of the evaluation (the same inputs give the same bytes, serially and with ``-n 2``).
"""
from __future__ import annotations

import datetime
import hashlib
import os
import platform
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Dict, List, Optional

#: distributions whose versions the report names
PACKAGES = ("s2gate", "nir", "torch", "numpy")


@dataclass(frozen=True)
class Provenance:
    """Attributes: versions (distribution -> version), date (UTC, ISO 8601, seconds), wall_seconds
    (the run's wall time, None if not measured), files (role, path, sha256) and python."""

    versions: Dict[str, str]
    date: str
    wall_seconds: Optional[float]
    files: List[Dict[str, str]] = field(default_factory=list)
    python: str = ""

    def rows(self) -> List[List[str]]:
        """(what, value) rows for a table."""
        rows = [[f"{k} version", v] for k, v in self.versions.items()]
        rows.append(["python", self.python])
        rows.append(["date (UTC)", self.date])
        rows.append(["wall time", "-" if self.wall_seconds is None else f"{self.wall_seconds:.1f} s"])
        for f in self.files:
            rows.append([f"{f['role']} sha256", f"{f['sha256']}  ({os.path.basename(f['path'])})"])
        return rows


def sha256_file(path: str) -> str:
    """sha256 of a file's bytes (hex), or ``unreadable (...)``."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})"
    return h.hexdigest()


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def collect(config: Any, wall_seconds: Optional[float] = None, now: Optional[datetime.datetime] = None) -> Provenance:
    """The provenance of a gate run on ``config`` (a GateConfig or its dict)."""
    get = (lambda k: config.get(k)) if isinstance(config, dict) else (lambda k: getattr(config, k, None))
    files = []
    for role, key in (("P-SNN", "model"), ("Q-SNN", "qat_model"), ("dataset", "dataset")):
        path = get(key)
        if path and os.path.isfile(str(path)):
            files.append({"role": role, "path": str(path), "sha256": sha256_file(str(path))})
    when = (now or datetime.datetime.now(datetime.timezone.utc)).replace(microsecond=0)
    return Provenance(versions={p: _version(p) for p in PACKAGES}, date=when.isoformat(), wall_seconds=wall_seconds,
                      files=files, python=platform.python_version())
