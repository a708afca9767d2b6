"""What each framework's NIR export means, and which reference preset judges it.

One entry per framework whose exporter s2gate has read (the public source is named in each
entry). ``preset`` is the :data:`reference.PRESETS` name the gate uses for the float model
(``metadata["s2gate.preset"]``); ``dt`` is the tick in seconds the framework's own forward pass
uses for the exported time constants (``metadata["s2gate.dt"]``), or ``None`` when it is read
from the graph (Rockpool).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional


@dataclass(frozen=True)
class Framework:
    """How to read one framework's export.

    Attributes:
        name: the ``--framework`` value.
        preset: reference preset that reproduces the framework's own forward pass.
        dt: seconds per tick of the framework's forward pass (``None``: derived from the graph).
        why: one line: the source read for the preset and dt choice.
    """

    name: str
    preset: str
    dt: Optional[float]
    why: str


FRAMEWORKS: Dict[str, Framework] = {
    # synsense/sinabs sinabs/nir.py (_extract_sinabs_module): LIF tau = tau_mem, which Sinabs counts in
    # ticks (sinabs/layers/lif.py: alpha = exp(-1/tau_mem)), so one tick is one time unit; IF/LIF add the
    # input as a voltage jump, reset by subtraction, spike where v >= threshold.
    "sinabs": Framework("sinabs", "sinabs", 1.0,
                        "sinabs/nir.py exports tau_mem in ticks (alpha = exp(-1/tau_mem)): dt = 1 tick"),
    # snntorch/export_nir.py: Leaky -> LIF(tau = dt/(1-beta), r = tau/dt) with dt hard-coded to 1e-4;
    # under forward Euler that is mem = beta*mem + x, snnTorch's own update. The preset is snnTorch's
    # importer's (reset to zero); from_snntorch picks snntorch-subtract for the default Leaky.
    "snntorch": Framework("snntorch", "snntorch", 1e-4,
                          "snntorch/export_nir.py writes tau = dt/(1-beta), r = tau/dt with dt = 1e-4"),
    # norse/torch/utils/export_nir.py writes tau = 1/tau_mem_inv; Norse's cells integrate with dt = 1e-3
    # by default (norse/torch/functional/lif_box.py) and norse.torch.from_nir defaults to the same.
    "norse": Framework("norse", "norse", 1e-3,
                       "Norse's cells and norse.torch.from_nir use dt = 1e-3 by default (forward Euler)"),
    # synsense/rockpool rockpool/nn/modules/torch/nir.py: r = tau*exp(-dt/tau)/dt carries the module's dt;
    # intake solves it back and rewrites r/w_in to Rockpool's voltage-jump update (see clean.py).
    "rockpool": Framework("rockpool", "rockpool", None,
                          "rockpool/nn/modules/torch/nir.py encodes dt in r = tau*exp(-dt/tau)/dt"),
}


def framework(name: str) -> Framework:
    """The :class:`Framework` called ``name`` (case-insensitive).

    Raises:
        InputDataError: unknown name (the message lists the known ones).
    """
    from s2common.errors import InputDataError

    key = str(name).strip().lower()
    if key not in FRAMEWORKS:
        raise InputDataError(f"unknown framework {name!r}", rule="unknown-framework",
                             hint=f"choose one of {', '.join(FRAMEWORKS)}")
    return FRAMEWORKS[key]
