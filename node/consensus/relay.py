"""The relay: which consensus messages a node keeps, buffers, re-sends and drops.

Tendermint's liveness rests on the paper's gossip assumption: a message that
one correct node received is eventually received by every correct node.
Flooding each message once on first sight is not enough for that when
messages are lost, nodes pause, or a message arrives heights before its
receiver gets there.  The relay adds what is missing, sans I/O, so the node
runtime and the simulator run the same decisions:

- **Seen** means kept: a message is marked seen (never processed or
  re-flooded again) only once the driver kept it, or when it can no longer
  matter (an earlier height, a proposal of a decided height).  A message
  dropped for any other reason may be offered again later.
- **Later heights are buffered**: messages two or more heights ahead (the
  driver itself buffers the next height) are kept per peer within a bound,
  after their signature is checked, and offered again when the node gets
  there.
- **Round-state exchange**: a node sends its peers a ``RoundStatus`` (height,
  round, step, and which proposals and votes it holds); a peer answers with
  the proposals and votes it holds that the node lacks, or, when the node is
  still deciding a height the peer has decided, with the block and its
  certificate (``Decided``).  A node further behind learns from the peer's
  own status that it must block-sync.

The caller owns the I/O: it hands over each message with a digest of its
bytes, carries out the driver's actions, floods what the relay reports as
newly kept, and ships statuses and answers.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from enum import Enum
from typing import Callable, Hashable

from node.consensus.driver import Action, ConsensusDriver
from node.consensus.messages import Commit, Proposal, Vote, VoteType, proposal_digest, vote_digest
from node.consensus.round_machine import Step
from node.consensus.round_status import MAX_STATUS_ROUNDS, MAX_STATUS_VALUES, Decided, RoundStatus, VotesHeld
from node.crypto import verify_signature

MAX_BUFFERED_PER_PEER = 256
"""Messages for later heights kept per peer; more are dropped (the round-state exchange repairs that)."""
MAX_HEIGHTS_AHEAD = 16
"""Messages further ahead than this are dropped: block sync brings the node there first."""
MAX_SEEN = 50_000
"""Digests of kept messages remembered (oldest forgotten first)."""
MAX_ANSWER_BYTES = 8 * 1024 * 1024
"""An answer to one status stops growing past this many bytes (it always holds at least one message)."""
STATUS_ROUNDS_BACK = 8
"""A status describes the rounds from this many below the current one upward, plus the rounds that matter."""
STATUS_INTERVAL_MS = 250
"""How often a node sends each peer its status."""

Message = Proposal | Vote | Decided


class Verdict(Enum):
    KEPT = "kept"
    """The driver holds it now: flood it to the other peers."""
    DUPLICATE = "duplicate"
    """Already kept (or already known to be useless)."""
    STALE = "stale"
    """Can no longer matter here; remembered as seen."""
    BUFFERED = "buffered"
    """For a later height: held until the node gets there."""
    DROPPED = "dropped"
    """Not kept: forged, from a non-validator, too far ahead, over a bound, or not (yet) usable."""


@dataclass(frozen=True)
class Received:
    """What handing one message to the relay did."""

    verdict: Verdict
    """Its fate."""
    actions: list[Action] = field(default_factory=list)
    """The driver's actions, for the caller to carry out."""

    @property
    def flood(self) -> bool:
        """True if the caller should re-send the message's bytes to its other peers."""
        return self.verdict is Verdict.KEPT


@dataclass
class _Buffered:
    message: Proposal | Vote
    digest: bytes
    payload: object


class Relay:
    """The relay of one node, around its consensus driver."""

    def __init__(self, driver: ConsensusDriver, decided_at: Callable[[int], tuple[bytes, Commit] | None], *,
                 max_buffered_per_peer: int = MAX_BUFFERED_PER_PEER, max_heights_ahead: int = MAX_HEIGHTS_AHEAD,
                 max_seen: int = MAX_SEEN, max_answer_bytes: int = MAX_ANSWER_BYTES):
        self.driver = driver
        """The driver; a caller that rebuilds it after a crash assigns the new one here."""
        self._decided_at = decided_at
        self._max_buffered = max_buffered_per_peer
        self._max_ahead = max_heights_ahead
        self._max_seen = max_seen
        self._max_answer_bytes = max_answer_bytes
        self._seen: collections.OrderedDict[bytes, None] = collections.OrderedDict()
        self._buffered: dict[Hashable, list[_Buffered]] = {}

    # ------------------------------------------------------------------ seen

    def is_seen(self, digest: bytes) -> bool:
        return digest in self._seen

    def mark_seen(self, digest: bytes) -> None:
        """Remember a digest (the caller does this for the node's own messages before sending them)."""
        self._seen[digest] = None
        self._seen.move_to_end(digest)
        while len(self._seen) > self._max_seen:
            self._seen.popitem(last=False)

    # ------------------------------------------------------------------ intake

    def receive(self, peer: Hashable, message: Message, digest: bytes, payload: object = None) -> Received:
        """A message from ``peer`` (``digest`` identifies its bytes; ``payload`` comes back on re-offer)."""
        if digest in self._seen:
            return Received(Verdict.DUPLICATE)
        driver = self.driver
        if isinstance(message, Decided):
            return self._receive_decided(message, digest)
        if not driver.started or message.height < driver.height:
            if driver.started:
                self.mark_seen(digest)
            return Received(Verdict.STALE if driver.started else Verdict.DROPPED)
        if message.height >= driver.height + 2:
            return self._buffer(peer, message, digest, payload)
        if isinstance(message, Proposal):
            actions = driver.on_proposal(message)
        else:
            actions = driver.on_vote(message)
        if driver.holds(message):
            self.mark_seen(digest)
            return Received(Verdict.KEPT, actions)
        if not driver.can_still_matter(message):
            self.mark_seen(digest)
            return Received(Verdict.STALE, actions)
        return Received(Verdict.DROPPED, actions)

    def _receive_decided(self, message: Decided, digest: bytes) -> Received:
        driver = self.driver
        if not driver.started or message.height != driver.height:
            return Received(Verdict.STALE if driver.started and message.height < driver.height else Verdict.DROPPED)
        if driver.decision is not None:
            self.mark_seen(digest)
            return Received(Verdict.STALE)
        actions = driver.on_commit(message.value, message.commit)
        if driver.decision is not None:
            self.mark_seen(digest)
            return Received(Verdict.KEPT, actions)
        return Received(Verdict.DROPPED, actions)

    def _authentic(self, message: Proposal | Vote) -> bool:
        driver = self.driver
        signer = message.proposer if isinstance(message, Proposal) else message.validator
        member = driver.validators.get(signer)
        if member is None:
            return False
        if isinstance(message, Proposal):
            digest = proposal_digest(driver.chain_id, message.height, message.round, message.pol_round,
                                     message.block_hash)
        else:
            digest = vote_digest(driver.chain_id, message.vote_type, message.height, message.round,
                                 message.block_hash, message.time_ms)
        return verify_signature(member.public_key, digest, message.signature)

    def _buffer(self, peer: Hashable, message: Proposal | Vote, digest: bytes, payload: object) -> Received:
        if message.height > self.driver.height + self._max_ahead:
            return Received(Verdict.DROPPED)
        queue = self._buffered.setdefault(peer, [])
        if len(queue) >= self._max_buffered or any(b.digest == digest for b in queue):
            return Received(Verdict.DROPPED)
        if not self._authentic(message):
            return Received(Verdict.DROPPED)
        queue.append(_Buffered(message, digest, payload))
        return Received(Verdict.BUFFERED)

    def start_height(self, height: int) -> tuple[list[Action], list[tuple[object, Received]]]:
        """Start the driver at ``height`` and offer it the buffered messages that are now usable.

        Returns the driver's start actions and, for each re-offered message, its payload and what
        happened to it (the caller floods the ones kept)."""
        actions = self.driver.start_height(height)
        reoffered: list[tuple[object, Received]] = []
        for peer in list(self._buffered):
            keep: list[_Buffered] = []
            due: list[_Buffered] = []
            for item in self._buffered[peer]:
                if item.message.height < height:
                    continue
                (due if item.message.height <= height + 1 else keep).append(item)
            if keep:
                self._buffered[peer] = keep
            else:
                del self._buffered[peer]
            for item in due:
                reoffered.append((item.payload, self.receive(peer, item.message, item.digest, item.payload)))
        return actions, reoffered

    @property
    def buffered(self) -> int:
        """Messages held for later heights, over all peers."""
        return sum(len(q) for q in self._buffered.values())

    # ------------------------------------------------------------------ round-state exchange

    def status(self) -> RoundStatus:
        """This node's position and what it holds, for its peers."""
        driver = self.driver
        if not driver.started:
            return RoundStatus(0, 0, int(Step.UNSTARTED), ())
        wanted = set(r for r in driver.rounds_held() if r >= driver.round - STATUS_ROUNDS_BACK)
        for p in driver.proposals_in(driver.round):
            if p.pol_round >= 0:
                wanted.add(p.pol_round)
        wanted.update(driver.precommit_quorum_rounds())
        rounds = sorted(wanted)[-MAX_STATUS_ROUNDS:]
        return RoundStatus(driver.height, driver.round, int(driver.step),
                           tuple(self._held(r) for r in rounds))

    def _held(self, round_: int) -> VotesHeld:
        driver = self.driver
        validators = driver.validators
        tallies = []
        for vote_type in (VoteType.PREVOTE, VoteType.PRECOMMIT):
            masks: dict[bytes | None, int] = {}
            for vote in driver.votes_in(round_, vote_type):
                masks[vote.block_hash] = masks.get(vote.block_hash, 0) | 1 << validators.index_of(vote.validator)
            tallies.append(tuple(list(masks.items())[:MAX_STATUS_VALUES]))
        proposals = tuple(p.block_hash for p in driver.proposals_in(round_))
        return VotesHeld(round_, proposals, tallies[0], tallies[1])

    def answer(self, status: RoundStatus) -> list[Message]:
        """What a peer whose status this is lacks from what this node holds."""
        driver = self.driver
        if not driver.started or status.height > driver.height or status.step == int(Step.COMMIT):
            return []
        if status.height < driver.height:
            found = self._decided_at(status.height) if status.height >= 1 else None
            return [] if found is None else [Decided(found[0], found[1])]
        decision = driver.decision
        if decision is not None:
            commit = driver.commit_for_decided()
            assert commit is not None
            return [Decided(decision.value, commit)]
        return self._missing(status)

    def _missing(self, status: RoundStatus) -> list[Message]:
        driver = self.driver
        rounds = {status.round} | set(driver.precommit_quorum_rounds())
        if driver.round > status.round:
            rounds.add(driver.round)
        for p in driver.proposals_in(status.round):
            if p.pol_round >= 0:
                rounds.add(p.pol_round)
        out: list[Message] = []
        size = 0
        for round_ in sorted(rounds):
            held = status.held(round_) or VotesHeld(round_, (), (), ())
            # A second proposal for a round the asker holds one of is sent only with a quorum behind it:
            # that is the only kind its driver keeps (an equivocating proposer's other block is not).
            candidates: list[Message] = [p for p in driver.proposals_in(round_) if p.block_hash not in held.proposals
                                         and (not held.proposals or p.block_hash in driver.quorum_values())]
            for vote_type in (VoteType.PREVOTE, VoteType.PRECOMMIT):
                candidates.extend(v for v in driver.votes_in(round_, vote_type)
                                  if not held.has_vote(v, driver.validators.index_of(v.validator)))
            for message in candidates:
                cost = len(message.value) + 200 if isinstance(message, Proposal) else 200
                if out and size + cost > self._max_answer_bytes:
                    return out
                out.append(message)
                size += cost
        return out

    def peer_is_ahead(self, status: RoundStatus) -> bool:
        """True when a peer's status shows it past the height after this node's: time to block-sync."""
        return self.driver.started and status.height > self.driver.height + 1
