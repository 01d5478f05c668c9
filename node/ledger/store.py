"""The node's LevelDB store: blocks, certificates, the UTXO set, indexes and metadata.

One database per node; the key layout, the metadata names and the format
version are in ``store_layout``.  ``Store`` opens the database (refusing one
of another ``STORE_FORMAT_VERSION`` with ``store-format``), checks its tip
and initializes the genesis; the reads of blocks, certificates, transactions
and UTXOs are in ``chain_reads``, the address index (balances, history,
outputs by address) in ``address_index``, the genesis write in
``genesis_batch`` and the writes of a block in ``commit_batch``.

A block is committed by one ``WriteBatch(sync=True)`` holding the block,
its certificate, the UTXO deletions and insertions, every index update,
the new app hash, MuHash state and height marker: a crash leaves the store
at the old height or the new one, never between.  Nothing is preloaded:
the UTXO set is read on demand, so opening is instant at any size; the
outputs recent commits created are also kept in memory (``recent_utxos``),
since they are the ones spent next, and so are the last blocks committed
(``recent_blocks``), since they are the ones read next.
"""

from __future__ import annotations

from collections.abc import Sequence

import plyvel

from node.encoding import DecodeError
from node.ledger.address_index import AddressIndexReads, HistoryEntry
from node.ledger.chain_reads import ChainReads
from node.ledger.commit_batch import CommitBatch, build_commit_batch
from node.ledger.errors import (
    STORE_CORRUPT,
    STORE_FORMAT,
    STORE_GENESIS_MISMATCH,
    STORE_LOCKED,
    STORE_NOT_INITIALIZED,
    STORE_RESERVED_KEY,
    StoreError,
)
from node.ledger.genesis_batch import write_genesis
from node.ledger.leveldb_options import (
    BLOCK_CACHE_BYTES,
    MAX_OPEN_FILES,
    draw_write_buffer_bytes,
    read_tables_without_mmap,
)
from node.ledger.muhash import MuHash
from node.ledger.recent_blocks import RecentBlocks
from node.ledger.recent_utxos import RecentUtxos
from node.ledger.rules import BlockResult
from node.ledger.snapshot_restore import write_snapshot_state
from node.ledger.state import genesis_txid
from node.ledger.store_layout import (
    FEE_INDEX,
    META_APP_HASH,
    META_CHAIN_ID,
    META_EARLIEST_HEIGHT,
    META_FORMAT_VERSION,
    META_GENESIS_APP_HASH,
    META_GENESIS_DOC,
    META_GENESIS_HASH,
    META_GENESIS_PENDING,
    META_HEIGHT,
    META_MUHASH,
    META_VALIDATOR_STATE,
    P_BLOCK,
    P_BLOCK_HASH,
    P_HASH_HEIGHT,
    P_HEADER,
    RESERVED_META,
    STORE_FORMAT_VERSION,
    U32,
    U64,
    meta_key,
)
from node.ledger.validator_reads import ValidatorReads
from node.ledger.validator_state import ValidatorState, genesis_validator_state
from node.types.block import Block, Header
from node.types.commit import Commit
from node.types.hashes import ZERO_HASH
from node.types.validators import ValidatorSet

GENESIS_CHUNK = 50_000
"""Allocations written per batch when a genesis is large (read by ``initialize_genesis`` at each call)."""

def _check_format(db: plyvel.DB, path: str) -> None:
    """Stamp an empty (new) database with ``STORE_FORMAT_VERSION``; refuse one written in another format."""
    key = meta_key(META_FORMAT_VERSION)
    raw = db.get(key)
    if raw is None:
        with db.iterator(include_value=False) as it:
            empty = next(it, None) is None
        if empty:
            db.put(key, U32.pack(STORE_FORMAT_VERSION), sync=True)
            return
        found = "no format version (written before versions existed)"
    elif len(raw) != U32.size:
        found = f"an unreadable format version {raw.hex()}"
    else:
        version = U32.unpack(raw)[0]
        if version == STORE_FORMAT_VERSION:
            return
        found = f"format version {version}"
    raise StoreError(STORE_FORMAT, f"the store at {path} has {found}, this release reads format "
                                   f"{STORE_FORMAT_VERSION}; re-run `ledger-node init` on a fresh home, or for a "
                                   f"devnet `ledger-devnet up --fresh`")


class Store(ChainReads, AddressIndexReads, ValidatorReads):
    """The node's LevelDB database; a ``ChainView`` of the committed UTXO set.

    The reads of blocks, certificates, transactions and UTXOs (``get_block``, ``get_commit``,
    ``get_transaction``, ``get_utxo``, ...) come from ``ChainReads``, the address index reads (``balance``,
    ``balance_at``, ``utxos_of``, ``history_of``) from ``AddressIndexReads``, the validator sets by height from
    ``ValidatorReads``; ``build_commit_batch`` stages a block's writes (``commit_batch``).
    """

    def __init__(self, db: plyvel.DB, path: str):
        self._db = db
        self.path = path
        self._height = -1
        self._app_hash: bytes | None = None
        self._muhash_state: bytes | None = None
        self._tip_hash: bytes = ZERO_HASH
        self._chain_id: str | None = None
        self._validator_state: ValidatorState | None = None
        self._sets_by_height: dict[int, ValidatorSet] = {}
        """Committed heights' validator sets: read from the ``V`` records (they never change once written), or
        kept by the commit that made a height the tip (``_remember_decided_set``)."""
        self.recent_utxos = RecentUtxos()
        """Outputs recent commits created and nothing spent yet: read before LevelDB."""
        self.recent_blocks = RecentBlocks()
        """The last committed blocks, decoded: read before LevelDB."""
        self._load_tip()

    # ------------------------------------------------------------------ open / close

    @classmethod
    def open(cls, path: str, cache_bytes: int = BLOCK_CACHE_BYTES, write_buffer_bytes: int | None = None) -> Store:
        """Open (creating if missing) the database at ``path`` and check its tip; ``write_buffer_bytes`` is
        LevelDB's memtable size (default: drawn by ``draw_write_buffer_bytes``)."""
        if write_buffer_bytes is None:
            write_buffer_bytes = draw_write_buffer_bytes()
        read_tables_without_mmap()  # before LevelDB makes its environment (leveldb_options)
        try:
            db = plyvel.DB(str(path), create_if_missing=True, lru_cache_size=cache_bytes, bloom_filter_bits=10,
                           write_buffer_size=write_buffer_bytes, compression=None, max_open_files=MAX_OPEN_FILES)
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

    def memory_bytes(self) -> int:
        """LevelDB's own estimate of the memory it holds (``leveldb.approximate-memory-usage``: its memtables and
        block cache); 0 once closed."""
        if self._db.closed:
            return 0
        return int(self._db.get_property(b"leveldb.approximate-memory-usage") or 0)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _load_tip(self) -> None:
        db = self._db
        raw_height = db.get(meta_key(META_HEIGHT))
        if raw_height is None:
            return
        self._height = U64.unpack(raw_height)[0]
        self._app_hash = db.get(meta_key(META_APP_HASH))
        self._muhash_state = db.get(meta_key(META_MUHASH))
        raw_chain = db.get(meta_key(META_CHAIN_ID))
        self._chain_id = raw_chain.decode("utf-8") if raw_chain is not None else None
        if self._height > 0:
            self._tip_hash = db.get(P_BLOCK_HASH + U64.pack(self._height)) or ZERO_HASH
        raw_state = db.get(meta_key(META_VALIDATOR_STATE))
        if raw_state is not None:
            try:
                self._validator_state = ValidatorState.decode(raw_state)
            except DecodeError as exc:
                raise StoreError(STORE_CORRUPT, f"the stored validator state is unreadable: {exc}") from exc

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
        raw_header = self._db.get(P_HEADER + U64.pack(self._height))
        if raw_header is None or self._db.get(P_BLOCK + U64.pack(self._height)) is None:
            raise StoreError(STORE_CORRUPT, f"block {self._height} (the stored height) is missing")
        header = Header.decode(raw_header)
        if header.height != self._height:
            raise StoreError(STORE_CORRUPT, f"block stored at {self._height} says height {header.height}")
        if header.app_hash != self._app_hash:
            raise StoreError(STORE_CORRUPT, f"block {self._height}'s app hash differs from the stored app hash")
        if header.hash != self._tip_hash or self._db.get(P_HASH_HEIGHT + header.hash) != U64.pack(self._height):
            raise StoreError(STORE_CORRUPT, f"block hash index disagrees with block {self._height}")
        state = self._validator_state
        if state is not None and (state.height != self._height or state.hash != header.reconfig_hash):
            raise StoreError(STORE_CORRUPT, f"the stored validator state is not the one block {self._height} names")

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
        return self._db.get(meta_key(META_GENESIS_HASH))

    @property
    def genesis_doc(self) -> bytes | None:
        return self._db.get(meta_key(META_GENESIS_DOC))

    @property
    def genesis_app_hash(self) -> bytes | None:
        return self._db.get(meta_key(META_GENESIS_APP_HASH))

    @property
    def format_version(self) -> int:
        """The store format this database was written in (checked on open: ``STORE_FORMAT_VERSION``)."""
        return U32.unpack(self._db.get(meta_key(META_FORMAT_VERSION)))[0]

    def _advance_tip(self, height: int, app_hash: bytes, muhash_state: bytes, block_hash: bytes,
                     validator_state: ValidatorState | None) -> None:
        """Move the in-memory tip once a commit batch for ``height`` is written."""
        if validator_state is not None:
            self._remember_decided_set(height, self._validator_state)
            self._validator_state = validator_state
        self._height = height
        self._app_hash = app_hash
        self._muhash_state = muhash_state
        self._tip_hash = block_hash

    def _require_initialized(self) -> None:
        if self._height < 0:
            raise StoreError(STORE_NOT_INITIALIZED, f"{self.path} holds no genesis; run `ledger-node init` first")

    # ------------------------------------------------------------------ metadata

    def get_meta(self, key: str | bytes) -> bytes | None:
        return self._db.get(meta_key(key))

    def put_meta(self, key: str | bytes, value: bytes) -> None:
        """Durably (fsync) store ``value`` under ``key``; the ledger's own keys are refused."""
        name = key if isinstance(key, str) else bytes(key).decode("utf-8", errors="replace")
        if name in RESERVED_META:
            raise StoreError(STORE_RESERVED_KEY, f"metadata key {name!r} is the ledger's own")
        self._db.put(meta_key(key), bytes(value), sync=True)

    def delete_meta(self, key: str | bytes) -> None:
        name = key if isinstance(key, str) else bytes(key).decode("utf-8", errors="replace")
        if name in RESERVED_META:
            raise StoreError(STORE_RESERVED_KEY, f"metadata key {name!r} is the ledger's own")
        self._db.delete(meta_key(key), sync=True)

    # ------------------------------------------------------------------ genesis

    def initialize_genesis(
        self,
        chain_id: str,
        genesis_hash: bytes,
        allocations: Sequence[tuple[bytes, int]],
        genesis_doc: bytes = b"",
        validators: ValidatorSet | None = None,
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
        pending = db.get(meta_key(META_GENESIS_PENDING))
        if pending is not None and pending != genesis_hash:
            raise StoreError(STORE_GENESIS_MISMATCH,
                             f"{self.path} holds a partly written different genesis; use a fresh home directory")
        state = genesis_validator_state(validators) if validators is not None else None
        app_hash, muhash_state = write_genesis(db, chain_id, genesis_hash, allocations, genesis_doc, GENESIS_CHUNK,
                                               state)
        self._validator_state = state
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
        return build_commit_batch(self, self._db, block, commit, result)

    def commit_block(self, block: Block, commit: Commit, result: BlockResult) -> None:
        """Make ``block`` (executed as ``result``, certified by ``commit``) the new tip, atomically and durably."""
        self.build_commit_batch(block, commit, result).write()

    # ------------------------------------------------------------------ snapshots and compaction

    @property
    def earliest_height(self) -> int:
        """The lowest height whose block this store holds: 1, or the height of the snapshot it started from."""
        raw = self._db.get(meta_key(META_EARLIEST_HEIGHT))
        return U64.unpack(raw)[0] if raw is not None else 1

    def restore_snapshot(self, **verified) -> None:
        """Make a verified snapshot this fresh store's state (``snapshot_restore.write_snapshot_state``'s
        arguments but ``db``), then load and check the tip as on open."""
        write_snapshot_state(self._db, **verified)
        self._load_tip()
        self.verify_integrity()

    def compact(self) -> None:
        """Compact the whole store (LevelDB drops deleted entries and rewrites what stays); safe while the node
        runs (from a background thread)."""
        self._db.compact_range()

    def db_snapshot(self):
        """A LevelDB snapshot of the store as it is now (the caller closes it): reads of it see this state
        while commits go on, for a snapshot written in the background."""
        return self._db.snapshot()


__all__ = ["CommitBatch", "FEE_INDEX", "HistoryEntry", "STORE_FORMAT_VERSION", "Store", "genesis_txid"]
