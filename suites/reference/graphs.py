"""Tiny NIR graphs for the reference simulator's tests (built by hand, one job each)."""
from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import nir
import numpy as np


def arr(value: object, shape: Sequence[int] = ()) -> np.ndarray:
    """``value`` as a float64 array broadcast to ``shape``."""
    return np.broadcast_to(np.asarray(value, dtype=np.float64), tuple(shape)).copy()


def chain(shape: Sequence[int], *nodes: Tuple[str, object], out: "Sequence[int] | None" = None) -> nir.NIRGraph:
    """input -> nodes... -> output, each fed by the previous one (``out``: the Output's shape
    when the last node does not declare it)."""
    shape = tuple(shape)
    names = ["input"] + [n for n, _ in nodes] + ["output"]
    out_shape = tuple(out) if out is not None else _out_shape(nodes, shape)
    all_nodes: Dict[str, object] = {"input": nir.Input(input_type=np.array(shape))}
    all_nodes.update(dict(nodes))
    all_nodes["output"] = nir.Output(output_type=np.array(out_shape))
    edges: List[Tuple[str, str]] = list(zip(names[:-1], names[1:]))
    return nir.NIRGraph(nodes=all_nodes, edges=edges)


def graph(shape: Sequence[int], out_shape: Sequence[int], nodes: Dict[str, object], edges: List[Tuple[str, str]]) -> nir.NIRGraph:
    """A graph with an Input of ``shape`` named 'input' and an Output named 'output'."""
    all_nodes: Dict[str, object] = {"input": nir.Input(input_type=np.array(tuple(shape)))}
    all_nodes.update(nodes)
    all_nodes["output"] = nir.Output(output_type=np.array(tuple(out_shape)))
    return nir.NIRGraph(nodes=all_nodes, edges=list(edges))


def _out_shape(nodes, shape):
    # the last node's declared output type if it has one, else the input shape
    for _, node in reversed(nodes):
        ot = getattr(node, "output_type", None)
        if isinstance(ot, dict) and ot.get("output") is not None:
            val = np.asarray(ot["output"])
            if val.dtype != object and val.size:
                return tuple(int(v) for v in val.ravel())
    return shape


def lif(n: int, tau=1e-3, r=1.0, v_leak=0.0, v_threshold=1.0, v_reset=0.0) -> nir.LIF:
    s = (n,)
    return nir.LIF(tau=arr(tau, s), r=arr(r, s), v_leak=arr(v_leak, s), v_threshold=arr(v_threshold, s),
                   v_reset=arr(v_reset, s))


def if_(n: int, r=1.0, v_threshold=1.0, v_reset=0.0) -> nir.IF:
    s = (n,)
    return nir.IF(r=arr(r, s), v_threshold=arr(v_threshold, s), v_reset=arr(v_reset, s))


def cuba_lif(n: int, tau_syn=2e-3, tau_mem=5e-3, r=1.0, v_leak=0.0, v_threshold=1.0, v_reset=0.0, w_in=1.0) -> nir.CubaLIF:
    s = (n,)
    return nir.CubaLIF(tau_syn=arr(tau_syn, s), tau_mem=arr(tau_mem, s), r=arr(r, s), v_leak=arr(v_leak, s),
                       v_threshold=arr(v_threshold, s), v_reset=arr(v_reset, s), w_in=arr(w_in, s))


def cuba_li(n: int, tau_syn=2e-3, tau_mem=5e-3, r=1.0, v_leak=0.0, w_in=1.0) -> nir.CubaLI:
    s = (n,)
    return nir.CubaLI(tau_syn=arr(tau_syn, s), tau_mem=arr(tau_mem, s), r=arr(r, s), v_leak=arr(v_leak, s),
                      w_in=arr(w_in, s))
