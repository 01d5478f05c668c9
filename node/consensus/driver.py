"""The consensus driver: messages and timeouts in, actions out, no I/O.

The driver checks every message once at the door (shape, membership,
signature, height), counts votes in a ``VoteKeeper``, keeps the proposals and
their values, and turns what it knows into round-machine inputs until no
upon-rule applies any more.  The machine's outputs become actions for the
caller: broadcast a proposal or vote, schedule a timeout, decide a block with
its certificate, report evidence.  The node's own proposals and votes are fed
back to itself internally, so the caller only has to send them to peers.

A caller drives one height at a time: ``start_height(h)``, then feed
``on_proposal`` / ``on_vote`` / ``on_timeout`` until a ``Decide`` action, commit
the block, and call ``start_height(h + 1)``.  Until then the driver stays at h
and keeps collecting late precommits (``commit_for_decided``).  Messages for
h + 1 are buffered (a bounded number per sender) and replayed on the next
``start_height``; anything further ahead or behind is dropped.

With a signer that never signs twice and a write-ahead log, a driver built
after a crash and started at the same height replays the log and resumes the
round it was in, re-sending its own messages and re-arming its timers.  The
input that leads to a signature is synced to the log before the signer signs,
and whatever the signer holds for the height is counted and sent again on a
restart, also when the replay reaches a different vote than the one it holds
(the signer refuses that one; the node is never silent for a step it signed).

Votes carry this node's clock (``now_ms``, injected: the driver reads no
clock of its own).  A precommit for a block is dated after that block's time
(``value_time``), so the next block, whose time is the weighted median of
these precommits (``node.consensus.bft_time``), is later than this one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from node.consensus.certificate import CertificateError, verify_commit
from node.consensus.messages import MAX_PROPOSAL_VALUE_BYTES, Proposal, Vote, VoteType, verify_proposal, verify_vote
from node.consensus.proposer import proposer_for
from node.consensus.round_machine import (
    CastVote,
    Decision,
    EnterRound,
    PolkaAny,
    PolkaNil,
    PrecommitAny,
    ProposalReceived,
    ProposalWithCommitQuorum,
    ProposalWithPolka,
    ProposalWithPolkaCurrent,
    Propose,
    RoundInput,
    RoundOutput,
    RoundState,
    SkipRound,
    StartRound,
    StartTimer,
    Step,
    Timeout,
    TimeoutElapsed,
    TimeoutKind,
    TimeoutParams,
    apply_input,
    restore_lock,
)
from node.consensus.signer import ConsensusSigner, DoubleSignError
from node.consensus.vote_keeper import Evidence, VoteKeeper
from node.consensus.wal import ConsensusWAL
from node.crypto import ADDRESS_SIZE, SIGNATURE_SIZE
from node.errors import CodedError
from node.types.commit import Commit, CommitSig
from node.types.hashes import HASH_SIZE
from node.types.validators import ValidatorSet

__all__ = [
    "Action", "BroadcastProposal", "BroadcastVote", "ConsensusDriver", "ConsensusError", "Decide",
    "ReportEvidence", "ScheduleTimeout", "Step", "Timeout", "TimeoutKind", "TimeoutParams",
]

MAX_FUTURE_MESSAGES_PER_SENDER = 64
"""Messages for height + 1 buffered per validator before more are dropped."""
MAX_FUTURE_ROUNDS_PER_VALIDATOR = 4
"""Distinct rounds above ours that one validator's messages may occupy (bounds memory against round spam)."""
MAX_ROUNDS_AHEAD = 1000
"""Messages for rounds further above ours are dropped (nothing honest is that far ahead)."""
MAX_EVIDENCE_KEPT = 1024
log = logging.getLogger("ledger.consensus")
_U32_LIMIT = 1 << 32
_U64_LIMIT = 1 << 64


class ConsensusError(CodedError):
    """The driver was used wrongly; ``code`` is stable."""


# ---------------------------------------------------------------------------- actions


@dataclass(frozen=True)
class BroadcastProposal:
    """Send this node's proposal to every peer."""

    proposal: Proposal
    """Signed proposal, already durable in the signer's log."""


@dataclass(frozen=True)
class BroadcastVote:
    """Send this node's vote to every peer."""

    vote: Vote
    """Signed vote, already durable in the signer's log."""


@dataclass(frozen=True)
class ScheduleTimeout:
    """Call ``on_timeout(timeout)`` after ``delay_ms``."""

    timeout: Timeout
    """What to hand back."""
    delay_ms: int
    """Milliseconds from now."""


@dataclass(frozen=True)
class Decide:
    """Commit ``value`` at ``height``: more than 2/3 of the power precommitted it in ``round``."""

    height: int
    """The decided height."""
    round: int
    """The decision round."""
    value: bytes
    """The block bytes."""
    block_hash: bytes
    """``value_id(value)``."""
    commit: Commit
    """The precommits received so far (at least 2/3+ of the power), sorted by validator."""


@dataclass(frozen=True)
class ReportEvidence:
    """A validator signed two different votes for one (height, round, type)."""

    evidence: Evidence
    """Both votes."""


Action = BroadcastProposal | BroadcastVote | ScheduleTimeout | Decide | ReportEvidence


# ---------------------------------------------------------------------------- shape checks


def _is_u(value: object, limit: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < limit


def _is_bytes(value: object, size: int) -> bool:
    return isinstance(value, bytes) and len(value) == size


def is_well_formed_vote(vote: object) -> bool:
    return (isinstance(vote, Vote) and isinstance(vote.vote_type, VoteType) and _is_u(vote.height, _U64_LIMIT)
            and _is_u(vote.round, _U32_LIMIT) and (vote.block_hash is None or _is_bytes(vote.block_hash, HASH_SIZE))
            and _is_u(vote.time_ms, _U64_LIMIT)
            and _is_bytes(vote.validator, ADDRESS_SIZE) and _is_bytes(vote.signature, SIGNATURE_SIZE))


def is_well_formed_proposal(proposal: object) -> bool:
    return (isinstance(proposal, Proposal) and _is_u(proposal.height, _U64_LIMIT) and _is_u(proposal.round, _U32_LIMIT)
            and isinstance(proposal.pol_round, int) and not isinstance(proposal.pol_round, bool)
            and -1 <= proposal.pol_round < proposal.round and _is_bytes(proposal.block_hash, HASH_SIZE)
            and isinstance(proposal.value, bytes) and len(proposal.value) <= MAX_PROPOSAL_VALUE_BYTES
            and _is_bytes(proposal.proposer, ADDRESS_SIZE) and _is_bytes(proposal.signature, SIGNATURE_SIZE))


# ---------------------------------------------------------------------------- the driver


class ConsensusDriver:
    """Tendermint consensus for one node, one height at a time, sans I/O."""

    def __init__(self, *, chain_id: str, validators: ValidatorSet, signer: ConsensusSigner | None,
                 params: TimeoutParams, is_valid: Callable[[int, bytes], bool], value_id: Callable[[bytes], bytes],
                 get_value: Callable[[int, int], bytes], now_ms: Callable[[], int],
                 wal: ConsensusWAL | None = None, value_time: Callable[[bytes], int] | None = None):
        """``now_ms`` is this node's clock (Unix ms) for the times its votes carry; ``value_time`` gives the
        time a value (block) carries, so a precommit for it is dated later (None: values carry no time)."""
        if signer is not None and signer.chain_id != chain_id:
            raise ConsensusError("signer-chain-mismatch", "the signer signs for another chain")
        self.chain_id = chain_id
        self._validators = validators
        self._signer = signer
        self._params = params
        self._is_valid_fn = is_valid
        self._value_id = value_id
        self._get_value = get_value
        self._wal = wal
        self._now_ms = now_ms
        self._value_time = value_time
        self._height = 0
        self._started = False
        self._replaying = False
        self._evidence: list[Evidence] = []
        self._future: dict[bytes, list[Proposal | Vote]] = {}
        self._reset_height(0)

    # ------------------------------------------------------------------ state

    def _reset_height(self, height: int) -> None:
        self._height = height
        self._state = RoundState(height)
        self._keeper = VoteKeeper(self._validators, height)
        self._proposals: dict[int, Proposal] = {}
        self._extra_proposals: dict[tuple[int, bytes], Proposal] = {}
        self._values: dict[bytes, bytes] = {}
        self._validity: dict[bytes, bool] = {}
        self._future_rounds: dict[bytes, set[int]] = {}
        self._own: list[Proposal | Vote] = []
        self._replay_own_proposals: dict[int, Proposal] = {}
        self._certified: dict[tuple[int, bytes], dict[bytes, CommitSig]] = {}
        self._decided: Decide | None = None

    @property
    def address(self) -> bytes | None:
        """This node's validator address (None for a non-validator)."""
        return None if self._signer is None else self._signer.address

    @property
    def validators(self) -> ValidatorSet:
        return self._validators

    @property
    def height(self) -> int:
        return self._height

    @property
    def round(self) -> int:
        return self._state.round

    @property
    def step(self) -> Step:
        return self._state.step

    @property
    def locked_round(self) -> int:
        return self._state.locked_round

    @property
    def locked_value(self) -> bytes | None:
        """Id of the locked value, or None."""
        return self._state.locked_value

    @property
    def valid_round(self) -> int:
        return self._state.valid_round

    @property
    def round_state(self) -> RoundState:
        return self._state

    @property
    def evidence(self) -> list[Evidence]:
        """Equivocations seen (most recent ``MAX_EVIDENCE_KEPT``)."""
        return list(self._evidence)

    @property
    def decision(self) -> Decide | None:
        """The decision at the current height, once there is one."""
        return self._decided

    @property
    def commit_complete(self) -> bool:
        """Decided, and every validator's precommit for the decided block is in (no point waiting for more)."""
        commit = self.commit_for_decided()
        return commit is not None and len(commit.signatures) == len(self._validators)

    def commit_for_decided(self) -> Commit | None:
        """All precommits for the decided block received so far, or None before a decision."""
        if self._decided is None:
            return None
        return self._build_commit(self._decided.round, self._decided.block_hash)

    def _build_commit(self, round_: int, value_id: bytes) -> Commit:
        """Counted precommits for (round, value), plus any from a verified certificate."""
        sigs = dict(self._certified.get((round_, value_id), {}))
        for vote in self._keeper.precommits_for(round_, value_id):
            sigs[vote.validator] = CommitSig(vote.validator, vote.time_ms, vote.signature)
        return Commit(self._height, round_, value_id, tuple(sigs[v] for v in sorted(sigs)))

    def proposal_for(self, block_hash: bytes) -> Proposal | None:
        """An accepted proposal of this height carrying ``block_hash``."""
        for p in self._proposals.values():
            if p.block_hash == block_hash:
                return p
        for (_, h), p in self._extra_proposals.items():
            if h == block_hash:
                return p
        return None

    # ------------------------------------------------------------------ what the relay asks

    @property
    def started(self) -> bool:
        """True once ``start_height`` has been called."""
        return self._started

    def proposals_in(self, round_: int) -> list[Proposal]:
        """The proposals accepted for ``round_`` of this height (a second one only with a quorum behind it)."""
        out = [self._proposals[round_]] if round_ in self._proposals else []
        out.extend(p for (r, _), p in self._extra_proposals.items() if r == round_)
        return out

    def votes_in(self, round_: int, vote_type: VoteType) -> list[Vote]:
        """Every counted vote of one round and type (an equivocator's conflicting ones included)."""
        return self._keeper.counted_votes(round_, vote_type)

    def rounds_held(self) -> list[int]:
        """Rounds of this height for which a proposal or a vote is held, ascending."""
        return sorted(set(self._keeper.rounds()) | set(self._proposals) | {r for r, _ in self._extra_proposals})

    def quorum_values(self) -> set[bytes]:
        """Values with a polka or precommits from more than 2/3 of the power in some round of this height."""
        return self._keeper.quorum_values()

    def first_votes_in(self, round_: int, vote_type: VoteType) -> list[Vote]:
        """Each validator's first vote of one round and type (the one its "anything" counts use)."""
        return self._keeper.votes(round_, vote_type)

    def precommit_quorum_rounds(self) -> list[int]:
        """Rounds with precommits from more than 2/3 of the power for one value."""
        return [r for r, _ in self._keeper.precommit_quorums()]

    def holds(self, message: Proposal | Vote) -> bool:
        """True if the driver kept ``message``: counted, stored, or buffered for the next height."""
        if message.height == self._height + 1:
            sender = message.proposer if isinstance(message, Proposal) else message.validator
            return message in self._future.get(sender, ())
        if message.height != self._height:
            return False
        if isinstance(message, Vote):
            return self._keeper.is_counted(message)  # a held vote may be evicted: not kept for good
        return any(p == message for p in self.proposals_in(message.round))

    def can_still_matter(self, message: Proposal | Vote) -> bool:
        """False for a message that nothing at this node will ever use again: an earlier height, or a
        proposal or prevote of a height already decided (only late precommits still count)."""
        if message.height < self._height:
            return False
        if message.height == self._height and self._decided is not None:
            return isinstance(message, Vote) and message.vote_type == VoteType.PRECOMMIT
        return True

    # ------------------------------------------------------------------ entry points

    def start_height(self, height: int, validators: ValidatorSet | None = None) -> list[Action]:
        """Begin ``height`` at round 0 (or resume it from the write-ahead log) and replay buffered messages."""
        if not _is_u(height, _U64_LIMIT) or height < 1:
            raise ConsensusError("bad-height", "heights start at 1")
        if self._started and height <= self._height:
            raise ConsensusError("height-regression", f"at height {self._height}, cannot start {height}")
        buffered: list[Proposal | Vote] = []
        if height == self._height + 1:
            for messages in self._future.values():
                buffered.extend(messages)
        self._future = {}
        if validators is not None:
            self._validators = validators
        self._started = True
        self._reset_height(height)

        entries = []
        if self._wal is not None:
            entries = self._wal.entries(height) if self._wal.height == height else []
            if self._wal.height != height:
                self._wal.start_height(height)
        if entries:
            actions = self._replay(entries)
            self._restore_signer_lock()
        else:
            self._restore_signer_lock()
            actions = self._enter_round(0)
        actions += self._resend_signed(actions)
        for message in buffered:
            actions += self._dispatch(message)
        self._sync(actions)
        return actions

    def on_proposal(self, proposal: Proposal) -> list[Action]:
        """A proposal from the network."""
        if not is_well_formed_proposal(proposal):
            return []
        actions = self._dispatch(proposal)
        self._sync(actions)
        return actions

    def on_vote(self, vote: Vote) -> list[Action]:
        """A prevote or precommit from the network."""
        if not is_well_formed_vote(vote):
            return []
        actions = self._dispatch(vote)
        self._sync(actions)
        return actions

    def on_commit(self, value: bytes, commit: Commit) -> list[Action]:
        """A block of the current height with its certificate, from a peer that has moved on (or block sync).

        If the certificate verifies and the block is valid this is L49 with the certificate's precommits:
        the driver decides, even if it never saw those precommits itself (for instance because it counted an
        equivocator's other vote first).  This decision is not in the write-ahead log: a caller that crashes
        before committing the block fetches it again.
        """
        if not self._started or self._decided is not None or not isinstance(value, bytes) \
                or not isinstance(commit, Commit) or commit.height != self._height:
            return []
        value_id = self._id_of(value)
        if value_id is None:
            return []
        try:
            verify_commit(self.chain_id, self._validators, commit, value_id, self._height)
        except CertificateError:
            return []
        self._values.setdefault(value_id, value)
        if not self._is_valid(value_id):
            return []
        self._certified[(commit.round, value_id)] = {cs.validator: cs for cs in commit.signatures}
        actions = self._apply(ProposalWithCommitQuorum(commit.round, value_id))
        self._sync(actions)
        return actions

    def on_timeout(self, timeout: Timeout) -> list[Action]:
        """A timeout scheduled by a ``ScheduleTimeout`` action has elapsed."""
        if not isinstance(timeout, Timeout) or timeout.height != self._height or not self._started:
            return []
        actions = self._handle_timeout(timeout)
        self._sync(actions)
        return actions

    # ------------------------------------------------------------------ intake

    def _dispatch(self, message: Proposal | Vote) -> list[Action]:
        if message.height != self._height or not self._started:
            if message.height == self._height + 1:
                self._buffer(message)
            return []
        if message.round > self._state.round + MAX_ROUNDS_AHEAD:
            return []
        if isinstance(message, Proposal):
            return self._receive_proposal(message)
        return self._receive_vote(message)

    def _buffer(self, message: Proposal | Vote) -> None:
        sender = message.proposer if isinstance(message, Proposal) else message.validator
        if sender not in self._validators:
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

    def _receive_proposal(self, p: Proposal) -> list[Action]:
        if self._decided is not None:
            return []
        if p.proposer != proposer_for(self._validators, self._height, p.round):
            return []
        first = self._proposals.get(p.round)
        if first is not None and first.block_hash == p.block_hash and first.pol_round == p.pol_round:
            return []
        if (p.round, p.block_hash) in self._extra_proposals:
            return []
        backed = self._keeper.is_backed(p.block_hash)
        if first is not None and not backed:
            return []  # a conflicting proposal is only worth keeping if a quorum is behind its value
        if self._id_of(p.value) != p.block_hash:
            return []
        member = self._validators.get(p.proposer)
        assert member is not None
        if not verify_proposal(self.chain_id, member.public_key, p):
            return []
        if not backed and not self._admit_round(p.proposer, p.round):
            return []
        self._store_proposal(p)
        return self._advance()

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

    def _receive_vote(self, vote: Vote) -> list[Action]:
        if self._keeper.contains(vote):
            return []
        member = self._validators.get(vote.validator)
        if member is None:
            return []
        if not verify_vote(self.chain_id, member.public_key, vote):
            return []
        if not self._admit_round(vote.validator, vote.round):
            return []
        actions = self._store_vote(vote)
        return actions + self._advance()

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

    def _handle_timeout(self, timeout: Timeout) -> list[Action]:
        self._log(timeout)
        return self._apply(TimeoutElapsed(timeout)) + self._advance()

    # ------------------------------------------------------------------ the rules

    def _id_of(self, value: bytes) -> bytes | None:
        """``value_id(value)``, or None for bytes the ledger cannot even decode (a Byzantine proposal)."""
        try:
            return self._value_id(value)
        except Exception as exc:  # noqa: BLE001  (injected callback on untrusted bytes: any failure is "not a block")
            log.debug("undecodable proposal value: %r", exc)
            return None

    def _is_valid(self, value_id: bytes) -> bool:
        """valid(v), computed at most once per block hash (it executes the block).

        A callback that raises is taken as "invalid": the bytes came from the network, and one malformed
        proposal must not stop this node's consensus.
        """
        known = self._validity.get(value_id)
        if known is None:
            value = self._values.get(value_id)
            try:
                known = value is not None and bool(self._is_valid_fn(self._height, value))
            except Exception as exc:  # noqa: BLE001  (injected callback on network bytes: raising means invalid)
                log.warning("is_valid raised on block %s at height %d: %r", value_id.hex(), self._height, exc)
                known = False
            self._validity[value_id] = known
        return known

    def _has_proposal(self, round_: int, value_id: bytes) -> bool:
        p = self._proposals.get(round_)
        return (p is not None and p.block_hash == value_id) or (round_, value_id) in self._extra_proposals

    def _candidate_inputs(self):
        """Inputs whose driver-side preconditions hold now; the machine applies its own guards."""
        s, keeper = self._state, self._keeper
        if s.step in (Step.UNSTARTED, Step.COMMIT):
            return
        r = s.round
        # L49, any round.  The value's bytes may come from any accepted proposal of this height (a
        # re-proposal carries the same block): its id is its hash, so the bytes are the decided block.
        for commit_round, value_id in keeper.precommit_quorums():
            if value_id in self._values and self._is_valid(value_id):
                yield ProposalWithCommitQuorum(commit_round, value_id)
        skip = keeper.highest_skip_round()  # L55
        if skip > r:
            yield SkipRound(skip)
        if s.step == Step.PROPOSE:
            p = self._proposals.get(r)
            if p is not None:
                if p.pol_round == -1:  # L22
                    yield ProposalReceived(p.block_hash, self._is_valid(p.block_hash))
                elif keeper.polka_value(p.pol_round) == p.block_hash:  # L28
                    yield ProposalWithPolka(p.block_hash, p.pol_round, self._is_valid(p.block_hash))
        if s.step >= Step.PREVOTE and not s.polka_value_seen:  # L36
            polka = keeper.polka_value(r)
            if polka is not None and self._has_proposal(r, polka) and self._is_valid(polka):
                yield ProposalWithPolkaCurrent(polka)
        if s.step == Step.PREVOTE:
            if keeper.has_polka_nil(r):  # L44
                yield PolkaNil()
            if not s.prevote_timer_started and keeper.has_polka_any(r):  # L34
                yield PolkaAny()
        if not s.precommit_timer_started and keeper.has_precommit_any(r):  # L47
            yield PrecommitAny()

    def _advance(self) -> list[Action]:
        """Apply upon-rules until none changes anything."""
        actions: list[Action] = []
        progressed = True
        while progressed:
            progressed = False
            for inp in self._candidate_inputs():
                state, out = apply_input(self._state, inp)
                if out is None and state == self._state:
                    continue
                self._set_state(state)
                if out is not None:
                    actions += self._perform(out)
                progressed = True
                break
        return actions

    def _apply(self, inp: RoundInput) -> list[Action]:
        state, out = apply_input(self._state, inp)
        self._set_state(state)
        return [] if out is None else self._perform(out)

    def _set_state(self, state: RoundState) -> None:
        if state.round != self._state.round:
            for rounds in self._future_rounds.values():
                rounds.difference_update([r for r in rounds if r <= state.round])
        self._state = state

    def _enter_round(self, round_: int) -> list[Action]:
        is_proposer = self._signer is not None and \
            proposer_for(self._validators, self._height, round_) == self._signer.address
        return self._apply(StartRound(round_, is_proposer)) + self._advance()

    def _perform(self, out: RoundOutput) -> list[Action]:
        if isinstance(out, CastVote):
            return self._cast_vote(out)
        if isinstance(out, StartTimer):
            return [ScheduleTimeout(out.timeout, self._params.duration(out.timeout.kind, out.timeout.round))]
        if isinstance(out, Propose):
            return self._propose(out)
        if isinstance(out, EnterRound):
            is_proposer = self._signer is not None and \
                proposer_for(self._validators, self._height, out.round) == self._signer.address
            return self._apply(StartRound(out.round, is_proposer))
        if isinstance(out, Decision):
            return self._decide(out)
        raise TypeError(f"unknown round-machine output {out!r}")

    def _propose(self, out: Propose) -> list[Action]:
        assert self._signer is not None
        proposal = self._replay_own_proposals.get(out.round) or self._held(Proposal, None, out.round)
        if proposal is None:
            value_id, pol_round = out.value_id, out.valid_round
            value = None if value_id is None else self._values.get(value_id)
            # a fresh value (or validValue restored from the signer without its bytes)
            if value_id is None or value is None:
                value = self._get_value(self._height, out.round)
                value_id, pol_round = self._value_id(value), -1
                self._values.setdefault(value_id, value)
            self._make_inputs_durable()
            try:
                proposal = self._signer.sign_proposal(self._height, out.round, pol_round, value_id, value)
            except DoubleSignError:
                # Already proposed something else here before a crash: stay silent and let the round time out.
                timeout = Timeout(TimeoutKind.PROPOSE, self._height, out.round)
                return [ScheduleTimeout(timeout, self._params.duration(TimeoutKind.PROPOSE, out.round))]
        if proposal.round not in self._proposals:
            self._store_proposal(proposal)
        return [BroadcastProposal(proposal)]

    def _cast_vote(self, out: CastVote) -> list[Action]:
        if self._signer is None:
            return []
        self._make_inputs_durable()
        try:
            vote = self._signer.sign_vote(out.vote_type, self._height, out.round, out.value_id,
                                          self._vote_time(out.value_id))
        except DoubleSignError:
            # Signed another vote here before a crash (the log had lost what led to it).  Never sign twice,
            # but count and send the vote already signed: peers may never have got it, and it is ours.
            vote = self._held(Vote, out.vote_type, out.round)
            if vote is None:
                return []
        self._store_vote(vote)
        return [BroadcastVote(vote)]

    def _vote_time(self, value_id: bytes | None) -> int:
        """This node's clock, but later than the time of the block voted for: the next block's time is the
        weighted median of the precommits for this one, so an honest precommit is dated after it."""
        time_ms = self._now_ms()
        value = None if value_id is None or self._value_time is None else self._values.get(value_id)
        if value_id is not None and value is not None and self._value_time is not None:
            try:
                time_ms = max(time_ms, self._value_time(value) + 1)
            except Exception as exc:  # noqa: BLE001  (injected callback: an undatable value is invalid; keep our clock)
                log.warning("value_time raised on block %s: %r", value_id.hex(), exc)
        return min(max(int(time_ms), 0), _U64_LIMIT - 1)

    def _decide(self, out: Decision) -> list[Action]:
        commit = self._build_commit(out.round, out.value_id)
        self._decided = Decide(self._height, out.round, self._values[out.value_id], out.value_id, commit)
        return [self._decided]

    # ------------------------------------------------------------------ durability

    def _log(self, entry: Proposal | Vote | Timeout) -> None:
        if self._wal is not None and not self._replaying:
            self._wal.append(entry)

    def _sync(self, actions: list[Action]) -> None:
        """Make the log durable before anything we return can leave the node."""
        if self._wal is not None and actions:
            self._wal.sync()

    def _make_inputs_durable(self) -> None:
        """Sync what the log holds before the signer signs: after a crash the replay then reaches the same
        proposal or vote, which the signer hands back, instead of a different one it must refuse."""
        if self._wal is not None and not self._replaying:
            self._wal.sync()

    def _held(self, kind: type, vote_type: VoteType | None, round_: int):
        """The proposal (``kind`` Proposal) or vote of ``vote_type`` the signer holds for ``round_`` of this
        height, or None."""
        if self._signer is None:
            return None
        for message in self._signer.signed_messages(self._height):
            if isinstance(message, kind) and message.round == round_ \
                    and (vote_type is None or (isinstance(message, Vote) and message.vote_type == vote_type)):
                return message
        return None

    def _resend_signed(self, sent: list[Action]) -> list[Action]:
        """On (re)starting a height: count and send again every proposal and vote the signer holds for it that
        ``sent`` does not already carry (signed, then the power went before the log had it)."""
        if self._signer is None:
            return []
        already = {a.proposal if isinstance(a, BroadcastProposal) else a.vote
                   for a in sent if isinstance(a, (BroadcastProposal, BroadcastVote))}
        out: list[Action] = []
        for message in self._signer.signed_messages(self._height):
            if message in already:
                continue
            if isinstance(message, Proposal):
                if message.round not in self._proposals:
                    self._store_proposal(message)
                out.append(BroadcastProposal(message))
            else:
                out += self._store_vote(message)
                out.append(BroadcastVote(message))
        return out + self._advance() if out else out

    def _restore_signer_lock(self) -> None:
        lock = None if self._signer is None else self._signer.last_locked
        if lock is not None and lock.height == self._height and self._state.step != Step.COMMIT:
            self._state = restore_lock(self._state, lock.round, lock.block_hash)

    def _replay(self, entries: list) -> list[Action]:
        """Rebuild this height's state from the log; return what must be redone now."""
        self._replaying = True
        self._replay_own_proposals = {e.round: e for e in entries
                                      if isinstance(e, Proposal) and e.proposer == self.address}
        fired: set[tuple[TimeoutKind, int]] = set()
        try:
            actions = self._enter_round(0)
            for entry in entries:
                if isinstance(entry, Timeout):
                    if entry.height == self._height:
                        fired.add((entry.kind, entry.round))
                        actions += self._handle_timeout(entry)
                elif is_well_formed_proposal(entry) or is_well_formed_vote(entry):
                    actions += self._dispatch(entry)
        finally:
            self._replaying = False
            self._replay_own_proposals = {}
        resumed: list[Action] = []
        for action in actions:
            if isinstance(action, (Decide, ReportEvidence)):
                resumed.append(action)
            elif isinstance(action, ScheduleTimeout):
                t = action.timeout
                if t.round == self._state.round and (t.kind, t.round) not in fired:
                    resumed.append(action)
        for message in self._own:
            resumed.append(BroadcastProposal(message) if isinstance(message, Proposal) else BroadcastVote(message))
        return resumed
