"""The run seam: everything that runs a simulator goes through here.

``s2gate run``, ``map``, the gate, the sweep, a board run (hardware in the loop) and test
vectors all run a graph through this package:

* :mod:`.backends`: one backend per simulator (``reference``, ``emulator`` / ``golden``,
  ``board``), each ``run(graph, inputs, record=None) -> Recording``; a new backend (a board, a
  cluster worker) plugs in here and nowhere else;
* :mod:`.options`: the one place that decides "this graph is quantized, so no vendor weight
  scaling" (:func:`emulator_options`) and reads a model's preset, tick and ticks;
* :mod:`.inputs`: the one loader of input files (and seeded random spikes);
* :mod:`.atoms`: atoms per PE for the chip map (the same choice in ``map`` and the gate).

Test vectors (inputs, model, expected recording for a board) are :mod:`harness.vectors`, which
runs through these backends.
"""
from __future__ import annotations

from .atoms import AtomsChoice, atoms_from_metadata, choose_atoms, fit_atoms
from .backends import (BACKENDS, Backend, BoardBackend, BoardUnavailable, EmulatorBackend, ReferenceBackend,
                       get_backend)
from .inputs import input_summary, load_inputs, parse_record, random_spikes
from .options import emulator_options, engine_threads, is_quantized_graph, model_dt, model_preset, model_ticks

__all__ = ["AtomsChoice", "atoms_from_metadata", "choose_atoms", "fit_atoms", "BACKENDS", "Backend", "BoardBackend",
           "BoardUnavailable", "EmulatorBackend", "ReferenceBackend", "get_backend", "input_summary", "load_inputs",
           "parse_record", "random_spikes", "emulator_options", "engine_threads", "is_quantized_graph", "model_dt",
           "model_preset", "model_ticks"]
