"""Hand-built ``S2Network`` pieces for the chip-model tests (``test_multichip.py``, ``test_timing.py``):
populations whose parameters do not matter to placement, traffic or timing."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from s2emu.network import Population


def population(name: str, model: str, shape: Sequence[int]) -> Population:
    """A population of ``model`` with ``shape`` neurons: a ``spike_list`` Input, else an IF (threshold 1)."""
    n = int(np.prod(shape))
    if model == "spike_list":
        return Population(name=name, model=model, shape=tuple(shape), nir_type="Input")
    z = np.zeros(n, np.float32)
    return Population(name=name, model=model, shape=tuple(shape), threshold=z + 1, alpha_decay=z + 1, i_offset=z,
                      v_reset=z)
