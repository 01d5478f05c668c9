"""Snapshots: chunks by a fixed partition of the outpoint space, a manifest checked against a certified header, and
every way a bad chunk, manifest or file is refused."""

from __future__ import annotations

import dataclasses
import time
import zlib

import pytest

from node.crypto import sha256
from node.ledger import errors as E
from node.ledger.reconfig_rules import apply_inputs
from node.ledger.rules import BlockBuilder, execute_block
from node.ledger.snapshot import (
    PARTITIONS,
    SNAPSHOT_FORMAT_VERSION,
    ChunkRef,
    Manifest,
    build_snapshot,
    check_app_hash,
    check_manifest,
    chunk_index,
    chunk_muhash,
    decode_chunk,
    encode_chunk,
)
from node.ledger.state import fee_outpoint
from node.ledger.store import Store
from node.ledger.validator_state import encode_named_set
from node.types.block import Block, Header
from node.types.commit import Commit
from node.types.reconfig import inputs_hash
from node.types.transaction import OutPoint
from tests.ledger.ledger_helpers import CHAIN, PROPOSER, allocations, gen_op, key, transfer
from tests.ledger.test_reconfig_rules import validator_set
from tests.ledger.test_reconfig_store import commit

SNAPSHOT_CODES = {E.SNAPSHOT_FORMAT, E.SNAPSHOT_CHUNK, E.SNAPSHOT_HEADER, E.SNAPSHOT_APP_HASH}
TESTED: set[str] = set()


def refused(code: str, fn, *args):
    with pytest.raises(E.SnapshotError) as info:
        fn(*args)
    assert info.value.code == code and code in E.ERROR_CODES, info.value
    TESTED.add(code)


@pytest.fixture
def store(tmp_path):
    s = Store.open(str(tmp_path / "db"))
    s.initialize_genesis(CHAIN, b"G" * 32, allocations(300, 1_000), b"{}", validators=validator_set(10, 10, 10, 10))
    commit(s)
    yield s
    s.close()


def snapshot_of(store: Store):
    header = store.get_header(store.height)
    validators = encode_named_set(store.get_validators(store.height))
    return build_snapshot(store.iter_utxos(), header, validators, store.validator_state.encoded)


def test_a_snapshot_checks_out_against_its_header(store):
    manifest, chunks = snapshot_of(store)
    header = store.get_header(store.height)
    assert len(chunks) == PARTITIONS == len(manifest.chunks) and manifest.outputs == 300  # one chunk a partition
    assert Manifest.decode(manifest.encoded) == manifest
    state = check_manifest(manifest, header)
    assert state == store.validator_state
    outputs = [decode_chunk(i, chunks[i], manifest.chunks[i]) for i in range(PARTITIONS)]
    key = lambda item: item[0].txid + item[0].index.to_bytes(4, "big")  # noqa: E731
    assert sorted((o for part in outputs for o in part), key=key) == list(store.iter_utxos())
    check_app_hash(manifest, (chunk_muhash(part) for part in outputs))
    assert all(chunk_index(op) == i == manifest.chunks[i].partition for i, part in enumerate(outputs) for op, _ in part)
    assert [len(part) for part in outputs if part] == [256, 44]  # one txid with 300 outputs: 256 per chunk


def test_chunks_are_addressed_by_content(store):
    manifest, _ = snapshot_of(store)
    # spend one output: only the chunks of the spent output, the new ones and the fee output change
    spent = gen_op(0)
    tx = transfer([(spent, key(0))], [(bytes(20), 999)])
    height = store.height + 1
    builder = BlockBuilder(store, CHAIN, height, PROPOSER, store.muhash_state)
    builder.add(tx)
    result = builder.finish()
    before = store.validator_state
    after = apply_inputs(before, CHAIN, height, [])
    header = Header(CHAIN, height, 1_000 * height, store.tip_hash, result.tx_root, result.app_hash, PROPOSER,
                    bytes(32), before.current.hash, before.next.hash, inputs_hash([]), after.hash)
    block = Block(header, (tx,), None, ())
    store.commit_block(block, Commit(height, 0, block.hash, ()), execute_block(block, store, CHAIN, 100, 1 << 20))
    later, _ = snapshot_of(store)
    changed = {i for i in range(PARTITIONS) if manifest.chunks[i].hash != later.chunks[i].hash}
    touched = {chunk_index(spent), chunk_index(OutPoint(tx.txid, 0))} | (
        {chunk_index(fee_outpoint(CHAIN, height))} if result.fees else set())
    assert changed == touched


def test_bad_chunks_manifests_and_files_are_refused(store):
    manifest, chunks = snapshot_of(store)
    header = store.get_header(store.height)
    index = next(i for i, ref in enumerate(manifest.chunks) if ref.outputs > 1)
    ref = manifest.chunks[index]
    refused(E.SNAPSHOT_CHUNK, decode_chunk, index, chunks[index][:-3], ref)  # truncated stream
    refused(E.SNAPSHOT_CHUNK, decode_chunk, index, b"not zlib", ref)
    refused(E.SNAPSHOT_CHUNK, decode_chunk, index, chunks[index] + b"junk", ref)  # more than the manifest says
    refused(E.SNAPSHOT_CHUNK, decode_chunk, index, chunks[index] + b"junk",  # its size, but junk after the stream
            dataclasses.replace(ref, size=ref.size + 4))
    for other in ({"partition": ref.partition + 1}, {"part": 1}):  # the bytes name their partition and part
        refused(E.SNAPSHOT_CHUNK, decode_chunk, index, chunks[index], dataclasses.replace(ref, **other))
    raw_other = encode_chunk(index, 0, [])
    refused(E.SNAPSHOT_CHUNK, decode_chunk, index, chunks[index], dataclasses.replace(ref, hash=sha256(raw_other)))
    outside = encode_chunk(index, 0, [(OutPoint(bytes([(index + 1) % 256]) + bytes(31), 0),
                                       next(iter(store.iter_utxos()))[1])])
    refused(E.SNAPSHOT_CHUNK, decode_chunk, index, zlib.compress(outside),
            ChunkRef(sha256(outside), 1, len(zlib.compress(outside)), index, 0))
    outpoint, entry = next(iter(store.iter_utxos()))  # outputs a peer claims were created after the snapshot
    later = encode_chunk(chunk_index(outpoint), 0,
                         [(outpoint, dataclasses.replace(entry, height=manifest.height + 1))])
    later_ref = ChunkRef(sha256(later), 1, len(zlib.compress(later)), chunk_index(outpoint), 0)
    decode_chunk(chunk_index(outpoint), zlib.compress(later), later_ref)  # (the app hash leaves heights out)
    refused(E.SNAPSHOT_CHUNK, decode_chunk, chunk_index(outpoint), zlib.compress(later), later_ref, manifest.height)
    other_header = dataclasses.replace(header, app_hash=bytes(32))
    refused(E.SNAPSHOT_HEADER, check_manifest, manifest, other_header)
    refused(E.SNAPSHOT_HEADER, check_manifest, dataclasses.replace(manifest, validator_state=store.validator_state
                                                                    .encoded[:-1] + b"\x09"), header)
    lying = dataclasses.replace(manifest, app_hash=bytes(32))
    parts = [chunk_muhash(decode_chunk(i, chunks[i], manifest.chunks[i])) for i in range(PARTITIONS)]
    refused(E.SNAPSHOT_APP_HASH, check_app_hash, lying, parts)
    refused(E.SNAPSHOT_FORMAT, Manifest.decode, manifest.encoded[:-10])
    for version in (SNAPSHOT_FORMAT_VERSION - 1, SNAPSHOT_FORMAT_VERSION + 1):
        other = bytearray(manifest.encoded)
        at = len(b"ledger/snapshot") + 4
        other[at:at + 4] = version.to_bytes(4, "big")
        with pytest.raises(E.SnapshotError, match=f"snapshot format {version}; this release reads "
                                                  f"{SNAPSHOT_FORMAT_VERSION}: take a snapshot with this release"):
            Manifest.decode(bytes(other))


def test_every_snapshot_code_is_shown():
    assert SNAPSHOT_CODES <= TESTED, SNAPSHOT_CODES - TESTED


def test_the_background_maker_writes_the_same_snapshot_from_a_leveldb_snapshot(store, tmp_path):
    from node.snapshots import SnapshotMaker, SnapshotStore

    expected, chunks = snapshot_of(store)
    snapshots = SnapshotStore(tmp_path / "snapshots", keep=1)
    maker = SnapshotMaker(snapshots, duty=0.5)  # paced: the same bytes, in bursts
    header = store.get_header(store.height)
    db_snapshot = store.db_snapshot()
    commit(store)  # the chain goes on; the snapshot still sees the state it was taken at
    assert maker.start(db_snapshot, header, encode_named_set(store.get_validators(header.height)),
                       expected.validator_state)
    maker.wait(30)
    [info] = snapshots.list()
    assert info.manifest == expected  # byte for byte what build_snapshot makes, without decoding an output
    for i, ref in enumerate(info.manifest.chunks):
        assert snapshots.read_chunk(ref.hash) is not None
        decode_chunk(i, snapshots.read_chunk(ref.hash), ref)
    commit(store)
    maker = SnapshotMaker(snapshots)
    assert maker.start(store.db_snapshot(), store.get_header(store.height), encode_named_set(
        store.get_validators(store.height)), store.validator_state.encoded)
    maker.wait(30)
    assert len(snapshots.list()) == 1  # keep=1: the older manifest and its unshared chunks are gone
    named = {ref.hash.hex() for ref in snapshots.list()[0].manifest.chunks}
    assert {p.name for p in snapshots.chunk_folder.iterdir()} == named


class _FakeClock:
    def __init__(self):
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.mark.parametrize("duty", [0.1, 0.25, 0.5])
def test_the_pacer_holds_work_to_its_share_of_the_clock(duty):
    from node.snapshots import Pacer

    clock = _FakeClock()
    pacer = Pacer(duty, burst_s=0.0045, clock=clock, sleep=clock.sleep)
    worked = 0.0
    for _ in range(1000):  # pieces of work of 1 ms each
        clock.now += 0.001
        worked += 0.001
        pacer.step()
    assert len(clock.slept) == 200  # one pause after each burst of five pieces
    assert clock.slept[0] == pytest.approx(0.005 * (1 - duty) / duty)
    assert worked / clock.now == pytest.approx(duty)
    assert pacer.paused_s == pytest.approx(sum(clock.slept))


def test_an_unpaced_maker_never_sleeps():
    from node.snapshots import Pacer

    clock = _FakeClock()
    pacer = Pacer(1.0, clock=clock, sleep=clock.sleep)
    for _ in range(100):
        clock.now += 0.01
        pacer.step()
    assert clock.slept == []


def test_a_pause_is_capped_and_a_stop_ends_the_work_at_the_next_step():
    import threading

    from node.snapshots import MAX_PAUSE_S, Pacer, SnapshotStopped

    clock = _FakeClock()
    stop = threading.Event()
    pacer = Pacer(0.25, clock=clock, stop=stop, sleep=clock.sleep)
    clock.now += 10.0  # a burst stretched by a long wait for the interpreter lock
    pacer.step()
    assert clock.slept == [MAX_PAUSE_S]
    stop.set()
    with pytest.raises(SnapshotStopped):
        pacer.step()


def test_a_stopped_maker_abandons_its_snapshot_at_its_next_step(store, tmp_path):
    from node.snapshots import SnapshotMaker, SnapshotStore

    snapshots = SnapshotStore(tmp_path / "snapshots", keep=1)
    maker = SnapshotMaker(snapshots, duty=0.01)
    maker._stop.set()  # as stop() does; the thread sees it at its first step, before it writes any chunk
    assert maker.start(store.db_snapshot(), store.get_header(store.height),
                       encode_named_set(store.get_validators(store.height)), store.validator_state.encoded)
    maker.wait(5)
    assert not maker.busy and snapshots.list() == []


def test_a_pause_waits_on_the_stop_event_and_a_read_stops_within_a_few_records(tmp_path):
    import threading

    from node.ledger.store_layout import P_UTXO
    from node.snapshots import PACE_EVERY, Pacer, SnapshotStopped, chunks_from_raw

    clock = _FakeClock()
    stop = threading.Event()
    pacer = Pacer(0.01, clock=clock, stop=stop)  # pauses wait on the event
    clock.now += 10.0  # a long burst: the pause would be the longest
    threading.Timer(0.1, stop.set).start()
    started = time.monotonic()
    pacer.step()  # cut short by the stop
    assert time.monotonic() - started < 1.0
    with pytest.raises(SnapshotStopped):
        pacer.step()
    read = 0
    stop = threading.Event()

    def records():
        nonlocal read
        for i in range(100_000):
            read += 1
            if read == 100:
                stop.set()
            yield P_UTXO + i.to_bytes(32, "big") + bytes(4), bytes(36)

    with pytest.raises(SnapshotStopped):
        chunks_from_raw(records(), lambda *_: None, tmp_path / "build", Pacer(stop=stop))
    assert read <= 100 + PACE_EVERY


def test_a_paced_read_cuts_the_same_chunks(tmp_path):
    from node.ledger.store_layout import P_UTXO
    from node.snapshots import Pacer, chunks_from_raw

    items = sorted((P_UTXO + sha256(i.to_bytes(4, "big")) + (i % 300).to_bytes(4, "big"), bytes([i % 251]) * 36)
                   for i in range(2_000))
    plain: list = []
    chunks_from_raw(iter(items), lambda *chunk: plain.append(chunk), tmp_path / "a")
    clock = _FakeClock()
    pacer = Pacer(0.5, burst_s=0.0, clock=clock, sleep=clock.sleep)  # a pause at every step
    paced: list = []
    chunks_from_raw(iter(items), lambda *chunk: paced.append(chunk), tmp_path / "b", pacer)
    assert paced == plain and len(plain) == PARTITIONS and sum(n for _, _, _, n in plain) == 2_000
    assert len(clock.slept) > 0


def test_a_pacer_refuses_a_duty_outside_0_to_1():
    from node.snapshots import Pacer

    for bad in (0.0, -0.5, 1.5):
        with pytest.raises(ValueError):
            Pacer(bad)


def test_raw_chunks_are_byte_for_byte_the_encoded_chunks_and_refuse_records_out_of_order(tmp_path):
    import random

    from node.ledger.state import UtxoEntry
    from node.ledger.store_layout import P_UTXO
    from node.snapshots import chunks_from_raw

    rng = random.Random(7)
    outputs: dict[OutPoint, UtxoEntry] = {}
    for _ in range(300):  # several outputs per transaction, indices past 255 (another chunk's)
        txid = rng.randbytes(32)
        for index in rng.sample(range(600), rng.randint(1, 4)):
            outputs[OutPoint(txid, index)] = UtxoEntry(rng.randbytes(20), rng.randint(1, 10**12), rng.randint(0, 9))
    items = sorted((P_UTXO + op.txid + op.index.to_bytes(4, "big"), entry.encode()) for op, entry in outputs.items())
    got: list = []
    chunks_from_raw(iter(items), lambda *chunk: got.append(chunk), tmp_path / "build")
    by_chunk: dict[int, list] = {}
    for op, entry in outputs.items():
        by_chunk.setdefault(chunk_index(op), []).append((op, entry))
    def in_order(chunk: list) -> list:
        return sorted(chunk, key=lambda pair: (pair[0].txid, pair[0].index))

    assert [(i, part, raw) for i, part, raw, _ in got] == [
        (i, 0, encode_chunk(i, 0, in_order(by_chunk.get(i, [])))) for i in range(PARTITIONS)]
    with pytest.raises(ValueError, match="out of key order"):
        chunks_from_raw(iter([items[1], items[0]]), lambda *_: None, tmp_path / "again")


def test_after_a_snapshot_the_heap_is_handed_back_at_the_loops_priority_not_the_snapshot_threads(store, tmp_path,
                                                                                                  monkeypatch):
    import asyncio
    import os
    import threading
    from types import SimpleNamespace

    from node import maintenance, memory
    from node.snapshots import SnapshotStore

    calls: list[tuple[int, int]] = []

    def trim(pad: int) -> int:  # every caller's malloc_trim, the snapshot thread's included
        tid = threading.get_native_id()
        calls.append((tid, os.getpriority(os.PRIO_PROCESS, tid)))
        return 1

    monkeypatch.setattr(memory, "_MALLOC_TRIM", trim)
    config: object = SimpleNamespace(snapshot_interval=store.height, retain_blocks=0, snapshot_percent=100)
    keeper = maintenance.StoreMaintenance(store, SnapshotStore(tmp_path / "snapshots", keep=1), config)  # type: ignore[arg-type]
    block = store.get_block(store.height)

    async def commits() -> None:
        keeper.on_commit(block)  # due: the snapshot starts in its thread
        keeper.maker.wait(30)
        assert calls == [] and len(keeper.maker.snapshots.list()) == 1  # the snapshot thread left it to the loop
        config.snapshot_interval = 0  # type: ignore[attr-defined]
        keeper.on_commit(block)  # the next commit sees the snapshot done
        assert keeper._release_task is not None
        await keeper._release_task
        keeper.on_commit(block)  # once per snapshot
        await asyncio.sleep(0.05)

    asyncio.run(commits())
    [(thread, nice)] = calls
    assert thread != threading.get_native_id() and nice == os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def test_the_first_pass_holds_little_memory_beside_its_256_files(tmp_path):
    """All 256 partition files are open through the first pass, each with its write buffer on the C heap: at 64 KB
    that was 16 MB for every snapshot, most of what a node's heap rose by while one ran."""
    from node.ledger.store_layout import P_UTXO
    from node.memory import heap_usage
    from node.snapshots import Pacer, chunks_from_raw

    if heap_usage() is None:
        pytest.skip("this C library has no mallinfo2")
    peak = 0

    class Sampling(Pacer):
        def step(self) -> None:
            nonlocal peak
            peak = max(peak, heap_usage().in_use - before)

    keys = sorted(P_UTXO + sha256(i.to_bytes(4, "big")) + bytes(4) for i in range(300_000))  # ~1,200 a chunk
    items = ((key, bytes(36)) for key in keys)
    before = heap_usage().in_use
    chunks = []
    chunks_from_raw(items, lambda partition, part, raw, n: chunks.append(n), tmp_path / "build", Sampling())
    assert sum(chunks) == 300_000
    assert 0 < peak < 6_000_000, peak


def test_a_snapshot_is_read_through_fresh_iterators_that_see_one_state(tmp_path):
    """An iterator holds the memtable it was made with until it is closed: the snapshot's read goes on through a
    fresh one every few records, and the LevelDB snapshot keeps them all on the state it was taken at."""
    import plyvel

    from node.snapshots import read_in_segments

    db = plyvel.DB(str(tmp_path / "db"), create_if_missing=True)
    try:
        for i in range(20):
            db.put(b"U" + bytes([i]) * 4, b"v%d" % i)
        db.put(b"T\xff", b"before the prefix")
        db.put(b"V\x00", b"after it")
        snapshot = db.snapshot()
        with snapshot.iterator(prefix=b"U") as it:
            expected = list(it)
        read = []
        for key, value in read_in_segments(snapshot, b"U", every=3):
            read.append((key, value))
            db.put(key + b"\x01", b"written while the snapshot is read")  # lands right after the next start
            db.delete(b"U" + bytes([19]) * 4)
        assert read == expected and len(read) == 20
        snapshot.close()
    finally:
        db.close()
