"""The reconfiguration pool: approvals and quits waiting to be put in a block, and joins waiting for approval.

Operators submit them over REST (``POST /v1/validators/inputs``) and nodes
relay them to each other on the reconfiguration channel (again to each peer
that connects, and every ``REANNOUNCE_S`` to all, so one that was away or
behind gets them too); the proposer takes them in arrival order.

Only what the next block would accept on its own is admitted
(``node.ledger.reconfig_rules``): a signature that does not verify, a
signer outside the set, an expired or replayed record is refused with its
code and never relayed.  So only validators' and joiners' signed records
get in, and no one can crowd others out:

* each validator holds at most ``MAX_OPEN_APPROVALS`` approvals on chain and
  in the pool together, and one quit;
* a join waiting for its first approval is kept once per key
  (``MAX_POOL_REQUESTS`` in all, the oldest evicted first); a power change
  is never pooled alone (it travels inside a validator's approval, which is
  its authority);
* after each commit the pool drops what the new state refuses for good and
  keeps only what waits for room under the 1/3 bound.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable

from node.ledger.errors import (
    RECONFIG_MALFORMED,
    RECONFIG_TOO_MANY_PENDING,
    RECONFIG_TOO_MUCH_CHANGE,
    ReconfigError,
)
from node.ledger.reconfig_rules import MAX_OPEN_APPROVALS, ReconfigBuilder
from node.ledger.validator_state import ValidatorState
from node.types.reconfig import JOIN, Approval, ChangeRequest, PoolItem, Quit, ReconfigInput

log = logging.getLogger("ledger.reconfig")

MAX_POOL_REQUESTS = 64
"""Joins waiting for their first approval (signed by the joining key; the oldest is evicted when full)."""
REANNOUNCE_S = 10.0
"""How often the node sends its whole pool to its peers again (it is small, and peers drop what they hold)."""
WAITING_CODES = frozenset({RECONFIG_TOO_MUCH_CHANGE})
"""Refusals that may pass later without a new signature: such an input is kept when it is already pooled."""


class ReconfigPool:
    """Pending reconfiguration inputs, by id, in arrival order."""

    def __init__(self, state: Callable[[], ValidatorState | None], chain_id: str,
                 relay: Callable[[list[bytes]], None] | None = None):
        self._state = state
        self.chain_id = chain_id
        self.relay = relay
        """Sends admitted inputs' bytes to peers (set by the node once its transport exists)."""
        self._items: collections.OrderedDict[bytes, ReconfigInput] = collections.OrderedDict()
        self._requests: collections.OrderedDict[bytes, ChangeRequest] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def items(self) -> list[ReconfigInput]:
        return list(self._items.values())

    def requests(self) -> list[ChangeRequest]:
        """Joins no validator has approved on chain yet (operators approve them by id)."""
        return list(self._requests.values())

    def encoded(self) -> list[bytes]:
        """Everything pooled, as relayed (what a peer that connects is sent)."""
        return [r.encoded for r in self._requests.values()] + [i.encoded for i in self._items.values()]

    def _builder(self) -> ReconfigBuilder:
        state = self._state()
        if state is None:
            raise RuntimeError("the store holds no validator state")
        return ReconfigBuilder(state, self.chain_id, state.height + 1)

    def check(self, item: PoolItem) -> None:
        """Raise ``ReconfigError`` unless ``item`` alone would be accepted in the next block (a request: unless
        a first approval of it would be)."""
        builder = self._builder()
        if isinstance(item, ChangeRequest):
            if item.id not in {p.request.id for p in builder.state.pending}:
                builder.check_request(item)
        else:
            builder.add(item)

    def _check_share(self, item: ReconfigInput) -> None:
        """One signer cannot fill the pool: its approvals (on chain and pooled) and its quits are bounded."""
        if isinstance(item, Approval):
            state = self._state()
            approver = item.approver_address
            on_chain = sum(1 for p in (state.pending if state else ()) if approver in p.approvers)
            pooled = sum(1 for i in self._items.values()
                         if isinstance(i, Approval) and i.approver_address == approver)
            if on_chain + pooled >= MAX_OPEN_APPROVALS:
                raise ReconfigError(RECONFIG_TOO_MANY_PENDING, f"this validator already has {on_chain} open "
                                                               f"approvals on chain and {pooled} waiting here; at "
                                                               f"most {MAX_OPEN_APPROVALS}")

    def admit(self, item: PoolItem, *, relay: bool = True) -> bool:
        """Check and pool ``item``; False when it (or the same signer's quit) is already pooled.  Raises
        ``ReconfigError`` when refused."""
        if isinstance(item, ChangeRequest):
            return self._admit_request(item, relay)
        key = item.id
        if key in self._items or (isinstance(item, Quit) and any(
                isinstance(i, Quit) and i.public_key == item.public_key for i in self._items.values())):
            return False
        self.check(item)
        self._check_share(item)
        self._items[key] = item
        log.info("reconfiguration input pooled kind=%s id=%s", type(item).__name__.lower(), key.hex()[:16])
        if relay and self.relay is not None:
            self.relay([item.encoded])
        return True

    def _admit_request(self, request: ChangeRequest, relay: bool) -> bool:
        if request.kind != JOIN:
            raise ReconfigError(RECONFIG_MALFORMED, "a power change is not pooled alone: submit a validator's "
                                                    "approval of it (`ledger-node validator approve --set-power`)")
        if request.id in self._requests:
            return False
        self.check(request)
        for key, held in list(self._requests.items()):
            if held.public_key == request.public_key:  # one join per key: the newest
                del self._requests[key]
        while len(self._requests) >= MAX_POOL_REQUESTS:
            self._requests.popitem(last=False)
        self._requests[request.id] = request
        log.info("join request pooled id=%s", request.id.hex()[:16])
        if relay and self.relay is not None:
            self.relay([request.encoded])
        return True

    def select(self) -> list[ReconfigInput]:
        """What the next block may carry, oldest first (the proposer's builder skips what does not fit and stops
        at the block's limit)."""
        return list(self._items.values())

    def after_commit(self) -> None:
        """Drop what the new state refuses for good (applied, expired, no longer a member)."""
        state = self._state()
        on_chain = {p.request.id for p in state.pending} if state is not None else set()
        for key, item in list(self._items.items()):
            try:
                self.check(item)
            except ReconfigError as exc:
                if exc.code not in WAITING_CODES:
                    del self._items[key]
        for key, request in list(self._requests.items()):
            if key in on_chain:
                del self._requests[key]  # approved once: it lives on chain now
                continue
            try:
                self.check(request)
            except ReconfigError:
                del self._requests[key]
