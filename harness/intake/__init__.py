"""Intake: NIR exports of the frameworks teams train in, repaired so the gate can judge them.

```python
from harness.intake import clean, from_sinabs
graph, repairs = clean(nir_graph_from_an_exporter, framework="snntorch")
graph, repairs = from_sinabs(model, sample)        # runs sinabs.nir.to_nir, then clean
```

``clean`` is in :mod:`harness.intake.clean`; the framework table (preset, dt) in
:mod:`harness.intake.frameworks`; the exporter helpers (framework imported only when called) in
:mod:`harness.intake.exporters`. The CLI is ``s2gate import IN.nir -o OUT.nir [--framework NAME]``.
"""
from __future__ import annotations

from .clean import Repair, clean
from .frameworks import FRAMEWORKS, Framework, framework

__all__ = ["clean", "Repair", "FRAMEWORKS", "Framework", "framework",
           "from_sinabs", "from_snntorch", "from_norse", "from_rockpool", "to_norse", "to_sinabs"]


def __getattr__(name: str):
    # the exporter helpers import torch and a framework: load them only when asked for
    if name in ("from_sinabs", "from_snntorch", "from_norse", "from_rockpool", "to_norse", "to_sinabs"):
        from . import exporters

        return getattr(exporters, name)
    raise AttributeError(name)
