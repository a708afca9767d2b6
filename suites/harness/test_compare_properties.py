"""Property: any single changed element is reported at exactly its (node, neuron, tick, sample)."""
from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from harness.compare import compare_recordings
from s2common.recording import Recording

shapes = st.sampled_from([(4,), (2, 3), (2, 3, 2), (1, 1, 5)])


@given(shape=shapes, batch=st.integers(1, 3), ticks=st.integers(1, 6), data=st.data(),
       observable=st.sampled_from(["spikes", "v", "i"]), shift=st.integers(-2, 2))
def test_a_single_change_is_located_exactly(shape, batch, ticks, data, observable, shift):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31 - 1)))
    exp = Recording(dt=1e-4)
    exp.add("a", "spikes", rng.random((batch, ticks, 3)) < 0.5)
    exp.add("b", "spikes", rng.random((batch, ticks, *shape)) < 0.5)
    exp.add("b", "v", rng.standard_normal((batch, ticks, *shape)).astype(np.float32))
    exp.add("b", "i", rng.integers(-9, 9, (batch, ticks, *shape)).astype(np.int32))
    # the actual recording runs `shift` ticks later: actual[t + shift] == expected[t]
    act = Recording(dt=1e-4)
    lo, hi = max(0, -shift), ticks - max(0, shift)  # expected ticks that exist on both sides
    if hi <= lo:
        return
    for n, d in exp.data.items():
        for o, a in d.items():
            out = np.zeros_like(a)
            out[:, lo + shift:hi + shift] = a[:, lo:hi]
            act.add(n, o, out)
    assert compare_recordings(exp, act, time_shift=shift).ok
    size = int(np.prod(shape))
    sample, tick, neuron = (data.draw(st.integers(0, batch - 1)), data.draw(st.integers(lo, hi - 1)),
                            data.draw(st.integers(0, size - 1)))
    idx = (sample, tick + shift) + tuple(np.unravel_index(neuron, shape))
    arr = act.data["b"][observable]
    if observable == "spikes":
        arr[idx] = ~arr[idx]
    elif observable == "v":
        arr.view(np.uint32)[idx] ^= np.uint32(1 << data.draw(st.integers(0, 31)))
    else:
        arr[idx] += 1
    comp = compare_recordings(exp, act, time_shift=shift)
    d = comp.first_divergence
    assert not comp.ok and comp.mismatches == 1
    assert (d.node, d.neuron, d.tick, d.sample, d.observable) == ("b", neuron, tick, sample, observable)
    assert d.index == (tuple(int(i) for i in np.unravel_index(neuron, shape)) if len(shape) else ())
