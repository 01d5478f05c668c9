"""The node's snapshots on disk, and taking them in the background.

Layout under ``HOME/snapshots/``: ``chunks/HASH`` holds each compressed
chunk once, named by its content hash (a chunk that did not change between
two snapshots is stored once), and ``HEIGHT.manifest`` names the chunks of
the snapshot at that height.  A snapshot is written chunks first, then its
manifest under a temporary name, fsynced and renamed: a crash leaves either
a whole snapshot or none (a stray chunk is collected later).  The last
``snapshot_keep`` snapshots are kept; chunks no kept manifest names are
deleted.

Every ``snapshot_interval`` heights the node takes one: at the commit it
opens a LevelDB snapshot of the UTXO set (instant), and a background thread
reads it, cuts it into chunks and writes them, so consensus never waits for
it (``SnapshotMaker``).
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from node.crypto import sha256
from node.ledger.errors import SnapshotError
from node.ledger.snapshot import CHUNK_OUTPUTS, PARTITIONS, ChunkRef, Manifest, chunk_of, compress_chunk, part_count
from node.ledger.store_layout import P_UTXO, U32
from node.memory import page_out_tables
from node.p2p import snapshot_wire
from node.types.block import Header

log = logging.getLogger("ledger.snapshots")

SNAPSHOTS_DIR = "snapshots"
CHUNKS_DIR = "chunks"
MANIFEST_SUFFIX = ".manifest"
BUILD_DIR = ".building"
"""Where a snapshot's records wait, by partition, between the two passes."""
ANCHOR_SUFFIX = ".anchor"
"""Beside each manifest: block H, its certificate and the set changes from genesis (``node.snapshot_file``)."""
_CHUNK_TAG = b"\x00\x00\x00\x15ledger/snapshot-chunk"
"""``Writer().text("ledger/snapshot-chunk")``: the start of every chunk (``node.ledger.snapshot.encode_chunk``)."""


def _fsync_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


@dataclass(frozen=True)
class SnapshotInfo:
    """One snapshot this node offers."""

    height: int
    """Its height."""
    manifest: Manifest
    """Its manifest."""


class SnapshotStore:
    """The snapshots under one folder."""

    def __init__(self, folder: Path, keep: int = 2):
        self.folder = Path(folder)
        self.keep = max(1, keep)
        self._lock = threading.Lock()
        self._unreadable: set[int] = set()
        """Heights whose manifest did not decode (logged once each)."""
        self._list_body: tuple[tuple, bytes] | None = None
        """The files listed and the list answer made of them (``list_body``)."""

    @property
    def chunk_folder(self) -> Path:
        return self.folder / CHUNKS_DIR

    def heights(self) -> list[int]:
        if not self.folder.exists():
            return []
        out = []
        for path in self.folder.iterdir():
            if path.name.endswith(MANIFEST_SUFFIX) and path.name[:-len(MANIFEST_SUFFIX)].isdigit():
                out.append(int(path.name[:-len(MANIFEST_SUFFIX)]))
        return sorted(out)

    def manifest(self, height: int) -> Manifest | None:
        """The manifest of the snapshot at ``height``; None when there is none, or when it does not decode (of
        another format version, or damaged: logged, left out of what is served, deleted by the next prune)."""
        path = self.folder / f"{height}{MANIFEST_SUFFIX}"
        try:
            return Manifest.decode(path.read_bytes())
        except FileNotFoundError:
            return None
        except SnapshotError as exc:
            if height not in self._unreadable:
                self._unreadable.add(height)
                log.warning("snapshot at height %d left out: %s (%s)", height, exc, path)
            return None

    def has_anchor(self, height: int) -> bool:
        """Whether the snapshot at ``height`` has its anchor (without reading it: it holds a whole block)."""
        try:
            return (self.folder / f"{height}{ANCHOR_SUFFIX}").stat().st_size > 0
        except FileNotFoundError:
            return False

    def _listing(self) -> tuple:
        """What the list answer is made of, as the file system tells it: each height with its manifest's and
        anchor's size and time of change."""
        out = []
        for height in self.heights():
            files: list[tuple[int, int] | None] = []
            for suffix in (MANIFEST_SUFFIX, ANCHOR_SUFFIX):
                try:
                    stat = (self.folder / f"{height}{suffix}").stat()
                    files.append((stat.st_size, stat.st_mtime_ns))
                except FileNotFoundError:
                    files.append(None)
            out.append((height, *files))
        return tuple(out)

    def list_body(self) -> bytes:
        """The answer to a peer's list request: the manifests of the snapshots with an anchor, encoded; kept
        while the folder holds the same files (a peer that asks again and again costs a listing and a few stat
        calls, instead of reading and decoding every manifest and reading every anchor, a whole block each)."""
        listing = self._listing()
        cached = self._list_body
        if cached is None or cached[0] != listing:
            body = snapshot_wire.encode_list_body([info.manifest.encoded for info in self.list()
                                                   if self.has_anchor(info.height)])
            cached = self._list_body = (listing, body)
        return cached[1]

    def anchor(self, height: int) -> bytes | None:
        try:
            return (self.folder / f"{height}{ANCHOR_SUFFIX}").read_bytes()
        except FileNotFoundError:
            return None

    def list(self) -> list[SnapshotInfo]:
        out = []
        for height in self.heights():
            manifest = self.manifest(height)
            if manifest is not None:
                out.append(SnapshotInfo(height, manifest))
        return out

    def has_chunk(self, chunk_hash: bytes) -> bool:
        return (self.chunk_folder / chunk_hash.hex()).exists()

    def read_chunk(self, chunk_hash: bytes) -> bytes | None:
        try:
            return (self.chunk_folder / chunk_hash.hex()).read_bytes()
        except FileNotFoundError:
            return None

    def write_chunk(self, chunk_hash: bytes, compressed: bytes) -> None:
        self.chunk_folder.mkdir(parents=True, exist_ok=True)
        path = self.chunk_folder / chunk_hash.hex()
        if not path.exists():
            _fsync_write(path, compressed)

    def add(self, manifest: Manifest, anchor: bytes) -> None:
        """Publish ``manifest`` (its chunks written before) with its anchor, then forget snapshots beyond
        ``keep``."""
        self.folder.mkdir(parents=True, exist_ok=True)
        _fsync_write(self.folder / f"{manifest.height}{ANCHOR_SUFFIX}", anchor)
        _fsync_write(self.folder / f"{manifest.height}{MANIFEST_SUFFIX}", manifest.encoded)
        self.prune()

    def prune(self) -> None:
        with self._lock:
            readable = [info.height for info in self.list()]
            for height in sorted(set(self.heights()) - set(readable[-self.keep:])):  # older ones, unreadable ones
                (self.folder / f"{height}{MANIFEST_SUFFIX}").unlink(missing_ok=True)
                (self.folder / f"{height}{ANCHOR_SUFFIX}").unlink(missing_ok=True)
            named = {ref.hash.hex() for info in self.list() for ref in info.manifest.chunks}
            if self.chunk_folder.exists():
                for path in self.chunk_folder.iterdir():
                    if path.name not in named:  # (a .tmp is a write a crash cut short: snapshots are written by
                        path.unlink(missing_ok=True)  # one thread, which prunes after its writes)
            for path in self.folder.glob(f"*{MANIFEST_SUFFIX}.tmp"):
                path.unlink(missing_ok=True)
            for path in self.folder.glob(f"*{ANCHOR_SUFFIX}.tmp"):
                path.unlink(missing_ok=True)


def serve_snapshot(snapshots: SnapshotStore, kind: int, body: bytes) -> bytes:
    """The answer body to a peer's snapshot request (``node.p2p.snapshot_wire``): the snapshots this node can
    prove from genesis (those with an anchor), one's anchor, or one chunk; empty when it holds none."""
    if kind == snapshot_wire.LIST_REQUEST:
        return snapshots.list_body()
    if kind == snapshot_wire.ANCHOR_REQUEST:
        return snapshots.anchor(int.from_bytes(body, "big")) or b""
    if kind == snapshot_wire.CHUNK_REQUEST:
        return snapshots.read_chunk(body) or b""
    return b""


_RECORD_BYTES = 36 + 36
"""A chunk record: txid || index u32 (the ``U`` key without its prefix), then the stored UtxoEntry."""


class Pacer:
    """Holds a background thread's work to a share of the wall clock: after each burst of ``burst_s`` it sleeps
    long enough that the burst was ``duty`` of the time (at most ``MAX_PAUSE_S`` at once).  A thread that reads
    LevelDB item by item gives up the GIL at every item and takes it back from the event loop, forcing a switch
    every few milliseconds while the loop is busy; in bursts, the loop runs undisturbed between them.  Once
    ``stop`` is set, the next step raises ``SnapshotStopped`` (a pause is cut short by it)."""

    def __init__(self, duty: float = 1.0, burst_s: float = 0.005, clock: Callable[[], float] = time.monotonic,
                 stop: threading.Event | None = None, sleep: Callable[[float], object] | None = None):
        if not 0.0 < duty <= 1.0:
            raise ValueError(f"a pacer's duty is above 0 and at most 1, not {duty}")
        self.duty = duty
        """The share of the wall clock the thread works (1.0: no pauses)."""
        self.burst_s = burst_s
        """How long the thread works before a pause."""
        self._stop = stop or threading.Event()
        self._clock, self._sleep = clock, sleep or self._stop.wait
        self._since = clock()
        self.paused_s = 0.0
        """Seconds slept so far."""

    def step(self) -> None:
        """Called between small pieces of work: raises ``SnapshotStopped`` once stopped, pauses when the current
        burst is over."""
        if self._stop.is_set():
            raise SnapshotStopped
        if self.duty >= 1.0:
            return
        worked = self._clock() - self._since
        if worked >= self.burst_s:
            pause = min(MAX_PAUSE_S, worked * (1.0 - self.duty) / self.duty)
            self._sleep(pause)
            self.paused_s += pause
            self._since = self._clock()


MAX_PAUSE_S = 2.0
"""The longest pause of a ``Pacer`` at once (a burst stretched by a suspended machine pauses no longer)."""
PACE_EVERY = 16
"""Records read between two calls of the pacer.  While the event loop is busy each record can cost the thread a
wait of up to the interpreter's switch interval (5 ms) for the lock, so a burst is bounded by records too."""


SEGMENT_RECORDS = 65_536
"""Records read through one LevelDB iterator before the next one goes on from there.  An iterator holds the
memtable it was made with (and the one being flushed, if any) until it is closed, however many memtables the
commits fill and flush meanwhile: a snapshot read through one iterator held each node's memory 10-17 MB higher
for the whole snapshot (3-6 MB memtables, ``node.ledger.leveldb_options``)."""


def read_in_segments(db_snapshot, prefix: bytes, every: int = SEGMENT_RECORDS):
    """The (key, value) records under ``prefix`` (its last byte below 0xff) in a LevelDB snapshot, in key order,
    through a fresh iterator every ``every`` records (the snapshot makes them all see the same state)."""
    start, stop = prefix, prefix[:-1] + bytes([prefix[-1] + 1])
    while True:
        read = 0
        with db_snapshot.iterator(start=start, stop=stop, fill_cache=False) as it:  # not the commit path's cache
            for key, value in it:
                yield key, value
                read += 1
                if read == every:
                    start = key + b"\x00"  # the next key after it
                    break
            else:
                return


SNAPSHOT_FILE_BUFFER = 8 * 1024
"""Write buffer of each of the 256 partition files a snapshot's first pass fills."""


def chunks_from_raw(items, on_chunk: Callable[[int, int, bytes, int], None], workdir: Path,
                    pacer: Pacer | None = None) -> None:
    """Cut the store's raw UTXO records (``P_UTXO`` key, value) into the chunks' uncompressed bytes, byte for
    byte what ``encode_chunk`` makes of ``cut``'s chunks, without decoding a single output;
    ``on_chunk(partition, part, raw, outputs)`` gets each in order.  Two passes over files in ``workdir``: the
    records go to their partition's file as they come, then each file is read back a chunk at a time, so memory
    holds one chunk at a time.  ``items`` come in key order (a LevelDB iterator's), which is the outpoints'
    order, so each file is already in its partition's order: a record out of order is a ``ValueError``.
    ``pacer`` (if any) is stepped every ``PACE_EVERY`` records and after every chunk."""
    pacer = pacer or Pacer()
    workdir.mkdir(parents=True, exist_ok=True)
    paths = [workdir / f"{i:03d}" for i in range(PARTITIONS)]
    # 256 files open at once: each one's write buffer is C heap for the whole first pass.  64 KB each was 16 MB,
    # most of the 20-25 MB the heap in use rose by while a snapshot ran; 8 KB is 2 MB, and the 2.7 million
    # outputs of a 60-minute run at 1,000 tx/s are then about 24,000 writes (195 MB) instead of 3,000.
    files = [open(path, "wb", buffering=SNAPSHOT_FILE_BUFFER) for path in paths]  # noqa: SIM115 (closed below)
    try:
        count = 0
        last = b""
        for key, value in items:
            if key <= last:
                raise ValueError(f"UTXO records out of key order at record {count}")
            last = key
            files[chunk_of(key[1], U32.unpack_from(key, 33)[0])].write(key[1:] + value)
            count += 1
            if count % PACE_EVERY == 0:
                pacer.step()
    finally:
        for handle in files:
            handle.close()
    for partition, path in enumerate(paths):
        with open(path, "rb") as handle:  # fixed-width records, in key order: no object per record, no sort
            for part in range(part_count(path.stat().st_size // _RECORD_BYTES)):
                pacer.step()
                data = handle.read(CHUNK_OUTPUTS * _RECORD_BYTES)
                outputs = len(data) // _RECORD_BYTES
                on_chunk(partition, part, b"".join((_CHUNK_TAG, U32.pack(partition), U32.pack(part),
                                                    U32.pack(outputs), data)), outputs)
        path.unlink()
    shutil.rmtree(workdir, ignore_errors=True)


class SnapshotMaker:
    """Takes a snapshot of the store at a height, in a background thread."""

    def __init__(self, snapshots: SnapshotStore, tables_folder: str | None = None, duty: float = 1.0):
        self.snapshots = snapshots
        self.duty = duty
        """The share of the wall clock the snapshot thread works (``Pacer``)."""
        self.tables_folder = tables_folder
        """The store's folder, whose table pages the snapshot's full read left resident (None: left alone)."""
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.last_seconds: float | None = None
        """How long the last snapshot took."""

    @property
    def busy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, db_snapshot, header: Header, validators: bytes, validator_state: bytes,
              anchor: bytes = b"") -> bool:
        """Begin a snapshot of ``db_snapshot`` (a LevelDB snapshot taken right after block ``header``'s
        commit); False (and the LevelDB snapshot released) when one is still being written."""
        if self.busy:
            db_snapshot.close()
            return False
        self._thread = threading.Thread(target=self._run, args=(db_snapshot, header, validators, validator_state,
                                                                anchor),
                                        name=f"snapshot-{header.height}", daemon=True)
        self._thread.start()
        return True

    def _run(self, db_snapshot, header: Header, validators: bytes, validator_state: bytes, anchor: bytes) -> None:
        started = time.monotonic()
        refs: list[ChunkRef] = []

        def on_chunk(partition: int, part: int, raw: bytes, outputs: int) -> None:  # (the pacer stepped before)
            chunk_hash = sha256(raw)
            if not self.snapshots.has_chunk(chunk_hash):
                compressed = compress_chunk(raw)
                self.snapshots.write_chunk(chunk_hash, compressed)
                size = len(compressed)
            else:
                size = (self.snapshots.chunk_folder / chunk_hash.hex()).stat().st_size
            refs.append(ChunkRef(chunk_hash, outputs, size, partition, part))

        pacer = Pacer(self.duty, stop=self._stop)
        try:
            _lower_thread_priority()
            chunks_from_raw(read_in_segments(db_snapshot, P_UTXO), on_chunk, self.snapshots.folder / BUILD_DIR,
                            pacer)
            manifest = Manifest(header.chain_id, header.height, header.hash, header.app_hash, validators,
                                validator_state, tuple(refs))
            self.snapshots.add(manifest, anchor)
            self.last_seconds = time.monotonic() - started
            log.info("snapshot height=%d outputs=%d bytes=%d seconds=%.2f paused=%.2f", header.height,
                     manifest.outputs, manifest.size, self.last_seconds, pacer.paused_s)
        except SnapshotStopped:
            log.info("snapshot at height %d abandoned: the node is stopping", header.height)
        except Exception:  # noqa: BLE001  (a snapshot that fails is logged and skipped; the node goes on)
            log.exception("snapshot at height %d failed", header.height)
        finally:
            db_snapshot.close()
            # The heap pages its buffers freed are handed back by the node's loop once it sees this thread done
            # (StoreMaintenance): malloc_trim here would hold the heap's locks in a thread of lower priority.
            if self.tables_folder is not None:  # and the pages of every table the full read went through
                page_out_tables(self.tables_folder)

    def wait(self, timeout: float | None = None) -> None:
        """Wait until the snapshot being written (if any) is done."""
        if self._thread is not None:
            self._thread.join(timeout)

    def stop(self, timeout: float = 30.0) -> None:
        """Abandon a snapshot being written (its chunks stay for the next one) and wait for the thread: the
        store may be closed after this."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)


def _lower_thread_priority() -> None:
    """Give the snapshot thread a lower CPU priority than the node's other work (Linux: per-thread nice)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
    except (AttributeError, OSError):
        pass


class SnapshotStopped(Exception):
    """The node stops: the snapshot being written is abandoned."""
