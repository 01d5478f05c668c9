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
The driver syncs the log before each signature and at no other step (the log
itself also syncs when a height that synced nothing ends, and when it is
opened: ``node.consensus.wal``).
What leaves the node is signed, so it was durable in the signer's log before
it was returned; a message received from a peer and lost in a crash is sent
again by the peers (round-status exchange) or fetched with the block; a lost
timeout fires again after the restart.

Votes carry this node's clock (``now_ms``, injected: the driver reads no
clock of its own).  A precommit for a block is dated after that block's time
(``value_time``), so the next block, whose time is the weighted median of
these precommits (``node.consensus.bft_time``), is later than this one.

The driver is layered: ``node.consensus.height_state`` holds one height's
state, its views and the write-ahead log; ``node.consensus.intake`` is the
door that decides which messages are kept; this module joins what they hold
into round-machine inputs and the machine's outputs into actions
(``node.consensus.actions``), and restarts a height from the log.
"""

from __future__ import annotations

import logging

from node.consensus.actions import (
    Action,
    BroadcastProposal,
    BroadcastVote,
    ConsensusError,
    Decide,
    ReportEvidence,
    ScheduleTimeout,
)
from node.consensus.certificate import CertificateError, verify_commit
from node.consensus.intake import MAX_ROUNDS_AHEAD, MessageIntake
from node.consensus.messages import Proposal, Vote
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
)
from node.consensus.shapes import U64_LIMIT, is_uint, is_well_formed_proposal, is_well_formed_vote
from node.consensus.signer import DoubleSignError
from node.types.commit import Commit
from node.types.validators import ValidatorSet

__all__ = [
    "Action", "BroadcastProposal", "BroadcastVote", "ConsensusDriver", "ConsensusError", "Decide",
    "ReportEvidence", "ScheduleTimeout", "Step", "Timeout", "TimeoutKind", "TimeoutParams",
]

log = logging.getLogger("ledger.consensus")


class ConsensusDriver(MessageIntake):
    """Tendermint consensus for one node, one height at a time, sans I/O.

    Built with ``HeightState``'s keyword arguments: the chain id, the validator set, the signer (None for a
    non-validator), the timeout parameters, the ledger's callbacks and the clock, and the write-ahead log.
    """

    # ------------------------------------------------------------------ entry points

    def start_height(self, height: int, validators: ValidatorSet | None = None) -> list[Action]:
        """Begin ``height`` at round 0 (or resume it from the write-ahead log) and replay buffered messages."""
        if not is_uint(height, U64_LIMIT) or height < 1:
            raise ConsensusError("bad-height", "heights start at 1")
        if self._started and height <= self._height:
            raise ConsensusError("height-regression", f"at height {self._height}, cannot start {height}")
        buffered: list[Proposal | Vote] = []
        if height == self._height + 1:
            for messages in self._future.values():
                buffered.extend(messages)
        self._future = {}
        if validators is None and self._validators_of is not None:
            validators = self._validators_of(height)
        if validators is not None:
            self._use_validators(validators)
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
        return actions

    def on_proposal(self, proposal: Proposal) -> list[Action]:
        """A proposal from the network."""
        if not is_well_formed_proposal(proposal):
            return []
        return self._dispatch(proposal)

    def on_vote(self, vote: Vote) -> list[Action]:
        """A prevote or precommit from the network."""
        if not is_well_formed_vote(vote):
            return []
        return self._dispatch(vote)

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
        return self._apply(ProposalWithCommitQuorum(commit.round, value_id))

    def on_timeout(self, timeout: Timeout) -> list[Action]:
        """A timeout scheduled by a ``ScheduleTimeout`` action has elapsed."""
        if not isinstance(timeout, Timeout) or timeout.height != self._height or not self._started:
            return []
        return self._handle_timeout(timeout)

    def _dispatch(self, message: Proposal | Vote) -> list[Action]:
        """A well-formed message: through the door, then the rules if it was kept."""
        if message.height != self._height or not self._started:
            if message.height == self._height + 1:
                self._buffer(message)
            return []
        if message.round > self._state.round + MAX_ROUNDS_AHEAD:
            return []
        if isinstance(message, Proposal):
            return self._advance() if self._accept_proposal(message) else []
        kept = self._accept_vote(message)
        return [] if kept is None else kept + self._advance()

    def _handle_timeout(self, timeout: Timeout) -> list[Action]:
        self._log(timeout)
        return self._apply(TimeoutElapsed(timeout)) + self._advance()

    # ------------------------------------------------------------------ the rules

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
        return min(max(int(time_ms), 0), U64_LIMIT - 1)

    def _decide(self, out: Decision) -> list[Action]:
        commit = self._build_commit(out.round, out.value_id)
        self._decided = Decide(self._height, out.round, self._values[out.value_id], out.value_id, commit)
        return [self._decided]

    # ------------------------------------------------------------------ restart

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
