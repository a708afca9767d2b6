"""Cross-checks against Norse 1.1.0 (``norse.torch.from_nir``) with the ``norse`` preset.

Norse runs in float32; every run here compares spikes exactly and voltages to float32
rounding. Where the numbers differ, the reason is stated next to the tolerance:

* Norse's LIF update is ``v + dt/tau*(x + v_leak - v)``, the reference's is
  ``(1 - dt/tau)*v + dt/tau*v_leak + dt/tau*x``: algebraically equal, rounded differently
  (a few float32 ulps).
* Dense layers: Norse's batched ``torch.nn.Linear`` and the reference's per-sample product
  sum in a different order (float32 ulps of the pre-activation; spikes unaffected here).
* Norse's ``Flatten`` flattens from NIR's ``start_dim`` counted *with* the batch, so the CNN
  runs in Norse only at batch size 1; the reference runs it batched (tested elsewhere).
"""
from __future__ import annotations

import nir
import numpy as np
import pytest

from reference import simulate

from ..fixtures import third_party

norse_torch = pytest.importorskip("norse.torch")
torch = pytest.importorskip("torch")

pytestmark = pytest.mark.norse
DT = 1e-4


def run_norse(graph, x, **kw):
    """Run ``norse.torch.from_nir(graph)`` tick by tick on ``x`` (batch, time, ...); return the
    per-module outputs captured by forward hooks: {module name: array (time, batch, ...)}."""
    model = norse_torch.from_nir(graph, dt=DT, **kw)
    captured = {}

    def hook(name):
        def fn(module, inputs, output):
            out = output[0] if isinstance(output, tuple) else output
            captured.setdefault(name, []).append(out.detach().numpy().copy())
            if isinstance(output, tuple) and hasattr(output[1], "v"):
                captured.setdefault(name + ".v", []).append(output[1].v.detach().numpy().copy())
        return fn

    for name, module in model.named_children():
        module.register_forward_hook(hook(name))
    state = None
    with torch.no_grad():
        for t in range(x.shape[1]):
            _, state = model(torch.from_numpy(np.ascontiguousarray(x[:, t], dtype=np.float32)), state)
    return {k: np.array(v) for k, v in captured.items()}


def test_lif_graph_batched():
    # lif_norse.nir with random spike trains, 8 samples at once (no Flatten: Norse can batch)
    g = nir.read(third_party("lif_norse.nir"))
    x = (np.random.default_rng(21).random((8, 400, 1)) < 0.2).astype(np.float32)
    out = run_norse(g, x)
    rec = simulate(g, x, preset="norse", dt=DT, dtype=np.float32, record=["1"])
    spikes_norse = out["1"].transpose(1, 0, 2) != 0
    assert spikes_norse.sum() > 20
    np.testing.assert_array_equal(rec.spikes("1"), spikes_norse)
    v_norse = out["1.v"].transpose(1, 0, 2)
    # v < 0.1: float32 ulp <= 7.5e-9; measured max 4.5e-8 (rounding differences accumulate over ticks)
    np.testing.assert_allclose(rec.get("1", "v"), v_norse, rtol=0, atol=1e-7)


def test_lif_with_leak_and_several_neurons():
    # a 3 -> 5 Affine with bias into a LIF with v_leak != 0 and different taus; Norse starts
    # at v = v_leak (initial_v="v_leak" in the norse preset) and resets to 0 (it drops v_reset)
    rng = np.random.default_rng(22)
    w = rng.normal(0, 1.0, size=(5, 3)).astype(np.float32)
    b = rng.normal(0, 0.5, size=5).astype(np.float32)
    lif = nir.LIF(tau=np.array([1e-3, 2e-3, 3e-3, 4e-3, 5e-3], dtype=np.float32), r=np.ones(5, dtype=np.float32),
                  v_leak=np.full(5, 0.2, dtype=np.float32), v_threshold=np.full(5, 0.6, dtype=np.float32),
                  v_reset=np.zeros(5, dtype=np.float32))
    g = nir.NIRGraph(nodes={"input": nir.Input(input_type=np.array([3])), "aff": nir.Affine(weight=w, bias=b),
                            "lif": lif, "output": nir.Output(output_type=np.array([5]))},
                     edges=[("input", "aff"), ("aff", "lif"), ("lif", "output")])
    x = (rng.random((4, 300, 3)) < 0.3).astype(np.float32)
    out = run_norse(g, x)
    rec = simulate(g, x, preset="norse", dt=DT, dtype=np.float32, record=["lif", "aff"])
    assert out["lif"].sum() > 20
    np.testing.assert_array_equal(rec.spikes("lif"), out["lif"].transpose(1, 0, 2) != 0)
    np.testing.assert_allclose(rec.get("lif", "v"), out["lif.v"].transpose(1, 0, 2), rtol=0, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cnn_sinabs_batch_1(dtype):
    # Norse imports IF as IAFCell (v + input, v > v_th, reset to 0), SumPool2d as LPPool2d(1),
    # Conv2d as torch Conv2d: all IF layers must spike at the same ticks and neurons.
    g = nir.read(third_party("cnn_sinabs.nir"))
    x = (np.random.default_rng(23).random((1, 40, 2, 34, 34)) < 0.08).astype(np.float32)
    out = run_norse(g, x)
    rec = simulate(g, x, preset="norse", dt=DT, dtype=dtype, record=["0", "2", "9"])
    for node in ("1", "3", "6", "10", "12"):
        norse_spikes = out[node].reshape(rec.spikes(node)[0].shape) != 0
        assert norse_spikes.any(), node
        np.testing.assert_array_equal(rec.spikes(node)[0], norse_spikes, err_msg=node)
    # pre-activations: conv outputs agree to float32 rounding; the 128->256 Affine sums in a
    # different order than Norse's batched Linear (measured 1.4e-6 at magnitude ~10)
    for node, atol in (("0", 1e-6), ("2", 1e-6), ("9", 5e-6)):
        ref = rec.get(node, "output")[0]
        np.testing.assert_allclose(ref, out[node].reshape(ref.shape), rtol=0, atol=atol, err_msg=node)


def test_braille_recurrent_cubalif():
    # Norse imports CubaLIF as LIBoxCell synapse (Euler, decay 1 - dt/tau_syn, input w_in*x)
    # -> r * current -> LIFBoxCell; reset_method=reset_subtract as the file's name says. Its
    # graph executor feeds the recurrent Linear's output to the next tick, as the reference's
    # back-edge rule does. (Norse's synapse uses the neuron's v_leak, which is 0 here.)
    from norse.torch.functional import reset as norse_reset

    g = nir.read(third_party("braille_noDelay_noBias_subtract.nir"))
    assert np.all(g.nodes["lif1.lif"].v_leak == 0)
    x = (np.random.default_rng(24).random((1, 80, 12)) < 0.3).astype(np.float32)
    out = run_norse(g, x, reset_method=norse_reset.reset_subtract)
    rec = simulate(nir.read(third_party("braille_noDelay_noBias_subtract.nir")), x, preset="norse",
                   options={"reset": "subtract"}, dt=DT, dtype=np.float32)
    norse_out = out["lif2"][:, 0] != 0
    assert norse_out.sum() > 5
    np.testing.assert_array_equal(rec.spikes("lif2")[0], norse_out)
