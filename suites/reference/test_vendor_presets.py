"""The ``spyx`` and ``lava`` presets and the ``bias="i_offset"`` option, against traces computed here from
each framework's own update equations (written out in the loops below, not through ``reference``).

Sources: Spyx ``kmheckel/spyx`` ``spyx/nn.py`` ``LIF.__call__`` / ``IF.__call__``, ``spyx/nir.py``
``_nir_node_to_spyx_params``; Lava ``lava-nc/lava`` ``src/lava/proc/lif/models.py``
``AbstractPyLifModelFloat`` / ``PyLifModelFloat``, ``src/lava/proc/dense/models.py`` ``run_spk``, and the NIR
paper's Lava import ``neuromorphs/NIR`` ``paper/01_lif/_lava_nir.py``; py-spinnaker2's converter
``SpiNNakerManchester/sPiNNIRker`` 47c758b ``spinnirker/__init__.py`` ``convert_CubaLIF``.
"""
from __future__ import annotations

import nir
import numpy as np
import pytest

from reference import PRESETS, simulate

F = np.float32
DT = 1e-4


def _lif_graph(w: np.ndarray, tau: float, th: float, bias=None) -> object:
    n, m = w.shape
    fc = nir.Linear(weight=w.astype(F)) if bias is None else nir.Affine(weight=w.astype(F), bias=bias.astype(F))
    lif = nir.LIF(tau=np.full(n, tau, F), r=np.ones(n, F), v_leak=np.zeros(n, F), v_threshold=np.full(n, th, F),
                  v_reset=np.zeros(n, F))
    return nir.NIRGraph(nodes={"input": nir.Input(input_type={"input": np.array([m])}), "fc": fc, "lif": lif,
                               "output": nir.Output(output_type={"output": np.array([n])})},
                        edges=[("input", "fc"), ("fc", "lif"), ("lif", "output")])


def _inputs(m: int, ticks: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random((2, ticks, m)) < 0.4


def test_spyx_lif_subtracts_the_threshold_after_the_decay() -> None:
    """``LIF.__call__``: ``spikes = self.act(V - self.threshold)`` (Axon: ``jnp.heaviside(x, 0)``, so ``V > th``)
    then ``V = beta*V + x - spikes*self.threshold``; ``_nir_node_to_spyx_params``: ``beta = 1 - dt/tau`` and the
    Linear's weights times ``dt/tau``; ``initial_state``: zeros. Recorded V is the state after the update."""
    tau, th = 2e-3, 0.6
    w = np.random.default_rng(1).normal(0, 8, (3, 4))
    x = _inputs(4, 40, 2)
    rec = simulate(_lif_graph(w, tau, th), x, preset="spyx", record=["lif"], dt=DT)
    tau, th = float(F(tau)), float(F(th))  # the graph stores float32 parameters
    beta = 1 - DT / tau
    ws = w.astype(F).astype(np.float64) * (DT / tau)
    V = np.zeros((2, 3))
    for t in range(40):
        spikes = (V - th > 0).astype(np.float64)
        V = beta * V + x[:, t] @ ws.T - spikes * th
        np.testing.assert_allclose(rec.get("lif", "v")[:, t], V, rtol=0, atol=1e-12)
        assert np.array_equal(rec.spikes("lif")[:, t], spikes.astype(bool))
    assert rec.spikes("lif").any()


def test_spyx_differs_from_every_earlier_option_combination() -> None:
    """The reset of Spyx is not "reset, then decay" (``spike_from="previous"`` with the default order):
    subtracting after the decay leaves ``th`` undecayed. One input spike above threshold shows it."""
    tau, th = 1e-3, 1.0
    w = np.array([[30.0]])
    x = np.zeros((1, 4, 1), bool)
    x[0, 0] = True
    after = simulate(_lif_graph(w, tau, th), x, preset="spyx", record=["lif"], dt=DT).get("lif", "v")[0, :, 0]
    before = simulate(_lif_graph(w, tau, th), x, preset="spyx", options={"reset_order": "before_update"},
                      record=["lif"], dt=DT).get("lif", "v")[0, :, 0]
    beta, v0 = 1 - DT / tau, 30.0 * DT / tau  # 3.0 after tick 0
    assert after[0] == pytest.approx(v0) and after[1] == pytest.approx(beta * v0 - th)
    assert before[1] == pytest.approx(beta * (v0 - th))


def test_spyx_if_gets_dt_scaled_input() -> None:
    """``_nir_node_to_spyx_params``: a Linear into anything but LIF/CubaLIF keeps ``tau = 1``, so its weights are
    scaled by ``dt``; ``IF.__call__``: ``V = V + x - spikes*self.threshold``."""
    w = np.array([[2000.0, -500.0]])
    x = _inputs(2, 30, 5)[:1]
    g = nir.NIRGraph(nodes={"input": nir.Input(input_type={"input": np.array([2])}), "fc": nir.Linear(weight=w.astype(F)),
                            "n": nir.IF(r=np.ones(1, F), v_threshold=np.full(1, 0.5, F), v_reset=np.zeros(1, F)),
                            "output": nir.Output(output_type={"output": np.array([1])})},
                     edges=[("input", "fc"), ("fc", "n"), ("n", "output")])
    rec = simulate(g, x, preset="spyx", record=["n"], dt=DT)
    V = np.zeros(1)
    for t in range(30):
        s = (V - 0.5 > 0).astype(float)
        V = V + (x[0, t] @ w.T) * DT - s * 0.5
        np.testing.assert_allclose(rec.get("n", "v")[0, t], V, atol=1e-12)


def test_lava_cpu_float_lif_with_dense_latency() -> None:
    """``AbstractPyLifModelFloat.subthr_dynamics``: ``u = u*(1 - du) + a_in``; ``v = v*(1 - dv) + u + bias_mant``;
    ``PyLifModelFloat.spiking_activation``: ``v > vth``; ``reset_voltage``: ``v[spike] = 0``. The NIR paper's
    import (``_lava_nir.py``): ``du = 1.0`` (no current leak), ``dv = dt / tau``, weights times ``dt/tau``.
    Dense ``run_spk``: ``self.a_out.send(self.a_buff)`` before accumulating this step's spikes: a_in(t) is
    W s(t-1)."""
    tau, th = 2e-3, 0.5
    w = np.random.default_rng(3).normal(0, 8, (3, 4))
    x = _inputs(4, 40, 4)
    rec = simulate(_lif_graph(w, tau, th), x, preset="lava", record=["lif"], dt=DT)
    tau, th = float(F(tau)), float(F(th))  # the graph stores float32 parameters
    du, dv = 1.0, DT / tau
    ws = w.astype(F).astype(np.float64) * (DT / tau)
    u = np.zeros((2, 3))
    v = np.zeros((2, 3))
    a_buff = np.zeros((2, 3))
    for t in range(40):
        a_in, a_buff = a_buff, x[:, t] @ ws.T       # Dense: send last step's accumulation, then accumulate
        u = u * (1 - du) + a_in
        v = v * (1 - dv) + u + 0.0                  # bias_mant = 0
        s = v > th
        v = np.where(s, 0.0, v)
        np.testing.assert_allclose(rec.get("lif", "v")[:, t], v, rtol=0, atol=1e-12)
        assert np.array_equal(rec.spikes("lif")[:, t], s)
    assert rec.spikes("lif").any()


def test_lava_is_snntorch_plus_the_dense_latency() -> None:
    """Lava's CPU float LIF needs one option on top of the ``snntorch`` preset: the Dense's one-tick latency."""
    assert PRESETS["lava"] == PRESETS["snntorch"].replace(projection_latency=1)


def _cuba_graph(bias: np.ndarray) -> object:
    n = bias.size
    cuba = nir.CubaLIF(tau_mem=np.full(n, 2e-3, F), tau_syn=np.full(n, 1e-3, F), r=np.full(n, 1.5, F),
                       w_in=np.full(n, 2.0, F), v_leak=np.zeros(n, F), v_threshold=np.full(n, 1e6, F),
                       v_reset=np.zeros(n, F))
    return nir.NIRGraph(nodes={"input": nir.Input(input_type={"input": np.array([2])}),
                               "fc": nir.Affine(weight=np.zeros((n, 2), F), bias=bias.astype(F)), "n": cuba,
                               "output": nir.Output(output_type={"output": np.array([n])})},
                        edges=[("input", "fc"), ("fc", "n"), ("n", "output")])


def test_bias_folding_drives_the_membrane_from_tick_0() -> None:
    """``convert_CubaLIF``: ``"i_offset": v_leak_factor * node.v_leak * scale + bias * node.w_in * I_scale *
    w_scale`` with ``scale = v_scale * I_scale * w_scale``: in NIR volts (divide by ``scale``) the membrane gains
    ``bias * w_in * r_factor = (dt/tau_mem) * r * w_in * b`` every tick, from tick 0 (forward Euler). NIR's
    CubaLIF instead filters the bias: ``I = (1 - dt/tau_syn) I + (dt/tau_syn) w_in b``. No weights, no spikes:
    both closed forms are iterated here."""
    b = np.array([0.3, -0.7]).astype(F).astype(np.float64)
    x = np.zeros((1, 30, 2), bool)
    g, r, w_in = DT / float(F(2e-3)), 1.5, 2.0
    a, a_s, g_s = 1 - g, 1 - DT / float(F(1e-3)), DT / float(F(1e-3))
    folded = simulate(_cuba_graph(b), x, preset="spinnaker2", record=["n"], dt=DT)
    filtered = simulate(_cuba_graph(b), x, preset="spinnaker2", options={"bias": "input"}, record=["n"], dt=DT)
    v_f = np.zeros(2)
    v_n, i_n = np.zeros(2), np.zeros(2)
    for t in range(30):
        v_f = a * v_f + g * r * w_in * b
        i_n = a_s * i_n + g_s * w_in * b
        v_n = a * v_n + g * r * i_n
        np.testing.assert_allclose(folded.get("n", "v")[0, t], v_f, rtol=1e-12)
        np.testing.assert_allclose(filtered.get("n", "v")[0, t], v_n, rtol=1e-12)
    assert np.all(np.abs(folded.get("n", "v")[0, 0]) > np.abs(filtered.get("n", "v")[0, 0]))


def test_bias_folding_changes_nothing_for_lif() -> None:
    """``convert_LIF``: ``bias.flatten() * w_scale`` in ``i_offset`` is ``(dt/tau) r b`` per tick in NIR volts, what
    NIR's LIF gets from the Affine's bias through its input: same trace (to rounding)."""
    w = np.random.default_rng(9).normal(0, 5, (3, 4))
    bias = np.array([0.2, -0.1, 0.05])
    x = _inputs(4, 30, 6)
    a = simulate(_lif_graph(w, 2e-3, 0.5, bias), x, preset="spinnaker2", record=["lif"], dt=DT)
    b = simulate(_lif_graph(w, 2e-3, 0.5, bias), x, preset="spinnaker2", options={"bias": "input"}, record=["lif"],
                 dt=DT)
    np.testing.assert_allclose(a.get("lif", "v"), b.get("lif", "v"), rtol=1e-12, atol=1e-15)
