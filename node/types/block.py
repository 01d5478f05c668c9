"""Blocks and headers.

The header commits to everything: the previous block, the transactions'
full signed bytes (merkle root of their wtxids), the UTXO set *after* the
block (app hash), the proposer, the certificate that committed the previous
block and the validator set.  ``block_hash = H(header)``, and since the
header commits to every byte of the body, two blocks with one hash are the
same block once the body is checked against it (``node.ledger.rules.check_block_body``).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import cached_property

from node.crypto import ADDRESS_SIZE, sha256
from node.encoding import DecodeError, Reader, Writer
from node.types.commit import Commit
from node.types.hashes import HASH_SIZE
from node.types.merkle import EMPTY_ROOT, MerkleProof, merkle_proof, merkle_root
from node.types.reconfig import MAX_INPUT_BYTES, ReconfigInput, decode_input, inputs_hash
from node.types.transaction import MAX_TX_BYTES, Transaction, cut_unsigned_body

MAX_CHAIN_ID_BYTES = 64
MAX_BLOCK_TXS_DECODE = 100_000
MAX_BLOCK_INPUTS_DECODE = 1_000
MAX_HEADER_BYTES = 1024
MAX_COMMIT_BYTES = 10_000_000
HEADER_VERSION = 2
"""Version 2 added next_validators_hash, inputs_hash and reconfig_hash (reconfiguration)."""


@dataclass(frozen=True)
class Header:
    """What a block hash commits to."""

    chain_id: str
    """The chain this block belongs to."""
    height: int
    """u64, 1 for the first block after genesis."""
    time_ms: int
    """u64 Unix milliseconds chosen by the proposer; strictly increasing."""
    prev_hash: bytes
    """Hash of block height-1 (zeros for height 1)."""
    tx_root: bytes
    """Merkle root of the block's wtxids (SHA-256 of each transaction's full signed encoding), in block order."""
    app_hash: bytes
    """Multiset hash of the UTXO set after applying this block."""
    proposer: bytes
    """20-byte address of the validator that proposed it (receives the fees)."""
    last_commit_hash: bytes
    """Hash of the certificate that committed block height-1 (zeros for height 1)."""
    validators_hash: bytes
    """Hash of the validator set that decides this block."""
    next_validators_hash: bytes
    """Hash of the validator set that decides the next block (changes committed here apply one later)."""
    inputs_hash: bytes
    """Hash of the block's reconfiguration inputs (``node.types.reconfig.inputs_hash``)."""
    reconfig_hash: bytes
    """Hash of the validator state after this block (``node.ledger.validator_state``)."""

    def encode(self) -> bytes:
        return (Writer().u8(HEADER_VERSION).text(self.chain_id).u64(self.height).u64(self.time_ms)
                .fixed(self.prev_hash, HASH_SIZE).fixed(self.tx_root, HASH_SIZE).fixed(self.app_hash, HASH_SIZE)
                .fixed(self.proposer, ADDRESS_SIZE).fixed(self.last_commit_hash, HASH_SIZE)
                .fixed(self.validators_hash, HASH_SIZE).fixed(self.next_validators_hash, HASH_SIZE)
                .fixed(self.inputs_hash, HASH_SIZE).fixed(self.reconfig_hash, HASH_SIZE).getvalue())

    @classmethod
    def read(cls, r: Reader) -> Header:
        version = r.u8()
        if version != HEADER_VERSION:
            raise DecodeError(f"header version {version}, this release reads {HEADER_VERSION}")
        return cls(r.text(MAX_CHAIN_ID_BYTES), r.u64(), r.u64(), r.fixed(HASH_SIZE), r.fixed(HASH_SIZE),
                   r.fixed(HASH_SIZE), r.fixed(ADDRESS_SIZE), r.fixed(HASH_SIZE), r.fixed(HASH_SIZE),
                   r.fixed(HASH_SIZE), r.fixed(HASH_SIZE), r.fixed(HASH_SIZE))

    @classmethod
    def decode(cls, data: bytes) -> Header:
        r = Reader(data)
        header = cls.read(r)
        r.finish()
        return header

    @cached_property
    def hash(self) -> bytes:
        return sha256(self.encode())


@dataclass(frozen=True)
class Block:
    """A header, its transactions, and the certificate of the previous block."""

    header: Header
    """The signed-over part."""
    txs: tuple[Transaction, ...]
    """Transactions in execution order."""
    last_commit: Commit | None
    """Certificate for block height-1; None only at height 1."""
    inputs: tuple[ReconfigInput, ...] = ()
    """Reconfiguration inputs (approvals, quits), applied after the transactions, in order."""

    @property
    def hash(self) -> bytes:
        return self.header.hash

    @property
    def height(self) -> int:
        return self.header.height

    @cached_property
    def txids(self) -> list[bytes]:
        return [tx.txid for tx in self.txs]

    @cached_property
    def wtxids(self) -> list[bytes]:
        """The tx_root's leaves: SHA-256 of each transaction's signed encoding."""
        return [tx.wtxid for tx in self.txs]

    @cached_property
    def computed_tx_root(self) -> bytes:
        """Merkle root of the transactions this block carries (the header's tx_root must equal it)."""
        return merkle_root(self.wtxids) if self.txs else EMPTY_ROOT

    @cached_property
    def computed_inputs_hash(self) -> bytes:
        """Hash of the reconfiguration inputs this block carries (the header's inputs_hash must equal it)."""
        return inputs_hash(self.inputs)

    @cached_property
    def encoded(self) -> bytes:
        w = Writer().var_bytes(self.header.encode()).u32(len(self.txs))
        for tx in self.txs:
            w.var_bytes(tx.encoded)
        w.u32(len(self.inputs))
        for item in self.inputs:
            w.var_bytes(item.encoded)
        w.boolean(self.last_commit is not None)
        if self.last_commit is not None:
            w.var_bytes(self.last_commit.encode())
        return w.getvalue()

    def encode(self) -> bytes:
        return self.encoded

    @classmethod
    def decode(cls, data: bytes, known=None) -> Block:
        """``known`` maps encoded transactions to decoded ones (the mempool's): those are not decoded again."""
        r = Reader(data)
        header = Header.decode(r.var_bytes(MAX_HEADER_BYTES))
        txs = []
        get = known.get if known is not None else None
        for _ in range(r.count(MAX_BLOCK_TXS_DECODE)):
            raw = r.var_bytes(MAX_TX_BYTES)
            tx = get(raw) if get is not None else None
            txs.append(tx if tx is not None else Transaction.decode(raw))
        inputs = tuple(decode_input(r.var_bytes(MAX_INPUT_BYTES)) for _ in range(r.count(MAX_BLOCK_INPUTS_DECODE)))
        last_commit = Commit.decode(r.var_bytes(MAX_COMMIT_BYTES)) if r.boolean() else None
        r.finish()
        block = cls(header, tuple(txs), last_commit, inputs)
        block.__dict__["encoded"] = bytes(data)
        return block

    def proof(self, index: int) -> MerkleProof:
        """Merkle path from transaction ``index``'s wtxid to the tx_root."""
        return merkle_proof(self.wtxids, index)


def compute_tx_root(txs: tuple[Transaction, ...] | list[Transaction]) -> bytes:
    """Merkle root of the wtxids of ``txs``: commits to every byte of every transaction, signatures included."""
    return merkle_root([tx.wtxid for tx in txs]) if txs else EMPTY_ROOT



# ---------------------------------------------------------------------- summaries: a block without its transactions


@dataclass(frozen=True)
class BlockSummary:
    """What a listing of blocks shows (``GET /v1/blocks`` without ``txs``): everything of a block but its
    transactions, which only their txids stand for."""

    header: Header
    """The block's header."""
    txids: list[bytes]
    """Its transactions' txids, in block order."""
    inputs: tuple[ReconfigInput, ...]
    """Its reconfiguration inputs, in order."""
    last_commit: Commit | None
    """The certificate of block height-1 it carries; None only at height 1."""

    @property
    def hash(self) -> bytes:
        return self.header.hash

    @property
    def height(self) -> int:
        return self.header.height


def summarize_block(block: Block) -> BlockSummary:
    """The summary of a decoded ``block`` (its txids are computed once and kept on it)."""
    return BlockSummary(block.header, block.txids, block.inputs, block.last_commit)


def read_block_summary(data: bytes) -> BlockSummary:
    """The summary of the block ``data`` encodes: ``summarize_block(Block.decode(data))`` without building a
    ``Transaction`` per transaction.

    Listing stored blocks by txid (a client long-polling ``GET /v1/blocks``,
    100 blocks of thousands of transactions a request) spent most of its time
    decoding transactions only to hash their unsigned bodies.  Here each
    txid's preimage is cut out of the stored bytes.  Bytes the fast walk does
    not take as they are go to ``Block.decode``, so a malformed block raises
    exactly the error it always did.
    """
    if type(data) is bytes:
        summary = _read_well_formed_summary(data)
        if summary is not None:
            return summary
    return summarize_block(Block.decode(data))


_U32 = struct.Struct(">I")


def _read_well_formed_summary(data: bytes) -> BlockSummary | None:
    """The summary of ``data``, or None unless every count and length in it is exactly right (then
    ``Block.decode`` decides; it refuses nothing this accepts, and reads the same header, inputs and
    certificate with the same code)."""
    size = len(data)
    try:
        header_size = _U32.unpack_from(data)[0]
        pos = _U32.size + header_size
        if header_size > MAX_HEADER_BYTES or pos > size:
            return None
        header = Header.decode(data[_U32.size:pos])
        n_txs = _U32.unpack_from(data, pos)[0]
        if n_txs > MAX_BLOCK_TXS_DECODE:
            return None
        pos += _U32.size
        txids = []
        for _ in range(n_txs):
            tx_size = _U32.unpack_from(data, pos)[0]
            start = pos + _U32.size
            pos = start + tx_size
            if tx_size > MAX_TX_BYTES or pos > size:
                return None
            unsigned = cut_unsigned_body(data, start, pos)
            if unsigned is None:
                return None
            txids.append(sha256(unsigned))
        r = Reader(data[pos:])
        inputs = tuple(decode_input(r.var_bytes(MAX_INPUT_BYTES)) for _ in range(r.count(MAX_BLOCK_INPUTS_DECODE)))
        last_commit = Commit.decode(r.var_bytes(MAX_COMMIT_BYTES)) if r.boolean() else None
        r.finish()
    except (DecodeError, struct.error):
        return None
    return BlockSummary(header, txids, inputs, last_commit)
