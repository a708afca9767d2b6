"""BoardBackend: a clear one-line refusal without py-spinnaker2, and its glue code against a stand-in.

The stand-in ``spinnaker2`` package below mimics the public API used by the NIR paper's
SpiNNaker2 scripts (neuromorphs/NIR ``paper/03_rnn/s2_apply.py``) and the public copy of
``s2_nir`` (SpiNNakerManchester/sPiNNIRker ``spinnirker/__init__.py``): it is not a chip model,
it echoes each input spike one tick later so that the conversion to a Recording can be checked.
"""
from __future__ import annotations

import dataclasses
import enum
import sys
import types
from typing import List

import numpy as np
import pytest

from harness.run import BoardBackend, BoardUnavailable, get_backend
from s2common.errors import S2GateError


def test_without_py_spinnaker2_the_board_backend_says_so_in_one_line(monkeypatch, tiny_graph):
    monkeypatch.setitem(sys.modules, "spinnaker2", None)  # import fails even if installed
    backend = get_backend("board", host="192.168.1.25")
    with pytest.raises(BoardUnavailable) as info:
        backend.run(tiny_graph, np.zeros((1, 3, 2, 6, 6), bool))
    msg = str(info.value)
    assert "\n" not in msg
    assert "py-spinnaker2 is not installed" in msg and "--s2-board-host" in msg
    assert isinstance(info.value, S2GateError)


# ------------------------------------------------------------------ a stand-in spinnaker2 package


class _Pop:
    def __init__(self, name: str, size: int) -> None:
        self.name, self.size, self.params, self.max_atoms = name, size, {}, None
        self.spikes: dict = {}
        self.voltages: dict = {}

    def set_max_atoms_per_core(self, n: int) -> None:
        self.max_atoms = n

    def get_spikes(self) -> dict:
        return self.spikes

    def get_voltages(self) -> dict:
        return self.voltages


class _Net:
    def __init__(self, pops: List[_Pop]) -> None:
        self.populations = pops
        self.resets = 0

    def reset(self) -> None:
        self.resets += 1


def _fake_spinnaker2(log: dict) -> types.ModuleType:
    import nir

    class ResetMethod(enum.Enum):
        SUBTRACT = "subtract"
        ZERO = "zero"

    class IntegratorMethod(enum.Enum):
        FORWARD = "forward"
        EXPONENTIAL = "exponential"

    @dataclasses.dataclass
    class ConversionConfig:
        dt: float = 1.0
        output_record: list = dataclasses.field(default_factory=lambda: ["spikes"])
        conn_delay: int = 1
        scale_weights: bool = False
        reset: ResetMethod = ResetMethod.SUBTRACT
        integrator: IntegratorMethod = IntegratorMethod.FORWARD

    def add_output_to_node(node_name, nir_model, output_name):
        log.setdefault("outputs_added", []).append(node_name)
        nir_model.nodes[output_name] = nir.Output(output_type=np.array([1]))
        nir_model.edges.append((node_name, output_name))

    def from_nir(nir_model, config):
        log["config"] = config
        sizes = {"input": 72, "if1": 48, "lif": 5}
        inp = _Pop("input", 72)
        outs = [_Pop(n, sizes[n]) for n in ("if1", "lif")
                if any(s == n and type(nir_model.nodes[t]).__name__ == "Output" for s, t in nir_model.edges)]
        net = _Net([inp] + outs)
        log["net"] = net
        return net, [inp], outs

    class SpiNNaker2Chip:
        def __init__(self, eth_ip):
            log.setdefault("hosts", []).append(eth_ip)

        def run(self, net, timesteps, sys_tick_in_s=None, debug=True):
            log.setdefault("runs", []).append((timesteps, sys_tick_in_s))
            params = net.populations[0].params
            for pop in net.populations[1:]:
                # echo: neuron i spikes one tick after input neuron i did (if i < size)
                pop.spikes = {i: [t + 1 for t in params.get(i, []) if t + 1 < timesteps] for i in range(pop.size)}
                pop.voltages = {i: list(0.5 * np.arange(timesteps) + i) for i in range(pop.size)}

    s2_nir = types.SimpleNamespace(ConversionConfig=ConversionConfig, ResetMethod=ResetMethod,
                                   IntegratorMethod=IntegratorMethod, add_output_to_node=add_output_to_node,
                                   from_nir=from_nir)
    hardware = types.SimpleNamespace(SpiNNaker2Chip=SpiNNaker2Chip)
    pkg = types.ModuleType("spinnaker2")
    pkg.s2_nir = s2_nir
    pkg.hardware = hardware
    return pkg


def test_without_a_host_the_board_backend_says_so(monkeypatch, tiny_graph):
    monkeypatch.setitem(sys.modules, "spinnaker2", _fake_spinnaker2({}))
    with pytest.raises(BoardUnavailable, match="no SpiNNaker2 board host given") as info:
        BoardBackend().run(tiny_graph, np.zeros((1, 3, 2, 6, 6), bool))
    assert "\n" not in str(info.value)


def test_board_glue_builds_the_recording(monkeypatch, tiny_graph):
    log: dict = {}
    monkeypatch.setitem(sys.modules, "spinnaker2", _fake_spinnaker2(log))
    x = np.random.default_rng(5).random((2, 6, 2, 6, 6)) < 0.3
    backend = BoardBackend("10.0.0.2", sys_tick_in_s=2.5e-3, max_atoms_per_core={"if1": 16})
    rec = backend.run(tiny_graph, x)
    cfg = log["config"]
    assert cfg.scale_weights is False and cfg.conn_delay == 0 and cfg.dt == 1e-4
    assert cfg.reset.name == "SUBTRACT" and cfg.integrator.name == "FORWARD"
    assert cfg.output_record == ["spikes", "v"]
    assert log["outputs_added"] == ["if1"]  # 'lif' already feeds the graph's Output
    assert log["hosts"] == ["10.0.0.2", "10.0.0.2"] and log["runs"] == [(6, 2.5e-3)] * 2
    assert log["net"].resets == 2 and log["net"].populations[1].max_atoms == 16
    assert rec.meta["backend"] == "board" and rec.meta["node_order"] == ["input", "if1", "lif"]
    np.testing.assert_array_equal(rec.spikes("input"), x)
    # the stand-in echoes input neuron i into neuron i one tick later
    flat_x = x.reshape(2, 6, -1)
    want = np.zeros((2, 6, 48), bool)
    want[:, 1:, :] = flat_x[:, :-1, :48]
    np.testing.assert_array_equal(rec.spikes("if1").reshape(2, 6, 48), want)
    assert rec.spikes("if1").shape == (2, 6, 3, 4, 4) and rec.spikes("lif").shape == (2, 6, 5)
    v = rec.get("lif", "v")
    assert v.dtype == np.float32 and v[1, 4, 3] == np.float32(0.5 * 4 + 3)


def test_extra_ticks_and_time_shift(monkeypatch, tiny_graph):
    from harness.compare import compare_recordings

    log: dict = {}
    monkeypatch.setitem(sys.modules, "spinnaker2", _fake_spinnaker2(log))
    x = np.random.default_rng(6).random((1, 5, 2, 6, 6)) < 0.3
    rec = BoardBackend("h", extra_ticks=1, record_voltages=False).run(tiny_graph, x, record=["if1"])
    assert log["runs"] == [(6, 1e-3)] and rec.ticks == 6 and rec.nodes == ["input", "if1"]
    assert rec.get("if1", "v") is None and log["config"].output_record == ["spikes"]
    # the stand-in's spikes are the inputs one tick late: with time_shift=1 the if1 train equals
    # the first 48 input neurons' train
    exp = type(rec)(dt=rec.dt)
    exp.add("if1", "spikes", x.reshape(1, 5, -1)[:, :, :48].reshape(1, 5, 3, 4, 4))
    assert compare_recordings(exp, rec, nodes=["if1"], time_shift=1).ok
    assert not compare_recordings(exp, rec, nodes=["if1"]).ok
