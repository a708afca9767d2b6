"""What both engines share that is not arithmetic: input checks, what to record, recording meta."""
from __future__ import annotations

import dataclasses
from typing import Dict, Mapping, Optional, Sequence, Set, Union

import numpy as np

from s2common.errors import InputDataError

from .network import S2Network

Record = Union[None, str, Sequence[str]]


def check_input(net: S2Network, input_spikes: object) -> np.ndarray:
    """Validate the spikes of the (first) Input: (batch, time, *input_shape), values 0/1.

    Returns a bool array of that shape. Raises :class:`InputDataError` naming the Input node.
    """
    return check_inputs(net, input_spikes)[net.input_name]


def check_inputs(net: S2Network, input_spikes: object) -> Dict[str, np.ndarray]:
    """Validate the spikes of every Input (one ``spike_list`` each).

    ``input_spikes``: an array (batch, time, *input_shape) when the network has one Input, or a
    mapping ``{input name: array}`` naming every Input (same batch and time for all).
    Returns ``{input name: bool array}``. Raises :class:`InputDataError` naming the Input node.
    """
    names = list(net.input_names)
    if isinstance(input_spikes, Mapping):
        missing = [n for n in names if n not in input_spikes]
        extra = [str(n) for n in input_spikes if n not in names]
        if missing or extra:
            raise InputDataError(f"input spikes name {', '.join(map(str, input_spikes)) or 'nothing'}; the network's "
                                 f"Inputs are {', '.join(names)}", node=(missing or extra)[0], rule="bad-input-names",
                                 hint="pass one array per Input node, keyed by its name")
        arrays = {n: _check_one(net, n, input_spikes[n]) for n in names}
    elif len(names) > 1:
        raise InputDataError(f"the network has {len(names)} Inputs ({', '.join(names)}); one array was given",
                             node=names[1], rule="bad-input-names", hint="pass a dict {input name: spikes}")
    else:
        arrays = {names[0]: _check_one(net, names[0], input_spikes)}
    first = arrays[names[0]].shape[:2]
    for n, x in arrays.items():
        if x.shape[:2] != first:
            raise InputDataError(f"Input {n} has batch x time {x.shape[:2]}, Input {names[0]} has {first}",
                                 node=n, hint="feed every Input the same batch and number of ticks")
    return arrays


def _check_one(net: S2Network, name: str, input_spikes: object) -> np.ndarray:
    inp = net.populations[name]
    try:
        x = np.asarray(input_spikes)
    except Exception as exc:  # pragma: no cover - exotic objects
        raise InputDataError(f"input spikes are not an array ({exc})", node=name) from exc
    shape = tuple(inp.shape)
    if x.ndim != 2 + len(shape) or tuple(x.shape[2:]) != shape:
        raise InputDataError(f"input spikes have shape {tuple(x.shape)}, expected (batch, time, {', '.join(map(str, shape))})",
                             node=name, hint="add a batch dimension: x[None] for one sample")
    if x.dtype == bool:
        return x
    if x.dtype.kind not in "biuf":
        raise InputDataError(f"input spikes have dtype {x.dtype}; use bool or 0/1 numbers", node=name)
    if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
        raise InputDataError("input spikes contain NaN or inf", node=name)
    if not np.all((x == 0) | (x == 1)):
        raise InputDataError("input spikes must be 0 or 1 (SpiNNaker2 spike_list inputs are binary events)",
                             node=name, hint="binarise event counts, e.g. x > 0")
    return x.astype(bool)


def detail_set(net: S2Network, record: Record) -> Set[str]:
    """Populations whose ``i`` and ``v`` are recorded (spikes are always recorded for all)."""
    neurons = [n for n, p in net.populations.items() if p.model != "spike_list"]
    if record is None:
        return set()
    if isinstance(record, str):
        if record == "all":
            return set(neurons)
        record = [record]
    unknown = [r for r in record if r not in net.populations]
    if unknown:
        raise InputDataError(f"cannot record unknown population(s) {', '.join(unknown)}",
                             node=unknown[0], rule="unknown-record", hint=f"populations: {', '.join(neurons)}")
    return {r for r in record if r in neurons}


def meta(net: S2Network, engine: str, extra: Optional[dict] = None) -> dict:
    m = {"backend": "emulator", "engine": engine, "options": dataclasses.asdict(net.options), "source": net.source,
         "v_scale": {n: compact_scale(v) for n, v in net.voltage_scales().items()}}
    if extra:
        m.update(extra)
    return m


def compact_scale(v: np.ndarray) -> Union[float, list]:
    """A population's voltage scale for the Recording meta: one float if uniform, else a list (C order)."""
    a = np.asarray(v, dtype=np.float64).ravel()
    if a.size and np.all(a == a[0]):
        return float(a[0])
    return [float(x) for x in a]
