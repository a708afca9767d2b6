"""One exception family for s2gate.

Every error a user can cause (a bad file, an unsupported graph, a design-rule
violation, missing data) is an :class:`S2GateError`. Its message names the file,
node or edge and the rule, and carries a one-line hint. The CLI prints
``str(error)`` on one line and exits with code 2; ``--debug`` shows the traceback.
"""
from __future__ import annotations

from typing import Optional


class S2GateError(Exception):
    """Base class of every error s2gate raises on purpose.

    Args:
        message: what is wrong, in one sentence.
        file: the file involved, if any.
        node: the NIR node (dotted name) or edge (``"a -> b"``) involved, if any.
        rule: a short machine-readable rule name (e.g. ``"nan-parameter"``).
        hint: what the user can do about it, in one line.
    """

    rule_default = "error"

    def __init__(
        self,
        message: str,
        *,
        file: Optional[str] = None,
        node: Optional[str] = None,
        rule: Optional[str] = None,
        hint: Optional[str] = None,
    ) -> None:
        self.message = message
        self.file = None if file is None else str(file)
        self.node = node
        self.rule = rule or self.rule_default
        self.hint = hint
        super().__init__(self.one_line())

    def one_line(self) -> str:
        """The error as one line: ``[rule] file: node 'x': message (hint: ...)``."""
        parts = [f"[{self.rule}]"]
        where = []
        if self.file:
            where.append(f"{self.file}:")
        if self.node:
            where.append(f"node '{self.node}':")
        parts.extend(where)
        parts.append(self.message)
        text = " ".join(parts)
        if self.hint:
            text += f" (hint: {self.hint})"
        return text.replace("\n", " ")

    def with_file(self, file: str) -> "S2GateError":
        """Return the same error with ``file`` filled in (if it was not set)."""
        if self.file is None:
            self.file = str(file)
            self.args = (self.one_line(),)
        return self


class InvalidGraphError(S2GateError):
    """The NIR file or graph is malformed: unreadable, missing parameters, shapes that do not chain, NaN..."""

    rule_default = "invalid-graph"


class UnsupportedError(S2GateError):
    """The graph is valid NIR but uses something this tool does not implement."""

    rule_default = "unsupported"


class DesignRuleError(S2GateError):
    """The graph cannot run on SpiNNaker2 as given (one or more named design rules fail)."""

    rule_default = "design-rule"

    def __init__(self, message: str, *, violations: Optional[list] = None, **kw) -> None:
        self.violations = list(violations or [])
        super().__init__(message, **kw)


class InputDataError(S2GateError):
    """Input spikes/arrays given by the user do not fit the graph (shape, dtype, NaN)."""

    rule_default = "bad-input"


class DataNotFoundError(S2GateError):
    """A dataset or file the user pointed to is missing or incomplete."""

    rule_default = "data-not-found"


class QuantizationError(S2GateError):
    """A graph cannot be quantized as asked (all-zero weights, bad percentile, ...)."""

    rule_default = "quantization"


class OutputError(S2GateError, OSError):
    """An output file cannot be written (the path is a directory, the folder is read-only, the disk is full).

    It is also an :class:`OSError`, so code that tolerates an unwritable cache (``except OSError``)
    keeps working.
    """

    rule_default = "cannot-write"
