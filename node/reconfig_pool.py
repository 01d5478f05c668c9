"""The reconfiguration pool: approvals and quits waiting to be put in a block.

Operators submit them over REST (``POST /v1/validators/inputs``) and nodes
relay them to each other on the reconfiguration channel; the proposer takes
them in arrival order.  An input is admitted only if it would be accepted
on its own in the next block (``node.ledger.reconfig_rules``): a signature
that does not verify, an approver outside the set, an expired or replayed
record is refused with its code and never relayed.  So only validators'
signed inputs get in, and the pool is bounded (``MAX_POOL_INPUTS``; each
validator's approvals are further bounded on chain by
``MAX_OPEN_APPROVALS``).  After each commit the pool drops what the new
state no longer accepts (applied, expired) and keeps what only waits for
room under the 1/3 bound.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable

from node.ledger.errors import (
    RECONFIG_TOO_MANY_PENDING,
    RECONFIG_TOO_MUCH_CHANGE,
    ReconfigError,
)
from node.ledger.reconfig_rules import ReconfigBuilder
from node.ledger.validator_state import ValidatorState
from node.types.reconfig import Approval, ChangeRequest, PoolItem, ReconfigInput

log = logging.getLogger("ledger.reconfig")

MAX_POOL_INPUTS = 256
MAX_POOL_REQUESTS = 64
"""Change requests waiting for their first approval (a join's signature is checked before it is kept)."""
WAITING_CODES = frozenset({RECONFIG_TOO_MUCH_CHANGE, RECONFIG_TOO_MANY_PENDING})
"""Refusals that may pass later without a new signature: such an input is kept when it is already pooled."""


class PoolFullError(ReconfigError):
    """The pool holds ``MAX_POOL_INPUTS`` inputs."""


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
        """Requests no validator has approved on chain yet (operators approve them by id)."""
        return list(self._requests.values())

    def find_request(self, request_id: bytes) -> ChangeRequest | None:
        """A request by id: waiting here, or carried by a pooled approval."""
        request = self._requests.get(request_id)
        if request is not None:
            return request
        for item in self._items.values():
            if isinstance(item, Approval) and item.request.id == request_id:
                return item.request
        return None

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

    def admit(self, item: PoolItem, *, relay: bool = True) -> bool:
        """Check and pool ``item``; False when it is already pooled.  Raises ``ReconfigError`` when refused."""
        if isinstance(item, ChangeRequest):
            return self._admit_request(item, relay)
        key = item.id
        if key in self._items:
            return False
        self.check(item)
        if len(self._items) >= MAX_POOL_INPUTS:
            raise PoolFullError("reconfig-pool-full", f"the node already holds {MAX_POOL_INPUTS} pending "
                                                      f"reconfiguration inputs; try again after the next blocks")
        self._items[key] = item
        log.info("reconfiguration input pooled kind=%s id=%s", type(item).__name__.lower(), key.hex()[:16])
        if relay and self.relay is not None:
            self.relay([item.encoded])
        return True

    def _admit_request(self, request: ChangeRequest, relay: bool) -> bool:
        if request.id in self._requests:
            return False
        self.check(request)
        if len(self._requests) >= MAX_POOL_REQUESTS:
            raise PoolFullError("reconfig-pool-full", f"the node already holds {MAX_POOL_REQUESTS} requests waiting "
                                                      f"for approval; try again later")
        self._requests[request.id] = request
        log.info("change request pooled kind=%s id=%s", request.kind_name, request.id.hex()[:16])
        if relay and self.relay is not None:
            self.relay([request.encoded])
        return True

    def select(self, limit: int) -> list[ReconfigInput]:
        """What the next block may carry, oldest first (the builder skips what does not fit)."""
        return list(self._items.values())[:limit]

    def after_commit(self) -> None:
        """Drop what the new state refuses for good (applied, expired, no longer a member)."""
        on_chain = {p.request.id for p in (self._state() or _NO_STATE).pending}
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
            except ReconfigError as exc:
                if exc.code not in WAITING_CODES:
                    del self._requests[key]


class _NoState:
    pending: tuple = ()


_NO_STATE = _NoState()
