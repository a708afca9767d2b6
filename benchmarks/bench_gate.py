"""Quality next to speed: the gate's accuracy figures and the weight memory, as ``track_*``.

``GateAccuracy`` runs ``harness.gate.evaluate.evaluate`` once (``setup_cache``) on the first
``common.GATE_SAMPLES`` samples of the stand-in test split with the bundled P-SNN (PTQ at
p = 100) and Q-SNN; its ``track_*`` read accuracies (percent) and drops (percentage points)
from that one evaluation. ``WeightMemory`` tracks bytes from ``harness.quantize.memory_account``.
"""
from __future__ import annotations

import math
import os

from .common import GATE_SAMPLES, MODELS, model_path


class GateAccuracy:
    """Accuracies of one gate evaluation (few samples: a trend line, not the gate's verdict)."""

    timeout = 900
    unit = "%"

    def setup_cache(self):
        from harness.gate.config import GateConfig
        from harness.gate.evaluate import evaluate

        float_model, qat_model = model_path("psnn"), model_path("qsnn")
        if not os.path.exists(float_model):
            # setup() skips every track_* (asv: n/a); not None: asv passes no cache argument for None
            return {"missing": float_model}
        cfg = GateConfig(model=float_model, qat_model=qat_model if os.path.exists(qat_model) else None,
                         samples=GATE_SAMPLES, sweep=(), batch_size=GATE_SAMPLES, seed=0)
        ev = evaluate(cfg).to_json()
        return {"accuracy": dict(ev.get("accuracy", {})), "errors": dict(ev.get("errors", {}))}

    def setup(self, cache):
        if "missing" in cache:
            raise NotImplementedError("the bundled P-SNN (harness/bundled/psnn.nir) does not exist yet")

    @staticmethod
    def _get(cache, key: str) -> float:
        value = cache["accuracy"].get(key)
        return float(value) if value is not None else math.nan  # nan: asv shows n/a

    def track_float_accuracy(self, cache):
        """Float P-SNN on the reference (percent)."""
        return self._get(cache, "float")

    def track_ptq_accuracy(self, cache):
        """PTQ int8 P-SNN on the emulator (percent)."""
        return self._get(cache, "ptq")

    def track_ptq_drop(self, cache):
        """Float -> PTQ-on-emulator accuracy drop (percentage points)."""
        return self._get(cache, "ptq_drop")

    def track_qat_accuracy(self, cache):
        """Q-SNN on the emulator (percent)."""
        return self._get(cache, "qat")

    def track_qat_drop(self, cache):
        """Q-SNN float -> Q-SNN on the emulator accuracy drop (percentage points)."""
        return self._get(cache, "qat_drop")


class WeightMemory:
    """Weight memory of the model: float32 (4 B/weight) against int8 (1 B/weight)."""

    params = (MODELS,)
    param_names = ["model"]
    unit = "bytes"

    def setup(self, model):
        from harness.quantize import memory_account

        from .common import require

        self.acct = memory_account(require(model))

    def track_weight_bytes_float32(self, model):
        """Weights at 4 bytes each."""
        return int(self.acct.weight_bytes_float32)

    def track_weight_bytes_int8(self, model):
        """Weights at 1 byte each."""
        return int(self.acct.weight_bytes_int8)

    def track_total_bytes_int8(self, model):
        """int8 weights plus neuron parameters and state as the chip model lays them out."""
        return int(self.acct.total_int8)

    def track_weight_reduction_percent(self, model):
        """100 * (1 - int8 / float32 weight bytes)."""
        return float(self.acct.weight_reduction_percent)

    track_weight_reduction_percent.unit = "%"
