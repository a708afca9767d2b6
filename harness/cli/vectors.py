"""``s2gate vectors MODEL.nir --out DIR``: write test vectors for a board run.

Writes ``inputs.h5`` (NIR data format), ``model.nir`` (the quantized graph the board must
run), ``expected.h5`` (the emulator's recording) and ``vectors.json`` (seed, options, sha256
of each file); see :mod:`harness.vectors`. Then, next to the board::

    s2gate compare DIR/expected.h5 board.h5
"""
from __future__ import annotations

import argparse


def add_parser(subparsers) -> argparse.ArgumentParser:
    from harness.cli.options import (add_engine_argument, add_input_arguments, add_model_argument,
                                     add_percentile_argument, add_subcommand, output_dir)

    p = add_subcommand(subparsers, "vectors", "write test vectors (inputs + expected emulator recording) for a board "
                       "run", __doc__)
    add_model_argument(p, "float NIR graph (or a quantized one with --quantized)")
    p.add_argument("--out", required=True, metavar="DIR", type=output_dir,
                   help="folder to write the vector set into (created if missing)")
    add_input_arguments(p, batch=4, ticks=100)
    q = p.add_argument_group("quantization").add_mutually_exclusive_group()
    add_percentile_argument(q, default=100.0)
    q.add_argument("--quantized", action="store_true", help="MODEL.nir is already quantized (s2gate.quant metadata)")
    add_engine_argument(p)
    return p


def run(args: argparse.Namespace) -> int:
    from s2common.graph import flatten_graph, load_graph

    from harness.vectors import load_inputs, write_vectors

    inputs = None
    if args.input:
        graph = load_graph(args.model, isolate=True)
        inputs = load_inputs(args.input, tuple(flatten_graph(graph, file=args.model).input_shape))
    vs = write_vectors(args.model, args.out, inputs=inputs, batch=args.batch, ticks=args.ticks, seed=args.seed,
                       density=args.density, percentile=args.percentile, quantized=args.quantized, engine=args.engine)
    m = vs.manifest
    print(f"wrote vector set to {vs.folder}: {m['batch']} samples x {m['ticks']} ticks, input '{m['input_node']}' "
          f"{tuple(m['input_shape'])}, {len(m['nodes'])} recorded nodes")
    for key, entry in m["files"].items():
        print(f"  {entry['path']:<12} sha256 {entry['sha256'][:16]}...")
    print(f"  vectors.json")
    print(f"check a board run with: s2gate compare {vs.folder / 'expected.h5'} BOARD.h5")
    return 0
