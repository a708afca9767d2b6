"""How a graph runs: the one place that reads a model's run metadata and decides the emulator's options.

* :func:`emulator_options`: ``s2emu.ConversionOptions`` for a graph. A quantized graph (s2gate.quant
  metadata, :func:`harness.quantize.is_quantized`) already holds int8 codes and chip-unit
  thresholds, so the vendor's weight scaling is **off**; a float graph keeps py-spinnaker2's
  scaling (``scale_weights=True``) unless the caller says otherwise. The model's own tick
  (``s2gate.dt``) is used unless the caller gives one.
* :func:`model_preset`, :func:`model_dt`, :func:`model_ticks`: the reference preset, tick (seconds)
  and number of ticks a model was trained with (``graph.metadata["s2gate.preset" | "s2gate.dt" |
  "s2gate.T"]``).
* :func:`engine_threads`: torch threads of the emulator's kernels.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Optional

import numpy as np

DEFAULT_PRESET = "spinnaker2"


def _meta(graph: Any) -> dict:
    g = getattr(graph, "graph", graph)  # a FlatGraph carries its nir graph
    return getattr(g, "metadata", None) or {}


def model_preset(graph: Any) -> str:
    """The reference preset of a model (``s2gate.preset``; default ``"spinnaker2"``)."""
    preset = _meta(graph).get("s2gate.preset")
    return str(preset) if preset else DEFAULT_PRESET


def model_dt(graph: Any) -> Optional[float]:
    """The tick a model was trained with (``s2gate.dt``, seconds), if it says and it is positive."""
    try:
        dt = float(np.asarray(_meta(graph)["s2gate.dt"]).reshape(-1)[0])
    except (KeyError, TypeError, ValueError, IndexError):
        return None
    return dt if np.isfinite(dt) and dt > 0 else None


def model_ticks(graph: Any) -> Optional[int]:
    """The number of ticks a model was trained with (``s2gate.T``), if it says."""
    try:
        return int(np.asarray(_meta(graph)["s2gate.T"]).reshape(-1)[0])
    except (KeyError, TypeError, ValueError, IndexError):
        return None


def is_quantized_graph(graph: Any) -> bool:
    """True when the graph carries s2gate.quant metadata (graph-level or on any node)."""
    from harness.quantize import is_quantized

    g = getattr(graph, "graph", graph)
    if any(str(k).startswith("s2gate.quant") for k in _meta(g)):
        return True
    try:
        return bool(is_quantized(g))
    except Exception:  # noqa: BLE001 - not a graph is_quantized understands: treat as float
        return False


def emulator_options(graph: Any = None, base: Any = None, profile: Optional[str] = None, **changes: Any) -> Any:
    """``s2emu.ConversionOptions`` for running ``graph`` on the emulator (or a board).

    Args:
        graph: the NIR graph (or FlatGraph) to run; decides ``scale_weights`` (off when quantized)
            and ``dt`` (the model's ``s2gate.dt``), unless ``changes`` / ``base`` / a profile set them.
        base: options to start from (default ``ConversionOptions()``, py-spinnaker2's defaults).
        profile: a vendor profile name (``s2emu.profiles``: ``--profile`` / ``--s2-profile``); None: the
            one the model names in ``s2gate.profile``, if any. Its options are the start (and its ``dt``
            wins over the model's); a quantized graph still runs with scaling off.
        changes: fields to set; a value of None leaves the field to the rule above.
    """
    from s2emu import ConversionOptions
    from s2emu.profiles import resolve

    prof = resolve(profile, getattr(graph, "graph", graph)) if base is None else None
    opts = base if base is not None else (prof.conversion_options() if prof else ConversionOptions())
    set_now = {k: v for k, v in changes.items() if v is not None}
    if "scale_weights" not in set_now and base is None and graph is not None:
        if is_quantized_graph(graph):
            set_now["scale_weights"] = False
        elif prof is None:
            set_now["scale_weights"] = True
    if "dt" not in set_now and base is None and graph is not None and prof is None:
        dt = model_dt(graph)
        if dt:
            set_now["dt"] = dt
    return dataclasses.replace(opts, **set_now) if set_now else opts


def engine_threads() -> "int | None":
    """Torch threads for the emulator's kernels: 1 inside a pytest-xdist worker (the workers
    already fill the cores; two OpenMP threads per worker on a 2-core machine run 3-20x slower),
    else torch's default. Results are the same bits either way."""
    return 1 if os.environ.get("PYTEST_XDIST_WORKER") else None


def reference_options(graph: Any = None, profile: Optional[str] = None) -> Optional[dict]:
    """Reference options matching a vendor profile (dt, integrator, reset; ``s2emu.profiles``), or None."""
    from s2emu.profiles import resolve

    prof = resolve(profile, getattr(graph, "graph", graph))
    return prof.reference_options() if prof else None


def profile_atoms(graph: Any = None, profile: Optional[str] = None) -> dict:
    """``max_atoms_per_core`` a vendor profile's run used (``{population: atoms}``; empty without one)."""
    from s2emu.profiles import resolve

    prof = resolve(profile, getattr(graph, "graph", graph))
    return prof.atoms() if prof else {}
