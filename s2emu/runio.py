"""What both engines share that is not arithmetic: input checks, what to record, recording meta."""
from __future__ import annotations

import dataclasses
from typing import Optional, Sequence, Set, Union

import numpy as np

from s2common.errors import InputDataError

from .network import S2Network

Record = Union[None, str, Sequence[str]]


def check_input(net: S2Network, input_spikes: object) -> np.ndarray:
    """Validate input spikes: (batch, time, *input_shape), values 0/1 (bool or numbers).

    Returns a bool array of that shape. Raises :class:`InputDataError` naming the Input node.
    """
    inp = net.populations[net.input_name]
    try:
        x = np.asarray(input_spikes)
    except Exception as exc:  # pragma: no cover - exotic objects
        raise InputDataError(f"input spikes are not an array ({exc})", node=net.input_name) from exc
    shape = tuple(inp.shape)
    if x.ndim != 2 + len(shape) or tuple(x.shape[2:]) != shape:
        raise InputDataError(f"input spikes have shape {tuple(x.shape)}, expected (batch, time, {', '.join(map(str, shape))})",
                             node=net.input_name, hint="add a batch dimension: x[None] for one sample")
    if x.dtype == bool:
        return x
    if x.dtype.kind not in "biuf":
        raise InputDataError(f"input spikes have dtype {x.dtype}; use bool or 0/1 numbers", node=net.input_name)
    if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
        raise InputDataError("input spikes contain NaN or inf", node=net.input_name)
    if not np.all((x == 0) | (x == 1)):
        raise InputDataError("input spikes must be 0 or 1 (SpiNNaker2 spike_list inputs are binary events)",
                             node=net.input_name, hint="binarise event counts, e.g. x > 0")
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
    m = {"backend": "emulator", "engine": engine, "options": dataclasses.asdict(net.options), "source": net.source}
    if extra:
        m.update(extra)
    return m
