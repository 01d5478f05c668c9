"""Signed consensus messages: proposals and votes.

Every signature is over a digest of canonical bytes that name the record's
kind, the chain id, height and round, so a signature made for one purpose,
height, round or chain cannot be replayed as another.  The commit
certificate a decision leaves behind (precommit signatures over
``vote_digest``) is a shared record: ``node.types.commit``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from node.crypto import ADDRESS_SIZE, SIGNATURE_SIZE, sha256, sign_digest, verify_signature
from node.encoding import DecodeError, Reader, Writer
from node.types.hashes import HASH_SIZE

MAX_PROPOSAL_VALUE_BYTES = 64 * 1024 * 1024


class VoteType(IntEnum):
    PREVOTE = 1
    PRECOMMIT = 2


@dataclass(frozen=True, slots=True)
class Vote:
    """A prevote or precommit for a block hash, or for nil (``block_hash is None``)."""

    vote_type: VoteType
    """PREVOTE or PRECOMMIT."""
    height: int
    """u64."""
    round: int
    """u32."""
    block_hash: bytes | None
    """32-byte block hash, or None for nil."""
    time_ms: int
    """u64 Unix milliseconds on the signer's clock when it voted (BFT time: a block's time is the
    power-weighted median of the precommit times in the commit it carries).  The signature covers it."""
    validator: bytes
    """20-byte address of the signer."""
    signature: bytes
    """64-byte signature over ``vote_digest``."""

    def encode(self) -> bytes:
        w = Writer().u8(int(self.vote_type)).u64(self.height).u32(self.round)
        w.boolean(self.block_hash is not None)
        if self.block_hash is not None:
            w.fixed(self.block_hash, HASH_SIZE)
        w.u64(self.time_ms)
        return w.fixed(self.validator, ADDRESS_SIZE).fixed(self.signature, SIGNATURE_SIZE).getvalue()

    @classmethod
    def read(cls, r: Reader) -> Vote:
        raw_type = r.u8()
        try:
            vote_type = VoteType(raw_type)
        except ValueError as exc:
            raise DecodeError(f"unknown vote type {raw_type}") from exc
        height, round_ = r.u64(), r.u32()
        block_hash = r.fixed(HASH_SIZE) if r.boolean() else None
        time_ms = r.u64()
        return cls(vote_type, height, round_, block_hash, time_ms, r.fixed(ADDRESS_SIZE), r.fixed(SIGNATURE_SIZE))

    @classmethod
    def decode(cls, data: bytes) -> Vote:
        r = Reader(data)
        vote = cls.read(r)
        r.finish()
        return vote


def vote_digest(chain_id: str, vote_type: VoteType, height: int, round_: int, block_hash: bytes | None,
                time_ms: int) -> bytes:
    w = Writer().text("ledger/vote").text(chain_id).u8(int(vote_type)).u64(height).u32(round_)
    w.boolean(block_hash is not None)
    if block_hash is not None:
        w.fixed(block_hash, HASH_SIZE)
    return sha256(w.u64(time_ms).getvalue())


def sign_vote(chain_id: str, private_key: bytes, validator: bytes, vote_type: VoteType,
              height: int, round_: int, block_hash: bytes | None, time_ms: int) -> Vote:
    sig = sign_digest(private_key, vote_digest(chain_id, vote_type, height, round_, block_hash, time_ms))
    return Vote(vote_type, height, round_, block_hash, time_ms, validator, sig)


def vote_signature_valid(chain_id: str, public_key: bytes, vote_type: VoteType, height: int, round_: int,
                         block_hash: bytes | None, time_ms: int, signature: bytes) -> bool:
    """True when ``signature`` is ``public_key``'s over this vote (also a commit certificate's precommit)."""
    return verify_signature(public_key, vote_digest(chain_id, vote_type, height, round_, block_hash, time_ms),
                            signature)


def verify_vote(chain_id: str, public_key: bytes, vote: Vote) -> bool:
    """True when ``vote`` carries ``public_key``'s signature."""
    return vote_signature_valid(chain_id, public_key, vote.vote_type, vote.height, vote.round, vote.block_hash,
                                vote.time_ms, vote.signature)


@dataclass(frozen=True)
class Proposal:
    """The proposer's block for (height, round), with the round of its polka (-1 if none)."""

    height: int
    """u64."""
    round: int
    """u32."""
    pol_round: int
    """i32: the round in which ``value`` got a polka that this proposal relies on, or -1."""
    block_hash: bytes
    """32-byte id of ``value``; the signature covers it, not the value bytes."""
    value: bytes
    """The encoded block."""
    proposer: bytes
    """20-byte address of the signer."""
    signature: bytes
    """64-byte signature over ``proposal_digest``."""

    def encode(self) -> bytes:
        return (Writer().u64(self.height).u32(self.round).i32(self.pol_round).fixed(self.block_hash, HASH_SIZE)
                .var_bytes(self.value).fixed(self.proposer, ADDRESS_SIZE).fixed(self.signature, SIGNATURE_SIZE)
                .getvalue())

    @classmethod
    def decode(cls, data: bytes) -> Proposal:
        r = Reader(data)
        height, round_, pol_round = r.u64(), r.u32(), r.i32()
        if pol_round < -1:
            raise DecodeError("pol_round must be >= -1")
        block_hash = r.fixed(HASH_SIZE)
        value = r.var_bytes(MAX_PROPOSAL_VALUE_BYTES)
        proposal = cls(height, round_, pol_round, block_hash, value, r.fixed(ADDRESS_SIZE), r.fixed(SIGNATURE_SIZE))
        r.finish()
        return proposal


def proposal_digest(chain_id: str, height: int, round_: int, pol_round: int, block_hash: bytes) -> bytes:
    return sha256(Writer().text("ledger/proposal").text(chain_id).u64(height).u32(round_).i32(pol_round)
                  .fixed(block_hash, HASH_SIZE).getvalue())


def sign_proposal(chain_id: str, private_key: bytes, proposer: bytes, height: int, round_: int,
                  pol_round: int, block_hash: bytes, value: bytes) -> Proposal:
    sig = sign_digest(private_key, proposal_digest(chain_id, height, round_, pol_round, block_hash))
    return Proposal(height, round_, pol_round, block_hash, value, proposer, sig)


def verify_proposal(chain_id: str, public_key: bytes, proposal: Proposal) -> bool:
    """True when ``proposal`` carries ``public_key``'s signature (over its block id, not the value bytes)."""
    return verify_signature(public_key, proposal_digest(chain_id, proposal.height, proposal.round,
                                                        proposal.pol_round, proposal.block_hash),
                            proposal.signature)
