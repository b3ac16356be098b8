"""A submission no site could ever place is refused up front, naming the field: memory per GPU
is checked where a placement takes its GPUs from, one site and family at a time."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from hcp.domain.errors import ValidationError
from hcp.domain.workloads import Requirements, WorkloadClass
from hcp.services.workloads import (
    Submission,
    check_submission,
    gpu_pools,
)

NOW = datetime(2025, 6, 1, tzinfo=UTC)
# One site: 8 L40S of 48 GB and 2 H100 of 80 GB.
HOSTED = {("s1", "L40S"): 8, ("s1", "H100 SXM"): 2}


def check(gpu_type: str | None, count: int, memory_gb: int | None) -> None:
    sub = Submission(WorkloadClass.AI_TRAINING, Requirements(gpu_type, count, memory_gb))
    check_submission(sub, gpu_pools(HOSTED), NOW)


@pytest.mark.parametrize(
    ("gpu_type", "count", "memory_gb"),
    [(None, 2, 80), (None, 8, 48), ("H100", 2, 80), ("L40S", 8, None), (None, 8, None)],
)
def test_what_one_site_and_family_can_hold_is_accepted(
    gpu_type: str | None, count: int, memory_gb: int | None
) -> None:
    check(gpu_type, count, memory_gb)


@pytest.mark.parametrize(
    ("gpu_type", "count", "memory_gb", "words"),
    [
        (None, 8, 80, "no site hosts 8 GPUs with at least 80 GB each (a site has at most 2)"),
        (
            "L40S",
            1,
            49,
            "no site hosts 1 L40S GPUs with at least 49 GB each (a site has at most 0)",
        ),
        (
            "H100",
            1,
            81,
            "no site hosts 1 H100 GPUs with at least 81 GB each (a site has at most 0)",
        ),
    ],
)
def test_memory_no_site_and_family_holds_for_that_many_gpus_is_refused(
    gpu_type: str | None, count: int, memory_gb: int, words: str
) -> None:
    with pytest.raises(ValidationError) as raised:
        check(gpu_type, count, memory_gb)
    assert raised.value.field == "requirements.memory_gb"
    assert words in str(raised.value)
