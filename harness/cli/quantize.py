"""``s2gate quantize MODEL.nir --percentile P [--per-channel] [--rounding nearest|truncate] [--calibrate CAL.npz] -o OUT.nir``.

Post-training quantization of a NIR graph to int8 codes (see :mod:`harness.quantize.ptq`).
With ``--calibrate CAL.npz`` (an array ``spikes`` (N, T, *input_shape) of samples disjoint from
the test split) each population's percentile is chosen on those samples instead
(:mod:`harness.quantize.calibrate`; ``--bias-correction``, ``--rounding-search`` optional).
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
    c = p.add_argument_group("calibration (harness.quantize.calibrate)")
    c.add_argument("--calibrate", metavar="CAL.npz", default=None,
                   help="choose each population's PTQ percentile (99-100) on these samples (.npz with an array "
                        "'spikes', disjoint from the test split) instead of --percentile")
    c.add_argument("--bias-correction", action="store_true", help="with --calibrate: correct biases by the mean error")
    c.add_argument("--rounding-search", action="store_true",
                   help="with --calibrate: choose codes by error-feedback rounding (GPTQ) instead of nearest")
    c.add_argument("--calibrate-preset", default=None, metavar="PRESET",
                   help="reference preset of the calibration's float run (default: the model's s2gate.preset, "
                        "else spinnaker2)")
    return p


def run(args: argparse.Namespace) -> int:
    from s2common.graph import load_graph

    from harness.quantize import quantize_ptq
    from harness.quantize.memory import memory_lines

    graph = load_graph(args.model, isolate=True)
    cal_file = getattr(args, "calibrate", None)
    if cal_file is None and (getattr(args, "bias_correction", False) or getattr(args, "rounding_search", False)):
        from s2common.errors import InputDataError

        raise InputDataError("--bias-correction and --rounding-search need --calibrate CAL.npz", rule="bad-option")
    mode = "per channel" if args.per_channel else "per population"
    if cal_file is None:
        qg = quantize_ptq(graph, percentile=args.percentile, per_channel=args.per_channel, rounding=args.rounding,
                          source=args.model)
        print(f"PTQ of {args.model}: percentile {qg.percentile:g}, {mode}, rounding {qg.rounding}")
    else:
        from harness.quantize.calibrate import load_calibration, quantize_calibrated

        qg = quantize_calibrated(graph, load_calibration(cal_file), per_channel=args.per_channel,
                                 bias_correction=args.bias_correction, rounding_search=args.rounding_search,
                                 rounding=args.rounding, preset=args.calibrate_preset, source=args.model)
        cal = qg.calibration
        print(f"PTQ of {args.model}: percentiles calibrated on {cal.samples} samples x {cal.ticks} ticks of {cal_file} "
              f"(grid {', '.join(f'{p:g}' for p in cal.grid)}), {mode}, rounding {qg.rounding}"
              + (", bias correction" if cal.bias_correction else "") + (", rounding search" if cal.rounding_search else ""))
        print(f"objective: {cal.objective}")
        print(cal.table())
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
