"""Voltage units some frameworks record in, kept outside the dynamics.

The simulator always records voltages in the graph's own (NIR) units. Some importers move a
factor from the input into the threshold, so the voltage they record is the NIR voltage times
a per-neuron factor; multiply the reference's ``v`` by :func:`voltage_unit` to compare.

* ``"snntorch"``: snnTorch 1.0.0 ``import_nir``: LIF threshold ``v_threshold / (r*dt/tau)``
  (and no input scaling), so ``v_snntorch = v_nir / (r*dt/tau)``; CubaLIF threshold
  ``v_threshold / (w_in*dt/tau_syn)`` (with ``r = tau_mem/dt`` asserted), so
  ``v_snntorch = v_nir / (w_in*dt/tau_syn)``. The importer's dt is 1e-4 whatever is passed.
* ``"spinnaker2"``: py-spinnaker2 ``s2_nir.convert_LIF``: ``threshold = v_threshold *
  w_scale / r_factor`` with ``r_factor = r*dt/tau`` (forward Euler) or ``r*(1-exp(-dt/tau))``;
  CubaLIF also divides by ``w_in_factor``; IF by ``r``. This returns the factor for
  ``w_scale = 1`` (``scale_weights=False``); multiply by the population's ``w_scale`` else.
* anything else: 1.
"""
from __future__ import annotations

import numpy as np

from s2common.graph import node_type

from .discretisation import Discretisation
from .neurons import decay_and_gain


def voltage_unit(node: object, framework: str, disc: Discretisation) -> np.ndarray:
    """Factor (array of the node's shape) from NIR volts to ``framework``'s recorded volts."""
    typ = node_type(node)
    dt = disc.dt
    if framework == "snntorch":
        if typ == "LIF":
            return 1.0 / (np.asarray(node.r, dtype=np.float64) * dt / np.asarray(node.tau, dtype=np.float64))
        if typ == "CubaLIF":
            return 1.0 / (np.asarray(node.w_in, dtype=np.float64) * dt / np.asarray(node.tau_syn, dtype=np.float64))
    if framework == "spinnaker2":
        if typ in ("LIF", "CubaLIF"):
            tau = node.tau if typ == "LIF" else node.tau_mem
            _, g = decay_and_gain(np.asarray(tau, dtype=np.float64), disc)
            factor = 1.0 / (g * np.asarray(node.r, dtype=np.float64))
            if typ == "CubaLIF":
                _, gs = decay_and_gain(np.asarray(node.tau_syn, dtype=np.float64), disc)
                factor = factor / (gs * np.asarray(node.w_in, dtype=np.float64))
            return factor
        if typ == "IF":
            return 1.0 / np.asarray(node.r, dtype=np.float64)
    shape = np.shape(getattr(node, "v_threshold", getattr(node, "r", 1.0)))
    return np.ones(shape)
