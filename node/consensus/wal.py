"""The consensus write-ahead log: what this node saw and did at its current height.

The driver appends every proposal and vote it accepts (its own included) and
every timeout that fires.  The log is synced before each signature (what led
to it is durable before the signer signs), when a height that synced nothing
ends (``start_height``: at a node that signs nothing, what is unsynced stays
within about one height), and once when it is opened (what a killed process
left in the kernel's cache is durable before a replay signs on it).  Only
the current height's entries, and those of heights already committed, are
ever unsynced.  What this node sends is its signed messages,
which the signer's own log holds durably.  After a restart, replaying the
entries of the current height through a fresh driver brings it back to the
round and step it was in, with the same votes counted.  Only the current
height matters (earlier heights are in the block store), so ``start_height``
appends a marker for the new height, and what came before the last marker is
ignored; once the file has grown past ``COMPACT_BYTES`` the marker replaces
the file instead.  A torn last entry (a crash mid-append) is dropped on open.

Every height marker names the height and the log's format (``_MAGIC``); a
log written in another format is refused with what to do.
"""

from __future__ import annotations

import os
from typing import Protocol

from node.consensus.messages import Proposal, Vote
from node.consensus.records import COMPACT_BYTES, AppendLog, load_log, replace_log
from node.consensus.round_machine import Timeout, TimeoutKind
from node.encoding import DecodeError, Reader, Writer
from node.errors import CodedError

_MAGIC = "ledger/wal/3"
"""Format of the log.  3: a file holds several heights, each from its marker on (2 held one height, and is
read the same way; 1 had no format name in its height marker, and votes without their time)."""
_READABLE = frozenset({_MAGIC, "ledger/wal/2"})
"""Formats this node replays: a format-2 file is a format-3 file of one height.  A node from before format 3
refuses a format-3 file (more than one marker) with its ``wal-format-old`` answer and remedy."""
_TAG_HEIGHT = 0
_TAG_PROPOSAL = 1
_TAG_VOTE = 2
_TAG_TIMEOUT = 3

WALEntry = Proposal | Vote | Timeout


class WALError(CodedError):
    """The log cannot be used; ``code`` is stable."""


def encode_entry(entry: WALEntry) -> bytes:
    if isinstance(entry, Proposal):
        return bytes([_TAG_PROPOSAL]) + entry.encode()
    if isinstance(entry, Vote):
        return bytes([_TAG_VOTE]) + entry.encode()
    if isinstance(entry, Timeout):
        return Writer().u8(_TAG_TIMEOUT).u8(int(entry.kind)).u64(entry.height).u32(entry.round).getvalue()
    raise TypeError(f"cannot log {entry!r}")


def decode_entry(data: bytes) -> WALEntry:
    if not data:
        raise DecodeError("empty WAL entry")
    tag, body = data[0], data[1:]
    if tag == _TAG_PROPOSAL:
        return Proposal.decode(body)
    if tag == _TAG_VOTE:
        return Vote.decode(body)
    if tag == _TAG_TIMEOUT:
        r = Reader(body)
        try:
            kind = TimeoutKind(r.u8())
        except ValueError as exc:
            raise DecodeError("unknown timeout kind") from exc
        timeout = Timeout(kind, r.u64(), r.u32())
        r.finish()
        return timeout
    raise DecodeError(f"unknown WAL entry tag {tag}")


def _height_marker(height: int) -> bytes:
    return Writer().u8(_TAG_HEIGHT).u64(height).text(_MAGIC).getvalue()


class ConsensusWAL(Protocol):
    """What the driver needs from a write-ahead log."""

    @property
    def height(self) -> int: ...

    def start_height(self, height: int) -> None: ...

    def append(self, entry: WALEntry) -> None: ...

    def sync(self) -> None: ...

    def entries(self, height: int) -> list[WALEntry]: ...


class FileWAL:
    """A write-ahead log in one file: entries are appended, ``sync`` fsyncs them."""

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        payloads = load_log(self.path)
        self._height = 0
        self._entries: list[WALEntry] = []
        if payloads:
            self._height = self._read_marker(payloads[0])
            for payload in payloads[1:]:
                if payload[:1] == bytes([_TAG_HEIGHT]):  # a later height began: what came before is done
                    self._height = self._read_marker(payload)
                    self._entries = []
                    continue
                try:
                    self._entries.append(decode_entry(payload))
                except DecodeError as exc:
                    raise WALError("wal-corrupt", f"{self.path}: {exc}") from exc
        self._log = AppendLog(self.path)
        self._synced_in_height = False
        """Whether ``sync`` ran since the current height's marker: a validator syncs before each signature, so
        what its height logged after that is made durable by the next height's first sync, not by a sync of
        its own when the height ends."""

    def _read_marker(self, payload: bytes) -> int:
        """The height in a height marker, after checking the log's format."""
        head = Reader(payload)
        try:
            if head.u8() != _TAG_HEIGHT:
                raise WALError("wal-corrupt", f"{self.path} does not start with a height marker")
            height = head.u64()
            magic = head.text(64) if head.remaining() else "ledger/wal/1"
        except DecodeError as exc:
            raise WALError("wal-corrupt", f"{self.path}: {exc}") from exc
        if magic not in _READABLE:
            raise WALError("wal-format-old",
                           f"{self.path} was written in WAL format {magic}; this node uses {_MAGIC} (votes carry "
                           f"their time) and cannot replay it. It only holds the messages of height {height}, "
                           f"which peers send again: remove it (rm {self.path}) and start again; the signer file "
                           f"still keeps this validator from signing twice.")
        return height

    @property
    def height(self) -> int:
        """The height the logged entries belong to (0: empty log)."""
        return self._height

    def start_height(self, height: int) -> None:
        """Begin the log of ``height``; what was logged for earlier heights no longer counts.

        The marker is appended without a sync of its own: the next sync (before this node signs at this
        height, or when the height ends) makes it durable with the entries after it, and a crash before that
        leaves the log of the height before, which a restart at this height ignores.  What the height before
        logged is synced first only if nothing synced it during that height (a node that signs nothing, or a
        validator that left the set).  A validator synced before its signatures; what it logged after its last
        one (late precommits, the decision) is only ever replayed at that height, which is committed by now
        (every caller starts a height once the one before is durably in the store), so it is left to the next
        sync: an fsync on the event loop less per height.  Unsynced at any time, then: the height before's
        entries after its last sync, this marker, and this height's entries up to its first sync (all of
        them at a node that signs nothing here), which the next ``start_height`` syncs."""
        if self._log.size < COMPACT_BYTES:
            if not self._synced_in_height:
                self._log.sync()
            self._log.append(_height_marker(height))
        else:
            self._log.close()
            replace_log(self.path, [_height_marker(height)])
            self._log = AppendLog(self.path)
        self._height = height
        self._entries = []
        self._synced_in_height = False

    def append(self, entry: WALEntry) -> None:
        self._log.append(encode_entry(entry))
        self._entries.append(entry)

    def sync(self) -> None:
        self._log.sync()
        self._synced_in_height = True

    def entries(self, height: int) -> list[WALEntry]:
        """Entries logged for ``height`` (empty if the log belongs to another height)."""
        return list(self._entries) if height == self._height else []

    def close(self) -> None:
        self._log.close()


class MemoryWAL:
    """The same log in memory, for the simulator: ``crash()`` loses what was appended but not synced."""

    def __init__(self) -> None:
        self._height = 0
        self._entries: list[WALEntry] = []
        self._synced = 0

    @property
    def height(self) -> int:
        return self._height

    def start_height(self, height: int) -> None:
        self._height = height
        self._entries = []
        self._synced = 0

    def append(self, entry: WALEntry) -> None:
        self._entries.append(entry)

    def sync(self) -> None:
        self._synced = len(self._entries)

    def entries(self, height: int) -> list[WALEntry]:
        return list(self._entries) if height == self._height else []

    @property
    def unsynced(self) -> int:
        """Entries appended since the last sync."""
        return len(self._entries) - self._synced

    def crash(self, keep_unsynced: int = 0) -> None:
        """Forget unsynced entries, as a power cut forgets an unflushed file tail.  With ``keep_unsynced``, the
        first that many of them survive (a killed process whose writes the kernel still held) and are durable
        from then on, as ``FileWAL`` syncs what it reads when it opens."""
        keep = self._synced + max(0, min(keep_unsynced, self.unsynced))
        del self._entries[keep:]
        self._synced = keep
