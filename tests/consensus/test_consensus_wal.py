import os

import pytest

from consensus_helpers import make_set, vote
from node.consensus import wal as wal_module
from node.consensus.messages import Proposal, VoteType
from node.consensus.records import LogCorruptError, frame
from node.consensus.round_machine import Timeout, TimeoutKind
from node.consensus.wal import FileWAL, MemoryWAL, encode_entry
from node.crypto import sha256
from node.encoding import Writer

VS, KEYS = make_set([1, 1, 1, 1])
A = VS.addresses
V = sha256(b"v")


def entries():
    return [
        Proposal(3, 0, -1, V, b"v", A[0], b"\x01" * 64),
        vote(KEYS, A[1], VoteType.PREVOTE, 3, 0, V),
        vote(KEYS, A[2], VoteType.PRECOMMIT, 3, 0, None),
        Timeout(TimeoutKind.PRECOMMIT, 3, 0),
    ]


def height_3_synced(path) -> FileWAL:
    """A WAL at ``path`` holding height 3's entries, synced."""
    wal = FileWAL(path)
    wal.start_height(3)
    for e in entries():
        wal.append(e)
    wal.sync()
    return wal


def test_replay_after_reopen(tmp_path):
    path = tmp_path / "wal"
    wal = height_3_synced(path)
    wal.close()
    wal = FileWAL(path)
    assert wal.height == 3
    assert wal.entries(3) == entries()
    assert wal.entries(4) == []


def test_start_height_drops_the_previous_height(tmp_path):
    path = tmp_path / "wal"
    wal = height_3_synced(path)
    wal.start_height(4)
    wal.append(Timeout(TimeoutKind.PROPOSE, 4, 0))
    assert wal.height == 4 and wal.entries(4) == [Timeout(TimeoutKind.PROPOSE, 4, 0)] and wal.entries(3) == []
    wal.close()
    wal = FileWAL(path)
    assert wal.height == 4 and wal.entries(4) == [Timeout(TimeoutKind.PROPOSE, 4, 0)]
    assert wal.entries(3) == []


def test_a_new_height_past_the_size_limit_rewrites_the_file(tmp_path, monkeypatch):
    monkeypatch.setattr(wal_module, "COMPACT_BYTES", 300)
    path = tmp_path / "wal"
    wal = height_3_synced(path)
    big = os.path.getsize(path)
    assert big > 300
    wal.start_height(4)
    wal.append(Timeout(TimeoutKind.PROPOSE, 4, 0))
    wal.close()
    assert os.path.getsize(path) < 100
    assert FileWAL(path).entries(4) == [Timeout(TimeoutKind.PROPOSE, 4, 0)]


def test_an_unsynced_height_marker_lost_in_a_crash_leaves_the_height_before(tmp_path):
    """The marker of a new height is made durable by the height's first sync; a crash before it leaves the
    previous height's log, which a restart at the new height ignores."""
    path = tmp_path / "wal"
    wal = height_3_synced(path)
    synced = os.path.getsize(path)
    wal.start_height(4)
    wal.close()  # closing flushes; cut the file back to what the last sync made durable
    with open(path, "r+b") as f:
        f.truncate(synced)
    wal = FileWAL(path)
    assert wal.height == 3 and wal.entries(4) == []


def test_torn_last_record_is_tolerated(tmp_path):
    path = tmp_path / "wal"
    height_3_synced(path).close()
    full = os.path.getsize(path)
    for cut in (1, 5, 9):  # inside the last record's header or body
        with open(path, "r+b") as f:
            f.truncate(full - cut)
        wal = FileWAL(path)
        assert wal.entries(3) == entries()[:-1]
        wal.append(Timeout(TimeoutKind.PROPOSE, 3, 1))  # appending after the cut is clean
        wal.close()
        assert FileWAL(path).entries(3) == entries()[:-1] + [Timeout(TimeoutKind.PROPOSE, 3, 1)]
        wal = FileWAL(path)
        wal.start_height(3)
        for e in entries():
            wal.append(e)
        wal.close()


def test_damage_in_the_middle_is_corruption_not_a_torn_write(tmp_path):
    path = tmp_path / "wal"
    height_3_synced(path).close()
    data = bytearray(open(path, "rb").read())
    data[30] ^= 0xFF
    open(path, "wb").write(bytes(data))
    with pytest.raises(LogCorruptError):
        FileWAL(path)


def test_memory_wal_crash_loses_only_unsynced_entries():
    wal = MemoryWAL()
    wal.start_height(3)
    e = entries()
    wal.append(e[0])
    wal.append(e[1])
    wal.sync()
    wal.append(e[2])
    assert wal.entries(3) == e[:3]
    wal.crash()
    assert wal.entries(3) == e[:2]


def test_a_crash_may_keep_part_of_the_unsynced_tail_which_is_durable_from_then_on():
    """A killed process: the kernel still held some of what was written, and the reopened log syncs it."""
    wal = MemoryWAL()
    wal.start_height(3)
    e = entries()
    wal.append(e[0])
    wal.sync()
    for entry in e[1:]:
        wal.append(entry)
    assert wal.unsynced == 3
    wal.crash(keep_unsynced=2)
    assert wal.entries(3) == e[:3] and wal.unsynced == 0
    wal.append(e[3])
    wal.crash()
    assert wal.entries(3) == e[:3]
    wal.crash(keep_unsynced=5)  # more than there is: all of it
    assert wal.entries(3) == e[:3]


def count_fsyncs(monkeypatch) -> list[int]:
    calls: list[int] = []
    real = os.fsync

    def counting(fd: int) -> None:
        calls.append(fd)
        real(fd)

    monkeypatch.setattr("node.consensus.records.os.fsync", counting)
    return calls


def test_opening_the_log_makes_what_a_killed_process_wrote_durable(tmp_path, monkeypatch):
    """A replay may sign on what it reads: that must not be lost in a power cut after the restart."""
    path = tmp_path / "wal"
    wal = FileWAL(path)
    wal.start_height(3)
    for e in entries():
        wal.append(e)
    wal._log._file.flush()  # written, never synced: the process is killed here
    calls = count_fsyncs(monkeypatch)
    reopened = FileWAL(path)
    assert reopened.entries(3) == entries()
    assert len(calls) == 1


def test_a_new_height_makes_the_height_before_durable(tmp_path, monkeypatch):
    """Also at a node that signs nothing (and so never syncs before a signature): at most one height's
    entries are ever unsynced."""
    path = tmp_path / "wal"
    wal = FileWAL(path)
    wal.start_height(3)
    calls = count_fsyncs(monkeypatch)
    for e in entries():
        wal.append(e)
    assert calls == []
    wal.start_height(4)
    assert len(calls) == 1
    wal.append(Timeout(TimeoutKind.PROPOSE, 4, 0))
    wal.start_height(5)
    assert len(calls) == 2


def test_a_height_that_synced_leaves_its_tail_to_the_next_sync(tmp_path, monkeypatch):
    """A validator syncs before each signature: what its height logged after the last one (late precommits,
    the decision) rides on the next height's first sync instead of an fsync of its own when the height ends."""
    path = tmp_path / "wal"
    wal = FileWAL(path)
    wal.start_height(3)
    calls = count_fsyncs(monkeypatch)
    wal.append(entries()[0])
    wal.sync()  # before this node's prevote
    for e in entries()[1:]:
        wal.append(e)
    wal.start_height(4)
    assert len(calls) == 1  # the signature's sync only
    wal.append(Timeout(TimeoutKind.PROPOSE, 4, 0))
    wal.sync()
    assert len(calls) == 2
    wal.start_height(5)  # height 4 synced too
    assert len(calls) == 2
    wal.start_height(6)  # height 5 synced nothing: it is made durable now
    assert len(calls) == 3
    wal.close()
    assert FileWAL(path).height == 6


def test_a_tail_of_zeros_is_a_torn_append_not_corruption(tmp_path):
    """A file whose new length reached the disk before its data reads back zeros there: no record is empty,
    so the zeros are cut off like any torn tail; zeros followed by data are still corruption."""
    path = tmp_path / "wal"
    height_3_synced(path).close()
    good = path.read_bytes()
    path.write_bytes(good + bytes(300))
    assert FileWAL(path).entries(3) == entries()
    assert path.read_bytes() == good  # cut back on open
    path.write_bytes(good + bytes(16) + good[-10:])
    with pytest.raises(LogCorruptError):
        FileWAL(path)


def test_zeros_that_begin_inside_a_record_are_a_torn_append(tmp_path):
    """The zeros a power cut leaves come in whole disk blocks, so they may begin inside a record: its header
    kept, its body cut.  Cut there and opened, not refused; a damaged record followed by data still is."""
    path = tmp_path / "wal"
    wal = FileWAL(path)
    wal.start_height(3)
    wal.sync()
    synced = path.read_bytes()
    for e in entries():
        wal.append(e)
    wal.close()
    full = path.read_bytes()
    first = synced + frame(encode_entry(entries()[0]))
    cut = len(first) + 8 + 10  # the second record's header and ten bytes of its body survive
    path.write_bytes(full[:cut] + bytes(len(full) - cut))
    assert FileWAL(path).entries(3) == entries()[:1]
    assert path.read_bytes() == first
    damaged = bytearray(full)
    damaged[cut] ^= 0xFF  # the same record damaged, the records after it intact
    path.write_bytes(bytes(damaged))
    with pytest.raises(LogCorruptError):
        FileWAL(path)


def test_a_log_of_the_one_height_format_is_read_as_it_was(tmp_path):
    """Format 2 held one height per file; its marker names it and it replays unchanged."""
    path = tmp_path / "wal"
    marker = Writer().u8(0).u64(3).text("ledger/wal/2").getvalue()
    path.write_bytes(frame(marker) + b"".join(frame(encode_entry(e)) for e in entries()))
    wal = FileWAL(path)
    assert wal.height == 3 and wal.entries(3) == entries()
    wal.start_height(4)  # carries on in today's format
    wal.close()
    assert FileWAL(path).height == 4
