"""Reference options added for the frameworks' importers, checked by hand on one IF: ``if_min_v`` (Sinabs' IAF clamp)
and ``reset_delay`` (snnTorch's reset_delay=True)."""
from __future__ import annotations

import nir
import numpy as np
import pytest

from reference import simulate
from s2common.errors import InputDataError


def _one_if() -> nir.NIRGraph:
    return nir.NIRGraph(nodes={"input": nir.Input(input_type=np.array([1])),
                               "w": nir.Linear(weight=np.array([[1.0]])),
                               "if": nir.IF(r=np.array([1.0]), v_threshold=np.array([1.0])),
                               "output": nir.Output(output_type=np.array([1]))},
                        edges=[("input", "w"), ("w", "if"), ("if", "output")])


def test_clamp_floors_the_voltage_at_minus_threshold():
    x = np.array([-3.0, 0.5, 0.6, 1.0]).reshape(1, 4, 1)
    # by hand, v += x, spike where v >= 1 (subtract), then v = max(v, -1):
    #   clamp:    -3 -> -1; -0.5; 0.1; 1.1 -> spike, 0.1
    #   no clamp: -3; -2.5; -1.9; -0.9 (never spikes)
    clamped = simulate(_one_if(), x, preset="sinabs", options={"if_min_v": "-threshold"}, dt=1.0, record=["if"])
    free = simulate(_one_if(), x, preset="sinabs", dt=1.0, record=["if"])
    np.testing.assert_allclose(clamped.get("if", "v")[0, :, 0], [-1.0, -0.5, 0.1, 0.1], atol=1e-12)
    np.testing.assert_array_equal(clamped.get("if", "spikes")[0, :, 0], [0, 0, 0, 1])
    np.testing.assert_allclose(free.get("if", "v")[0, :, 0], [-3.0, -2.5, -1.9, -0.9], atol=1e-12)
    assert not free.get("if", "spikes").any()


def test_unknown_value_is_refused():
    with pytest.raises(InputDataError, match="if_min_v"):
        simulate(_one_if(), np.zeros((1, 2, 1)), options={"if_min_v": "-1"})


def test_reset_delay_next_tick_subtracts_the_threshold_one_tick_late():
    x = np.array([1.5, 0.0, 0.0, 0.2]).reshape(1, 4, 1)
    # by hand, IF (v += x, spike where v >= 1), reset by subtraction:
    #   next_tick: 1.5 spike (kept 1.5); 1.5 - 1 = 0.5; 0.5; 0.7 -> spikes [1, 0, 0, 0]
    #   none:      1.5 spike -> 0.5;     0.5;          0.5; 0.7 -> the same spikes, other voltages
    # a voltage two thresholds high: recorded unreset, the subtraction comes one tick late
    # (for an IF the spikes are the same as "none"; with a leak they differ, see test_exports' snnTorch case)
    late = simulate(_one_if(), x, preset="sinabs", options={"reset_delay": "next_tick"}, dt=1.0, record=["if"])
    np.testing.assert_allclose(late.get("if", "v")[0, :, 0], [1.5, 0.5, 0.5, 0.7], atol=1e-12)
    np.testing.assert_array_equal(late.get("if", "spikes")[0, :, 0], [1, 0, 0, 0])
    y = np.array([2.5, 0.0, 0.0]).reshape(1, 3, 1)
    #   next_tick: 2.5 spike; 1.5 spike; 0.5   (none would record 1.5, 0.5, 0.5)
    late = simulate(_one_if(), y, preset="sinabs", options={"reset_delay": "next_tick"}, dt=1.0, record=["if"])
    np.testing.assert_allclose(late.get("if", "v")[0, :, 0], [2.5, 1.5, 0.5], atol=1e-12)
    np.testing.assert_array_equal(late.get("if", "spikes")[0, :, 0], [1, 1, 0])


def test_reset_delay_with_previous_voltage_is_refused():
    with pytest.raises(InputDataError, match="reset_delay"):
        simulate(_one_if(), np.zeros((1, 2, 1)), options={"reset_delay": "next_tick", "spike_from": "previous"})
