"""``s2gate map`` on the converter's limits: exit 1 and the named rule (no traceback), or accepted.

Each graph's outcome is read from py-spinnaker2's converter (GitHub ``SpiNNakerManchester/sPiNNIRker``,
commit 47c758b, ``spinnirker/__init__.py``); the source line is quoted per case.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Tuple

import nir
import numpy as np
import pytest

F = np.float32


def _if(shape):
    return nir.IF(r=np.ones(shape, F), v_threshold=np.ones(shape, F), v_reset=np.zeros(shape, F))


def _io(shape):
    return nir.Input(input_type={"input": np.array(shape)}), nir.Output(output_type={"output": np.array(shape)})


def _conv_graph(dilation: int = 1, groups: int = 1) -> object:
    c, h, k = 2, 5, 3
    ho = h + 2 - dilation * (k - 1)
    inp, _ = _io([c, h, h])
    _, out = _io([c, ho, ho])
    cv = nir.Conv2d(input_shape=(h, h), weight=np.ones((c, c // groups, k, k), F), stride=1, padding=1,
                    dilation=dilation, groups=groups, bias=np.zeros(c, F))
    return nir.NIRGraph(nodes={"input": inp, "conv": cv, "n": _if((c, ho, ho)), "output": out},
                        edges=[("input", "conv"), ("conv", "n"), ("n", "output")], type_check=False)


def _pool_graph(k: int, s: int, p: int) -> object:
    """Input (1, 6, 6) -> SumPool2d (kernel k, stride s, padding p) -> IF."""
    ho = (6 + 2 * p - k) // s + 1
    inp, _ = _io([1, 6, 6])
    _, out = _io([1, ho, ho])
    nodes = {"input": inp, "pool": nir.SumPool2d(kernel_size=np.array([k, k]), stride=np.array([s, s]),
                                                 padding=np.array([p, p])), "n": _if((1, ho, ho)), "output": out}
    edges = [("input", "pool"), ("pool", "n"), ("n", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


def _zero_weights() -> object:
    inp, _ = _io([3])
    _, out = _io([2])
    return nir.NIRGraph(nodes={"input": inp, "fc": nir.Linear(weight=np.zeros((2, 3), F)), "n": _if(2), "output": out},
                        edges=[("input", "fc"), ("fc", "n"), ("n", "output")], type_check=False)


def _two_inputs() -> object:
    a, _ = _io([3])
    b, _ = _io([2])
    _, out = _io([2])
    return nir.NIRGraph(nodes={"a": a, "b": b, "fa": nir.Linear(weight=np.ones((2, 3), F)),
                               "fb": nir.Linear(weight=np.ones((2, 2), F)), "n": _if(2), "output": out},
                        edges=[("a", "fa"), ("b", "fb"), ("fa", "n"), ("fb", "n"), ("n", "output")], type_check=False)


def _map(graph: object, tmp_path: Path, capsys: pytest.CaptureFixture, *extra: str) -> Tuple[int, str, List[str]]:
    from harness.cli import main

    path = tmp_path / "g.nir"
    nir.write(str(path), graph)
    capsys.readouterr()
    rc = main(["map", str(path), *extra])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err and not err.strip(), err
    errors = [line.strip() for line in out.splitlines() if line.strip().startswith("error: [")]
    return rc, out, errors


@pytest.mark.parametrize("name,graph,rule,node", [
    # get_conv2d_params: conv_params has stride_x/y, pool_x/y, pad_* - no dilation
    ("dilated", _conv_graph(dilation=2), "vendor-conv-dilation", "conv"),
    # get_conv2d_params: conv2d_node.weight.swapaxes(0, 1) - a dense (groups = 1) kernel layout
    ("grouped", _conv_graph(groups=2), "vendor-conv-groups", "conv"),
    # create_populations: w_scale = 127.0 / max_abs_weight, get_max_abs_weight's max_weight = 0.0 -> ZeroDivisionError
    ("no-weights", _pool_graph(3, 1, 1), "vendor-no-weights", "n"),
    # create_populations: 127.0 / np.float64(0.0) = inf
    ("zero-weights", _zero_weights(), "vendor-zero-weights", "n"),
])
def test_map_exits_1_with_the_named_rule(name: str, graph: object, rule: str, node: str, tmp_path: Path,
                                         capsys: pytest.CaptureFixture) -> None:
    rc, out, errors = _map(graph, tmp_path, capsys)
    assert rc == 1, out
    assert any(e.startswith(f"error: [{rule}] node '{node}'") for e in errors), errors
    assert "design rule(s) fail: " in out and rule in out.splitlines()[-1]


def test_map_accepts_an_overlapping_sumpool_into_a_neuron(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """``create_projections``: ``elif isinstance(sumpooltarget, NEURON_NODES): create_sumpool2d_projection(...)``
    -> ``connection_list_for_sumpool2d(stride=..., kernel_size=..., padding=...)``, no kernel == stride assert.
    Weights already integer (no scaling: ``w_scale = 1.0``), so nothing divides by zero."""
    rc, out, errors = _map(_pool_graph(3, 1, 1), tmp_path, capsys, "--no-scale-weights")
    assert rc == 0 and errors == [] and "result: fits and passes" in out, out


def test_map_accepts_two_inputs(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """``create_populations``: ``elif isinstance(node, nir.Input): ... neuron_model="spike_list" ...`` for each Input."""
    rc, out, errors = _map(_two_inputs(), tmp_path, capsys)
    assert rc == 0 and errors == [], out
    assert out.count("spike_list") == 2, out
