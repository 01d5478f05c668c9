"""The node's LevelDB store: blocks, certificates, the UTXO set, indexes and metadata.

One database per node.  Every kind of record has its own one-byte key
prefix; heights are big-endian u64 so keys sort by height.

====  ==========================================  ===============================================
pfx   key                                         value
====  ==========================================  ===============================================
B     height u64                                  encoded block
R     height u64                                  encoded header
K     height u64                                  block hash
H     block hash                                  height u64
C     height u64                                  encoded commit certificate of that block
U     txid || index u32 (outpoint)                UtxoEntry (address, amount u64, height u64)
u     address || outpoint                         UtxoEntry (the address's unspent outputs)
A     address                                     balance u64 now (absent = 0)
a     address || height u64                       balance u64 after that height (written on change)
h     address || height u64 || index u32          txid (index 0xffffffff: the block's fee output)
T     txid                                        height u64 || index u32 || offset u32 || length u32
M     name                                        metadata (height, app hash, MuHash, chain id, ...)
====  ==========================================  ===============================================

A block is committed by one ``WriteBatch(sync=True)`` holding the block,
its certificate, the UTXO deletions and insertions, every index update,
the new app hash, MuHash state and height marker: a crash leaves the store
at the old height or the new one, never between.  Nothing is preloaded;
the UTXO set is read on demand, so opening is instant at any size.

The layout and what is hashed into it (block ids, tx roots) have a version,
``STORE_FORMAT_VERSION``, written when a store is created; a store of any
other version (or of none: written before versions existed) is refused with
``store-format`` rather than read wrongly.  There is no migration: a node
starts again from a fresh home and syncs the chain from its peers.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import plyvel

from node.crypto import ADDRESS_SIZE
from node.encoding import DecodeError
from node.ledger.errors import (
    BLK_APPHASH,
    BLK_CHAIN_ID,
    BLK_COMMIT,
    BLK_HEIGHT,
    BLK_PREVHASH,
    BLK_RESULT,
    STORE_CORRUPT,
    STORE_FORMAT,
    STORE_GENESIS_MISMATCH,
    STORE_LOCKED,
    STORE_NOT_INITIALIZED,
    STORE_RESERVED_KEY,
    BlockError,
    StoreError,
)
from node.ledger.muhash import MuHash
from node.ledger.rules import BlockResult, check_block_body, check_genesis_allocations, genesis_utxos
from node.ledger.state import UtxoEntry, fee_outpoint, genesis_txid, utxo_element
from node.types.block import Block, Header
from node.types.commit import Commit
from node.types.hashes import ZERO_HASH
from node.types.transaction import OutPoint, Transaction

_U64 = struct.Struct(">Q")
_U32 = struct.Struct(">I")
_TXLOC = struct.Struct(">QIII")

P_BLOCK = b"B"
P_HEADER = b"R"
P_BLOCK_HASH = b"K"
P_HASH_HEIGHT = b"H"
P_COMMIT = b"C"
P_UTXO = b"U"
P_ADDR_UTXO = b"u"
P_BALANCE = b"A"
P_BALANCE_AT = b"a"
P_HISTORY = b"h"
P_TXID = b"T"
P_META = b"M"

STORE_FORMAT_VERSION: int = 2
"""Version of the layout and hashing this release reads and writes; 2: tx_root over wtxids (issue 10)."""

FEE_INDEX: int = 0xFFFF_FFFF
"""History index of a block's fee output (it is not a transaction of the block)."""

META_HEIGHT = "height"
META_APP_HASH = "app_hash"
META_MUHASH = "muhash"
META_CHAIN_ID = "chain_id"
META_GENESIS_HASH = "genesis_hash"
META_GENESIS_DOC = "genesis_doc"
META_GENESIS_APP_HASH = "genesis_app_hash"
META_GENESIS_PENDING = "genesis_pending"
META_FORMAT_VERSION = "format_version"
RESERVED_META = frozenset({META_HEIGHT, META_APP_HASH, META_MUHASH, META_CHAIN_ID, META_GENESIS_HASH,
                           META_GENESIS_DOC, META_GENESIS_APP_HASH, META_GENESIS_PENDING, META_FORMAT_VERSION})

GENESIS_CHUNK = 50_000
"""Allocations written per batch when a genesis is large."""


def _meta_key(name: str | bytes) -> bytes:
    return P_META + (name.encode("utf-8") if isinstance(name, str) else bytes(name))


def _outpoint_key(outpoint: OutPoint) -> bytes:
    return outpoint.txid + _U32.pack(outpoint.index)


def _check_format(db: plyvel.DB, path: str) -> None:
    """Stamp an empty (new) database with ``STORE_FORMAT_VERSION``; refuse one written in another format."""
    key = _meta_key(META_FORMAT_VERSION)
    raw = db.get(key)
    if raw is None:
        with db.iterator(include_value=False) as it:
            empty = next(it, None) is None
        if empty:
            db.put(key, _U32.pack(STORE_FORMAT_VERSION), sync=True)
            return
        found = "no format version (written before versions existed)"
    elif len(raw) != _U32.size:
        found = f"an unreadable format version {raw.hex()}"
    else:
        version = _U32.unpack(raw)[0]
        if version == STORE_FORMAT_VERSION:
            return
        found = f"format version {version}"
    raise StoreError(STORE_FORMAT, f"the store at {path} has {found}, this release reads format "
                                   f"{STORE_FORMAT_VERSION}; re-run `ledger-node init` on a fresh home, or for a "
                                   f"devnet `ledger-devnet up --fresh`")


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One appearance of an address in the chain."""

    height: int
    """u64 block height (0: genesis allocation)."""
    index: int
    """u32 position of the transaction in the block; allocation number at height 0; FEE_INDEX for a fee output."""
    txid: bytes
    """32-byte txid; for genesis and fee entries the reserved id of the outpoint that was created."""

    @property
    def kind(self) -> str:
        if self.height == 0:
            return "genesis"
        if self.index == FEE_INDEX:
            return "fee"
        return "tx"


class CommitBatch:
    """A block's writes, built but not yet written: ``write()`` makes them durable at once."""

    def __init__(self, store: Store, batch, height: int, block_hash: bytes, app_hash: bytes, muhash_state: bytes):
        self._store = store
        self._batch = batch
        self.height = height
        """Height the store will be at after ``write()``."""
        self.block_hash = block_hash
        self.app_hash = app_hash
        self.muhash_state = muhash_state
        self._written = False

    def write(self) -> None:
        """Apply every write in one synced LevelDB batch, then move the store's tip."""
        if self._written:
            raise StoreError(STORE_CORRUPT, "this commit batch was already written")
        store = self._store
        if store.height != self.height - 1:
            raise BlockError(BLK_HEIGHT, f"batch is for height {self.height}, store is at {store.height}")
        self._batch.write()
        self._written = True
        store._height = self.height
        store._app_hash = self.app_hash
        store._muhash_state = self.muhash_state
        store._tip_hash = self.block_hash


class Store:
    """The node's LevelDB database; a ``ChainView`` of the committed UTXO set."""

    def __init__(self, db: plyvel.DB, path: str):
        self._db = db
        self.path = path
        self._height = -1
        self._app_hash: bytes | None = None
        self._muhash_state: bytes | None = None
        self._tip_hash: bytes = ZERO_HASH
        self._chain_id: str | None = None
        self._load_tip()

    # ------------------------------------------------------------------ open / close

    @classmethod
    def open(cls, path: str, cache_bytes: int = 64 * 1024 * 1024) -> Store:
        """Open (creating if missing) the database at ``path`` and check its tip."""
        try:
            db = plyvel.DB(str(path), create_if_missing=True, lru_cache_size=cache_bytes, bloom_filter_bits=10,
                           write_buffer_size=16 * 1024 * 1024, compression=None)
        except plyvel.Error as exc:
            raise StoreError(STORE_LOCKED, f"cannot open the database at {path}: {exc}") from exc
        except OSError as exc:  # plyvel raises IOError when the lock is held
            raise StoreError(STORE_LOCKED, f"cannot open the database at {path} (another process using it?): "
                                           f"{exc}") from exc
        try:
            _check_format(db, str(path))
            store = cls(db, str(path))
            store.verify_integrity()
        except BaseException:
            db.close()
            raise
        return store

    def close(self) -> None:
        if not self._db.closed:
            self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _load_tip(self) -> None:
        db = self._db
        raw_height = db.get(_meta_key(META_HEIGHT))
        if raw_height is None:
            return
        self._height = _U64.unpack(raw_height)[0]
        self._app_hash = db.get(_meta_key(META_APP_HASH))
        self._muhash_state = db.get(_meta_key(META_MUHASH))
        raw_chain = db.get(_meta_key(META_CHAIN_ID))
        self._chain_id = raw_chain.decode("utf-8") if raw_chain is not None else None
        if self._height > 0:
            self._tip_hash = db.get(P_BLOCK_HASH + _U64.pack(self._height)) or ZERO_HASH

    def verify_integrity(self) -> None:
        """The stored tip is consistent: MuHash digest = app hash = tip header's app hash, indexes agree."""
        if self._height < 0:
            return
        if self._app_hash is None or self._muhash_state is None or self._chain_id is None:
            raise StoreError(STORE_CORRUPT, "height marker present but app hash, MuHash or chain id missing")
        try:
            digest = MuHash.deserialize(self._muhash_state).digest()
        except ValueError as exc:
            raise StoreError(STORE_CORRUPT, f"stored MuHash state is unreadable: {exc}") from exc
        if digest != self._app_hash:
            raise StoreError(STORE_CORRUPT, "stored MuHash state does not hash to the stored app hash")
        if self._height == 0:
            return
        raw_header = self._db.get(P_HEADER + _U64.pack(self._height))
        if raw_header is None or self._db.get(P_BLOCK + _U64.pack(self._height)) is None:
            raise StoreError(STORE_CORRUPT, f"block {self._height} (the stored height) is missing")
        header = Header.decode(raw_header)
        if header.height != self._height:
            raise StoreError(STORE_CORRUPT, f"block stored at {self._height} says height {header.height}")
        if header.app_hash != self._app_hash:
            raise StoreError(STORE_CORRUPT, f"block {self._height}'s app hash differs from the stored app hash")
        if header.hash != self._tip_hash or self._db.get(P_HASH_HEIGHT + header.hash) != _U64.pack(self._height):
            raise StoreError(STORE_CORRUPT, f"block hash index disagrees with block {self._height}")

    # ------------------------------------------------------------------ tip

    @property
    def initialized(self) -> bool:
        return self._height >= 0

    @property
    def height(self) -> int:
        """Height of the last committed block: 0 after genesis, -1 before."""
        return self._height

    @property
    def app_hash(self) -> bytes | None:
        """MuHash digest of the UTXO set at ``height`` (None before genesis)."""
        return self._app_hash

    @property
    def muhash_state(self) -> bytes | None:
        """Serialized MuHash of the UTXO set at ``height``."""
        return self._muhash_state

    @property
    def chain_id(self) -> str | None:
        return self._chain_id

    @property
    def tip_hash(self) -> bytes:
        """Hash of the block at ``height`` (zeros at height 0)."""
        return self._tip_hash

    @property
    def genesis_hash(self) -> bytes | None:
        return self._db.get(_meta_key(META_GENESIS_HASH))

    @property
    def genesis_doc(self) -> bytes | None:
        return self._db.get(_meta_key(META_GENESIS_DOC))

    @property
    def genesis_app_hash(self) -> bytes | None:
        return self._db.get(_meta_key(META_GENESIS_APP_HASH))

    @property
    def format_version(self) -> int:
        """The store format this database was written in (checked on open: ``STORE_FORMAT_VERSION``)."""
        return _U32.unpack(self._db.get(_meta_key(META_FORMAT_VERSION)))[0]

    def _require_initialized(self) -> None:
        if self._height < 0:
            raise StoreError(STORE_NOT_INITIALIZED, f"{self.path} holds no genesis; run `ledger-node init` first")

    # ------------------------------------------------------------------ metadata

    def get_meta(self, key: str | bytes) -> bytes | None:
        return self._db.get(_meta_key(key))

    def put_meta(self, key: str | bytes, value: bytes) -> None:
        """Durably (fsync) store ``value`` under ``key``; the ledger's own keys are refused."""
        name = key if isinstance(key, str) else bytes(key).decode("utf-8", errors="replace")
        if name in RESERVED_META:
            raise StoreError(STORE_RESERVED_KEY, f"metadata key {name!r} is the ledger's own")
        self._db.put(_meta_key(key), bytes(value), sync=True)

    def delete_meta(self, key: str | bytes) -> None:
        name = key if isinstance(key, str) else bytes(key).decode("utf-8", errors="replace")
        if name in RESERVED_META:
            raise StoreError(STORE_RESERVED_KEY, f"metadata key {name!r} is the ledger's own")
        self._db.delete(_meta_key(key), sync=True)

    # ------------------------------------------------------------------ genesis

    def initialize_genesis(
        self,
        chain_id: str,
        genesis_hash: bytes,
        allocations: Sequence[tuple[bytes, int]],
        genesis_doc: bytes,
    ) -> bytes:
        """Write the height-0 UTXO set and return its app hash.

        Idempotent for the same genesis; refuses a store initialized (or
        half-initialized) with another.  A large genesis is written in
        chunks; the height marker goes last, so a crash during init leaves
        an uninitialized store that the same genesis can finish.
        """
        db = self._db
        if self._height >= 0:
            if self.genesis_hash != genesis_hash or self._chain_id != chain_id:
                raise StoreError(STORE_GENESIS_MISMATCH,
                                 f"{self.path} was initialized with genesis {(self.genesis_hash or b'').hex()} "
                                 f"of chain {self._chain_id!r}; use a fresh home directory")
            return self.genesis_app_hash or b""
        pending = db.get(_meta_key(META_GENESIS_PENDING))
        if pending is not None and pending != genesis_hash:
            raise StoreError(STORE_GENESIS_MISMATCH,
                             f"{self.path} holds a partly written different genesis; use a fresh home directory")
        check_genesis_allocations(allocations)
        db.put(_meta_key(META_GENESIS_PENDING), genesis_hash, sync=True)
        muhash = MuHash()
        balances: dict[bytes, int] = {}
        zero = _U64.pack(0)
        batch = db.write_batch(sync=True)
        pending_count = 0
        for outpoint, entry in genesis_utxos(chain_id, allocations):
            key = _outpoint_key(outpoint)
            value = entry.encode()
            batch.put(P_UTXO + key, value)
            batch.put(P_ADDR_UTXO + entry.address + key, value)
            batch.put(P_HISTORY + entry.address + zero + _U32.pack(outpoint.index), outpoint.txid)
            balances[entry.address] = balances.get(entry.address, 0) + entry.amount
            muhash.add(utxo_element(outpoint, entry))
            pending_count += 1
            if pending_count >= GENESIS_CHUNK:
                batch.write()
                batch = db.write_batch(sync=True)
                pending_count = 0
        for address, balance in balances.items():
            batch.put(P_BALANCE + address, _U64.pack(balance))
            batch.put(P_BALANCE_AT + address + zero, _U64.pack(balance))
        app_hash = muhash.digest()
        muhash_state = muhash.serialize()
        batch.put(_meta_key(META_CHAIN_ID), chain_id.encode("utf-8"))
        batch.put(_meta_key(META_GENESIS_HASH), bytes(genesis_hash))
        batch.put(_meta_key(META_GENESIS_DOC), bytes(genesis_doc))
        batch.put(_meta_key(META_GENESIS_APP_HASH), app_hash)
        batch.put(_meta_key(META_APP_HASH), app_hash)
        batch.put(_meta_key(META_MUHASH), muhash_state)
        batch.put(_meta_key(META_HEIGHT), zero)
        batch.delete(_meta_key(META_GENESIS_PENDING))
        batch.write()
        self._height = 0
        self._app_hash = app_hash
        self._muhash_state = muhash_state
        self._chain_id = chain_id
        self._tip_hash = ZERO_HASH
        return app_hash

    # ------------------------------------------------------------------ commit

    def build_commit_batch(self, block: Block, commit: Commit, result: BlockResult) -> CommitBatch:
        """Check that ``block`` extends the tip, its bytes are the ones its id commits to and ``result``
        belongs to it, and stage every write."""
        self._require_initialized()
        header = block.header
        height = header.height
        if height != self._height + 1:
            raise BlockError(BLK_HEIGHT, f"block height {height}, the store is at {self._height}")
        if header.chain_id != self._chain_id:
            raise BlockError(BLK_CHAIN_ID, f"block is for chain {header.chain_id!r}, the store holds "
                                           f"{self._chain_id!r}")
        if header.prev_hash != self._tip_hash:
            raise BlockError(BLK_PREVHASH, f"prev_hash {header.prev_hash.hex()} is not the tip {self._tip_hash.hex()}")
        block_hash = block.hash
        if commit.height != height or commit.block_hash != block_hash:
            raise BlockError(BLK_COMMIT, f"certificate is for block {commit.block_hash.hex()} at {commit.height}")
        check_block_body(block)  # never store bytes other than those the certified id covers
        if result.height != height or result.proposer != header.proposer or result.tx_root != header.tx_root:
            raise BlockError(BLK_RESULT, "the execution result was computed for another block")
        if result.base_app_hash != self._app_hash:
            raise BlockError(BLK_RESULT, "the execution result was computed on another state than the tip")
        if result.app_hash != header.app_hash:
            raise BlockError(BLK_APPHASH, f"header app_hash {header.app_hash.hex()}, result {result.app_hash.hex()}")
        if len(result.tx_fees) != len(block.txs) or len(result.tx_addresses) != len(block.txs):
            raise BlockError(BLK_RESULT, "the execution result has another number of transactions")

        db = self._db
        batch = db.write_batch(sync=True)
        put, delete = batch.put, batch.delete
        h = _U64.pack(height)
        encoded = block.encoded
        put(P_BLOCK + h, encoded)
        put(P_HEADER + h, header.encode())
        put(P_BLOCK_HASH + h, block_hash)
        put(P_HASH_HEIGHT + block_hash, h)
        put(P_COMMIT + h, commit.encode())

        deltas: dict[bytes, int] = {}
        for outpoint, entry in result.spent:
            key = outpoint.txid + _U32.pack(outpoint.index)
            address = entry.address
            delete(P_UTXO + key)
            delete(P_ADDR_UTXO + address + key)
            deltas[address] = deltas.get(address, 0) - entry.amount
        for outpoint, entry in result.created:
            key = outpoint.txid + _U32.pack(outpoint.index)
            address = entry.address
            value = entry.encode()
            put(P_UTXO + key, value)
            put(P_ADDR_UTXO + address + key, value)
            deltas[address] = deltas.get(address, 0) + entry.amount

        # Transactions sit in the block encoding as u32 length || bytes, after the u32-length-prefixed
        # header and the u32 count; remember each one's slice so a lookup does not decode the block.
        offset = 4 + _U32.unpack_from(encoded, 0)[0] + 4
        tx_addresses = result.tx_addresses
        for index, tx in enumerate(block.txs):
            size = len(tx.encoded)
            offset += 4
            txid = tx.txid
            ih = h + _U32.pack(index)
            put(P_TXID + txid, _TXLOC.pack(height, index, offset, size))
            for address in tx_addresses[index]:
                put(P_HISTORY + address + ih, txid)
            offset += size
        if result.fees > 0:
            put(P_HISTORY + header.proposer + h + _U32.pack(FEE_INDEX), fee_outpoint(self._chain_id, height).txid)

        get = db.get
        for address, delta in deltas.items():
            if delta == 0:
                continue
            raw = get(P_BALANCE + address)
            balance = (_U64.unpack(raw)[0] if raw is not None else 0) + delta
            if balance < 0:
                raise StoreError(STORE_CORRUPT, f"balance of {address.hex()} would go negative")
            if balance:
                put(P_BALANCE + address, _U64.pack(balance))
            else:
                delete(P_BALANCE + address)
            put(P_BALANCE_AT + address + h, _U64.pack(balance))

        put(_meta_key(META_APP_HASH), result.app_hash)
        put(_meta_key(META_MUHASH), result.muhash_state)
        put(_meta_key(META_HEIGHT), h)
        return CommitBatch(self, batch, height, block_hash, result.app_hash, result.muhash_state)

    def commit_block(self, block: Block, commit: Commit, result: BlockResult) -> None:
        """Make ``block`` (executed as ``result``, certified by ``commit``) the new tip, atomically and durably."""
        self.build_commit_batch(block, commit, result).write()

    # ------------------------------------------------------------------ UTXOs (the StateView)

    def get_utxo(self, outpoint: OutPoint) -> UtxoEntry | None:
        raw = self._db.get(P_UTXO + outpoint.txid + _U32.pack(outpoint.index))
        if raw is None:
            return None
        return UtxoEntry.decode(raw)

    def iter_utxos(self) -> Iterator[tuple[OutPoint, UtxoEntry]]:
        """The whole UTXO set in outpoint order (for snapshots and checks; reads everything)."""
        with self._db.iterator(prefix=P_UTXO) as it:
            for key, value in it:
                yield OutPoint(key[1:33], _U32.unpack_from(key, 33)[0]), UtxoEntry.decode(value)

    def recompute_app_hash(self) -> bytes:
        """App hash from a full scan of the UTXO set (slow; checks the incremental one)."""
        muhash = MuHash()
        muhash.add_many(utxo_element(op, entry) for op, entry in self.iter_utxos())
        return muhash.digest()

    # ------------------------------------------------------------------ blocks

    def get_block(self, height: int) -> Block | None:
        raw = self._db.get(P_BLOCK + _U64.pack(height)) if 0 < height < 2**64 else None
        return Block.decode(raw) if raw is not None else None

    def get_block_bytes(self, height: int) -> bytes | None:
        return self._db.get(P_BLOCK + _U64.pack(height)) if 0 < height < 2**64 else None

    def get_header(self, height: int) -> Header | None:
        raw = self._db.get(P_HEADER + _U64.pack(height)) if 0 < height < 2**64 else None
        return Header.decode(raw) if raw is not None else None

    def get_block_hash(self, height: int) -> bytes | None:
        """Hash of the block at ``height``; None at 0 (genesis has no block) and beyond the tip."""
        if height == self._height and height > 0:
            return self._tip_hash
        return self._db.get(P_BLOCK_HASH + _U64.pack(height)) if 0 < height < 2**64 else None

    def get_block_height(self, block_hash: bytes) -> int | None:
        raw = self._db.get(P_HASH_HEIGHT + bytes(block_hash))
        return _U64.unpack(raw)[0] if raw is not None else None

    def get_block_by_hash(self, block_hash: bytes) -> Block | None:
        height = self.get_block_height(block_hash)
        return self.get_block(height) if height is not None else None

    def get_commit(self, height: int) -> Commit | None:
        """The certificate that committed the block at ``height``."""
        raw = self._db.get(P_COMMIT + _U64.pack(height)) if 0 < height < 2**64 else None
        return Commit.decode(raw) if raw is not None else None

    # ------------------------------------------------------------------ transactions

    def get_tx_location(self, txid: bytes) -> tuple[int, int] | None:
        """(height, index in block) of a committed transaction."""
        raw = self._db.get(P_TXID + bytes(txid))
        if raw is None:
            return None
        height, index, _offset, _size = _TXLOC.unpack(raw)
        return height, index

    def get_transaction(self, txid: bytes) -> Transaction | None:
        """A committed transaction, sliced out of its block without decoding the rest."""
        raw = self._db.get(P_TXID + bytes(txid))
        if raw is None:
            return None
        height, _index, offset, size = _TXLOC.unpack(raw)
        block = self._db.get(P_BLOCK + _U64.pack(height))
        if block is None:
            raise StoreError(STORE_CORRUPT, f"txid index points at missing block {height}")
        try:
            return Transaction.decode(block[offset:offset + size])
        except DecodeError as exc:
            raise StoreError(STORE_CORRUPT, f"txid index of {bytes(txid).hex()} points at bad bytes") from exc

    # ------------------------------------------------------------------ addresses

    def balance(self, address: bytes) -> int:
        """Sum of the address's unspent outputs now."""
        raw = self._db.get(P_BALANCE + bytes(address))
        return _U64.unpack(raw)[0] if raw is not None else 0

    def balance_at(self, address: bytes, height: int) -> int:
        """Balance after block ``height`` (one reverse seek to the last change at or below it)."""
        if height < 0:
            return 0
        address = bytes(address)
        if len(address) != ADDRESS_SIZE:
            raise ValueError("address must be 20 bytes")
        prefix = P_BALANCE_AT + address
        stop = prefix + _U64.pack(min(height, 2**64 - 1))
        with self._db.iterator(start=prefix, stop=stop, include_stop=True, reverse=True) as it:
            for _key, value in it:
                return _U64.unpack(value)[0]
        return 0

    def utxos_of(self, address: bytes, limit: int = 100,
                 after: OutPoint | None = None) -> list[tuple[OutPoint, UtxoEntry]]:
        """Up to ``limit`` unspent outputs of ``address`` in outpoint order, starting after ``after``."""
        address = bytes(address)
        if len(address) != ADDRESS_SIZE:
            raise ValueError("address must be 20 bytes")
        prefix = P_ADDR_UTXO + address
        start = prefix + _outpoint_key(after) if after is not None else prefix
        stop = prefix + b"\xff" * 36
        out: list[tuple[OutPoint, UtxoEntry]] = []
        if limit <= 0:
            return out
        with self._db.iterator(start=start, stop=stop, include_start=after is None, include_stop=True) as it:
            for key, value in it:
                out.append((OutPoint(key[21:53], _U32.unpack_from(key, 53)[0]), UtxoEntry.decode(value)))
                if len(out) >= limit:
                    break
        return out

    def history_of(self, address: bytes, limit: int = 100,
                   before: tuple[int, int] | None = None) -> list[HistoryEntry]:
        """Up to ``limit`` appearances of ``address``, newest first, strictly before (height, index) ``before``."""
        address = bytes(address)
        if len(address) != ADDRESS_SIZE:
            raise ValueError("address must be 20 bytes")
        prefix = P_HISTORY + address
        if before is not None:
            stop, include_stop = prefix + _U64.pack(before[0]) + _U32.pack(before[1]), False
        else:
            stop, include_stop = prefix + b"\xff" * 12, True
        out: list[HistoryEntry] = []
        if limit <= 0:
            return out
        with self._db.iterator(start=prefix, stop=stop, include_stop=include_stop, reverse=True) as it:
            for key, value in it:
                out.append(HistoryEntry(_U64.unpack_from(key, 21)[0], _U32.unpack_from(key, 29)[0], value))
                if len(out) >= limit:
                    break
        return out


__all__ = ["CommitBatch", "FEE_INDEX", "HistoryEntry", "STORE_FORMAT_VERSION", "Store", "genesis_txid"]
