"""Verified confirmations: a transaction is final when the wallet can prove it,
not when a node says so.

Given what a node answered for ``GET /v1/txs/{txid}`` and
``GET /v1/blocks/{height}``, the wallet checks, against the validator set of
that height, which it proved from the genesis it pinned (``wallet.trust``,
``wallet.validator_walk``):

1. the header (``header_hex``) decodes, names the pinned chain and the height
   the node claimed, and its validator-set hash is the pinned set's;
2. the header's hash is the block hash the node claimed and the hash the
   commit certificate signs;
3. the certificate holds valid precommit signatures from more than 2/3 of the
   pinned voting power (``node.consensus.certificate.verify_commit``);
4. the transaction bytes the node served (``tx.hex``) decode to a
   transaction whose txid is the one asked about;
5. the merkle proof leads from the SHA-256 of exactly those bytes (the
   wtxid, which covers the signatures too) to the header's ``tx_root``.

Any failure raises ``VerificationError`` with a stable code: the node lied (or
served something broken), and the wallet says so instead of believing it.
"""

from __future__ import annotations

from dataclasses import dataclass

from node.consensus.certificate import CertificateError, verify_commit
from node.crypto import sha256
from node.encoding import DecodeError
from node.errors import CodedError
from node.types.block import Header
from node.types.commit import Commit
from node.types.merkle import MerkleProof, verify_merkle_proof
from node.types.transaction import Transaction
from node.types.validators import ValidatorSet


class VerificationError(CodedError):
    """What a node served does not prove what it claims; ``code`` is stable."""


@dataclass(frozen=True)
class VerifiedBlock:
    """A header proven final by a commit certificate."""

    header: Header
    """The decoded header."""
    block_hash: bytes
    """Its hash, which the certificate signs."""
    signed_power: int
    """Voting power of the validators whose precommits are in the certificate."""
    total_power: int
    """Voting power of the whole pinned set."""
    signers: int
    """How many validators signed."""
    validators: int
    """How many validators there are."""

    def summary(self) -> str:
        return (f"verified by {self.signed_power} of {self.total_power} validators' voting power "
                f"({self.signers} of {self.validators} validators signed block {self.header.height})")


@dataclass(frozen=True)
class VerifiedTx:
    """A transaction proven to be in a final block."""

    txid: bytes
    """The transaction's id."""
    index: int
    """Its position in the block."""
    block: VerifiedBlock
    """The block, with its certificate checked."""
    tx: Transaction
    """The transaction itself: its bytes decode to the txid and are the proven leaf."""

    def summary(self) -> str:
        return self.block.summary()


def _hex(value: object, what: str, size: int | None = None) -> bytes:
    if not isinstance(value, str):
        raise VerificationError("malformed-answer", f"{what} is not hex")
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise VerificationError("malformed-answer", f"{what} is not hex") from None
    if size is not None and len(raw) != size:
        raise VerificationError("malformed-answer", f"{what} must be {size} bytes")
    return raw


def verify_block(chain_id: str, validators: ValidatorSet, height: int, block_answer: dict,
                 claimed_hash: bytes | None = None) -> VerifiedBlock:
    """Check a ``GET /v1/blocks/{height}`` answer; return the header it proves final."""
    if not isinstance(block_answer, dict):
        raise VerificationError("malformed-answer", "the block answer is not a JSON object")
    try:
        header = Header.decode(_hex(block_answer.get("header_hex"), "header_hex"))
    except DecodeError as exc:
        raise VerificationError("malformed-block", f"the block header does not decode: {exc}") from None
    if header.chain_id != chain_id:
        raise VerificationError("wrong-chain", f"the block belongs to chain {header.chain_id!r}, not {chain_id!r}")
    if header.height != height:
        raise VerificationError("forged-block", f"asked for block {height}, got a header for height {header.height}")
    block_hash = header.hash
    if claimed_hash is not None and block_hash != claimed_hash:
        raise VerificationError("forged-block", f"the node says the transaction is in block {claimed_hash.hex()}, "
                                                f"but the header it served hashes to {block_hash.hex()}")
    served_hash = block_answer.get("hash")
    if served_hash is not None and served_hash != block_hash.hex():
        raise VerificationError("forged-block", f"the block's stated hash {served_hash} is not the hash of its "
                                                f"header {block_hash.hex()}")
    if header.validators_hash != validators.hash:
        raise VerificationError("unknown-validators", f"block {height} names a validator set other than the one "
                                                      f"this wallet proved for its height (from the pinned genesis)")
    commit_obj = block_answer.get("commit")
    if not isinstance(commit_obj, dict):
        raise VerificationError("no-certificate", f"the node served block {height} without a commit certificate")
    try:
        commit = Commit.decode(_hex(commit_obj.get("hex"), "commit.hex"))
    except DecodeError as exc:
        raise VerificationError("malformed-certificate", f"the commit certificate does not decode: {exc}") from None
    try:
        verify_commit(chain_id, validators, commit, block_hash, height)
    except CertificateError as exc:
        raise VerificationError("bad-certificate", f"the commit certificate of block {height} is not valid "
                                                   f"({exc.code}): {exc.message}") from None
    # verify_commit refused any signer outside the set: every one is found
    signed = sum(v.power for cs in commit.signatures if (v := validators.get(cs.validator)) is not None)
    return VerifiedBlock(header, block_hash, signed, validators.total_power, len(commit.signatures), len(validators))


def verify_tx_inclusion(chain_id: str, validators: ValidatorSet, txid: bytes, tx_answer: dict,
                        block_answer: dict) -> VerifiedTx:
    """Check a committed ``GET /v1/txs/{txid}`` answer and the block it points to."""
    if not isinstance(tx_answer, dict) or tx_answer.get("status") != "committed":
        raise VerificationError("not-committed", "the node does not report the transaction as committed")
    if tx_answer.get("txid") != txid.hex():
        raise VerificationError("forged-transaction", f"asked about {txid.hex()}, the node answered about "
                                                      f"{tx_answer.get('txid')}")
    height, index = tx_answer.get("height"), tx_answer.get("index")
    if not isinstance(height, int) or not isinstance(index, int) or height < 1 or index < 0:
        raise VerificationError("malformed-answer", "the answer lacks a valid height and index")
    claimed = _hex(tx_answer.get("block_hash"), "block_hash", 32)
    block = verify_block(chain_id, validators, height, block_answer, claimed)
    served = tx_answer.get("tx")
    if not isinstance(served, dict) or served.get("hex") is None:
        raise VerificationError("malformed-answer", "the answer lacks the transaction bytes (tx.hex) its proof is "
                                                    "about")
    raw = _hex(served["hex"], "tx.hex")
    try:
        tx = Transaction.decode(raw)
    except DecodeError as exc:
        raise VerificationError("forged-transaction", f"the transaction bytes do not decode: {exc}") from None
    if tx.txid != txid:
        raise VerificationError("forged-transaction", f"the transaction bytes the node served are of transaction "
                                                      f"{tx.txid.hex()}, not {txid.hex()}")
    try:
        proof = MerkleProof.from_json(tx_answer["proof"])
    except (KeyError, TypeError, ValueError) as exc:
        raise VerificationError("malformed-proof", f"the merkle proof is malformed: {exc}") from None
    wtxid = sha256(raw)
    if proof.index != index or not verify_merkle_proof(wtxid, proof, block.header.tx_root):
        raise VerificationError("bad-proof", f"the merkle proof does not lead from the served bytes of {txid.hex()} "
                                             f"(wtxid {wtxid.hex()}) to the tx root of block {height}: the "
                                             f"transaction is not proven to be in it")
    return VerifiedTx(txid, index, block, tx)
