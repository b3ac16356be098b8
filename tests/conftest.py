"""Fixtures shared by every test layer."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(os.environ.get("HCP_SHARED_DATA", Path(__file__).parents[2] / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real market data folder (../shared/data); skips with a clear message where absent."""
    if not SHARED_DATA.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"CI must have the shared market data at {SHARED_DATA}")
        pytest.skip(f"real market data not found at {SHARED_DATA} (set HCP_SHARED_DATA)")
    return SHARED_DATA
