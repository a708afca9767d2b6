"""``s2gate import IN.nir -o OUT.nir [--framework NAME]``: repair a framework's NIR export for the gate.

Reads ``IN.nir`` without nir's type check (so that files which fail it, such as the NIR paper's
``lif_rockpool.nir``, can be repaired), runs :func:`harness.intake.clean`, prints every repair
(one per line) and writes the cleaned graph. With ``--framework`` the graph's metadata names the
reference preset the gate judges the float model in (``s2gate.preset``) and its tick (``s2gate.dt``).

Exit codes: 0 written; 2 the file cannot be read or its intent is ambiguous (one line says why).
"""
from __future__ import annotations

import argparse


def add_parser(subparsers: "argparse._SubParsersAction") -> argparse.ArgumentParser:
    from harness.cli.options import add_model_argument, add_subcommand, output_file
    from harness.intake.frameworks import FRAMEWORKS

    p = add_subcommand(subparsers, "import", "repair a framework's NIR export (tensors, batch axes, missing shapes) "
                                             "and name its reference preset", __doc__)
    add_model_argument(p, "NIR file written by a framework's exporter")
    p.add_argument("-o", "--out", dest="output", metavar="OUT.nir", required=True, type=output_file,
                   help="where the cleaned graph is written")
    p.add_argument("--framework", choices=sorted(FRAMEWORKS), default=None,
                   help="the framework that exported it: sets s2gate.preset and s2gate.dt to its semantics "
                        "(default: none, shapes and types repaired only)")
    return p


def run(args: argparse.Namespace) -> int:
    from harness.intake import clean
    from harness.quantize import write_graph
    from s2common.graph import load_graph

    graph = load_graph(args.model, isolate=True)
    try:
        cleaned, repairs = clean(graph, args.framework)
    except Exception as err:
        from s2common.errors import S2GateError

        if isinstance(err, S2GateError):
            raise err.with_file(args.model)
        raise
    for r in repairs:
        print(f"repaired {r}")
    meta = cleaned.metadata
    if "s2gate.preset" in meta:
        print(f"preset {meta['s2gate.preset']} (framework {meta['s2gate.framework']}), dt {meta['s2gate.dt']:g} s")
    write_graph(cleaned, args.output)
    print(f"{args.model}: {len(repairs)} repair(s); written to {args.output}")
    return 0
