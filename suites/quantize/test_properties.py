"""Hypothesis properties of PTQ, each able to fail.

Float bound used below (nearest mode, unclipped weight w, lambda > 0, u = 2**-53):
x = fl(lambda*w) = lambda*w*(1+d1), q = rint(x), |x - q| <= 1/2; the test computes
d = fl(q/lambda) = (q/lambda)(1+d2). Then
|w - d| <= |lambda*w - x|/lambda + |x - q|/lambda + |q/lambda|*u
         <= (127.5*u + 1/2 + 127*u)/lambda  <  (1/2 + 256*u)/lambda,
so the exact statement |w - q/lambda| <= 1/(2 lambda) is asserted with that 256*u slack.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from harness.quantize import dequantize, quant_meta, quantize_ptq, scale_populations
from suites.quantize.graphs import two_layer

U = 2.0 ** -53
# weights: 0 or magnitudes in [2**-10, 4] (tiny magnitudes would make lambda overflow float32 thresholds,
# a separate, documented error tested in test_ptq.py)
finite32 = st.one_of(st.just(0.0), st.floats(2.0 ** -10, 4.0, width=32), st.floats(-4.0, -2.0 ** -10, width=32))


@st.composite
def graphs(draw, neuron=st.sampled_from(["IF", "LIF"]), with_rec=st.booleans()):
    n_in = draw(st.integers(1, 5))
    n_hid = draw(st.integers(1, 5))
    n_out = draw(st.integers(1, 3))
    w1 = draw(arrays(np.float32, (n_hid, n_in), elements=finite32))
    w2 = draw(arrays(np.float32, (n_out, n_hid), elements=finite32))
    b1 = draw(arrays(np.float32, (n_hid,), elements=finite32))
    rec = draw(arrays(np.float32, (n_hid, n_hid), elements=finite32)) if draw(with_rec) else None
    return two_layer(w1, w2, b1=b1, neuron=draw(neuron), w_rec=rec)


def _incoming(g, pop):
    return [w for w, p in (("fc1", "pop1"), ("rec", "pop1"), ("fc2", "pop2")) if p == pop and w in g.nodes]


def _ok(g, p, per_channel):
    """Skip graphs where some percentile is 0 while weights are not (a documented QuantizationError)."""
    for pop in ("pop1", "pop2"):
        ws = [np.abs(np.asarray(g.nodes[w].weight, np.float64)) for w in _incoming(g, pop)]
        if per_channel:
            rows = np.concatenate([w.reshape(w.shape[0], -1) for w in ws], axis=1)
            if np.any((np.percentile(rows, p, axis=1) == 0) & (rows.max(axis=1) > 0)):
                return False
        else:
            allw = np.concatenate([w.ravel() for w in ws])
            if np.percentile(allw, p) == 0 and allw.max() > 0:
                return False
    return True


@given(g=graphs(), p=st.floats(1.0, 100.0), per_channel=st.booleans())
def test_unclipped_error_at_most_half_a_step_and_scale_is_127_over_percentile(g, p, per_channel):
    assume(_ok(g, p, per_channel))
    qg = quantize_ptq(g, percentile=p, per_channel=per_channel)
    for pop in ("pop1", "pop2"):
        names = _incoming(g, pop)
        ws = [np.asarray(g.nodes[w].weight, np.float64) for w in names]
        # lambda from its definition, independently
        if per_channel:
            absw = np.concatenate([np.abs(w) for w in ws], axis=1)
            perc = np.percentile(absw, p, axis=1)
            expect = np.where(perc > 0, 127 / np.where(perc > 0, perc, 1), 1.0)
        else:
            perc = np.percentile(np.concatenate([np.abs(w).ravel() for w in ws]), p)
            expect = 127 / perc if perc > 0 else 1.0
        np.testing.assert_allclose(qg.scales[pop], expect, rtol=1e-12)
        for name, w in zip(names, ws):
            q = np.asarray(qg.graph.nodes[name].weight, np.float64)
            lam = np.asarray(quant_meta(qg.graph.nodes[name])["scale"], np.float64)
            lam = lam.reshape(-1, 1) if lam.ndim else lam
            unclipped = np.abs(lam * w) < 127.5
            err = np.abs(w - q / lam)
            bound = (0.5 + 256 * U) / np.broadcast_to(lam, w.shape)
            assert np.all(err[unclipped] <= bound[unclipped])


@given(g=graphs(), p=st.floats(0.5, 100.0), per_channel=st.booleans(), rounding=st.sampled_from(["nearest", "truncate"]))
def test_codes_are_integers_in_range(g, p, per_channel, rounding):
    assume(_ok(g, p, per_channel))
    qg = quantize_ptq(g, percentile=p, per_channel=per_channel, rounding=rounding)
    lo = -127 if rounding == "nearest" else -128  # the vendor cast wraps to the full int8 range
    for name in ("fc1", "fc2", "rec"):
        if name not in g.nodes:
            continue
        q = np.asarray(qg.graph.nodes[name].weight)
        assert q.dtype == np.float32
        assert np.all(q == np.rint(q))
        assert q.min() >= lo and q.max() <= 127


@given(g=graphs(), p=st.floats(1.0, 100.0), per_channel=st.booleans())
def test_quantizing_a_quantized_graph_changes_nothing(g, p, per_channel):
    assume(_ok(g, p, per_channel))
    q1 = quantize_ptq(g, percentile=p, per_channel=per_channel)
    q2 = quantize_ptq(q1.graph, percentile=100.0, per_channel=per_channel)
    # every population's codes reach 127 (or are all zero -> lambda = 1): the second lambda is exactly 1
    for pop, lam in q2.scales.items():
        assert np.all(np.asarray(lam) == 1.0), (pop, lam)
    for name, node in q1.graph.nodes.items():
        for param in ("weight", "bias", "v_threshold", "v_reset", "v_leak"):
            if getattr(node, param, None) is not None:
                np.testing.assert_array_equal(getattr(q2.graph.nodes[name], param), getattr(node, param))
    # and the stored total scale still leads back to the same float view
    d1, d2 = dequantize(q1.graph), dequantize(q2.graph)
    for name in d1.nodes:
        for param in ("weight", "v_threshold"):
            if getattr(d1.nodes[name], param, None) is not None:
                np.testing.assert_array_equal(getattr(d2.nodes[name], param), getattr(d1.nodes[name], param))


@given(g=graphs(), ps=st.lists(st.floats(1.0, 100.0), min_size=2, max_size=2, unique=True),
       rounding=st.sampled_from(["nearest", "truncate"]))
def test_clipped_fraction_grows_as_percentile_falls(g, ps, rounding):
    lo, hi = sorted(ps)
    assume(_ok(g, lo, False) and _ok(g, hi, False))
    a = {r.layer: r.clipped_fraction for r in quantize_ptq(g, percentile=lo, rounding=rounding).layers}
    b = {r.layer: r.clipped_fraction for r in quantize_ptq(g, percentile=hi, rounding=rounding).layers}
    for layer in a:
        assert a[layer] >= b[layer]
    # at p = 100 nearest never clips
    assert all(r.clipped_fraction == 0 for r in quantize_ptq(g).layers)


# ---- on the reference simulator ------------------------------------------------------------

def _simulate():
    ref = pytest.importorskip("reference")
    if not hasattr(ref, "simulate"):
        pytest.skip("reference.simulate is not written yet")
    return ref.simulate


def _spikes(simulate, g, x, preset):
    rec = simulate(g, x, preset=preset, dtype=np.float64)
    return {p: np.asarray(rec.spikes(p)) for p in ("pop1", "pop2")}


@given(g=graphs(neuron=st.just("IF")), k=st.integers(-6, 6).filter(bool), which=st.sampled_from(["pop1", "pop2", "both"]),
       seed=st.integers(0, 2**16), preset=st.sampled_from(["nir", "sinabs", "spinnaker2"]))
def test_metamorphic_scaling_weights_and_thresholds_keeps_if_spikes(g, k, which, seed, preset):
    """IF, zero bias: multiplying a population's incoming weights, threshold and reset by c > 0 keeps its spikes.

    c = 2**k makes this exact in floating point: every voltage is then exactly c times the
    unscaled one (scaling by a power of two commutes with rounding, barring over/underflow),
    so ``c*v > c*theta`` iff ``v > theta`` even at ties. With e.g. c = 3, ``fl(3v)`` vs
    ``fl(3*theta)`` can break a tie ``v == theta`` differently, and summation order can move a
    voltage across the threshold by an ulp; that is rounding, not a property of the graph.
    """
    simulate = _simulate()
    g.nodes["fc1"].bias = np.zeros_like(g.nodes["fc1"].bias)
    c = 2.0 ** k
    factors = {"pop1": c, "pop2": c} if which == "both" else {which: c}
    scaled = scale_populations(g, factors)
    n_in = g.nodes["fc1"].weight.shape[1]
    x = np.random.default_rng(seed).random((3, 20, n_in)) < 0.3
    a = _spikes(simulate, g, x, preset)
    b = _spikes(simulate, scaled, x, preset)
    for pop in a:
        np.testing.assert_array_equal(a[pop], b[pop])
    for pop, f in factors.items():
        np.testing.assert_array_equal(scaled.nodes[pop].v_threshold, g.nodes[pop].v_threshold * np.float32(f))


def test_metamorphic_check_is_not_vacuous():
    """Scaling the weights but not the thresholds does change spikes (so the property above can fail)."""
    simulate = _simulate()
    g = two_layer([[0.6]], [[1.0]], neuron="IF")
    x = np.ones((1, 10, 1), dtype=bool)
    a = _spikes(simulate, g, x, "nir")["pop1"].sum()
    g2 = two_layer([[1.2]], [[1.0]], neuron="IF")
    b = _spikes(simulate, g2, x, "nir")["pop1"].sum()
    assert a < b  # 0.6 per tick crosses 1.0 about every 2nd tick, 1.2 every tick
    good = scale_populations(g, {"pop1": 2.0})
    assert _spikes(simulate, good, x, "nir")["pop1"].sum() == a


@given(e=st.integers(0, 8), seed=st.integers(0, 2**16), neuron=st.sampled_from(["IF", "LIF"]),
       preset=st.sampled_from(["nir", "spinnaker2"]))
def test_lossless_ptq_gives_identical_spikes_in_chip_units(e, seed, neuron, preset):
    """Weights m * 2**-e with integer |m| <= 127 (127 attained): lambda = 2**e, codes = m exactly.

    The quantized graph (voltages in chip units: thresholds, v_leak, v_reset, bias times 2**e)
    must then spike exactly like the float graph on the reference: this checks that PTQ scales
    every voltage-like parameter of the population and nothing else (tau, r stay).
    """
    simulate = _simulate()
    rng = np.random.default_rng(seed)
    m1 = rng.integers(-127, 128, size=(4, 3))
    m1[0, 0] = 127
    m2 = rng.integers(-127, 128, size=(2, 4))
    m2[1, 2] = -127
    s = 2.0 ** -e
    g = two_layer(m1 * s, m2 * s, b1=rng.integers(-20, 20, size=4) * s / 8, neuron=neuron,
                  theta1=40 * s, theta2=60 * s)
    qg = quantize_ptq(g)
    assert qg.scales == {"pop1": 2.0 ** e, "pop2": 2.0 ** e}
    np.testing.assert_array_equal(qg.graph.nodes["fc1"].weight, m1)
    x = rng.random((4, 30, 3)) < 0.4
    a = _spikes(simulate, g, x, preset)
    b = _spikes(simulate, qg.graph, x, preset)
    for pop in a:
        np.testing.assert_array_equal(a[pop], b[pop])
