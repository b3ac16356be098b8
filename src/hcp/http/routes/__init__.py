"""Routers, one module per part of the API."""
