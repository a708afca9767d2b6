"""Atomic file writes: write to a temporary file beside the target, then rename.

An interrupted run never leaves a half-written file where a good one was.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from typing import Iterator

from .errors import OutputError


@contextlib.contextmanager
def atomic_path(path: "str | os.PathLike[str]", suffix: str = "") -> Iterator[str]:
    """Yield a temporary path in the target's folder; on success rename it onto ``path``.

    On any exception (including KeyboardInterrupt) the temporary file is removed and
    ``path`` keeps its previous content. A target that is a directory, or a folder that cannot
    be written, raises :class:`~s2common.errors.OutputError` (an ``S2GateError`` and an ``OSError``).
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise OutputError("is a directory; give a file name to write to", file=path, rule="output-is-directory")
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-" + os.path.basename(path) + "-", suffix=suffix, dir=folder)
    except OSError as exc:
        raise OutputError(f"cannot write into {folder} ({exc.strerror or exc})", file=path,
                          hint="choose a writable folder") from exc
    try:  # from here on an interrupt removes the temporary file
        os.close(fd)
        yield tmp
        try:
            # mkstemp makes the file 0600; give it the mode a plain open() would (0666 & ~umask)
            os.chmod(tmp, 0o666 & ~_umask())
            os.replace(tmp, path)
        except OSError as exc:
            raise OutputError(f"cannot replace the file ({exc.strerror or exc})", file=path) from exc
    except BaseException:
        _remove_despite_interrupts(tmp)
        raise


def _remove_despite_interrupts(tmp: str) -> None:
    """Remove ``tmp`` even if Ctrl-C is pressed again while it is being removed.

    The caller re-raises the exception that brought it here (often the first KeyboardInterrupt),
    so a further KeyboardInterrupt during the removal is not lost by retrying; without the retry a
    second Ctrl-C that lands here leaves the temporary file behind.
    """
    while True:
        try:
            with contextlib.suppress(FileNotFoundError):
                os.remove(tmp)
            return
        except KeyboardInterrupt:
            continue


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text_atomic(path: "str | os.PathLike[str]", text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)


def write_bytes_atomic(path: "str | os.PathLike[str]", data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
