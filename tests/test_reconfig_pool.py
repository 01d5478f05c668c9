"""The reconfiguration pool: only what the next block would accept gets in, and no signer can crowd others out."""

from __future__ import annotations

import pytest

from node.ledger import errors as E
from node.ledger.reconfig_rules import MAX_OPEN_APPROVALS, apply_inputs
from node.reconfig_pool import MAX_POOL_REQUESTS, ReconfigPool
from node.types.reconfig import power_request, sign_approval, sign_join, sign_quit
from tests.ledger.test_reconfig_rules import CHAIN, genesis, key, pub


class Chain:
    """A validator state that blocks advance, and a pool on top of it."""

    def __init__(self):
        self.state = genesis()
        self.relayed: list[bytes] = []
        self.pool = ReconfigPool(lambda: self.state, CHAIN, relay=self.relayed.extend)

    def commit(self, limit: int = 64) -> list:
        taken = []
        for item in self.pool.select():
            if len(taken) >= limit:
                break
            try:
                apply_inputs(self.state, CHAIN, self.state.height + 1, [*taken, item])
            except E.ReconfigError:
                continue
            taken.append(item)
        self.state = apply_inputs(self.state, CHAIN, self.state.height + 1, taken)
        self.pool.after_commit()
        return taken


def test_one_validator_cannot_fill_the_pool_or_block_others():
    chain = Chain()
    joins = [sign_join(CHAIN, key(100 + i), 1, f"j{i}", 500) for i in range(MAX_OPEN_APPROVALS + 5)]
    admitted = 0
    for join in joins:
        try:
            admitted += chain.pool.admit(sign_approval(CHAIN, key(3), join))
        except E.ReconfigError as exc:
            assert exc.code == E.RECONFIG_TOO_MANY_PENDING
    assert admitted == MAX_OPEN_APPROVALS
    honest_quit = sign_quit(CHAIN, key(0), 100)
    assert chain.pool.admit(honest_quit)
    taken = chain.commit()
    assert honest_quit in taken  # the flood did not keep the quit out of the block
    with pytest.raises(E.ReconfigError) as info:  # its approvals are on chain now: still at most 8 open
        chain.pool.admit(sign_approval(CHAIN, key(3), joins[-1]))
    assert info.value.code == E.RECONFIG_TOO_MANY_PENDING


def test_requests_awaiting_approval_are_joins_only_one_per_key_oldest_evicted():
    chain = Chain()
    with pytest.raises(E.ReconfigError) as info:
        chain.pool.admit(power_request(pub(1), 11, 100))
    assert info.value.code == E.RECONFIG_MALFORMED and "approval" in info.value.message
    first, newer = sign_join(CHAIN, key(50), 5, "a", 100), sign_join(CHAIN, key(50), 5, "a", 101)
    assert chain.pool.admit(first) and chain.pool.admit(newer)
    assert chain.pool.requests() == [newer]
    for i in range(MAX_POOL_REQUESTS + 3):
        chain.pool.admit(sign_join(CHAIN, key(200 + i), 1, "x", 100))
    assert len(chain.pool.requests()) == MAX_POOL_REQUESTS and newer not in chain.pool.requests()
    with pytest.raises(E.ReconfigError) as info:  # a forged join is refused, never relayed
        chain.pool.admit(sign_join(CHAIN, key(60), 5, "a", 100).__class__(
            1, pub(61), 5, "a", 100, sign_join(CHAIN, key(60), 5, "a", 100).signature))
    assert info.value.code == E.RECONFIG_BAD_SIGNATURE
    assert all(raw != b"" for raw in chain.relayed)


def test_one_quit_per_validator_and_applied_inputs_leave_the_pool():
    chain = Chain()
    assert chain.pool.admit(sign_quit(CHAIN, key(1), 100))
    assert not chain.pool.admit(sign_quit(CHAIN, key(1), 101))  # one quit per key
    join = sign_join(CHAIN, key(9), 3, "n", 100)  # with the quit: 13 of 40 power moves, under 1/3
    for i in (0, 2, 3):
        assert chain.pool.admit(sign_approval(CHAIN, key(i), join))
    assert chain.pool.admit(join)  # also waiting as a request until it is on chain
    taken = chain.commit()
    assert len(taken) == 4 and len(chain.pool) == 0 and chain.pool.requests() == []
    with pytest.raises(E.ReconfigError) as info:
        chain.pool.admit(sign_approval(CHAIN, key(0), join))
    assert info.value.code == E.RECONFIG_DONE
