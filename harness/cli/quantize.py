"""``s2gate quantize MODEL.nir --percentile P [--per-channel] [--rounding nearest|truncate] -o OUT.nir``.

Post-training quantization of a NIR graph to int8 codes (see :mod:`harness.quantize.ptq`).
Prints the per-layer table (lambda_s, clipped %, max rounding error, bytes before/after)
and the total memory reduction; writes OUT.nir atomically (an existing OUT.nir is left
untouched if anything fails).
"""
from __future__ import annotations

import argparse


def add_parser(subparsers: "argparse._SubParsersAction") -> argparse.ArgumentParser:
    from harness.cli.options import ROUNDINGS, add_model_argument, add_percentile_argument, add_subcommand, output_file

    p = add_subcommand(subparsers, "quantize", "post-training quantization of a NIR graph to int8 (writes a quantized "
                       "NIR file)", __doc__)
    add_model_argument(p, "float NIR graph")
    add_percentile_argument(p, default=100.0, short=True)
    p.add_argument("--per-channel", action="store_true", help="one scale per output channel instead of per population")
    p.add_argument("--rounding", default="nearest", **ROUNDINGS.kwargs(),
                   help="nearest: round and clip to [-127, 127]; truncate: the vendor path (conv: truncating int8 "
                        "cast with wrap-around; dense: truncate, saturate) (default nearest)")
    p.add_argument("-o", "--out", required=True, metavar="OUT.nir", type=output_file,
                   help="where to write the quantized graph")
    return p


def run(args: argparse.Namespace) -> int:
    from s2common.graph import load_graph

    from harness.quantize import quantize_ptq
    from harness.quantize.memory import memory_lines

    graph = load_graph(args.model, isolate=True)
    qg = quantize_ptq(graph, percentile=args.percentile, per_channel=args.per_channel, rounding=args.rounding,
                      source=args.model)
    mode = "per channel" if args.per_channel else "per population"
    print(f"PTQ of {args.model}: percentile {qg.percentile:g}, {mode}, rounding {qg.rounding}")
    print(qg.table())
    for w in qg.warnings:
        print(f"warning: {w}")
    if qg.rounding == "truncate" and any(r.clipped_fraction > 0 for r in qg.layers):
        print("warning: truncate mode wrapped conv weights around (the vendor's int8 cast has no clipping) "
              "or saturated dense weights; 'clipped %' counts them")
    for line in memory_lines(qg.graph):
        print(line)
    qg.write(args.out)
    print(f"wrote {args.out} (source sha256 {qg.source_digest[:16]}...)")
    return 0
