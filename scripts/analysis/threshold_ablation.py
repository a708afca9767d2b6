"""The threshold-scaling lesson measured: scaled / unscaled / searched thresholds on the emulator.

    .venv/bin/python scripts/analysis/threshold_ablation.py [--model psnn|cnn|both] [--samples N] [--calibration M]

An analysis script, not part of the gate. For each model it quantizes the float graph with PTQ
(p = 100) and runs it on the bit-exact emulator three ways (:mod:`harness.quantize.thresholds`):
thresholds scaled with the weights (what s2gate deploys), thresholds left in float units, and a
per-population threshold factor searched on a calibration split disjoint from the test split.
It prints accuracy, agreement with the float reference and the spike rate of every population
(spikes per neuron per tick).

* bundled P-SNN (``harness/bundled/psnn.nir``): the stand-in's test split (first ``--samples``,
  default 660 = all) and, for the search, the first ``--calibration`` samples (default 200) of its
  train split; reference preset ``spinnaker2`` (the model's own).
* ``cnn_sinabs.nir`` (the NIR paper's N-MNIST CNN, ``shared/fixtures/third_party`` beside the
  repository): N-MNIST-like samples 0..N-1 (default 256, the suite's) for the test, samples from
  1280 on for the search (default 64), binarised (``x > 0``: the chip's inputs are binary events,
  the float reference gets the same); reference preset ``sinabs``.
"""
from __future__ import annotations

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
CNN = os.path.join(os.path.dirname(ROOT), "shared", "fixtures", "third_party", "cnn_sinabs.nir")
PSNN = os.path.join(ROOT, "harness", "bundled", "psnn.nir")


def run_psnn(samples: int, calibration: int):
    import nir

    from harness.data import standin_split
    from harness.quantize.thresholds import threshold_ablation

    g = nir.read(PSNN)
    x, y = standin_split("test", seed=0, n=samples)
    cx, _ = standin_split("train", seed=0, n=calibration)
    return threshold_ablation(g, x, y, cx, model="bundled P-SNN")


def run_cnn(samples: int, calibration: int):
    import nir

    from harness.data.nmnist_like import nmnist_like
    from harness.quantize.thresholds import threshold_ablation

    g = nir.read(CNN)
    x, y = nmnist_like(samples, seed=0)
    cx, _ = nmnist_like(calibration, seed=0, start=1280)
    # SpiNNaker2 takes binary input events: event counts per 1 ms frame become x > 0, for the float run too
    return threshold_ablation(g, x > 0, y, cx > 0, model="cnn_sinabs (binarised input)", preset="sinabs")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=("psnn", "cnn", "both"), default="both")
    ap.add_argument("--samples", type=int, default=None, help="test samples (default: 660 P-SNN, 256 cnn)")
    ap.add_argument("--calibration", type=int, default=None, help="calibration samples (default: 200 P-SNN, 64 cnn)")
    args = ap.parse_args(argv)
    runs = []
    if args.model in ("psnn", "both"):
        runs.append(run_psnn(args.samples or 660, args.calibration or 200))
    if args.model in ("cnn", "both"):
        runs.append(run_cnn(args.samples or 256, args.calibration or 64))
    for t in runs:
        print(f"\n{t.model}: PTQ p = {t.percentile:g}, {t.samples} test samples, search on {t.calibration_samples} "
              f"calibration samples, float reference preset {t.preset}")
        print(t.table())
        print(t.factors_table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
