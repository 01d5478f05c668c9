"""The validator state: who decides the next heights, and the changes under way, as replicated state.

After block h every node holds the same ``ValidatorState``: the set that
decides height h+1 with its proposer priorities, the set of height h+2
(changes committed in block h apply there, as in CometBFT), the change
requests still collecting approvals, and the ids of applied records kept
until they expire so none is used twice.  A header names the hashes of its
own set and the next one (``validators_hash``, ``next_validators_hash``) and
the hash of this whole state after it (``reconfig_hash``), so a snapshot of
it is as checkable as the UTXO set.  The rules that change it are
``node.ledger.reconfig_rules``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from node.crypto import ADDRESS_SIZE, PUBLIC_KEY_SIZE, sha256
from node.encoding import DecodeError, Reader, Writer
from node.types.hashes import HASH_SIZE
from node.types.reconfig import ChangeRequest
from node.types.validators import MAX_NAME_BYTES, MAX_VALIDATORS, Validator, ValidatorSet

STATE_VERSION = 1
MAX_PENDING = 100_000
MAX_DONE = 1_000_000
_U64_RANGE = 1 << 64


@dataclass(frozen=True)
class PendingChange:
    """A change request collecting approvals."""

    request: ChangeRequest
    """What would change."""
    approvers: tuple[bytes, ...]
    """20-byte addresses of the validators that approved it, in the order their approvals were committed."""


@dataclass(frozen=True)
class ValidatorState:
    """The replicated validator state after block ``height`` (0: genesis)."""

    height: int
    """The block after which this is the state."""
    current: ValidatorSet
    """The set that decides height ``height + 1``, carrying that height's proposer priorities."""
    next: ValidatorSet
    """The set of height ``height + 2`` (changes committed in block ``height`` are in it)."""
    pending: tuple[PendingChange, ...]
    """Requests still collecting approvals (or approved and waiting for room under the 1/3 bound), oldest first."""
    done: tuple[tuple[bytes, int], ...]
    """(id, expires) of applied requests and quits, sorted by id, kept until they expire: replays are refused."""
    since: tuple[tuple[bytes, int], ...] = ()
    """(address, height its membership began) of every member of ``current`` and ``next``, sorted by address: a
    quit names it, so one signed for an earlier membership of a key is refused."""

    def since_of(self, address: bytes) -> int | None:
        return dict(self.since).get(address)

    @cached_property
    def encoded(self) -> bytes:
        w = Writer().u8(STATE_VERSION).u64(self.height)
        write_named_set(w, self.current)
        priorities = self.current.priorities or (0,) * len(self.current)
        for p in priorities:
            w.u64(p % _U64_RANGE)
        write_named_set(w, self.next)
        w.u32(len(self.pending))
        for change in self.pending:
            change.request.write(w)
            w.u32(len(change.approvers))
            for address in change.approvers:
                w.fixed(address, ADDRESS_SIZE)
        w.u32(len(self.done))
        for item_id, expires in self.done:
            w.fixed(item_id, HASH_SIZE).u64(expires)
        w.u32(len(self.since))
        for address, height in self.since:
            w.fixed(address, ADDRESS_SIZE).u64(height)
        return w.getvalue()

    @cached_property
    def hash(self) -> bytes:
        """What a header's ``reconfig_hash`` names."""
        return sha256(self.encoded)

    @classmethod
    def decode(cls, data: bytes) -> ValidatorState:
        r = Reader(data)
        version = r.u8()
        if version != STATE_VERSION:
            raise DecodeError(f"validator state version {version}, this release reads {STATE_VERSION}")
        height = r.u64()
        current = read_named_set(r)
        priorities = []
        for _ in range(len(current)):
            raw = r.u64()
            priorities.append(raw - _U64_RANGE if raw >= _U64_RANGE // 2 else raw)
        nxt = read_named_set(r)
        pending = []
        for _ in range(r.count(MAX_PENDING)):
            request = ChangeRequest.read(r)
            approvers = tuple(r.fixed(ADDRESS_SIZE) for _ in range(r.count(MAX_VALIDATORS)))
            pending.append(PendingChange(request, approvers))
        done = tuple((r.fixed(HASH_SIZE), r.u64()) for _ in range(r.count(MAX_DONE)))
        since = tuple((r.fixed(ADDRESS_SIZE), r.u64()) for _ in range(r.count(2 * MAX_VALIDATORS)))
        r.finish()
        return cls(height, current.with_priorities(tuple(priorities)), nxt, tuple(pending), done, since)


def write_named_set(w: Writer, validators: ValidatorSet) -> Writer:
    """A set with its display names (``ValidatorSet.encode`` leaves them out of the hash)."""
    w.u32(len(validators))
    for v in validators:
        w.text(v.name).fixed(v.public_key, PUBLIC_KEY_SIZE).u64(v.power)
    return w


def read_named_set(r: Reader) -> ValidatorSet:
    try:
        return ValidatorSet(Validator(r.text(MAX_NAME_BYTES), r.fixed(PUBLIC_KEY_SIZE), r.u64())
                            for _ in range(r.count(MAX_VALIDATORS)))
    except ValueError as exc:  # ValidatorSetError: a stored or sent set that is not a set
        raise DecodeError(f"bad validator set: {exc}") from exc


def encode_named_set(validators: ValidatorSet) -> bytes:
    return write_named_set(Writer(), validators).getvalue()


def decode_named_set(data: bytes) -> ValidatorSet:
    r = Reader(data)
    validators = read_named_set(r)
    r.finish()
    return validators


def genesis_validator_state(validators: ValidatorSet) -> ValidatorState:
    """The state before the first block: the genesis set decides heights 1 and 2, all priorities zero."""
    return ValidatorState(0, validators.with_priorities((0,) * len(validators)), validators, (), (),
                          tuple((address, 1) for address in validators.addresses))
