"""The validator set: who may propose and vote, and with how much weight.

Validators are kept sorted by address so that every node iterates them in the
same order; ``hash`` commits to the keys and powers (not the display names),
which is what a block header's ``validators_hash`` names.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property

from node.crypto import PUBLIC_KEY_SIZE, address_hash, is_valid_public_key, sha256
from node.encoding import Writer
from node.errors import CodedError

MAX_TOTAL_POWER = (1 << 63) // 8
"""CometBFT's bound on the total power, so proposer priorities never overflow an int64."""
MAX_VALIDATORS = 10_000
MAX_NAME_BYTES = 64


class ValidatorSetError(CodedError, ValueError):
    """A validator or validator set that cannot be used; ``code`` is stable."""


@dataclass(frozen=True)
class Validator:
    """One voting member of the set."""

    name: str
    """Human label (genesis, logs); not part of the set's hash."""
    public_key: bytes
    """33-byte compressed secp256k1 key that signs proposals and votes."""
    power: int
    """Voting power, at least 1."""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or len(self.name.encode("utf-8")) > MAX_NAME_BYTES:
            raise ValidatorSetError("bad-validator-name",
                                    f"validator name must be a string of at most {MAX_NAME_BYTES} bytes")
        if not isinstance(self.public_key, bytes) or len(self.public_key) != PUBLIC_KEY_SIZE \
                or not is_valid_public_key(self.public_key):
            raise ValidatorSetError("bad-validator-key", f"validator {self.name!r} has an invalid public key")
        if not isinstance(self.power, int) or isinstance(self.power, bool) or not 1 <= self.power <= MAX_TOTAL_POWER:
            raise ValidatorSetError("bad-validator-power",
                                    f"validator {self.name!r} power must be in [1, {MAX_TOTAL_POWER}]")

    @cached_property
    def address(self) -> bytes:
        """20-byte address: ``address_hash(public_key)``."""
        return address_hash(self.public_key)


class ValidatorSet:
    """An immutable, address-sorted set of validators with their thresholds."""

    __slots__ = ("_validators", "_index", "_total", "_hash", "_priorities")

    def __init__(self, validators: Iterable[Validator]):
        ordered = sorted(validators, key=lambda v: v.address)
        if not ordered:
            raise ValidatorSetError("empty-validator-set", "a validator set needs at least one validator")
        if len(ordered) > MAX_VALIDATORS:
            raise ValidatorSetError("too-many-validators", f"at most {MAX_VALIDATORS} validators")
        index: dict[bytes, int] = {}
        for i, v in enumerate(ordered):
            if not isinstance(v, Validator):
                raise ValidatorSetError("bad-validator", "validator set members must be Validator records")
            if v.address in index:
                raise ValidatorSetError("duplicate-validator", f"validator {v.name!r} appears twice")
            index[v.address] = i
        total = sum(v.power for v in ordered)
        if total > MAX_TOTAL_POWER:
            raise ValidatorSetError("total-power-too-large", f"total power must not exceed {MAX_TOTAL_POWER}")
        self._validators: tuple[Validator, ...] = tuple(ordered)
        self._index = index
        self._total = total
        self._hash: bytes | None = None
        self._priorities: tuple[int, ...] | None = None

    def with_priorities(self, priorities: tuple[int, ...]) -> ValidatorSet:
        """This set carrying the proposer priorities of a height (one per member, in address order).

        A set that carries them is the set *of one height*: its round-r proposer is chosen by r+1 steps from
        these priorities (``node.consensus.proposer``).  Neither the hash nor equality depends on them."""
        if len(priorities) != len(self._validators) or not all(type(p) is int for p in priorities):
            raise ValidatorSetError("bad-priorities", "one integer priority per validator")
        copy = ValidatorSet.__new__(ValidatorSet)
        copy._validators, copy._index, copy._total, copy._hash = (self._validators, self._index, self._total,
                                                                 self._hash)
        copy._priorities = tuple(priorities)
        return copy

    @property
    def priorities(self) -> tuple[int, ...] | None:
        """Proposer priorities at the height this set decides (None: a set not tied to a height)."""
        return self._priorities

    @property
    def validators(self) -> tuple[Validator, ...]:
        """Members sorted by address."""
        return self._validators

    @property
    def addresses(self) -> tuple[bytes, ...]:
        return tuple(v.address for v in self._validators)

    @property
    def total_power(self) -> int:
        return self._total

    @property
    def quorum_power(self) -> int:
        """Smallest power strictly above 2/3 of the total ("2f+1")."""
        return self._total * 2 // 3 + 1

    @property
    def one_third_power(self) -> int:
        """Smallest power strictly above 1/3 of the total ("f+1")."""
        return self._total // 3 + 1

    def get(self, address: bytes) -> Validator | None:
        i = self._index.get(address)
        return None if i is None else self._validators[i]

    def index_of(self, address: bytes) -> int:
        """Position of ``address`` in address order; raises KeyError for a non-member."""
        try:
            return self._index[address]
        except (KeyError, TypeError):
            raise KeyError(address) from None

    def power_of(self, address: bytes) -> int:
        """Voting power of ``address``, 0 for a non-member."""
        i = self._index.get(address)
        return 0 if i is None else self._validators[i].power

    def encode(self) -> bytes:
        """Canonical bytes of what consensus depends on: each key and power, in address order."""
        w = Writer().text("ledger/validators").u32(len(self._validators))
        for v in self._validators:
            w.fixed(v.public_key, PUBLIC_KEY_SIZE).u64(v.power)
        return w.getvalue()

    @property
    def hash(self) -> bytes:
        """sha256 of ``encode()``: the header's ``validators_hash``."""
        if self._hash is None:
            self._hash = sha256(self.encode())
        return self._hash

    def __len__(self) -> int:
        return len(self._validators)

    def __iter__(self) -> Iterator[Validator]:
        return iter(self._validators)

    def __contains__(self, address: object) -> bool:
        return address in self._index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ValidatorSet) and self._validators == other._validators

    def __hash__(self) -> int:
        return hash(self.hash)

    def __repr__(self) -> str:
        return f"ValidatorSet({len(self._validators)} validators, total_power={self._total})"
