"""Snapshots of the replicated state: content-addressed chunks of the UTXO set, and a manifest that names them.

A snapshot at height H holds what the transition function reads after block
H: the UTXO set, the validator state (``node.ledger.validator_state``) and
the validator set of H itself (the set that signed H, which a node needs to
check the certificate the next block carries).  The UTXO set is cut by a
fixed partition of the outpoint space (``chunk_index``: the txid's first
byte, moved on by the output index over 256, so the outputs of one
transaction with very many outputs, such as the genesis allocations, spread
over all partitions), ``PARTITIONS`` = 256 of them, each sorted by outpoint
and cut into chunks of ``CHUNK_OUTPUTS`` outputs (the last one of each
partition holds the rest, possibly none).  So a chunk's content, and its
hash (SHA-256 of its uncompressed bytes), depends only on the outputs in its
range: a node that already holds a chunk from an interrupted transfer or an
older snapshot fetches only the chunks whose hash differs.  Chunks travel and
rest compressed (zlib).

A partition is cut because anyone who can pay for transactions chooses
which partition their outputs fall in (a txid's first byte is ground in 256
tries): with one chunk per partition, about 3,600 transactions of 256 outputs
each made one chunk larger than any node accepts, and every later snapshot
could no longer be copied by anyone.  Cut, a chunk is at most
``MAX_CHUNK_BYTES`` (4.7 MB) whatever the outputs, which also bounds what a
node holds decoded while it checks one.

Anyone can check a snapshot against a certified header of its height: the
manifest names the header's hash, its validator state hashes to the header's
``reconfig_hash``, its set of H to ``validators_hash``, and the MuHash of all
chunks' outputs (each chunk's part combined) is the header's ``app_hash``.
Nothing of a snapshot becomes state before all of that holds.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property

from node.crypto import ADDRESS_SIZE, sha256
from node.encoding import DecodeError, Reader, Writer
from node.ledger.errors import (
    SNAPSHOT_APP_HASH,
    SNAPSHOT_CHUNK,
    SNAPSHOT_FORMAT,
    SNAPSHOT_HEADER,
    SnapshotError,
)
from node.ledger.muhash import MuHash
from node.ledger.state import UtxoEntry, utxo_element
from node.ledger.validator_state import ValidatorState, decode_named_set
from node.types.block import Header
from node.types.hashes import HASH_SIZE
from node.types.transaction import OutPoint
from node.types.validators import ValidatorSet

SNAPSHOT_FORMAT_VERSION = 2
"""2: partitions cut into chunks of at most ``CHUNK_OUTPUTS`` outputs (1 had one chunk per partition)."""
PARTITIONS = 256
"""Partition *i* holds the outputs of ``chunk_index`` *i*."""
CHUNK_OUTPUTS = 65_536
"""The most outputs one chunk holds: a partition of more is cut into chunks of this many, and one of the rest.
A state of 3 million outputs is 12,000 a partition, one chunk each."""
_RECORD = 32 + 4 + ADDRESS_SIZE + 8 + 8
_CHUNK_HEADER = 4 + len("ledger/snapshot-chunk") + 4 + 4 + 4
MAX_CHUNK_BYTES = _CHUNK_HEADER + CHUNK_OUTPUTS * _RECORD
"""Largest uncompressed chunk (4.7 MB)."""
MAX_CHUNK_FILE_BYTES = MAX_CHUNK_BYTES + MAX_CHUNK_BYTES // 100 + 1024
"""Largest compressed chunk: zlib adds at most a few bytes per 16 KB to data it cannot compress."""
MAX_CHUNKS = 4096
"""The most chunks a manifest names: 268 million outputs (Bitcoin's UTXO set is about 180 million).  Only a
manifest's header fields are certified, not its chunks, so this bounds what one forged manifest costs a node
that copies it before the app hash refuses it: at most 4,096 chunks of 4.7 MB (about what format 1's 256 chunks
of up to 64 MiB allowed), each decoded and hashed in about half a second."""
MAX_MANIFEST_BYTES = 16 * 1024 * 1024
_CHUNK_TAG = "ledger/snapshot-chunk"
_MANIFEST_TAG = "ledger/snapshot"


def chunk_index(outpoint: OutPoint) -> int:
    """Which chunk an output belongs to: ``(txid[0] + index // 256) mod 256``."""
    return chunk_of(outpoint.txid[0], outpoint.index)


def chunk_of(txid_first_byte: int, index: int) -> int:
    return (txid_first_byte + (index >> 8)) & 0xFF


@dataclass(frozen=True)
class ChunkRef:
    """What the manifest says of one chunk."""

    hash: bytes
    """SHA-256 of the chunk's uncompressed bytes: its address."""
    outputs: int
    """How many outputs it holds."""
    size: int
    """Its compressed size in bytes."""
    partition: int
    """The partition its outputs are of (``chunk_index``)."""
    part: int
    """Its place in its partition: part *k* holds the partition's outputs from the (k x ``CHUNK_OUTPUTS``)-th on."""


@dataclass(frozen=True)
class Manifest:
    """A snapshot's table of contents, and what it claims about the state at ``height``."""

    chain_id: str
    """The chain."""
    height: int
    """The block after which this is the state."""
    block_hash: bytes
    """Hash of block ``height`` (its header certifies everything below)."""
    app_hash: bytes
    """The header's app hash: MuHash of the UTXO set the chunks hold."""
    validators: bytes
    """The validator set of ``height`` with names (``validator_state.encode_named_set``)."""
    validator_state: bytes
    """The validator state after ``height`` (``ValidatorState.encoded``)."""
    chunks: tuple[ChunkRef, ...]
    """By partition, then part: each partition's full chunks and its last one (``check_layout``)."""

    @cached_property
    def encoded(self) -> bytes:
        w = (Writer().text(_MANIFEST_TAG).u32(SNAPSHOT_FORMAT_VERSION).text(self.chain_id).u64(self.height)
             .fixed(self.block_hash, HASH_SIZE).fixed(self.app_hash, HASH_SIZE).var_bytes(self.validators)
             .var_bytes(self.validator_state).u32(len(self.chunks)))
        for ref in self.chunks:
            w.fixed(ref.hash, HASH_SIZE).u64(ref.outputs).u64(ref.size).u32(ref.partition).u32(ref.part)
        return w.getvalue()

    @cached_property
    def hash(self) -> bytes:
        return sha256(self.encoded)

    @property
    def outputs(self) -> int:
        return sum(ref.outputs for ref in self.chunks)

    @property
    def size(self) -> int:
        """Compressed bytes of all chunks."""
        return sum(ref.size for ref in self.chunks)

    @classmethod
    def decode(cls, data: bytes) -> Manifest:
        if len(data) > MAX_MANIFEST_BYTES:
            raise SnapshotError(SNAPSHOT_FORMAT, f"a manifest is at most {MAX_MANIFEST_BYTES} bytes")
        try:
            r = Reader(data)
            if r.text(64) != _MANIFEST_TAG:
                raise DecodeError("not a snapshot manifest")
            version = r.u32()
            if version != SNAPSHOT_FORMAT_VERSION:
                raise SnapshotError(SNAPSHOT_FORMAT, f"snapshot format {version}; this release reads "
                                                     f"{SNAPSHOT_FORMAT_VERSION}: take a snapshot with this release")
            manifest = cls(r.text(64), r.u64(), r.fixed(HASH_SIZE), r.fixed(HASH_SIZE), r.var_bytes(1 << 24),
                           r.var_bytes(MAX_MANIFEST_BYTES),
                           tuple(ChunkRef(r.fixed(HASH_SIZE), r.u64(), r.u64(), r.u32(), r.u32())
                                 for _ in range(r.count(MAX_CHUNKS))))
            r.finish()
        except DecodeError as exc:
            raise SnapshotError(SNAPSHOT_FORMAT, f"the manifest does not decode: {exc}") from None
        check_layout(manifest.chunks)
        return manifest

    def state(self) -> ValidatorState:
        try:
            return ValidatorState.decode(self.validator_state)
        except DecodeError as exc:
            raise SnapshotError(SNAPSHOT_FORMAT, f"the manifest's validator state does not decode: {exc}") from None

    def validator_set(self) -> ValidatorSet:
        try:
            return decode_named_set(self.validators)
        except DecodeError as exc:
            raise SnapshotError(SNAPSHOT_FORMAT, f"the manifest's validator set does not decode: {exc}") from None


def check_layout(chunks: tuple[ChunkRef, ...]) -> None:
    """The chunks are the ones cutting every partition makes, in order: partition 0 to ``PARTITIONS`` - 1, each
    as parts 0, 1, ... of which all but the last hold ``CHUNK_OUTPUTS`` outputs, at most ``MAX_CHUNKS`` in all,
    none claimed larger than ``MAX_CHUNK_FILE_BYTES`` (``snapshot-format`` otherwise).  So no chunk is larger than
    ``MAX_CHUNK_BYTES``, and every manifest of one state has the same shape (which outputs of a partition each of
    its parts holds is left to the app hash: a maker's are consecutive, and outputs moved between parts of a
    partition still make the same state)."""
    if len(chunks) > MAX_CHUNKS:
        raise SnapshotError(SNAPSHOT_FORMAT, f"the manifest names {len(chunks)} chunks, more than the "
                                             f"{MAX_CHUNKS} this release reads")
    expected = (0, 0)
    for at, ref in enumerate(chunks):
        if ref.outputs > CHUNK_OUTPUTS or ref.size > MAX_CHUNK_FILE_BYTES:
            raise SnapshotError(SNAPSHOT_FORMAT, f"chunk {at} claims {ref.outputs} outputs in {ref.size} bytes; a "
                                                 f"chunk holds at most {CHUNK_OUTPUTS} in {MAX_CHUNK_FILE_BYTES}")
        if (ref.partition, ref.part) != expected:
            raise SnapshotError(SNAPSHOT_FORMAT, f"chunk {at} is part {ref.part} of partition {ref.partition}; "
                                                 f"the cut of every partition in order has part {expected[1]} of "
                                                 f"partition {expected[0]} there")
        expected = (ref.partition, ref.part + 1) if ref.outputs == CHUNK_OUTPUTS else (ref.partition + 1, 0)
    if expected != (PARTITIONS, 0):
        raise SnapshotError(SNAPSHOT_FORMAT, f"the manifest's chunks end before part {expected[1]} of partition "
                                             f"{expected[0]}: every one of the {PARTITIONS} partitions ends with a "
                                             f"chunk of fewer than {CHUNK_OUTPUTS} outputs")


# ---------------------------------------------------------------------------- chunks


def encode_chunk(partition: int, part: int, outputs: Iterable[tuple[OutPoint, UtxoEntry]]) -> bytes:
    """The uncompressed bytes of part ``part`` of partition ``partition`` (``outputs`` sorted by outpoint, all
    in the partition)."""
    items = list(outputs)
    w = Writer().text(_CHUNK_TAG).u32(partition).u32(part).u32(len(items))
    for outpoint, entry in items:
        w.fixed(outpoint.txid, HASH_SIZE).u32(outpoint.index).raw(entry.encode())
    return w.getvalue()


def compress_chunk(raw: bytes) -> bytes:
    return zlib.compress(raw, 6)


def decode_chunk(index: int, compressed: bytes, ref: ChunkRef, height: int | None = None
                 ) -> list[tuple[OutPoint, UtxoEntry]]:
    """The outputs of a received chunk (the manifest's ``index``-th), checked against the manifest's ``ref``
    (``snapshot-chunk`` otherwise): it has the size the manifest names and is one zlib stream and nothing after
    it, decompresses to bytes of the named hash, is the part and partition the manifest names, holds outputs of
    that partition only, sorted and distinct, and none created above ``height`` (the snapshot's, when given:
    creation heights are left out of the app hash, so this bound is all a peer's claim of them can be checked
    against).  That the parts of one partition follow each other in order is left to the app hash: an output in
    two of them counts twice in the MuHash of all."""
    if len(compressed) != ref.size:
        raise SnapshotError(SNAPSHOT_CHUNK, f"chunk {index} is {len(compressed)} bytes, the manifest says {ref.size}")
    try:
        inflater = zlib.decompressobj()
        raw = inflater.decompress(compressed, MAX_CHUNK_BYTES + 1)
        if len(raw) > MAX_CHUNK_BYTES or inflater.unconsumed_tail or inflater.unused_data or not inflater.eof:
            raise SnapshotError(SNAPSHOT_CHUNK, f"chunk {index} is not a whole zlib stream under "
                                                f"{MAX_CHUNK_BYTES} bytes")
    except zlib.error as exc:
        raise SnapshotError(SNAPSHOT_CHUNK, f"chunk {index} does not decompress: {exc}") from None
    if sha256(raw) != ref.hash:
        raise SnapshotError(SNAPSHOT_CHUNK, f"chunk {index} does not hash to what the manifest names")
    try:
        r = Reader(raw)
        if r.text(64) != _CHUNK_TAG or (r.u32(), r.u32()) != (ref.partition, ref.part):
            raise DecodeError("not this chunk")
        count = r.count(CHUNK_OUTPUTS)
        out = []
        last = b""
        for _ in range(count):
            txid, vout = r.fixed(HASH_SIZE), r.u32()
            entry = UtxoEntry.decode(r.fixed(ADDRESS_SIZE + 16))
            key = txid + vout.to_bytes(4, "big")
            if chunk_of(txid[0], vout) != ref.partition or key <= last or entry.amount <= 0:
                raise DecodeError("outputs out of order, outside the partition, or empty")
            if height is not None and entry.height > height:
                raise DecodeError(f"an output created at height {entry.height}, above the snapshot's {height}")
            last = key
            out.append((OutPoint(txid, vout), entry))
        r.finish()
    except DecodeError as exc:
        raise SnapshotError(SNAPSHOT_CHUNK, f"chunk {index} is malformed: {exc}") from None
    if len(out) != ref.outputs:
        raise SnapshotError(SNAPSHOT_CHUNK, f"chunk {index} holds {len(out)} outputs, the manifest says "
                                            f"{ref.outputs}")
    return out


def chunk_muhash(outputs: Iterable[tuple[OutPoint, UtxoEntry]]) -> MuHash:
    """The MuHash of one chunk's outputs (the chunks' combine to the app hash)."""
    muhash = MuHash()
    muhash.add_many(utxo_element(op, entry) for op, entry in outputs)
    return muhash


# ---------------------------------------------------------------------------- building and checking


def part_count(outputs: int) -> int:
    """How many chunks a partition of ``outputs`` outputs is cut into (the last one is never full)."""
    return outputs // CHUNK_OUTPUTS + 1


def cut(outputs: Iterable[tuple[OutPoint, UtxoEntry]]
        ) -> Iterator[tuple[int, int, list[tuple[OutPoint, UtxoEntry]]]]:
    """(partition, part, outputs sorted by outpoint) for every chunk, in order (held in memory: for tests and
    small sets; the node cuts its store in two passes on disk, ``node.snapshots``)."""
    buckets: list[list[tuple[OutPoint, UtxoEntry]]] = [[] for _ in range(PARTITIONS)]
    for outpoint, entry in outputs:
        buckets[chunk_index(outpoint)].append((outpoint, entry))
    for partition, items in enumerate(buckets):
        items.sort(key=lambda item: item[0].txid + item[0].index.to_bytes(4, "big"))
        for part in range(part_count(len(items))):
            yield partition, part, items[part * CHUNK_OUTPUTS:(part + 1) * CHUNK_OUTPUTS]


def build_snapshot(outputs: Iterable[tuple[OutPoint, UtxoEntry]], header: Header, validators: bytes,
                   validator_state: bytes) -> tuple[Manifest, list[bytes]]:
    """The manifest and the compressed chunks of the state after ``header``'s block."""
    refs, chunks = [], []
    for partition, part, items in cut(outputs):
        raw = encode_chunk(partition, part, items)
        compressed = compress_chunk(raw)
        refs.append(ChunkRef(sha256(raw), len(items), len(compressed), partition, part))
        chunks.append(compressed)
    manifest = Manifest(header.chain_id, header.height, header.hash, header.app_hash, validators, validator_state,
                        tuple(refs))
    return manifest, chunks


def check_manifest(manifest: Manifest, header: Header) -> ValidatorState:
    """The manifest is about ``header`` (a certified header of its height) and its validator data is the one the
    header names; returns the validator state (``snapshot-header`` otherwise)."""
    if header.chain_id != manifest.chain_id or header.height != manifest.height \
            or header.hash != manifest.block_hash or header.app_hash != manifest.app_hash:
        raise SnapshotError(SNAPSHOT_HEADER, f"the snapshot claims block {manifest.block_hash.hex()[:16]} at "
                                             f"{manifest.height}; the certified header is another")
    state = manifest.state()
    if state.hash != header.reconfig_hash or state.height != header.height:
        raise SnapshotError(SNAPSHOT_HEADER, "the snapshot's validator state is not the one the header names")
    if manifest.validator_set().hash != header.validators_hash:
        raise SnapshotError(SNAPSHOT_HEADER, "the snapshot's validator set is not the one that signed its height")
    return state


def check_app_hash(manifest: Manifest, parts: Iterable[MuHash]) -> None:
    """The chunks' outputs hash to the manifest's (the header's) app hash (``snapshot-app-hash`` otherwise)."""
    total = MuHash()
    for part in parts:
        total.combine(part)
    if total.digest() != manifest.app_hash:
        raise SnapshotError(SNAPSHOT_APP_HASH, f"the snapshot's outputs hash to {total.digest().hex()[:16]}..., "
                                               f"the certified app hash is {manifest.app_hash.hex()[:16]}...")
