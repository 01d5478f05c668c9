"""Length- and checksum-framed records for append-only files (the WAL and the signer's log).

Each record is ``u32 length || u32 crc32(payload) || payload``, and no payload
is empty.  A crash tears only what was appended since the last sync: its
last record may be incomplete, and where the file's new length reached the
disk before its data the tail reads back as zeros, whole blocks of them,
which may begin inside a record (its header kept, its body cut).  So
``read_records`` stops at an incomplete last record, at a damaged record
followed by nothing but zeros, or at a tail of zero bytes, and reports where
the good prefix ends; the caller truncates there.  A damaged record followed
by data is not a torn write and is reported as corruption.
"""

from __future__ import annotations

import os
import struct
import zlib

_HEADER = struct.Struct(">II")
MAX_RECORD_BYTES = 128 * 1024 * 1024


class LogCorruptError(Exception):
    """A record in the middle of a log is damaged; ``code`` is stable."""

    code = "log-corrupt"

    def __init__(self, path: str, offset: int):
        super().__init__(f"{path}: damaged record at offset {offset} is followed by more data")
        self.path = path
        self.offset = offset


def frame(payload: bytes) -> bytes:
    return _HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def read_records(data: bytes, path: str = "<memory>") -> tuple[list[bytes], int]:
    """Payloads of the intact records and the byte offset where they end."""
    out: list[bytes] = []
    pos = 0
    end = len(data)
    while pos < end:
        if end - pos < _HEADER.size:
            break  # torn header
        length, crc = _HEADER.unpack_from(data, pos)
        if length == 0:  # no record is empty: zeros where a file grew but its data never reached the disk
            if not _zeros_from(data, pos):
                raise LogCorruptError(path, pos)
            break  # a torn tail of zeros
        body_end = pos + _HEADER.size + length
        if length > MAX_RECORD_BYTES or body_end > end:
            if length > MAX_RECORD_BYTES and body_end < end:
                raise LogCorruptError(path, pos)
            break  # torn body
        payload = data[pos + _HEADER.size:body_end]
        if zlib.crc32(payload) != crc:
            if not _zeros_from(data, body_end):
                raise LogCorruptError(path, pos)
            break  # torn last record: cut inside it, only zeros after it
        out.append(bytes(payload))
        pos = body_end
    return out, pos


def _zeros_from(data: bytes, start: int) -> bool:
    """Nothing but zero bytes from ``start`` to the end (also when ``start`` is at or past it)."""
    return data.count(0, start) == max(0, len(data) - start)


def load_log(path: str) -> list[bytes]:
    """Read a framed log, cutting off a torn last record on disk; a missing file is empty."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return []
    records, good = read_records(data, path)
    if good < len(data):
        with open(path, "r+b") as f:
            f.truncate(good)
            f.flush()
            os.fsync(f.fileno())
    return records


def fsync_dir(path: str) -> None:
    """Make a rename or a new file in ``path``'s directory durable."""
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def replace_log(path: str, payloads: list[bytes]) -> None:
    """Atomically replace the log at ``path`` with ``payloads`` (write, fsync, rename, fsync dir)."""
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(b"".join(frame(p) for p in payloads))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path)


COMPACT_BYTES = 8 * 1024 * 1024
"""A log that keeps only its latest height's records (the WAL, the signer's) starts each new height by
appending, and is rewritten with only that height's records once it has grown past this: one fsync per
height instead of a rewrite's two (and a directory fsync), on the consensus path."""


class AppendLog:
    """An open framed log: ``append`` writes, ``sync`` makes everything appended durable."""

    def __init__(self, path: str):
        self.path = path
        self._file = open(path, "ab")
        os.fsync(self._file.fileno())  # what a killed process wrote may still be only in the kernel's cache:
        self._dirty = False  # durable before anything is built on it (a replay that signs, say)

    def append(self, payload: bytes) -> None:
        self._file.write(frame(payload))
        self._dirty = True

    @property
    def size(self) -> int:
        """Bytes in the log, what was appended but not yet synced included."""
        return self._file.tell()

    def sync(self) -> None:
        if self._dirty:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._dirty = False

    def close(self) -> None:
        if not self._file.closed:
            self.sync()
            self._file.close()
