"""Paired accuracy statistics (tier: statistical): the drop between two classifiers on the same samples.

The float view and the int8 graph are judged on the *same* N samples, so the comparison is
paired: only the discordant samples carry information, ``lost`` (the float side right, the
emulator wrong) and ``gained`` (the reverse); the drop is ``100 (lost - gained) / N`` pp and one
sample moves it by ``100 / N`` pp (the resolution).

Interval: **Tango's score interval** for the difference of paired proportions (T. Tango,
"Equivalence test and confidence interval for the difference in proportions for the
paired-sample design", Statistics in Medicine 17:891-908, 1998). It is the set of differences
δ that McNemar's score test does not reject: at δ = 0 its statistic is McNemar's
``(lost - gained) / sqrt(lost + gained)``. Chosen over the alternatives the issue names:

* the exact conditional (McNemar / Clopper-Pearson on ``lost / (lost + gained)``) interval is
  conditional on the number of discordant samples and collapses to [0, 0] when there are none,
  which is exactly the case of two runs that agree on every sample (the bundled Q-SNN), and
  says nothing about N;
* a paired bootstrap needs a random seed and thousands of resamples, is not exact either, and
  with no discordant samples also gives [0, 0];
* Tango's interval is deterministic, has close to nominal coverage for small N (Newcombe 1998,
  Statistics in Medicine 17:2635-2650, compares it with ten others), and with no discordant
  samples gives ``±z² / (N + z²)``, which shrinks with N as it should.

The restricted maximum-likelihood estimate in the statistic has a closed form (Tango 1998,
eq. 3); the bounds are found by bisection, since the statistic falls monotonically in δ.
No dependency beyond the standard library.
"""
from __future__ import annotations

import math
from typing import Tuple

import numpy as np

#: the 97.5 % quantile of the standard normal distribution (two-sided 95 %).
Z_95 = 1.959963984540054
METHOD = "Tango score interval for paired proportions (inverts McNemar's test)"


def tango_statistic(lost: int, gained: int, n: int, delta: float) -> float:
    """Tango's score statistic for the hypothesis ``p_lost - p_gained = delta`` (fractions).

    ``Z(δ) = (lost - gained - n δ) / sqrt(n (2 q + δ (1 - δ)))`` with ``q`` the restricted
    MLE of ``p_gained``: ``q = (sqrt(B² - 4AC) - B) / 2A``, ``A = 2n``,
    ``B = -lost - gained + (2n - lost + gained) δ``, ``C = -gained δ (1 - δ)``.
    """
    b, c = float(lost), float(gained)
    a_ = 2.0 * n
    b_ = -b - c + (2.0 * n - b + c) * delta
    c_ = -c * delta * (1.0 - delta)
    q = (math.sqrt(max(b_ * b_ - 4.0 * a_ * c_, 0.0)) - b_) / (2.0 * a_)
    var = n * (2.0 * q + delta * (1.0 - delta))
    num = b - c - n * delta
    if var <= 0.0:
        return math.copysign(math.inf, num) if num else 0.0
    return num / math.sqrt(var)


def tango_interval(lost: int, gained: int, n: int, z: float = Z_95) -> Tuple[float, float]:
    """95 % (for the default ``z``) interval of ``p_lost - p_gained`` as fractions in [-1, 1]."""
    if n <= 0:
        raise ValueError("no samples")
    est = (lost - gained) / n

    def solve(lo: float, hi: float, target: float) -> float:
        # Z falls from lo to hi; find where it crosses target
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            if tango_statistic(lost, gained, n, mid) > target:
                lo = mid
            else:
                hi = mid
        return 0.5 * (lo + hi)

    lower = -1.0 if tango_statistic(lost, gained, n, -1.0) <= z else solve(-1.0, est, z)
    upper = 1.0 if tango_statistic(lost, gained, n, 1.0) >= -z else solve(est, 1.0, -z)
    return lower, upper


def paired_counts(reference_correct: np.ndarray, candidate_correct: np.ndarray) -> Tuple[int, int]:
    """(lost, gained): samples right on the reference side and wrong on the candidate side, and the reverse."""
    r = np.asarray(reference_correct, dtype=bool)
    c = np.asarray(candidate_correct, dtype=bool)
    return int(np.count_nonzero(r & ~c)), int(np.count_nonzero(~r & c))


def drop_interval_pp(lost: int, gained: int, n: int) -> Tuple[float, float]:
    """The 95 % interval of the accuracy drop in percentage points."""
    lo, hi = tango_interval(lost, gained, n)
    return 100.0 * lo, 100.0 * hi


def resolution_pp(n: int) -> float:
    """What one sample changes in an accuracy, percentage points."""
    return 100.0 / n if n else math.inf
