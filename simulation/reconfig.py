"""The simulated operators: a seeded schedule of validator-set changes, offered to proposers as signed records.

A run with reconfiguration plans a few changes (``plan_changes``): joins of
spare keys (nodes that follow the chain from the start without voting),
quits, power changes (power 0 removes a member), and key rotations (a spare
key joins with the old key's power, then the old key quits).  Each change
may be committed from a height on.

``Operator.inputs_for(state, h)`` is what a proposer of height h puts in its
value: for every change not yet done, its quit, or its request with approvals
signed by members of the deciding set until more than 2/3 of its power
approved, each kept only if ``ReconfigBuilder.add`` (the node's own rule)
takes it.  It is a pure function of the validator state, so every node at
height h offers the same inputs.

The operators never let the Byzantine validators reach a third of any set's
power: a change that lowers the honest share (an honest member quits or
loses power, a Byzantine member gains power) is offered only when the set
it forms keeps the Byzantine power below a third, and only when no other
such change is under way (a pending request may apply heights later; the
changes that may apply meanwhile only raise the honest share).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from node.crypto import address_hash, derive_public_key
from node.ledger.errors import ReconfigError
from node.ledger.reconfig_rules import ReconfigBuilder
from node.ledger.validator_state import ValidatorState
from node.types.reconfig import (
    POWER,
    Approval,
    ChangeRequest,
    Quit,
    ReconfigInput,
    power_request,
    sign_approval,
    sign_join,
    sign_quit,
)
from node.types.validators import Validator, ValidatorSet

EXPIRY_MARGIN = 200
"""Records expire this many heights after the last height the run must decide."""
MAX_CACHED_OFFERS = 64


@dataclass(frozen=True)
class Change:
    """One planned change of the validator set."""

    kind: str
    """``join``, ``quit`` or ``power``."""
    node: int
    """Index of the simulated node whose key the change is about."""
    power: int
    """The joiner's power, or a member's new power (0 removes it); 0 for a quit."""
    not_before: int
    """First height whose block may commit it."""
    after_joined: int | None = None
    """For the quit of a rotation: offered only once this node is in the set of the next height."""
    label: str = ""
    """``rotate`` for the two halves of a key rotation."""


def plan_changes(rng: random.Random, genesis: ValidatorSet, members: Sequence[int], byzantine: set[int],
                 spares: Sequence[int], heights: int) -> list[Change]:
    """One to three changes (a rotation counts as one), committed from heights 1 to ``heights - 3``.

    ``members[i]`` is the node index of the genesis set's i-th validator in address order; ``spares`` are the
    nodes that may join.  Powers are chosen so that one change alone moves less than a third of the power."""
    total = genesis.total_power
    power_of = {node: v.power for node, v in zip(members, genesis, strict=True)}
    free = list(spares)
    last = max(1, heights - 3)
    changes: list[Change] = []
    for _ in range(rng.randint(1, 3)):
        kind = rng.choice(("join", "quit", "power", "rotate"))
        at = rng.randint(1, last)
        rotatable = [m for m in members if m not in byzantine and 3 * power_of[m] < total]
        if kind in ("join", "rotate") and not free:
            kind = "power"
        if kind == "rotate" and not rotatable:
            kind = "join"
        if kind == "join":
            changes.append(Change("join", free.pop(0), rng.randint(1, max(1, (total - 1) // 3)), at))
        elif kind == "rotate":
            old, new = rng.choice(rotatable), free.pop(0)
            changes.append(Change("join", new, power_of[old], at, label="rotate"))
            changes.append(Change("quit", old, 0, at, after_joined=new, label="rotate"))
        elif kind == "quit":
            changes.append(Change("quit", rng.choice(members), 0, at))
        else:
            node = rng.choice(members)
            choices = [p for p in range(0, 5) if p != power_of[node] and 3 * abs(p - power_of[node]) < total]
            if choices:
                changes.append(Change("power", node, rng.choice(choices), at))
    return changes


def _byzantine_power(members: dict[bytes, Validator], byzantine: set[bytes]) -> int:
    return sum(v.power for a, v in members.items() if a in byzantine)


class Operator:
    """The operators of every simulated key: they sign the planned changes and hand proposers the inputs."""

    def __init__(self, chain_id: str, keys: Sequence[bytes], byzantine: set[int], changes: Sequence[Change],
                 expires: int):
        self.chain_id = chain_id
        self.keys = list(keys)
        """Private key of each simulated node, by node index."""
        self.public_keys = [derive_public_key(k) for k in self.keys]
        self.addresses = [address_hash(p) for p in self.public_keys]
        self.node_of = {a: i for i, a in enumerate(self.addresses)}
        self.byzantine = {self.addresses[i] for i in byzantine}
        """Addresses of the Byzantine nodes' keys."""
        self.changes = tuple(changes)
        self.expires = expires
        self._records: dict[tuple[str, int], ChangeRequest | Quit] = {}
        self._approvals: dict[tuple[int, bytes], Approval] = {}
        self._offers: dict[tuple[int, bytes], tuple[ReconfigInput, ...]] = {}

    # ------------------------------------------------------------------ signed records (cached)

    def request_of(self, change: Change) -> ChangeRequest:
        """The signed join or the power-change request of ``change``."""
        key = (f"{change.kind}:{change.power}", change.node)
        record = self._records.get(key)
        if record is None:
            if change.kind == "join":
                record = sign_join(self.chain_id, self.keys[change.node], change.power, f"sim{change.node}",
                                   self.expires)
            else:
                record = power_request(self.public_keys[change.node], change.power, self.expires)
            self._records[key] = record
        assert isinstance(record, ChangeRequest)
        return record

    def quit_of(self, change: Change) -> Quit:
        """The quit signed by the leaving key."""
        key = ("quit", change.node)
        record = self._records.get(key)
        if record is None:
            record = self._records[key] = sign_quit(self.chain_id, self.keys[change.node], self.expires)
        assert isinstance(record, Quit)
        return record

    def approval(self, node: int, request: ChangeRequest) -> Approval:
        """Node ``node``'s approval of ``request``."""
        key = (node, request.id)
        found = self._approvals.get(key)
        if found is None:
            found = self._approvals[key] = sign_approval(self.chain_id, self.keys[node], request)
        return found

    # ------------------------------------------------------------------ what is left to do

    def is_done(self, change: Change, state: ValidatorState) -> bool:
        """True once ``change`` shows in the state (or can no longer apply)."""
        address = self.addresses[change.node]
        if change.kind == "join":
            return address in state.next or any(i == self.request_of(change).id for i, _ in state.done)
        if change.kind == "quit":
            return address not in state.next
        member = state.next.get(address)
        return member is None or member.power == change.power \
            or any(i == self.request_of(change).id for i, _ in state.done)

    def lowers_honest_share(self, request_or_quit: ChangeRequest | Quit, members: dict[bytes, Validator]) -> bool:
        """An honest member leaving or losing power, or a Byzantine one gaining power."""
        if isinstance(request_or_quit, Quit):
            return request_or_quit.address not in self.byzantine
        if request_or_quit.kind != POWER:
            return False
        member = members.get(request_or_quit.address)
        if member is None:
            return False
        if request_or_quit.address in self.byzantine:
            return request_or_quit.power > member.power
        return request_or_quit.power < member.power

    def keeps_bound(self, members: dict[bytes, Validator]) -> bool:
        """The Byzantine power stays below a third of the set's."""
        total = sum(v.power for v in members.values())
        return total > 0 and 3 * _byzantine_power(members, self.byzantine) < total

    # ------------------------------------------------------------------ offers

    def inputs_for(self, state: ValidatorState, height: int) -> tuple[ReconfigInput, ...]:
        """The inputs a proposer of ``height`` puts in its block, given the state before it."""
        key = (height, state.hash)
        found = self._offers.get(key)
        if found is None:
            found = self._offers[key] = self._build(state, height)
            while len(self._offers) > MAX_CACHED_OFFERS:
                del self._offers[next(iter(self._offers))]
        return found

    def _build(self, state: ValidatorState, height: int) -> tuple[ReconfigInput, ...]:
        builder = ReconfigBuilder(state, self.chain_id, height)
        base = {v.address: v for v in state.next}
        risky_open = any(self.lowers_honest_share(p.request, base) for p in state.pending)
        for change in self.changes:
            if change.not_before > height or self.is_done(change, state):
                continue
            if change.kind == "quit":
                risky_open |= self._offer_quit(builder, change, state, risky_open)
            else:
                risky_open |= self._offer_request(builder, change, risky_open)
        return tuple(builder.inputs)

    def _offer_quit(self, builder: ReconfigBuilder, change: Change, state: ValidatorState, risky_open: bool) -> bool:
        """Add the quit of ``change`` if it may go now; True if it lowered the honest share."""
        if change.after_joined is not None and self.addresses[change.after_joined] not in state.next:
            return False
        quit_ = self.quit_of(change)
        if quit_.address not in builder.forming:
            return False
        risky = self.lowers_honest_share(quit_, builder.forming)
        if risky:
            forming = {a: v for a, v in builder.forming.items() if a != quit_.address}
            if risky_open or not self.keeps_bound(forming):
                return False
        try:
            builder.add(quit_)
        except ReconfigError:
            return False
        return risky

    def _offer_request(self, builder: ReconfigBuilder, change: Change, risky_open: bool) -> bool:
        """Add approvals of the request of ``change`` until a quorum of the deciding set approved it; True if
        it brought on chain a request that lowers the honest share."""
        request = self.request_of(change)
        pending = builder.pending.get(request.id)
        risky = False
        if pending is None and request.kind == POWER:
            member = builder.forming.get(request.address)
            if member is None:
                return False
            risky = self.lowers_honest_share(request, builder.forming)
            if risky:
                forming = dict(builder.forming)
                if request.power == 0:
                    del forming[request.address]
                else:
                    forming[request.address] = Validator(member.name, member.public_key, request.power)
                if risky_open or not self.keeps_bound(forming):
                    return False
        deciding = builder.deciding
        approvers = set(pending[1]) if pending is not None else set()
        approved = sum(deciding.power_of(a) for a in approvers)
        added = False
        for member in deciding:
            if approved >= deciding.quorum_power:
                break
            if member.address in approvers or member.address not in self.node_of:
                continue
            try:
                builder.add(self.approval(self.node_of[member.address], request))
            except ReconfigError:
                if pending is None and not added:
                    return False  # the request itself is refused (expired, too much change, ...)
                continue
            added = True
            approved += member.power
        return risky and added
