"""Offline comparison: exact first divergence, and the ambiguity-aware rule."""
from __future__ import annotations

import numpy as np
import pytest

from harness.compare import (
    U32,
    RecordingMismatchError,
    ambiguity_epsilon,
    ambiguity_mask,
    classify_spike_trains,
    compare_recordings,
)
from s2common.recording import Recording


def _rec(seed: int = 0, batch: int = 3, ticks: int = 20) -> Recording:
    rng = np.random.default_rng(seed)
    rec = Recording(dt=1e-4)
    rec.add("input", "spikes", rng.random((batch, ticks, 5)) < 0.3)
    rec.add("1", "spikes", rng.random((batch, ticks, 2, 3, 4)) < 0.2)
    rec.add("1", "v", rng.standard_normal((batch, ticks, 2, 3, 4)).astype(np.float32))
    rec.add("1", "i", rng.integers(-300, 300, (batch, ticks, 2, 3, 4)).astype(np.int32))
    rec.add("3", "spikes", rng.random((batch, ticks, 7)) < 0.2)
    rec.add("3", "v", rng.standard_normal((batch, ticks, 7)).astype(np.float32))
    return rec


def _copy(rec: Recording) -> Recording:
    return Recording(dt=rec.dt, data={n: {o: a.copy() for o, a in d.items()} for n, d in rec.data.items()},
                     meta=dict(rec.meta))


def test_identical_recordings_are_ok():
    a = _rec()
    comp = compare_recordings(a, _copy(a))
    assert comp.ok and comp.first_divergence is None and comp.mismatches == 0
    assert comp.describe().startswith("identical")


def test_one_flipped_spike_is_found_exactly():
    exp = _rec()
    act = _copy(exp)
    # node '1' has shape (2, 3, 4): (c=1, y=2, x=3) is flat index 1*12 + 2*4 + 3 = 23
    act.data["1"]["spikes"][2, 13, 1, 2, 3] ^= True
    comp = compare_recordings(exp, act)
    assert not comp.ok
    d = comp.first_divergence
    assert (d.node, d.neuron, d.index, d.tick, d.sample, d.observable) == ("1", 23, (1, 2, 3), 13, 2, "spikes")
    assert d.expected == int(exp.data["1"]["spikes"][2, 13, 1, 2, 3])
    assert comp.mismatches == 1
    assert "layer '1' neuron 23 (c=1, y=2, x=3) tick 13 sample 2: spikes" in comp.describe()


def test_lowest_mantissa_bit_of_one_voltage_is_found():
    exp = _rec()
    act = _copy(exp)
    bits = act.data["3"]["v"].view(np.uint32)
    bits[1, 17, 4] ^= 1  # one ulp
    assert act.data["3"]["v"][1, 17, 4] != exp.data["3"]["v"][1, 17, 4]
    comp = compare_recordings(exp, act)
    d = comp.first_divergence
    assert (d.node, d.neuron, d.tick, d.sample, d.observable) == ("3", 4, 17, 1, "v")
    rows = {(r.node, r.observable): r for r in comp.rows}
    assert rows[("3", "v")].mismatches == 1 and rows[("3", "v")].first_tick == 17
    assert rows[("3", "spikes")].mismatches == 0


def test_negative_zero_differs_bitwise():
    exp = _rec()
    act = _copy(exp)
    exp.data["3"]["v"][0, 0, 0] = 0.0
    act.data["3"]["v"][0, 0, 0] = -0.0
    assert compare_recordings(exp, act).first_divergence.observable == "v"


def test_order_is_tick_then_layer_then_sample_then_neuron():
    exp = _rec()
    act = _copy(exp)
    act.data["3"]["spikes"][0, 5, 6] ^= True      # layer '3', tick 5, sample 0
    act.data["1"]["spikes"][2, 5, 1, 1, 1] ^= True  # layer '1' (earlier), tick 5, sample 2
    act.data["1"]["i"][0, 9, 0, 0, 0] += 1          # later tick
    d = compare_recordings(exp, act).first_divergence
    assert (d.node, d.tick, d.sample) == ("1", 5, 2)
    act.data["1"]["spikes"][1, 5, 1, 2, 0] ^= True  # same tick and layer, lower sample
    d = compare_recordings(exp, act).first_divergence
    assert (d.node, d.tick, d.sample, d.neuron) == ("1", 5, 1, 20)
    act.data["input"]["spikes"][2, 4, 0] ^= True    # earlier tick wins over layer order
    d = compare_recordings(exp, act).first_divergence
    assert (d.node, d.tick) == ("input", 4)


def test_integer_input_difference():
    exp = _rec()
    act = _copy(exp)
    act.data["1"]["i"][1, 3, 0, 1, 2] += 1
    d = compare_recordings(exp, act).first_divergence
    assert (d.observable, d.tick, d.sample, d.neuron) == ("i", 3, 1, 6)
    assert d.actual - d.expected == 1


def test_time_shift_aligns_a_late_recording():
    exp = _rec(ticks=12)
    late = Recording(dt=exp.dt)
    for n, d in exp.data.items():
        for o, a in d.items():
            pad = np.zeros_like(a[:, :1])
            late.add(n, o, np.concatenate([pad, a], axis=1))  # one tick late, one tick longer
    assert not compare_recordings(exp, late).ok
    comp = compare_recordings(exp, late, time_shift=1)
    assert comp.ok and comp.ticks == 12
    late.data["3"]["spikes"][0, 8, 2] ^= True  # tick 7 in the expected time base
    assert compare_recordings(exp, late, time_shift=1).first_divergence.tick == 7


def test_missing_nodes_and_shape_mismatch():
    exp = _rec()
    act = _copy(exp)
    del act.data["input"]
    comp = compare_recordings(exp, act)
    assert not comp.ok and comp.missing == ["input"] and comp.mismatches == 0
    assert any(r.node == "input" and r.note == "missing in actual" for r in comp.rows)
    with pytest.raises(RecordingMismatchError, match="'input' is not in the actual"):
        compare_recordings(exp, act, nodes=["input"])
    act.data["3"]["spikes"] = act.data["3"]["spikes"][:, :, :6]
    with pytest.raises(RecordingMismatchError, match="shapes differ"):
        compare_recordings(exp, act)
    other = Recording(dt=1e-4)
    other.add("x", "spikes", np.zeros((3, 20, 2), bool))
    with pytest.raises(RecordingMismatchError, match="nothing|no \\(node"):
        compare_recordings(exp, other)


# ---------------------------------------------------------------- ambiguity-aware rule


def _lif_pair(v_pre_at_5: float, theta: float = 10.0, ticks: int = 12):
    """A 1-sample, 2-neuron reference whose neuron 0 reaches ``v_pre_at_5`` at tick 5.

    Reset by subtraction; recorded v is after reset. Neuron 1 is quiet at v = 1.
    """
    v_pre = np.ones((1, ticks, 2))
    v_pre[0, :, 0] = np.linspace(0.0, 5.0, ticks)
    v_pre[0, 5, 0] = v_pre_at_5
    spikes = v_pre > theta
    v_post = v_pre - theta * spikes
    ref = Recording(dt=1e-4)
    ref.add("lif", "spikes", spikes)
    ref.add("lif", "v", v_post)
    return ref, theta


def test_epsilon_bound_formula():
    # per tick m = 2|v_prev| + 3|v_pre| + 2|c| + |theta|, summed; eps = safety * u * (sum + |theta|)
    v = np.array([[[1.0], [2.0], [4.0]]])  # v_prev defaults to v_pre shifted: 0, 1, 2
    eps = ambiguity_epsilon(v, np.array([10.0]), safety=2.0)
    m = np.array([0 + 3 + 10, 2 + 6 + 10, 4 + 12 + 10], dtype=float)
    np.testing.assert_allclose(eps[0, :, 0], 2 * U32 * (np.cumsum(m) + 10), rtol=1e-12)
    eps_c = ambiguity_epsilon(v, np.array([10.0]), offset=1.0, safety=1.0)
    np.testing.assert_allclose(eps_c[0, :, 0], U32 * (np.cumsum(m + 2) + 10), rtol=1e-12)
    # a reset to an exact value restarts the accumulation after its tick
    eps_r = ambiguity_epsilon(v, np.array([10.0]), reset_mask=np.array([[[False], [True], [False]]]))
    np.testing.assert_allclose(eps_r[0, :, 0], 2 * U32 * (np.array([13, 31, 26]) + 10), rtol=1e-12)


def test_offsets_from_graph():
    import nir

    from harness.compare import offsets_from_graph

    g = nir.NIRGraph(
        nodes={"input": nir.Input(input_type=np.array([2])),
               "fc": nir.Affine(weight=np.eye(2, dtype=np.float32), bias=np.array([0.1, -0.2])),
               "lif": nir.LIF(tau=np.full(2, 1e-3), r=np.full(2, 5.0), v_leak=np.full(2, 2.0),
                              v_threshold=np.ones(2), v_reset=np.zeros(2)),
               "output": nir.Output(output_type=np.array([2]))},
        edges=[("input", "fc"), ("fc", "lif"), ("lif", "output")])
    # g = dt/tau = 0.1: |g v_leak| + |g r| |bias| = 0.2 + 0.5 * [0.1, 0.2]
    np.testing.assert_allclose(offsets_from_graph(g, dt=1e-4)["lif"], [0.25, 0.3])


def test_decision_within_epsilon_is_ambiguous():
    theta = 10.0
    # a reference voltage 2 ulps (float32) above the threshold: the float32 chip may not spike
    ref, _ = _lif_pair(theta * (1 + 2 * U32), theta)
    mask = ambiguity_mask(ref, {"lif": np.array([theta, theta])})["lif"]
    assert mask[0, 5, 0] and mask.sum() == 1
    act = Recording(dt=ref.dt, data={"lif": {"spikes": ref.spikes("lif").copy()}})
    act.data["lif"]["spikes"][0, 5, 0] = False
    rep = classify_spike_trains(ref, act, {"lif": mask})
    assert (rep.trains, rep.identical, rep.ambiguous, rep.unexplained) == (2, 1, 1, 0)
    comp = compare_recordings(ref, act, observables=("spikes",), ambiguous={"lif": mask})
    assert comp.ok and comp.first_divergence.tick == 5
    assert "ambiguous" in comp.describe()


def test_decision_outside_epsilon_is_a_real_divergence():
    theta = 10.0
    ref, _ = _lif_pair(theta * (1 + 1e-3), theta)  # far above rounding distance
    mask = ambiguity_mask(ref, {"lif": theta})["lif"]
    assert not mask.any()
    act = Recording(dt=ref.dt, data={"lif": {"spikes": ref.spikes("lif").copy()}})
    act.data["lif"]["spikes"][0, 5, 0] = False
    rep = classify_spike_trains(ref, act, {"lif": mask})
    assert (rep.identical, rep.ambiguous, rep.unexplained) == (1, 0, 1)
    d = rep.first_unexplained
    assert (d.node, d.neuron, d.tick, d.sample) == ("lif", 0, 5, 0)
    comp = compare_recordings(ref, act, observables=("spikes",), ambiguous={"lif": mask})
    assert not comp.ok and "first unexplained divergence: layer 'lif' neuron 0 tick 5" in comp.describe()


def test_just_below_threshold_is_ambiguous_too():
    theta = 10.0
    ref, _ = _lif_pair(theta * (1 - 2 * U32), theta)  # no reference spike, but a near miss
    mask = ambiguity_mask(ref, {"lif": theta})["lif"]
    assert mask[0, 5, 0] and not ref.spikes("lif")[0, 5, 0]


def test_divergence_before_the_ambiguous_tick_is_unexplained_and_after_propagates():
    theta = 10.0
    ref, _ = _lif_pair(theta * (1 + 2 * U32), theta)
    mask = ambiguity_mask(ref, {"lif": theta})
    act = Recording(dt=ref.dt, data={"lif": {"spikes": ref.spikes("lif").copy()}})
    act.data["lif"]["spikes"][0, 6, 1] = True  # the other neuron, one tick after the coin flip: propagation
    rep = classify_spike_trains(ref, act, mask)
    assert (rep.ambiguous, rep.unexplained) == (1, 0)
    act.data["lif"]["spikes"][0, 6, 1] = False
    act.data["lif"]["spikes"][0, 5, 1] = True  # same tick as the flip elsewhere: cannot have travelled yet
    rep = classify_spike_trains(ref, act, mask)
    assert (rep.ambiguous, rep.unexplained) == (0, 1)
    act.data["lif"]["spikes"][0, 5, 1] = False
    act.data["lif"]["spikes"][0, 3, 0] = True  # own neuron, before its ambiguous tick
    assert classify_spike_trains(ref, act, mask).unexplained == 1


def test_without_voltages_the_comparison_is_exact():
    theta = 10.0
    ref, _ = _lif_pair(theta * (1 + 2 * U32), theta)
    del ref.data["lif"]["v"]
    mask = ambiguity_mask(ref, {"lif": theta})
    assert mask == {}
    act = Recording(dt=ref.dt, data={"lif": {"spikes": ref.spikes("lif").copy()}})
    act.data["lif"]["spikes"][0, 5, 0] = False
    assert classify_spike_trains(ref, act, mask).unexplained == 1


def test_reset_to_zero_uses_near_misses_only():
    theta = 10.0
    v_pre = np.array([[[9.0], [theta * (1 - U32)], [theta * (1 + U32)], [3.0]]])
    spikes = v_pre > theta
    ref = Recording(dt=1e-4)
    ref.add("lif", "spikes", spikes)
    ref.add("lif", "v", np.where(spikes, 0.0, v_pre))
    mask = ambiguity_mask(ref, {"lif": theta}, reset="to_v_reset")["lif"]
    assert mask[0, :, 0].tolist() == [False, True, False, False]


def test_prediction_share():
    ref = Recording(dt=1e-4)
    spk = np.zeros((4, 5, 3), bool)
    spk[0, :, 0] = True
    spk[1, :, 1] = True
    spk[2, :3, 2] = True
    spk[3, 0, 1] = True
    ref.add("out", "spikes", spk)
    act = Recording(dt=1e-4, data={"out": {"spikes": spk.copy()}})
    act.data["out"]["spikes"][3, 1:3, 2] = True  # sample 3 now predicts class 2
    rep = classify_spike_trains(ref, act, {}, output_node="out")
    assert rep.predictions_identical == pytest.approx(0.75)
    assert (rep.trains, rep.identical, rep.unexplained) == (12, 11, 1)


def test_a_missing_spiking_node_fails_unless_nodes_are_named():
    exp = _rec()
    act = _copy(exp)
    del act.data["3"]
    comp = compare_recordings(exp, act)
    assert not comp.ok and comp.missing == ["3"] and comp.first_divergence is None
    assert "'3'" in comp.describe()
    assert compare_recordings(exp, act, nodes=["input", "1"]).ok
    del act.data["1"]["i"]  # a missing observable is only noted
    assert compare_recordings(exp, act, nodes=["input", "1"]).ok


def test_a_flat_foreign_recording_is_reshaped_to_the_node_shape(tmp_path):
    import nir

    exp = _rec()
    flat = {n: nir.NIRNodeData({o: nir.TimeGriddedData(a.reshape(a.shape[0], a.shape[1], -1).copy(), 1e-4)
                                for o, a in d.items()}) for n, d in exp.data.items()}
    flat["1"].observables["spikes"].data[2, 6, 23] ^= True  # (c=1, y=2, x=3) in shape (2, 3, 4)
    nir.write_data(str(tmp_path / "board.h5"), nir.NIRGraphData(flat))
    act = Recording.load(tmp_path / "board.h5")  # no s2gate attributes: neurons stay flat
    assert act.spikes("1").shape == (3, 20, 24)
    d = compare_recordings(exp, act).first_divergence
    assert (d.node, d.neuron, d.index, d.tick, d.sample) == ("1", 23, (1, 2, 3), 6, 2)
