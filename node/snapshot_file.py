"""Offline checkpoints: a snapshot in one file, carried by hand, checked from the pinned genesis before it is used.

Like Bitcoin's assumeutxo, but checked.  ``ledger-node snapshot export``
writes: a tag and format version, the manifest, the anchor (block H with
its certificate and the proof of every validator-set change from genesis to
H, ``node.light_client``; the node writes it beside each snapshot it takes),
and the compressed chunks.  ``ledger-node init
--from-snapshot FILE`` reads it into a fresh home: the proof is walked from
the genesis in the home, block H's certificate checked against the set it
reaches, the manifest against block H's header, every chunk against the
manifest and all outputs' MuHash against the app hash; only then is the
state written (``node.ledger.snapshot_restore``).  A truncated file, a file
of another chain or format, or any part that does not check is refused
with a ``snapshot-*`` code and nothing is written.
"""

from __future__ import annotations

from pathlib import Path

from node.encoding import DecodeError, Reader, Writer
from node.ledger.errors import SNAPSHOT_FORMAT, SNAPSHOT_HEADER, BlockError, SnapshotError
from node.ledger.muhash import MuHash
from node.ledger.rules import check_block_body
from node.ledger.snapshot import (
    MAX_CHUNK_FILE_BYTES,
    MAX_MANIFEST_BYTES,
    Manifest,
    check_app_hash,
    check_manifest,
    chunk_muhash,
    decode_chunk,
)
from node.ledger.validator_state import ValidatorState
from node.light_client import SetChange, check_certified, read_changes, trusted_set_at
from node.snapshots import SnapshotStore
from node.types.block import Block
from node.types.commit import Commit
from node.types.validators import ValidatorSet

FILE_TAG = "ledger/snapshot-file"
FILE_VERSION = 2
"""2: the manifest and chunks of snapshot format 2 (``node.ledger.snapshot``)."""
MAX_BLOCK_BYTES = 64 * 1024 * 1024


def encode_anchor(block_bytes: bytes, commit: Commit, changes: list[SetChange]) -> bytes:
    """What ties a snapshot to the genesis: block H, its certificate, and the validator-set changes up to H."""
    w = Writer().var_bytes(block_bytes).var_bytes(commit.encode()).u32(len(changes))
    for step in changes:
        step.write(w)
    return w.getvalue()


def read_anchor(r: Reader) -> tuple[Block, Commit, list[SetChange]]:
    return Block.decode(r.var_bytes(MAX_BLOCK_BYTES)), Commit.decode(r.var_bytes(10_000_000)), read_changes(r)


def export_snapshot(snapshots: SnapshotStore, height: int | None, out: Path) -> Manifest:
    """Write the snapshot at ``height`` (default: the latest) from the snapshots folder to ``out`` (the node may
    be running: nothing here opens its store); the manifest written."""
    heights = snapshots.heights()
    if not heights:
        raise SnapshotError(SNAPSHOT_FORMAT, "this node holds no snapshot yet (one is taken every "
                                             "snapshot_interval heights)")
    height = heights[-1] if height is None else height
    if height not in heights:
        raise SnapshotError(SNAPSHOT_FORMAT, f"no snapshot at height {height}; this node holds {heights}")
    manifest, anchor = snapshots.manifest(height), snapshots.anchor(height)
    if manifest is None:
        raise SnapshotError(SNAPSHOT_FORMAT, f"the snapshot at height {height} cannot be read by this release (taken "
                                             f"by an earlier one, of another format, or damaged; the node's log "
                                             f"says which): the node takes a new one every snapshot_interval "
                                             f"heights")
    if not anchor:
        raise SnapshotError(SNAPSHOT_FORMAT, f"the snapshot at height {height} has no anchor (the node started from "
                                             f"a snapshot and lacks a validator-set change before it), so it "
                                             f"cannot be checked from the genesis: export a later one")
    w = Writer().text(FILE_TAG).u32(FILE_VERSION).var_bytes(manifest.encoded).raw(anchor)
    for ref in manifest.chunks:
        data = snapshots.read_chunk(ref.hash)
        if data is None:
            raise SnapshotError(SNAPSHOT_FORMAT, f"chunk {ref.hash.hex()[:16]} of the snapshot is missing")
        w.var_bytes(data)
    tmp = Path(str(out) + ".tmp")
    tmp.write_bytes(w.getvalue())
    tmp.replace(out)
    return manifest


def check_anchor(chain_id: str, genesis_set: ValidatorSet, manifest: Manifest, block: Block, commit: Commit,
                 changes: list[SetChange]) -> tuple[ValidatorSet, ValidatorState]:
    """An anchor checks out from the genesis and the manifest is about its block: the set changes walked from
    ``genesis_set``, block H's body and certificate, the manifest against its header (whose ``validators_hash``
    the certified set has, so the manifest's set is the proven one).  The set of H and the validator state after
    it; ``snapshot-header`` otherwise."""
    try:
        check_block_body(block)
    except BlockError as exc:
        raise SnapshotError(SNAPSHOT_HEADER, f"block {block.height} is not the one its header names: "
                                             f"{exc.message}") from None
    validators = trusted_set_at(chain_id, genesis_set, changes, block.height)
    check_certified(chain_id, validators, block.header, commit)
    return validators, check_manifest(manifest, block.header)


def import_snapshot(path: Path, store, chain_id: str, genesis_hash: bytes, genesis_doc: bytes,
                    genesis_set: ValidatorSet) -> Manifest:
    """Check the snapshot file at ``path`` against the genesis and make it the fresh ``store``'s state."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise SnapshotError(SNAPSHOT_FORMAT, f"cannot read {path}: {exc}") from None
    try:
        r = Reader(data)
        if r.text(64) != FILE_TAG:
            raise SnapshotError(SNAPSHOT_FORMAT, f"{path} is not a snapshot file (`ledger-node snapshot export` "
                                                 f"writes them)")
        version = r.u32()
        if version != FILE_VERSION:
            raise SnapshotError(SNAPSHOT_FORMAT, f"{path} is a snapshot file of format {version}; this release "
                                                 f"reads {FILE_VERSION}: export it again with this release")
        manifest = Manifest.decode(r.var_bytes(MAX_MANIFEST_BYTES))
        block, commit, changes = read_anchor(r)
        chunks = [r.var_bytes(MAX_CHUNK_FILE_BYTES) for _ in manifest.chunks]
        r.finish()
    except (DecodeError, ValueError) as exc:
        raise SnapshotError(SNAPSHOT_FORMAT, f"{path} is truncated or damaged: {exc}") from None
    if manifest.chain_id != chain_id:
        raise SnapshotError(SNAPSHOT_HEADER, f"{path} is a snapshot of chain {manifest.chain_id!r}; this home runs "
                                             f"{chain_id!r}")
    validators, state = check_anchor(chain_id, genesis_set, manifest, block, commit, changes)
    outputs = [decode_chunk(i, data, ref, manifest.height)
               for i, (data, ref) in enumerate(zip(chunks, manifest.chunks, strict=True))]
    parts = [chunk_muhash(part) for part in outputs]
    check_app_hash(manifest, parts)
    total = MuHash()
    for part in parts:
        total.combine(part)
    store.restore_snapshot(chain_id=chain_id, genesis_hash=genesis_hash, genesis_doc=genesis_doc, block=block,
                           commit=commit, validators=manifest.validator_set(), state=state, muhash=total,
                           chunks=outputs)
    return manifest
