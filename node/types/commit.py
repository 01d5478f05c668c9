"""Commit certificates: precommits for one block from more than 2/3 of the voting power.

The record a decision leaves behind: a block carries the certificate of its
parent, and its header names the certificate's hash (``last_commit_hash``),
so these bytes are hashed into every header and stored with every block.
Each signature is a precommit's, over ``node.consensus.messages.vote_digest``;
checking them against a validator set is consensus's job
(``node.consensus.certificate.verify_commit``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from node.crypto import ADDRESS_SIZE, SIGNATURE_SIZE, sha256
from node.encoding import DecodeError, Reader, Writer
from node.types.hashes import HASH_SIZE, ZERO_HASH

MAX_COMMIT_SIGS = 10_000


@dataclass(frozen=True, slots=True)
class CommitSig:
    """One validator's precommit signature inside a commit certificate."""

    validator: bytes
    """20-byte validator address."""
    time_ms: int
    """u64: the precommit's time (its signer's clock), which the signature covers; the next block's
    time is the power-weighted median of these."""
    signature: bytes
    """64-byte signature over the precommit digest for the certificate's block at ``time_ms``."""


@dataclass(frozen=True)
class Commit:
    """A commit certificate: precommits for one block from more than 2/3 of the voting power."""

    height: int
    """u64."""
    round: int
    """u32: the round in which the block was decided."""
    block_hash: bytes
    """32-byte hash of the decided block."""
    signatures: tuple[CommitSig, ...]
    """Precommit signatures, sorted by validator address."""

    def encode(self) -> bytes:
        w = Writer().u64(self.height).u32(self.round).fixed(self.block_hash, HASH_SIZE).u32(len(self.signatures))
        for cs in self.signatures:
            w.fixed(cs.validator, ADDRESS_SIZE).u64(cs.time_ms).fixed(cs.signature, SIGNATURE_SIZE)
        return w.getvalue()

    @classmethod
    def read(cls, r: Reader) -> Commit:
        height, round_, block_hash = r.u64(), r.u32(), r.fixed(HASH_SIZE)
        sigs = tuple(CommitSig(r.fixed(ADDRESS_SIZE), r.u64(), r.fixed(SIGNATURE_SIZE))
                     for _ in range(r.count(MAX_COMMIT_SIGS)))
        validators = [s.validator for s in sigs]
        if validators != sorted(set(validators)):
            raise DecodeError("commit signatures must be sorted by validator with no duplicates")
        return cls(height, round_, block_hash, sigs)

    @classmethod
    def decode(cls, data: bytes) -> Commit:
        r = Reader(data)
        commit = cls.read(r)
        r.finish()
        return commit

    @cached_property
    def hash(self) -> bytes:
        return sha256(self.encode())


def commit_hash(commit: Commit | None) -> bytes:
    """What a header names as ``last_commit_hash``: the certificate's hash, ``ZERO_HASH`` for none."""
    return commit.hash if commit is not None else ZERO_HASH
