"""The Tendermint round state machine (Buchman, Kwon, Milosevic 2018, Algorithm 1).

``apply_input(state, input) -> (state, output)`` is a pure function with one
branch per upon-rule, tagged with the paper's line number.  It knows nothing
of signatures, vote counting or the network: the driver decides that an
input's precondition holds ("2f+1 prevotes for id(v)", "this proposal comes
from the round's proposer", "v is valid") and the machine applies the rule's
guard on its own state (step, round, lock) and effect.  An input whose guard
does not hold returns the state unchanged and no output, so the driver may
offer inputs freely.

Values are named by their id (the block hash); the driver keeps the bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import IntEnum

from node.consensus.messages import VoteType


class Step(IntEnum):
    UNSTARTED = 0
    PROPOSE = 1
    PREVOTE = 2
    PRECOMMIT = 3
    COMMIT = 4
    """Decided; nothing more happens at this height."""


class TimeoutKind(IntEnum):
    PROPOSE = 1
    PREVOTE = 2
    PRECOMMIT = 3


@dataclass(frozen=True)
class Timeout:
    """A timer for one step of one round."""

    kind: TimeoutKind
    """Which step's timer."""
    height: int
    """Height it was scheduled at."""
    round: int
    """Round it was scheduled at."""


@dataclass(frozen=True)
class TimeoutParams:
    """Timeout durations; the one for round r is ``init + r * delta_ms`` so rounds eventually outlast delays."""

    propose_ms: int = 3000
    """initTimeoutPropose."""
    prevote_ms: int = 1000
    """initTimeoutPrevote."""
    precommit_ms: int = 1000
    """initTimeoutPrecommit."""
    delta_ms: int = 500
    """timeoutDelta: added per round to each of the three."""

    def duration(self, kind: TimeoutKind, round_: int) -> int:
        base = {TimeoutKind.PROPOSE: self.propose_ms, TimeoutKind.PREVOTE: self.prevote_ms,
                TimeoutKind.PRECOMMIT: self.precommit_ms}[kind]
        return base + round_ * self.delta_ms


@dataclass(frozen=True)
class RoundState:
    """Algorithm 1's per-height variables plus the "for the first time" flags of the current round."""

    height: int
    """h."""
    round: int = 0
    """round_p."""
    step: Step = Step.UNSTARTED
    """step_p."""
    locked_value: bytes | None = None
    """lockedValue_p (by id)."""
    locked_round: int = -1
    """lockedRound_p."""
    valid_value: bytes | None = None
    """validValue_p (by id)."""
    valid_round: int = -1
    """validRound_p."""
    decision: bytes | None = None
    """decision_p[h] (by id)."""
    decision_round: int = -1
    """Round whose precommits decided ``decision``."""
    prevote_timer_started: bool = False
    """L34 has fired in this round."""
    precommit_timer_started: bool = False
    """L47 has fired in this round."""
    polka_value_seen: bool = False
    """L36 has fired in this round."""


# ---------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class StartRound:
    """Enter ``round`` (L11), told whether this node proposes in it."""

    round: int
    """The round to start."""
    is_proposer: bool
    """proposer(h, round) = p."""


@dataclass(frozen=True)
class ProposalReceived:
    """PROPOSAL(h, round, v, -1) from the proposer of the current round (L22)."""

    value_id: bytes
    """id(v)."""
    valid: bool
    """valid(v)."""


@dataclass(frozen=True)
class ProposalWithPolka:
    """PROPOSAL(h, round, v, vr) and 2f+1 PREVOTE(h, vr, id(v)), 0 <= vr (L28)."""

    value_id: bytes
    """id(v)."""
    valid_round: int
    """vr."""
    valid: bool
    """valid(v)."""


@dataclass(frozen=True)
class PolkaAny:
    """2f+1 PREVOTE(h, round, *) in the current round (L34)."""


@dataclass(frozen=True)
class ProposalWithPolkaCurrent:
    """PROPOSAL(h, round, v, *) and 2f+1 PREVOTE(h, round, id(v)), v valid (L36)."""

    value_id: bytes
    """id(v)."""


@dataclass(frozen=True)
class PolkaNil:
    """2f+1 PREVOTE(h, round, nil) in the current round (L44)."""


@dataclass(frozen=True)
class PrecommitAny:
    """2f+1 PRECOMMIT(h, round, *) in the current round (L47)."""


@dataclass(frozen=True)
class ProposalWithCommitQuorum:
    """PROPOSAL(h, r, v, *) and 2f+1 PRECOMMIT(h, r, id(v)) for any round r, v valid (L49)."""

    round: int
    """r."""
    value_id: bytes
    """id(v)."""


@dataclass(frozen=True)
class SkipRound:
    """f+1 of the power sent messages for ``round`` (L55)."""

    round: int
    """r'."""


@dataclass(frozen=True)
class TimeoutElapsed:
    """A scheduled timeout fired (L57, L61, L65)."""

    timeout: Timeout
    """The timer that fired."""


RoundInput = (StartRound | ProposalReceived | ProposalWithPolka | PolkaAny | ProposalWithPolkaCurrent | PolkaNil
              | PrecommitAny | ProposalWithCommitQuorum | SkipRound | TimeoutElapsed)

# ---------------------------------------------------------------------------- outputs


@dataclass(frozen=True)
class Propose:
    """Broadcast PROPOSAL(h, round, v, valid_round); ``value_id`` None means "use getValue()"."""

    round: int
    """The round proposed for."""
    value_id: bytes | None
    """validValue, or None for a fresh value."""
    valid_round: int
    """validRound (-1 with a fresh value)."""


@dataclass(frozen=True)
class CastVote:
    """Broadcast PREVOTE or PRECOMMIT(h, round, value_id)."""

    vote_type: VoteType
    """PREVOTE or PRECOMMIT."""
    round: int
    """The current round."""
    value_id: bytes | None
    """id(v), or None for nil."""


@dataclass(frozen=True)
class StartTimer:
    """Schedule OnTimeoutX(h, round)."""

    timeout: Timeout
    """The timer to schedule."""


@dataclass(frozen=True)
class EnterRound:
    """Call StartRound(round) (the driver supplies whether this node proposes in it)."""

    round: int
    """The round to enter."""


@dataclass(frozen=True)
class Decision:
    """decision[h] <- v: commit ``value_id`` with the precommits of ``round``."""

    round: int
    """The round whose precommits decided."""
    value_id: bytes
    """id(v)."""


RoundOutput = Propose | CastVote | StartTimer | EnterRound | Decision

# ---------------------------------------------------------------------------- the machine


def _new_round(state: RoundState, round_: int) -> RoundState:
    return replace(state, round=round_, step=Step.PROPOSE, prevote_timer_started=False,
                   precommit_timer_started=False, polka_value_seen=False)


def _timer(state: RoundState, kind: TimeoutKind) -> StartTimer:
    return StartTimer(Timeout(kind, state.height, state.round))


def apply_input(state: RoundState, inp: RoundInput) -> tuple[RoundState, RoundOutput | None]:
    """One transition of Algorithm 1.  Pure: same (state, input), same result."""
    if state.step == Step.COMMIT:
        return state, None
    match inp:
        case StartRound(round=r, is_proposer=is_proposer):
            # L11: StartRound(r); only forward in rounds.
            if state.step != Step.UNSTARTED and r <= state.round:
                return state, None
            state = _new_round(state, r)
            if is_proposer:
                if state.valid_value is not None:
                    return state, Propose(r, state.valid_value, state.valid_round)
                return state, Propose(r, None, -1)
            return state, _timer(state, TimeoutKind.PROPOSE)

        case ProposalReceived(value_id=v, valid=valid):
            # L22: PROPOSAL(h, round, v, -1) while step = propose.
            if state.step != Step.PROPOSE:
                return state, None
            accept = valid and (state.locked_round == -1 or state.locked_value == v)
            return replace(state, step=Step.PREVOTE), CastVote(VoteType.PREVOTE, state.round, v if accept else None)

        case ProposalWithPolka(value_id=v, valid_round=vr, valid=valid):
            # L28: PROPOSAL(h, round, v, vr) and 2f+1 PREVOTE(h, vr, id(v)), 0 <= vr < round, step = propose.
            if state.step != Step.PROPOSE or not 0 <= vr < state.round:
                return state, None
            accept = valid and (state.locked_round <= vr or state.locked_value == v)
            return replace(state, step=Step.PREVOTE), CastVote(VoteType.PREVOTE, state.round, v if accept else None)

        case PolkaAny():
            # L34: 2f+1 PREVOTE(h, round, *) while step = prevote, for the first time.
            if state.step != Step.PREVOTE or state.prevote_timer_started:
                return state, None
            return replace(state, prevote_timer_started=True), _timer(state, TimeoutKind.PREVOTE)

        case ProposalWithPolkaCurrent(value_id=v):
            # L36: PROPOSAL(h, round, v, *) and 2f+1 PREVOTE(h, round, id(v)), valid(v), step >= prevote,
            # for the first time.
            if state.step < Step.PREVOTE or state.polka_value_seen:
                return state, None
            if state.step == Step.PREVOTE:
                state = replace(state, locked_value=v, locked_round=state.round, step=Step.PRECOMMIT,
                                valid_value=v, valid_round=state.round, polka_value_seen=True)
                return state, CastVote(VoteType.PRECOMMIT, state.round, v)
            return replace(state, valid_value=v, valid_round=state.round, polka_value_seen=True), None

        case PolkaNil():
            # L44: 2f+1 PREVOTE(h, round, nil) while step = prevote.
            if state.step != Step.PREVOTE:
                return state, None
            return replace(state, step=Step.PRECOMMIT), CastVote(VoteType.PRECOMMIT, state.round, None)

        case PrecommitAny():
            # L47: 2f+1 PRECOMMIT(h, round, *) for the first time.
            if state.step == Step.UNSTARTED or state.precommit_timer_started:
                return state, None
            return replace(state, precommit_timer_started=True), _timer(state, TimeoutKind.PRECOMMIT)

        case ProposalWithCommitQuorum(round=r, value_id=v):
            # L49: PROPOSAL(h, r, v, *) and 2f+1 PRECOMMIT(h, r, id(v)) while decision[h] = nil, valid(v).
            # The driver then starts the next height (h <- h+1, reset, StartRound(0)).
            return replace(state, step=Step.COMMIT, decision=v, decision_round=r), Decision(r, v)

        case SkipRound(round=r):
            # L55: f+1 messages <*, h, r', *> with r' > round.
            if state.step == Step.UNSTARTED or r <= state.round:
                return state, None
            return state, EnterRound(r)

        case TimeoutElapsed(timeout=t):
            if t.height != state.height or t.round != state.round:
                return state, None
            if t.kind == TimeoutKind.PROPOSE:
                # L57: OnTimeoutPropose(h, round) while step = propose.
                if state.step != Step.PROPOSE:
                    return state, None
                return replace(state, step=Step.PREVOTE), CastVote(VoteType.PREVOTE, state.round, None)
            if t.kind == TimeoutKind.PREVOTE:
                # L61: OnTimeoutPrevote(h, round) while step = prevote.
                if state.step != Step.PREVOTE:
                    return state, None
                return replace(state, step=Step.PRECOMMIT), CastVote(VoteType.PRECOMMIT, state.round, None)
            # L65: OnTimeoutPrecommit(h, round).
            if state.step == Step.UNSTARTED:
                return state, None
            return state, EnterRound(state.round + 1)

    raise TypeError(f"not a round-machine input: {inp!r}")


def restore_lock(state: RoundState, locked_round: int, value_id: bytes) -> RoundState:
    """Re-establish a lock known from the signer's records after a restart (never lowers one)."""
    if locked_round <= state.locked_round:
        return state
    state = replace(state, locked_value=value_id, locked_round=locked_round)
    if locked_round > state.valid_round:
        state = replace(state, valid_value=value_id, valid_round=locked_round)
    return state
