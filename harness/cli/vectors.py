"""``s2gate vectors MODEL.nir --out DIR``: write test vectors for a board run.

Writes ``inputs.h5`` (NIR data format), ``model.nir`` (the quantized graph the board must
run), ``expected.h5`` (the emulator's recording) and ``vectors.json`` (seed, options, sha256
of each file); see :mod:`harness.vectors`. Then, next to the board::

    s2gate compare DIR/expected.h5 board.h5
"""
from __future__ import annotations

import argparse


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "vectors", help="write test vectors (inputs + expected emulator recording) for a board run",
        description="Quantize MODEL.nir (PTQ, or --quantized if it already is), run it on the emulator with random "
                    "or given input spikes, and write inputs.h5, model.nir, expected.h5 and vectors.json to --out.")
    p.add_argument("model", metavar="MODEL.nir", help="float NIR graph (or a quantized one with --quantized)")
    p.add_argument("--out", required=True, metavar="DIR", help="folder to write the vector set into")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--input", default=None, metavar="FILE",
                     help="input spikes: .npy/.npz (batch, time, *input_shape) or a NIR data file (.h5)")
    p.add_argument("--batch", type=int, default=4, help="samples of random input (default 4)")
    p.add_argument("--ticks", type=int, default=100, help="ticks of random input (default 100)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random input (default 0)")
    p.add_argument("--density", type=float, default=0.05, help="spike probability per input and tick (default 0.05)")
    q = p.add_mutually_exclusive_group()
    q.add_argument("--percentile", type=float, default=100.0, metavar="P", help="PTQ percentile (default 100)")
    q.add_argument("--quantized", action="store_true", help="MODEL.nir is already quantized (s2gate.quant metadata)")
    p.add_argument("--engine", choices=["fast", "golden"], default="fast", help="emulator engine (default fast)")
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
