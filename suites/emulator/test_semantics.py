"""The tick semantics the emulator documents, checked on the recordings of both engines.

Each test states the expected numbers from the contract (s2emu/README.md), not from the code.
"""
from __future__ import annotations

import nir
import numpy as np
import pytest

from s2emu import ConversionOptions, Engine, GoldenModel, lower

F = np.float32
Q = dict(scale_weights=False)


def _net(weight, neuron, **opts):
    weight = np.asarray(weight, F)
    n_out, n_in = weight.shape
    g = nir.NIRGraph(nodes={"input": nir.Input(input_type={"input": np.array([n_in])}),
                            "fc": nir.Linear(weight=weight), "n": neuron,
                            "output": nir.Output(output_type={"output": np.array([n_out])})},
                     edges=[("input", "fc"), ("fc", "n"), ("n", "output")])
    return lower(g, ConversionOptions(**opts))


def _if(thr, n=1):
    return nir.IF(r=np.ones(n, F), v_threshold=np.full(n, thr, F), v_reset=np.zeros(n, F))


def _both(net, x):
    fast, gold = Engine(net).run(x, record="all"), GoldenModel(net).run(x, record="all")
    for obs in ("spikes", "i", "v"):
        a, b = fast.get("n", obs), gold.get("n", obs)
        assert np.array_equal(a.view(np.uint32) if a.dtype == np.float32 else a,
                              b.view(np.uint32) if b.dtype == np.float32 else b), obs
    return fast


@pytest.mark.parametrize("delay", [0, 1, 3])
def test_spike_in_tick_t_arrives_in_tick_t_plus_1_plus_delay(delay: int) -> None:
    net = _net([[7.0]], _if(1000.0), conn_delay=delay, **Q)
    x = np.zeros((1, 8, 1), bool)
    x[0, 2, 0] = True
    rec = _both(net, x)
    i = rec.get("n", "i")[0, :, 0]
    assert np.flatnonzero(i).tolist() == [3 + delay] and i[3 + delay] == 7
    assert rec.get("n", "v")[0, -1, 0] == 7.0  # IF: alpha = 1, the input stays


def test_threshold_is_strict_and_reset_subtracts_or_zeroes() -> None:
    # IF threshold 10, input 10 per tick: v = 10 (no spike, not > 10), 20 -> spike
    x = np.zeros((1, 5, 1), bool)
    x[0, :4, 0] = True
    sub = _both(_net([[10.0]], _if(10.0), reset="subtract", **Q), x)
    assert sub.get("n", "v")[0, :, 0].tolist() == [0, 10, 10, 10, 10]
    assert sub.spikes("n")[0, :, 0].tolist() == [False, False, True, True, True]
    zero = _both(_net([[10.0]], _if(10.0), reset="to_v_reset", **Q), x)
    assert zero.get("n", "v")[0, :, 0].tolist() == [0, 10, 0, 10, 0]
    assert zero.spikes("n")[0, :, 0].tolist() == [False, False, True, False, True]


def test_projections_into_one_population_are_summed() -> None:
    g = nir.NIRGraph(nodes={"input": nir.Input(input_type={"input": np.array([2])}),
                            "a": nir.Linear(weight=F([[3.0, 5.0]])),
                            "b": nir.Affine(weight=F([[-20.0, 1.0]]), bias=F([0.0])),
                            "n": _if(1e6), "output": nir.Output(output_type={"output": np.array([1])})},
                     edges=[("input", "a"), ("input", "b"), ("a", "n"), ("b", "n"), ("n", "output")])
    net = lower(g, ConversionOptions(**Q))
    x = np.array([[[1, 0], [0, 1], [1, 1], [0, 0]]], bool)
    rec = _both(net, x)
    assert rec.get("n", "i")[0, :, 0].tolist() == [0, 3 - 20, 5 + 1, 8 - 19]


def test_sum_pooling_counts_spikes_in_each_window() -> None:
    g = nir.NIRGraph(nodes={"input": nir.Input(input_type={"input": np.array([1, 4, 4])}),
                            "pool": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]),
                                                  padding=np.array([0, 0])),
                            "n": nir.IF(r=np.ones((1, 2, 2), F), v_threshold=np.full((1, 2, 2), 100.0, F),
                                        v_reset=np.zeros((1, 2, 2), F)),
                            "output": nir.Output(output_type={"output": np.array([1, 2, 2])})},
                     edges=[("input", "pool"), ("pool", "n"), ("n", "output")])
    net = lower(g, ConversionOptions(**Q))
    x = np.zeros((1, 2, 1, 4, 4), bool)
    x[0, 0, 0, 0, 0] = x[0, 0, 0, 1, 1] = x[0, 0, 0, 0, 1] = True   # three in the top-left window
    x[0, 0, 0, 3, 3] = True                                          # one in the bottom-right
    rec = _both(net, x)
    assert rec.get("n", "i")[0, 1, 0].tolist() == [[3, 0], [0, 1]]


def test_curr_exp_synapses_split_by_sign_and_decay() -> None:
    # euler, tau_syn = 0.5 ms, dt = 0.1 ms: exc/inh decay 0.8; tau_mem huge-ish -> alpha = 0.99
    cuba = nir.CubaLIF(tau_syn=F([5e-4]), tau_mem=F([1e-2]), r=F([1.0]), v_leak=F([0.0]), v_threshold=F([1e4]),
                       v_reset=F([0.0]), w_in=F([1.0]))
    net = _net([[10.0, -4.0]], cuba, **Q)
    pop = net.populations["n"]
    x = np.array([[[1, 1], [0, 0], [0, 0]]], bool)
    rec = _both(net, x)
    assert rec.get("n", "i")[0, :, 0].tolist() == [0, 6, 0]          # E - H = 10 - 4
    d, a = pop.exc_decay[0], pop.alpha_decay[0]
    i_e, i_h = F(10.0), F(4.0)                                       # tick 1: 0.8 * 0 + 10, 0.8 * 0 + 4
    v1 = F(F(F(a * F(0)) + i_e) - i_h)
    i_e, i_h = F(d * i_e), F(d * i_h)                                # tick 2: only decay
    v2 = F(F(F(a * v1) + i_e) - i_h)
    assert rec.get("n", "v")[0, 1:, 0].tolist() == [v1, v2]
    assert v1 == 6.0 and v2 != 6.0


@pytest.mark.parametrize("fma", [False, True])
def test_documented_float32_order_holds_on_every_tick(fma: bool) -> None:
    """v[t] recomputed from the recording with the documented order equals the recorded v[t]."""
    rng = np.random.default_rng(5)
    n = 64
    tau = rng.uniform(2e-4, 3e-3, n).astype(F)
    lif = nir.LIF(tau=tau, r=np.ones(n, F), v_leak=rng.normal(0, 0.3, n).astype(F), v_threshold=np.full(n, 1e9, F),
                  v_reset=np.zeros(n, F))
    w = rng.integers(-127, 128, (n, 16)).astype(F)
    net = _net(w, lif, fused_multiply_add=fma, **Q)
    pop = net.populations["n"]
    x = rng.random((2, 40, 16)) < 0.3
    rec = _both(net, x)
    v, i = rec.get("n", "v"), rec.get("n", "i")
    prev = np.zeros((2, n), F)
    for t in range(40):
        if fma:
            core = (pop.alpha_decay.astype(np.float64) * prev.astype(np.float64) + i[:, t].astype(F)).astype(F)
        else:
            core = (pop.alpha_decay * prev).astype(F) + i[:, t].astype(F)
        expect = (core + pop.i_offset).astype(F)
        assert np.array_equal(expect.view(np.uint32), v[:, t].view(np.uint32)), t
        prev = v[:, t]


def test_the_fma_switch_changes_bits() -> None:
    """The two orders are different arithmetic: on this network some voltages differ in the last bits."""
    rng = np.random.default_rng(5)
    n = 64
    lif = nir.LIF(tau=rng.uniform(2e-4, 3e-3, n).astype(F), r=np.ones(n, F), v_leak=np.zeros(n, F),
                  v_threshold=np.full(n, 1e9, F), v_reset=np.zeros(n, F))
    w = rng.integers(-127, 128, (n, 16)).astype(F)
    x = rng.random((2, 40, 16)) < 0.3
    a = Engine(_net(w, lif, fused_multiply_add=False, **Q)).run(x, record="all").get("n", "v")
    b = Engine(_net(w, lif, fused_multiply_add=True, **Q)).run(x, record="all").get("n", "v")
    assert not np.array_equal(a, b)
    assert np.allclose(a, b, rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("groups,dilation,rule", [(2, 1, "vendor-conv-groups"), (1, 2, "vendor-conv-dilation")])
def test_grouped_or_dilated_conv_is_rejected_as_the_converter_cannot_express_it(groups: int, dilation: int,
                                                                               rule: str) -> None:
    """``get_conv2d_params`` (sPiNNIRker 47c758b) builds ``conv_params`` from ``in_height``, ``in_width``,
    ``stride_x/y``, ``pool_x/y`` and ``pad_*`` only, and hands over ``conv2d_node.weight.swapaxes(0, 1)``:
    no dilation, and a dense (C_in, C_out, kh, kw) layout (groups = 1)."""
    from s2common.errors import DesignRuleError

    c_in, c_out, k, h = 4, 4, 3, 7
    w = np.ones((c_out, c_in // groups, k, k), F)
    ho = (h + 2 - dilation * (k - 1) - 1) + 1
    ones = np.ones((c_out, ho, ho), F)
    g = nir.NIRGraph(nodes={"input": nir.Input(input_type={"input": np.array([c_in, h, h])}),
                            "conv": nir.Conv2d(input_shape=(h, h), weight=w, stride=1, padding=1,
                                               dilation=dilation, groups=groups, bias=np.zeros(c_out, F)),
                            "n": nir.IF(r=ones, v_threshold=ones * 300, v_reset=0 * ones),
                            "output": nir.Output(output_type={"output": np.array(ones.shape)})},
                     edges=[("input", "conv"), ("conv", "n"), ("n", "output")], type_check=False)
    with pytest.raises(DesignRuleError) as err:
        lower(g, ConversionOptions(**Q))
    assert [(v.rule, v.node) for v in err.value.violations] == [(rule, "conv")]


@pytest.mark.parametrize("groups,dilation,stride,padding", [(1, 1, 1, 1), (1, 1, 2, 2), (1, 1, 2, 1)])
def test_strided_padded_conv_matches_an_integer_convolution(groups: int, dilation: int, stride: int,
                                                            padding: int) -> None:
    rng = np.random.default_rng(groups * 10 + dilation)
    c_in, c_out, k, h = 4, 4, 3, 7
    w = rng.integers(-127, 128, (c_out, c_in // groups, k, k)).astype(F)
    ho = (h + 2 * padding - dilation * (k - 1) - 1) // stride + 1
    out = (c_out, ho, ho)
    ones = np.ones(out, F)
    g = nir.NIRGraph(nodes={"input": nir.Input(input_type={"input": np.array([c_in, h, h])}),
                            "conv": nir.Conv2d(input_shape=(h, h), weight=w, stride=stride, padding=padding,
                                               dilation=dilation, groups=groups, bias=np.zeros(c_out, F)),
                            "n": nir.IF(r=ones, v_threshold=ones * 300, v_reset=0 * ones),
                            "output": nir.Output(output_type={"output": np.array(out)})},
                     edges=[("input", "conv"), ("conv", "n"), ("n", "output")],
                     type_check=False)  # nir 1.0.8's type inference ignores groups; s2gate's own check does not
    net = lower(g, ConversionOptions(**Q))
    x = rng.random((2, 3, c_in, h, h)) < 0.4
    rec = _both(net, x)
    # independent: integer convolution by explicit sums over the kernel taps
    xp = np.pad(x[:, 0].astype(np.int64), ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    expect = np.zeros((2, c_out, ho, ho), np.int64)
    cg = c_in // groups
    for co in range(c_out):
        grp = co // (c_out // groups)
        for ci in range(cg):
            for ky in range(k):
                for kx in range(k):
                    y0, x0 = ky * dilation, kx * dilation
                    patch = xp[:, grp * cg + ci, y0:y0 + stride * (ho - 1) + 1:stride, x0:x0 + stride * (ho - 1) + 1:stride]
                    expect[:, co] += int(w[co, ci, ky, kx]) * patch
    assert np.array_equal(rec.get("n", "i")[:, 1], expect)


def test_signed_zero_matches_the_golden_model() -> None:
    """A decaying negative voltage underflows to -0.0; an all-negative weight row sums 0 spikes to -0.0 in
    floating point, but the chip's integer sum is 0 (+0.0 as float). With i_offset = -0.0 the sign survives
    to the recorded v, so the engine must add +0.0, not -0.0."""
    lif = nir.LIF(tau=F([2e-4]), r=F([1.0]), v_leak=F([0.0]), v_threshold=F([1e6]), v_reset=F([0.0]))
    net = _net([[-100.0]], lif, **Q)                      # alpha = 1 - 1e-4/2e-4 = 0.5
    net.populations["n"].i_offset = np.array([-0.0], F)  # hand-set: the lowering never produces -0.0
    x = np.zeros((1, 200, 1), bool)
    x[0, 0, 0] = True
    rec = _both(net, x)                                   # compares the raw bits of v with the golden model
    v = rec.get("n", "v")[0, :, 0]
    assert v[1] == -100.0 and v[-1] == 0.0 and not np.signbit(v[-1])
    # a BLAS/conv that accumulated empty sums as -0.0 (current CPU kernels start from +0.0) must not matter
    real = Engine._apply

    def minus_zero(self, c, spikes, check):
        return [torch.where(y == 0, torch.full_like(y, -0.0), y) for y in real(self, c, spikes, check)]

    import torch
    Engine._apply = minus_zero
    try:
        fast = Engine(net).run(x, record="all").get("n", "v")
    finally:
        Engine._apply = real
    assert np.array_equal(fast.view(np.uint32), rec.get("n", "v").view(np.uint32))
