"""Each node type of the reference against a closed form or an independent computation.

Expected values come from the continuous-time solution of NIR's equations, from exact
integer/dyadic arithmetic, or from naive loops written here -- never from the simulator.
"""
from __future__ import annotations

import math

import nir
import numpy as np
import pytest
from hypothesis import given, strategies as st

from reference import simulate

from .graphs import arr, chain, cuba_li, cuba_lif, if_, lif


def const_input(x, ticks, n=1, batch=1):
    return np.broadcast_to(np.asarray(x, dtype=np.float64), (batch, ticks, n)).copy()


# ---------------------------------------------------------------- LIF / LI

@pytest.mark.parametrize("integrator", ["exp", "euler"])
@pytest.mark.parametrize("typ", ["LIF", "LI"])
def test_leaky_under_constant_current_follows_exponential_to_v_leak_plus_r_i(integrator, typ):
    tau, r, v_leak, x, dt = 2e-3, 2.0, 0.3, 0.2, 1e-4
    node = lif(1, tau=tau, r=r, v_leak=v_leak, v_threshold=100.0) if typ == "LIF" else \
        nir.LI(tau=arr(tau, (1,)), r=arr(r, (1,)), v_leak=arr(v_leak, (1,)))
    g = chain((1,), ("n", node))
    ticks = 400  # 20 tau
    rec = simulate(g, const_input(x, ticks), options={"integrator": integrator}, dt=dt, record=["n"])
    v = rec.get("n", "v")[0, :, 0]
    k = np.arange(1, ticks + 1)  # tick index t has had t+1 updates
    v_inf = v_leak + r * x
    decay = np.exp(-dt / tau) if integrator == "exp" else 1 - dt / tau
    # start at rest (initial_v = v_leak): v_k = v_inf + (v_leak - v_inf) * decay**k
    np.testing.assert_allclose(v, v_inf + (v_leak - v_inf) * decay ** k, rtol=1e-12)
    if integrator == "exp":  # exact: the continuous solution at t = k*dt
        np.testing.assert_allclose(v, v_inf + (v_leak - v_inf) * np.exp(-k * dt / tau), rtol=1e-12)
    assert abs(v[-1] - v_inf) < 1e-8 * v_inf + (v_inf - v_leak) * math.exp(-19)


@pytest.mark.parametrize("scale, v_inf", [("1", 0.3 + 2.0 * 0.2), ("1/dt", 0.3 + 2.0 * 0.2 / 1e-4),
                                          ("jump", 0.3 + 2.0 * 0.2 / (1 - math.exp(-0.05)))])
def test_input_scale_sets_the_equilibrium(scale, v_inf):
    # "1": I = x; "1/dt": I = x/dt; "jump": v += r*x per tick, so v_inf = v_leak + r*x/g
    g = chain((1,), ("n", nir.LI(tau=arr(2e-3, (1,)), r=arr(2.0, (1,)), v_leak=arr(0.3, (1,)))))
    rec = simulate(g, const_input(0.2, 1000), options={"input_scale": scale}, dt=1e-4, record=["n"])
    assert rec.get("n", "v")[0, -1, 0] == pytest.approx(v_inf, rel=1e-9)


def test_lif_spikes_at_the_first_tick_its_closed_form_crosses_threshold():
    # v_k = r*x*(1 - exp(-k dt/tau)) crosses 0.5 at k* = -tau/dt * ln(1 - 0.5/(r x)); reset to 0
    tau, dt, rx, th = 1e-3, 1e-4, 1.0, 0.5
    g = chain((1,), ("n", lif(1, tau=tau, v_threshold=th)))
    rec = simulate(g, const_input(rx, 60), dt=dt)
    k_star = math.ceil(-tau / dt * math.log(1 - th / rx))  # 7 (6.93...)
    spikes = np.nonzero(rec.spikes("n")[0, :, 0])[0]
    period = k_star  # after reset to 0 the same climb repeats
    assert list(spikes[:4]) == [k_star - 1 + i * period for i in range(4)]


# ---------------------------------------------------------------- IF / I

@given(k=st.integers(1, 64), ticks=st.integers(1, 300), compare=st.sampled_from([">", ">="]))
def test_if_spike_count_under_constant_input_is_floor_arithmetic(k, ticks, compare):
    # r*x = k/64 (exact in binary), threshold 1, reset by subtraction: after n ticks the
    # count is floor(n*rx) with ">=" and ceil(n*rx) - 1 with ">" (one spike per tick at most)
    rx = k / 64
    g = chain((1,), ("n", if_(1, r=1.0, v_threshold=1.0)))
    rec = simulate(g, const_input(rx, ticks), options={"reset": "subtract", "compare": compare}, record=["n"])
    counts = np.cumsum(rec.spikes("n")[0, :, 0])
    n = np.arange(1, ticks + 1)
    expected = np.floor(n * rx) if compare == ">=" else np.ceil(n * rx) - 1
    np.testing.assert_array_equal(counts, expected)
    # the voltage is what is left after the spikes: n*rx - count (exact)
    np.testing.assert_array_equal(rec.get("n", "v")[0, :, 0], n * rx - counts)


@given(k=st.integers(1, 64), ticks=st.integers(1, 300))
def test_if_reset_to_zero_loses_the_overshoot(k, ticks):
    # reset to 0 with ">=": the neuron needs m = ceil(1/rx) ticks per spike
    rx = k / 64
    g = chain((1,), ("n", if_(1, v_threshold=1.0)))
    rec = simulate(g, const_input(rx, ticks), options={"reset": "to_v_reset", "compare": ">="})
    m = math.ceil(1 / rx)
    assert rec.spikes("n")[0, :, 0].sum() == ticks // m


def test_if_input_scale_1_multiplies_by_dt():
    # if_input_scale="1": dv = dt*r*x; with dt = 0.25 and r*x = 1 a spike every 4 ticks (">=")
    g = chain((1,), ("n", if_(1, r=2.0, v_threshold=1.0)))
    rec = simulate(g, const_input(0.5, 40), dt=0.25, options={"if_input_scale": "1", "compare": ">="})
    assert np.nonzero(rec.spikes("n")[0, :, 0])[0].tolist() == list(range(3, 40, 4))


def test_integrator_i_is_a_running_sum():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 50, 3))
    g = chain((3,), ("n", nir.I(r=arr([1.0, 0.5, -2.0], (3,)))))
    rec = simulate(g, x, record=["n"])
    np.testing.assert_allclose(rec.get("n", "v"), np.cumsum(x, axis=1) * np.array([1.0, 0.5, -2.0]), rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(rec.get("output", "output"), rec.get("n", "v"))


# ---------------------------------------------------------------- CubaLIF / CubaLI

@pytest.mark.parametrize("integrator, decay", [("exp", lambda k, dt, ts: np.exp(-k * dt / ts)),
                                               ("euler", lambda k, dt, ts: (1 - dt / ts) ** k)])
def test_cuba_current_decays_with_tau_syn(integrator, decay):
    tau_syn, dt = 3e-3, 1e-4
    g = chain((1,), ("n", cuba_lif(1, tau_syn=tau_syn, tau_mem=1e-2, v_threshold=1e9)))
    x = np.zeros((1, 200, 1))
    x[0, 0, 0] = 1.0
    rec = simulate(g, x, options={"integrator": integrator}, dt=dt, record=["n"])
    i = rec.get("n", "i")[0, :, 0]
    k = np.arange(200)
    np.testing.assert_allclose(i / i[0], decay(k, dt, tau_syn), rtol=1e-12)
    first = (1 - math.exp(-dt / tau_syn)) if integrator == "exp" else dt / tau_syn  # w_in * g_syn * x
    assert i[0] == pytest.approx(first, rel=1e-12)


@pytest.mark.parametrize("current", ["new", "old"])
def test_cuba_membrane_after_a_delta_follows_the_biexponential(current):
    # tau_syn I' = -I + w_in delta(t); tau_mem v' = -v + r I  =>
    # v(t) = r w_in / (tau_mem - tau_syn) * (exp(-t/tau_mem) - exp(-t/tau_syn)).
    # A small dt (tau/dt >= 2000) makes the tick solution converge to it.
    ts, tm, r, w_in, dt = 2e-3, 5e-3, 1.5, 0.8, 1e-6
    g = chain((1,), ("n", cuba_li(1, tau_syn=ts, tau_mem=tm, r=r, w_in=w_in)))
    ticks = 10000
    x = np.zeros((1, ticks, 1))
    x[0, 0, 0] = 1.0
    rec = simulate(g, x, dt=dt, options={"input_scale": "1/dt", "cuba_membrane_current": current}, record=["n"])
    # "new": tick k ends at t = (k+1)*dt; "old": the membrane sees the current one tick late,
    # so tick k matches the continuous solution at t = k*dt (a one-tick lag, no other change)
    t = (np.arange(ticks) + (1 if current == "new" else 0)) * dt
    exact = r * w_in / (tm - ts) * (np.exp(-t / tm) - np.exp(-t / ts))
    v = rec.get("n", "v")[0, :, 0]
    sel = slice(100, None)  # away from t = 0 where the relative error of a dt-wide pulse is large
    np.testing.assert_allclose(v[sel], exact[sel], rtol=2e-3)


def test_cuba_li_equilibrium():
    g = chain((1,), ("n", cuba_li(1, tau_syn=1e-3, tau_mem=2e-3, r=3.0, v_leak=-0.5, w_in=2.0)))
    rec = simulate(g, const_input(0.25, 3000), record=["n"])
    assert rec.get("n", "i")[0, -1, 0] == pytest.approx(2.0 * 0.25, rel=1e-9)
    assert rec.get("n", "v")[0, -1, 0] == pytest.approx(-0.5 + 3.0 * 2.0 * 0.25, rel=1e-9)


def test_spike_from_previous_delays_spikes_by_one_tick_and_resets_later():
    g = chain((1,), ("n", if_(1, v_threshold=1.0)))
    x = const_input(0.25, 20)  # v: 0.25, 0.5, 0.75, 1.0, 1.25 ...
    new = simulate(g, x, options={"reset": "subtract"}, record=["n"])
    prev = simulate(g, x, options={"reset": "subtract", "spike_from": "previous"}, record=["n"])
    # ">" : the new voltage first exceeds 1 at tick 4 (1.25); read from the previous voltage,
    # the spike appears one tick later and the recorded voltage is not yet reset at tick 4
    assert np.nonzero(new.spikes("n")[0, :, 0])[0][0] == 4
    assert np.nonzero(prev.spikes("n")[0, :, 0])[0][0] == 5
    assert prev.get("n", "v")[0, 4, 0] == 1.25 and new.get("n", "v")[0, 4, 0] == 0.25
    assert prev.get("n", "v")[0, 5, 0] == 0.5  # 1.25 - 1 + 0.25


# ---------------------------------------------------------------- stateless nodes

def test_threshold_is_strict():
    g = chain((4,), ("th", nir.Threshold(threshold=arr([0.5, 0.5, 0.5, -1.0], (4,)))))
    x = np.array([[[0.4, 0.5, 0.6, -1.0]]])
    rec = simulate(g, x)
    np.testing.assert_array_equal(rec.spikes("th")[0, 0], [False, False, True, False])


def test_scale_multiplies_elementwise():
    s = np.array([2.0, -0.5, 0.0])
    g = chain((3,), ("s", nir.Scale(scale=s)))
    x = np.random.default_rng(1).normal(size=(2, 4, 3))
    np.testing.assert_array_equal(simulate(g, x).get("output", "output"), x * s)


def test_delay_shifts_by_round_delay_over_dt():
    # 1e-4 -> 1 tick, 3e-4 -> 3 (2.9999999999999996 rounds to 3), 0 -> 0, 3.4e-4 -> 3, 3.6e-4 -> 4
    d = np.array([1e-4, 3e-4, 0.0, 3.4e-4, 3.6e-4])
    g = chain((5,), ("d", nir.Delay(delay=d)))
    x = np.random.default_rng(2).normal(size=(3, 12, 5))
    out = simulate(g, x, dt=1e-4).get("output", "output")
    for j, ticks in enumerate([1, 3, 0, 3, 4]):
        expected = np.concatenate([np.zeros((3, ticks)), x[:, :12 - ticks, j]], axis=1)
        np.testing.assert_array_equal(out[:, :, j], expected)


def test_flatten_start_dim_counts_without_batch():
    x = np.random.default_rng(0).normal(size=(2, 3, 2, 3, 4))
    g1 = chain((2, 3, 4), ("f", nir.Flatten(input_type={"input": np.array([2, 3, 4])}, start_dim=1, end_dim=-1)))
    out1 = simulate(g1, x).get("output", "output")
    assert out1.shape == (2, 3, 2, 12)
    np.testing.assert_array_equal(out1, x.reshape(2, 3, 2, 12))
    g0 = chain((2, 3, 4), ("f", nir.Flatten(input_type={"input": np.array([2, 3, 4])}, start_dim=0, end_dim=-1)))
    out0 = simulate(g0, x).get("output", "output")
    assert out0.shape == (2, 3, 24)
    np.testing.assert_array_equal(out0, x.reshape(2, 3, 24))


def naive_pool(x, k, s, p):
    c, h, w = x.shape
    xp = np.zeros((c, h + 2 * p[0], w + 2 * p[1]))
    xp[:, p[0]:p[0] + h, p[1]:p[1] + w] = x
    oh, ow = (h + 2 * p[0] - k[0]) // s[0] + 1, (w + 2 * p[1] - k[1]) // s[1] + 1
    out = np.zeros((c, oh, ow))
    for ch in range(c):
        for i in range(oh):
            for j in range(ow):
                out[ch, i, j] = xp[ch, i * s[0]:i * s[0] + k[0], j * s[1]:j * s[1] + k[1]].sum()
    return out


@pytest.mark.parametrize("k, s, p", [((2, 2), (2, 2), (0, 0)), ((2, 3), (2, 1), (1, 1)), ((3, 3), (1, 2), (1, 0))])
def test_sum_and_avg_pool_against_a_naive_loop(k, s, p):
    x = np.random.default_rng(5).normal(size=(2, 3, 2, 5, 6))
    kw = dict(kernel_size=np.array(k), stride=np.array(s), padding=np.array(p))
    oshape = naive_pool(x[0, 0], k, s, p).shape
    out_s = simulate(chain((2, 5, 6), ("p", nir.SumPool2d(**kw)), out=oshape), x).get("output", "output")
    out_a = simulate(chain((2, 5, 6), ("p", nir.AvgPool2d(**kw)), out=oshape), x).get("output", "output")
    for b in range(2):
        for t in range(3):
            ref = naive_pool(x[b, t], k, s, p)
            np.testing.assert_allclose(out_s[b, t], ref, rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(out_a[b, t], ref / (k[0] * k[1]), rtol=1e-12, atol=1e-12)


def naive_conv2d(x, w, b, stride, pad, dil, groups):
    cin, h, wd = x.shape
    cout, cpg, kh, kw = w.shape
    xp = np.zeros((cin, h + 2 * pad[0], wd + 2 * pad[1]))
    xp[:, pad[0]:pad[0] + h, pad[1]:pad[1] + wd] = x
    oh = (h + 2 * pad[0] - dil[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (wd + 2 * pad[1] - dil[1] * (kw - 1) - 1) // stride[1] + 1
    out = np.zeros((cout, oh, ow))
    opg = cout // groups
    for o in range(cout):
        gidx = o // opg
        for i in range(oh):
            for j in range(ow):
                acc = b[o]
                for c in range(cpg):
                    for u in range(kh):
                        for v in range(kw):
                            acc += w[o, c, u, v] * xp[gidx * cpg + c, i * stride[0] + u * dil[0], j * stride[1] + v * dil[1]]
                out[o, i, j] = acc
    return out


@pytest.mark.parametrize("padding, stride, dilation, groups", [
    ("same", (1, 1), (1, 2), 2),
    ((1, 2), (2, 1), (1, 1), 1),
    ("valid", (1, 2), (2, 1), 4),
    (1, 2, 1, 2),
])
def test_conv2d_groups_and_padding_against_a_naive_loop(padding, stride, dilation, groups):
    rng = np.random.default_rng(7)
    cin, cout = 4, 6 if groups != 4 else 8
    w = rng.normal(size=(cout, cin // groups, 3, 3))
    b = rng.normal(size=cout)
    node = nir.Conv2d(input_shape=None, weight=w, stride=stride, padding=padding, dilation=dilation, groups=groups, bias=b)
    x = (rng.random((2, 2, cin, 7, 8)) < 0.4).astype(np.float64)
    st2 = (stride, stride) if isinstance(stride, int) else stride
    dl2 = (dilation, dilation) if isinstance(dilation, int) else dilation
    if padding == "same":
        pad = (dl2[0], dl2[1])  # dilation*(k-1)/2 with k = 3
    elif padding == "valid":
        pad = (0, 0)
    else:
        pad = (padding, padding) if isinstance(padding, int) else padding
    oshape = naive_conv2d(x[0, 0], w, b, st2, pad, dl2, groups).shape
    out = simulate(chain((cin, 7, 8), ("c", node), out=oshape), x).get("output", "output")
    for bb in range(2):
        for t in range(2):
            ref = naive_conv2d(x[bb, t], w, b, st2, pad, dl2, groups)
            assert out[bb, t].shape == ref.shape
            np.testing.assert_allclose(out[bb, t], ref, rtol=1e-12, atol=1e-12)
    if padding == "same":
        assert out.shape[-2:] == (7, 8)


def test_conv1d_against_a_naive_loop():
    rng = np.random.default_rng(8)
    w = rng.normal(size=(3, 2, 4))
    b = rng.normal(size=3)
    node = nir.Conv1d(input_shape=None, weight=w, stride=2, padding=2, dilation=1, groups=1, bias=b)
    x = rng.normal(size=(1, 2, 2, 11))
    out = simulate(chain((2, 11), ("c", node), out=(3, 6)), x).get("output", "output")
    for t in range(2):
        ref = naive_conv2d(x[0, t][:, None, :], w[:, :, None, :], b, (1, 2), (0, 2), (1, 1), 1)[:, 0, :]
        np.testing.assert_allclose(out[0, t], ref, rtol=1e-12, atol=1e-12)


def test_affine_and_linear():
    rng = np.random.default_rng(9)
    w, b = rng.normal(size=(4, 3)), rng.normal(size=4)
    x = rng.normal(size=(2, 3, 3))
    out_a = simulate(chain((3,), ("a", nir.Affine(weight=w, bias=b))), x).get("output", "output")
    out_l = simulate(chain((3,), ("a", nir.Linear(weight=w))), x).get("output", "output")
    np.testing.assert_allclose(out_a, np.einsum("oi,bti->bto", w, x) + b, rtol=1e-12)
    np.testing.assert_allclose(out_l, np.einsum("oi,bti->bto", w, x), rtol=1e-12)


def test_float32_runs_in_float32_and_stays_close():
    g = chain((3,), ("a", nir.Affine(weight=np.eye(3) * 0.7, bias=np.zeros(3))), ("n", lif(3, tau=2e-3, v_threshold=0.05)))
    x = (np.random.default_rng(4).random((2, 100, 3)) < 0.3)
    r64 = simulate(g, x, record=["n"])
    r32 = simulate(g, x, record=["n"], dtype=np.float32)
    assert r32.get("n", "v").dtype == np.float32 and r32.meta["dtype"] == "float32"
    np.testing.assert_array_equal(r32.spikes("n"), r64.spikes("n"))
    np.testing.assert_allclose(r32.get("n", "v"), r64.get("n", "v"), atol=1e-6)


def test_delay_longer_than_the_run_emits_zeros():
    # 5 ticks of run: delays of 4 ticks pass the first input through at the last tick,
    # 5 ticks and 1e12 s (1e16 ticks, far beyond int64-safe buffers) emit nothing
    d = np.array([4e-4, 5e-4, 1e12])
    g = chain((3,), ("d", nir.Delay(delay=d)))
    out = simulate(g, np.ones((2, 5, 3)), dt=1e-4).get("output", "output")
    np.testing.assert_array_equal(out[:, :, 0], [[0, 0, 0, 0, 1]] * 2)
    assert not out[:, :, 1:].any()
