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
from node.types.reconfig import ReconfigInput

log = logging.getLogger("ledger.reconfig")

MAX_POOL_INPUTS = 256
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

    def __len__(self) -> int:
        return len(self._items)

    def items(self) -> list[ReconfigInput]:
        return list(self._items.values())

    def _builder(self) -> ReconfigBuilder:
        state = self._state()
        if state is None:
            raise RuntimeError("the store holds no validator state")
        return ReconfigBuilder(state, self.chain_id, state.height + 1)

    def check(self, item: ReconfigInput) -> None:
        """Raise ``ReconfigError`` unless ``item`` alone would be accepted in the next block."""
        self._builder().add(item)

    def admit(self, item: ReconfigInput, *, relay: bool = True) -> bool:
        """Check and pool ``item``; False when it is already pooled.  Raises ``ReconfigError`` when refused."""
        key = item_key(item)
        if key in self._items:
            return False
        self.check(item)
        if len(self._items) >= MAX_POOL_INPUTS:
            raise PoolFullError("reconfig-pool-full", f"the node already holds {MAX_POOL_INPUTS} pending "
                                                      f"reconfiguration inputs; try again after the next blocks")
        self._items[key] = item
        log.info("reconfiguration input admitted kind=%s id=%s", type(item).__name__.lower(), key.hex()[:16])
        if relay and self.relay is not None:
            self.relay([item.encoded])
        return True

    def select(self, limit: int) -> list[ReconfigInput]:
        """What the next block may carry, oldest first (the builder skips what does not fit)."""
        return list(self._items.values())[:limit]

    def after_commit(self) -> None:
        """Drop what the new state refuses for good (applied, expired, no longer a member)."""
        for key, item in list(self._items.items()):
            try:
                self.check(item)
            except ReconfigError as exc:
                if exc.code not in WAITING_CODES:
                    del self._items[key]


def item_key(item: ReconfigInput) -> bytes:
    """One pool slot per approval (request and approver) or quit."""
    return item.id
