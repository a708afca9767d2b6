"""Bit-exact SpiNNaker2 int8 emulator: lowering, design rules, golden and fast engines, chip model.

See ``s2emu/README.md`` for the arithmetic contract and its sources.
"""
from __future__ import annotations

from .engine import Engine, exactness_bound
from .golden import GoldenModel
from .lowering import find_projection_paths, lower
from .network import ConversionOptions, Population, Projection, RuleViolation, S2Network

__all__ = ["ConversionOptions", "lower", "find_projection_paths", "GoldenModel", "Engine", "exactness_bound",
           "S2Network", "Population", "Projection", "RuleViolation", "check_design_rules", "map_to_chip"]


def __getattr__(name: str):
    """``check_design_rules`` and ``map_to_chip`` live in modules written alongside; import lazily."""
    if name == "check_design_rules":
        from .rules import check_design_rules

        return check_design_rules
    if name == "map_to_chip":
        from .chip import map_to_chip

        return map_to_chip
    raise AttributeError(f"module 's2emu' has no attribute {name!r}")
