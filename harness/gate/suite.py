"""The gate's checks as pytest tests.

``suites/gate/test_gate_checks.py`` imports them, so ``pytest suites/`` runs them; a team
that installed s2gate runs them on its own model without a clone of this repository::

    pytest --pyargs harness.gate.suite --s2-model my_model.nir --s2-qat-model my_qsnn.nir
        --s2-dataset my_test_split.npz --s2-report s2gate-report/ --junitxml s2gate.xml

(one command). Each check is one test named as the check (``equivalence.ptq``,
``accuracy.ptq``, ``memory.reduction``, ...; select with ``-k accuracy``); it reads the session's
evaluation (computed once per session by the s2gate pytest plugin), records what it measured
as JUnit properties (``check``, ``measured``, ``budget``, ``verdict``, ``value``, ``layer``) and
passes, skips with a reason, or fails with the check's one-line message naming the layer.
"""
from __future__ import annotations

from harness.pytest_plugin import GateChecks

#: the checks; the JUnit classname of each is ``<this module>.s2gate``
s2gate = GateChecks()
