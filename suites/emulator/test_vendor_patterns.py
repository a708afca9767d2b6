"""Patterns py-spinnaker2's converter builds that s2gate used to reject, lowered and emulated as the converter builds them.

Source: GitHub ``SpiNNakerManchester/sPiNNIRker``, commit 47c758b, ``spinnirker/__init__.py``. Each test quotes
the line it follows; the expected integer inputs are computed here by explicit loops from the definition
(sum pooling over zero-padded windows, a matrix product), never from s2gate's output.
"""
from __future__ import annotations

import nir
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from s2emu import Engine, GoldenModel, lower
from s2emu.network import ConversionOptions

from .bits import assert_same_bits

F = np.float32
OFF = dict(scale_weights=False)


def _inp(shape):
    return nir.Input(input_type={"input": np.array(shape)})


def _out(shape):
    return nir.Output(output_type={"output": np.array(shape if isinstance(shape, list) else [shape])})


def _if(shape, th=1e6):
    return nir.IF(r=np.ones(shape, F), v_threshold=np.full(shape, th, F), v_reset=np.zeros(shape, F))


def _sum_pool(x: np.ndarray, k: int, s: int, p: int) -> np.ndarray:
    """(C, H, W) ints -> sum over k x k windows at stride s of the map zero-padded by p (floor)."""
    c, h, w = x.shape
    xp = np.zeros((c, h + 2 * p, w + 2 * p), np.int64)
    xp[:, p:p + h, p:p + w] = x
    ho, wo = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    out = np.zeros((c, ho, wo), np.int64)
    for y in range(ho):
        for z in range(wo):
            out[:, y, z] = xp[:, y * s:y * s + k, z * s:z * s + k].sum(axis=(1, 2))
    return out


def _both(net, x, record="all"):
    fast = Engine(net).run(x, record=record)
    gold = GoldenModel(net).run(x, record=record)
    assert_same_bits(fast, gold)
    for synapses in ("events", "dense"):
        assert_same_bits(Engine(net, synapses=synapses).run(x, record=record), gold)
    return fast


@pytest.mark.parametrize("k,s,p", [(3, 1, 1), (2, 1, 0), (3, 2, 1), (2, 2, 1)])
def test_overlapping_padded_sumpool_into_a_neuron(k: int, s: int, p: int) -> None:
    """``create_projections``: ``elif isinstance(sumpooltarget, NEURON_NODES): ... create_sumpool2d_projection``,
    which calls ``connection_list_for_sumpool2d(input_shape=..., stride=sumpool2d_node.stride,
    kernel_size=sumpool2d_node.kernel_size, padding=sumpool2d_node.padding, ...)`` with no kernel == stride
    assert (that assert is in ``create_sumpool2d_conv2d_projection`` only). Weight scaling off: the converter's
    ``w_scale = 1.0`` (``127.0 / max_abs_weight`` would divide by zero, rule ``vendor-no-weights``)."""
    c, h = 2, 5
    ho = (h + 2 * p - k) // s + 1
    g = nir.NIRGraph(nodes={"input": _inp([c, h, h]),
                            "pool": nir.SumPool2d(kernel_size=np.array([k, k]), stride=np.array([s, s]),
                                                  padding=np.array([p, p])),
                            "n": _if((c, ho, ho)), "output": _out([c, ho, ho])},
                     edges=[("input", "pool"), ("pool", "n"), ("n", "output")])
    net = lower(g, ConversionOptions(**OFF))
    rng = np.random.default_rng(k * 100 + s * 10 + p)
    x = rng.random((3, 4, c, h, h)) < 0.5
    rec = _both(net, x)
    for b in range(3):
        for t in range(3):  # spikes of tick t arrive in tick t + 1
            assert np.array_equal(rec.get("n", "i")[b, t + 1], _sum_pool(x[b, t].astype(np.int64), k, s, p))
    assert np.all(rec.get("n", "i")[:, 0] == 0)


@pytest.mark.parametrize("k,s,p", [(3, 1, 1), (2, 1, 0)])
def test_overlapping_sumpool_flatten_affine(k: int, s: int, p: int) -> None:
    """``create_sumpool2d_affine_projection``: ``join_conn_lists(connection_list_for_sumpool2d(...),
    connection_list_from_dense_weights(affine_node.weight.T * post.nir_w_scale, delay))``, any kernel, stride,
    padding. With integer weights and scaling off both ``pool_join`` readings give W @ flatten(sum_pool(x))."""
    c, h = 1, 4
    ho = (h + 2 * p - k) // s + 1
    n_in = c * ho * ho
    rng = np.random.default_rng(7)
    w = rng.integers(-5, 6, (3, n_in)).astype(F)
    g = nir.NIRGraph(nodes={"input": _inp([c, h, h]),
                            "pool": nir.SumPool2d(kernel_size=np.array([k, k]), stride=np.array([s, s]),
                                                  padding=np.array([p, p])),
                            "flat": nir.Flatten(input_type={"input": np.array([c, ho, ho])}, start_dim=0),
                            "fc": nir.Affine(weight=w, bias=np.zeros(3, F)), "n": _if(3), "output": _out(3)},
                     edges=[("input", "pool"), ("pool", "flat"), ("flat", "fc"), ("fc", "n"), ("n", "output")], type_check=False)
    x = rng.random((2, 4, c, h, h)) < 0.5
    for join in ("per_path", "summed"):
        rec = _both(lower(g, ConversionOptions(pool_join=join, **OFF)), x)
        for b in range(2):
            for t in range(3):
                expect = w.astype(np.int64) @ _sum_pool(x[b, t].astype(np.int64), k, s, p).reshape(-1)
                assert np.array_equal(rec.get("n", "i")[b, t + 1], expect), join


def test_pool_join_differs_only_in_the_cast() -> None:
    """``pool_join``: per window ``trunc(w * s)`` summed, or ``trunc(sum of w * s)`` once. Weights 0.6 and 0.6 on two
    overlapping windows that share one pixel: per path trunc(0.6) + trunc(0.6) = 0; summed trunc(1.2) = 1."""
    g = nir.NIRGraph(nodes={"input": _inp([1, 1, 3]),
                            "pool": nir.SumPool2d(kernel_size=np.array([1, 2]), stride=np.array([1, 1]),
                                                  padding=np.array([0, 0])),
                            "flat": nir.Flatten(input_type={"input": np.array([1, 1, 2])}, start_dim=0),
                            "fc": nir.Affine(weight=np.array([[0.6, 0.6]], F), bias=np.zeros(1, F)), "n": _if(1),
                            "output": _out(1)},
                     edges=[("input", "pool"), ("pool", "flat"), ("flat", "fc"), ("fc", "n"), ("n", "output")], type_check=False)
    x = np.zeros((1, 2, 1, 1, 3), bool)
    x[0, 0, 0, 0, 1] = True  # the middle pixel lies in both windows
    per = _both(lower(g, ConversionOptions(vendor_cast=True, **OFF)), x)
    summed = _both(lower(g, ConversionOptions(vendor_cast=True, pool_join="summed", **OFF)), x)
    assert per.get("n", "i")[0, 1, 0] == 0 and summed.get("n", "i")[0, 1, 0] == 1


def _two_inputs(w1, w2):
    n = w1.shape[0]
    return nir.NIRGraph(nodes={"a": _inp([w1.shape[1]]), "b": _inp([w2.shape[1]]), "fa": nir.Linear(weight=w1),
                               "fb": nir.Linear(weight=w2), "n": _if(n), "output": _out(n)},
                        edges=[("a", "fa"), ("b", "fb"), ("fa", "n"), ("fb", "n"), ("n", "output")])


def test_two_inputs_one_spike_list_each() -> None:
    """``create_populations``: ``elif isinstance(node, nir.Input): pop = snn.Population(..., neuron_model=
    "spike_list", ...); input_populations.append(pop)`` for every Input (``from_nir`` has no single-Input
    assert; only the unused ``model_summary`` asserts ``len(inputs) == 1``). The post sums both projections."""
    rng = np.random.default_rng(3)
    w1 = rng.integers(-9, 10, (4, 3)).astype(F)
    w2 = rng.integers(-9, 10, (4, 5)).astype(F)
    net = lower(_two_inputs(w1, w2), ConversionOptions(**OFF))
    assert net.input_names == ["a", "b"] and [net.populations[n].model for n in "ab"] == ["spike_list"] * 2
    assert net.output_names == ["n"]
    xa, xb = rng.random((2, 5, 3)) < 0.5, rng.random((2, 5, 5)) < 0.5
    rec = _both(net, {"a": xa, "b": xb})
    expect = np.einsum("ij,btj->bti", w1.astype(np.int64), xa) + np.einsum("ij,btj->bti", w2.astype(np.int64), xb)
    assert np.array_equal(rec.get("n", "i")[:, 1:], expect[:, :-1])
    assert rec.spikes("a").shape == (2, 5, 3) and rec.spikes("b").shape == (2, 5, 5)


def test_two_inputs_need_a_dict_of_spikes() -> None:
    from s2common.errors import InputDataError

    net = lower(_two_inputs(np.ones((2, 2), F), np.ones((2, 2), F)), ConversionOptions(**OFF))
    with pytest.raises(InputDataError, match="2 Inputs"):
        Engine(net).run(np.zeros((1, 3, 2), bool))
    with pytest.raises(InputDataError, match="Inputs are a, b"):
        Engine(net).run({"a": np.zeros((1, 3, 2), bool)})


def test_input_wired_to_the_output_is_not_an_output_population() -> None:
    """``create_populations``: ``output_populations`` only gets neuron populations with an Output successor
    (the ``nir.Input`` branch appends to ``input_populations`` only)."""
    g = nir.NIRGraph(nodes={"input": _inp([2]), "fc": nir.Linear(weight=np.eye(2, dtype=F)), "n": _if(2),
                            "out_n": _out(2), "out_x": _out(2)},
                     edges=[("input", "fc"), ("fc", "n"), ("n", "out_n"), ("input", "out_x")])
    assert lower(g, ConversionOptions(**OFF)).output_names == ["n"]


@pytest.mark.parametrize("typ", ["IF", "CubaLIF"])
def test_dense_delay_stays_in_lif_no_delay(typ: str) -> None:
    """``create_projection``: ``connection_list_from_dense_weights(affine_node.weight.T * post.nir_w_scale, delay)``
    into a ``lif_no_delay`` / ``lif_curr_exp_no_delay`` population (no ``lif`` branch in ``create_populations``).
    ``dense_delay="honoured"`` (default): a spike of tick t arrives at t + 1 + conn_delay; int8 weights stay."""
    w = np.array([[100.0, -50.0]], F)
    n = (nir.IF(r=np.ones(1, F), v_threshold=np.full(1, 1e6, F), v_reset=np.zeros(1, F)) if typ == "IF" else
         nir.CubaLIF(tau_mem=np.full(1, 1e-2, F), tau_syn=np.full(1, 5e-3, F), r=np.ones(1, F), w_in=np.ones(1, F),
                     v_leak=np.zeros(1, F), v_threshold=np.full(1, 1e6, F), v_reset=np.zeros(1, F)))
    g = nir.NIRGraph(nodes={"input": _inp([2]), "fc": nir.Linear(weight=w), "n": n, "output": _out(1)},
                     edges=[("input", "fc"), ("fc", "n"), ("n", "output")])
    x = np.zeros((1, 8, 2), bool)
    x[0, 1] = [True, False]
    x[0, 2] = [False, True]
    for delay, mode, first in ((2, "honoured", 1 + 1 + 2), (2, "ignored", 1 + 1)):
        net = lower(g, ConversionOptions(conn_delay=delay, dense_delay=mode, **OFF))
        assert net.populations["n"].model in ("lif_no_delay", "lif_curr_exp_no_delay")
        i = _both(net, x).get("n", "i")[0, :, 0]
        expect = np.zeros(8, np.int64)
        expect[first], expect[first + 1] = 100, -50
        assert np.array_equal(i, expect), (mode, i)


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_golden_equals_engine_with_several_inputs(data) -> None:
    """Golden == engine bit for bit on graphs with 2-3 Inputs into one population (delays, resets, FMA drawn)."""
    k = data.draw(st.integers(2, 3))
    n = data.draw(st.integers(1, 6))
    seed = data.draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    sizes = [int(data.draw(st.integers(1, 5))) for _ in range(k)]
    nodes = {"n": nir.LIF(tau=rng.uniform(2e-4, 3e-3, n).astype(F), r=np.ones(n, F), v_leak=np.zeros(n, F),
                          v_threshold=rng.uniform(20, 200, n).astype(F), v_reset=np.zeros(n, F)), "output": _out(n)}
    edges = [("n", "output")]
    for j, m in enumerate(sizes):
        nodes[f"in{j}"] = _inp([m])
        nodes[f"fc{j}"] = nir.Linear(weight=rng.integers(-127, 128, (n, m)).astype(F))
        edges += [(f"in{j}", f"fc{j}"), (f"fc{j}", "n")]
    opts = ConversionOptions(scale_weights=False, conn_delay=data.draw(st.integers(0, 3)),
                             reset=data.draw(st.sampled_from(["subtract", "to_v_reset"])),
                             fused_multiply_add=data.draw(st.booleans()))
    net = lower(nir.NIRGraph(nodes=nodes, edges=edges), opts)
    ticks, batch = data.draw(st.integers(1, 10)), data.draw(st.integers(1, 3))
    x = {f"in{j}": rng.random((batch, ticks, m)) < 0.4 for j, m in enumerate(sizes)}
    _both(net, x)


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_golden_equals_engine_on_overlapping_pool_flatten_affine(data) -> None:
    """Golden == engine bit for bit on SumPool2d (any kernel, stride <= kernel, zero padding) -> Flatten -> Affine ->
    LIF/IF with float weights and scaling on, for both ``pool_join`` readings and both ``scale_dtype`` casts."""
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    c, h = data.draw(st.integers(1, 2)), data.draw(st.integers(2, 5))
    k = data.draw(st.integers(1, min(3, h)))
    s = data.draw(st.integers(1, k))
    p = data.draw(st.integers(0, k // 2))
    ho = (h + 2 * p - k) // s + 1
    n_in, n = c * ho * ho, data.draw(st.integers(1, 6))
    w = rng.normal(0, 1, (n, n_in)).astype(F)
    typ = data.draw(st.sampled_from(["IF", "LIF"]))
    th = np.full(n, float(np.abs(w).sum(axis=1).max()) * 0.3 + 0.1, F)
    neuron = (nir.IF(r=np.ones(n, F), v_threshold=th, v_reset=np.zeros(n, F)) if typ == "IF" else
              nir.LIF(tau=np.full(n, 2e-3, F), r=np.ones(n, F), v_leak=np.zeros(n, F), v_threshold=th * 0.05,
                      v_reset=np.zeros(n, F)))
    g = nir.NIRGraph(nodes={"input": _inp([c, h, h]),
                            "pool": nir.SumPool2d(kernel_size=np.array([k, k]), stride=np.array([s, s]),
                                                  padding=np.array([p, p])),
                            "flat": nir.Flatten(input_type={"input": np.array([c, ho, ho])}, start_dim=0),
                            "fc": nir.Affine(weight=w, bias=np.zeros(n, F)), "n": neuron, "output": _out(n)},
                     edges=[("input", "pool"), ("pool", "flat"), ("flat", "fc"), ("fc", "n"), ("n", "output")],
                     type_check=False)
    opts = ConversionOptions(pool_join=data.draw(st.sampled_from(["per_path", "summed"])),
                             scale_dtype=data.draw(st.sampled_from(["float64", "float32"])),
                             conn_delay=data.draw(st.integers(0, 2)), fused_multiply_add=data.draw(st.booleans()))
    x = rng.random((data.draw(st.integers(1, 3)), data.draw(st.integers(1, 8)), c, h, h)) < 0.4
    _both(lower(g, opts), x)
