"""The gate's checks as pytest tests.

``suites/gate/test_gate_checks.py`` imports these, so ``pytest suites/`` runs them; a team
that installed s2gate runs them on its own model without a clone of this repository::

    pytest --pyargs harness.gate.suite --s2-model my_model.nir --s2-qat-model my_qsnn.nir \
        --s2-dataset my_test_split.npz --s2-report s2gate-report/

Each test reads the session's evaluation (fixture ``s2gate_evaluation`` of the s2gate pytest
plugin, computed once per session) and passes, skips with a reason, or fails with the check's
one-line message that names the check and the layer.
"""
from __future__ import annotations

import pytest

from harness.pytest_plugin import assert_check

#: Marks travel with the functions when ``suites/gate`` imports them (a module's ``pytestmark`` would not).
gate_check = pytest.mark.s2gate_check


@gate_check
@pytest.mark.parametrize("flow", ["ptq", "qat"])
def test_equivalence(s2gate_evaluation, flow):
    """Emulator vs reference on the int8 graph: every spike train identical or differing only
    where the reference's voltage is within rounding of the threshold."""
    assert_check(s2gate_evaluation, f"equivalence.{flow}")


@gate_check
@pytest.mark.parametrize("flow", ["ptq", "qat"])
def test_accuracy(s2gate_evaluation, flow):
    """float -> PTQ on the emulator within the PTQ budget; Q-SNN float -> emulator within the QAT budget."""
    assert_check(s2gate_evaluation, f"accuracy.{flow}")


@gate_check
def test_memory_reduction(s2gate_evaluation):
    """Weight memory float32 -> int8 falls by at least the minimum reduction."""
    assert_check(s2gate_evaluation, "memory.reduction")


@gate_check
def test_fits_chip(s2gate_evaluation):
    """The PTQ model fits SpiNNaker2's PEs."""
    assert_check(s2gate_evaluation, "memory.fits-chip")


@gate_check
@pytest.mark.parametrize("flow", ["ptq", "qat"])
def test_design_rules(s2gate_evaluation, flow):
    """Every design rule passes on the int8 graph."""
    assert_check(s2gate_evaluation, f"design-rules.{flow}")


@gate_check
def test_hardware_in_the_loop(s2gate_evaluation):
    """With a board configured (--s2-backend board --s2-board-host IP): board = emulator, spike for spike."""
    assert_check(s2gate_evaluation, "hardware-in-the-loop")
