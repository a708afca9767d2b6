"""s2gate's pytest plugin (placeholder until the gate lands)."""
