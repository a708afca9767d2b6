"""Bit-exact SpiNNaker2 int8 emulator (being written)."""
