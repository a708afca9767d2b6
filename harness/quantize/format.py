"""The quantized-NIR format: metadata, reading it back, the float view, the source digest.

A quantized graph is an ordinary NIR graph (see ``docs/contracts.md``, "Quantized NIR"):
weight nodes hold integer codes ``q`` (float32 arrays of whole numbers), every neuron
population's voltages are in *chip units* (float units x lambda), and each quantized node
carries ``node.metadata["s2gate.quant"]``, a flat dict of scalars/strings/arrays (nir 1.0.8
round-trips nested dicts through ``nir.write``/``nir.read``; values come back as numpy
scalars, so read them with :func:`quant_meta`, which turns them into Python values).

Which parameters carry the scale (float value = stored value / lambda):

==============  ===============================================
node type       scaled parameters
==============  ===============================================
Affine, Conv*   ``weight`` (the codes), ``bias``
Linear          ``weight``
IF              ``v_threshold``, ``v_reset``
LIF, CubaLIF    ``v_threshold``, ``v_reset``, ``v_leak``
LI, CubaLI      ``v_leak``
Threshold       ``threshold``
I               (none; its input is scaled, so its output is in chip units)
==============  ===============================================

Per-channel scales (``per_channel=True``) are arrays over the node's first axis (output
neuron of an Affine/Linear, output channel of a Conv, first axis of the population shape).
"""
from __future__ import annotations

import copy
import hashlib
import os
from typing import Any, Dict, Iterator, Optional, Tuple, Union

import numpy as np

from s2common.atomic import atomic_path
from s2common.graph import node_type

#: metadata key on nodes and on the graph
META_KEY = "s2gate.quant"
#: node types whose ``weight`` becomes int8 codes
WEIGHT_TYPES = ("Affine", "Linear", "Conv1d", "Conv2d")
#: node types with a ``bias`` scaled together with the weight
BIAS_TYPES = ("Affine", "Conv1d", "Conv2d")
#: population node type -> parameters multiplied by lambda (voltages)
POPULATION_PARAMS: Dict[str, Tuple[str, ...]] = {
    "IF": ("v_threshold", "v_reset"),
    "LIF": ("v_threshold", "v_reset", "v_leak"),
    "CubaLIF": ("v_threshold", "v_reset", "v_leak"),
    "LI": ("v_leak",),
    "CubaLI": ("v_leak",),
    "I": (),
    "Threshold": ("threshold",),
}
#: populations whose output is spikes (so scaling their voltages does not change what they emit)
SPIKING_TYPES = ("IF", "LIF", "CubaLIF", "Threshold")
#: integer code range of nearest/brevitas rounding (narrow range, symmetric)
QMAX = 127
BITS = 8


def _py(value: Any) -> Any:
    """numpy scalars/arrays/bytes (as nir.read returns them) -> Python values/lists/str."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "SUO":
            return [_py(v) for v in value.tolist()]
        return value.tolist() if value.ndim else value.item()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {k: _py(v) for k, v in value.items()}
    return value


def quant_meta(node_or_graph: object) -> Optional[Dict[str, Any]]:
    """The ``s2gate.quant`` metadata of a node or graph as plain Python values, or None."""
    meta = getattr(node_or_graph, "metadata", None) or {}
    q = meta.get(META_KEY)
    if not isinstance(q, dict):
        return None
    return _py(q)


def iter_nodes(graph: object, prefix: str = "") -> Iterator[Tuple[str, object]]:
    """(dotted name, node) for every node, recursing into nested NIRGraphs (the graph nodes too)."""
    for name, node in getattr(graph, "nodes", {}).items():
        full = f"{prefix}{name}"
        yield full, node
        if node_type(node) == "NIRGraph":
            yield from iter_nodes(node, full + ".")


def is_quantized(graph: object) -> bool:
    """True if any node (or the graph) carries ``s2gate.quant`` metadata."""
    if quant_meta(graph) is not None:
        return True
    return any(quant_meta(n) is not None for _, n in iter_nodes(graph))


def scale_array(scale: Any, shape: Tuple[int, ...]) -> np.ndarray:
    """A metadata ``scale`` (scalar or per-channel list over axis 0) broadcast to ``shape`` (float64)."""
    lam = np.asarray(scale, dtype=np.float64)
    if lam.ndim == 0 or len(shape) == 0:
        return np.broadcast_to(lam, shape) if lam.ndim == 0 else lam
    return np.broadcast_to(lam.reshape((-1,) + (1,) * (len(shape) - 1)), shape)


def _scaled(value: Any, lam: Any, *, divide: bool) -> np.ndarray:
    """``value * lam`` (or ``/``) in ``value``'s float dtype; lam broadcast over axis 0 if per-channel."""
    arr = np.asarray(value)
    dtype = arr.dtype if arr.dtype.kind == "f" else np.dtype(np.float32)
    lam = np.asarray(lam, dtype=np.float64)
    if lam.ndim:
        shape = arr.shape if arr.ndim else lam.shape
        arr = np.broadcast_to(arr, shape)
        lam = scale_array(lam, shape)
    out = arr.astype(np.float64) / lam if divide else arr.astype(np.float64) * lam
    return np.asarray(out, dtype=dtype)


def dequantize(graph: object) -> object:
    """The float view of a quantized graph (a new ``nir.NIRGraph``; the input is not changed).

    Weight codes and biases are divided by their node's lambda, population voltages
    (see the module table) by the population's lambda; ``s2gate.quant`` metadata is removed.
    A graph without quantization metadata comes back as an unchanged copy. Values are
    computed in float64 and stored in each parameter's own dtype (float32 for most graphs).
    """
    out = copy.deepcopy(graph)
    for _, node in iter_nodes(out):
        meta = quant_meta(node)
        if meta is None:
            continue
        lam = meta.get("scale", 1.0)
        typ = node_type(node)
        params = ("weight",) if typ in WEIGHT_TYPES else POPULATION_PARAMS.get(typ, ())
        if typ in BIAS_TYPES:
            params = params + ("bias",)
        for p in params:
            if getattr(node, p, None) is not None:
                setattr(node, p, _scaled(getattr(node, p), lam, divide=True))
        node.metadata = {k: v for k, v in node.metadata.items() if k != META_KEY}
    if isinstance(getattr(out, "metadata", None), dict):
        out.metadata = {k: v for k, v in out.metadata.items() if k != META_KEY}
    return out


def weights_digest(graph: object) -> str:
    """sha256 over every node's name, type and float parameters (sorted names, float64 bytes).

    Stable across files that hold the same parameters (a re-export with the same weights
    gets the same digest); used when a graph was not read from a file.
    """
    h = hashlib.sha256()
    for name, node in sorted(iter_nodes(graph), key=lambda kv: kv[0]):
        typ = node_type(node)
        if typ == "NIRGraph":
            continue
        h.update(f"{name}\0{typ}\0".encode())
        for p in ("weight", "bias", "v_threshold", "v_reset", "v_leak", "tau", "tau_mem", "tau_syn", "r", "w_in",
                  "threshold", "scale"):
            v = getattr(node, p, None)
            if v is None:
                continue
            try:
                arr = np.ascontiguousarray(np.asarray(v, dtype=np.float64))
            except (TypeError, ValueError):
                continue
            h.update(p.encode() + str(arr.shape).encode() + arr.tobytes())
    return h.hexdigest()


def source_digest(source: Union[str, "os.PathLike[str]", object]) -> str:
    """sha256 of a model file's bytes (for a path) or of a graph's parameters (:func:`weights_digest`)."""
    if isinstance(source, (str, os.PathLike)):
        h = hashlib.sha256()
        with open(source, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        return h.hexdigest()
    return weights_digest(source)


def write_graph(graph: object, path: "str | os.PathLike[str]") -> None:
    """``nir.write`` to ``path`` atomically (an existing file is untouched if writing fails)."""
    import nir

    with atomic_path(path, suffix=".nir") as tmp:
        nir.write(tmp, graph)
