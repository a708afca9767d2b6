"""The gate itself: ``pytest suites/`` runs these checks on the configured models (``--s2-*``
options of the s2gate pytest plugin; default: the bundled P-SNN and Q-SNN on the stand-in test
split). They live in :mod:`harness.gate.suite` so that an installed s2gate can run them on
another team's model (``pytest --pyargs harness.gate.suite --s2-model ...``)."""
from harness.gate.suite import (  # noqa: F401  (pytest collects the imported tests)
    test_accuracy,
    test_design_rules,
    test_equivalence,
    test_fits_chip,
    test_hardware_in_the_loop,
    test_memory_reduction,
)
