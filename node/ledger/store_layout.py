"""The store's key layout: one-byte prefixes, fixed-width numbers, metadata names and the format version.

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
V     height u64                                  the validator set (with names) of that height, written
                                                  for height 1 and every height whose set differs from
                                                  the one before, names included (the set of h is the
                                                  last entry <= h)
M     name                                        metadata (height, app hash, MuHash, chain id, ...)
====  ==========================================  ===============================================

The layout and what is hashed into it (block ids, tx roots) have a version,
``STORE_FORMAT_VERSION``, written when a store is created; a store of any
other version (or of none: written before versions existed) is refused with
``store-format`` rather than read wrongly.  There is no migration: a node
starts again from a fresh home and syncs the chain from its peers.

The commit path builds keys inline from the prefixes and ``U64``/``U32`` (it
runs per UTXO); the readers use the encoders and decoders below.
"""

from __future__ import annotations

import struct

from node.crypto import ADDRESS_SIZE
from node.types.transaction import OutPoint

U64 = struct.Struct(">Q")
"""Heights, amounts and balances: big-endian u64, so keys sort by height."""
U32 = struct.Struct(">I")
"""Output and transaction indexes, the format version."""
TX_LOCATION = struct.Struct(">QIII")
"""Value of a ``T`` key: height, index in block, offset and length of the transaction in the block's bytes."""

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
P_VALSET = b"V"

STORE_FORMAT_VERSION: int = 3
"""3: header version 2 (next validators, reconfiguration inputs and state), validator sets by height."""
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
META_VALIDATOR_STATE = "validator_state"
META_EARLIEST_HEIGHT = "earliest_height"
"""The lowest height whose block this store holds (absent: 1, it holds every block since genesis)."""
RESERVED_META = frozenset({META_HEIGHT, META_APP_HASH, META_MUHASH, META_CHAIN_ID, META_GENESIS_HASH,
                           META_GENESIS_DOC, META_GENESIS_APP_HASH, META_GENESIS_PENDING, META_FORMAT_VERSION,
                           META_VALIDATOR_STATE, META_EARLIEST_HEIGHT})
"""Metadata names the ledger writes itself: ``put_meta``/``delete_meta`` refuse them."""

OUTPOINT_KEY_SIZE = 32 + U32.size
"""txid || index u32."""


def meta_key(name: str | bytes) -> bytes:
    return P_META + (name.encode("utf-8") if isinstance(name, str) else bytes(name))


def outpoint_key(outpoint: OutPoint) -> bytes:
    """txid || index u32: the ``U`` key after its prefix, and the tail of a ``u`` key."""
    return outpoint.txid + U32.pack(outpoint.index)


def decode_utxo_key(key: bytes) -> OutPoint:
    """The outpoint of a ``U`` key."""
    return OutPoint(key[1:33], U32.unpack_from(key, 33)[0])


def decode_addr_utxo_key(key: bytes) -> OutPoint:
    """The outpoint of a ``u`` key (prefix, 20-byte address, outpoint)."""
    start = 1 + ADDRESS_SIZE
    return OutPoint(key[start:start + 32], U32.unpack_from(key, start + 32)[0])


def decode_history_key(key: bytes) -> tuple[int, int]:
    """(height, index) of an ``h`` key (prefix, 20-byte address, height u64, index u32)."""
    start = 1 + ADDRESS_SIZE
    return U64.unpack_from(key, start)[0], U32.unpack_from(key, start + U64.size)[0]
