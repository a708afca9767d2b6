"""``s2gate run MODEL.nir --backend reference|emulator``: simulate and print per-node spike counts.

Examples::

    s2gate run model.nir --backend reference --preset norse --batch 8 --ticks 100 --density 0.05
    s2gate run model.nir --backend emulator --dt 1e-4 --integrator euler --reset to_zero
        --conn-delay 0 --no-scale-weights --input spikes.npy --record all --out rec.h5

(one command, broken over two lines here). Exit 0 after a run, 2 on bad input.
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
#: plain-words help of each reference flag (the preset decides when a flag is not given)
REFERENCE_HELP = {
    "--spike-from": "spike from this tick's new voltage or from the voltage the tick starts with",
    "--input-scale": "LIF input per tick: times 1, times 1/dt, or as a jump of the voltage",
    "--if-input-scale": "IF / I input per tick: times 1 or times 1/dt",
    "--cuba-current": "CubaLIF: the voltage integrates this tick's synaptic current or the previous one",
    "--compare": "spike where v > threshold or v >= threshold",
    "--latency": "ticks of latency per projection",
    "--initial-v": "voltage at the start: NIR's v_leak or 0",
}


def add_parser(sub: "argparse._SubParsersAction") -> argparse.ArgumentParser:
    from harness.cli.options import (add_conversion_arguments, add_engine_argument, add_input_arguments,
                                     add_model_argument, add_subcommand, output_file)

    p = add_subcommand(sub, "run", "simulate a NIR graph on the reference or the emulator and print per-node "
                       "spike counts", __doc__)
    add_model_argument(p)
    p.add_argument("--backend", choices=("reference", "emulator"), default="reference",
                   help="reference: the float NIR simulator; emulator: SpiNNaker2's int8 arithmetic (default reference)")
    add_input_arguments(p, batch=1, ticks=100)
    o = p.add_argument_group("output")
    o.add_argument("--record", help="nodes whose state (v, i) and output are recorded: 'all' or a,b,c")
    o.add_argument("--out", type=output_file, metavar="REC.h5", help="write the recording (HDF5, NIR data format) here")
    add_conversion_arguments(p, title="discretisation (both backends) and conversion (emulator: py-spinnaker2's "
                                      "s2_nir options)")
    r = p.add_argument_group("reference backend")
    from reference.discretisation import PRESETS

    # no argparse choices: an unknown name gets the reference's own one-line error, naming the presets
    r.add_argument("--preset", default=None, metavar="PRESET",
                   help="discretisation of one framework: " + ", ".join(sorted(PRESETS)) + " (default nir)")
    for flag, (_, choices) in REFERENCE_FLAGS.items():
        r.add_argument(flag, choices=choices, help=REFERENCE_HELP[flag] + " (default: the preset's)")
    r.add_argument("--float32", action="store_true", help="simulate in float32 (default float64)")
    e = p.add_argument_group("emulator backend")
    add_engine_argument(e)
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
    from harness.run import ReferenceBackend

    from harness.run.options import reference_options

    # --profile on the reference: the chip semantics of that conversion (spinnaker2 preset, its dt/integrator/reset)
    prof = reference_options(flat.graph, getattr(args, "profile", None)) if getattr(args, "profile", None) else None
    options = dict(prof or {})
    options.update({k: v for k, v in (("integrator", args.integrator), ("reset", args.reset)) if v is not None})
    for flag, (field, _) in REFERENCE_FLAGS.items():
        options[field] = getattr(args, flag.lstrip("-").replace("-", "_"))
    preset = args.preset or ("spinnaker2" if prof else "nir")
    backend = ReferenceBackend(preset=preset, dtype=np.float32 if args.float32 else np.float64, options=options,
                               dt=args.dt)
    return backend.run(flat, x, record=record)


def _run_emulator(flat, x, args, record):
    from harness.cli.options import conversion_options
    from harness.run import EmulatorBackend

    backend = EmulatorBackend(options=conversion_options(args, flat.graph), engine=args.engine)
    return backend.run(flat, x, record=record)


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
