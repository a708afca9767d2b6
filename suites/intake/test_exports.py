"""Real exports from Sinabs 3.1.3, snnTorch 1.0.0, Norse 1.1.0 and Rockpool 3.1.0, each on a small MLP and
a small conv net (seeded, see ``peers.py``):

* ``test_raw_export``: what the framework's own exporter gives, written with ``nir.write`` and read back
  with ``nir.read`` (the failures the issue measured; the expected errors are the frameworks' own);
* ``test_clean``: the ``harness.intake.from_<framework>`` export writes and passes ``nir.read``'s type
  check, with the framework's preset in its metadata, or is refused with one S2GateError line;
* ``test_reference_equals_framework``: the reference under that preset reproduces the framework's own
  forward pass spike for spike (every spike of the last layer, seeded Bernoulli input).
"""
from __future__ import annotations

import nir
import numpy as np
import pytest

from s2common.errors import S2GateError

from . import peers as P

#: (framework, model) -> what the framework's own exporter + nir.write/nir.read gives (None: writes and reads)
RAW = {
    ("sinabs", "mlp"): (TypeError, "Scalar datasets don't support chunk/filter options"),
    ("sinabs", "conv"): (TypeError, "One of data, shape or dtype must be specified"),
    ("snntorch", "mlp"): (ValueError, "type mismatch: input.output: [[ 1 20]] -> 0.input: [[20]]"),
    ("snntorch", "conv"): (IndexError, "tuple index out of range"),
    ("norse", "mlp"): (TypeError, "Scalar datasets don't support chunk/filter options"),
    ("norse", "conv"): (AttributeError, "'NoneType' object has no attribute 'to_dict'"),
    ("rockpool", "mlp"): (ValueError, "type mismatch: input.output: [[ 1 20]] -> 0_LinearTorch.input: [[20]]"),
    ("rockpool", "conv"): (AttributeError, "'NoneType' object has no attribute 'to_dict'"),
}
#: cases whose clean is refused: (rule of the S2GateError, node it names)
REFUSED = {("rockpool", "conv"): ("untranslated-layer", "0_Conv2d")}
CASES = sorted(RAW)


def _model(fw: str, kind: str):
    P.require(fw)
    return getattr(P, f"{fw}_{kind}")()


def _sample(fw: str, kind: str):
    import torch

    shape = P.CONV_IN if kind == "conv" else P.MLP_IN
    return torch.zeros(P.BATCH if fw == "sinabs" else 1, *shape)  # Sinabs' squeezed layers need the full batch


def _raw_export(fw: str, model, sample):
    if fw == "sinabs":
        import sinabs.nir

        return sinabs.nir.to_nir(model, sample)
    if fw == "snntorch":
        from snntorch.export_nir import export_to_nir

        return export_to_nir(model, sample)
    if fw == "norse":
        import norse.torch as nt

        return nt.to_nir(model, sample)
    from rockpool.nn.modules.torch.nir import to_nir

    return to_nir(model, sample)


def cleaned(fw: str, kind: str):
    """(model, cleaned graph, repairs) through ``harness.intake.from_<fw>``."""
    import harness.intake as intake

    model = _model(fw, kind)
    graph, repairs = getattr(intake, f"from_{fw}")(model, _sample(fw, kind))
    return model, graph, repairs


@pytest.mark.parametrize("fw,kind", CASES, ids=[f"{f}-{k}" for f, k in CASES])
def test_raw_export(fw, kind, tmp_path):
    """The framework's exporter alone: its graph fails nir.write or nir.read (the framework's own error)."""
    err_type, text = RAW[(fw, kind)]
    model = _model(fw, kind)
    with pytest.raises(err_type) as info:
        graph = _raw_export(fw, model, _sample(fw, kind))
        nir.write(tmp_path / "raw.nir", graph)
        nir.read(tmp_path / "raw.nir")
    assert text in str(info.value)


@pytest.mark.parametrize("fw,kind", CASES, ids=[f"{f}-{k}" for f, k in CASES])
def test_clean(fw, kind, tmp_path):
    """After intake the graph writes, reads back through nir's type check, and names the framework's preset."""
    if (fw, kind) in REFUSED:
        rule, node = REFUSED[(fw, kind)]
        with pytest.raises(S2GateError) as info:
            cleaned(fw, kind)
        assert info.value.rule == rule and info.value.node == node
        assert "\n" not in str(info.value)
        return
    _, graph, repairs = cleaned(fw, kind)
    assert repairs, "every raw export above fails, so something must have been repaired"
    nir.write(tmp_path / "clean.nir", graph)
    back = nir.read(tmp_path / "clean.nir")  # nir's own type check
    assert back.metadata["s2gate.preset"] == fw
    assert back.metadata["s2gate.repairs"].splitlines() == [str(r) for r in repairs]
    shape = P.CONV_IN if kind == "conv" else P.MLP_IN
    assert tuple(back.nodes["input"].input_type["input"]) == shape  # the batch axis is gone


@pytest.mark.parametrize("fw,kind", [c for c in CASES if c not in REFUSED],
                         ids=[f"{f}-{k}" for f, k in CASES if (f, k) not in REFUSED])
def test_reference_equals_framework(fw, kind):
    """The reference under the framework's preset (and dt) = the framework's forward pass, spike for spike."""
    from reference import simulate
    from s2common.graph import THRESHOLD_NEURON_TYPES, flatten_graph

    model, graph, _ = cleaned(fw, kind)
    x = P.spikes(P.CONV_IN if kind == "conv" else P.MLP_IN)
    theirs = P.FORWARD[fw](model, x)
    assert theirs.max() <= 1, "several spikes per tick (Sinabs/Rockpool MultiSpike) are not modelled by the presets"
    flat = flatten_graph(graph)
    last = [n for n in flat.order if flat.type_of(n) in THRESHOLD_NEURON_TYPES][-1]
    ours = simulate(graph, x, preset=graph.metadata["s2gate.preset"], dt=graph.metadata["s2gate.dt"]).get(last, "spikes")
    assert ours.shape == theirs.shape
    assert theirs.sum() >= 8, "the seeded model must spike for the comparison to mean something"
    np.testing.assert_array_equal(ours.astype(np.float32), theirs.astype(np.float32))


def test_sinabs_norm_input_lif_equals_sinabs():
    """Sinabs' default LIF (norm_input=True) loses its input scale in sinabs.nir.to_nir; from_sinabs restores it."""
    P.require("sinabs")
    import torch

    from harness.intake import from_sinabs
    from reference import simulate

    model = P.sinabs_mlp(norm_input=True)
    graph, repairs = from_sinabs(model, torch.zeros(P.BATCH, *P.MLP_IN))
    assert any("norm_input" in r.what for r in repairs)
    np.testing.assert_allclose(graph.nodes["1"].r, 1 - np.exp(-1 / 8.0), rtol=1e-6)  # tau_mem = 8 ticks
    x = P.spikes(P.MLP_IN)
    theirs = P.sinabs_forward(model, x)
    ours = simulate(graph, x, preset="sinabs", dt=graph.metadata["s2gate.dt"]).get("3", "spikes")
    assert theirs.sum() >= 8
    np.testing.assert_array_equal(ours.astype(np.float32), theirs)


@pytest.mark.parametrize("mech,delay,preset", [("subtract", True, "snntorch-subtract"), ("zero", True, "snntorch")])
def test_snntorch_reset_variants_equal_snntorch(mech, delay, preset):
    """snnTorch's default Leaky (subtract, reset_delay=True) and zero-with-delay: from_snntorch picks the preset
    from the module (the export carries no reset) and the reference reproduces snnTorch spike for spike."""
    P.require("snntorch")
    import torch

    from harness.intake import from_snntorch
    from reference import simulate

    model = P.snntorch_default_mlp(mech, delay)
    graph, _ = from_snntorch(model, torch.zeros(1, *P.MLP_IN))
    assert graph.metadata["s2gate.preset"] == preset
    x = P.spikes(P.MLP_IN)
    theirs = P.snntorch_forward(model, x)
    ours = simulate(graph, x, preset=preset, dt=graph.metadata["s2gate.dt"]).get("3", "spikes")
    assert theirs.sum() >= 8
    np.testing.assert_array_equal(ours.astype(np.float32), theirs)
    if mech == "subtract":  # the delay matters: the same-tick subtraction gives other spikes on this input
        same_tick = simulate(graph, x, preset=preset, options={"reset_delay": "none"},
                             dt=graph.metadata["s2gate.dt"]).get("3", "spikes")
        assert not np.array_equal(same_tick.astype(np.float32), theirs)


def test_snntorch_unmodelled_reset_is_refused():
    """Reset by subtraction without delay (snnTorch's 'avoid double reset' rule) has no preset: one clear line."""
    P.require("snntorch")
    import snntorch as snn
    import torch

    from harness.intake import from_snntorch

    model = torch.nn.Sequential(torch.nn.Linear(20, 5),
                                snn.Leaky(beta=0.9, init_hidden=True, output=True, reset_delay=False))
    with pytest.raises(S2GateError) as info:
        from_snntorch(model, torch.zeros(1, 20))
    assert info.value.rule == "snntorch-reset" and info.value.node == "1"


def test_rockpool_cannot_run_its_conv_net():
    """Rockpool has no convolution module: a torch Conv2d in its Sequential is exported as nothing (see
    test_raw_export / test_clean) and Rockpool's own forward pass cannot run it on (batch, time, ...) input."""
    P.require("rockpool")
    with pytest.raises(RuntimeError, match="Expected 3D .unbatched. or 4D .batched. input to conv2d"):
        P.rockpool_forward(P.rockpool_conv(), P.spikes(P.CONV_IN))
