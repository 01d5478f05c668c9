"""The store's reads of the committed chain: blocks, headers, certificates, transactions and the UTXO set.

``Store`` mixes this in.  Blocks, headers, block hashes and certificates
are keyed by height, the hash index maps a block hash to its height, and
the txid index gives a committed transaction's height, position and byte
range in its block (``store_layout``).  An output is read from the outputs
recent commits created (``recent_utxos``) before LevelDB, and a block from
the last blocks committed (``recent_blocks``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from node.encoding import DecodeError
from node.ledger.errors import STORE_CORRUPT, StoreError
from node.ledger.muhash import MuHash
from node.ledger.state import UtxoEntry, utxo_element
from node.ledger.store_layout import (
    P_BLOCK,
    P_BLOCK_HASH,
    P_COMMIT,
    P_HASH_HEIGHT,
    P_HEADER,
    P_TXID,
    P_UTXO,
    TX_LOCATION,
    U32,
    U64,
    decode_utxo_key,
)
from node.types.block import Block, BlockSummary, Header, read_block_summary, summarize_block
from node.types.commit import Commit
from node.types.transaction import OutPoint, Transaction

if TYPE_CHECKING:
    import plyvel

    from node.ledger.recent_blocks import RecentBlocks
    from node.ledger.recent_utxos import RecentUtxos


class ChainReads:
    """Block, certificate, transaction and UTXO reads over the store's database (``_db``), tip (``_height``,
    ``_tip_hash``) and in-memory recent outputs and blocks."""

    _db: plyvel.DB
    _height: int
    _tip_hash: bytes
    recent_utxos: RecentUtxos
    recent_blocks: RecentBlocks

    # ------------------------------------------------------------------ UTXOs (the StateView)

    def get_utxo(self, outpoint: OutPoint) -> UtxoEntry | None:
        recent = self.recent_utxos.get(outpoint)
        if recent is not None:
            return recent
        raw = self._db.get(P_UTXO + outpoint.txid + U32.pack(outpoint.index))
        if raw is None:
            return None
        return UtxoEntry.decode(raw)

    def iter_utxos(self) -> Iterator[tuple[OutPoint, UtxoEntry]]:
        """The whole UTXO set in outpoint order (for snapshots and checks; reads everything)."""
        with self._db.iterator(prefix=P_UTXO) as it:
            for key, value in it:
                yield decode_utxo_key(key), UtxoEntry.decode(value)

    def recompute_app_hash(self) -> bytes:
        """App hash from a full scan of the UTXO set (slow; checks the incremental one)."""
        muhash = MuHash()
        muhash.add_many(utxo_element(op, entry) for op, entry in self.iter_utxos())
        return muhash.digest()

    # ------------------------------------------------------------------ blocks

    def _block_record(self, prefix: bytes, height: int) -> bytes | None:
        """The record under ``prefix || height`` (a block, header, block hash or certificate); None for a
        height no block can have (0: genesis has no block)."""
        return self._db.get(prefix + U64.pack(height)) if 0 < height < 2**64 else None

    def get_block(self, height: int) -> Block | None:
        if (recent := self.recent_blocks.get(height)) is not None:
            return recent  # the committed object itself: no decoding
        raw = self._block_record(P_BLOCK, height)
        return Block.decode(raw) if raw is not None else None

    def get_block_summary(self, height: int) -> BlockSummary | None:
        """The block at ``height`` less its transactions (header, txids, inputs, parent certificate), for listings:
        one of the last few from memory, an older one read from its stored bytes without decoding a transaction
        (``read_block_summary``)."""
        if (recent := self.recent_blocks.get(height)) is not None:
            return summarize_block(recent)
        raw = self._block_record(P_BLOCK, height)
        return read_block_summary(raw) if raw is not None else None

    def get_block_bytes(self, height: int) -> bytes | None:
        return self._block_record(P_BLOCK, height)

    def get_header(self, height: int) -> Header | None:
        raw = self._block_record(P_HEADER, height)
        return Header.decode(raw) if raw is not None else None

    def get_block_hash(self, height: int) -> bytes | None:
        """Hash of the block at ``height``; None at 0 (genesis has no block) and beyond the tip."""
        if height == self._height and height > 0:
            return self._tip_hash
        return self._block_record(P_BLOCK_HASH, height)

    def get_block_height(self, block_hash: bytes) -> int | None:
        raw = self._db.get(P_HASH_HEIGHT + bytes(block_hash))
        return U64.unpack(raw)[0] if raw is not None else None

    def get_block_by_hash(self, block_hash: bytes) -> Block | None:
        height = self.get_block_height(block_hash)
        return self.get_block(height) if height is not None else None

    def get_commit(self, height: int) -> Commit | None:
        """The certificate that committed the block at ``height``."""
        raw = self._block_record(P_COMMIT, height)
        return Commit.decode(raw) if raw is not None else None

    # ------------------------------------------------------------------ transactions

    def get_tx_location(self, txid: bytes) -> tuple[int, int] | None:
        """(height, index in block) of a committed transaction."""
        raw = self._db.get(P_TXID + bytes(txid))
        if raw is None:
            return None
        height, index, _offset, _size = TX_LOCATION.unpack(raw)
        return height, index

    def get_transaction(self, txid: bytes) -> Transaction | None:
        """A committed transaction, sliced out of its block without decoding the rest."""
        raw = self._db.get(P_TXID + bytes(txid))
        if raw is None:
            return None
        height, _index, offset, size = TX_LOCATION.unpack(raw)
        block = self._db.get(P_BLOCK + U64.pack(height))
        if block is None:
            raise StoreError(STORE_CORRUPT, f"txid index points at missing block {height}")
        try:
            return Transaction.decode(block[offset:offset + size])
        except DecodeError as exc:
            raise StoreError(STORE_CORRUPT, f"txid index of {bytes(txid).hex()} points at bad bytes") from exc
