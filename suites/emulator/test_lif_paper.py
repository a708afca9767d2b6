"""The NIR paper's LIF run on py-spinnaker2 (``paper/01_lif/lif_spinnaker2.py``) reproduced tick for tick.

The script multiplies the Affine weight and the LIF threshold by 102.02, lowers with
``dt = 1e-4``, forward Euler, reset to zero, ``conn_delay = 0`` and no weight scaling (the
weight 102.02 becomes the integer 102), runs ``len(d) + 1`` ticks and saves
``v = voltages[1:] / 102.02`` and ``spikes[1:]``: row ``t`` of the CSV is tick ``t + 1`` of
the chip model, because an input spike in tick ``t`` reaches the neuron in tick ``t + 1``.
"""
from __future__ import annotations

import nir
import numpy as np
import pytest

from s2emu import ConversionOptions, Engine, GoldenModel, lower
from suites.fixtures import third_party

SCALE = 102.02


def _paper_net(fma: bool = False):
    graph = nir.read(third_party("lif_norse.nir"))
    graph.nodes["1"].v_threshold = graph.nodes["1"].v_threshold * SCALE
    graph.nodes["0"].weight = graph.nodes["0"].weight * SCALE
    graph.nodes["0"].bias = graph.nodes["0"].bias * SCALE
    opts = ConversionOptions(dt=1e-4, integrator="euler", reset="to_v_reset", conn_delay=0, scale_weights=False,
                             vendor_cast=True, fused_multiply_add=fma)
    return lower(graph, opts)


def _csv():
    return np.loadtxt(third_party("lif_spinnaker2.csv"), delimiter=",")


def test_lowered_parameters_are_the_scripts() -> None:
    net = _paper_net()
    pop = net.populations["1"]
    assert pop.model == "lif_no_delay"
    assert net.projections[0].weight.tolist() == [[102]]          # int(102.02)
    assert pop.alpha_decay[0] == np.float32(0.96)                   # 1 - 1e-4 / 2.5e-3
    # v_th * 102.02 / (dt/tau * r): the script scales the float32 threshold in float32 first
    v_th = np.float32(np.float32(0.1) * np.float32(SCALE))
    assert pop.threshold[0] == np.float32(float(v_th) / (1e-4 / float(np.float32(0.0025))))
    assert abs(float(pop.threshold[0]) - 255.05) <= float(np.spacing(np.float32(255.05)))
    assert pop.i_offset[0] == 0.0


@pytest.mark.parametrize("fma", [False, True])
def test_lif_spinnaker2_csv_is_reproduced(fma: bool) -> None:
    d = _csv()
    net = _paper_net(fma)
    ticks = len(d) + 1
    x = np.zeros((1, ticks, 1), dtype=bool)
    x[0, : len(d), 0] = d[:, 0] > 0
    rec = Engine(net).run(x, record="all")
    spikes = rec.spikes("1")[0, 1:, 0]
    v = rec.get("1", "v")[0, 1:, 0].astype(np.float64)
    # all spikes at the same ticks (the paper's figure: 460, 510, 710, 760)
    assert np.array_equal(np.flatnonzero(spikes), np.flatnonzero(d[:, 2]))
    assert np.flatnonzero(spikes).tolist() == [460, 510, 710, 760]
    # voltages: the CSV comes from a float64 model; ours is float32. Each tick rounds at most
    # twice (alpha*v, + I), each error <= 2**-24 |v|, and old errors decay by alpha = 0.96, so
    # |ours - csv| <= 2 * 2**-24 * max|v| / (1 - 0.96) (+ the CSV's own /102.02 round trip).
    ref = d[:, 1] * SCALE
    bound = 2 * 2.0 ** -24 * np.abs(ref).max() / (1 - 0.96) + 1e-9
    assert np.abs(v - ref).max() <= bound
    # and tick by tick the CSV follows our float32 recurrence: one float32 step from the CSV's
    # previous value (rounded to float32) lands within 2 float32 ulps of the CSV's next value
    alpha, thr = np.float32(0.96), net.populations["1"].threshold[0]
    i_in = rec.get("1", "i")[0, 1:, 0]
    for t in range(1, len(d)):
        if spikes[t]:
            continue
        step = np.float32(np.float32(alpha * np.float32(ref[t - 1])) + np.float32(i_in[t]))
        assert step <= thr
        assert abs(float(step) - ref[t]) <= 2 * float(np.spacing(np.float32(ref[t]))) + 1e-12, t
    # reset to zero exactly where it spiked
    assert np.all(v[spikes] == 0.0)
    # the golden model says the same
    gold = GoldenModel(net).run(x, record="all")
    assert np.array_equal(gold.get("1", "v").view(np.uint32), rec.get("1", "v").view(np.uint32))


def test_csv_rejects_a_wrong_model() -> None:
    """The comparison can fail: decaying the new input (v = alpha*(v + I)) misses the CSV."""
    d = _csv()
    ref = d[:, 1] * SCALE
    v, out = np.float32(0), []
    prev = 0.0
    for t in range(len(d) + 1):
        v = np.float32(np.float32(0.96) * np.float32(v + 102 * prev))
        if v > np.float32(255.05):
            v = np.float32(0)
        out.append(v)
        prev = d[t, 0] if t < len(d) else 0.0
    assert np.abs(np.array(out[1:], dtype=np.float64) - ref).max() > 1.0
