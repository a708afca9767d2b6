"""What a user can get wrong when calling ``simulate``: each raises one S2GateError subclass
with a one-line message naming the node/shape/rule (never a numpy traceback)."""
from __future__ import annotations

import types

import nir
import numpy as np
import pytest

from reference import Discretisation, simulate
from s2common.errors import InputDataError, InvalidGraphError, S2GateError

from .graphs import chain, lif


@pytest.fixture
def g():
    return chain((2, 3), ("f", nir.Flatten(input_type={"input": np.array([2, 3])}, start_dim=0, end_dim=-1)),
                 ("lif", lif(6)))


@pytest.mark.parametrize("shape", [(2, 3), (5, 2, 3), (1, 5, 3, 2), (1, 5, 6), (1, 5, 2, 3, 1)])
def test_wrong_shape_names_the_expected_shape(g, shape):
    with pytest.raises(InputDataError) as err:
        simulate(g, np.zeros(shape))
    msg = str(err.value)
    assert "(batch, time, 2, 3)" in msg and str(shape) in msg and "input" in msg
    assert "\n" not in msg


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_inputs(g, bad):
    x = np.zeros((2, 4, 2, 3))
    x[1, 2, 0, 1] = bad
    with pytest.raises(InputDataError, match="NaN|inf"):
        simulate(g, x)


@pytest.mark.parametrize("x", [np.full((1, 2, 2, 3), "a"), np.zeros((1, 2, 2, 3), dtype=complex),
                               np.empty((1, 2, 2, 3), dtype=object)])
def test_non_numeric_inputs(g, x):
    with pytest.raises(InputDataError, match="dtype"):
        simulate(g, x)


def test_empty_batch_or_time(g):
    for shape in [(0, 3, 2, 3), (2, 0, 2, 3)]:
        with pytest.raises(InputDataError, match="at least 1"):
            simulate(g, np.zeros(shape))


def test_ragged_list(g):
    with pytest.raises(InputDataError):
        simulate(g, [[np.zeros((2, 3))], [np.zeros((2, 3)), np.zeros((2, 3))]])


def test_bool_and_int_inputs_are_accepted(g):
    x = np.random.default_rng(0).random((2, 4, 2, 3)) < 0.5
    a = simulate(g, x)
    b = simulate(g, x.astype(np.int64))
    np.testing.assert_array_equal(a.spikes("lif"), b.spikes("lif"))


@pytest.mark.parametrize("kw, match", [
    ({"preset": "brian"}, "unknown preset"),
    ({"options": {"reset": "zero"}}, "reset"),
    ({"options": {"integrator": "rk4"}}, "integrator"),
    ({"options": {"projection_latency": 2}}, "projection_latency"),
    ({"options": {"tau_scale": 1}}, "unknown discretisation option"),
    ({"dt": -1e-4}, "dt"),
    ({"dt": float("nan")}, "dt"),
    ({"dtype": np.float16}, "dtype"),
    ({"record": ["nope"]}, "unknown node"),
])
def test_bad_options(g, kw, match):
    with pytest.raises(InputDataError, match=match):
        simulate(g, np.zeros((1, 2, 2, 3)), **kw)


def test_discretisation_validates_itself():
    with pytest.raises(InputDataError, match="compare"):
        Discretisation(compare="=>")


def test_graph_errors_come_through_as_project_errors(tmp_path):
    not_h5 = tmp_path / "model.nir"
    not_h5.write_text("hello")
    with pytest.raises(InvalidGraphError) as err:
        simulate(not_h5, np.zeros((1, 2, 1)))
    assert str(not_h5) in str(err.value)
    # (nir.NIRGraph adds an Input on its own, so a bare graph-like object stands in for a file)
    no_input = types.SimpleNamespace(nodes={"lif": lif(1), "output": nir.Output(output_type=np.array([1]))},
                                     edges=[("lif", "output")])
    with pytest.raises(InvalidGraphError, match="no Input"):
        simulate(no_input, np.zeros((1, 2, 1)))
    bad = chain((1,), ("lif", lif(1)))
    bad.nodes["lif"].tau = np.array([np.nan])
    with pytest.raises(S2GateError, match="NaN"):
        simulate(bad, np.zeros((1, 2, 1)))
