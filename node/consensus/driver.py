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
round it was in, re-sending its own messages and re-arming its timers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

from node.consensus.certificate import CertificateError, verify_commit
from node.consensus.messages import (
    HASH_SIZE,
    MAX_PROPOSAL_VALUE_BYTES,
    Commit,
    CommitSig,
    Proposal,
    Vote,
    VoteType,
    proposal_digest,
    vote_digest,
)
from node.consensus.proposer import proposer_for
from node.consensus.round_machine import (
    CastVote,
    Decision,
    EnterRound,
    PolkaAny,
    PolkaNil,
    PrecommitAny,
    Propose,
    ProposalReceived,
    ProposalWithCommitQuorum,
    ProposalWithPolka,
    ProposalWithPolkaCurrent,
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
from node.consensus.validators import ValidatorSet
from node.consensus.vote_keeper import Evidence, VoteKeeper
from node.consensus.wal import ConsensusWAL
from node.crypto import ADDRESS_SIZE, SIGNATURE_SIZE, verify_signature

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


class ConsensusError(Exception):
    """The driver was used wrongly; ``code`` is stable."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


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
                 get_value: Callable[[int, int], bytes], wal: ConsensusWAL | None = None):
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
        self._certified: dict[tuple[int, bytes], dict[bytes, bytes]] = {}
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
            sigs[vote.validator] = vote.signature
        return Commit(self._height, round_, value_id, tuple(CommitSig(v, sigs[v]) for v in sorted(sigs)))

    def proposal_for(self, block_hash: bytes) -> Proposal | None:
        """An accepted proposal of this height carrying ``block_hash``."""
        for p in self._proposals.values():
            if p.block_hash == block_hash:
                return p
        for (_, h), p in self._extra_proposals.items():
            if h == block_hash:
                return p
        return None

    def messages_for_peer(self, height: int, round_: int) -> list[Proposal | Vote]:
        """What a peer at (height, round) may be missing from us, for gossip: the round's proposal and
        the prevotes of its POL round (L28), every vote we counted in that round (L34-L47), and our own
        votes from that round on (L55 lets it catch up to our round)."""
        if height != self._height or not self._started:
            return []
        out: list[Proposal | Vote] = []
        proposal = self._proposals.get(round_)
        if proposal is not None:
            out.append(proposal)
            if proposal.pol_round >= 0:
                out.extend(self._keeper.votes_for(proposal.pol_round, VoteType.PREVOTE, proposal.block_hash))
        out.extend(self._keeper.votes(round_, VoteType.PREVOTE))
        out.extend(self._keeper.votes(round_, VoteType.PRECOMMIT))
        out.extend(m for m in self._own if isinstance(m, Vote) and m.round > round_)
        if self._state.round > round_:
            ahead = self._proposals.get(self._state.round)
            if ahead is not None:
                out.append(ahead)
        return out

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
        self._certified[(commit.round, value_id)] = {cs.validator: cs.signature for cs in commit.signatures}
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
        backed = p.block_hash in self._keeper.quorum_values()
        if first is not None and not backed:
            return []  # a conflicting proposal is only worth keeping if a quorum is behind its value
        if self._id_of(p.value) != p.block_hash:
            return []
        member = self._validators.get(p.proposer)
        assert member is not None
        digest = proposal_digest(self.chain_id, p.height, p.round, p.pol_round, p.block_hash)
        if not verify_signature(member.public_key, digest, p.signature):
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

    def _receive_vote(self, vote: Vote) -> list[Action]:
        if self._keeper.contains(vote):
            return []
        member = self._validators.get(vote.validator)
        if member is None:
            return []
        digest = vote_digest(self.chain_id, vote.vote_type, vote.height, vote.round, vote.block_hash)
        if not verify_signature(member.public_key, digest, vote.signature):
            return []
        if not self._admit_round(vote.validator, vote.round):
            return []
        actions = self._store_vote(vote)
        return actions + self._advance()

    def _store_vote(self, vote: Vote) -> list[Action]:
        # An equivocator's other vote counts for its value only if we hold a proposal for that value,
        # so junk votes cannot crowd out the one a relayed polka or commit needs (see vote_keeper).
        result = self._keeper.add_vote(vote, count_conflicting=vote.block_hash in self._values)
        if result.counted:
            if vote.validator == self.address:
                self._own.append(vote)
            self._log(vote)
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
        except Exception as exc:  # the callback decodes untrusted bytes; any failure means "not a block"
            log.debug("undecodable proposal value: %s", exc)
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
            except Exception as exc:
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
        proposal = self._replay_own_proposals.get(out.round)
        if proposal is None:
            value_id, pol_round = out.value_id, out.valid_round
            value = None if value_id is None else self._values.get(value_id)
            if value is None:  # a fresh value (or validValue restored from the signer without its bytes)
                value = self._get_value(self._height, out.round)
                value_id, pol_round = self._value_id(value), -1
                self._values.setdefault(value_id, value)
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
        try:
            vote = self._signer.sign_vote(out.vote_type, self._height, out.round, out.value_id)
        except DoubleSignError:
            return []  # signed something else here before a crash; never sign twice
        self._store_vote(vote)
        return [BroadcastVote(vote)]

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
