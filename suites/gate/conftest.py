"""Fixtures of the gate's own tests: a tiny synthetic float model, its int8 twin and data."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """Paths (float.nir, qat.nir, data.npz) of the synthetic gate models (see ``synthetic.py``)."""
    from suites.gate.synthetic import write_models

    return write_models(tmp_path_factory.mktemp("tiny-gate"))


@pytest.fixture(scope="session")
def tiny_config(tiny_models):
    from harness.gate.config import GateConfig

    f, q, d = tiny_models
    return GateConfig(model=f, qat_model=q, dataset=d, batch_size=16, sweep=())


@pytest.fixture(scope="session")
def tiny_evaluation(tiny_config):
    """The evaluation of the unbroken tiny models (computed once)."""
    from harness.gate.evaluate import evaluate

    return evaluate(tiny_config)
