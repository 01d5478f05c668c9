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
- **Later heights are buffered**: messages for any later height are kept
  once each (by digest), within a bound per signing validator and one on
  their total size, after their signature is checked, and offered to
  the driver when the node gets there (not before: a message the driver
  buffered itself could still be refused at replay, for instance a proposal
  that lost to a conflicting one buffered earlier, and it would already count
  as seen).
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
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from enum import Enum

from node.consensus.actions import Action
from node.consensus.driver import ConsensusDriver
from node.consensus.messages import Proposal, Vote, VoteType, verify_proposal, verify_vote
from node.consensus.round_machine import Step
from node.consensus.round_status import (
    MAX_PROPOSALS_PER_ROUND,
    MAX_STATUS_ROUNDS,
    MAX_STATUS_VALUES,
    Decided,
    RoundStatus,
    VotesHeld,
)
from node.types.commit import Commit

MAX_BUFFERED_PER_SIGNER = 256
"""Messages for later heights kept per signing validator; more are dropped (the exchange repairs that)."""
MAX_BUFFERED_BYTES = 64 * 1024 * 1024
"""Bytes of buffered messages (proposal values counted) over all signers."""
MAX_HEIGHTS_AHEAD = 16
"""Messages further ahead than this are dropped: block sync brings the node there first."""
MAX_FORGED = 10_000
"""Digests of forged messages remembered (oldest forgotten first)."""
MAX_SEEN = 10_000
"""Digests of kept messages remembered (oldest forgotten first).  A height holds a proposal and two votes per
validator a round: 10,000 is over 1,000 heights of 4 validators, or 20 rounds of one height of 200.  A
forgotten digest costs a look at the message (one of an earlier height is stale by its height alone).  The
50,000 this was took 25 minutes to fill at 1,000 tx/s (about 8 MB of one node's heap, growing all along)."""
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
    """For a later height: held by the relay until the node gets there."""
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
    payload: object
    size: int


class Relay:
    """The relay of one node, around its consensus driver."""

    def __init__(self, driver: ConsensusDriver, decided_at: Callable[[int], tuple[bytes, Commit] | None], *,
                 max_buffered_per_signer: int = MAX_BUFFERED_PER_SIGNER, max_buffered_bytes: int = MAX_BUFFERED_BYTES,
                 max_heights_ahead: int = MAX_HEIGHTS_AHEAD, max_seen: int = MAX_SEEN,
                 max_answer_bytes: int = MAX_ANSWER_BYTES):
        self.driver = driver
        """The driver; a caller that rebuilds it after a crash assigns the new one here."""
        self._decided_at = decided_at
        self._max_buffered = max_buffered_per_signer
        self._max_buffered_bytes = max_buffered_bytes
        self._max_ahead = max_heights_ahead
        self._max_seen = max_seen
        self._max_answer_bytes = max_answer_bytes
        self._seen: collections.OrderedDict[Hashable, None] = collections.OrderedDict()
        self._forged: collections.OrderedDict[Hashable, None] = collections.OrderedDict()
        """Digests of messages whose signature did not verify (bounded): a peer resending them costs nothing."""
        self._buffered: dict[Hashable, _Buffered] = {}
        """Messages for later heights by digest, in arrival order."""
        self._buffered_by_signer: dict[bytes, int] = {}
        self._buffered_bytes = 0

    # ------------------------------------------------------------------ seen

    def is_seen(self, digest: Hashable) -> bool:
        return digest in self._seen

    def mark_seen(self, digest: Hashable) -> None:
        """Remember a digest (the caller does this for the node's own messages before sending them)."""
        self._seen[digest] = None
        self._seen.move_to_end(digest)
        while len(self._seen) > self._max_seen:
            self._seen.popitem(last=False)

    # ------------------------------------------------------------------ intake

    def receive(self, message: Message, digest: Hashable, payload: object = None) -> Received:
        """A message from a peer (``digest`` identifies its bytes; ``payload`` comes back on re-offer)."""
        if digest in self._seen:
            return Received(Verdict.DUPLICATE)
        if digest in self._forged:  # these exact bytes failed their signature check before: not again
            return Received(Verdict.DROPPED)
        driver = self.driver
        if isinstance(message, Decided):
            return self._receive_decided(message, digest)
        if not driver.started or message.height < driver.height:
            if driver.started:
                self.mark_seen(digest)
            return Received(Verdict.STALE if driver.started else Verdict.DROPPED)
        if message.height > driver.height:
            return self._buffer(message, digest, payload)
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
        if self._authentic(message) is False:
            self._remember_forged(digest)
        return Received(Verdict.DROPPED, actions)

    def _remember_forged(self, digest: Hashable) -> None:
        self._forged[digest] = None
        while len(self._forged) > MAX_FORGED:
            self._forged.popitem(last=False)

    def _receive_decided(self, message: Decided, digest: Hashable) -> Received:
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

    def _authentic(self, message: Proposal | Vote) -> bool | None:
        """Signed by a member of the set of the message's height (None: that set is not known here yet)."""
        driver = self.driver
        signer = message.proposer if isinstance(message, Proposal) else message.validator
        validators = driver.validators_for(message.height)
        if validators is None:
            return None
        member = validators.get(signer)
        if member is None:
            return False
        if isinstance(message, Proposal):
            return verify_proposal(driver.chain_id, member.public_key, message)
        return verify_vote(driver.chain_id, member.public_key, message)

    def _buffer(self, message: Proposal | Vote, digest: Hashable, payload: object) -> Received:
        if message.height > self.driver.height + self._max_ahead or digest in self._buffered:
            return Received(Verdict.DROPPED)
        signer = message.proposer if isinstance(message, Proposal) else message.validator
        size = 200 + (len(message.value) if isinstance(message, Proposal) else 0)
        if self._buffered_by_signer.get(signer, 0) >= self._max_buffered \
                or self._buffered_bytes + size > self._max_buffered_bytes:
            return Received(Verdict.DROPPED)
        authentic = self._authentic(message)
        if not authentic:
            if authentic is False:  # a set not known yet proves nothing: the message may come again later
                self._remember_forged(digest)
            return Received(Verdict.DROPPED)
        self._buffered[digest] = _Buffered(message, payload, size)
        self._buffered_by_signer[signer] = self._buffered_by_signer.get(signer, 0) + 1
        self._buffered_bytes += size
        return Received(Verdict.BUFFERED)

    def start_height(self, height: int) -> tuple[list[Action], list[tuple[object, Received]]]:
        """Start the driver at ``height`` and offer it the buffered messages of that height.

        Returns the driver's start actions and, for each re-offered message, its payload and what
        happened to it (the caller floods the ones kept)."""
        actions = self.driver.start_height(height)
        due: list[tuple[Hashable, _Buffered]] = []
        for digest, item in list(self._buffered.items()):
            if item.message.height <= height:
                del self._buffered[digest]
                signer = item.message.proposer if isinstance(item.message, Proposal) else item.message.validator
                self._buffered_by_signer[signer] -= 1
                if not self._buffered_by_signer[signer]:
                    del self._buffered_by_signer[signer]
                self._buffered_bytes -= item.size
                if item.message.height == height:
                    due.append((digest, item))
        return actions, [(item.payload, self.receive(item.message, digest, item.payload)) for digest, item in due]

    @property
    def buffered(self) -> int:
        """Messages held for later heights, over all peers."""
        return len(self._buffered)

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
        quorum = driver.quorum_values()
        tallies = []
        for vote_type in (VoteType.PREVOTE, VoteType.PRECOMMIT):
            masks: dict[bytes | None, int] = {}
            for vote in driver.votes_in(round_, vote_type):
                masks[vote.block_hash] = masks.get(vote.block_hash, 0) | 1 << validators.index_of(vote.validator)
            # Past the bound, values with a quorum and nil come first, then the most voted: an equivocator's
            # junk values cannot push out the ones that matter.
            ranked = sorted(masks.items(), key=lambda kv: (kv[0] is not None and kv[0] not in quorum,
                                                           -kv[1].bit_count()))
            tallies.append(tuple(ranked[:MAX_STATUS_VALUES]))
        proposals = sorted((p.block_hash for p in driver.proposals_in(round_)), key=lambda h: h not in quorum)
        return VotesHeld(round_, tuple(proposals[:MAX_PROPOSALS_PER_ROUND]), tallies[0], tallies[1])

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
        """What the asker lacks of the rounds that can still move it: its round and the rounds it lists (among
        them the POL rounds of its proposals), this node's round when later (L55), the POL rounds of the
        proposals this node holds for the asker's round (L28), and rounds with a commit quorum (L49).

        Votes go first, so a second proposal for a round arrives after the quorum behind it (the only kind
        of second proposal a driver keeps).  A vote that conflicts with one the asker already holds from the
        same validator is sent only for a value with a quorum here: a driver counts such a vote only for a
        value it holds a proposal for, and anything else would be sent again on every status."""
        driver = self.driver
        validators = driver.validators
        quorum = driver.quorum_values()
        rounds = {status.round} | {e.round for e in status.rounds} | set(driver.precommit_quorum_rounds())
        if driver.round > status.round:
            rounds.add(driver.round)
        for p in driver.proposals_in(status.round):
            if p.pol_round >= 0:
                rounds.add(p.pol_round)
        votes: list[Message] = []
        proposals: list[Message] = []
        for round_ in sorted(rounds):
            held = status.held(round_) or VotesHeld(round_, (), (), ())
            for vote_type in (VoteType.PREVOTE, VoteType.PRECOMMIT):
                for vote in driver.votes_in(round_, vote_type):
                    index = validators.index_of(vote.validator)
                    if held.has_vote(vote, index):
                        continue
                    if held.has_any_vote(vote_type, index) \
                            and (vote.block_hash is None or vote.block_hash not in quorum):
                        continue
                    votes.append(vote)
            proposals.extend(p for p in driver.proposals_in(round_) if p.block_hash not in held.proposals
                             and (not held.proposals or p.block_hash in quorum))
        out: list[Message] = []
        size = 0
        for message in votes + proposals:
            cost = len(message.value) + 200 if isinstance(message, Proposal) else 200
            if out and size + cost > self._max_answer_bytes:
                break
            out.append(message)
            size += cost
        return out

    def peer_is_ahead(self, status: RoundStatus) -> bool:
        """True when a peer's status shows it past the height after this node's: time to block-sync."""
        return self.driver.started and status.height > self.driver.height + 1
