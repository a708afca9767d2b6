"""Float reference simulator of NIR graphs: the golden semantics s2gate judges against.

```python
from reference import simulate, Discretisation, PRESETS
rec = simulate("model.nir", inputs, preset="nir", options={"reset": "subtract"})
```

The semantics (equations per node type, every discretisation choice, the recurrence rule)
are written down in ``reference/README.md``; presets cite the framework code they follow.
"""
from .discretisation import CHOICES, PRESETS, Discretisation, resolve
from .simulate import as_flat, edge_delays, simulate
from .units import voltage_unit

__all__ = ["simulate", "Discretisation", "PRESETS", "CHOICES", "resolve", "voltage_unit", "as_flat", "edge_delays"]
