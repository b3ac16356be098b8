"""Adapters: every piece of I/O (database, bus, devices, market files) behind the ports."""
