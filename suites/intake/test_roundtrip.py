"""Round trip: each cleaned export, quantized by s2gate (PTQ), its dequantized view imported back into Sinabs
(``harness.intake.to_sinabs``: ``sinabs.nir.from_nir``, one spike per tick) and Norse
(``harness.intake.to_norse``: ``norse.torch.from_nir``, its batch-axis Flatten repaired), run on seeded input
and compared with the reference under the importer's own reading: ``sinabs`` preset with dt = 1 tick (Sinabs
reads tau in ticks) and ``if_min_v="-threshold"`` (its IAF clamp); ``norse`` preset with the graph's dt.
"""
from __future__ import annotations

import numpy as np
import pytest

from . import peers as P
from .test_exports import cleaned

#: (framework, model, importer) -> "equal" (spike for spike, with spikes), "equal-silent" (equal, but the layer
#: never spikes under that importer's reading, so it shows only that it runs), or (error type, text) raised by
#: the importer itself, or "drops-r" (the importer ignores NIR's r != 1, so it computes another model)
EXPECT = {
    ("sinabs", "mlp", "sinabs"): "equal", ("sinabs", "conv", "sinabs"): "equal",
    ("sinabs", "mlp", "norse"): "equal-silent", ("sinabs", "conv", "norse"): "equal",
    ("norse", "mlp", "sinabs"): "equal", ("norse", "mlp", "norse"): "equal",
    ("norse", "conv", "sinabs"): (ValueError, "truth value of an array with more than one element is ambiguous"),
    ("norse", "conv", "norse"): "equal",
    ("snntorch", "mlp", "sinabs"): "drops-r", ("snntorch", "mlp", "norse"): "drops-r",
    ("snntorch", "conv", "sinabs"): (ValueError, "truth value of an array with more than one element is ambiguous"),
    ("snntorch", "conv", "norse"): "drops-r",
    ("rockpool", "mlp", "sinabs"): (KeyError, "Torch"),  # sinabs.nir has no CubaLIF: a node is dropped, nirtorch misses it
    ("rockpool", "mlp", "norse"): "equal-silent",
}
CASES = sorted(EXPECT)


def _last_spiking(graph) -> str:
    from s2common.graph import THRESHOLD_NEURON_TYPES, flatten_graph

    flat = flatten_graph(graph)
    return [n for n in flat.order if flat.type_of(n) in THRESHOLD_NEURON_TYPES][-1]


def _import_and_run(deq, into: str, x: np.ndarray):
    """(reference spikes, importer's spikes) of the last spiking layer."""
    from harness.intake import to_norse, to_sinabs
    from reference import simulate

    last = _last_spiking(deq)
    if into == "sinabs":
        ref = simulate(deq, x, preset="sinabs", options={"if_min_v": "-threshold"}, dt=1.0).get(last, "spikes")
        module, _ = to_sinabs(deq, x.shape[0])
        return ref, P.sinabs_forward(module, x)
    dt = deq.metadata["s2gate.dt"]
    ref = simulate(deq, x, preset="norse", dt=dt).get(last, "spikes")
    module, _ = to_norse(deq, dt=dt)
    return ref, P.norse_forward(module, x)


@pytest.mark.parametrize("fw,kind,into", CASES, ids=[f"{f}-{k}-into-{i}" for f, k, i in CASES])
def test_dequantized_roundtrip(fw, kind, into):
    P.require(into)
    from harness.quantize import dequantize, is_quantized, quantize_ptq

    _, graph, _ = cleaned(fw, kind)
    q = quantize_ptq(graph)
    assert is_quantized(q.graph)
    deq = dequantize(q.graph)
    x = P.spikes(P.CONV_IN if kind == "conv" else P.MLP_IN)
    expect = EXPECT[(fw, kind, into)]
    if isinstance(expect, tuple):
        err_type, text = expect
        with pytest.raises(err_type) as info:
            _import_and_run(deq, into, x)
        assert text in str(info.value)
        return
    ref, theirs = _import_and_run(deq, into, x)
    assert ref.shape == theirs.shape
    assert theirs.max() <= 1
    if expect == "drops-r":
        r = [np.asarray(n.r) for n in deq.nodes.values() if hasattr(n, "r")]
        assert any(not np.allclose(v, 1.0) for v in r), "snnTorch's export carries r = tau/dt != 1"
        assert not np.array_equal(ref.astype(np.float32), theirs.astype(np.float32))
        return
    np.testing.assert_array_equal(ref.astype(np.float32), theirs.astype(np.float32))
    if expect == "equal":
        assert theirs.sum() >= 5
    else:
        assert theirs.sum() == 0
