"""One recording format for every backend (reference, emulator, board).

A :class:`Recording` holds, per NIR node (dotted name), observables of shape
``(batch, time, *node_shape)``:

* ``"spikes"``: bool, the node's spike output per tick (neurons, Threshold, Input).
* ``"v"``: membrane voltage per tick, **after reset** (float64/float32 for the reference,
  float32 for the emulator, in the units of the graph it ran: a quantized graph's
  voltages are in its scaled units).
* ``"i"``: synaptic input per tick: the emulator's exact integer sum (int32), or the
  reference's synaptic current (CubaLIF/CubaLI ``I``).
* ``"output"``: the value a non-neuron node emits per tick (float), on request.

On disk it is NIR's own data format (``nir.write_data`` of a ``NIRGraphData`` whose
``NIRNodeData`` observables are ``TimeGriddedData`` of shape ``(batch, time, neurons)``,
neurons flattened in C order). s2gate adds HDF5 attributes that NIR's format has no place
for: ``s2gate_shape`` on each observable group (the node shape) and ``s2gate_meta_json`` on
the root (backend, preset, seed, dt...) and ``s2gate_node_order_json`` (the nodes in graph order:
HDF5 lists groups alphabetically). Files are written atomically.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

import numpy as np

from .atomic import atomic_path
from .errors import InvalidGraphError

OBSERVABLES = ("spikes", "v", "i", "output")
#: meta keys that describe how a run went rather than what it computed (the emulator's per-projection
#: count of kernel and event chunks, chosen from timings measured on this machine): kept in memory
#: for benchmarks and diagnostics, never written to a file, so that a file is a function of the model,
#: the input and the options alone (the same seed gives the same bytes)
RUN_DIAGNOSTICS = ("synapse_paths",)


@dataclass
class Recording:
    """Per-node observables of one run.

    Attributes:
        dt: the tick in seconds.
        data: ``{node: {observable: array (batch, time, *shape)}}``.
        meta: JSON-serialisable facts about the run (backend, preset, options, seed...).
    """

    dt: float
    data: Dict[str, Dict[str, np.ndarray]] = field(default_factory=dict)
    meta: Dict[str, Any] = field(default_factory=dict)

    def add(self, node: str, observable: str, array: np.ndarray) -> None:
        """Store ``array`` (batch, time, *shape) as ``observable`` of ``node``."""
        if observable not in OBSERVABLES:
            raise ValueError(f"unknown observable {observable!r}; one of {OBSERVABLES}")
        self.data.setdefault(node, {})[observable] = array

    def get(self, node: str, observable: str) -> Optional[np.ndarray]:
        return self.data.get(node, {}).get(observable)

    def spikes(self, node: str) -> np.ndarray:
        """Spikes of ``node``, (batch, time, *shape) bool; KeyError if not recorded."""
        return self.data[node]["spikes"]

    @property
    def nodes(self) -> list:
        return list(self.data)

    @property
    def batch(self) -> int:
        for obs in self.data.values():
            for arr in obs.values():
                return int(arr.shape[0])
        return 0

    @property
    def ticks(self) -> int:
        for obs in self.data.values():
            for arr in obs.values():
                return int(arr.shape[1])
        return 0

    def voltage_scale(self, node: str) -> Optional[np.ndarray]:
        """Chip voltage units per NIR volt of ``node`` (the converter's ``nir_v_scale``), or None.

        Emulator and board recordings carry ``meta["v_scale"] = {population: float | [floats]}``
        (one value, or one per neuron in C order); a reference recording is already in NIR
        units and has none. Returns float64 of the node shape (broadcast if uniform).
        """
        scales = self.meta.get("v_scale") or {}
        if node not in scales:
            return None
        v = self.get(node, "v")
        shape = tuple(v.shape[2:]) if v is not None else ()
        a = np.asarray(scales[node], dtype=np.float64)
        return np.broadcast_to(a, shape).copy() if a.ndim == 0 else a.reshape(shape)

    def in_nir_units(self) -> "Recording":
        """A copy whose ``"v"`` arrays are divided by each node's voltage scale (NIR volts, float64).

        Nodes without a scale keep their voltages; ``meta["v_units"]`` becomes ``"nir"``.
        """
        out = Recording(dt=self.dt, meta=dict(self.meta, v_units="nir", v_scale={}))
        for node, obs in self.data.items():
            for name, arr in obs.items():
                scale = self.voltage_scale(node) if name == "v" else None
                out.add(node, name, arr if scale is None else np.asarray(arr, dtype=np.float64) / scale)
        return out

    def save(self, path: "str | os.PathLike[str]") -> None:
        """Write to ``path`` (HDF5, NIR data format + s2gate attributes), atomically."""
        import h5py
        import nir

        nodes = {}
        for node, obs in self.data.items():
            observables = {}
            for name, arr in obs.items():
                arr = np.asarray(arr)
                flat = arr.reshape(arr.shape[0], arr.shape[1], -1)
                observables[name] = nir.TimeGriddedData(np.ascontiguousarray(flat), float(self.dt))
            nodes[_h5_name(node)] = nir.NIRNodeData(observables)
        graph_data = nir.NIRGraphData(nodes)
        with atomic_path(path, suffix=".h5") as tmp:
            nir.write_data(tmp, graph_data)
            with h5py.File(tmp, "a") as f:
                stored = {k: v for k, v in self.meta.items() if k not in RUN_DIAGNOSTICS}
                f.attrs["s2gate_meta_json"] = json.dumps(stored, sort_keys=True, default=_json_default)
                f.attrs["s2gate_dt"] = float(self.dt)
                f.attrs["s2gate_node_order_json"] = json.dumps(list(self.data))
                for node, obs in self.data.items():
                    for name, arr in obs.items():
                        grp = f["nodes"][_h5_name(node)]["observables"][name]
                        grp.attrs["s2gate_shape"] = np.asarray(np.shape(arr)[2:], dtype=np.int64)
                        grp.attrs["s2gate_node"] = node

    @classmethod
    def load(cls, path: "str | os.PathLike[str]") -> "Recording":
        """Read a recording written by :meth:`save`, or any NIR data file of TimeGriddedData."""
        import h5py

        path = os.fspath(path)
        if not os.path.exists(path):
            raise InvalidGraphError("recording file not found", file=path, rule="file-not-found")
        if not h5py.is_hdf5(path):
            raise InvalidGraphError("recording is not an HDF5 file", file=path, rule="not-hdf5",
                                    hint="recordings are written by `s2gate run --out` or nir.write_data")
        try:
            with h5py.File(path, "r") as f:
                meta = json.loads(f.attrs.get("s2gate_meta_json", "{}"))
                dt = float(f.attrs.get("s2gate_dt", 0.0))
                rec = cls(dt=dt, meta=meta)
                order = json.loads(f.attrs.get("s2gate_node_order_json", "[]"))
                rank = {_h5_name(n): i for i, n in enumerate(order)}
                keys = sorted(f["nodes"].keys(), key=lambda k: (rank.get(k, len(rank)), k))
                for key in keys:
                    grp = f["nodes"][key]
                    for name, obs in grp["observables"].items():
                        if obs.attrs.get("__type__") != "TimeGriddedData":
                            continue
                        arr = obs["data"][()]
                        if not dt:
                            rec.dt = dt = float(obs.attrs.get("dt", 0.0))
                        shape = tuple(int(x) for x in obs.attrs.get("s2gate_shape", (arr.shape[2],)))
                        node = obs.attrs.get("s2gate_node", key)
                        node = node.decode() if isinstance(node, bytes) else str(node)
                        rec.add(node, name, arr.reshape(arr.shape[0], arr.shape[1], *shape))
        except (KeyError, OSError, ValueError) as exc:
            raise InvalidGraphError(f"not a readable recording ({type(exc).__name__}: {exc})", file=path,
                                    rule="bad-recording") from exc
        return rec


def _h5_name(node: str) -> str:
    """HDF5 group names cannot contain '/'; NIR names may contain dots, which are fine."""
    return node.replace("/", "\u2215")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)
