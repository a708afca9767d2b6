"""The gate's automatic batch size: bounded by one batch's spike record, never above 64, never 0."""
from __future__ import annotations

from harness.gate.config import BATCH_RECORD_BYTES, GateConfig
from harness.gate.evaluate import batch_size, flow_graphs
from harness.gate.flow import auto_batch_size
from harness.models import seedscale
from s2common.graph import flatten_graph


def test_seed_scale_batch_from_its_neuron_count():
    flat = flatten_graph(seedscale.graph())
    # recorded per tick and sample: the input 2*64*64 and the five IF layers 16*64*64, 32*32*32, 64*16*16, 256, 11
    elements = 2 * 64 * 64 + 16 * 64 * 64 + 32 * 32 * 32 + 64 * 16 * 16 + 256 + 11
    assert elements == 123_147
    assert auto_batch_size([flat], 100) == BATCH_RECORD_BYTES // (elements * 100) == 21
    # a quarter of the budget: a quarter of the batch (rounded down); a tiny budget still gives 1
    assert auto_batch_size([flat], 100, record_bytes=BATCH_RECORD_BYTES // 4) == 5
    assert auto_batch_size([flat], 100, record_bytes=1) == 1
    # few ticks: capped at the most
    assert auto_batch_size([flat], 1) == 64
    assert auto_batch_size([flat], 1, most=8) == 8


def test_config_batch_size_wins_over_the_automatic_one():
    flat = flatten_graph(seedscale.graph())
    assert batch_size(GateConfig(batch_size=7), [flat], 100) == 7
    assert batch_size(GateConfig(), [flat, None], 100) == 21
    # the largest graph of all flows decides
    assert batch_size(GateConfig(), [flatten_graph(seedscale.quantized_graph()), None, flat], 100) == 21


def test_flow_graphs_are_the_int8_graphs_and_float_views():
    class F:  # the two graphs a flow carries
        def __init__(self, flat, float_flat):
            self.flat, self.float_flat = flat, float_flat

    assert flow_graphs([F("q1", "f1"), F("q2", None)]) == ["q1", "f1", "q2", None]
