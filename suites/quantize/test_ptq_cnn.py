"""PTQ on the NIR paper's N-MNIST CNN (``cnn_sinabs.nir``), run on the reference simulator.

Inputs: 256 seeded N-MNIST-like samples from :mod:`harness.data.nmnist_like` (rendered digits
0-9 moved along N-MNIST's saccade triangle in front of a simulated DVS), binned as the NIR
paper binned N-MNIST for this network: event counts in 1 ms frames, not clipped, the first
300 frames (``tonic.transforms.ToFrame(time_window=1e3)``; ``paper/02_cnn/sinabs.py``,
``s2_apply.py``, ``cnn_numbers.ipynb`` in GitHub ``neuromorphs/NIR``). Preset ``"sinabs"``: the
graph was made by Sinabs' ANN-to-SNN conversion (IAF: ``v += input``, spike when ``v >= 1``,
reset by subtraction). Readout: the paper's own for this network, argmax of the output
layer's spike counts over all frames (``sinabs.py``: ``out.sum(dim=1).argmax(dim=1)``; Norse's
``norse_apply.ipynb`` sums output spikes too); ties go to the lowest class (``np.argmax``, as
``torch.argmax``), for both graphs alike.

Measured (seed 0, reference in float64; ``pytest suites/quantize/test_ptq_cnn.py -s`` prints them):

* the float graph's accuracy on the rendered labels: 90.2 % (chance 10 %; the paper reports
  98.5 % on real N-MNIST), so these inputs are digits to this network; its errors are mostly
  6 -> 0/5 and 8/9 -> 2 on font glyphs unlike handwriting;
* agreement of the dequantized graph's prediction with the float graph's: p = 100 97.3 %
  (7 of 256 differ), p = 99 97.7 %; accuracy 89.5 % at p = 100, 89.8 % at p = 99. Outside the
  suite (same 256 inputs, reference, float64): p = 99.9 99.6 %, per-channel p = 100 98.8 %,
  per-channel p = 99 97.7 %. On 1024 further samples (indices 256-1279; run with a batched
  float64 re-implementation of this IAF net whose spikes and figures on the 256 equal the
  reference's): float accuracy 90.7 %, agreement p = 100 98.3 % (95 % interval +-0.8),
  p = 99 97.9 %, p = 99.9 98.3 %, per-channel p = 100 98.7 % (+-0.7); the accuracy cost of
  PTQ at p = 100 is 0.2 pp there (the seed lost 1.07 pp on chip).
* every disagreement is a sample whose float top-2 counts were close (margins 5-15 spikes of
  up to 300) between classes the float graph itself confuses; quantization moves the winning
  class's spike count by a median of 3 spikes (95th percentile 14): the IF layers without leak
  integrate each weight's rounding error for 300 ticks, and a moved spike moves later ones.

* not the reference's spike function: Sinabs' IAF (what ``sinabs.from_nir`` builds) defaults to
  MultiSpike, which the ``sinabs`` preset does not model; with MultiSpike the same 256 samples
  agree less, 96.5 % (9 differ), float accuracy 89.8 %
  (``scripts/analysis/cnn_ptq_agreement.py``, a batched re-implementation that reproduces 97.3 %
  with SingleSpike).

So issue 4's ">= 99 % at p = 100" is NOT met on in-distribution inputs either: ~98 %, with 99 %
at the edge of the interval (on Bernoulli noise, used before, it was 85.5 %; 87.5 % on the 64
noise samples below: out-of-distribution inputs exaggerate the loss but are not its whole
cause). Issue 14 retired the fixed p = 100 criterion: the quantizer chooses the percentile itself
on calibration samples (:mod:`harness.quantize.calibrate`). Calibrated per channel on N-MNIST-like
samples 1280-1535 (disjoint from the 256 test samples here and from the 1024 others above), the
dequantized graph agrees with the float graph on >= 99 % of the 256, which is now a passing check:
measured 99.2 % (2 of 256 differ; reference, float64), accuracy 89.5 %. Figures on the 1024 further
samples: ``scripts/analysis/cnn_ptq_agreement.py --calibrate --per-channel --samples 1024 --start 256``.
Per population (not per channel) the calibration reached 98.4 % on the 256, and neither bias
correction nor the rounding search (both in :mod:`harness.quantize.calibrate`) raised the figure
on these inputs, though both lower the calibration objective (measured outside the suite).
"""
from __future__ import annotations

import numpy as np
import pytest

from harness.quantize import dequantize, quantize_ptq
from suites.fixtures import third_party

N, T, PRESET, SEED = 256, 300, "sinabs", 0
CAL_START, CAL_N = 1280, 256  # calibration samples: disjoint from the test samples 0-255 and from 256-1279
CHUNK = 32  # samples per reference run: bounds the recording's memory (every layer's spikes are kept)
POPS = {"0": "1", "2": "3", "5": "6", "9": "10", "11": "12"}  # weight node -> IF population


def _load():
    import nir

    return nir.read(str(third_party("cnn_sinabs.nir")))


def _grid(graph, bits: int, percentile: float = 100.0):
    """Independent oracle: each weight node on the grid 1/lambda, lambda = (2**(bits-1)-1)/percentile_p(|W|)."""
    import copy

    out = copy.deepcopy(graph)
    qmax = 2 ** (bits - 1) - 1
    for w in POPS:  # in this graph every population has exactly one incoming weight node
        wt = np.asarray(graph.nodes[w].weight, dtype=np.float64)
        lam = qmax / np.percentile(np.abs(wt), percentile)
        out.nodes[w].weight = (np.clip(np.rint(wt * lam), -qmax, qmax) / lam).astype(np.float32)
    return out


def _counts(graph, x: np.ndarray) -> np.ndarray:
    """Output spike counts (batch, 10) of ``graph`` on the reference (float64), in chunks of CHUNK samples."""
    from reference import simulate

    return np.concatenate([simulate(graph, x[i:i + CHUNK], preset=PRESET).spikes("12").sum(axis=1)
                           for i in range(0, len(x), CHUNK)])


@pytest.mark.parametrize("p", [100.0, 99.0])
def test_dequantized_cnn_is_the_independent_int8_grid(p):
    g = _load()
    qg = quantize_ptq(g, percentile=p)
    d = dequantize(qg.graph)
    oracle = _grid(g, 8, p)
    for w, pop in POPS.items():
        np.testing.assert_array_equal(d.nodes[w].weight, oracle.nodes[w].weight)
        np.testing.assert_array_equal(d.nodes[w].bias, g.nodes[w].bias)
        np.testing.assert_array_equal(d.nodes[pop].v_threshold, g.nodes[pop].v_threshold)
        q = qg.graph.nodes[w].weight
        assert q.min() >= -127 and q.max() <= 127 and np.all(q == np.rint(q))
    # at p = 100 the largest |code| of every layer is 127, and nothing is clipped
    if p == 100.0:
        assert all(np.abs(qg.graph.nodes[w].weight).max() == 127 for w in POPS)
        assert all(r.clipped_fraction == 0 for r in qg.layers)
    else:  # about 1 % of the weights lie above the 99th percentile and are clipped
        assert all(0.005 < r.clipped_fraction <= 0.011 for r in qg.layers)


def test_nmnist_like_inputs_look_like_nmnist_frames():
    """Cheap checks of the generator itself (independent of the network)."""
    from harness.data.nmnist_like import DEFAULT_CONFIG, nmnist_like, saccade_path

    x, y = nmnist_like(4, seed=SEED, start=10)
    assert x.shape == (4, T, 2, 34, 34) and x.dtype == np.uint8
    assert y.tolist() == [0, 1, 2, 3]
    # sample i depends on (seed, i) only
    x1, _ = nmnist_like(1, seed=SEED, start=12)
    np.testing.assert_array_equal(x1[0], x[2])
    # events come with the saccades: each third of the recording has a comparable share
    per_saccade = x.reshape(4, 3, T // 3, -1).sum(axis=(2, 3))
    assert np.all(per_saccade > 0.15 * per_saccade.sum(axis=1, keepdims=True))
    # ON events lead the motion: in saccade 1 the image moves by (+3.5, +7) px, so the ON
    # events' centroid lies further along (x + 2y) than the OFF events'
    on, off = DEFAULT_CONFIG.on_channel, 1 - DEFAULT_CONFIG.on_channel
    first = x[:, :100].sum(axis=1).astype(np.float64)  # (4, 2, 34, 34)
    yy, xx = np.mgrid[0:34, 0:34]
    along = (xx + 2 * yy)[None]
    lead = (first[:, on] * along).sum((1, 2)) / first[:, on].sum((1, 2)) - \
        (first[:, off] * along).sum((1, 2)) / first[:, off].sum((1, 2))
    assert np.all(lead > 1.0), lead
    # the trajectory is N-MNIST's triangle: back at the start after three legs of 105 ms
    rng = np.random.default_rng(0)
    path = saccade_path(np.array([0.0, 105.0, 210.0, 315.0]), rng)
    assert np.allclose(path[3], path[0])
    assert np.allclose(path[1] - path[0], [3.5, 7.0], atol=2.0) and np.allclose(path[2] - path[0], [7.0, 0.0], atol=2.0)


#: the three tests below share the ~3 min ``digits`` fixture: under ``-n auto --dist loadgroup`` one worker
#: computes it once instead of each worker that draws one of them
_ONE_WORKER = pytest.mark.xdist_group("cnn-digits")


@pytest.fixture(scope="module")
def digits():
    from harness.data.nmnist_like import nmnist_like

    g = _load()
    x, labels = nmnist_like(N, seed=SEED)
    ref_counts = _counts(g, x)
    ref = ref_counts.argmax(axis=1)
    out = {"labels": labels, "float_counts": ref_counts, "float_acc": float((ref == labels).mean())}
    from harness.quantize.calibrate import quantize_calibrated

    cal_x, _ = nmnist_like(CAL_N, seed=SEED, start=CAL_START)
    cal = quantize_calibrated(g, cal_x, per_channel=True, preset=PRESET)
    out["cal_percentiles"] = {c.populations[0]: c.percentile for c in cal.calibration.choices}
    graphs = {"p100": dequantize(quantize_ptq(g, percentile=100).graph),
              "p99": dequantize(quantize_ptq(g, percentile=99).graph),
              "cal": dequantize(cal.graph)}
    for key, graph in graphs.items():
        pred = _counts(graph, x).argmax(axis=1)
        out[key] = float((pred == ref).mean())
        out[key + "_acc"] = float((pred == labels).mean())
    # Bernoulli noise (7 % density, 50 ticks, 64 samples): out-of-distribution inputs, for contrast
    noise = np.random.default_rng(SEED).random((64, 50, 2, 34, 34)) < 0.07
    out["noise_p100"] = float((_counts(g, noise).argmax(1) == _counts(graphs["p100"], noise).argmax(1)).mean())
    print("\ncnn_sinabs on N-MNIST-like digits:",
          {k: round(v, 4) for k, v in out.items() if isinstance(v, float)})
    return out


@pytest.mark.slow
@_ONE_WORKER
def test_float_cnn_reads_the_synthetic_digits(digits):
    # the network reaches 98.5 % on real N-MNIST; well above chance (10 %) means the inputs are
    # digits in the sense this network was trained on, so agreement figures on them mean something
    assert digits["float_acc"] >= 0.8
    # and every class is predicted (no collapse onto one output)
    assert len(np.unique(digits["float_counts"].argmax(1))) == 10


@pytest.mark.slow
@_ONE_WORKER
def test_ptq_cnn_agreement_figures(digits):
    # the seed lost 1.07 pp of accuracy on chip with PTQ at p = 100: a loss of more than 3 pp here,
    # or agreement below 95 %, would mean the quantizer (not the int8 grid) is at fault
    assert digits["p100_acc"] >= digits["float_acc"] - 0.03
    assert digits["p100"] >= 0.95
    # clipping ~1 % of the weights at p = 99 (with rounding) costs little more
    assert digits["p99"] >= 0.93 and digits["p99_acc"] >= digits["float_acc"] - 0.05
    # on Bernoulli noise the same quantized graph disagrees far more often: out-of-distribution
    # inputs sit near decision boundaries (the previous version of this test measured 85.5 %)
    assert digits["noise_p100"] < digits["p100"] - 0.03


@pytest.mark.slow
@_ONE_WORKER
def test_calibrated_ptq_cnn_agreement_99_percent(digits):
    # issue 14: the percentile chosen per channel on calibration samples disjoint from these 256
    assert digits["cal"] >= 0.99
    # p = 100 (issue 4's retired criterion) stays below it on the same samples: calibration made the difference
    assert digits["p100"] < 0.99
    # the choices are percentiles of the grid, and not all of them 100
    chosen = [p for ps in digits["cal_percentiles"].values() for p in np.atleast_1d(ps)]
    assert all(99.0 <= p <= 100.0 for p in chosen) and min(chosen) < 100.0
