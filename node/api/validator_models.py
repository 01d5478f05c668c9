"""Response models of the validator-set routes (``node.api.validator_routes``): what ``/openapi.json`` documents."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from node.api.models import Absent, Open


class ValidatorChange(Open):
    """A height whose validator set differs from the one before (height 1: the genesis set)."""

    height: int = Field(description="the first height this set decides")
    validators_hash: str = Field(description="hash (hex) of the set, as that height's header names it")


class ValidatorChanges(Open):
    """Where the validator set changed, oldest first: a client checks the header before each (its
    next_validators_hash names the new set) to walk from genesis to any height."""

    tip: int = Field(description="the node's committed height")
    changes: list[ValidatorChange] = Field(description="height 1 and each height whose set differs from the one "
                                                       "before, up to the tip + 2, at most 1000")


class ChangeRequestView(Open):
    """A change request: a JOIN (signed by the joining key) or a power change (0 removes the validator)."""

    id: str = Field(description="the request's id (hex): the hash of its unsigned body")
    kind: str = Field(description="join or power (in the pool's list: request)")
    public_key: str = Field(description="key (hex) of the joiner, or of the validator whose power changes")
    address: str = Field(description="that key's address")
    power: int = Field(description="the power it asks for")
    name: str = Field(description="the joiner's display name (empty for a power change)")
    expires: int = Field(description="last height at which it may be approved")
    encoded: str = Field(description="the request's canonical encoding (hex), what an approval carries")
    approvers: list[str] | Absent = Field(None, description="on chain: addresses of the validators that approved")
    approved_power: int | Absent = Field(None, description="on chain: their power in the current set")


class PendingChanges(Open):
    """Validator-set changes under way: requests on chain collecting approvals, and this node's pool."""

    height: int = Field(description="the node's committed height")
    quorum_power: int = Field(description="power that applies a request: more than 2/3 of the current set's")
    pending: list[ChangeRequestView] = Field(description="requests on chain with their approvals, oldest first")
    pool: list[dict] = Field(description="what this node holds for the next blocks: requests awaiting a first "
                                         "approval (kind request), approvals (kind approve, with their request) and "
                                         "quits (kind quit)")


class InputPooled(Open):
    """A reconfiguration record the node checked, pooled and relayed."""

    id: str = Field(description="the record's id (hex)")
    kind: Literal["request", "approve", "quit"] = Field(description="what it is")
    status: Literal["pooled", "already-pooled"] = Field(description="pooled now, or it was already")
