"""BFT time: a block's time comes from the validators' clocks, not from its proposer's.

Every vote carries its signer's clock (``Vote.time_ms``, covered by the
signature) and a commit certificate keeps each precommit's time.  The time of
block ``h`` is the power-weighted median of the precommit times in the
certificate of block ``h - 1`` that block ``h`` carries (CometBFT's
``MedianTime``); the first block, which carries no certificate, is dated
``genesis_time_ms + 1``.  Every node computes the same value from the block's
own bytes, so a proposal dated otherwise is invalid.

Why fewer than a third of the power cannot move it: a certificate holds more
than 2/3 of the total power, so validators with less than 1/3 of the total
hold less than half of the certificate's power.  The median (the earliest time
at which the signers' cumulative power reaches half of the certificate's) can
then lie neither below the earliest nor above the latest honest time in it.
An honest precommit for a block is dated after that block's time, so the next
block's time is later than this one's.
"""

from __future__ import annotations

from node.consensus.certificate import CertificateError
from node.types.commit import Commit
from node.types.validators import ValidatorSet

FIRST_BLOCK_TIME_AFTER_GENESIS_MS = 1
"""Block 1 carries no certificate: it is dated ``genesis_time_ms`` plus this."""


def weighted_median_time(commit: Commit, validators: ValidatorSet) -> int:
    """The power-weighted (lower) median of the precommit times in ``commit``.

    Weights are the signers' voting power in ``validators``; the result is the earliest signed time
    ``t`` such that the signers at or before ``t`` hold at least half of the signers' power.  Raises
    CertificateError for a certificate with no signer or a signer outside the set (``verify_commit``
    refuses both first).
    """
    weighted: list[tuple[int, int]] = []
    for cs in commit.signatures:
        member = validators.get(cs.validator)
        if member is None:
            raise CertificateError("unknown-validator", f"{cs.validator.hex()} is not in the validator set")
        weighted.append((cs.time_ms, member.power))
    total = sum(power for _, power in weighted)
    if total <= 0:
        raise CertificateError("insufficient-power", "a certificate without signers has no time")
    weighted.sort()
    reached = 0
    for time_ms, power in weighted:
        reached += power
        if 2 * reached >= total:
            return time_ms
    raise AssertionError("unreachable: the cumulative power reaches the total")


def block_time(height: int, last_commit: Commit | None, validators: ValidatorSet, genesis_time_ms: int) -> int:
    """The only time block ``height`` may carry: ``genesis_time_ms + 1`` for the first block, else the
    weighted median of the precommit times in ``last_commit`` (the certificate of its parent it carries)."""
    if height == 1:
        return genesis_time_ms + FIRST_BLOCK_TIME_AFTER_GENESIS_MS
    if last_commit is None:
        raise CertificateError("malformed-commit", f"block {height} needs its parent's certificate for its time")
    return weighted_median_time(last_commit, validators)
