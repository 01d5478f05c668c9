"""Shape checks at the consensus door: is this object a proposal or vote with fields of the right types and sizes?

The driver runs them on every message from the network (and every entry the
write-ahead log replays) before anything else looks at it, so the membership,
signature and height checks behind them, and the rules after those, only ever
see integers in range and byte strings of the expected length.
"""

from __future__ import annotations

from node.consensus.messages import MAX_PROPOSAL_VALUE_BYTES, Proposal, Vote, VoteType
from node.crypto import ADDRESS_SIZE, SIGNATURE_SIZE
from node.types.hashes import HASH_SIZE

U32_LIMIT = 1 << 32
U64_LIMIT = 1 << 64


def is_uint(value: object, limit: int) -> bool:
    """A non-negative ``int`` (not a ``bool``) below ``limit``."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < limit


def _is_bytes(value: object, size: int) -> bool:
    return isinstance(value, bytes) and len(value) == size


def is_well_formed_vote(vote: object) -> bool:
    return (isinstance(vote, Vote) and isinstance(vote.vote_type, VoteType) and is_uint(vote.height, U64_LIMIT)
            and is_uint(vote.round, U32_LIMIT) and (vote.block_hash is None or _is_bytes(vote.block_hash, HASH_SIZE))
            and is_uint(vote.time_ms, U64_LIMIT)
            and _is_bytes(vote.validator, ADDRESS_SIZE) and _is_bytes(vote.signature, SIGNATURE_SIZE))


def is_well_formed_proposal(proposal: object) -> bool:
    return (isinstance(proposal, Proposal) and is_uint(proposal.height, U64_LIMIT)
            and is_uint(proposal.round, U32_LIMIT)
            and isinstance(proposal.pol_round, int) and not isinstance(proposal.pol_round, bool)
            and -1 <= proposal.pol_round < proposal.round and _is_bytes(proposal.block_hash, HASH_SIZE)
            and isinstance(proposal.value, bytes) and len(proposal.value) <= MAX_PROPOSAL_VALUE_BYTES
            and _is_bytes(proposal.proposer, ADDRESS_SIZE) and _is_bytes(proposal.signature, SIGNATURE_SIZE))
