"""Atoms per PE (neurons per processing element): one choice for ``s2gate map`` and the gate.

:func:`choose_atoms` takes, per population, in order of precedence: an explicit override
(``--atoms POP=N`` / ``--s2-atoms POP=N``), the model's ``graph.metadata["s2gate.atoms_per_core"]``
(``{population: atoms}``), and, for a population that still overflows one PE's data SRAM and
``auto`` is on, the largest number of atoms that fits (as a py-spinnaker2 user would set with
``pop.set_max_atoms_per_core(n)``). With ``auto`` off such a population is left to fail.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional

import numpy as np


@dataclass(frozen=True)
class AtomsChoice:
    """``atoms``: every override to hand to the chip map / design rules; ``chosen``: the part the
    automatic fit picked (a subset of ``atoms``); ``from_model``: the model metadata's part."""

    atoms: Dict[str, int]
    chosen: Dict[str, int] = field(default_factory=dict)
    from_model: Dict[str, int] = field(default_factory=dict)


def atoms_from_metadata(graph: Any) -> Dict[str, int]:
    """The model's ``s2gate.atoms_per_core`` metadata as ``{population: atoms}`` (bad entries skipped)."""
    g = getattr(graph, "graph", graph)
    meta = getattr(g, "metadata", None) or {}
    raw = meta.get("s2gate.atoms_per_core")
    atoms: Dict[str, int] = {}
    if isinstance(raw, dict):
        for k, v in raw.items():
            try:
                atoms[str(k)] = int(np.asarray(v).reshape(-1)[0])
            except (TypeError, ValueError, IndexError):
                continue
    return atoms


def fit_atoms(net: Any, atoms: Mapping[str, int], **chip_kw: Any) -> Dict[str, int]:
    """Atoms per PE for every population that overflows one PE at its current setting and is not
    named in ``atoms``: the largest number that fits (binary search on ``map_to_chip``'s per-layer
    fit, which grows with the atoms per PE). Populations that do not fit even with one atom per PE
    are left alone (the design rules report them)."""
    from s2emu.chip import map_to_chip

    atoms = dict(atoms)
    chosen: Dict[str, int] = {}
    chip = map_to_chip(net, atoms_per_core=atoms or None, **chip_kw)
    for row in chip.rows:
        if row.fits or row.name in atoms:
            continue
        lo, hi, best = 1, int(row.atoms_per_core) - 1, None
        while lo <= hi:
            mid = (lo + hi) // 2
            trial = {**atoms, **chosen, row.name: mid}
            if map_to_chip(net, atoms_per_core=trial, **chip_kw).row(row.name).fits:
                best, lo = mid, mid + 1
            else:
                hi = mid - 1
        if best is not None:
            chosen[row.name] = best
    return chosen


def choose_atoms(net: Any, graph: Any = None, overrides: Optional[Mapping[str, int]] = None, *, auto: bool = True,
                 **chip_kw: Any) -> AtomsChoice:
    """Atoms per PE for ``net`` (lowered from ``graph``): overrides, then the model's metadata,
    then (``auto``) the largest number that fits for each population that overflows one PE.

    ``chip_kw`` go to ``s2emu.chip.map_to_chip`` (``max_chips``, ``input_ticks``, ...).
    """
    model = atoms_from_metadata(graph) if graph is not None else {}
    atoms = {**model, **{str(k): int(v) for k, v in (overrides or {}).items()}}
    chosen = fit_atoms(net, atoms, **chip_kw) if auto and net is not None else {}
    return AtomsChoice(atoms={**atoms, **chosen}, chosen=dict(sorted(chosen.items())), from_model=model)
