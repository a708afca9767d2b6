"""The ``fused_multiply_add`` switch rounds ``a*b + c`` once, exactly like an IEEE fused multiply-add.

Checked against exact rational arithmetic (``fractions.Fraction``) with an independent
round-to-nearest-even, on random values and on constructed ties where evaluating in float64
and rounding to float32 (double rounding) gives the wrong answer.
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import torch

from s2emu.engine import fma_f32 as fma_torch
from s2emu.golden import fma_f32 as fma_numpy

F = np.float32


def exact_round_f32(x: Fraction) -> np.float32:
    """Round an exact rational to the nearest float32, ties to even (finite, normal range)."""
    r = F(float(x))  # within one float32 ulp of the answer
    cands = [np.nextafter(r, F(-np.inf)), r, np.nextafter(r, F(np.inf))]
    best = min(cands, key=lambda c: (abs(Fraction(float(c)) - x), int(np.array(c).view(np.uint32)) & 1))
    return F(best)


def exact(a, b, c) -> Fraction:
    return Fraction(float(a)) * Fraction(float(b)) + Fraction(float(c))


def _ties():
    # (1 + 2**-12)**2 = 1 + 2**-11 + 2**-24: exactly halfway between two float32; a tiny c decides
    a = F(1 + 2.0 ** -12)
    out = []
    for c in (2.0 ** -80, -(2.0 ** -80), 2.0 ** -60, -(2.0 ** -70), 0.0):
        out.append((a, a, F(c)))
    # the same with the tie at a larger scale and an integer-sized c far below it
    big = F(2.0 ** 40 * (1 + 2.0 ** -12))
    out.append((big, a, F(2.0 ** -10)))
    out.append((big, a, F(-(2.0 ** -10))))
    return out


def test_constructed_ties_round_like_a_true_fma() -> None:
    wrong = 0
    for a, b, c in _ties():
        want = exact_round_f32(exact(a, b, c))
        assert fma_numpy(a, b, c) == want, (a, b, c)
        got = fma_torch(torch.tensor([a]), torch.tensor([b]), torch.tensor([c]))[0].item()
        assert F(got) == want, (a, b, c)
        wrong += F(np.float64(a) * np.float64(b) + np.float64(c)) != want
    assert wrong >= 2  # the naive float64-then-float32 evaluation is wrong on these


def test_random_values_match_exact_rounding() -> None:
    rng = np.random.default_rng(3)
    a = rng.uniform(0.5, 1.0, 4000).astype(F)
    b = (rng.normal(0, 1, 4000) * 10.0 ** rng.integers(-6, 7, 4000)).astype(F)
    c = np.round(rng.normal(0, 1, 4000) * 10.0 ** rng.integers(-3, 5, 4000)).astype(F)
    got_t = fma_torch(torch.from_numpy(a), torch.from_numpy(b), torch.from_numpy(c)).numpy()
    for k in range(len(a)):
        want = exact_round_f32(exact(a[k], b[k], c[k]))
        assert fma_numpy(a[k], b[k], c[k]) == want
        assert got_t[k] == want
