"""Write the bad-input corpus: NIR files that s2gate must reject with one clear error.

Usage::

    python -m suites.hardening.make_corpus OUTDIR     # writes the files and prints a table

The corpus is generated, not committed: the tests call :func:`build_corpus` into a pytest
temporary folder once per session (about 100 small files, well under a second). Reasons: the
bytes of an HDF5 file depend on the installed h5py/HDF5 version, so a committed corpus could
drift away from what ``nir.write`` produces today; generating keeps every case next to the one
line that explains it; and the repository stays free of binary blobs. The script is
deterministic (no randomness, no timestamps: h5py does not track dataset times by default),
which ``test_corpus_is_deterministic`` checks.

Each :class:`Case` says what is wrong and what the error must look like: the accepted rule
names (``S2GateError.rule``), the node or edge it must name, and at which stage it must be
caught:

* ``"load"``: :func:`s2common.graph.read_flat` rejects it (every command rejects it);
* ``"deploy"``: a valid NIR graph the chip cannot run (design rules / chip model reject it;
  the reference backend may run it);
* ``"quantized"``: a graph that claims to be quantized (``s2gate.quant`` metadata) but is not;
* ``"input"``: a valid graph, but the input data given with ``s2gate run --input`` is bad
  (the input file is written next to it as ``<name>.input.npy``).
"""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

REPO = Path(__file__).resolve().parents[2]
#: A real NIR file (the NIR paper's Sinabs CNN, bundled with the harness) to truncate.
REAL_NIR = REPO / "harness" / "bundled" / "cnn_sinabs.nir"


@dataclass(frozen=True)
class Case:
    """One bad file and the error it must get.

    Attributes:
        name: file name inside the corpus folder.
        what: what is wrong, in a few words.
        stage: ``"load"``, ``"deploy"``, ``"quantized"`` or ``"input"`` (see the module docstring).
        rules: accepted values of ``S2GateError.rule``.
        node: the node or edge the message must name (``None`` for file-level problems).
        backend: the ``s2gate run`` backend that must reject it (default: ``reference`` for load and
            input cases, ``emulator`` for deploy and quantized cases).
    """

    name: str
    what: str
    stage: str
    rules: Tuple[str, ...]
    node: Optional[str] = None
    backend: Optional[str] = None


_BUILDERS: List[Tuple[Case, Callable[[Path], None]]] = []


def _case(name: str, what: str, rules: Sequence[str] | str, node: Optional[str] = None, stage: str = "load",
          backend: Optional[str] = None):
    rules = (rules,) if isinstance(rules, str) else tuple(rules)

    def deco(fn: Callable[[Path], None]) -> Callable[[Path], None]:
        _BUILDERS.append((Case(name, what, stage, rules, node, backend), fn))
        return fn

    return deco


# --------------------------------------------------------------------------- carrier graphs
# One small valid graph per node type, with fixed node names, so that a defect planted in
# the HDF5 file is always in a known node.

def _f(*shape: int, value: float = 1.0) -> np.ndarray:
    return np.full(shape, value, dtype=np.float32)


def _ramp(*shape: int) -> np.ndarray:
    n = int(np.prod(shape))
    return (np.arange(n, dtype=np.float32).reshape(shape) % 7 - 3) / 4


def _lif(n, value=1.0):
    import nir

    shape = n if isinstance(n, tuple) else (n,)
    return nir.LIF(tau=_f(*shape, value=0.01), r=_f(*shape), v_leak=_f(*shape, value=0.0),
                   v_threshold=_f(*shape, value=value), v_reset=_f(*shape, value=0.0))


def _if(shape):
    import nir

    return nir.IF(r=_f(*shape), v_threshold=_f(*shape), v_reset=_f(*shape, value=0.0))


def _neuron(typ: str, n: int):
    import nir

    s = (n,)
    return {
        "I": lambda: nir.I(r=_f(*s)),
        "IF": lambda: _if(s),
        "LI": lambda: nir.LI(tau=_f(*s, value=0.01), r=_f(*s), v_leak=_f(*s, value=0.0)),
        "LIF": lambda: _lif(n),
        "CubaLI": lambda: nir.CubaLI(tau_syn=_f(*s, value=0.005), tau_mem=_f(*s, value=0.01), r=_f(*s),
                                     v_leak=_f(*s, value=0.0), w_in=_f(*s)),
        "CubaLIF": lambda: nir.CubaLIF(tau_syn=_f(*s, value=0.005), tau_mem=_f(*s, value=0.01), r=_f(*s),
                                       v_leak=_f(*s, value=0.0), v_threshold=_f(*s), v_reset=_f(*s, value=0.0),
                                       w_in=_f(*s)),
    }[typ]()


def _inp(*shape: int):
    import nir

    return nir.Input(input_type={"input": np.array(shape)})


def _out(*shape: int):
    import nir

    return nir.Output(output_type={"output": np.array(shape)})


def _chain(*named) -> "object":
    """A NIRGraph from (name, node) pairs connected in a chain."""
    import nir

    nodes = dict(named)
    names = [n for n, _ in named]
    return nir.NIRGraph(nodes=nodes, edges=list(zip(names[:-1], names[1:])), type_check=False)


def carrier(typ: str) -> Tuple[object, str]:
    """A valid graph containing one node of type ``typ``; returns (graph, that node's name)."""
    import nir

    if typ in ("Input", "Output", "Affine"):
        g = _chain(("inp", _inp(3)), ("fc", nir.Affine(weight=_ramp(4, 3), bias=_f(4, value=0.1))), ("lif", _lif(4)),
                   ("out", _out(4)))
        return g, {"Input": "inp", "Output": "out", "Affine": "fc"}[typ]
    if typ == "Linear":
        return _chain(("inp", _inp(3)), ("fc", nir.Linear(weight=_ramp(4, 3))), ("lif", _lif(4)), ("out", _out(4))), "fc"
    if typ == "Scale":
        return _chain(("inp", _inp(3)), ("sc", nir.Scale(scale=_f(3, value=2.0))), ("lif", _lif(3)), ("out", _out(3))), "sc"
    if typ == "Conv1d":
        conv = nir.Conv1d(input_shape=8, weight=_ramp(3, 2, 3), stride=1, padding=0, dilation=1, groups=1, bias=_f(3))
        return _chain(("inp", _inp(2, 8)), ("conv", conv), ("lif", _lif((3, 6))), ("out", _out(3, 6))), "conv"
    if typ == "Conv2d":
        conv = nir.Conv2d(input_shape=(6, 6), weight=_ramp(3, 2, 3, 3), stride=1, padding=0, dilation=1, groups=1,
                          bias=_f(3))
        return _chain(("inp", _inp(2, 6, 6)), ("conv", conv), ("if", _if((3, 4, 4))), ("out", _out(3, 4, 4))), "conv"
    if typ in ("SumPool2d", "AvgPool2d"):
        pool = getattr(nir, typ)(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0]))
        return _chain(("inp", _inp(2, 6, 6)), ("pool", pool), ("if", _if((2, 3, 3))), ("out", _out(2, 3, 3))), "pool"
    if typ == "Flatten":
        flat = nir.Flatten(input_type={"input": np.array([2, 3, 3])}, start_dim=0, end_dim=-1)
        return _chain(("inp", _inp(2, 3, 3)), ("flat", flat), ("lif", _lif(18)), ("out", _out(18))), "flat"
    if typ == "Threshold":
        return _chain(("inp", _inp(3)), ("fc", nir.Linear(weight=_ramp(4, 3))),
                      ("thr", nir.Threshold(threshold=_f(4))), ("out", _out(4))), "thr"
    if typ == "Delay":
        return _chain(("inp", _inp(3)), ("fc", nir.Linear(weight=_ramp(4, 3))), ("lif", _lif(4)),
                      ("delay", nir.Delay(delay=_f(4, value=2.0))), ("out", _out(4))), "delay"
    if typ in ("I", "IF", "LI", "LIF", "CubaLI", "CubaLIF"):
        return _chain(("inp", _inp(3)), ("fc", nir.Linear(weight=_ramp(4, 3))), ("neuron", _neuron(typ, 4)),
                      ("out", _out(4))), "neuron"
    raise KeyError(typ)


CARRIER_TYPES = ("Input", "Output", "Affine", "Linear", "Scale", "Conv1d", "Conv2d", "SumPool2d", "AvgPool2d",
                 "Flatten", "Threshold", "Delay", "I", "IF", "LI", "LIF", "CubaLI", "CubaLIF")


def write_nir(path: Path, graph: object) -> None:
    import nir

    nir.write(str(path), graph)


def _edit(path: Path, fn: Callable[["object"], None]) -> None:
    import h5py

    with h5py.File(path, "r+") as f:
        fn(f)


def _replace(f, key: str, data, dtype=None) -> None:
    del f[key]
    if dtype is None:
        f.create_dataset(key, data=data)
    else:
        f.create_dataset(key, data=data, dtype=dtype)


def _node_key(name: str) -> str:
    return "node/nodes/" + "/nodes/".join(name.split("."))


def _base(path: Path) -> None:
    write_nir(path, carrier("Affine")[0])


# --------------------------------------------------------------------------- file-level cases

@_case("not_hdf5.nir", "a text file", "not-hdf5")
def _(path: Path) -> None:
    path.write_text("this is a plain text file, not an HDF5 NIR graph\n")


@_case("empty.nir", "an empty file (0 bytes)", "not-hdf5")
def _(path: Path) -> None:
    path.write_bytes(b"")


@_case("truncated.nir", "a real NIR file (NIR paper's Sinabs CNN) cut in half", ("truncated", "unreadable-nir"))
def _(path: Path) -> None:
    if REAL_NIR.exists():
        data = REAL_NIR.read_bytes()
    else:  # pragma: no cover - the bundled file ships with the repository
        tmp = path.with_suffix(".full")
        write_nir(tmp, carrier("Conv2d")[0])
        data = tmp.read_bytes()
        tmp.unlink()
    path.write_bytes(data[: len(data) // 2])


@_case("hdf5_not_nir.nir", "an HDF5 file without NIR's 'node' group", "not-nir")
def _(path: Path) -> None:
    import h5py

    with h5py.File(path, "w") as f:
        f.create_dataset("data", data=np.arange(4))


# --------------------------------------------------------------------------- edited parameters

@_case("string_weight.nir", "Affine weight stored as a string", "wrong-dtype", "fc")
def _(path: Path) -> None:
    _base(path)
    _edit(path, lambda f: _replace(f, _node_key("fc") + "/weight", "0.5, 0.5, 0.5", dtype=__import__("h5py").string_dtype()))


@_case("string_tau.nir", "LIF tau stored as an array of strings", "wrong-dtype", "lif")
def _(path: Path) -> None:
    _base(path)
    _edit(path, lambda f: _replace(f, _node_key("lif") + "/tau", np.array([b"0.01"] * 4)))


@_case("complex_weight.nir", "Affine weight of complex numbers", "wrong-dtype", "fc")
def _(path: Path) -> None:
    _base(path)
    _edit(path, lambda f: _replace(f, _node_key("fc") + "/weight", _ramp(4, 3).astype(np.complex64) * 1j))


@_case("missing_lif_tau.nir", "LIF without its tau dataset", "missing-parameter", "lif")
def _(path: Path) -> None:
    _base(path)
    _edit(path, lambda f: f.__delitem__(_node_key("lif") + "/tau"))


@_case("missing_affine_weight.nir", "Affine without its weight dataset", "missing-parameter", "fc")
def _(path: Path) -> None:
    _base(path)
    _edit(path, lambda f: f.__delitem__(_node_key("fc") + "/weight"))


@_case("missing_type.nir", "a node group without its 'type' dataset", "missing-parameter", "lif")
def _(path: Path) -> None:
    _base(path)
    _edit(path, lambda f: f.__delitem__(_node_key("lif") + "/type"))


@_case("missing_edges.nir", "a graph without its 'edges' dataset", "missing-parameter")
def _(path: Path) -> None:
    _base(path)
    _edit(path, lambda f: f.__delitem__("node/edges"))


@_case("extra_param.nir", "LIF with an unknown parameter 'tau_adapt'", "unknown-parameter", "lif")
def _(path: Path) -> None:
    _base(path)
    _edit(path, lambda f: f.create_dataset(_node_key("lif") + "/tau_adapt", data=_f(4)))


@_case("unknown_type.nir", "a node whose type is 'Foo'", "unknown-node-type", "lif")
def _(path: Path) -> None:
    import h5py

    _base(path)
    _edit(path, lambda f: _replace(f, _node_key("lif") + "/type", "Foo", dtype=h5py.string_dtype()))


@_case("param_shapes_differ.nir", "LIF tau has 3 entries, the other parameters 4", "param-shape-mismatch", "lif")
def _(path: Path) -> None:
    _base(path)
    _edit(path, lambda f: _replace(f, _node_key("lif") + "/tau", _f(3, value=0.01)))


@_case("negative_tau.nir", "LIF with tau < 0", "non-positive-time-constant", "lif")
def _(path: Path) -> None:
    _base(path)
    _edit(path, lambda f: _replace(f, _node_key("lif") + "/tau", _f(4, value=-0.01)))


@_case("negative_delay.nir", "Delay of -2 ticks", "negative-delay", "delay")
def _(path: Path) -> None:
    write_nir(path, carrier("Delay")[0])
    _edit(path, lambda f: _replace(f, _node_key("delay") + "/delay", _f(4, value=-2.0)))


@_case("bad_padding.nir", "Conv2d padding 'foo'", ("bad-padding", "invalid-node"), "conv")
def _(path: Path) -> None:
    import h5py

    write_nir(path, carrier("Conv2d")[0])
    _edit(path, lambda f: _replace(f, _node_key("conv") + "/padding", "foo", dtype=h5py.string_dtype()))


@_case("affine_weight_3d.nir", "Affine weight with 3 dimensions", ("weight-ndim", "shape-mismatch"), "fc")
def _(path: Path) -> None:
    _base(path)
    _edit(path, lambda f: _replace(f, _node_key("fc") + "/weight", _ramp(4, 3, 1)))


@_case("zero_stride.nir", "Conv2d stride 0", "non-positive-parameter", "conv")
def _(path: Path) -> None:
    write_nir(path, carrier("Conv2d")[0])
    _edit(path, lambda f: _replace(f, _node_key("conv") + "/stride", np.array([0, 1])))


@_case("huge_dilation.nir", "Conv1d dilation 1e300 (a whole number, but far beyond int64)", "parameter-out-of-range",
       "conv")
def _(path: Path) -> None:
    write_nir(path, carrier("Conv1d")[0])
    _edit(path, lambda f: _replace(f, _node_key("conv") + "/dilation", np.array([1e300])))


@_case("fractional_kernel.nir", "SumPool2d kernel_size 1.5", "non-integer-parameter", "pool")
def _(path: Path) -> None:
    write_nir(path, carrier("SumPool2d")[0])
    _edit(path, lambda f: _replace(f, _node_key("pool") + "/kernel_size", np.array([1.5, 1.5])))


@_case("negative_padding.nir", "Conv2d padding -1", "negative-parameter", "conv")
def _(path: Path) -> None:
    write_nir(path, carrier("Conv2d")[0])
    _edit(path, lambda f: _replace(f, _node_key("conv") + "/padding", np.array([-1, -1])))


@_case("flatten_dims.nir", "Flatten start_dim 5 on a 3-D input", "shape-mismatch", "flat")
def _(path: Path) -> None:
    write_nir(path, carrier("Flatten")[0])
    _edit(path, lambda f: _replace(f, _node_key("flat") + "/start_dim", 5))


@_case("zero_neurons.nir", "an Affine with 0 output rows into a 0-neuron LIF", "empty-shape", "fc")
def _(path: Path) -> None:
    import nir

    write_nir(path, _chain(("inp", _inp(3)), ("fc", nir.Affine(weight=np.zeros((0, 3), np.float32),
                                                                 bias=np.zeros(0, np.float32))),
                           ("lif", _lif(0)), ("out", _out(0))))


# --------------------------------------------------------------------------- NaN / inf everywhere

def _poison(typ: str, param: str, bad: float) -> Callable[[Path], None]:
    def build(path: Path) -> None:
        graph, name = carrier(typ)
        write_nir(path, graph)

        def edit(f) -> None:
            key = _node_key(name) + "/" + param
            arr = np.array(f[key][()], dtype=np.float64)
            flat = arr.reshape(-1)
            flat[flat.size // 2] = bad
            _replace(f, key, flat.reshape(arr.shape))

        _edit(path, edit)

    return build


def _numeric_params(typ: str) -> List[str]:
    """The numeric datasets ``nir.write`` stores for a node of type ``typ`` (sorted)."""
    graph, name = carrier(typ)
    d = graph.nodes[name].to_dict()
    return sorted(k for k, v in d.items() if k not in ("type", "metadata", "input_type", "output_type")
                  and np.asarray(v).dtype.kind in "biuf")


def _register_poison() -> None:
    for typ in CARRIER_TYPES:
        _, name = carrier(typ)
        for param in _numeric_params(typ):
            for label, bad in (("nan", np.nan), ("inf", np.inf)):
                _case(f"{label}_{typ.lower()}_{param}.nir", f"{label} in {typ} '{param}'", "non-finite-parameter",
                      name)(_poison(typ, param, bad))


# --------------------------------------------------------------------------- structure

@_case("nan_in_subgraph.nir", "NaN in the tau of a LIF inside a nested NIRGraph", "non-finite-parameter", "sub.lif")
def _(path: Path) -> None:
    import nir

    inner = _chain(("i", _inp(4)), ("lif", _lif(4)), ("o", _out(4)))
    inner.nodes["lif"].tau[1] = np.nan
    g = nir.NIRGraph(nodes={"inp": _inp(3), "fc": nir.Linear(weight=_ramp(4, 3)), "sub": inner, "out": _out(4)},
                     edges=[("inp", "fc"), ("fc", "sub"), ("sub", "out")], type_check=False)
    write_nir(path, g)


@_case("shapes_do_not_chain.nir", "Affine 10->5 after a 7-neuron LIF", "shape-mismatch", "fc2")
def _(path: Path) -> None:
    import nir

    write_nir(path, _chain(("inp", _inp(3)), ("fc1", nir.Affine(weight=_ramp(7, 3), bias=_f(7))), ("lif1", _lif(7)),
                           ("fc2", nir.Affine(weight=_ramp(5, 10), bias=_f(5))), ("lif2", _lif(5)), ("out", _out(5))))


@_case("summed_shapes_differ.nir", "two edges of different shapes into one LIF", "shape-mismatch", "lif")
def _(path: Path) -> None:
    import nir

    g = nir.NIRGraph(nodes={"inp": _inp(3), "a": nir.Linear(weight=_ramp(4, 3)), "b": nir.Linear(weight=_ramp(5, 3)),
                            "lif": _lif(4), "out": _out(4)},
                     edges=[("inp", "a"), ("inp", "b"), ("a", "lif"), ("b", "lif"), ("lif", "out")], type_check=False)
    write_nir(path, g)


@_case("stateless_cycle.nir", "Linear -> Linear -> back to the first Linear, no neuron on the loop",
       "stateless-cycle", "lin2 -> lin1")
def _(path: Path) -> None:
    import nir

    g = nir.NIRGraph(nodes={"inp": _inp(3), "lin1": nir.Linear(weight=_ramp(3, 3)), "lin2": nir.Linear(weight=_ramp(3, 3)),
                            "lif": _lif(3), "out": _out(3)},
                     edges=[("inp", "lin1"), ("lin1", "lin2"), ("lin2", "lin1"), ("lin2", "lif"), ("lif", "out")],
                     type_check=False)
    write_nir(path, g)


@_case("empty_graph.nir", "a NIRGraph with no nodes and no edges", "empty-graph")
def _(path: Path) -> None:
    import nir

    write_nir(path, nir.NIRGraph(nodes={}, edges=[], type_check=False))


@_case("two_inputs.nir", "two Input nodes", "several-inputs", "inp2")
def _(path: Path) -> None:
    import nir

    g = nir.NIRGraph(nodes={"inp1": _inp(3), "inp2": _inp(3), "fc": nir.Linear(weight=_ramp(4, 3)), "lif": _lif(4),
                            "out": _out(4)},
                     edges=[("inp1", "fc"), ("inp2", "fc"), ("fc", "lif"), ("lif", "out")], type_check=False)
    write_nir(path, g)


@_case("no_input.nir", "no Input node", "no-input")
def _(path: Path) -> None:
    import nir

    write_nir(path, _chain(("fc", nir.Linear(weight=_ramp(4, 3))), ("lif", _lif(4)), ("out", _out(4))))


@_case("no_output.nir", "no Output node", "no-output")
def _(path: Path) -> None:
    import nir

    write_nir(path, _chain(("inp", _inp(3)), ("fc", nir.Linear(weight=_ramp(4, 3))), ("lif", _lif(4))))


@_case("unconnected_node.nir", "a LIF that nothing feeds", "unconnected-node", "lone")
def _(path: Path) -> None:
    import nir

    g = _chain(("inp", _inp(3)), ("fc", nir.Linear(weight=_ramp(4, 3))), ("lif", _lif(4)), ("out", _out(4)))
    g.nodes["lone"] = _lif(4)
    g.edges.append(("lone", "out"))
    write_nir(path, g)


@_case("edge_to_missing_node.nir", "an edge lif -> ghost to a node that does not exist", "edge-to-unknown-node",
       "lif -> ghost")
def _(path: Path) -> None:
    _base(path)

    def edit(f) -> None:
        edges = [tuple(e) for e in f["node/edges"][()]] + [(b"lif", b"ghost")]
        _replace(f, "node/edges", np.array(edges, dtype=object), dtype=__import__("h5py").string_dtype())

    _edit(path, edit)


@_case("malformed_edges.nir", "edges stored as triples", "bad-edge")
def _(path: Path) -> None:
    import h5py

    _base(path)
    _edit(path, lambda f: _replace(f, "node/edges", np.array([["inp", "fc", "lif"]], dtype=object),
                                   dtype=h5py.string_dtype()))


# --------------------------------------------------------------------------- enormous shapes, no allocation

@_case("huge_input_affine.nir", "Input declares 10^9 values, the Affine after it takes 3", "shape-mismatch", "fc")
def _(path: Path) -> None:
    _base(path)
    _edit(path, lambda f: _replace(f, _node_key("inp") + "/shape", np.array([10 ** 9])))


@_case("huge_conv.nir", "Input of 2x10^5x10^5 values into a Conv2d with a 3x3 kernel", "shape-too-large", "inp")
def _(path: Path) -> None:
    import nir

    big = 10 ** 5
    conv = nir.Conv2d(input_shape=(big, big), weight=_ramp(3, 2, 3, 3), stride=1, padding=0, dilation=1, groups=1,
                      bias=_f(3))
    write_nir(path, _chain(("inp", _inp(2, big, big)), ("conv", conv), ("if", _if((3, 4, 4))), ("out", _out(3, 4, 4))))


@_case("huge_conv_mismatch.nir", "Conv2d on a 2x30000x30000 input (1x2x3x3 kernel) into a 3x4x4 IF", "shape-mismatch",
       "if")
def _(path: Path) -> None:
    import nir

    big = 30_000
    conv = nir.Conv2d(input_shape=(big, big), weight=_ramp(1, 2, 3, 3), stride=1, padding=0, dilation=1, groups=1,
                      bias=_f(1))
    write_nir(path, _chain(("inp", _inp(2, big, big)), ("conv", conv), ("if", _if((3, 4, 4))), ("out", _out(3, 4, 4))))


@_case("huge_passthrough.nir", "Input of 10^12 values wired straight to the Output", "shape-too-large", "inp")
def _(path: Path) -> None:
    write_nir(path, _chain(("inp", _inp(10 ** 6, 10 ** 6)), ("out", _out(10 ** 6, 10 ** 6))))


# --------------------------------------------------------------------------- valid NIR, not deployable

@_case("exceeds_chip.nir", "six Conv2d+IF layers of 8x96x96 neurons (442k neurons, more than one chip holds)",
       "network-exceeds-chip", None, stage="deploy")
def _(path: Path) -> None:
    import nir

    side, ch = 96, 8
    named: List[Tuple[str, object]] = [("inp", _inp(1, side, side))]
    cin = 1
    for k in range(6):
        w = np.zeros((ch, cin, 3, 3), np.float32)
        w[:, :, 1, 1] = 1.0
        named.append((f"conv{k}", nir.Conv2d(input_shape=(side, side), weight=w, stride=1, padding=1, dilation=1,
                                             groups=1, bias=np.zeros(ch, np.float32))))
        named.append((f"if{k}", _if((ch, side, side))))
        cin = ch
    named.append(("out", _out(ch, side, side)))
    write_nir(path, _chain(*named))


@_case("neuron_to_neuron.nir", "a LIF wired straight into another LIF (no weights between)",
       "unsupported-edge-pattern", "lif2",
       stage="deploy")
def _(path: Path) -> None:
    import nir

    write_nir(path, _chain(("inp", _inp(3)), ("fc", nir.Linear(weight=_ramp(4, 3))), ("lif1", _lif(4)),
                           ("lif2", _lif(4)), ("out", _out(4))))


@_case("conv1d_layer.nir", "a Conv1d layer (the vendor converter makes no projection for it)",
       ("vendor-drops-conv1d", "unsupported-edge-pattern"), "conv",
       stage="deploy")
def _(path: Path) -> None:
    write_nir(path, carrier("Conv1d")[0])


# --------------------------------------------------------------------------- quantized, but not really

@_case("quantized_non_integer.nir", "s2gate.quant metadata but weights 0.25, 0.5, ... (not integer codes)",
       ("weight-not-integer", "not-quantized", "non-integer-weight", "quantization"), "fc", stage="quantized")
def _(path: Path) -> None:
    import nir

    quant = {"scale": 10.0, "bits": 8, "percentile": 100.0, "rounding": "nearest", "flow": "ptq"}
    fc = nir.Linear(weight=_ramp(4, 3), metadata={"s2gate.quant": quant})
    g = nir.NIRGraph(nodes={"inp": _inp(3), "fc": fc, "lif": _lif(4), "out": _out(4)},
                     edges=[("inp", "fc"), ("fc", "lif"), ("lif", "out")],
                     metadata={"s2gate.quant": {"flow": "ptq", "percentile": 100.0}}, type_check=False)
    write_nir(path, g)


# --------------------------------------------------------------------------- bad input data

@_case("nan_input.nir", "a valid graph; --input holds NaN", ("bad-input", "non-finite-input"), None, stage="input")
def _(path: Path) -> None:
    _base(path)
    x = np.zeros((2, 5, 3), np.float32)
    x[1, 2, 0] = np.nan
    np.save(str(path) + ".input.npy", x, allow_pickle=False)


@_case("wrong_shape_input.nir", "a valid graph of 3 inputs; --input has 5 channels", "bad-input", None, stage="input")
def _(path: Path) -> None:
    _base(path)
    np.save(str(path) + ".input.npy", np.zeros((2, 5, 5), np.float32), allow_pickle=False)


@_case("pickled_input.nir", "a valid graph; --input is a pickled object array (.npy)", "bad-input", stage="input")
def _(path: Path) -> None:
    _base(path)
    np.save(str(path) + ".input.npy", np.array([{"spikes": 1}], dtype=object), allow_pickle=True)


@_case("text_input.nir", "a valid graph; --input is a text file named .npy", "bad-input", stage="input")
def _(path: Path) -> None:
    _base(path)
    Path(str(path) + ".input.npy").write_text("0 1 0\n1 0 1\n")


@_case("negative_spikes_input.nir", "a valid graph; the emulator's --input holds -1 (spikes are 0/1)", "bad-input",
       stage="input", backend="emulator")
def _(path: Path) -> None:
    _base(path)
    np.save(str(path) + ".input.npy", -np.ones((2, 5, 3), np.float32), allow_pickle=False)


_register_poison()


def cases() -> List[Case]:
    """Every case of the corpus (without writing files)."""
    return [c for c, _ in _BUILDERS]


def build_corpus(outdir: "str | os.PathLike[str]", only: Optional[Sequence[str]] = None) -> List[Case]:
    """Write the corpus into ``outdir`` (created if needed); returns the cases written."""
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for case, build in _BUILDERS:
        if only is not None and case.name not in only:
            continue
        build(out / case.name)
        written.append(case)
    return written


def main(argv: Optional[List[str]] = None) -> int:
    from tabulate import tabulate

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdir", help="folder to write the corpus into")
    args = parser.parse_args(argv)
    written = build_corpus(args.outdir)
    rows = [(c.name, c.stage, ",".join(c.rules) or "(any rule)", c.node or "", c.what) for c in written]
    print(tabulate(rows, headers=["file", "stage", "rule", "node", "what is wrong"]))
    print(f"{len(written)} files in {args.outdir}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
