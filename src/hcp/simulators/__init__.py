"""Simulators that speak the real device protocols, with fault injection."""
