"""Name an option the way the interface in use spells it, for hints in error messages.

The same setting has two spellings: ``s2gate gate --board-host IP`` on the command line and
``pytest --s2-board-host IP`` under the pytest plugin. A hint must name the one the user can
type, so messages call :func:`flag` instead of writing either spelling::

    hint=f"pass the board's IP with {flag('board-host')} IP"

The pytest plugin calls :func:`use_interface` with ``"pytest"`` when it is configured; the
command line (and plain Python use) keeps the default ``"cli"``.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

INTERFACES = ("cli", "pytest")
_interface = "cli"


def use_interface(name: str) -> None:
    """Set the interface whose spelling :func:`flag` returns: ``"cli"`` or ``"pytest"``."""
    global _interface
    if name not in INTERFACES:
        raise ValueError(f"interface must be one of {INTERFACES}, got {name!r}")
    _interface = name


@contextlib.contextmanager
def interface_in_use(name: str) -> Iterator[None]:
    """Use interface ``name`` inside the ``with`` block, then restore the previous one
    (``s2gate`` called in-process from a pytest session speaks CLI, and pytest again after)."""
    before = _interface
    use_interface(name)
    try:
        yield
    finally:
        use_interface(before)


def interface() -> str:
    """The interface in use: ``"cli"`` or ``"pytest"``."""
    return _interface


def flag(name: str) -> str:
    """``"board-host"`` -> ``"--board-host"`` (CLI) or ``"--s2-board-host"`` (pytest)."""
    name = name.lstrip("-")
    if name.startswith("s2-"):
        name = name[3:]
    return f"--s2-{name}" if _interface == "pytest" else f"--{name}"
