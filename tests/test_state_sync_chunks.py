"""What state sync keeps on disk and whose offers it takes, when peers lie or the power goes.

A chunk left empty by a power cut is fetched and written again; the chunks of
a snapshot whose outputs do not hash to its certified app hash are deleted and
none of the peers that offered it is asked again in that run; a manifest this
release cannot read is left out of what the node serves and pruned, instead
of ending every peer's connection.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from pathlib import Path

from node import state_sync as ss
from node.crypto import sha256
from node.ledger.errors import SNAPSHOT_APP_HASH, SnapshotError
from node.ledger.snapshot import PARTITIONS, ChunkRef, Manifest, check_app_hash, compress_chunk, encode_chunk
from node.ledger.state import UtxoEntry
from node.p2p import snapshot_wire
from node.snapshots import SnapshotStore, serve_snapshot
from node.state_sync_home import CHUNKS_DIR, state_sync_dir
from node.types.transaction import OutPoint


def state_sync(home: Path) -> ss.StateSync:
    """A state sync of ``home`` with only what the chunk handling reads set."""
    sync = object.__new__(ss.StateSync)
    sync.home, sync.above, sync.chain_id = home, 0, "c"
    sync.folder = state_sync_dir(home) / CHUNKS_DIR
    sync.own = SnapshotStore(home / "snapshots")
    sync.transfer = ss.Transfer()
    return sync


def snapshot(salt: bytes, height: int = 10) -> tuple[Manifest, list[bytes]]:
    """A manifest of one output a chunk (its header fields made up) and its compressed chunks."""
    refs, compressed = [], []
    for i in range(PARTITIONS):
        outputs = [(OutPoint(bytes([i]) + sha256(salt + bytes([i]))[1:], 0), UtxoEntry(b"\x01" * 20, 5, 0))]
        raw = encode_chunk(i, 0, outputs)
        data = compress_chunk(raw)
        refs.append(ChunkRef(sha256(raw), len(outputs), len(data), i, 0))
        compressed.append(data)
    return Manifest("c", height, b"\x00" * 32, b"\x11" * 32, b"", b"", tuple(refs)), compressed


class Link:
    def __init__(self, name: str):
        self.name = self.node_id = name


class Serving:
    """A reactor whose peers serve the given chunks."""

    def __init__(self, chunks: dict[bytes, bytes]):
        self.chunks = chunks
        self.asked = 0

    async def request_snapshot(self, link, kind, body=b""):
        self.asked += 1
        return self.chunks.get(body)


def test_a_chunk_a_power_cut_left_empty_is_fetched_and_written_again(tmp_path):
    manifest, chunks = snapshot(b"honest")
    sync = state_sync(tmp_path)
    sync.folder.mkdir(parents=True)
    ref = manifest.chunks[0]
    (sync.folder / ref.hash.hex()).write_bytes(b"")  # a rename that reached the disk before its data
    reactor = Serving({r.hash: data for r, data in zip(manifest.chunks, chunks, strict=True)})
    (sync.folder / manifest.chunks[1].hash.hex()).write_bytes(chunks[1])  # a whole one, kept from before
    parts = asyncio.run(sync._chunks(reactor, manifest, [Link("peer")]))
    assert len(parts) == PARTITIONS and reactor.asked == PARTITIONS - 1
    assert sync._read(ref.hash) == chunks[0]
    assert not list(sync.folder.glob("*.tmp"))


def test_a_snapshot_that_fails_its_app_hash_leaves_no_chunk_and_its_peers_are_not_asked_again(tmp_path, monkeypatch):
    forged, forged_chunks = snapshot(b"forged", height=30)
    forged_again, _ = snapshot(b"forged again", height=40)  # the same peer's next try, with fresh hashes
    honest, _ = snapshot(b"honest", height=20)
    evil, other, good = Link("evil"), Link("other"), Link("good")
    rounds = [{forged.hash: (forged, [evil, other])},
              {forged_again.hash: (forged_again, [evil]), honest.hash: (honest, [good, other])}]

    async def list_offers(reactor, chain_id):
        return rounds.pop(0) if rounds else {}

    sync = state_sync(tmp_path)
    taken: list[tuple[int, list[str]]] = []

    async def take(reactor, manifest, links):
        taken.append((manifest.height, [link.name for link in links]))
        if manifest is forged:  # its chunks fetched and kept, then the app hash does not match
            reactor = Serving({r.hash: data for r, data in zip(forged.chunks, forged_chunks, strict=True)})
            check_app_hash(manifest, await sync._chunks(reactor, manifest, links))
        return "restored"

    monkeypatch.setattr(ss, "list_offers", list_offers)
    monkeypatch.setattr(ss, "blocks_follow", lambda reactor, height: True)
    monkeypatch.setattr(sync, "_take", take)
    real_sleep = asyncio.sleep
    monkeypatch.setattr(ss.asyncio, "sleep", lambda seconds: real_sleep(0))
    assert asyncio.run(sync._fetch(reactor=None)) == "restored"
    # the peers of the snapshot that failed are left out: the next one of theirs is not tried, and the honest
    # snapshot is fetched from its other peer only
    assert taken == [(30, ["evil", "other"]), (20, ["good"])]
    assert not sync.folder.exists() or not any(sync.folder.iterdir())


def test_chunks_a_transfer_left_that_the_next_manifest_does_not_name_are_deleted_before_it_fetches(tmp_path):
    """A forged transfer that ended before its app hash was checked (its peer withheld a chunk) left its chunks."""
    forged, forged_chunks = snapshot(b"forged")
    sync = state_sync(tmp_path)
    withheld = Serving({r.hash: data for r, data in zip(forged.chunks[1:], forged_chunks[1:], strict=True)})
    try:
        asyncio.run(sync._chunks(withheld, forged, [Link("evil")]))
    except SnapshotError as exc:
        assert exc.code == "snapshot-chunk"
    else:
        raise AssertionError("a transfer missing a chunk ended")
    assert len(list(sync.folder.iterdir())) == PARTITIONS - 1
    (sync.folder / "crash.tmp").write_bytes(b"x")
    honest, honest_chunks = snapshot(b"honest")
    shared = forged.chunks[5]  # a chunk both name (the same outputs) is kept, and not fetched again
    honest = dataclasses.replace(honest, chunks=honest.chunks[:5] + (shared,) + honest.chunks[6:])
    honest_chunks[5] = forged_chunks[5]
    reactor = Serving({r.hash: data for r, data in zip(honest.chunks, honest_chunks, strict=True)})
    asyncio.run(sync._chunks(reactor, honest, [Link("good")]))
    assert {path.name for path in sync.folder.iterdir()} == {ref.hash.hex() for ref in honest.chunks}
    assert reactor.asked == PARTITIONS - 1


def test_an_older_peers_snapshot_of_another_format_is_left_out_alone_and_logged_once(caplog):
    from node.snapshot_offers import list_offers

    current, _ = snapshot(b"current", height=20)
    format_1 = b"\x00\x00\x00\x0fledger/snapshot\x00\x00\x00\x01" + bytes(100)
    older = Link("older")
    older.up = True

    class Listing:
        links = [older]

        async def request_snapshot(self, link, kind, body=b""):
            return snapshot_wire.encode_list_body([format_1, current.encoded])

    with caplog.at_level("WARNING", logger="ledger.statesync"):
        for _ in range(3):
            offers = asyncio.run(list_offers(Listing(), "c"))
            assert list(offers) == [current.hash] and offers[current.hash][1] == [older]
    said = [r.getMessage() for r in caplog.records if "older" in r.getMessage()]
    assert len(said) == 1 and "snapshot format 1; this release reads 2" in said[0], said


def test_the_app_hash_failure_is_the_one_that_distrusts_peers():
    try:
        check_app_hash(snapshot(b"x")[0], [])
    except SnapshotError as exc:
        assert exc.code == SNAPSHOT_APP_HASH
    else:
        raise AssertionError("a snapshot with no outputs checked out")


def snapshots_beside_one_unreadable(tmp_path: Path, keep: int, anchor: bytes, format_version: int
                                    ) -> tuple[SnapshotStore, Manifest]:
    """A snapshots folder with a readable snapshot at height 10 (with ``anchor``) and, at 20, a manifest of
    ``format_version`` that this release cannot read."""
    store = SnapshotStore(tmp_path / "snapshots", keep=keep)
    store.folder.mkdir(parents=True)
    manifest, chunks = snapshot(b"readable", height=10)
    for ref, data in zip(manifest.chunks, chunks, strict=True):
        store.write_chunk(ref.hash, data)
    store.add(manifest, anchor)
    (store.folder / "20.manifest").write_bytes(b"\x00\x00\x00\x0fledger/snapshot" + format_version.to_bytes(4, "big"))
    (store.folder / "20.anchor").write_bytes(b"anchor")
    return store, manifest


def test_a_manifest_this_release_cannot_read_is_not_served_and_is_pruned(tmp_path):
    # of a later format (after an upgrade and a downgrade), or damaged
    store, manifest = snapshots_beside_one_unreadable(tmp_path, keep=1, anchor=b"anchor", format_version=0x63)
    unreadable = store.folder / "20.manifest"
    assert [info.height for info in store.list()] == [10]
    body = serve_snapshot(store, snapshot_wire.LIST_REQUEST, b"")
    assert snapshot_wire.decode_list(body, 1 << 20) == [manifest.encoded]
    store.prune()
    assert not unreadable.exists() and not (store.folder / "20.anchor").exists()
    assert [info.height for info in store.list()] == [10]
    assert all(store.has_chunk(ref.hash) for ref in manifest.chunks)  # the readable snapshot keeps its chunks


def test_export_says_why_a_listed_snapshot_cannot_be_exported(tmp_path):
    from node.snapshot_file import export_snapshot

    # at 10 without an anchor (taken after a start from a snapshot that lacked a set change before it); at 20 format 1
    store, _ = snapshots_beside_one_unreadable(tmp_path, keep=3, anchor=b"", format_version=1)
    for height, says in ((20, "cannot be read by this release"), (10, "has no anchor"),
                         (30, r"no snapshot at height 30; this node holds \[10, 20\]")):
        try:
            export_snapshot(store, height, tmp_path / "out.bin")
        except SnapshotError as exc:
            assert exc.code == "snapshot-format" and re.search(says, exc.message), exc.message
        else:
            raise AssertionError(f"height {height} exported")
        assert not (tmp_path / "out.bin").exists()


def test_the_list_answer_follows_the_snapshots_and_a_prune_clears_what_crashes_left(tmp_path):
    store = SnapshotStore(tmp_path / "snapshots", keep=2)
    first, first_chunks = snapshot(b"first", height=10)
    for ref, data in zip(first.chunks, first_chunks, strict=True):
        store.write_chunk(ref.hash, data)
    store.add(first, b"anchor")
    (store.folder / "15.manifest").write_bytes(first.encoded)  # a snapshot without its anchor is not offered
    assert snapshot_wire.decode_list(store.list_body(), 1 << 20) == [first.encoded]
    second, second_chunks = snapshot(b"second", height=20)
    for ref, data in zip(second.chunks, second_chunks, strict=True):
        store.write_chunk(ref.hash, data)
    for stray in ("chunks/ab.tmp", "30.manifest.tmp", "30.anchor.tmp"):  # writes a crash cut short
        (store.folder / stray).write_bytes(b"half")
    store.add(second, b"anchor")
    # 10 pruned (keep 2), 15 kept but not offered (no anchor)
    assert snapshot_wire.decode_list(store.list_body(), 1 << 20) == [second.encoded]
    assert not list(store.folder.rglob("*.tmp"))


def test_the_list_answer_follows_an_anchor_written_after_its_manifest(tmp_path):
    store = SnapshotStore(tmp_path / "snapshots", keep=2)
    manifest, chunks = snapshot(b"late anchor", height=10)
    for ref, data in zip(manifest.chunks, chunks, strict=True):
        store.write_chunk(ref.hash, data)
    store.add(manifest, b"")  # no anchor yet: not offered
    assert snapshot_wire.decode_list(store.list_body(), 1 << 20) == []
    store.add(manifest, b"anchor")  # the same height, now provable
    assert snapshot_wire.decode_list(store.list_body(), 1 << 20) == [manifest.encoded]
