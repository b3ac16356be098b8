"""Two customers' objects side by side, and a key for every role, on the `api` app.

cust-001 (the demo customer) and cust-002 each own a running workload, a spare API key, a
preemption record, metered usage and an invoice; cust-001's workload was preempted *for*
cust-002's, so a careless preemption list would name the other customer's workload.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from datetime import timedelta

import pytest

from hcp.domain.devices import DeviceKind
from hcp.domain.identity import Principal, Role
from hcp.domain.plans import GPU_WORKLOADS, Allocation, SitePlan
from hcp.domain.workloads import PreemptionRecord, StateChange, WorkloadEvent, WorkloadState
from tests.api.conftest import START, Api
from tests.api.conftest import api as api  # the fixture, shared with tests/api

MONTH = "2025-06"
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


DEVICE = "site-west-1-asic-00001"


@dataclass(frozen=True)
class Objects:
    """One customer's objects, by the names the matrix's {placeholders} use."""

    customer_id: str
    workload_id: str
    key_id: str
    invoice_id: str
    user_id: str

    def fill(self, template: str) -> str:
        """`template` with {customer_id}, {workload_id}, {key_id}, {invoice_id}, {user_id},
        {month} and {device_id} (a miner of the site: devices are no customer's)."""
        return template.format(month=MONTH, device_id=DEVICE, **asdict(self))

    def ids(self) -> set[str]:
        return set(asdict(self).values())


@dataclass(frozen=True)
class World:
    api: Api
    own: Objects
    other: Objects
    operator: dict[str, str]
    staff_key_ids: set[str]


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture
def world(api: Api) -> World:
    """cust-001's and cust-002's objects, an operator key; usage metered for the first hour."""
    other_key = api.new_customer("cust-002")
    operator = api.client.post(
        "/api/v1/keys", json={"name": "night shift", "role": "operator"}, headers=api.admin
    )
    assert operator.status_code == 201, operator.text
    gpus = _gpu_ids(api)
    own_workload, own_key = _workload_and_key(api, api.customer, gpus[0])
    other_workload, other_key_id = _workload_and_key(api, other_key, gpus[1])
    _store_preemptions(api, own_workload, other_workload, gpus)
    _store_plan(api)
    platform = api.runtime.platform
    assert platform.billing.meter(START, START + timedelta(hours=1), 30.0) > 0
    invoices = {i.customer_id: i.id for i in platform.billing.issue_all(MONTH)}
    own = Objects(
        "cust-001", own_workload, own_key, invoices["cust-001"], _user_of(api, "cust-001")
    )
    other = Objects(
        "cust-002", other_workload, other_key_id, invoices["cust-002"], _user_of(api, "cust-002")
    )
    staff = {operator.json()["key_id"], *_admin_key_ids(api)}
    return World(api, own, other, bearer(operator.json()["secret"]), staff)


def _user_of(api: Api, customer_id: str) -> str:
    """The id of a dashboard user of `customer_id` (made if it has none)."""
    identity = api.runtime.platform.identity
    with api.runtime.unit_of_work() as uow:
        found = [u.id for u in uow.users.all() if u.customer_id == customer_id]
    if found:
        return found[0]
    system = Principal("matrix", Role.ADMIN, None)
    made = identity.create_user(
        system,
        email=f"user@{customer_id}.example",
        name=customer_id,
        role=Role.CUSTOMER,
        password="correct horse battery",
        customer_id=customer_id,
    )
    return made.id


def _admin_key_ids(api: Api) -> set[str]:
    with api.runtime.unit_of_work() as uow:
        return {k.id for k in uow.api_keys.all() if k.role is Role.ADMIN}


def _gpu_ids(api: Api) -> list[str]:
    with api.runtime.unit_of_work() as uow:
        gpus = [d.id for d in uow.fleet.devices(kind=DeviceKind.GPU)]
    assert len(gpus) >= 2, "the simulated site needs two GPUs"
    return gpus


def _workload_and_key(api: Api, caller: dict[str, str], gpu_id: str) -> tuple[str, str]:
    """A workload the caller's customer submits, then runs on `gpu_id`; and a spare key."""
    body = {"workload_type": "ai_training", "requirements": {"gpu_type": "H100", "gpu_count": 1}}
    submitted = api.client.post("/api/v1/workloads", json=body, headers=caller)
    assert submitted.status_code == 201, submitted.text
    key = api.client.post("/api/v1/keys", json={"name": "spare"}, headers=caller)
    assert key.status_code == 201, key.text
    workload_id = str(submitted.json()["workload_id"])
    _start(api, workload_id, gpu_id)
    return workload_id, str(key.json()["key_id"])


def _start(api: Api, workload_id: str, gpu_id: str) -> None:
    now = api.clock.now()
    with api.runtime.unit_of_work() as uow:
        queued = uow.workloads.get(workload_id)
        assert queued is not None
        scheduled = replace(queued, state=WorkloadState.SCHEDULED, updated_at=now)
        uow.workloads.save_transition(
            scheduled,
            StateChange(
                workload_id, now, WorkloadEvent.SCHEDULE, WorkloadState.QUEUED, scheduled.state
            ),
        )
        running = replace(
            scheduled,
            state=WorkloadState.RUNNING,
            site_id=api.runtime.settings.site_id,
            gpu_ids=(gpu_id,),
            started_at=now,
        )
        uow.workloads.save_transition(
            running,
            StateChange(
                workload_id,
                now,
                WorkloadEvent.START,
                scheduled.state,
                running.state,
                gpu_ids=running.gpu_ids,
            ),
        )
        uow.commit()


def _store_preemptions(api: Api, own: str, other: str, gpus: list[str]) -> None:
    at = api.clock.now()
    with api.runtime.unit_of_work() as uow:
        uow.workloads.add_preemption(
            PreemptionRecord(at, own, "higher priority", "requeue", 0.5, (gpus[0],), other)
        )
        uow.workloads.add_preemption(
            PreemptionRecord(at, other, "price spike", "requeue", 0.25, (gpus[1],))
        )
        uow.commit()


def _store_plan(api: Api) -> None:
    now = api.clock.now()
    plan = SitePlan(
        id="plan-security",
        site_id=api.runtime.settings.site_id,
        interval_start=now,
        strategy="breakeven",
        status="optimal",
        reason="fixture",
        expected_profit_usd=1.0,
        created_at=now,
        allocations=(Allocation("H100 SXM", GPU_WORKLOADS, 2, 1.4),),
    )
    with api.runtime.unit_of_work() as uow:
        uow.plans.add(plan)
        uow.commit()
