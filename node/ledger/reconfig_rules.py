"""The reconfiguration rules: how a block's approvals and quits change the validator state.

Block h is decided by ``state.current`` (the set of height h) and the
changes it commits apply at height h+2: ``ReconfigBuilder`` starts from
``state.next`` (the set of h+1) and forms the set of h+2.

* An approval counts when its approver is a member of the set deciding the
  block, its signature verifies, and it has not approved that request
  before.  The first counted approval brings the request on chain (so only
  validators can put requests there, each with at most
  ``MAX_OPEN_APPROVALS`` open at a time); the request is checked then
  (signature of a join, power, membership, expiry, the bounds below).
* A quit of a member applies at once (no approval).
* At the end of the block every request approved by more than 2/3 of the
  deciding set's power is applied, oldest first, as long as the power that
  changes hands between h+1 and h+2 stays below 1/3 of the total of h+1;
  one that does not fit waits for a later block (until it expires); one that
  no longer makes sense (the joiner is already in, the member already gone)
  is dropped.
* Requests and quits carry an expiry height, at most ``RECONFIG_WINDOW``
  ahead; pending requests are forgotten once expired, and applied records
  are remembered until then, so a signed record is used at most once.

Every refusal is a ``ReconfigError`` with a stable code; a refused input
changes nothing.  Block-level bounds: at most ``MAX_BLOCK_INPUTS`` inputs.
"""

from __future__ import annotations

from node.ledger.errors import (
    RECONFIG_ALREADY_VALIDATOR,
    RECONFIG_BAD_POWER,
    RECONFIG_BAD_SIGNATURE,
    RECONFIG_DONE,
    RECONFIG_DUPLICATE_APPROVAL,
    RECONFIG_EMPTY_SET,
    RECONFIG_EXPIRED,
    RECONFIG_EXPIRY_TOO_FAR,
    RECONFIG_MALFORMED,
    RECONFIG_NOT_VALIDATOR,
    RECONFIG_STALE,
    RECONFIG_TOO_MANY_PENDING,
    RECONFIG_TOO_MUCH_CHANGE,
    RECONFIG_TOTAL_OVERFLOW,
    ReconfigError,
)
from node.ledger.pubkey import is_valid_public_key
from node.ledger.validator_state import PendingChange, ValidatorState
from node.types.proposer_priority import advance_priorities, merge_priorities
from node.types.reconfig import JOIN, NO_SIGNATURE, Approval, ChangeRequest, Quit, ReconfigInput
from node.types.validators import MAX_NAME_BYTES, MAX_TOTAL_POWER, MAX_VALIDATORS, Validator, ValidatorSet

RECONFIG_WINDOW = 10_000
"""An expiry height may be at most this far above the height of the block that commits the record."""
MAX_OPEN_APPROVALS = 8
"""Pending requests one validator may have approved at once: what a Byzantine member can put on chain."""
MAX_BLOCK_INPUTS = 64
"""Reconfiguration inputs in one block."""


def check_expiry(expires: int, height: int) -> None:
    if expires < height:
        raise ReconfigError(RECONFIG_EXPIRED, f"it expired at height {expires}; this is height {height}: sign a "
                                              f"new one")
    if expires > height + RECONFIG_WINDOW:
        raise ReconfigError(RECONFIG_EXPIRY_TOO_FAR, f"expiry height {expires} is more than {RECONFIG_WINDOW} "
                                                     f"heights after {height}")


class ReconfigBuilder:
    """Applies one block's reconfiguration inputs, one at a time, to the state before it; pure."""

    def __init__(self, state: ValidatorState, chain_id: str, height: int):
        if state.height != height - 1:
            raise ValueError(f"the validator state is after block {state.height}, not before block {height}")
        self.state = state
        self.chain_id = chain_id
        self.height = height
        self.deciding = state.current
        """The set of this height: approvals are counted with its power."""
        self.base = state.next
        """The set of height + 1: the 1/3 bound is measured against it."""
        self.forming: dict[bytes, Validator] = {v.address: v for v in state.next}
        """What becomes the set of height + 2."""
        self.pending: dict[bytes, tuple[ChangeRequest, list[bytes]]] = {
            change.request.id: (change.request, list(change.approvers))
            for change in state.pending if change.request.expires >= height}
        self.done: dict[bytes, int] = {item_id: expires for item_id, expires in state.done if expires >= height}
        self.since: dict[bytes, int] = dict(state.since)
        self.inputs: list[ReconfigInput] = []
        self._finished = False

    # ------------------------------------------------------------------ bounds

    def changed_power(self, forming: dict[bytes, Validator]) -> int:
        """Power that changes hands between the set of height+1 and ``forming``."""
        moved = 0
        for v in self.base:
            now = forming.get(v.address)
            moved += abs(v.power - (now.power if now is not None else 0))
        for address, v in forming.items():
            if address not in self.base:
                moved += v.power
        return moved

    def _check_bounds(self, forming: dict[bytes, Validator]) -> None:
        if not forming:
            raise ReconfigError(RECONFIG_EMPTY_SET, "the validator set would be empty")
        if sum(v.power for v in forming.values()) > MAX_TOTAL_POWER or len(forming) > MAX_VALIDATORS:
            raise ReconfigError(RECONFIG_TOTAL_OVERFLOW, f"the set would exceed its limits: total power "
                                                         f"{MAX_TOTAL_POWER}, {MAX_VALIDATORS} validators")
        moved = self.changed_power(forming)
        if 3 * moved >= self.base.total_power:
            raise ReconfigError(RECONFIG_TOO_MUCH_CHANGE,
                                f"{moved} of {self.base.total_power} power would change hands at height "
                                f"{self.height + 2}; at one height it must stay below 1/3")

    def _applied(self, request: ChangeRequest) -> dict[bytes, Validator]:
        """``forming`` with ``request`` applied (raises when it no longer applies)."""
        forming = dict(self.forming)
        address = request.address
        if request.kind == JOIN:
            if address in forming:
                raise ReconfigError(RECONFIG_ALREADY_VALIDATOR, "the joining key is already a validator")
            forming[address] = Validator(request.name, request.public_key, request.power)
        else:
            member = forming.get(address)
            if member is None:
                raise ReconfigError(RECONFIG_NOT_VALIDATOR, "the power change names a key that is not a validator")
            if request.power == 0:
                del forming[address]
            else:
                forming[address] = Validator(member.name, member.public_key, request.power)
        self._check_bounds(forming)
        return forming

    # ------------------------------------------------------------------ inputs

    def check_request(self, request: ChangeRequest) -> None:
        """A request's own rules, checked when its first approval brings it on chain."""
        check_expiry(request.expires, self.height)
        if request.id in self.done:
            raise ReconfigError(RECONFIG_DONE, "this request was already applied")
        if not is_valid_public_key(request.public_key) or len(request.name.encode("utf-8")) > MAX_NAME_BYTES:
            raise ReconfigError(RECONFIG_MALFORMED, "the request's key is not a valid public key, or its name is "
                                                    "too long")
        if request.kind == JOIN:
            if not 1 <= request.power <= MAX_TOTAL_POWER:
                raise ReconfigError(RECONFIG_BAD_POWER, f"a join needs a power in [1, {MAX_TOTAL_POWER}]")
            if not request.has_valid_signature(self.chain_id):
                raise ReconfigError(RECONFIG_BAD_SIGNATURE, "the join is not signed by the joining key")
            if request.address in self.forming or request.address in self.base:
                raise ReconfigError(RECONFIG_ALREADY_VALIDATOR, "the joining key is already a validator")
        else:
            if request.signature != NO_SIGNATURE or request.name:
                raise ReconfigError(RECONFIG_MALFORMED, "a power change carries no name and no signature")
            member = self.forming.get(request.address)
            if member is None or request.address not in self.base:
                raise ReconfigError(RECONFIG_NOT_VALIDATOR, "the power change names a key that is not a validator")
            if request.power > MAX_TOTAL_POWER or request.power == member.power:
                raise ReconfigError(RECONFIG_BAD_POWER, f"the new power must differ from {member.power} and be at "
                                                        f"most {MAX_TOTAL_POWER}")
        self._applied(request)  # it could apply now: empty set, overflow and the 1/3 bound checked alone

    def add(self, item: ReconfigInput) -> None:
        """Validate and apply one input; raises ``ReconfigError`` and changes nothing when it is refused."""
        if self._finished:
            raise RuntimeError("ReconfigBuilder.finish() was already called")
        if isinstance(item, Approval):
            self._add_approval(item)
        elif isinstance(item, Quit):
            self._add_quit(item)
        else:
            raise ReconfigError(RECONFIG_MALFORMED, "not a reconfiguration input")
        self.inputs.append(item)

    def _add_approval(self, approval: Approval) -> None:
        request = approval.request
        approver = approval.approver_address
        if approver not in self.deciding:
            raise ReconfigError(RECONFIG_NOT_VALIDATOR, "the approver is not a validator at this height")
        pending = self.pending.get(request.id)
        if pending is None:
            self.check_request(request)
        elif approver in pending[1]:
            raise ReconfigError(RECONFIG_DUPLICATE_APPROVAL, "this validator already approved this request")
        elif request != pending[0]:
            raise ReconfigError(RECONFIG_MALFORMED, "the approval carries the pending request with other signature "
                                                    "bytes than the ones on chain")
        if not approval.has_valid_signature(self.chain_id):
            raise ReconfigError(RECONFIG_BAD_SIGNATURE, "the approval is not signed by its approver")
        open_approvals = sum(1 for _, approvers in self.pending.values() if approver in approvers)
        if open_approvals >= MAX_OPEN_APPROVALS:
            raise ReconfigError(RECONFIG_TOO_MANY_PENDING, f"this validator already has {open_approvals} open "
                                                           f"approvals, the most allowed")
        if pending is None:
            self.pending[request.id] = (request, [approver])
        else:
            pending[1].append(approver)

    def _add_quit(self, quit_: Quit) -> None:
        check_expiry(quit_.expires, self.height)
        if quit_.id in self.done:
            raise ReconfigError(RECONFIG_DONE, "this quit was already applied")
        address = quit_.address
        if address not in self.forming:
            raise ReconfigError(RECONFIG_NOT_VALIDATOR, "the leaving key is not a validator (or already leaves)")
        since = self.since.get(address)
        if quit_.since != since:
            raise ReconfigError(RECONFIG_STALE, f"the quit ends the membership that began at height {quit_.since}; "
                                                f"this key's membership began at {since}: sign a new quit")
        if not quit_.has_valid_signature(self.chain_id):
            raise ReconfigError(RECONFIG_BAD_SIGNATURE, "the quit is not signed by the leaving validator")
        forming = dict(self.forming)
        del forming[address]
        self._check_bounds(forming)
        self.forming = forming
        self.done[quit_.id] = quit_.expires

    # ------------------------------------------------------------------ end of block

    def finish(self) -> ValidatorState:
        """Apply the approved requests that fit, carry the priorities on, and give the state after the block."""
        if self._finished:
            raise RuntimeError("ReconfigBuilder.finish() was already called")
        self._finished = True
        deciding, height = self.deciding, self.height
        kept: list[PendingChange] = []
        for request_id, (request, approvers) in self.pending.items():
            approved = sum(deciding.power_of(a) for a in approvers)
            if approved >= deciding.quorum_power:
                try:
                    self.forming = self._applied(request)
                except ReconfigError as exc:
                    if exc.code == RECONFIG_TOO_MUCH_CHANGE:  # no room at this height: wait for the next
                        kept.append(PendingChange(request, tuple(approvers)))
                        continue
                self.done[request_id] = request.expires  # applied, or no longer applicable: used either way
                continue
            kept.append(PendingChange(request, tuple(approvers)))
        priorities = list(deciding.priorities or (0,) * len(deciding))
        advance_priorities(priorities, tuple(v.power for v in deciding), deciding.total_power)  # height h's step
        carried = dict(zip(deciding.addresses, priorities, strict=True))
        base = self.base
        current = base.with_priorities(merge_priorities(carried, base.addresses, base.total_power))
        nxt = base if self.forming == {v.address: v for v in base} else ValidatorSet(self.forming.values())
        members = set(current.addresses) | set(nxt.addresses)
        since = {a: height + 2 if a in nxt and a not in base else self.since[a]  # a newcomer's begins at h+2
                 for a in members}
        return ValidatorState(
            height=height,
            current=current,
            next=nxt,
            pending=tuple(p for p in kept if p.request.expires > height),
            done=tuple(sorted((i, e) for i, e in self.done.items() if e > height)),
            since=tuple(sorted(since.items())),
        )


def apply_inputs(state: ValidatorState, chain_id: str, height: int, inputs: list[ReconfigInput] | tuple) -> \
        ValidatorState:
    """The state after block ``height`` carrying ``inputs`` (raises ``ReconfigError`` on the first bad one)."""
    builder = ReconfigBuilder(state, chain_id, height)
    for item in inputs:
        builder.add(item)
    return builder.finish()
