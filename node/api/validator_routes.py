"""REST routes of the validator set: the set at any height, where it changed, changes under way, submissions.

* ``GET /v1/validators?height=H``: the set of height H (default: the next
  height), from 1 to the tip + 2 (changes committed at h apply at h+2);
* ``GET /v1/validators/changes?from=H``: the heights whose set differs from
  the one before, with each set's hash: where a client walking the chain from
  its pinned genesis must check a certified header (``wallet.trust``);
* ``GET /v1/validators/pending``: requests on chain with their approvals,
  and what this node's pool holds (requests awaiting a first approval,
  approvals and quits awaiting a block);
* ``POST /v1/validators/inputs``: a signed change request, approval or quit
  (hex), checked like the next block would check it, pooled and relayed.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import FastAPI, Query
from pydantic import BaseModel, ConfigDict, Field

from node.api import models as m
from node.api import validator_models as vm
from node.api.models import error_responses
from node.crypto import encode_address
from node.encoding import DecodeError
from node.ledger.errors import ReconfigError
from node.types.reconfig import MAX_INPUT_BYTES, Approval, ChangeRequest, PoolItem, Quit, decode_pool_item, input_kind
from node.types.validators import ValidatorSet


class SubmitInput(BaseModel):
    """One signed reconfiguration record in its canonical encoding, hex."""

    model_config = ConfigDict(extra="forbid")
    input: str = Field(..., max_length=2 * MAX_INPUT_BYTES,
                       description="hex of a change request (a join signed by its key, or a power change), an "
                                   "approval or a quit")


def validator_set_view(validators: ValidatorSet, height: int, since: dict[bytes, int] | None = None) -> dict[str, Any]:
    """``since``: for the sets of the next two heights, the height each member's membership began (a quit names
    it)."""
    priorities = validators.priorities
    return {"height": height, "validators_hash": validators.hash.hex(), "total_power": validators.total_power,
            "validators": [{"name": v.name, "address": encode_address(v.address), "public_key": v.public_key.hex(),
                            "power": v.power,
                            **({"proposer_priority": priorities[i]} if priorities is not None else {}),
                            **({"since": since[v.address]} if since and v.address in since else {})}
                           for i, v in enumerate(validators.validators)]}


def request_view(request: ChangeRequest) -> dict[str, Any]:
    return {"id": request.id.hex(), "kind": request.kind_name, "public_key": request.public_key.hex(),
            "address": encode_address(request.address), "power": request.power, "name": request.name,
            "expires": request.expires, "encoded": request.encoded.hex()}


def item_view(item: PoolItem) -> dict[str, Any]:
    if isinstance(item, ChangeRequest):
        return {"kind": "request", **request_view(item)}
    if isinstance(item, Approval):
        return {"kind": "approve", "id": item.id.hex(), "request_id": item.request.id.hex(),
                "approver": encode_address(item.approver_address), "request": request_view(item.request)}
    assert isinstance(item, Quit)
    return {"kind": "quit", "id": item.id.hex(), "address": encode_address(item.address), "expires": item.expires}


def add_validator_routes(app: FastAPI, node, guard, api_error, returns) -> None:
    """Register the routes on ``app`` for ``node``; ``guard`` is the min_height dependency, ``api_error`` the
    REST error type (status, code, message), ``returns`` the route arguments of a JSON answer and its errors."""

    @app.get("/v1/validators", tags=["validators"], dependencies=[guard], summary="The validator set of a height",
             **returns(m.Validators, 400, 404, 503))
    async def validators(height: Annotated[int | None, Query(ge=1, le=2**63 - 1, description=(
            "the height whose set to show, from 1 to the tip + 2 (default: the next height)"))] = None):
        """Members with name, address, key and power, the set's hash (as block headers name it), and at the next
        height their proposer priorities."""
        height = node.store.height + 1 if height is None else height
        vs = node.store.get_validators(height)
        if vs is None:
            raise api_error(404, "validators-not-found", f"the set of height {height} is not known: this node "
                                                         f"knows heights 1 to {node.store.height + 2}")
        recent = height > node.store.height and node.store.validator_state is not None
        return validator_set_view(vs, height, dict(node.store.validator_state.since) if recent else None)

    @app.get("/v1/validators/changes", tags=["validators"], dependencies=[guard],
             summary="Heights where the validator set changed", **returns(vm.ValidatorChanges, 400, 503))
    async def changes(start: Annotated[int, Query(alias="from", ge=1, le=2**63 - 1,
                                                  description="first height to list")] = 1):
        """Height 1 and every height whose set differs from the one before (in keys, powers or names), up to the
        tip + 2, at most 1000 from ``from``, each with its set's hash (which covers keys and powers, not names: a
        change that only renamed a member lists the hash of the height before); a client checks the header before
        each one (its next_validators_hash) to walk from genesis to any height."""
        heights = node.store.validator_change_heights(start)
        return {"tip": node.store.height,
                "changes": [{"height": h, "validators_hash": node.store.get_validators(h).hash.hex()}
                            for h in heights]}

    @app.get("/v1/validators/pending", tags=["validators"], dependencies=[guard],
             summary="Validator-set changes under way", **returns(vm.PendingChanges, 400, 503))
    async def pending():
        """Requests on chain with their approvals (approved power against the quorum of the current set), and
        this node's pool: requests awaiting a first approval, approvals and quits awaiting a block."""
        state = node.store.validator_state
        deciding = state.current
        return {
            "height": node.store.height,
            "quorum_power": deciding.quorum_power,
            "pending": [{**request_view(p.request),
                         "approvers": [encode_address(a) for a in p.approvers],
                         "approved_power": sum(deciding.power_of(a) for a in p.approvers)} for p in state.pending],
            "pool": [item_view(i) for i in (*node.reconfig_pool.requests(), *node.reconfig_pool.items())],
        }

    @app.post("/v1/validators/inputs", tags=["validators"], status_code=202,
              summary="Submit a change request, approval or quit",
              responses={202: {"model": vm.InputPooled, "description": "checked, pooled and relayed"},
                         **error_responses(400, 413, 422)})
    async def submit_input(body: SubmitInput):
        """Check a signed reconfiguration record as the next block would, pool it and relay it (202); 422 with a
        `reconfig-*` code when it is refused (a validator's share of the pool is full: `reconfig-too-many-pending`;
        a power change alone: `reconfig-malformed`, submit an approval of it)."""
        try:
            item = decode_pool_item(bytes.fromhex(body.input))
        except (ValueError, DecodeError) as exc:
            raise api_error(400, "reconfig-malformed", f"not a canonical reconfiguration record: {exc}") from None
        try:
            added = node.reconfig_pool.admit(item)
        except ReconfigError as exc:
            raise api_error(422, exc.code, exc.message) from None
        return {"id": item.id.hex(), "kind": input_kind(item), "status": "pooled" if added else "already-pooled"}
