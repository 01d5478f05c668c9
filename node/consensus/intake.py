"""The consensus door: which proposals and votes of this height the driver keeps, and how it keeps them.

A message reaches the door already well-formed (``node.consensus.shapes``)
and of this height; the door checks the rest once: the proposal comes from
the round's proposer and carries a value whose id is its block hash, the vote
from a validator; the signature; a bound on how many rounds above ours one
validator can make us hold state for.  A kept message is stored (the vote
counted in the ``VoteKeeper``, the proposal's value kept for the rules) and
logged to the write-ahead log; an equivocation becomes evidence.  Messages
for the next height are buffered here, a bounded number per sender.

The door applies no upon-rule: ``ConsensusDriver`` (``node.consensus.driver``)
asks it whether a message was kept and then runs the rules.
"""

from __future__ import annotations

from node.consensus.actions import Action, ReportEvidence
from node.consensus.height_state import HeightState
from node.consensus.messages import Proposal, Vote, verify_proposal, verify_vote
from node.consensus.proposer import proposer_for

MAX_FUTURE_MESSAGES_PER_SENDER = 64
"""Messages for height + 1 buffered per validator before more are dropped."""
MAX_FUTURE_ROUNDS_PER_VALIDATOR = 4
"""Distinct rounds above ours that one validator's messages may occupy (bounds memory against round spam)."""
MAX_ROUNDS_AHEAD = 1000
"""Messages for rounds further above ours are dropped (nothing honest is that far ahead)."""
MAX_EVIDENCE_KEPT = 1024
"""Equivocations kept for the ``evidence`` view (the oldest dropped first)."""


class MessageIntake(HeightState):
    """The driver's door for this height's proposals and votes (and the buffer for the next height's)."""

    def _buffer(self, message: Proposal | Vote) -> None:
        """Keep a validator's message for the next height until ``start_height`` (a bounded number per sender)."""
        sender = message.proposer if isinstance(message, Proposal) else message.validator
        if sender not in self._next_validators():
            return
        queue = self._future.setdefault(sender, [])
        if len(queue) < MAX_FUTURE_MESSAGES_PER_SENDER and message not in queue:
            queue.append(message)

    def _admit_round(self, sender: bytes, round_: int) -> bool:
        """Bound how many rounds ahead of ours one validator can make us keep state for."""
        if round_ <= self._state.round:
            return True
        rounds = self._future_rounds.setdefault(sender, set())
        if round_ in rounds:
            return True
        if len(rounds) >= MAX_FUTURE_ROUNDS_PER_VALIDATOR:
            return False
        rounds.add(round_)
        return True

    def _accept_proposal(self, p: Proposal) -> bool:
        """Keep ``p`` if it passes the door; True if it was kept (then the rules have something new)."""
        if self._decided is not None:
            return False
        if p.proposer != proposer_for(self._validators, self._height, p.round):
            return False
        first = self._proposals.get(p.round)
        if first is not None and first.block_hash == p.block_hash and first.pol_round == p.pol_round:
            return False
        if (p.round, p.block_hash) in self._extra_proposals:
            return False
        backed = self._keeper.is_backed(p.block_hash)
        if first is not None and not backed:
            return False  # a conflicting proposal is only worth keeping if a quorum is behind its value
        if self._id_of(p.value) != p.block_hash:
            return False
        member = self._validators.get(p.proposer)
        assert member is not None
        if not verify_proposal(self.chain_id, member.public_key, p):
            return False
        if not backed and not self._admit_round(p.proposer, p.round):
            return False
        self._store_proposal(p)
        return True

    def _store_proposal(self, p: Proposal) -> None:
        if p.round in self._proposals:
            self._extra_proposals[(p.round, p.block_hash)] = p
        else:
            self._proposals[p.round] = p
        self._values.setdefault(p.block_hash, p.value)
        if p.proposer == self.address:
            self._own.append(p)
        self._log(p)
        self._count_held(p.block_hash)

    def _count_held(self, value_id: bytes) -> None:
        """Count an equivocator's votes for ``value_id`` that arrived before any proposal for it (the keeper
        held them); logged after the proposal, so a replay counts them the same way."""
        for vote, result in self._keeper.count_held(value_id):
            if result.counted:
                self._kept_vote(vote)

    def _kept_vote(self, vote: Vote) -> None:
        if vote.validator == self.address:
            self._own.append(vote)
        self._log(vote)

    def _accept_vote(self, vote: Vote) -> list[Action] | None:
        """Keep ``vote`` if it passes the door: None if it did not, else what storing it reported (evidence)."""
        if self._keeper.contains(vote):
            return None
        member = self._validators.get(vote.validator)
        if member is None:
            return None
        if not verify_vote(self.chain_id, member.public_key, vote):
            return None
        if not self._admit_round(vote.validator, vote.round):
            return None
        return self._store_vote(vote)

    def _store_vote(self, vote: Vote) -> list[Action]:
        # An equivocator's other vote counts for its value whenever we hold a proposal for that value (any
        # round of this height), however many values it signed first: what bounds them is our proposal
        # admission, so junk cannot crowd out the vote a relayed polka or commit needs.  A vote for a value
        # without a proposal yet is held by the keeper and counted by _store_proposal (see vote_keeper).
        result = self._keeper.add_vote(vote, count_conflicting=vote.block_hash in self._values)
        if result.counted:
            self._kept_vote(vote)
        if result.evidence is not None:
            self._evidence.append(result.evidence)
            del self._evidence[:-MAX_EVIDENCE_KEPT]
            return [ReportEvidence(result.evidence)]
        return []
