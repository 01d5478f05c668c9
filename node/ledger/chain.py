"""Chain rules: what a block must say about the chain it extends.

The transition function (``rules.execute_block``) checks a block against the
UTXO set.  These rules check it against the chain: it is at the next height
and builds on the tip, names the validator set that decides it, was proposed
by a member of that set, carries the certificate of its parent (none for the
first block), and carries BFT time, after its parent's.  Pure: the caller
passes the tip, the validator set and the two consensus computations needed.

Those two are consensus rules, so they come in as parameters rather than
imports (the ledger imports nothing from ``node.consensus``; see
tests/test_import_rules.py): which precommit signatures make a valid
certificate (``node.consensus.certificate.verify_commit``) and how the
validators' clocks date a block (``node.consensus.bft_time.block_time``).
The records they work on, ``Block``, ``Commit`` and the validator set, are
the shared ``node.types``.  ``node.application`` binds both for the node.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from node.ledger.errors import BLK_COMMIT, BLK_HEIGHT, BLK_PREVHASH, BLK_PROPOSER, BLK_TIME, BLK_VALIDATORS, BlockError
from node.types.block import Block
from node.types.commit import Commit
from node.types.hashes import ZERO_HASH

CertificateCheck = Callable[[Commit, bytes, int], str | None]
"""``(commit, block_hash, height) -> None`` when ``commit`` certifies ``block_hash`` at ``height``, else why not."""
BlockTimeRule = Callable[[int, Commit | None], int]
"""``(height, last_commit) -> time_ms``: the only time block ``height`` may carry."""


@dataclass(frozen=True)
class ChainTip:
    """The last committed block, which the next block must extend (genesis at height 0)."""

    height: int
    """Height of the last block (0: none yet)."""
    block_hash: bytes
    """Its hash (``ZERO_HASH`` at height 0)."""
    time_ms: int
    """Its time (the genesis time at height 0): the next block's time must be later."""


class ValidatorsView(Protocol):
    """What the chain rules need of the validator set that decides the block (a ``ValidatorSet`` is one)."""

    @property
    def hash(self) -> bytes:
        """The hash a header names in ``validators_hash``."""

    def get(self, address: bytes) -> object | None:
        """The member with this address, None for a non-member."""


def check_chain_fields(block: Block, tip: ChainTip, validators: ValidatorsView, *,
                       verify_commit: CertificateCheck, block_time: BlockTimeRule) -> None:
    """Raise BlockError unless ``block`` is a valid next block on ``tip`` for ``validators``.

    ``verify_commit(commit, block_hash, height)`` returns None when ``commit`` certifies ``block_hash`` at
    ``height`` for ``validators``, else why not; ``block_time(height, last_commit)`` is the time block
    ``height`` must carry (BFT time, from the parent certificate it carries).  Codes: ``bad-blk-height``,
    ``bad-blk-prevhash``, ``bad-blk-validators``, ``bad-blk-proposer``, ``bad-blk-commit``, ``bad-blk-time``.
    """
    header = block.header
    height = tip.height + 1
    if header.height != height:
        raise BlockError(BLK_HEIGHT, f"block height {header.height}, expected {height}")
    if header.prev_hash != tip.block_hash:
        raise BlockError(BLK_PREVHASH, "block does not build on this node's last block")
    if header.validators_hash != validators.hash:
        raise BlockError(BLK_VALIDATORS, "validators hash does not match the validator set")
    if validators.get(header.proposer) is None:
        raise BlockError(BLK_PROPOSER, "proposer is not a validator")
    if height == 1:
        if block.last_commit is not None or header.last_commit_hash != ZERO_HASH:
            raise BlockError(BLK_COMMIT, "the first block carries no last commit")
    else:
        if block.last_commit is None:
            raise BlockError(BLK_COMMIT, "block carries no certificate for its parent")
        if header.last_commit_hash != block.last_commit.hash:
            raise BlockError(BLK_COMMIT, "last_commit_hash does not match the carried certificate")
        problem = verify_commit(block.last_commit, header.prev_hash, height - 1)
        if problem is not None:
            raise BlockError(BLK_COMMIT, f"parent certificate: {problem}")
    expected = block_time(height, block.last_commit)
    if header.time_ms != expected:
        raise BlockError(BLK_TIME, f"block time {header.time_ms} is not {expected}, the " + (
            "genesis time + 1" if height == 1 else "weighted median of the precommit times in its last commit"))
    if header.time_ms <= tip.time_ms:
        raise BlockError(BLK_TIME, f"block time {header.time_ms} is not after {tip.time_ms}")
