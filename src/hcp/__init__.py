"""HCP: one control plane for bitcoin miners and GPU compute under one site power budget."""

__version__ = "0.1.0"
