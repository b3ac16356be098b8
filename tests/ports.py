"""A free TCP port for a server a test starts, chosen outside the kernel's ephemeral range.

A port from `bind(("127.0.0.1", 0))` comes from the ephemeral range, where every outgoing
connection and every `port=0` listener (a simulated site opens hundreds) also draws: one of
them can take it before the server under test binds it. Ports below that range are handed
out only on request.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_LOWEST = 10_000


def free_port() -> int:
    ephemeral_low = int(_RANGE.read_text().split()[0]) if _RANGE.exists() else 32_768
    candidates = list(range(_LOWEST, max(ephemeral_low, _LOWEST + 1_000)))
    random.shuffle(candidates)
    for port in candidates[:200]:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port found in {_LOWEST}..{ephemeral_low}")
