"""Pure dispatch core: which miners sleep, wake or change profile, and whether telemetry
confirms it. No I/O and no clock; the service in `hcp.services.dispatcher` acts on it."""

from hcp.dispatch.confirmation import confirm
from hcp.dispatch.ledger import Ledger, MinerMemory
from hcp.dispatch.model import (
    DEFAULT_POLICY,
    Action,
    AsicTarget,
    Command,
    CommandOutcome,
    Degradation,
    DispatchPlan,
    DispatchPolicy,
    MinerView,
    OutcomeStatus,
    Slot,
    Trouble,
)
from hcp.dispatch.planning import admit_increases, plan_commands, set_aside

__all__ = [
    "DEFAULT_POLICY",
    "Action",
    "AsicTarget",
    "Command",
    "CommandOutcome",
    "Degradation",
    "DispatchPlan",
    "DispatchPolicy",
    "Ledger",
    "MinerMemory",
    "MinerView",
    "OutcomeStatus",
    "Slot",
    "Trouble",
    "admit_increases",
    "confirm",
    "plan_commands",
    "set_aside",
]
