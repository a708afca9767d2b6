"""Small NIR graphs built by hand for the quantizer's tests (no fixture files needed)."""
from __future__ import annotations

from typing import Optional

import nir
import numpy as np


def f32(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float32)


def two_layer(w1, w2, *, b1=None, theta1=1.0, theta2=1.0, neuron: str = "IF", w_rec=None) -> nir.NIRGraph:
    """input(n_in) -> Affine(w1, b1) -> pop1 [-> Linear(w_rec) -> pop1] -> Linear(w2) -> pop2 -> output.

    ``neuron``: "IF" or "LIF" (LIF: tau = 1e-3, v_leak = 0.1, r = 1).
    """
    w1, w2 = f32(w1), f32(w2)
    n_hid, n_in = w1.shape
    n_out = w2.shape[0]
    b1 = np.zeros(n_hid, np.float32) if b1 is None else f32(b1)

    def pop(n, theta):
        if neuron == "IF":
            return nir.IF(r=np.ones(n, np.float32), v_threshold=np.full(n, theta, np.float32),
                          v_reset=np.zeros(n, np.float32))
        return nir.LIF(tau=np.full(n, 1e-3, np.float32), r=np.ones(n, np.float32), v_leak=np.full(n, 0.1, np.float32),
                       v_threshold=np.full(n, theta, np.float32), v_reset=np.zeros(n, np.float32))

    nodes = {"input": nir.Input(input_type={"input": np.array([n_in])}), "fc1": nir.Affine(weight=w1, bias=b1),
             "pop1": pop(n_hid, theta1), "fc2": nir.Linear(weight=w2), "pop2": pop(n_out, theta2),
             "output": nir.Output(output_type={"output": np.array([n_out])})}
    edges = [("input", "fc1"), ("fc1", "pop1"), ("pop1", "fc2"), ("fc2", "pop2"), ("pop2", "output")]
    if w_rec is not None:
        nodes["rec"] = nir.Linear(weight=f32(w_rec))
        edges += [("pop1", "rec"), ("rec", "pop1")]
    return nir.NIRGraph(nodes=nodes, edges=edges)


def conv_graph(wc, wd, *, in_shape=(2, 6, 6), pool: bool = True, flatten_before_pop: bool = False) -> nir.NIRGraph:
    """input (C,H,W) -> Conv2d(wc, pad 1) -> IF [-> SumPool2d 2] -> Flatten -> Affine(wd) -> IF -> output.

    With ``flatten_before_pop`` the conv's output is flattened *before* its IF population
    (Conv2d -> Flatten -> IF), so per-channel scaling has no channel axis there.
    """
    wc, wd = f32(wc), f32(wd)
    c_out = wc.shape[0]
    _, h, w = in_shape
    shape = (c_out, h, w)
    nodes = {"input": nir.Input(input_type={"input": np.array(in_shape)}),
             "conv": nir.Conv2d(input_shape=(h, w), weight=wc, stride=1, padding=1, dilation=1, groups=1,
                                bias=np.zeros(c_out, np.float32))}
    edges = [("input", "conv")]
    if flatten_before_pop:
        n = int(np.prod(shape))
        nodes["flat0"] = nir.Flatten(input_type={"input": np.array(shape)}, start_dim=0, end_dim=-1)
        nodes["if1"] = nir.IF(r=np.ones(n, np.float32), v_threshold=np.ones(n, np.float32), v_reset=np.zeros(n, np.float32))
        edges += [("conv", "flat0"), ("flat0", "if1")]
        last, last_shape = "if1", (n,)
    else:
        nodes["if1"] = nir.IF(r=np.ones(shape, np.float32), v_threshold=np.ones(shape, np.float32),
                              v_reset=np.zeros(shape, np.float32))
        edges += [("conv", "if1")]
        last, last_shape = "if1", shape
        if pool:
            nodes["pool"] = nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0]))
            edges.append(("if1", "pool"))
            last, last_shape = "pool", (c_out, h // 2, w // 2)
    if len(last_shape) > 1:
        nodes["flat"] = nir.Flatten(input_type={"input": np.array(last_shape)}, start_dim=0, end_dim=-1)
        edges.append((last, "flat"))
        last = "flat"
    n_out = wd.shape[0]
    nodes["fc"] = nir.Affine(weight=wd, bias=np.zeros(n_out, np.float32))
    nodes["if2"] = nir.IF(r=np.ones(n_out, np.float32), v_threshold=np.ones(n_out, np.float32),
                          v_reset=np.zeros(n_out, np.float32))
    nodes["output"] = nir.Output(output_type={"output": np.array([n_out])})
    edges += [(last, "fc"), ("fc", "if2"), ("if2", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges)


def nested(w1, w2) -> nir.NIRGraph:
    """A graph with a nested subgraph ``block`` (Affine ``fc`` -> LIF ``lif``) and a top-level node named ``a.b``."""
    w1, w2 = f32(w1), f32(w2)
    n_hid, n_in = w1.shape
    n_out = w2.shape[0]
    inner = nir.NIRGraph(
        nodes={"input": nir.Input(input_type={"input": np.array([n_in])}),
               "fc": nir.Affine(weight=w1, bias=np.full(n_hid, 0.05, np.float32)),
               "lif": nir.LIF(tau=np.full(n_hid, 2e-3, np.float32), r=np.ones(n_hid, np.float32),
                              v_leak=np.zeros(n_hid, np.float32), v_threshold=np.full(n_hid, 0.5, np.float32),
                              v_reset=np.zeros(n_hid, np.float32)),
               "output": nir.Output(output_type={"output": np.array([n_hid])})},
        edges=[("input", "fc"), ("fc", "lif"), ("lif", "output")])
    nodes = {"input": nir.Input(input_type={"input": np.array([n_in])}), "block": inner,
             "a.b": nir.Linear(weight=w2),
             "out_if": nir.IF(r=np.ones(n_out, np.float32), v_threshold=np.ones(n_out, np.float32),
                              v_reset=np.zeros(n_out, np.float32)),
             "output": nir.Output(output_type={"output": np.array([n_out])})}
    edges = [("input", "block"), ("block", "a.b"), ("a.b", "out_if"), ("out_if", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges)


def quant(node) -> Optional[dict]:
    from harness.quantize import quant_meta

    return quant_meta(node)
