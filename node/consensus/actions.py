"""What the consensus driver asks its caller to do, and the error it raises when used wrongly.

The driver does no I/O: every entry point returns a list of these actions,
which the caller (the node's runtime, or the simulator) carries out in order:
send a proposal or vote to the peers, arm a timer, commit a decided block with
its certificate, report an equivocation.
"""

from __future__ import annotations

from dataclasses import dataclass

from node.consensus.messages import Proposal, Vote
from node.consensus.round_machine import Timeout
from node.consensus.vote_keeper import Evidence
from node.errors import CodedError
from node.types.commit import Commit


class ConsensusError(CodedError):
    """The driver was used wrongly; ``code`` is stable."""


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
