"""Never sign twice: a signer that remembers everything it signed before it lets it go.

Before a proposal or vote is returned, its (height, round, type, value) is
recorded durably (``DurableSigner`` appends to a file and fsyncs).  After a
restart the signer re-signs the same value idempotently, refuses a different
value for the same (height, round, type), refuses to go back to an earlier
height or round, and reports the last lock (the latest non-nil precommit) so
the driver can restore it.  This is what keeps a validator that crashes and
comes back from equivocating by accident.

Only the latest height's records are needed (earlier heights are refused
wholesale): reading the file keeps only the latest height's records, so a
new height's records are appended, and the file is rewritten with only them
when a new height is first signed after it grew past ``COMPACT_BYTES``.  A
record keeps everything needed to rebuild the signed message (a vote's time,
a proposal's value), so a restarted node can send again exactly what it
signed (``signed_messages``).

The file starts with a header naming its format (``_MAGIC``) and is refused,
with what to do, when it was written in another format.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import IntEnum
from typing import Protocol

from node.consensus.messages import MAX_PROPOSAL_VALUE_BYTES, Proposal, Vote, VoteType, proposal_digest, vote_digest
from node.consensus.records import COMPACT_BYTES, AppendLog, load_log, replace_log
from node.crypto import SIGNATURE_SIZE, SigningKey, address_hash
from node.encoding import DecodeError, Reader, Writer
from node.errors import CodedError
from node.types.hashes import HASH_SIZE

_MAGIC = "ledger/signer/2"
"""Format of the signer file.  2: records keep the vote's time and the proposal's value (1 did not)."""
_MAGIC_PREFIX = "ledger/signer/"
MAX_SIGNED_VALUE_BYTES = MAX_PROPOSAL_VALUE_BYTES


class SignerError(CodedError):
    """The signer cannot be used; ``code`` is stable."""


class DoubleSignError(SignerError):
    """Signing would conflict with something already signed (``double-sign``, ``height-regression``,
    ``round-regression``)."""


class SignKind(IntEnum):
    PROPOSAL = 0
    PREVOTE = 1
    PRECOMMIT = 2


_KIND_OF_VOTE = {VoteType.PREVOTE: SignKind.PREVOTE, VoteType.PRECOMMIT: SignKind.PRECOMMIT}
_VOTE_OF_KIND = {kind: vote_type for vote_type, kind in _KIND_OF_VOTE.items()}


@dataclass(frozen=True)
class SignedRecord:
    """One thing the signer has signed."""

    kind: SignKind
    """Proposal, prevote or precommit."""
    height: int
    """u64."""
    round: int
    """u32."""
    block_hash: bytes | None
    """The value signed for (None: a nil vote)."""
    pol_round: int
    """The proposal's POL round; -1 for votes."""
    signature: bytes
    """The signature handed out, returned again on an identical request."""
    time_ms: int = 0
    """A vote's signed time (0 for a proposal): an identical request gets this vote back, whatever its time."""
    value: bytes = b""
    """A proposal's value (empty for a vote), so the proposal can be sent again after a restart."""

    def encode(self) -> bytes:
        w = Writer().u8(int(self.kind)).u64(self.height).u32(self.round).i32(self.pol_round)
        w.boolean(self.block_hash is not None)
        if self.block_hash is not None:
            w.fixed(self.block_hash, HASH_SIZE)
        w.u64(self.time_ms).var_bytes(self.value)
        return w.fixed(self.signature, SIGNATURE_SIZE).getvalue()

    @classmethod
    def decode(cls, data: bytes) -> SignedRecord:
        r = Reader(data)
        try:
            kind = SignKind(r.u8())
        except ValueError as exc:
            raise DecodeError("unknown signed-record kind") from exc
        height, round_, pol_round = r.u64(), r.u32(), r.i32()
        block_hash = r.fixed(HASH_SIZE) if r.boolean() else None
        time_ms, value = r.u64(), r.var_bytes(MAX_SIGNED_VALUE_BYTES)
        record = cls(kind, height, round_, block_hash, pol_round, r.fixed(SIGNATURE_SIZE), time_ms, value)
        r.finish()
        if kind == SignKind.PROPOSAL and block_hash is None:
            raise DecodeError("a signed proposal record without its block hash")
        return record

    def message(self, chain_id: str, address: bytes) -> Proposal | Vote:
        """The proposal or vote this record signed, as it was handed out."""
        if self.kind == SignKind.PROPOSAL:
            assert self.block_hash is not None
            return Proposal(self.height, self.round, self.pol_round, self.block_hash, self.value, address,
                            self.signature)
        return self.vote(address)

    def vote(self, address: bytes) -> Vote:
        """The vote this record signed (a prevote or precommit record), as it was handed out."""
        return Vote(_VOTE_OF_KIND[self.kind], self.height, self.round, self.block_hash, self.time_ms, address,
                    self.signature)


@dataclass(frozen=True)
class SignerLock:
    """The value this validator last precommitted (and so is locked on) at its latest height."""

    height: int
    """Height of the precommit."""
    round: int
    """lockedRound."""
    block_hash: bytes
    """lockedValue (by id)."""


class ConsensusSigner(Protocol):
    """What the driver needs from a signer."""

    chain_id: str
    address: bytes

    def sign_proposal(self, height: int, round_: int, pol_round: int, block_hash: bytes, value: bytes) -> Proposal: ...

    def sign_vote(self, vote_type: VoteType, height: int, round_: int, block_hash: bytes | None,
                  time_ms: int) -> Vote: ...

    @property
    def last_locked(self) -> SignerLock | None: ...

    def signed_messages(self, height: int) -> list[Proposal | Vote]: ...


class _GuardedSigner(ABC):
    """The never-sign-twice rules; subclasses say how a record is made durable."""

    def __init__(self, private_key: bytes, chain_id: str):
        self.chain_id = chain_id
        self._key = SigningKey(private_key)
        """Made once: a key made per signature computed its public key each time (coincurve does at creation)."""
        self.public_key = self._key.public_key
        self.address = address_hash(self.public_key)
        self._records: dict[tuple[int, int, SignKind], SignedRecord] = {}
        self._last: tuple[int, int] = (-1, -1)

    # ----------------------------------------------------------------- durability hooks

    @abstractmethod
    def _persist(self, record: SignedRecord, new_height: bool) -> None:
        """Make ``record`` durable before its signature is handed out."""

    # ----------------------------------------------------------------- rules

    def _remember(self, record: SignedRecord) -> None:
        if record.height > self._last[0]:
            self._records.clear()
        self._records[(record.height, record.round, record.kind)] = record
        self._last = max(self._last, (record.height, record.round))

    def _sign(self, kind: SignKind, height: int, round_: int, pol_round: int, block_hash: bytes | None,
              digest: bytes, time_ms: int = 0, value: bytes = b"") -> SignedRecord:
        held = self._records.get((height, round_, kind))
        if held is not None:
            if held.block_hash == block_hash and held.pol_round == pol_round:
                return held  # the same vote (with the time it was first signed at) or the same proposal
            raise DoubleSignError("double-sign", f"already signed a different {kind.name.lower()} "
                                                 f"at height {height} round {round_}")
        if height < self._last[0]:
            raise DoubleSignError("height-regression", f"already signed at height {self._last[0]}, refusing {height}")
        if (height, round_) < self._last:
            raise DoubleSignError("round-regression",
                                  f"already signed at height {height} round {self._last[1]}, refusing round {round_}")
        signature = self._key.sign(digest)
        record = SignedRecord(kind, height, round_, block_hash, pol_round, signature, time_ms, value)
        self._persist(record, new_height=height > self._last[0])
        self._remember(record)
        return record

    def sign_proposal(self, height: int, round_: int, pol_round: int, block_hash: bytes, value: bytes) -> Proposal:
        digest = proposal_digest(self.chain_id, height, round_, pol_round, block_hash)
        record = self._sign(SignKind.PROPOSAL, height, round_, pol_round, block_hash, digest, value=value)
        return Proposal(height, round_, pol_round, block_hash, value, self.address, record.signature)

    def sign_vote(self, vote_type: VoteType, height: int, round_: int, block_hash: bytes | None,
                  time_ms: int) -> Vote:
        """A vote at ``time_ms``; asked again for the same vote, the one already signed (with its own time)."""
        digest = vote_digest(self.chain_id, vote_type, height, round_, block_hash, time_ms)
        record = self._sign(_KIND_OF_VOTE[vote_type], height, round_, -1, block_hash, digest, time_ms=time_ms)
        return record.vote(self.address)

    @property
    def last_signed(self) -> tuple[int, int] | None:
        """(height, round) of the latest signature, or None if nothing was ever signed."""
        return None if self._last[0] < 0 else self._last

    @property
    def last_locked(self) -> SignerLock | None:
        """The highest-round non-nil precommit at the latest signed height."""
        best: SignedRecord | None = None
        for record in self._records.values():
            if record.kind == SignKind.PRECOMMIT and record.block_hash is not None \
                    and (best is None or record.round > best.round):
                best = record
        if best is None or best.block_hash is None:
            return None
        return SignerLock(best.height, best.round, best.block_hash)

    def signed(self) -> list[SignedRecord]:
        """Records of the latest height, oldest first."""
        return list(self._records.values())

    def signed_messages(self, height: int) -> list[Proposal | Vote]:
        """The proposals and votes signed at ``height`` (only the latest height is kept), oldest first:
        what a restarted node sends again."""
        return [record.message(self.chain_id, self.address) for record in self._records.values()
                if record.height == height]


class DurableSigner(_GuardedSigner):
    """A signer whose memory is a file: each signature is appended and fsynced before it is returned."""

    def __init__(self, path: str | os.PathLike, private_key: bytes, chain_id: str):
        super().__init__(private_key, chain_id)
        self.path = os.fspath(path)
        header = Writer().text(_MAGIC).text(chain_id).fixed(self.address, 20).getvalue()
        payloads = load_log(self.path)
        if payloads:
            if payloads[0] != header:
                self._refuse_header(payloads)
            for payload in payloads[1:]:
                try:
                    self._remember(SignedRecord.decode(payload))
                except DecodeError as exc:
                    raise SignerError("signer-state-corrupt", f"{self.path}: {exc}") from exc
        else:
            replace_log(self.path, [header])
        self._header = header
        self._log = AppendLog(self.path)

    def _refuse_header(self, payloads: list[bytes]) -> None:
        """Say why the file's header is not ours: another format (and what to do), or another chain or key."""
        try:
            magic = Reader(payloads[0]).text(64)
        except DecodeError:
            magic = ""
        if magic.startswith(_MAGIC_PREFIX) and magic != _MAGIC:
            last = "nothing"
            try:
                tail = Reader(payloads[-1]) if len(payloads) > 1 else None
                if tail is not None:
                    tail.u8()
                    last = f"height {tail.u64()} round {tail.u32()}"
            except DecodeError:
                pass
            raise SignerError(
                "signer-format-old",
                f"{self.path} was written in signer format {magic}; this node uses {_MAGIC} (votes carry their "
                f"time, records keep full messages) and cannot read it. It records signatures up to {last}. "
                f"Wait until the network has committed past that height, then move the file aside "
                f"(e.g. mv {self.path} {self.path}.old) and start again; never delete it while that height "
                f"is still being decided.")
        raise SignerError("signer-state-mismatch", f"{self.path} belongs to another chain or key; refusing to use it")

    def _persist(self, record: SignedRecord, new_height: bool) -> None:
        if new_height and self._log.size >= COMPACT_BYTES:
            # Compact: only the new height's records matter from now on (reading the log keeps only the
            # latest height's records, so until then a new height's are simply appended).
            self._log.close()
            replace_log(self.path, [self._header, record.encode()])
            self._log = AppendLog(self.path)
            return
        self._log.append(record.encode())
        self._log.sync()

    def close(self) -> None:
        self._log.close()


class MemorySigner(_GuardedSigner):
    """The same rules with memory as the durable store: for the simulator, where "a crash" keeps this object."""

    def _persist(self, record: SignedRecord, new_height: bool) -> None:
        """Nothing to do: this object is the durable store (the simulator keeps it across crashes)."""
