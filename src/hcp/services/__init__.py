"""Use cases: wire the pure core to the ports. No framework, no concrete adapter."""
