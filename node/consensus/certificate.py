"""Commit certificates: checking that more than 2/3 of the power precommitted a block.

Anyone who knows the validator set can check a certificate, so a wallet or a
syncing node need not trust the node that served the block.
"""

from __future__ import annotations

from collections.abc import Iterable

from node.consensus.messages import Vote, VoteType, vote_signature_valid
from node.crypto import ADDRESS_SIZE, SIGNATURE_SIZE
from node.errors import CodedError
from node.types.commit import Commit, CommitSig
from node.types.hashes import HASH_SIZE
from node.types.validators import ValidatorSet


class CertificateError(CodedError):
    """A commit certificate that does not prove its block; ``code`` is stable."""


def verify_commit(chain_id: str, validators: ValidatorSet, commit: Commit, block_hash: bytes, height: int) -> None:
    """Raise CertificateError unless ``commit`` holds valid PRECOMMITs for ``block_hash`` at ``height``
    (and the commit's round) from distinct members with more than 2/3 of the total power.

    Every signature must verify: a certificate with a bad one is rejected even if the rest would do.
    """
    if not isinstance(commit, Commit):
        raise CertificateError("malformed-commit", "not a commit certificate")
    if commit.height != height:
        raise CertificateError("wrong-height", f"certificate is for height {commit.height}, expected {height}")
    if not isinstance(block_hash, bytes) or len(block_hash) != HASH_SIZE or commit.block_hash != block_hash:
        raise CertificateError("wrong-block", "certificate is for a different block")
    if not isinstance(commit.round, int) or not 0 <= commit.round < 1 << 32:
        raise CertificateError("malformed-commit", "certificate round out of range")
    seen: set[bytes] = set()
    power = 0
    previous = b""
    for cs in commit.signatures:
        if not isinstance(cs, CommitSig) or not isinstance(cs.validator, bytes) or len(cs.validator) != ADDRESS_SIZE \
                or not isinstance(cs.signature, bytes) or len(cs.signature) != SIGNATURE_SIZE \
                or not isinstance(cs.time_ms, int) or isinstance(cs.time_ms, bool) or not 0 <= cs.time_ms < 1 << 64:
            raise CertificateError("malformed-commit", "malformed signature entry")
        if cs.validator in seen:
            raise CertificateError("duplicate-signer", f"validator {cs.validator.hex()} signs twice")
        if cs.validator < previous:
            raise CertificateError("unsorted-signatures", "signatures must be sorted by validator address")
        previous = cs.validator
        seen.add(cs.validator)
        member = validators.get(cs.validator)
        if member is None:
            raise CertificateError("unknown-validator", f"{cs.validator.hex()} is not in the validator set")
        if not vote_signature_valid(chain_id, member.public_key, VoteType.PRECOMMIT, height, commit.round, block_hash,
                                    cs.time_ms, cs.signature):
            raise CertificateError("bad-signature", f"precommit signature of {cs.validator.hex()} does not verify")
        power += member.power
    if power < validators.quorum_power:
        raise CertificateError("insufficient-power",
                               f"signers hold {power} of {validators.total_power} power; "
                               f"more than 2/3 ({validators.quorum_power}) is needed")


def build_commit(height: int, round_: int, block_hash: bytes, precommits: Iterable[Vote]) -> Commit:
    """The certificate made of the given precommits for (height, round, block_hash), one per
    validator, sorted by address.  Votes for anything else are left out."""
    by_validator: dict[bytes, CommitSig] = {}
    for vote in precommits:
        if vote.vote_type == VoteType.PRECOMMIT and vote.height == height and vote.round == round_ \
                and vote.block_hash == block_hash:
            by_validator.setdefault(vote.validator, CommitSig(vote.validator, vote.time_ms, vote.signature))
    sigs = tuple(by_validator[v] for v in sorted(by_validator))
    return Commit(height, round_, block_hash, sigs)


def commit_votes(commit: Commit) -> list[Vote]:
    """The precommits a certificate is made of, as votes (to replay them to a node that missed them)."""
    return [Vote(VoteType.PRECOMMIT, commit.height, commit.round, commit.block_hash, cs.time_ms, cs.validator,
                 cs.signature) for cs in commit.signatures]
