"""The exact-sum proof that lets the reference run an Affine over the whole batch in one gemm
(``reference.ops.exact_input_bound``), checked on values worked out by hand and against
``math.fsum`` (the correctly rounded sum, an oracle independent of any summation order)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from reference.ops import exact_input_bound, integer_within, lowest_bit, make_op
from reference.simulate import block_samples


def test_lowest_bit_by_hand():
    # 0.75 = 0b0.11 -> 2**-2; 6 = 0b110 -> 2; 0.1 = 0x1999999999999A * 2**-56 (ends in binary ...1010) -> 2**-55
    got = lowest_bit(np.array([1.0, 0.75, -6.0, 0.1, 2.0 ** -1074, 0.0]))
    assert got.tolist() == [1.0, 0.25, 2.0, 2.0 ** -55, 2.0 ** -1074, math.inf]


def test_bound_by_hand():
    # one row 0.5, 0.25: grid q = 0.25, sum|w| = 0.75; exact while 0.75 M < 2**53 * 0.25, i.e. M < 2**53 / 3
    m = exact_input_bound(np.array([[0.5, 0.25]]), None, np.float64)
    assert 2 ** 53 / 3 * (1 - 1e-8) < m <= 2 ** 53 // 3
    # float32: 2**24 / 3
    assert 2 ** 24 // 3 - 1 <= exact_input_bound(np.array([[0.5, 0.25]]), None, np.float32) <= 2 ** 24 // 3
    # a bias off the weights' grid shrinks it to the bias's grid: q = 2**-30, room 2**23 - 2**-30
    m = exact_input_bound(np.array([[0.5, 0.25]]), np.array([2.0 ** -30]), np.float64)
    assert math.floor(2 ** 23 / 0.75) - 1 <= m <= 2 ** 23 / 0.75


def test_bound_is_zero_where_one_row_cannot_be_exact():
    # 1 + 2**-60: the sum needs 61 bits, so no order is guaranteed (the batch keeps the per-row loop)
    w = np.array([[0.5, 0.25], [1.0, 2.0 ** -60]])
    assert exact_input_bound(w, None, np.float64) == 0.0
    assert not integer_within(np.ones((2, 2)), 0.0)


def test_integer_within():
    assert integer_within(np.array([0.0, 3.0, -4.0]), 4)
    assert not integer_within(np.array([0.0, 5.0]), 4)      # too large
    assert not integer_within(np.array([0.0, 0.5]), 4)      # not a whole number


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_batched_affine_equals_fsum_and_single_rows(dtype):
    rng = np.random.default_rng(3)
    # float32-valued weights of a moderate range: the proof holds in float64 (checked below) and the gemm runs
    w = (rng.standard_normal((40, 300)) * 0.05).astype(np.float32).astype(np.float64)
    if dtype == np.float32:  # float32 needs a coarse grid: multiples of 2**-10 below 0.25
        w = np.round(w * 2 ** 10) / 2 ** 10
    b = rng.standard_normal(40)

    class Affine:  # duck-typed nir.Affine
        weight, bias = w, b

    op = make_op("fc", Affine(), (300,), (40,), np.dtype(dtype))
    x = (rng.random((9, 300)) < 0.3).astype(dtype) * rng.integers(1, 4, (9, 300)).astype(dtype)
    assert exact_input_bound(w.astype(dtype), None, dtype) >= 3
    batch = op(x)
    wd = w.astype(dtype).astype(np.float64)
    for r in range(9):
        assert np.array_equal(batch[r], op(x[r:r + 1])[0])
        want = np.array([math.fsum(wd[i] * x[r].astype(np.float64)) for i in range(40)]).astype(dtype)
        assert np.array_equal(batch[r], want + b.astype(dtype))  # the exact sum, then one rounding of + b


def test_block_size_follows_the_largest_node():
    class Flat:
        out_shape = {"a": (16, 64, 64), "b": (10,)}

    # 64 Ki float64 values = 512 KiB per sample: two samples per 1 MiB block; float32 four; tiny graphs all at once
    assert block_samples(Flat(), np.dtype(np.float64)) == 2
    assert block_samples(Flat(), np.dtype(np.float32)) == 4
    Flat.out_shape = {"a": (3,)}
    assert block_samples(Flat(), np.dtype(np.float64)) == 2 ** 20 // 24
