"""The bundled P-SNN / Q-SNN: models (``psnn``, ``qsnn``, ``neurons``), training (``train``,
``pipeline``), NIR export (``export``), reference-simulator evaluation (``evaluate``), and the
script that rebuilds ``harness/bundled/`` and its model card (``python -m harness.models.bundle``).

torch (and brevitas for the Q-SNN) are imported by the submodules, not here.
"""
