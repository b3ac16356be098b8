"""Maintenance through the API: staff put a device in and take it out, with a reason; bad input
and other callers get clear 4xx answers, and nothing is written then."""

from __future__ import annotations

from tests.api.conftest import START, Api

MINER = "site-west-1-asic-00007"
PATH = f"/api/v1/resources/{MINER}/maintenance"


def resource(api: Api, device_id: str = MINER) -> dict[str, object]:
    body = api.client.get(f"/api/v1/resources/{device_id}", headers=api.admin)
    assert body.status_code == 200
    out: dict[str, object] = body.json()
    return out


def test_an_operator_puts_a_miner_in_maintenance_and_back_in_service(api: Api) -> None:
    created = api.client.post(
        "/api/v1/keys", json={"name": "night shift", "role": "operator"}, headers=api.admin
    ).json()
    operator = {"Authorization": f"Bearer {created['secret']}"}
    assert resource(api)["maintenance"] is None
    put = api.client.put(PATH, json={"reason": "  fan 2\nreplaced  "}, headers=operator)
    assert put.status_code == 200
    expected = {"reason": "fan 2 replaced", "since": START.isoformat().replace("+00:00", "Z"),
                "by": created["key_id"]}  # fmt: skip
    assert put.json()["maintenance"] == expected
    assert resource(api)["maintenance"] == expected
    listed = api.client.get("/api/v1/resources?kind=asic", headers=operator).json()
    flagged = [d["device_id"] for d in listed["resources"] if d["maintenance"] is not None]
    assert flagged == [MINER]
    back = api.client.delete(PATH, headers=operator)
    assert back.status_code == 200 and back.json()["maintenance"] is None
    assert resource(api)["maintenance"] is None
    again = api.client.delete(PATH, headers=operator)  # not in maintenance: answered as it is
    assert again.status_code == 200 and again.json()["maintenance"] is None


def test_customers_may_not_touch_maintenance(api: Api) -> None:
    put = api.client.put(PATH, json={"reason": "mine now"}, headers=api.customer)
    assert put.status_code == 403 and put.json()["error"] == "forbidden"
    assert api.client.delete(PATH, headers=api.customer).status_code == 403
    assert resource(api)["maintenance"] is None


def test_bad_maintenance_requests_name_what_is_wrong(api: Api) -> None:
    blank = api.client.put(PATH, json={"reason": " \n "}, headers=api.admin)
    assert blank.status_code == 422
    assert blank.json()["fields"] == [
        {"field": "reason", "message": "say why the device goes into maintenance"}
    ]
    missing = api.client.put(PATH, json={}, headers=api.admin)
    assert missing.status_code == 422 and missing.json()["fields"][0]["field"] == "reason"
    extra = api.client.put(PATH, json={"reason": "x", "until": "soon"}, headers=api.admin)
    assert extra.status_code == 422 and extra.json()["fields"][0]["field"] == "until"
    long = api.client.put(PATH, json={"reason": "x" * 501}, headers=api.admin)
    assert long.status_code == 422 and long.json()["fields"][0]["field"] == "reason"
    nul = api.client.put(PATH, json={"reason": "fan\u0000 2"}, headers=api.admin)
    assert nul.status_code == 422
    assert nul.json()["fields"] == [
        {"field": "reason", "message": "must not hold control characters"}
    ]
    unknown = api.client.put(
        "/api/v1/resources/no-such-device/maintenance", json={"reason": "x"}, headers=api.admin
    )
    assert unknown.status_code == 404 and "no-such-device" in unknown.json()["message"]
    assert resource(api)["maintenance"] is None
