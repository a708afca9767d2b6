"""s2gate's harness: ties the reference simulator and the emulator together (quantizer, data,
models, metrics, reports, CLI, pytest plugin, board backend)."""
