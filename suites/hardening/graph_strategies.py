"""Hypothesis strategies for valid NIR graphs over **every** NIR 1.0 node type and edge pattern.

``suites/strategies.py`` (the emulator's) draws only what SpiNNaker2 accepts. The reference must
run anything valid, and the design rules must name a rule for anything the chip cannot run, so
this module draws the rest too:

* node types: Input, Output, Affine, Linear, Scale, Conv1d, Conv2d, SumPool2d, AvgPool2d,
  Flatten, Threshold, Delay, I, IF, LI, LIF, CubaLI, CubaLIF, and nested NIRGraphs;
* inputs of 1, 2 (channels, length) or 3 (channels, height, width) dimensions;
* edge patterns: chains of any of the above, neuron -> neuron, two weight layers in a row,
  fan-in of two branches summed into one node, skip edges from earlier nodes, recurrent loops
  through a neuron (``n -> Linear -> n``) or through a Delay (``n -> Delay -> Linear -> n``);
* parameter values from ordinary to extreme (zeros, 1e6, tau far below and above dt, negative
  thresholds), always finite: a valid graph may overflow during a run, which is not a crash.

Array contents come from a numpy generator seeded by one drawn integer (fast to draw;
hypothesis still shrinks the structure).
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from hypothesis import strategies as st

NEURONS = ("I", "IF", "LI", "LIF", "CubaLI", "CubaLIF")
ELEMENTWISE = NEURONS + ("Scale", "Threshold", "Delay")
#: tick of the reference's default discretisation (s); Delay values are whole multiples of it.
DT = 1e-4
Shape = Tuple[int, ...]


class GraphBuilder:
    """Accumulates nodes and edges; parameters drawn from a seeded numpy generator."""

    def __init__(self, rng: np.random.Generator, extreme: bool) -> None:
        self.rng = rng
        self.extreme = extreme
        self.nodes: Dict[str, object] = {}
        self.edges: List[Tuple[str, str]] = []
        self.k = 0
        #: (name, out shape) of every node that emits something, for skip edges
        self.emitters: List[Tuple[str, Shape]] = []

    def name(self, stem: str) -> str:
        self.k += 1
        return f"{stem}{self.k}"

    def add(self, stem: str, node: object, shape: Shape) -> str:
        name = self.name(stem)
        self.nodes[name] = node
        self.emitters.append((name, shape))
        return name

    def values(self, shape: Shape, loc: float = 0.0, scale: float = 1.0) -> np.ndarray:
        """float32 values; in extreme mode some arrays are all zero or enormous."""
        rng = self.rng
        if self.extreme:
            pick = rng.integers(0, 4)
            if pick == 0:
                return np.zeros(shape, dtype=np.float32)
            if pick == 1:
                return (rng.choice([-1.0, 1.0], size=shape) * 1e6).astype(np.float32)
        return (loc + scale * rng.normal(size=shape)).astype(np.float32)

    def positive(self, shape: Shape, low: float, high: float) -> np.ndarray:
        if self.extreme and self.rng.integers(0, 3) == 0:
            low, high = low / 1000.0, high * 1000.0
        return self.rng.uniform(low, high, size=shape).astype(np.float32)

    def elementwise(self, typ: str, shape: Shape) -> object:
        import nir

        f = self.values
        tau = lambda: self.positive(shape, 2 * DT, 50 * DT)  # noqa: E731
        if typ == "Scale":
            return nir.Scale(scale=f(shape, 1.0, 1.0))
        if typ == "Threshold":
            return nir.Threshold(threshold=f(shape, 0.5, 0.5))
        if typ == "Delay":
            ticks = self.rng.integers(0, 4, size=shape)
            return nir.Delay(delay=(ticks * DT).astype(np.float64))
        r = self.positive(shape, 0.5, 2.0)
        if typ == "I":
            return nir.I(r=r)
        if typ == "IF":
            return nir.IF(r=r, v_threshold=f(shape, 1.0, 0.5), v_reset=f(shape, 0.0, 0.1))
        if typ == "LI":
            return nir.LI(tau=tau(), r=r, v_leak=f(shape, 0.0, 0.1))
        if typ == "LIF":
            return nir.LIF(tau=tau(), r=r, v_leak=f(shape, 0.0, 0.1), v_threshold=f(shape, 1.0, 0.5),
                           v_reset=f(shape, 0.0, 0.1))
        if typ == "CubaLI":
            return nir.CubaLI(tau_syn=tau(), tau_mem=tau(), r=r, v_leak=f(shape, 0.0, 0.1), w_in=f(shape, 1.0, 0.5))
        if typ == "CubaLIF":
            return nir.CubaLIF(tau_syn=tau(), tau_mem=tau(), r=r, v_leak=f(shape, 0.0, 0.1),
                               v_threshold=f(shape, 1.0, 0.5), v_reset=f(shape, 0.0, 0.1), w_in=f(shape, 1.0, 0.5))
        raise KeyError(typ)


def _divisors(n: int) -> List[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


@st.composite
def _layer(draw: st.DrawFn, b: GraphBuilder, src: str, shape: Shape, max_size: int, allow_recurrent: bool,
           allow_nested: bool, depth: int) -> Tuple[str, Shape]:
    """Append one layer fed by ``src`` (emitting ``shape``); return the layer's last node and its shape."""
    import nir

    nd = len(shape)
    ops = ["elementwise"]
    if nd == 1:
        ops += ["dense", "dense", "branch"] + (["recurrent", "delay_loop"] if allow_recurrent else [])
    if nd == 2:
        ops += ["conv1d", "conv1d", "flatten"]
    if nd == 3:
        ops += ["conv2d", "conv2d", "pool", "flatten"]
    if allow_nested and depth == 0:
        ops.append("nested")
    op = draw(st.sampled_from(ops))

    if op == "elementwise":
        typ = draw(st.sampled_from(ELEMENTWISE))
        name = b.add(typ.lower(), b.elementwise(typ, shape), shape)
        b.edges.append((src, name))
        # a skip edge from an earlier emitter of the same shape (summed with src)
        same = [n for n, s in b.emitters[:-1] if s == shape and n != src]
        if same and draw(st.booleans()):
            b.edges.append((draw(st.sampled_from(same)), name))
        return name, shape

    if op in ("dense", "branch", "recurrent", "delay_loop"):
        n_in = shape[0]
        n_out = draw(st.integers(1, max_size))
        post_typ = draw(st.sampled_from(ELEMENTWISE if op in ("dense", "branch") else NEURONS))
        kinds = ["Affine", "Linear"]
        branches = 2 if op == "branch" else 1
        post = b.name(post_typ.lower())
        for _ in range(branches):
            kind = draw(st.sampled_from(kinds))
            w = b.values((n_out, n_in), 0.0, 1.0 / np.sqrt(n_in))
            wn = b.add("fc", nir.Affine(weight=w, bias=b.values((n_out,), 0.0, 0.1)) if kind == "Affine"
                       else nir.Linear(weight=w), (n_out,))
            b.edges += [(src, wn), (wn, post)]
        b.nodes[post] = b.elementwise(post_typ, (n_out,))
        b.emitters.append((post, (n_out,)))
        if op == "recurrent":
            rn = b.add("rec", nir.Linear(weight=b.values((n_out, n_out), 0.0, 0.3)), (n_out,))
            b.edges += [(post, rn), (rn, post)]
        if op == "delay_loop":
            dn = b.add("delay", b.elementwise("Delay", (n_out,)), (n_out,))
            rn = b.add("rec", nir.Linear(weight=b.values((n_out, n_out), 0.0, 0.3)), (n_out,))
            b.edges += [(post, dn), (dn, rn), (rn, post)]
        return post, (n_out,)

    if op == "conv1d":
        c, length = shape
        groups = draw(st.sampled_from(_divisors(c)))
        c_out = groups * draw(st.integers(1, 2))
        k = draw(st.integers(1, min(3, length)))
        stride = draw(st.integers(1, 2))
        pad = draw(st.integers(0, 1))
        dil = draw(st.integers(1, 2)) if length >= 2 * (k - 1) + 1 else 1
        w = b.values((c_out, c // groups, k), 0.0, 0.5)
        conv = nir.Conv1d(input_shape=length, weight=w, stride=stride, padding=pad, dilation=dil, groups=groups,
                          bias=b.values((c_out,), 0.0, 0.1))
        out_len = (length + 2 * pad - dil * (k - 1) - 1) // stride + 1
        name = b.add("conv", conv, (c_out, out_len))
        b.edges.append((src, name))
        return name, (c_out, out_len)

    if op == "conv2d":
        c, h, w_ = shape
        groups = draw(st.sampled_from(_divisors(c)))
        c_out = groups * draw(st.integers(1, 2))
        kh = draw(st.integers(1, min(3, h)))
        kw = draw(st.integers(1, min(3, w_)))
        mode = draw(st.sampled_from(["int", "valid", "same"] if kh % 2 and kw % 2 else ["int", "valid"]))
        stride = (1, 1) if mode == "same" else (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
        padding: object = {"int": (draw(st.integers(0, 1)), draw(st.integers(0, 1))), "valid": "valid",
                           "same": "same"}[mode]
        wt = b.values((c_out, c // groups, kh, kw), 0.0, 0.5)
        conv = nir.Conv2d(input_shape=(h, w_), weight=wt, stride=stride, padding=padding, dilation=1, groups=groups,
                          bias=b.values((c_out,), 0.0, 0.1))
        pads = (0, 0) if mode == "valid" else ((kh - 1) // 2, (kw - 1) // 2) if mode == "same" else padding
        oh = (h + 2 * pads[0] - kh) // stride[0] + 1
        ow = (w_ + 2 * pads[1] - kw) // stride[1] + 1
        name = b.add("conv", conv, (c_out, oh, ow))
        b.edges.append((src, name))
        return name, (c_out, oh, ow)

    if op == "pool":
        c, h, w_ = shape
        typ = draw(st.sampled_from(["SumPool2d", "AvgPool2d"]))
        k = draw(st.integers(1, max(1, min(3, h, w_))))
        stride = draw(st.integers(1, k))
        pad = draw(st.integers(0, k // 2))
        pool = getattr(nir, typ)(kernel_size=np.array([k, k]), stride=np.array([stride, stride]),
                                 padding=np.array([pad, pad]))
        oh = (h + 2 * pad - k) // stride + 1
        ow = (w_ + 2 * pad - k) // stride + 1
        name = b.add("pool", pool, (c, oh, ow))
        b.edges.append((src, name))
        return name, (c, oh, ow)

    if op == "flatten":
        nd_ = len(shape)
        if nd_ == 3 and draw(st.booleans()):
            start, end, out = 1, 2, (shape[0], shape[1] * shape[2])  # (C, H*W): feeds Conv1d
        else:
            start, end, out = 0, -1, (int(np.prod(shape)),)
        if draw(st.booleans()):  # the same dims written with the other sign
            start, end = start - nd_, (end + nd_ if end < 0 else end - nd_)
        flat = nir.Flatten(input_type={"input": np.array(shape)}, start_dim=start, end_dim=end)
        name = b.add("flat", flat, out)
        b.edges.append((src, name))
        return name, out

    # nested: one or two layers inside a NIRGraph with its own Input and Output
    inner = GraphBuilder(b.rng, b.extreme)
    inner.nodes["input"] = nir.Input(input_type={"input": np.array(shape)})
    inner.emitters.append(("input", shape))
    s_src, s_shape = "input", shape
    for _ in range(draw(st.integers(1, 2))):
        s_src, s_shape = draw(_layer(inner, s_src, s_shape, max_size, allow_recurrent, False, depth + 1))
    inner.nodes["output"] = nir.Output(output_type={"output": np.array(s_shape)})
    inner.edges.append((s_src, "output"))
    sub = nir.NIRGraph(nodes=inner.nodes, edges=inner.edges, type_check=False)
    name = b.name("sub")
    b.nodes[name] = sub
    b.edges.append((src, name))
    return name, s_shape


@st.composite
def any_nir_graphs(draw: st.DrawFn, max_layers: int = 4, max_size: int = 8, allow_recurrent: bool = True,
                   allow_nested: bool = True, extreme: Optional[bool] = None) -> object:
    """Draw a small valid ``nir.NIRGraph`` over every node type (see the module docstring).

    Args:
        max_layers: layers chained after the Input (1..max_layers).
        max_size: upper bound on channels/neurons per dimension.
        allow_recurrent: allow loops through a neuron or a Delay.
        allow_nested: allow nested NIRGraph nodes (one level).
        extreme: draw extreme parameter values (None: let hypothesis choose).

    Returns:
        A graph with one Input (shape (n,), (c, length) or (c, h, w)) and one Output.
    """
    import nir

    seed = draw(st.integers(0, 2 ** 32 - 1))
    if extreme is None:
        extreme = draw(st.booleans())
    b = GraphBuilder(np.random.default_rng(seed), extreme)
    nd = draw(st.integers(1, 3))
    if nd == 1:
        shape: Shape = (draw(st.integers(1, max_size)),)
    elif nd == 2:
        shape = (draw(st.integers(1, 3)), draw(st.integers(1, max_size)))
    else:
        shape = (draw(st.integers(1, 3)), draw(st.integers(1, max_size)), draw(st.integers(1, max_size)))
    b.nodes["input"] = nir.Input(input_type={"input": np.array(shape)})
    b.emitters.append(("input", shape))
    src = "input"
    for _ in range(draw(st.integers(1, max_layers))):
        src, shape = draw(_layer(b, src, shape, max_size, allow_recurrent, allow_nested, 0))
    b.nodes["output"] = nir.Output(output_type={"output": np.array(shape)})
    b.edges.append((src, "output"))
    return nir.NIRGraph(nodes=b.nodes, edges=b.edges, type_check=False)


@st.composite
def inputs_for(draw: st.DrawFn, shape: Sequence[int], max_batch: int = 3, max_ticks: int = 8,
               spikes: Optional[bool] = None) -> np.ndarray:
    """An input array (batch, time, *shape): 0/1 spikes (bool) or finite float values."""
    batch = draw(st.integers(1, max_batch))
    ticks = draw(st.integers(1, max_ticks))
    seed = draw(st.integers(0, 2 ** 32 - 1))
    rng = np.random.default_rng(seed)
    if spikes is None:
        spikes = draw(st.booleans())
    if spikes:
        density = draw(st.sampled_from([0.0, 0.1, 0.5, 1.0]))
        return rng.random((batch, ticks, *shape)) < density
    return rng.normal(size=(batch, ticks, *shape)).astype(np.float32)
