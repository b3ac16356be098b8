"""The event wire format: decode(encode(e)) == e for every JSON payload and any aware time, and
anything that is not an encoded event is refused with MalformedEvent, never another error."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hcp.services.events import TOPICS, Event, MalformedEvent, decode, encode

T0 = datetime(2025, 3, 1, 12, tzinfo=UTC)

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)
events = st.builds(
    Event,
    topic=st.sampled_from(TOPICS) | st.from_regex(r"[A-Za-z0-9_-]{1,20}", fullmatch=True),
    key=st.text(),
    at=st.datetimes(datetime(1900, 1, 1), datetime(9000, 1, 1), timezones=st.timezones()),
    payload=st.dictionaries(st.text(), json_values, max_size=6),
    id=st.uuids().map(str),
)


@given(events)
def test_decode_inverts_encode(event: Event) -> None:
    assert decode(encode(event)) == event


@given(events)
def test_time_travels_as_utc_iso_8601(event: Event) -> None:
    document = orjson.loads(encode(event))
    assert datetime.fromisoformat(document["at"]) == event.at
    assert document["at"].endswith("+00:00")


@given(st.binary())
def test_arbitrary_bytes_decode_or_are_refused(data: bytes) -> None:
    try:
        event = decode(data)
    except MalformedEvent:
        return
    assert encode(event)


@given(st.dictionaries(st.sampled_from(["v", "id", "topic", "key", "at", "payload"]), json_values))
def test_arbitrary_json_objects_decode_or_are_refused(document: dict[str, object]) -> None:
    try:
        event = decode(orjson.dumps(document))
    except MalformedEvent:
        return
    assert event.id == document["id"]


def test_a_time_given_in_another_zone_is_stored_as_utc() -> None:
    local = datetime(2025, 3, 1, 6, tzinfo=timezone(timedelta(hours=-6)))
    event = Event("price-data", "HB_WEST", local, {})
    assert event.at == T0
    assert event.at.tzinfo is UTC


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"[1, 2]", "not a JSON object"),
        (b"{", "not JSON"),
        (b'{"v": 2}', "wire version"),
        (b'{"v": 1, "id": "x", "topic": "dispatch", "key": "k", "at": 5}', "'at'"),
        (
            b'{"v": 1, "id": "x", "topic": "dispatch", "key": "k", "at": "2025-03-01T12:00:00"}',
            "payload",
        ),
        (
            b'{"v": 1, "id": "x", "topic": "dispatch", "key": "k", "at": "2025-03-01T12:00:00",'
            b' "payload": {}}',
            "timezone-aware",
        ),
        (
            b'{"v": 1, "id": "x", "topic": "a.b", "key": "k", "at": "2025-03-01T12:00:00Z",'
            b' "payload": {}}',
            "topic",
        ),
        (
            b'{"v": 1, "id": "x", "topic": "dispatch", "key": "k",'
            b' "at": "9999-12-31T23:00:00-05:00", "payload": {}}',
            "out of range",
        ),
    ],
)
def test_decode_says_what_is_wrong(data: bytes, reason: str) -> None:
    with pytest.raises(MalformedEvent, match=reason):
        decode(data)


def test_event_refuses_naive_times_and_unsafe_topics() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        Event("dispatch", "site-1", datetime(2025, 3, 1), {})
    with pytest.raises(ValueError, match="topic"):
        Event("hcp.>", "site-1", T0, {})


def test_payload_that_is_not_json_is_refused_at_encode() -> None:
    with pytest.raises(TypeError, match="not JSON"):
        encode(Event("dispatch", "site-1", T0, {"when": object()}))
