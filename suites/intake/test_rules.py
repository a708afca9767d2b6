"""Each refusal and each repair of ``harness.intake`` that the real exports in ``test_exports`` do not reach,
shown on the smallest export or graph that triggers it (and, for repairs, the case where it must not apply)."""
from __future__ import annotations

import nir
import numpy as np
import pytest

from harness.intake import clean
from s2common.errors import InputDataError, S2GateError

from . import peers as P


def _flatten_graph(start: int, end: int, fc_in: int) -> nir.NIRGraph:
    """Input (4, 6, 6) -> Flatten(start, end) -> Affine(fc_in -> 3) -> IF -> Output (types left to clean)."""
    return nir.NIRGraph(nodes={"input": nir.Input(input_type=np.array([4, 6, 6])),
                               "flat": nir.Flatten(input_type=None, start_dim=start, end_dim=end),
                               "fc": nir.Affine(weight=np.ones((3, fc_in)), bias=np.zeros(3)),
                               "if": nir.IF(r=np.ones(3), v_threshold=np.ones(3)),
                               "output": nir.Output(output_type=np.array([3]))},
                        edges=[("input", "flat"), ("flat", "fc"), ("fc", "if"), ("if", "output")], type_check=False)


def test_flatten_that_counted_the_batch_axis_is_shifted():
    """torch's Flatten(start_dim=1) written as is: over (4, 6, 6) it gives (4, 36), the Affine needs 144."""
    graph, repairs = clean(_flatten_graph(1, -1, 144))
    assert (graph.nodes["flat"].start_dim, graph.nodes["flat"].end_dim) == (0, -1)
    assert any(r.node == "flat" and "counted the batch axis" in r.what for r in repairs)


def test_flatten_that_chains_is_left_alone():
    """Flatten(1, -1) into an Affine that takes 4*36 values per row is NIR-valid only if the Affine takes (4, 36):
    it does not, and shifting gives 144 != 36, so nothing is repaired and the mismatch is refused."""
    with pytest.raises(S2GateError) as info:
        clean(_flatten_graph(1, -1, 36))
    assert info.value.rule == "shape-mismatch" and info.value.node == "fc"
    graph, repairs = clean(_flatten_graph(0, -1, 144))
    assert not any(r.node == "flat" and "start_dim" in r.what for r in repairs)


def test_unknown_framework_is_one_line():
    with pytest.raises(InputDataError) as info:
        clean(_flatten_graph(0, -1, 144), framework="keras")
    assert info.value.rule == "unknown-framework" and "sinabs" in str(info.value)


def test_rockpool_dt_is_read_back_from_r():
    """Rockpool's exporter writes r = tau*exp(-dt/tau)/dt: clean recovers the modules' dt (1 ms and 0.5 ms)."""
    P.require("rockpool")
    from rockpool.nn.combinators import Sequential
    from rockpool.nn.modules import LIFTorch, LinearTorch

    from harness.intake import from_rockpool

    for dt in (1e-3, 5e-4):
        model = Sequential(LinearTorch((20, 10)), LIFTorch(10, dt=dt), LinearTorch((10, 5)), LIFTorch(5, dt=dt))
        graph, _ = from_rockpool(model)
        assert graph.metadata["s2gate.dt"] == pytest.approx(dt, rel=1e-5)
        np.testing.assert_array_equal(graph.nodes["1_LIFTorch"].r, 1.0)
        np.testing.assert_allclose(graph.nodes["1_LIFTorch"].w_in, np.exp(-dt / 0.02), rtol=1e-6)  # tau_syn 20 ms


def test_rockpool_layers_with_different_dt_are_refused():
    P.require("rockpool")
    from rockpool.nn.combinators import Sequential
    from rockpool.nn.modules import LIFTorch, LinearTorch

    from harness.intake import from_rockpool

    model = Sequential(LinearTorch((20, 10)), LIFTorch(10, dt=1e-3), LinearTorch((10, 5)), LIFTorch(5, dt=2e-3))
    with pytest.raises(S2GateError) as info:
        from_rockpool(model)
    assert info.value.rule == "rockpool-dt" and "different ticks" in str(info.value)


def test_norse_cells_with_different_dt_are_refused():
    P.require("norse")
    import norse.torch as nt
    import torch

    from harness.intake import from_norse

    model = nt.SequentialState(torch.nn.Linear(20, 10), nt.LIFBoxCell(dt=1e-3), torch.nn.Linear(10, 5),
                               nt.LIFBoxCell(dt=5e-4))
    with pytest.raises(S2GateError) as info:
        from_norse(model, torch.zeros(1, 20))
    assert info.value.rule == "norse-dt"


def test_norse_time_constant_is_the_cells():
    """Norse 1.1.0 writes tau = dt/tau_mem_inv; from_norse stores the cell's 1/tau_mem_inv (here 10 ms)."""
    P.require("norse")
    import torch

    from harness.intake import from_norse

    graph, repairs = from_norse(P.norse_mlp(), torch.zeros(1, 20))
    np.testing.assert_allclose(graph.nodes["1"].tau, 0.01, rtol=1e-6)  # LIFBoxParameters' tau_mem_inv = 100 /s
    assert any(r.node == "1" and "dt/tau_inv" in r.what for r in repairs)
