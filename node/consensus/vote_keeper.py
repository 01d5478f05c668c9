"""Weighted vote counting for one height.

The keeper counts one vote per validator per (round, type) and emits each
threshold event exactly once, the first time it is crossed: a polka (2f+1
prevotes) for a value, for nil and for anything; 2f+1 precommits for a value
and for anything; and f+1 of the power voting in a round (the signal to skip
ahead to it).  A second, different vote from the same validator for the same
(round, type) is equivocation: it is kept with the first as ``Evidence`` and
never counts toward "anything" or toward skipping rounds.

The caller may still let such a vote count *for its own value*, when it is a
value the node knows a proposal for.  A value quorum is a set of distinct
validators that signed that value, and the quorum-intersection argument
behind safety holds for any such set; but liveness needs it.  A correct node
that locked on v relies on every correct node eventually seeing the polka it
saw (the paper's gossip assumption); if an equivocator sent its prevote for v
to one node and nil to another, the second node must be able to count the
relayed vote for v, or the locked node and the rest wait for each other
forever (CometBFT accepts such votes per block for the same reason).

Such votes are kept per value, not in first-come slots: a validator that sent
nil and then votes for every other value it can name first still gets its vote
for the value that matters counted, so it cannot choose which of its votes a
node ignores.  The keeper puts no bound on them itself; the caller bounds them
by counting conflicting votes only for values it holds a proposal for, and it
admits a bounded number of proposals per height.

A conflicting vote the caller does not count yet (its value has no proposal
at this node so far: a relayed vote can overtake the proposal it votes for) is
*held* rather than dropped, at most ``MAX_HELD_PER_VALIDATOR`` per validator
for the whole height, the oldest dropped first; ``count_held(value_id)``
counts the held votes for a value once the caller has its proposal.  Only
equivocators' votes are ever held, and never a vote for nil.

Votes reach the keeper already checked (signature, membership, height); it
does no cryptography.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from node.consensus.messages import Vote, VoteType
from node.encoding import Reader, Writer
from node.types.validators import ValidatorSet


class ThresholdKind(Enum):
    POLKA_VALUE = "polka-value"
    POLKA_NIL = "polka-nil"
    POLKA_ANY = "polka-any"
    PRECOMMIT_VALUE = "precommit-value"
    PRECOMMIT_ANY = "precommit-any"
    SKIP_ROUND = "skip-round"


@dataclass(frozen=True)
class Threshold:
    """A vote threshold crossed for the first time."""

    kind: ThresholdKind
    """Which threshold."""
    round: int
    """The round whose votes crossed it."""
    value_id: bytes | None = None
    """The block hash for POLKA_VALUE and PRECOMMIT_VALUE, else None."""


@dataclass(frozen=True)
class Evidence:
    """Two different signed votes from one validator for the same (height, round, type)."""

    first: Vote
    """The validator's first vote: the one that counts toward "anything"."""
    second: Vote
    """The first conflicting vote seen after it."""

    @property
    def validator(self) -> bytes:
        return self.first.validator

    @property
    def height(self) -> int:
        return self.first.height

    @property
    def round(self) -> int:
        return self.first.round

    @property
    def vote_type(self) -> VoteType:
        return self.first.vote_type

    def encode(self) -> bytes:
        return Writer().var_bytes(self.first.encode()).var_bytes(self.second.encode()).getvalue()

    @classmethod
    def decode(cls, data: bytes) -> Evidence:
        r = Reader(data)
        first, second = Vote.decode(r.var_bytes(256)), Vote.decode(r.var_bytes(256))
        r.finish()
        return cls(first, second)


MAX_HELD_PER_VALIDATOR = 8
"""Conflicting votes held per validator (whole height) until their value's proposal arrives; the oldest goes first."""


@dataclass(frozen=True)
class AddResult:
    """What adding one vote did."""

    counted: bool
    """True if the vote was new and now counts (for its value at least)."""
    thresholds: tuple[Threshold, ...] = ()
    """Thresholds crossed for the first time by this vote."""
    evidence: Evidence | None = None
    """Set when the vote is the validator's first conflicting vote in its (round, type)."""
    held: bool = False
    """True if the vote conflicts, does not count yet, and is kept until ``count_held`` of its value."""


class _Tally:
    """Votes of one type in one round."""

    __slots__ = ("first", "signed", "weights", "total", "equivocators")

    def __init__(self) -> None:
        self.first: dict[bytes, Vote] = {}
        """Each validator's first vote: what counts toward "anything"."""
        self.signed: dict[bytes, dict[bytes | None, Vote]] = {}
        """Each validator's counted votes by value (the first, plus conflicting ones allowed to count)."""
        self.weights: dict[bytes | None, int] = {}
        """Power of the distinct validators counted for each value."""
        self.total = 0
        """Power of the validators with a first vote."""
        self.equivocators: set[bytes] = set()
        """Validators already reported for this (round, type)."""


class _RoundVotes:
    __slots__ = ("prevotes", "precommits", "sender_power", "senders")

    def __init__(self) -> None:
        self.prevotes = _Tally()
        self.precommits = _Tally()
        self.senders: dict[bytes, None] = {}
        self.sender_power = 0


class VoteKeeper:
    """Counts the votes of one height against one validator set."""

    def __init__(self, validators: ValidatorSet, height: int):
        self.validators = validators
        self.height = height
        self._quorum = validators.quorum_power
        self._one_third = validators.one_third_power
        self._rounds: dict[int, _RoundVotes] = {}
        self._emitted: set[tuple[ThresholdKind, int, bytes | None]] = set()
        self._polka_values: dict[int, bytes] = {}
        self._precommit_values: dict[int, bytes] = {}
        self._skip_rounds: list[int] = []
        self._held: dict[bytes, dict[tuple[int, VoteType, bytes | None], Vote]] = {}
        """Per validator, in arrival order: conflicting votes not counted yet, by (round, type, value).  Only
        votes for a value are held; the key admits None because any vote's key is looked up."""
        self.evidence: list[Evidence] = []

    # ------------------------------------------------------------------ adding

    def _tally(self, vote: Vote, create: bool) -> _Tally | None:
        rv = self._rounds.get(vote.round)
        if rv is None:
            if not create:
                return None
            rv = self._rounds[vote.round] = _RoundVotes()
        return rv.prevotes if vote.vote_type == VoteType.PREVOTE else rv.precommits

    def contains(self, vote: Vote) -> bool:
        """True if this vote's content is already counted or held (so it need not be checked again)."""
        tally = self._tally(vote, create=False)
        if tally is None:
            return False
        signed = tally.signed.get(vote.validator)
        if signed is not None and vote.block_hash in signed:
            return True
        held = self._held.get(vote.validator)
        return held is not None and (vote.round, vote.vote_type, vote.block_hash) in held

    def is_counted(self, vote: Vote) -> bool:
        """True if this vote's content counts (held votes do not: they may still be evicted)."""
        tally = self._tally(vote, create=False)
        signed = None if tally is None else tally.signed.get(vote.validator)
        return signed is not None and vote.block_hash in signed

    def add_vote(self, vote: Vote, count_conflicting: bool = False) -> AddResult:
        """Count ``vote`` (for this height, from a member) and report what it crossed.

        A vote that conflicts with the validator's first one is reported as evidence (once per
        round and type) and counts for its own value only if ``count_conflicting``; otherwise a
        conflicting vote for a value (not nil) is held until ``count_held`` of that value.
        """
        power = self.validators.power_of(vote.validator)
        if vote.height != self.height or power == 0:
            return AddResult(False)
        tally = self._tally(vote, create=True)
        assert tally is not None
        rv = self._rounds[vote.round]
        signed = tally.signed.get(vote.validator)
        if signed is None:
            tally.first[vote.validator] = vote
            tally.signed[vote.validator] = {vote.block_hash: vote}
            tally.weights[vote.block_hash] = tally.weights.get(vote.block_hash, 0) + power
            tally.total += power
            if vote.validator not in rv.senders:
                rv.senders[vote.validator] = None
                rv.sender_power += power
            return AddResult(True, self._crossed(vote, tally, rv))
        if vote.block_hash in signed:
            return AddResult(False)
        evidence = None
        if vote.validator not in tally.equivocators:
            tally.equivocators.add(vote.validator)
            evidence = Evidence(tally.first[vote.validator], vote)
            self.evidence.append(evidence)
        key = (vote.round, vote.vote_type, vote.block_hash)
        held = self._held.get(vote.validator)
        if not count_conflicting:
            if vote.block_hash is None:
                return AddResult(False, (), evidence)
            if held is None:
                held = self._held[vote.validator] = {}
            held[key] = vote
            if len(held) > MAX_HELD_PER_VALIDATOR:
                del held[next(iter(held))]
            return AddResult(False, (), evidence, held=True)
        if held is not None and held.pop(key, None) is not None and not held:
            del self._held[vote.validator]  # counted now: the caller learned its value's proposal first
        signed[vote.block_hash] = vote
        tally.weights[vote.block_hash] = tally.weights.get(vote.block_hash, 0) + power
        return AddResult(True, self._crossed(vote, tally, rv), evidence)

    def count_held(self, value_id: bytes) -> list[tuple[Vote, AddResult]]:
        """Count every held vote for ``value_id`` (the caller now holds a proposal for it)."""
        found = [vote for held in self._held.values() for key, vote in held.items() if key[2] == value_id]
        out = []
        for vote in found:
            held = self._held[vote.validator]
            del held[(vote.round, vote.vote_type, vote.block_hash)]
            if not held:
                del self._held[vote.validator]
            out.append((vote, self.add_vote(vote, count_conflicting=True)))
        return out

    def is_backed(self, value_id: bytes) -> bool:
        """True if ``value_id`` has, in some round and type, votes from more than 2/3 of the power, counting
        the held votes for it too (they are real signed votes, waiting only for the value's proposal)."""
        if value_id in self._polka_values.values() or value_id in self._precommit_values.values():
            return True
        extra: dict[tuple[int, VoteType], int] = {}
        for validator, held in self._held.items():
            for round_, vote_type, value in held:
                if value == value_id:
                    key = (round_, vote_type)
                    extra[key] = extra.get(key, 0) + self.validators.power_of(validator)
        for (round_, vote_type), power in extra.items():
            rv = self._rounds.get(round_)
            tally = None if rv is None else rv.prevotes if vote_type == VoteType.PREVOTE else rv.precommits
            counted = 0 if tally is None else tally.weights.get(value_id, 0)
            if counted + power >= self._quorum:
                return True
        return False

    def held_count(self, validator: bytes) -> int:
        """How many of ``validator``'s conflicting votes are held, waiting for their value's proposal."""
        return len(self._held.get(validator, ()))

    def _emit(self, out: list[Threshold], kind: ThresholdKind, round_: int, value_id: bytes | None = None) -> None:
        key = (kind, round_, value_id)
        if key not in self._emitted:
            self._emitted.add(key)
            out.append(Threshold(kind, round_, value_id))

    def _crossed(self, vote: Vote, tally: _Tally, rv: _RoundVotes) -> tuple[Threshold, ...]:
        out: list[Threshold] = []
        r, value = vote.round, vote.block_hash
        weight = tally.weights[value]
        if vote.vote_type == VoteType.PREVOTE:
            if weight >= self._quorum:
                if value is None:
                    self._emit(out, ThresholdKind.POLKA_NIL, r)
                elif r not in self._polka_values:  # a second polka in one round needs > 1/3 equivocating
                    self._polka_values[r] = value
                    self._emit(out, ThresholdKind.POLKA_VALUE, r, value)
            if tally.total >= self._quorum:
                self._emit(out, ThresholdKind.POLKA_ANY, r)
        else:
            if weight >= self._quorum and value is not None and r not in self._precommit_values:
                self._precommit_values[r] = value
                self._emit(out, ThresholdKind.PRECOMMIT_VALUE, r, value)
            if tally.total >= self._quorum:
                self._emit(out, ThresholdKind.PRECOMMIT_ANY, r)
        if rv.sender_power >= self._one_third and (ThresholdKind.SKIP_ROUND, r, None) not in self._emitted:
            self._skip_rounds.append(r)
            self._emit(out, ThresholdKind.SKIP_ROUND, r)
        return tuple(out)

    # ------------------------------------------------------------------ queries

    def polka_value(self, round_: int) -> bytes | None:
        """The value with 2f+1 prevotes in ``round_``, else None."""
        return self._polka_values.get(round_)

    def has_polka_nil(self, round_: int) -> bool:
        return (ThresholdKind.POLKA_NIL, round_, None) in self._emitted

    def has_polka_any(self, round_: int) -> bool:
        return (ThresholdKind.POLKA_ANY, round_, None) in self._emitted

    def precommit_value(self, round_: int) -> bytes | None:
        """The value with 2f+1 precommits in ``round_``, else None."""
        return self._precommit_values.get(round_)

    def has_precommit_any(self, round_: int) -> bool:
        return (ThresholdKind.PRECOMMIT_ANY, round_, None) in self._emitted

    def precommit_quorums(self) -> list[tuple[int, bytes]]:
        """(round, value) pairs that have 2f+1 precommits, in the order they were reached."""
        return list(self._precommit_values.items())

    def quorum_values(self) -> set[bytes]:
        """Every value with a polka or a precommit quorum in some round of this height."""
        return set(self._polka_values.values()) | set(self._precommit_values.values())

    def skip_rounds(self) -> list[int]:
        """Rounds in which validators with f+1 of the power have voted."""
        return list(self._skip_rounds)

    def highest_skip_round(self) -> int:
        return max(self._skip_rounds, default=-1)

    def rounds(self) -> list[int]:
        return sorted(self._rounds)

    def votes(self, round_: int, vote_type: VoteType) -> list[Vote]:
        """Each validator's first vote of one round and type, in arrival order."""
        rv = self._rounds.get(round_)
        if rv is None:
            return []
        tally = rv.prevotes if vote_type == VoteType.PREVOTE else rv.precommits
        return list(tally.first.values())

    def votes_for(self, round_: int, vote_type: VoteType, value_id: bytes | None) -> list[Vote]:
        """Counted votes for ``value_id`` in one round and type (conflicting ones included), by validator."""
        rv = self._rounds.get(round_)
        if rv is None:
            return []
        tally = rv.prevotes if vote_type == VoteType.PREVOTE else rv.precommits
        found = (signed[value_id] for signed in tally.signed.values() if value_id in signed)
        return sorted(found, key=lambda v: v.validator)

    def precommits_for(self, round_: int, value_id: bytes) -> list[Vote]:
        """Counted precommits for ``value_id`` in ``round_``, sorted by validator address."""
        return self.votes_for(round_, VoteType.PRECOMMIT, value_id)

    def counted_votes(self, round_: int, vote_type: VoteType) -> list[Vote]:
        """Every counted vote of one round and type: each validator's first, plus conflicting ones counted."""
        rv = self._rounds.get(round_)
        if rv is None:
            return []
        tally = rv.prevotes if vote_type == VoteType.PREVOTE else rv.precommits
        return [vote for signed in tally.signed.values() for vote in signed.values()]
