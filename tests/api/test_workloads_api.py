"""POST/GET/DELETE /api/v1/workloads over the real app and database."""

from __future__ import annotations

from datetime import timedelta

from hcp.domain.identity import Customer
from hcp.domain.workloads import PreemptionRecord
from tests.api.conftest import Api

SEED_BODY = {
    "customer_id": "cust-001",
    "workload_type": "ai_inference_realtime",
    "priority": 1,
    "requirements": {"gpu_type": "H100", "gpu_count": 1},
}


def test_seed_submission_returns_the_seed_shape(api: Api) -> None:
    response = api.client.post("/api/v1/workloads", json=SEED_BODY, headers=api.customer)
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "queued"
    assert body["priority"] == 1
    assert body["queue_position"] == 1
    assert body["customer_id"] == "cust-001"
    assert len(body["workload_id"]) == 36


def test_queue_position_orders_by_class_then_submission(api: Api) -> None:
    def submit(kind: str) -> int:
        api.clock.advance(timedelta(seconds=1))
        body = {"workload_type": kind, "requirements": {"gpu_count": 1}}
        response = api.client.post("/api/v1/workloads", json=body, headers=api.customer)
        assert response.status_code == 201, response.text
        return int(response.json()["queue_position"])

    assert submit("ai_training") == 1
    assert submit("ai_inference_batch") == 1
    assert submit("ai_inference_realtime") == 1
    assert submit("ai_inference_realtime") == 2
    assert submit("ai_training") == 5


def test_customer_cannot_submit_for_another_customer(api: Api) -> None:
    body = {**SEED_BODY, "customer_id": "cust-999"}
    response = api.client.post("/api/v1/workloads", json=body, headers=api.customer)
    assert response.status_code == 422
    assert response.json()["fields"][0]["field"] == "customer_id"


def test_admin_submits_for_a_named_existing_customer(api: Api) -> None:
    ok = api.client.post("/api/v1/workloads", json=SEED_BODY, headers=api.admin)
    assert ok.status_code == 201
    assert ok.json()["customer_id"] == "cust-001"
    missing = {k: v for k, v in SEED_BODY.items() if k != "customer_id"}
    response = api.client.post("/api/v1/workloads", json=missing, headers=api.admin)
    assert response.status_code == 422
    assert response.json()["fields"][0]["field"] == "customer_id"
    unknown = api.client.post(
        "/api/v1/workloads", json={**SEED_BODY, "customer_id": "nobody"}, headers=api.admin
    )
    assert unknown.status_code == 422


def test_customers_see_only_their_own_workloads(api: Api) -> None:
    other = api.new_customer("cust-002")
    mine = api.client.post("/api/v1/workloads", json=SEED_BODY, headers=api.customer).json()
    theirs = api.client.post(
        "/api/v1/workloads", json={"workload_type": "ai_training"}, headers=other
    ).json()

    listed = api.client.get("/api/v1/workloads", headers=api.customer).json()
    assert [w["workload_id"] for w in listed["workloads"]] == [mine["workload_id"]]
    assert listed["total"] == 1
    for method in ("GET", "DELETE"):
        response = api.client.request(
            method, f"/api/v1/workloads/{theirs['workload_id']}", headers=api.customer
        )
        assert response.status_code == 404, method
    everyone = api.client.get("/api/v1/workloads", headers=api.admin).json()
    assert everyone["total"] == 2


def test_get_by_id_shows_state_history(api: Api) -> None:
    created = api.client.post("/api/v1/workloads", json=SEED_BODY, headers=api.customer).json()
    detail = api.client.get(f"/api/v1/workloads/{created['workload_id']}", headers=api.customer)
    assert detail.status_code == 200
    history = detail.json()["history"]
    assert [(h["event"], h["to_state"]) for h in history] == [("submit", "queued")]
    assert detail.json()["requirements"] == {
        "gpu_type": "H100",
        "gpu_count": 1,
        "memory_gb": None,
        "estimated_duration_hours": None,
    }
    assert (detail.json()["checkpoint_progress"], detail.json()["checkpointed_at"]) == (0.0, None)


def test_cancel_is_idempotent_and_recorded(api: Api) -> None:
    created = api.client.post("/api/v1/workloads", json=SEED_BODY, headers=api.customer).json()
    url = f"/api/v1/workloads/{created['workload_id']}"
    first = api.client.delete(url, headers=api.customer)
    second = api.client.delete(url, headers=api.customer)
    assert first.status_code == second.status_code == 200
    assert first.json()["status"] == second.json()["status"] == "cancelled"
    events = [h["event"] for h in api.client.get(url, headers=api.customer).json()["history"]]
    assert events == ["submit", "cancel"]
    depth = api.client.get("/api/v1/queue/depth", headers=api.customer).json()
    assert depth["total_depth"] == 0


def test_list_filters_by_status_and_pages(api: Api) -> None:
    ids = []
    for _ in range(3):
        api.clock.advance(timedelta(seconds=1))
        ids.append(
            api.client.post("/api/v1/workloads", json=SEED_BODY, headers=api.customer).json()[
                "workload_id"
            ]
        )
    api.client.delete(f"/api/v1/workloads/{ids[0]}", headers=api.customer)
    queued = api.client.get("/api/v1/workloads?status=queued", headers=api.customer).json()
    assert {w["workload_id"] for w in queued["workloads"]} == set(ids[1:])
    page = api.client.get("/api/v1/workloads?limit=1&offset=1", headers=api.customer).json()
    assert [w["workload_id"] for w in page["workloads"]] == [ids[1]]
    assert page["total"] == 3
    bad = api.client.get("/api/v1/workloads?status=sleeping", headers=api.customer)
    assert bad.status_code == 422
    assert bad.json()["fields"][0]["field"] == "status"


def test_a_customer_sees_its_preemption_behind_many_of_another_customers(api: Api) -> None:
    """A customer's list of preemptions holds its own most recent ones, however many other
    customers' came after them."""
    other = api.new_customer("cust-002")
    mine = api.client.post("/api/v1/workloads", json=SEED_BODY, headers=api.customer).json()
    theirs = api.client.post(
        "/api/v1/workloads", json={"workload_type": "ai_training"}, headers=other
    ).json()
    with api.runtime.unit_of_work() as uow:
        for i, workload_id in enumerate([mine["workload_id"]] + [theirs["workload_id"]] * 8):
            at = api.clock.now() + timedelta(minutes=i)
            record = PreemptionRecord(at, workload_id, "power_budget", "requeue", 0.5, ("g1",))
            uow.workloads.add_preemption(record)
        uow.commit()
    for limit in (1, 2, 100):
        seen = api.client.get(f"/api/v1/preemptions?limit={limit}", headers=api.customer)
        assert seen.status_code == 200
        assert [r["workload_id"] for r in seen.json()] == [mine["workload_id"]], limit
    assert len(api.client.get("/api/v1/preemptions?limit=2", headers=api.admin).json()) == 2


def test_a_workload_larger_than_its_customers_gpu_quota_is_refused(api: Api) -> None:
    """The scheduler never lets a customer hold more GPUs than its quota: a workload asking
    for more would wait in the queue for ever."""
    with api.runtime.unit_of_work() as uow:
        uow.customers.add(Customer("cust-q", "Quota", api.clock.now(), gpu_quota=2))
        uow.commit()
    body = {"customer_id": "cust-q", "workload_type": "ai_training"}
    too_big = {**body, "requirements": {"gpu_count": 3}}
    response = api.client.post("/api/v1/workloads", json=too_big, headers=api.admin)
    assert response.status_code == 422, response.text
    assert response.json()["fields"][0]["field"] == "requirements.gpu_count"
    assert "quota" in response.json()["fields"][0]["message"]
    fits = {**body, "requirements": {"gpu_count": 2}}
    assert api.client.post("/api/v1/workloads", json=fits, headers=api.admin).status_code == 201
