"""BFT time: votes carry their signer's clock, a block's time is the power-weighted median of the
precommit times in the commit it carries, so validators holding less than a third of the power
cannot move block time outside the honest validators' clocks."""

from __future__ import annotations

import collections
from dataclasses import replace
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consensus_helpers import CHAIN, PARAMS, make_set, vote
from node.consensus.bft_time import block_time, weighted_median_time
from node.consensus.certificate import CertificateError, build_commit, commit_votes, verify_commit
from node.consensus.driver import BroadcastProposal, BroadcastVote, ConsensusDriver, Decide
from node.consensus.messages import Vote, VoteType, vote_digest
from node.consensus.signer import MemorySigner
from node.crypto import sha256, verify_signature
from node.types.commit import Commit

PC = VoteType.PRECOMMIT
BLOCK = sha256(b"block")
TEN_YEARS_MS = 10 * 365 * 24 * 3600 * 1000
GENESIS_MS = 1_700_000_000_000


def commit_with_times(powers, times, signers=None):
    """A commit for BLOCK at (5, 0) whose signers (default: all) precommitted at the given times; ``times``
    and ``signers`` index the validators in address order."""
    vs, keys = make_set(list(powers))
    a = vs.addresses
    signers = range(len(a)) if signers is None else signers
    votes = [vote(keys, a[i], PC, 5, 0, BLOCK, time_ms=times[i]) for i in signers]
    return vs, build_commit(5, 0, BLOCK, votes)


# ---------------------------------------------------------------------------- votes and certificates


def test_the_vote_signature_covers_its_time():
    vs, keys = make_set([1, 1, 1, 1])
    a = vs.addresses
    v = vote(keys, a[0], PC, 5, 0, BLOCK, time_ms=1234)
    assert v.time_ms == 1234 and Vote.decode(v.encode()) == v
    pub = vs.get(a[0]).public_key
    assert verify_signature(pub, vote_digest(CHAIN, PC, 5, 0, BLOCK, 1234), v.signature)
    assert not verify_signature(pub, vote_digest(CHAIN, PC, 5, 0, BLOCK, 1235), v.signature)


def test_a_commit_carries_each_precommit_time_and_still_verifies():
    vs, commit = commit_with_times([1, 1, 1, 1], [10, 20, 30, 40])
    verify_commit(CHAIN, vs, commit, BLOCK, 5)
    again = Commit.decode(commit.encode())
    assert again == commit
    by_validator = {cs.validator: cs.time_ms for cs in commit.signatures}
    assert sorted(by_validator.values()) == [10, 20, 30, 40]
    assert {v.validator: v.time_ms for v in commit_votes(commit)} == by_validator
    # A certificate whose time was changed after signing is forged.
    sigs = list(commit.signatures)
    sigs[2] = replace(sigs[2], time_ms=sigs[2].time_ms + 1)
    with pytest.raises(CertificateError) as exc:
        verify_commit(CHAIN, vs, replace(commit, signatures=tuple(sigs)), BLOCK, 5)
    assert exc.value.code == "bad-signature"


# ---------------------------------------------------------------------------- the weighted median


def test_weighted_median_of_equal_powers_is_the_middle():
    assert weighted_median_time(commit_with_times([1, 1, 1], [30, 10, 20])[1], make_set([1, 1, 1])[0]) == 20
    vs, commit = commit_with_times([1, 1, 1, 1], [40, 10, 30, 20])
    assert weighted_median_time(commit, vs) in (20, 30)


def test_weighted_median_follows_power():
    # one validator with more than half of the commit's power decides the time alone
    vs, _ = make_set([5, 1, 1, 1])
    heavy = next(i for i, address in enumerate(vs.addresses) if vs.get(address).power == 5)
    times = [1, 2, 3, 4]
    times[heavy] = 1000
    vs, commit = commit_with_times([5, 1, 1, 1], times)
    assert weighted_median_time(commit, vs) == 1000
    times[heavy] = 0
    vs, commit = commit_with_times([5, 1, 1, 1], times)
    assert weighted_median_time(commit, vs) == 0


def test_weighted_median_counts_only_the_commit_signers():
    vs, commit = commit_with_times([1, 1, 1, 1], [10, 20, 30, 10 ** 15], signers=[0, 1, 2])
    assert weighted_median_time(commit, vs) == 20


def test_weighted_median_refuses_an_empty_or_foreign_commit():
    vs, _ = make_set([1, 1, 1, 1])
    with pytest.raises(CertificateError):
        weighted_median_time(Commit(5, 0, BLOCK, ()), vs)
    other_vs, commit = commit_with_times([1, 1, 1, 1, 1], [1, 2, 3, 4, 5])
    stranger = [cs for cs in commit.signatures if cs.validator not in vs]
    with pytest.raises(CertificateError):
        weighted_median_time(replace(commit, signatures=tuple(stranger)), vs)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_byzantine_minority_cannot_move_the_median_outside_the_honest_clocks(data):
    """Whatever times validators with less than a third of the total power sign, and whichever
    quorum (more than 2/3 of the power) the commit holds, the median lies within the honest times."""
    n = data.draw(st.integers(1, 10), label="validators")
    drawn = data.draw(st.lists(st.integers(1, 10), min_size=n, max_size=n), label="powers")
    vs, _ = make_set(drawn)
    powers = [vs.get(address).power for address in vs.addresses]  # in address order, as commit_with_times
    total = sum(powers)
    order = data.draw(st.permutations(range(n)), label="order")
    byzantine: set[int] = set()
    for i in order:  # any set of validators holding less than a third of the power
        if 3 * (sum(powers[j] for j in byzantine) + powers[i]) < total and data.draw(st.booleans()):
            byzantine.add(i)
    honest_times = {i: data.draw(st.integers(GENESIS_MS, GENESIS_MS + 10_000)) for i in range(n) if i not in byzantine}
    byz_times = {i: data.draw(st.sampled_from([0, 1, GENESIS_MS - 1, GENESIS_MS + TEN_YEARS_MS, 2 ** 64 - 1]))
                 for i in byzantine}
    signers = [i for i in range(n) if data.draw(st.booleans())]
    if 3 * sum(powers[i] for i in signers) <= 2 * total:
        signers = list(range(n))
    times = [honest_times.get(i, byz_times.get(i)) for i in range(n)]
    vs, commit = commit_with_times(drawn, times, signers)
    verify_commit(CHAIN, vs, commit, BLOCK, 5)
    median = weighted_median_time(commit, vs)
    in_commit = [times[i] for i in signers if i not in byzantine]
    assert min(in_commit) <= median <= max(in_commit)


def test_block_time_of_the_first_block_comes_from_genesis():
    vs, commit = commit_with_times([1, 1, 1, 1], [10, 20, 30, 40])
    assert block_time(1, None, vs, GENESIS_MS) == GENESIS_MS + 1
    assert block_time(6, commit, vs, GENESIS_MS) == weighted_median_time(commit, vs)
    with pytest.raises(CertificateError):
        block_time(6, None, vs, GENESIS_MS)


# ---------------------------------------------------------------------------- drivers with skewed clocks


class FakeClock:
    """A shared 'real' time that the test advances; each validator reads it through its own offset."""

    def __init__(self) -> None:
        self.now = GENESIS_MS + 5_000
        self.reads: list[tuple[int, int]] = []  # (offset, value) of every read

    def reader(self, offset: int):
        def now_ms() -> int:
            self.reads.append((offset, self.now + offset))
            return self.now + offset
        return now_ms


def _block(height: int, time_ms: int, author: int, nonce: int) -> bytes:
    return b"B" + height.to_bytes(8, "big") + time_ms.to_bytes(8, "big") + bytes([author]) + nonce.to_bytes(4, "big")


def _time_of(value: bytes) -> int:
    return int.from_bytes(value[9:17], "big")


class Network:
    """Four drivers exchanging every message in order; a proposer dates its block with ``block_time`` of the
    commit it carries, as the runtime does, and validators accept only that time."""

    def __init__(self, offsets: list[int]):
        self.vs, self.keys = make_set([1] * len(offsets))
        self.clock = FakeClock()
        self.offsets = offsets
        self.last_commit: dict[int, Commit | None] = {i: None for i in range(len(offsets))}
        self.decided: dict[int, dict[int, tuple[bytes, Commit]]] = collections.defaultdict(dict)
        self.nonce = 0
        self.drivers = [self._driver(i) for i in range(len(offsets))]

    def _driver(self, i: int) -> ConsensusDriver:
        address = self.vs.addresses[i]

        def get_value(height: int, round_: int) -> bytes:
            self.nonce += 1
            return _block(height, block_time(height, self.last_commit[i], self.vs, GENESIS_MS), i, self.nonce)

        def is_valid(height: int, value: bytes) -> bool:
            return value[:1] == b"B" and int.from_bytes(value[1:9], "big") == height

        return ConsensusDriver(chain_id=CHAIN, validators=self.vs, signer=MemorySigner(self.keys[address], CHAIN),
                               params=PARAMS, is_valid=is_valid, value_id=sha256, get_value=get_value,
                               now_ms=self.clock.reader(self.offsets[i]), value_time=_time_of)

    def run_height(self, height: int) -> None:
        queue: collections.deque = collections.deque()
        for i, d in enumerate(self.drivers):
            queue.extend((i, a) for a in d.start_height(height))
        while queue:
            self.clock.now += 7  # messages take a little while
            src, action = queue.popleft()
            if isinstance(action, Decide):
                self.decided[height][src] = (action.value, action.commit)
                continue
            if not isinstance(action, (BroadcastProposal, BroadcastVote)):
                continue
            for dst, d in enumerate(self.drivers):
                if dst != src:
                    out = d.on_proposal(action.proposal) if isinstance(action, BroadcastProposal) \
                        else d.on_vote(action.vote)
                    queue.extend((dst, a) for a in out)
        assert len(self.decided[height]) == len(self.drivers), f"height {height} not decided by all"
        for i, d in enumerate(self.drivers):
            self.last_commit[i] = d.commit_for_decided()
        self.clock.now += 1_000  # commit timeout, empty-block wait


def test_one_validator_ten_years_ahead_cannot_move_block_time():
    honest = [0, 40, -30]
    net = Network(honest + [TEN_YEARS_MS])
    start = net.clock.now
    times = []
    for height in range(1, 9):
        net.run_height(height)
        values = {value for value, _ in net.decided[height].values()}
        assert len(values) == 1
        times.append(_time_of(values.pop()))
    end = net.clock.now
    assert times[0] == GENESIS_MS + 1
    assert all(b > a for a, b in pairwise(times)), times
    honest_reads = [t for offset, t in net.clock.reads if offset in honest]
    for t in times[1:]:
        assert start + min(honest) <= t <= end + max(honest), (t - start, times)
        assert min(honest_reads) <= t <= max(honest_reads)
    # The skewed validator's precommits are in the certificates (it is not simply left out) ...
    skewed = net.vs.addresses[3]
    assert any(cs.validator == skewed and cs.time_ms > start + TEN_YEARS_MS // 2
               for _, commit in net.decided[8].values() for cs in commit.signatures)


def test_block_time_ignores_the_proposer_clock():
    """The proposer's own clock does not date its block: with the proposer ten years ahead, the block
    it proposes carries the median of its last commit."""
    net = Network([TEN_YEARS_MS, 0, 10, 20])
    for height in range(1, 6):
        net.run_height(height)
        value, _ = next(iter(net.decided[height].values()))
        assert _time_of(value) < GENESIS_MS + TEN_YEARS_MS // 2


def test_a_precommit_is_dated_after_the_block_it_commits():
    """A validator whose clock is behind the block's time still dates its precommit after it, so the next
    block's time is after this one's."""
    net = Network([-TEN_YEARS_MS // 10, -TEN_YEARS_MS // 10, 0, 0])
    net.run_height(1)
    net.run_height(2)
    value, commit = net.decided[2][0]
    for cs in commit.signatures:
        assert cs.time_ms >= _time_of(value) + 1
    net.run_height(3)
    assert _time_of(net.decided[3][0][0]) > _time_of(value)


def test_every_vote_carries_the_signer_clock():
    net = Network([0, 0, 0, 500])
    net.clock.now = GENESIS_MS + 99_000
    actions = [a for d in net.drivers for a in d.start_height(1)]
    proposer_votes = [a.vote for a in actions if isinstance(a, BroadcastVote)]
    assert all(v.time_ms >= GENESIS_MS + 99_000 for v in proposer_votes)
    skewed = net.drivers[3]
    [proposal] = [a.proposal for a in actions if isinstance(a, BroadcastProposal)]
    if proposal.proposer != skewed.address:
        [mine] = [a.vote for a in skewed.on_proposal(proposal) if isinstance(a, BroadcastVote)]
        assert mine.time_ms == net.clock.now + 500
