"""URL helpers shared by the settings and the adapters."""

from __future__ import annotations

from urllib.parse import urlsplit


def redact_url(url: str) -> str:
    """`url` with its password (or token) replaced by '***', for messages and logs."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    user = parts.username or ""
    hidden = f"{user}:***" if parts.password is not None else "***"
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"{hidden}@{host}").geturl()
