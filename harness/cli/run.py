"""``s2gate run MODEL.nir --backend reference|emulator``: simulate and print per-node spike counts.

Examples::

    s2gate run model.nir --backend reference --preset norse --batch 8 --ticks 100 --density 0.05
    s2gate run model.nir --backend emulator --dt 1e-4 --integrator euler --reset to_v_reset \
        --conn-delay 0 --no-scale-weights --input spikes.npy --record all --out rec.h5
"""
from __future__ import annotations

import argparse
from typing import List

import numpy as np

REFERENCE_FLAGS = {
    # flag -> (Discretisation field, choices)
    "--spike-from": ("spike_from", ("new", "previous")),
    "--input-scale": ("input_scale", ("1", "1/dt", "jump")),
    "--if-input-scale": ("if_input_scale", ("1", "1/dt")),
    "--cuba-current": ("cuba_membrane_current", ("new", "old")),
    "--compare": ("compare", (">", ">=")),
    "--latency": ("projection_latency", ("0", "1")),
    "--initial-v": ("initial_v", ("v_leak", "zero")),
}


def add_parser(sub: "argparse._SubParsersAction") -> argparse.ArgumentParser:
    p = sub.add_parser("run", help="simulate a NIR graph on the reference or the emulator and print per-node spike counts",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="NIR file (.nir)")
    p.add_argument("--backend", choices=("reference", "emulator"), default="reference")
    g = p.add_argument_group("input (random spikes unless --input is given)")
    g.add_argument("--batch", type=int, default=1, help="samples (default 1)")
    g.add_argument("--ticks", type=int, default=100, help="time steps (default 100)")
    g.add_argument("--seed", type=int, default=0, help="seed of the random input (default 0)")
    g.add_argument("--density", type=float, default=0.05, help="probability of an input spike per neuron and tick")
    g.add_argument("--input", help=".npy/.npz of shape (batch, time, *input_shape) or a NIR data file")
    o = p.add_argument_group("output")
    o.add_argument("--record", help="nodes whose state (v, i) and output are recorded: 'all' or a,b,c")
    o.add_argument("--out", help="write the recording (HDF5, NIR data format) here")
    d = p.add_argument_group("discretisation (both backends)")
    d.add_argument("--dt", type=float, help="tick in seconds (default 1e-4)")
    d.add_argument("--integrator", choices=("euler", "exp"))
    d.add_argument("--reset", choices=("subtract", "to_v_reset", "to_zero"),
                   help="reference: to NIR's v_reset, to 0, or by subtraction; emulator: the converter's reset "
                        "(its 'to_v_reset' resets to 0, so to_zero means the same there)")
    r = p.add_argument_group("reference backend")
    r.add_argument("--preset", default=None, help="nir (default), norse, snntorch, rockpool, sinabs, spinnaker2")
    for flag, (_, choices) in REFERENCE_FLAGS.items():
        r.add_argument(flag, choices=choices)
    r.add_argument("--float32", action="store_true", help="simulate in float32 (default float64)")
    e = p.add_argument_group("emulator backend (py-spinnaker2 converter options)")
    e.add_argument("--conn-delay", type=int, default=None, help="extra synaptic delay in ticks (default 0)")
    e.add_argument("--scale-weights", dest="scale_weights", action="store_true", default=None,
                   help="derive an int8 weight scale per population (default: on, off for s2gate-quantized graphs)")
    e.add_argument("--no-scale-weights", dest="scale_weights", action="store_false")
    e.add_argument("--percentile", type=float, default=None, help="percentile of |W| mapped to 127 (default 100)")
    e.add_argument("--vendor-cast", action="store_true",
                   help="with --no-scale-weights, truncate non-integer weights to int8 as py-spinnaker2 does "
                        "(what the NIR paper's lif_spinnaker2.py relied on) instead of rejecting them")
    e.add_argument("--engine", choices=("fast", "golden"), default="fast")
    return p


def run(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from harness.run import load_inputs, parse_record, random_spikes
    from s2common.errors import InputDataError
    from s2common.graph import read_flat

    flat = read_flat(args.model, isolate=True)
    if args.input:
        x = load_inputs(args.input, flat.input_shape, flat.inputs[0])
    else:
        x = random_spikes(flat.input_shape, batch=args.batch, ticks=args.ticks, density=args.density, seed=args.seed)
    record = parse_record(args.record)
    try:
        if args.backend == "reference":
            rec = _run_reference(flat, x, args, record)
        else:
            rec = _run_emulator(flat, x, args, record)
    except InputDataError as err:
        if args.input and err.rule != "bad-option":
            err.with_file(args.input)  # the values came from the user's file: name it
        raise
    rec.meta.update({"model": str(args.model), "seed": None if args.input else args.seed,
                     "input": args.input or f"bernoulli(density={args.density})"})
    print(tabulate(spike_table(flat, rec), headers=["node", "type", "shape", "spikes", "rate /neuron/tick"],
                   tablefmt="simple", floatfmt=".4f"))
    print(f"{args.backend}: batch {x.shape[0]}, {x.shape[1]} ticks, dt {rec.dt:g} s")
    if args.out:
        rec.save(args.out)
        print(f"recording written to {args.out}")
    return 0


def _run_reference(flat, x, args, record):
    from reference import simulate

    options = {"integrator": args.integrator, "reset": args.reset}
    for flag, (field, _) in REFERENCE_FLAGS.items():
        options[field] = getattr(args, flag.lstrip("-").replace("-", "_"))
    return simulate(flat, x, preset=args.preset or "nir", options=options, dt=args.dt,
                    dtype=np.float32 if args.float32 else np.float64, record=record)


def _run_emulator(flat, x, args, record):
    import dataclasses

    from s2emu import ConversionOptions, Engine, GoldenModel, lower

    from harness.run import is_quantized_graph

    scale = args.scale_weights
    if scale is None:  # a quantized graph holds int8 codes already: no vendor scaling
        scale = not is_quantized_graph(flat)
    changes = {"scale_weights": scale, "vendor_cast": bool(args.vendor_cast)}
    reset = "to_v_reset" if args.reset == "to_zero" else args.reset
    for field, value in (("dt", args.dt), ("integrator", args.integrator), ("reset", reset),
                         ("conn_delay", args.conn_delay), ("percentile", args.percentile)):
        if value is not None:
            changes[field] = value
    options = dataclasses.replace(ConversionOptions(), **changes)
    net = lower(flat, options)
    engine = Engine(net) if args.engine == "fast" else GoldenModel(net)
    return engine.run(x, record=record)


def spike_table(flat, rec) -> List[list]:
    """Rows (node, type, shape, total spikes, spikes per neuron per tick) in graph order."""
    rows = []
    for name in flat.order:
        spikes = rec.get(name, "spikes")
        if spikes is None:
            continue
        n_neurons = int(np.prod(spikes.shape[2:])) or 1
        total = int(np.count_nonzero(spikes))
        rate = total / (spikes.shape[0] * spikes.shape[1] * n_neurons) if spikes.size else 0.0
        rows.append([name, flat.type_of(name), "x".join(map(str, spikes.shape[2:])), total, rate])
    return rows
