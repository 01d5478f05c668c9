"""The genesis records and the rules they must meet: the validators, the first coins, the consensus
parameters with their bounds, and the ``Genesis`` that holds them, with ``validate_genesis`` checking every
rule whether the genesis came from a file or from code.

``genesis.document`` reads and writes them as JSON and hashes them; it re-exports everything here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from genesis import errors
from genesis.errors import GenesisError
from node.crypto import ADDRESS_SIZE, address_hash, is_valid_public_key
from node.types.transaction import MAX_SUPPLY, MAX_TX_BYTES

NAME_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,64}")
"""Chain ids and validator names: safe in file names, URLs and logs."""
MAX_TOTAL_POWER = 2**60
"""Total voting power must stay below this, so weighted sums and priorities never overflow 64 bits."""
MAX_VALIDATORS = 10_000
MAX_TIMEOUT_MS = 3_600_000
MAX_BLOCK_BYTES = 32 * 1024 * 1024
MAX_BLOCK_TXS = 1_000_000
MAX_EXPIRY_BLOCKS = 1_000_000
MAX_GENESIS_TIME_MS = 253_402_300_799_999
"""9999-12-31T23:59:59.999Z, the last instant RFC 3339 can write."""


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class GenesisValidator:
    """A validator of the first block, and its voting power."""

    name: str
    """Human name, 1-64 characters of [A-Za-z0-9._-]; unique."""
    public_key: bytes
    """33-byte compressed secp256k1 key that signs its votes; unique."""
    power: int
    """Voting power, at least 1."""

    @property
    def address(self) -> bytes:
        """20-byte account hash of the key: how votes and blocks name the validator."""
        return address_hash(self.public_key)


@dataclass(frozen=True)
class Allocation:
    """Coins that exist from the start: genesis output number i is allocation i."""

    address: bytes
    """20-byte account hash that may spend it."""
    amount: int
    """Base units, 0 < amount <= MAX_SUPPLY."""


@dataclass(frozen=True)
class ConsensusParams:
    """Timeouts and limits every node must agree on (times in milliseconds)."""

    timeout_propose_ms: int = 3_000
    """Wait for a proposal in round 0 before prevoting nil."""
    timeout_prevote_ms: int = 1_000
    """Wait after 2f+1 prevotes for anything before precommitting nil."""
    timeout_precommit_ms: int = 1_000
    """Wait after 2f+1 precommits for anything before moving to the next round."""
    timeout_delta_ms: int = 500
    """Added to each timeout per round, so rounds grow until the network is timely."""
    timeout_commit_ms: int = 200
    """Short wait after a decision for late precommits (0: go on at once)."""
    max_block_bytes: int = 4_000_000
    """Most encoded transaction bytes in one block."""
    max_block_txs: int = 5_000
    """Most transactions in one block."""
    mempool_expiry_blocks: int = 50
    """Blocks a pending transaction may wait before it is dropped."""


PARAM_BOUNDS: dict[str, tuple[int, int]] = {
    "timeout_propose_ms": (1, MAX_TIMEOUT_MS),
    "timeout_prevote_ms": (1, MAX_TIMEOUT_MS),
    "timeout_precommit_ms": (1, MAX_TIMEOUT_MS),
    # rounds must lengthen, or a network slower than the base timeouts never decides
    "timeout_delta_ms": (1, MAX_TIMEOUT_MS),
    "timeout_commit_ms": (0, MAX_TIMEOUT_MS),
    # every transaction the rules accept must fit in some block
    "max_block_bytes": (MAX_TX_BYTES, MAX_BLOCK_BYTES),
    "max_block_txs": (1, MAX_BLOCK_TXS),
    "mempool_expiry_blocks": (1, MAX_EXPIRY_BLOCKS),
}
"""Inclusive range of each parameter."""


@dataclass(frozen=True)
class Genesis:
    """Everything block 1 builds on."""

    chain_id: str
    """1-64 characters of [A-Za-z0-9._-]; every signature is bound to it."""
    genesis_time_ms: int
    """Milliseconds since the Unix epoch (UTC); block 1's time must come after it."""
    validators: tuple[GenesisValidator, ...]
    """The validator set, in file order."""
    allocations: tuple[Allocation, ...]
    """Initial outputs, in file order."""
    params: ConsensusParams = field(default_factory=ConsensusParams)
    """Consensus timeouts and block limits."""

    @property
    def total_power(self) -> int:
        return sum(v.power for v in self.validators)

    @property
    def total_supply(self) -> int:
        """Base units in existence forever: fees move coins, nothing mints them."""
        return sum(a.amount for a in self.allocations)


# --------------------------------------------------------------------------- validation


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_name(value: object, where: str, code: str) -> None:
    if not isinstance(value, str):
        raise GenesisError(errors.WRONG_TYPE, f"{where} must be a string")
    if not NAME_PATTERN.fullmatch(value):
        raise GenesisError(code, f"{where} {value!r} must be 1-64 characters of A-Z a-z 0-9 . _ -")


def validate_params(params: ConsensusParams) -> None:
    if not isinstance(params, ConsensusParams):
        raise GenesisError(errors.WRONG_TYPE, "params must be ConsensusParams")
    for name, (low, high) in PARAM_BOUNDS.items():
        value = getattr(params, name)
        if not _is_int(value):
            raise GenesisError(errors.WRONG_TYPE, f"params.{name} must be an integer")
        if not low <= value <= high:
            raise GenesisError(errors.BAD_PARAMS, f"params.{name} is {value}; it must be between {low} and {high}")


def validate_validators(validators: tuple[GenesisValidator, ...]) -> None:
    if not isinstance(validators, tuple):
        raise GenesisError(errors.WRONG_TYPE, "validators must be a tuple")
    if not validators:
        raise GenesisError(errors.NO_VALIDATORS, "validators is empty: a chain needs at least one validator")
    if len(validators) > MAX_VALIDATORS:
        raise GenesisError(errors.TOO_MANY_VALIDATORS, f"{len(validators)} validators; at most {MAX_VALIDATORS}")
    names: dict[str, int] = {}
    keys: dict[bytes, int] = {}
    total = 0
    for i, v in enumerate(validators):
        where = f"validators[{i}]"
        if not isinstance(v, GenesisValidator):
            raise GenesisError(errors.WRONG_TYPE, f"{where} must be a GenesisValidator")
        check_name(v.name, f"{where}.name", errors.BAD_VALIDATOR_NAME)
        if not isinstance(v.public_key, bytes) or not is_valid_public_key(v.public_key):
            raise GenesisError(errors.BAD_PUBLIC_KEY, f"{where}.public_key is not a compressed secp256k1 point")
        if not _is_int(v.power):
            raise GenesisError(errors.WRONG_TYPE, f"{where}.power must be an integer")
        if v.power < 1:
            raise GenesisError(errors.BAD_POWER, f"{where}.power is {v.power}; voting power must be at least 1")
        if v.name in names:
            raise GenesisError(
                errors.DUPLICATE_VALIDATOR, f"{where}.name {v.name!r} is already used by validators[{names[v.name]}]"
            )
        if v.public_key in keys:
            raise GenesisError(
                errors.DUPLICATE_VALIDATOR, f"{where}.public_key is already used by validators[{keys[v.public_key]}]"
            )
        names[v.name] = keys[v.public_key] = i
        total += v.power
    if total >= MAX_TOTAL_POWER:
        raise GenesisError(errors.TOTAL_POWER_TOO_LARGE, f"total voting power {total} must be below 2^60")


def validate_allocations(allocations: tuple[Allocation, ...]) -> None:
    if not isinstance(allocations, tuple):
        raise GenesisError(errors.WRONG_TYPE, "allocations must be a tuple")
    supply = 0
    for i, a in enumerate(allocations):
        where = f"allocations[{i}]"
        if not isinstance(a, Allocation):
            raise GenesisError(errors.WRONG_TYPE, f"{where} must be an Allocation")
        if not isinstance(a.address, bytes) or len(a.address) != ADDRESS_SIZE:
            raise GenesisError(errors.BAD_ADDRESS, f"{where}.address must be a {ADDRESS_SIZE}-byte account hash")
        if not _is_int(a.amount):
            raise GenesisError(errors.WRONG_TYPE, f"{where}.amount must be an integer")
        if not 0 < a.amount <= MAX_SUPPLY:
            raise GenesisError(errors.BAD_AMOUNT, f"{where}.amount is {a.amount}; it must be in 1..{MAX_SUPPLY}")
        supply += a.amount
        if supply > MAX_SUPPLY:
            raise GenesisError(
                errors.SUPPLY_TOO_LARGE, f"allocations up to {where} sum to {supply}, above MAX_SUPPLY {MAX_SUPPLY}"
            )


def validate_genesis(genesis: Genesis) -> None:
    """Every rule a genesis must meet, whether it came from a file or from code."""
    check_name(genesis.chain_id, "chain_id", errors.BAD_CHAIN_ID)
    if not _is_int(genesis.genesis_time_ms) or not 0 <= genesis.genesis_time_ms <= MAX_GENESIS_TIME_MS:
        raise GenesisError(errors.BAD_TIME, f"genesis_time_ms {genesis.genesis_time_ms!r} is out of range")
    validate_validators(genesis.validators)
    validate_allocations(genesis.allocations)
    validate_params(genesis.params)

