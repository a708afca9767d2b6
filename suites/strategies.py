"""Hypothesis strategies for small valid NIR graphs over every pattern SpiNNaker2 accepts.

``nir_graphs(patterns=..., max_neurons=..., integer_weights=...)`` draws a ``nir.NIRGraph``
made of a chain of *stages*; each stage is one accepted edge pattern of py-spinnaker2's
converter, fed by the previous stage's neuron population (or the Input):

=====================  ==============================================================
``dense``              src -> Affine|Linear -> neuron                               (1-D)
``fanin``              src -> Affine -> neuron  and  src -> Linear -> same neuron   (1-D)
``recurrent``          src -> Linear -> neuron,  neuron -> Linear -> same neuron    (1-D)
``conv``               src -> Conv2d -> IF|LIF                                       (3-D)
``pool_conv``          src -> SumPool2d -> Conv2d -> IF|LIF                          (3-D)
``pool``               src -> SumPool2d -> neuron                                    (3-D)
``pool_flatten_dense`` src -> SumPool2d -> Flatten -> Affine -> neuron           (3-D -> 1-D)
=====================  ==============================================================

Array contents come from a numpy generator seeded by one drawn integer (fast to draw;
hypothesis still shrinks the structure). Weights are float32; with ``integer_weights`` they
are integer-valued in ``[-weight_max, weight_max]`` (a quantized graph, see docs/contracts.md).
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from hypothesis import strategies as st

PATTERNS_1D = ("dense", "fanin", "recurrent")
PATTERNS_3D = ("conv", "pool_conv", "pool", "pool_flatten_dense")
PATTERNS = PATTERNS_1D + PATTERNS_3D
NEURON_TYPES = ("LIF", "IF", "CubaLIF")

#: tick the neuron time constants are drawn for (tau in [2, 30] ticks of 1e-4 s)
DT = 1e-4


class _Builder:
    def __init__(self, rng: np.random.Generator, integer_weights: bool, weight_max: int, bias: bool) -> None:
        self.rng = rng
        self.integer = integer_weights
        self.weight_max = weight_max
        self.bias = bias
        self.nodes: Dict[str, object] = {}
        self.edges: List[Tuple[str, str]] = []
        self.k = 0

    def name(self, stem: str) -> str:
        self.k += 1
        return f"{stem}{self.k}"

    def weights(self, shape: Tuple[int, ...], fan_in: int) -> np.ndarray:
        if self.integer:
            w = self.rng.integers(-self.weight_max, self.weight_max + 1, size=shape)
            return w.astype(np.float32)
        return (self.rng.normal(0.0, 1.0, size=shape) / np.sqrt(max(fan_in, 1))).astype(np.float32)

    def biases(self, n: int) -> np.ndarray:
        if not self.bias:
            return np.zeros(n, dtype=np.float32)
        return (self.rng.normal(0.0, 0.2, size=n) * (self.rng.random(n) < 0.5)).astype(np.float32)

    def neuron(self, typ: str, shape: Tuple[int, ...], fan_in_scale: float) -> object:
        import nir

        rng = self.rng
        shape = tuple(int(s) for s in shape)
        tau = rng.uniform(2, 30, size=shape) * DT
        r = rng.uniform(0.5, 2.0, size=shape)
        # thresholds around what one tick of typical input adds to v (graph units, dt = DT),
        # so that a few ticks of input make a spike
        u = rng.uniform(0.3, 2.0, size=shape) * fan_in_scale
        f = lambda a: np.asarray(a, dtype=np.float32)  # noqa: E731
        if typ == "IF":
            thr = u * r
            return nir.IF(r=f(r), v_threshold=f(thr), v_reset=f(np.zeros(shape)))
        if typ == "LIF":
            thr = u * r * DT / tau
            v_leak = rng.normal(0, 0.1, size=shape) * (rng.random(shape) < 0.3)
            return nir.LIF(tau=f(tau), r=f(r), v_leak=f(v_leak), v_threshold=f(thr), v_reset=f(np.zeros(shape)))
        tau_syn = rng.uniform(2, 10, size=shape) * DT
        w_in = rng.uniform(0.5, 2.0, size=shape)
        thr = u * r * DT / tau * w_in * DT / tau_syn * 3
        return nir.CubaLIF(tau_syn=f(tau_syn), tau_mem=f(tau), r=f(r), v_leak=f(np.zeros(shape)),
                           v_threshold=f(thr), v_reset=f(np.zeros(shape)), w_in=f(w_in))

    def typical_input(self, w: np.ndarray) -> float:
        return float(np.abs(w).sum() / max(w.shape[0], 1)) * 0.3 + 1e-3


@st.composite
def nir_graphs(draw: st.DrawFn, patterns: Sequence[str] = PATTERNS, max_neurons: int = 24, max_stages: int = 2,
               integer_weights: bool = False, weight_max: int = 127, neuron_types: Sequence[str] = NEURON_TYPES,
               bias: bool = True) -> object:
    """Draw a small valid NIR graph built from ``patterns`` (see module docstring).

    Args:
        patterns: which stage patterns may appear (at least one must fit a 1-D or 3-D input).
        max_neurons: upper bound on each population's size.
        max_stages: number of stages chained (1..max_stages).
        integer_weights: integer-valued float32 weights in [-weight_max, weight_max].
        neuron_types: allowed neuron node types (CubaLIF never follows a Conv2d).
        bias: allow non-zero Affine/Conv2d biases.

    Returns:
        ``nir.NIRGraph`` with one Input, one Output (fed by the last population).
    """
    import nir

    patterns = tuple(patterns)
    seed = draw(st.integers(0, 2 ** 32 - 1))
    b = _Builder(np.random.default_rng(seed), integer_weights, weight_max, bias)
    n_stages = draw(st.integers(1, max_stages))
    spatial_first = [p for p in patterns if p in PATTERNS_3D]
    flat_first = [p for p in patterns if p in PATTERNS_1D]
    first = draw(st.sampled_from(spatial_first + flat_first))
    if first in PATTERNS_3D:
        c = draw(st.integers(1, 2))
        h = draw(st.integers(2, 6))
        w = draw(st.integers(2, 6))
        shape: Tuple[int, ...] = (c, h, w)
    else:
        shape = (draw(st.integers(1, max_neurons)),)
    b.nodes["input"] = nir.Input(input_type={"input": np.array(shape)})
    src = "input"
    pattern: Optional[str] = first
    for stage in range(n_stages):
        if stage > 0:
            options = [p for p in patterns if (p in PATTERNS_3D) == (len(shape) == 3)]
            if not options:
                break
            pattern = draw(st.sampled_from(options))
        types = [t for t in neuron_types if not (t == "CubaLIF" and pattern in ("conv", "pool_conv"))]
        if not types:
            break
        typ = draw(st.sampled_from(types))
        src, shape = _stage(draw, b, pattern, src, shape, typ, max_neurons)
    b.nodes["output"] = nir.Output(output_type={"output": np.array(shape)})
    b.edges.append((src, "output"))
    return nir.NIRGraph(nodes=b.nodes, edges=b.edges)


def _stage(draw: st.DrawFn, b: _Builder, pattern: str, src: str, shape: Tuple[int, ...], typ: str,
           max_neurons: int) -> Tuple[str, Tuple[int, ...]]:
    import nir

    if pattern in ("dense", "fanin", "recurrent"):
        n_in = int(shape[0])
        n_out = draw(st.integers(1, max_neurons))
        post = b.name("n")
        kinds = ["Affine", "Linear"] if pattern == "dense" else (["Affine", "Linear"] if pattern == "fanin" else ["Linear"])
        if pattern == "dense":
            kinds = [draw(st.sampled_from(kinds))]
        scale = 0.0
        for kind in kinds:
            w = b.weights((n_out, n_in), n_in)
            scale += b.typical_input(w)
            wn = b.name("fc")
            b.nodes[wn] = nir.Affine(weight=w, bias=b.biases(n_out)) if kind == "Affine" else nir.Linear(weight=w)
            b.edges += [(src, wn), (wn, post)]
        if pattern == "recurrent":
            w = b.weights((n_out, n_out), n_out)
            rn = b.name("rec")
            b.nodes[rn] = nir.Linear(weight=w)
            b.edges += [(post, rn), (rn, post)]
        b.nodes[post] = b.neuron(typ, (n_out,), scale)
        return post, (n_out,)

    c, h, w_ = (int(s) for s in shape)
    if pattern in ("pool", "pool_conv", "pool_flatten_dense"):
        k = draw(st.integers(1, max(1, min(2 if pattern == "pool_conv" else 3, h, w_))))
        # only a pool folded into a Conv2d needs kernel == stride and no padding (the converter's
        # create_sumpool2d_conv2d_projection asserts it); into a neuron or Flatten -> Affine any
        # stride and padding go through connection_list_for_sumpool2d
        ps = k if pattern == "pool_conv" else draw(st.integers(1, k))
        pp = 0 if pattern == "pool_conv" else draw(st.integers(0, k // 2))
        pn = b.name("pool")
        b.nodes[pn] = nir.SumPool2d(kernel_size=np.array([k, k]), stride=np.array([ps, ps]), padding=np.array([pp, pp]))
        b.edges.append((src, pn))
        pooled = (c, (h + 2 * pp - k) // ps + 1, (w_ + 2 * pp - k) // ps + 1)
        if pattern == "pool":
            post = b.name("n")
            b.nodes[post] = b.neuron(typ, pooled, float(k * k) * 0.5)
            b.edges.append((pn, post))
            return post, pooled
        if pattern == "pool_flatten_dense":
            fn = b.name("flat")
            b.nodes[fn] = nir.Flatten(input_type={"input": np.array(pooled)}, start_dim=0, end_dim=-1)
            n_in = int(np.prod(pooled))
            n_out = draw(st.integers(1, max_neurons))
            wmat = b.weights((n_out, n_in), n_in)
            an = b.name("fc")
            b.nodes[an] = nir.Affine(weight=wmat, bias=b.biases(n_out))
            post = b.name("n")
            b.nodes[post] = b.neuron(typ, (n_out,), b.typical_input(wmat) * k * k)
            b.edges += [(pn, fn), (fn, an), (an, post)]
            return post, (n_out,)
        src, shape, conv_src_factor = pn, pooled, k * k
    else:
        conv_src_factor = 1
    c, h, w_ = (int(s) for s in shape)
    c_out = draw(st.integers(1, 3))
    # square kernels no larger than the map: nir 1.0.8's type inference mixes up the kernel
    # dims of non-square kernels
    kh = kw = draw(st.integers(1, min(3, h, w_)))
    stride = draw(st.integers(1, 2))
    pad = draw(st.integers(0, 1))
    groups = 1
    ho = (h + 2 * pad - kh) // stride + 1
    wo = (w_ + 2 * pad - kw) // stride + 1
    while c_out * ho * wo > max_neurons and c_out > 1:
        c_out -= 1
    wts = b.weights((c_out, c, kh, kw), c * kh * kw)
    cn = b.name("conv")
    b.nodes[cn] = nir.Conv2d(input_shape=(h, w_), weight=wts, stride=(stride, stride), padding=(pad, pad),
                             dilation=(1, 1), groups=groups, bias=b.biases(c_out))
    post = b.name("n")
    out = (c_out, ho, wo)
    b.nodes[post] = b.neuron(typ, out, b.typical_input(wts.reshape(c_out, -1)) * conv_src_factor)
    b.edges += [(src, cn), (cn, post)]
    return post, out


@st.composite
def conversion_options(draw: st.DrawFn, graph: object = None, scale_weights: Optional[bool] = None,
                       allow_delay: bool = True, min_delay: int = 0) -> object:
    """Draw ConversionOptions that ``graph`` can be lowered with.

    A connection delay is only drawn for graphs without Conv2d (the converter asserts delay 0 on
    conv projections; dense and pool connection lists carry it, the model stays lif_no_delay)
    (``min_delay`` > 0 then forces one). Weight scaling is off for graphs with a population fed
    by no weight node (the converter's ``127.0 / max_abs_weight`` divides by zero).
    """
    from s2emu.network import ConversionOptions

    types = {type(n).__name__ for n in getattr(graph, "nodes", {}).values()} if graph is not None else set()
    weights = [np.asarray(n.weight) for n in getattr(graph, "nodes", {}).values() if hasattr(n, "weight")]
    integer = all(np.all(w == np.round(w)) for w in weights)
    nodes = getattr(graph, "nodes", {}) if graph is not None else {}
    edges = getattr(graph, "edges", []) if graph is not None else []
    if scale_weights is None:
        scale_weights = draw(st.booleans()) if integer else True
    percentile = draw(st.sampled_from([100.0, 99.0, 90.0])) if scale_weights else 100.0
    for name, n in nodes.items():
        if type(n).__name__ not in ("IF", "LIF", "CubaLIF"):
            continue
        ws = [np.abs(np.asarray(nodes[s_].weight, dtype=np.float64)).ravel() for s_, d in edges
              if d == name and type(nodes[s_]).__name__ in ("Affine", "Linear", "Conv2d")]
        if not ws or np.percentile(np.concatenate(ws), percentile) == 0:
            scale_weights, percentile = False, 100.0   # the converter would divide by zero
    delay_ok = allow_delay and not ({"Conv2d"} & types)
    conn_delay = draw(st.integers(min_delay, 3)) if delay_ok else 0
    return ConversionOptions(
        dt=draw(st.sampled_from([1e-4, 5e-5, 2e-4])),
        integrator=draw(st.sampled_from(["euler", "exp"])),
        reset=draw(st.sampled_from(["subtract", "to_v_reset"])),
        conn_delay=conn_delay,
        scale_weights=scale_weights,
        percentile=percentile,
        fused_multiply_add=draw(st.booleans()),
        vendor_cast=not scale_weights and not integer,
    )


@st.composite
def spike_inputs(draw: st.DrawFn, input_shape: Tuple[int, ...], max_batch: int = 2, max_ticks: int = 12) -> np.ndarray:
    """Bool spikes (batch, time, *input_shape) with a drawn density."""
    seed = draw(st.integers(0, 2 ** 32 - 1))
    batch = draw(st.integers(1, max_batch))
    ticks = draw(st.integers(1, max_ticks))
    density = draw(st.sampled_from([0.05, 0.3, 0.7]))
    rng = np.random.default_rng(seed)
    return rng.random((batch, ticks) + tuple(int(s) for s in input_shape)) < density


#: the rejected patterns :func:`rejected_graphs` can draw, with the rule lowering must report
REJECTED = {
    "neuron_to_neuron": "unsupported-edge-pattern",
    "two_weight_layers": "unsupported-edge-pattern",
    "flatten_without_pool": "vendor-drops-flatten-without-pool",
    "conv1d": "vendor-drops-conv1d",
    "li": "unsupported-node-type",
    "threshold": "unsupported-node-type",
    "avgpool": "unsupported-node-type",
    "delay": "unsupported-node-type",
}


@st.composite
def rejected_graphs(draw: st.DrawFn, kinds: Sequence[str] = tuple(REJECTED)) -> Tuple[object, str, str]:
    """Draw ``(graph, rule, node)``: a small graph the converter cannot map, the rule name that
    must be reported and the node (or ``"a -> b"`` edge) it must name.

    The offending construct sits after a valid first stage (Input -> weights -> neuron).
    """
    import nir

    kind = draw(st.sampled_from(list(kinds)))
    seed = draw(st.integers(0, 2 ** 32 - 1))
    b = _Builder(np.random.default_rng(seed), False, 127, False)
    n = draw(st.integers(1, 8))
    f = lambda a: np.asarray(a, dtype=np.float32)  # noqa: E731
    typ = draw(st.sampled_from(["LIF", "IF"]))
    if kind in ("flatten_without_pool", "avgpool"):
        c, h = draw(st.integers(1, 2)), draw(st.integers(2, 4))
        b.nodes["input"] = nir.Input(input_type={"input": np.array([c, h, h])})
        w = b.weights((c, c, 1, 1), c)
        b.nodes["conv"] = nir.Conv2d(input_shape=(h, h), weight=w, stride=1, padding=0, dilation=1, groups=1,
                                     bias=np.zeros(c, np.float32))
        b.nodes["a"] = b.neuron(typ, (c, h, h), 1.0)
        b.edges += [("input", "conv"), ("conv", "a")]
        if kind == "flatten_without_pool":
            b.nodes["flat"] = nir.Flatten(input_type={"input": np.array([c, h, h])}, start_dim=0)
            b.nodes["fc"] = nir.Affine(weight=b.weights((n, c * h * h), c * h * h), bias=np.zeros(n, np.float32))
            b.nodes["b"] = b.neuron(typ, (n,), 1.0)
            b.edges += [("a", "flat"), ("flat", "fc"), ("fc", "b")]
            b.nodes["output"] = nir.Output(output_type={"output": np.array([n])})
            b.edges.append(("b", "output"))
            return nir.NIRGraph(nodes=b.nodes, edges=b.edges), REJECTED[kind], "a -> flat -> fc -> b"
        b.nodes["avg"] = nir.AvgPool2d(kernel_size=np.array([1, 1]), stride=np.array([1, 1]), padding=np.array([0, 0]))
        b.nodes["b"] = b.neuron(typ, (c, h, h), 1.0)
        b.nodes["output"] = nir.Output(output_type={"output": np.array([c, h, h])})
        b.edges += [("a", "avg"), ("avg", "b"), ("b", "output")]
        return nir.NIRGraph(nodes=b.nodes, edges=b.edges), REJECTED[kind], "avg"
    if kind == "conv1d":
        c, L = draw(st.integers(1, 2)), draw(st.integers(2, 5))
        b.nodes["input"] = nir.Input(input_type={"input": np.array([c, L])})
        b.nodes["c1"] = nir.Conv1d(input_shape=L, weight=b.weights((c, c, 1), c), stride=1, padding=0, dilation=1,
                                   groups=1, bias=np.zeros(c, np.float32))
        b.nodes["a"] = b.neuron(typ, (c, L), 1.0)
        b.nodes["output"] = nir.Output(output_type={"output": np.array([c, L])})
        b.edges += [("input", "c1"), ("c1", "a"), ("a", "output")]
        return nir.NIRGraph(nodes=b.nodes, edges=b.edges), REJECTED[kind], "input -> c1"
    n_in = draw(st.integers(1, 8))
    b.nodes["input"] = nir.Input(input_type={"input": np.array([n_in])})
    b.nodes["fc"] = nir.Linear(weight=b.weights((n, n_in), n_in))
    b.nodes["a"] = b.neuron(typ, (n,), 1.0)
    b.edges += [("input", "fc"), ("fc", "a")]
    last, node = "b", None
    if kind == "neuron_to_neuron":
        b.nodes["b"] = b.neuron(typ, (n,), 1.0)
        b.edges.append(("a", "b"))
        node = "a -> b"
    elif kind == "two_weight_layers":
        b.nodes["fc2"] = nir.Linear(weight=b.weights((n, n), n))
        b.nodes["fc3"] = nir.Linear(weight=b.weights((n, n), n))
        b.nodes["b"] = b.neuron(typ, (n,), 1.0)
        b.edges += [("a", "fc2"), ("fc2", "fc3"), ("fc3", "b")]
        node = "fc2 -> fc3"
    else:
        bad = {"li": nir.LI(tau=f(np.full(n, 1e-3)), r=f(np.ones(n)), v_leak=f(np.zeros(n))),
               "threshold": nir.Threshold(threshold=f(np.ones(n))),
               "delay": nir.Delay(delay=f(np.ones(n)))}[kind]
        b.nodes["x"] = bad
        b.nodes["fc2"] = nir.Linear(weight=b.weights((n, n), n))
        b.nodes["b"] = b.neuron(typ, (n,), 1.0)
        b.edges += [("a", "fc2"), ("fc2", "x")]
        last, node = "x", "x"
    b.nodes["output"] = nir.Output(output_type={"output": np.array([n])})
    b.edges.append((last, "output"))
    if last == "x":
        b.nodes.pop("b")
    return nir.NIRGraph(nodes=b.nodes, edges=b.edges), REJECTED[kind], node
