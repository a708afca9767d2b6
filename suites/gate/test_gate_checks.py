"""The gate itself: ``pytest suites/`` runs these checks on the configured models (``--s2-*``
options of the s2gate pytest plugin; default: the bundled P-SNN and Q-SNN on the stand-in test
split). They live in :mod:`harness.gate.suite` so that an installed s2gate can run them on
another team's model (``pytest --pyargs harness.gate.suite --s2-model ...``); each test is named
as its check (``suites/gate/test_gate_checks.py::s2gate::accuracy.ptq``)."""
from harness.gate.suite import s2gate  # noqa: F401  (the plugin collects the checks from it)
