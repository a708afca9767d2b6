"""Code and docs name no path of a particular machine: they cite ``../shared/design/...`` (the
shared folder next to the clone) or the public source (repository, file, function)."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import List

from suites.fixtures import REPO

#: an absolute path into a machine's home or work folders (built so this file does not match itself)
MACHINE_PATH = re.compile(r"(?<![\w.~])/(?:" + "|".join(["wo" + "rk", "ro" + "ot", "ho" + "me"]) + r")/\S")
TEXT = {".py", ".md", ".toml", ".cfg", ".ini", ".json", ".sh", ".txt", ".yml", ".yaml", ".rst", ""}


def machine_paths(text: str) -> List[str]:
    """Lines of ``text`` that name a machine path."""
    return [line.strip() for line in text.splitlines() if MACHINE_PATH.search(line)]


def _tracked() -> List[Path]:
    try:
        out = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True, timeout=60).stdout
        return [REPO / p for p in out.splitlines()]
    except (OSError, subprocess.CalledProcessError):
        skip = {".git", ".venv", ".asv", "__pycache__", "s2gate-report"}
        return [p for p in REPO.rglob("*") if p.is_file() and not skip & set(p.relative_to(REPO).parts)]


def test_the_rule_finds_machine_paths_and_spares_relative_ones():
    home = "/" + "home"
    work = "/" + "work"
    assert machine_paths(f"see {work}/shared/design/architecture.md") != []
    assert machine_paths(f"cache in {home}/user/.cache") != []
    assert machine_paths("see ../shared/design/architecture.md, ~/.cache/s2gate, /tmp/x") == []
    assert machine_paths(f"rockpool/nn/modules/torch/lif_torch.py, https://github.com/a{work}/b") == []


def test_no_machine_paths_in_code_or_docs():
    found = []
    for path in _tracked():
        if path.suffix not in TEXT or not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        found += [f"{path.relative_to(REPO)}: {line}" for line in machine_paths(text)]
    assert found == []
