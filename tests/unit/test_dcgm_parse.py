"""The DCGM translator on recorded-shape exporter payloads (tests/fixtures/dcgm)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hcp.adapters.devices.dcgm import parse_dcgm_metrics
from hcp.adapters.devices.errors import MalformedReply
from hcp.domain.gpu_telemetry import GpuHealth, GpuReading
from hcp.simulators.gpu.exposition import NodeLabels, render_metrics
from hcp.simulators.gpu.node import GpuSample

FIXTURES = Path(__file__).parents[1] / "fixtures" / "dcgm"
AT = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def parse_fixture(name: str, host: str = "target") -> list[GpuReading]:
    return parse_dcgm_metrics((FIXTURES / name).read_text(), host=host, at=AT)


def test_default_counters_payload_gives_one_reading_per_gpu() -> None:
    busy, idle = parse_fixture("h100_default_counters.txt")
    assert busy == GpuReading(
        host="dgx-h100-01",
        gpu_index=0,
        uuid="GPU-3f4c2a91-0b7e-5d1a-9c2e-7a8b6d5e4f31",
        model="NVIDIA H100 80GB HBM3",
        at=AT,
        util_pct=100.0,
        power_w=688.412,
        temp_c=63.0,
        fb_used_mib=78694,
        fb_free_mib=2314,
        xid_errors=0,
    )
    assert (idle.gpu_index, idle.util_pct, idle.power_w, idle.temp_c) == (1, 0.0, 69.584, 31.0)
    assert idle.fb_total_mib == 81008


def test_exporter_without_hostname_uses_the_target_name() -> None:
    readings = parse_fixture("a100_exporter2_k8s_no_hostname.txt", host="a100-rack3-02")
    assert {r.host for r in readings} == {"a100-rack3-02"}
    assert {r.model for r in readings} == {"NVIDIA A100-SXM4-80GB"}


def test_a_gpu_off_the_bus_is_simply_absent_and_the_last_xid_is_read() -> None:
    readings = parse_fixture("a100_exporter2_k8s_no_hostname.txt")
    assert [r.gpu_index for r in readings] == [0, 1, 2]
    assert [r.xid_errors for r in readings] == [0, 0, 13]


def test_missing_xid_family_reads_as_no_xid_and_blank_unread_fields_are_ignored() -> None:
    readings = parse_fixture("l40s_no_xid_blank_memory_temp.txt")
    assert [(r.host, r.xid_errors, r.power_w) for r in readings] == [
        ("l40s-edge-07", 0, 341.095),
        ("l40s-edge-07", 0, 34.87),
    ]


def test_empty_payload_has_no_gpus() -> None:
    assert parse_dcgm_metrics("", host="n", at=AT) == []


SAMPLE_LINES = (
    'DCGM_FI_DEV_GPU_UTIL{gpu="0",UUID="GPU-a",modelName="M",Hostname="h"} 50',
    'DCGM_FI_DEV_POWER_USAGE{gpu="0",UUID="GPU-a",modelName="M",Hostname="h"} 300.5',
    'DCGM_FI_DEV_GPU_TEMP{gpu="0",UUID="GPU-a",modelName="M",Hostname="h"} 60',
    'DCGM_FI_DEV_FB_USED{gpu="0",UUID="GPU-a",modelName="M",Hostname="h"} 100',
    'DCGM_FI_DEV_FB_FREE{gpu="0",UUID="GPU-a",modelName="M",Hostname="h"} 900',
)


def test_a_blank_required_field_is_a_malformed_reply() -> None:
    lines = [*SAMPLE_LINES[:1], SAMPLE_LINES[1].replace("300.5", "140737488355328.000000")]
    with pytest.raises(MalformedReply, match="gpu 0 lacks power_w"):
        parse_dcgm_metrics("\n".join([*lines, *SAMPLE_LINES[2:]]), host="n", at=AT)


def test_a_gpu_missing_a_family_is_a_malformed_reply() -> None:
    with pytest.raises(MalformedReply, match="lacks fb_free_mib"):
        parse_dcgm_metrics("\n".join(SAMPLE_LINES[:4]), host="n", at=AT)


@pytest.mark.parametrize(
    ("line", "complaint"),
    [
        ('DCGM_FI_DEV_GPU_UTIL{gpu="0"', "line 6 is not a Prometheus sample"),
        ('DCGM_FI_DEV_GPU_UTIL{gpu="0",UUID=GPU-a} 5', "line 6: bad label set"),
        ('DCGM_FI_DEV_GPU_UTIL{gpu="0"} five', "line 6: bad value"),
        ('DCGM_FI_DEV_GPU_UTIL{UUID="GPU-a"} 5', "without a numeric gpu label"),
    ],
)
def test_lines_that_are_not_prometheus_text_name_the_line(line: str, complaint: str) -> None:
    text = "\n".join([*SAMPLE_LINES, line])
    with pytest.raises(MalformedReply, match=complaint) as raised:
        parse_dcgm_metrics(text, host="node-9", at=AT)
    assert raised.value.device == "node-9"


def test_escapes_timestamps_and_lowercase_uuid_label() -> None:
    renamed = [
        line.replace('UUID="GPU-a"', 'uuid="GPU-a"').replace('"M"', r'"A \"quoted\" \\ name"')
        for line in SAMPLE_LINES
    ]
    lines = [renamed[0] + " 1709294400000", *renamed[1:]]
    (reading,) = parse_dcgm_metrics("\n".join(lines), host="n", at=AT)
    assert (reading.uuid, reading.model) == ("GPU-a", 'A "quoted" \\ name')


def sample(index: int, health: GpuHealth = GpuHealth.HEALTHY) -> GpuSample:
    return GpuSample(
        index, f"GPU-{index}", "00000000:18:00.0", health, None, 3.0, 71.25, 33.0, 10, 80, 48, 1
    )


@given(model_name=st.text(max_size=40), hostname=st.text(min_size=1, max_size=20))
def test_what_the_simulator_prints_reads_back_unchanged(model_name: str, hostname: str) -> None:
    text = render_metrics(NodeLabels(hostname, model_name, "550.90.07"), [sample(0), sample(1)])
    readings = parse_dcgm_metrics(text, host="target", at=AT)
    assert [(r.host, r.model, r.gpu_index) for r in readings] == [
        (hostname, model_name, 0),
        (hostname, model_name, 1),
    ]
    assert (readings[0].power_w, readings[0].fb_used_mib, readings[0].xid_errors) == (71.25, 10, 48)


def test_the_simulator_leaves_a_lost_gpu_out_of_its_metrics() -> None:
    lost = sample(1, GpuHealth.LOST)
    text = render_metrics(NodeLabels("h", "m", "v"), [sample(0), lost])
    assert [r.gpu_index for r in parse_dcgm_metrics(text, host="h", at=AT)] == [0]
