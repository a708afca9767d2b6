"""The ``s2gate`` command line.

Each subcommand lives in its own module ``harness/cli/<name>.py`` exposing
``add_parser(subparsers) -> argparse.ArgumentParser`` and ``run(args) -> int``. Modules are
imported only when their subcommand runs (except for ``--help`` listings), so that
``s2gate --help`` stays fast (torch, brevitas and tonic are imported lazily).

Errors of the project's own family (:class:`s2common.errors.S2GateError`) are printed as
one line on stderr with exit code 2; ``--debug`` shows the traceback instead. ``--debug`` and
``--version`` work before or after the subcommand.

Options shared by several subcommands are declared once in :mod:`harness.cli.options` (its
docstring says how to add one); a subcommand module calls those builders.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import List, Optional

#: subcommand -> (module, one-line help)
SUBCOMMANDS = {
    "run": ("harness.cli.run", "simulate a NIR graph on the reference or the emulator and print per-node spike counts"),
    "map": ("harness.cli.map", "map a NIR graph onto SpiNNaker2 PEs and print the memory table"),
    "quantize": ("harness.cli.quantize", "post-training quantization of a NIR graph to int8 (writes a quantized NIR file)"),
    "train": ("harness.cli.train", "train the bundled P-SNN / Q-SNN and export them to NIR"),
    "gate": ("harness.cli.gate", "run the deployment gate (equivalence, accuracy, memory, design rules)"),
    "sweep": ("harness.cli.sweep", "accuracy against PTQ percentile, with a plot"),
    "compare": ("harness.cli.compare", "compare two recordings and print the first divergence"),
    "vectors": ("harness.cli.vectors", "write test vectors (inputs + expected emulator recording) for a board run"),
    "import": ("harness.cli.intake", "repair a framework's NIR export (tensors, batch axes, missing shapes) and name its preset"),
}


def _load(name: str):
    module, _ = SUBCOMMANDS[name]
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name == module:
            return None
        raise


def build_parser(only: Optional[str] = None) -> argparse.ArgumentParser:
    """The top-level parser; with ``only`` set, only that subcommand's module is imported."""
    from harness.cli.options import add_global_arguments

    parser = argparse.ArgumentParser(prog="s2gate", description="Deployment gate for SNNs going onto SpiNNaker2.")
    add_global_arguments(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in SUBCOMMANDS.items():
        mod = _load(name) if (only is None or only == name) else None
        if mod is not None and hasattr(mod, "add_parser"):
            p = mod.add_parser(sub)
        else:
            p = sub.add_parser(name, help=help_text)
        add_global_arguments(p)
        p.set_defaults(_module=name)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of the ``s2gate`` console script. Returns the exit code."""
    from harness.flags import interface_in_use

    with interface_in_use("cli"):  # hints name this interface's flags (--board-host, not --s2-board-host)
        return _main(list(sys.argv[1:] if argv is None else argv))


def _main(argv: List[str]) -> int:
    from s2common.errors import S2GateError

    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(only=command if command in SUBCOMMANDS else "__none__")
    try:
        args = parser.parse_args(argv)  # path types (harness.cli.options.output_file) raise S2GateError
    except S2GateError as err:
        if "--debug" in argv:
            raise
        print(f"s2gate{' ' + command if command else ''}: error: {err}", file=sys.stderr)
        return 2
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    mod = _load(args.command)
    if mod is None or not hasattr(mod, "run"):
        print(f"s2gate: '{args.command}' is not available in this build", file=sys.stderr)
        return 2
    try:
        return int(mod.run(args) or 0)
    except S2GateError as err:
        if args.debug:
            raise
        print(f"s2gate {args.command}: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # the reader went away (e.g. `s2gate map m.nir | head`): not an error of ours
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print(f"s2gate {args.command}: interrupted; files already written are intact", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
