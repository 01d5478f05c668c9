"""The genesis document: the chain's name and start time, its validators, the
first coins, and the consensus parameters every node must share.

Users edit it as JSON; the node works with the frozen records below.  The
genesis hash is over a canonical binary encoding of the records, not over
the JSON text, so reformatting the file never changes which chain it names.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

from genesis import errors
from genesis.errors import GenesisError
from node.crypto import (
    ADDRESS_SIZE,
    PUBLIC_KEY_SIZE,
    CryptoError,
    address_hash,
    decode_address,
    encode_address,
    is_valid_public_key,
    sha256,
)
from node.encoding import Reader, Writer
from node.types.transaction import MAX_SUPPLY, MAX_TX_BYTES
from node.types.validators import Validator, ValidatorSet

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
HASH_DOMAIN = "ledger-genesis"
FORMAT_VERSION = 1

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TIME_PATTERN = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,3}))?Z")


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


# --------------------------------------------------------------------------- time


def parse_genesis_time(text: str) -> int:
    """Milliseconds since the epoch from RFC 3339 UTC, e.g. ``2026-11-21T00:00:00Z``."""
    match = _TIME_PATTERN.fullmatch(text)
    hint = "genesis_time must be RFC 3339 UTC like 2026-11-21T00:00:00Z (optionally .123 milliseconds)"
    if not match:
        raise GenesisError(errors.BAD_TIME, f"{hint}; got {text!r}")
    year, month, day, hour, minute, second, fraction = match.groups()
    try:
        moment = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), tzinfo=UTC)
    except ValueError as exc:
        raise GenesisError(errors.BAD_TIME, f"genesis_time {text!r}: {exc}") from None
    millis = int((fraction or "0").ljust(3, "0"))
    result = (moment - _EPOCH) // timedelta(milliseconds=1) + millis
    if result < 0:
        raise GenesisError(errors.BAD_TIME, f"genesis_time {text!r} is before 1970")
    return result


def format_genesis_time(millis: int) -> str:
    moment = _EPOCH + timedelta(milliseconds=millis)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{millis % 1000:03d}Z" if millis % 1000 else f"{text}Z"


# --------------------------------------------------------------------------- JSON form

_TOP_FIELDS = {"chain_id": True, "genesis_time": True, "validators": True, "allocations": True, "params": False}
_VALIDATOR_FIELDS = {"name": True, "public_key": True, "power": True}
_ALLOCATION_FIELDS = {"address": True, "amount": True}
_PARAM_FIELDS = {f.name: False for f in fields(ConsensusParams)}
_JSON_TYPES = {str: "a string", int: "an integer", list: "an array", dict: "an object"}


def _describe(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, float):
        return "a fractional number"
    return _JSON_TYPES.get(type(value), type(value).__name__)


_T = TypeVar("_T")


def _expect(value: object, kind: type[_T], where: str) -> _T:
    if not isinstance(value, kind) or (kind is int and not _is_int(value)):
        raise GenesisError(errors.WRONG_TYPE, f"{where} must be {_JSON_TYPES[kind]}, got {_describe(value)}")
    return value


def _check_fields(obj: dict, where: str, spec: dict[str, bool]) -> None:
    for key in obj:
        if key not in spec:
            known = ", ".join(spec)
            raise GenesisError(errors.UNKNOWN_FIELD, f"unknown field {key!r} in {where} (known: {known})")
    for key, required in spec.items():
        if required and key not in obj:
            raise GenesisError(errors.MISSING_FIELD, f"{where} is missing the field {key!r}")


def _parse_public_key(value: object, where: str) -> bytes:
    text = _expect(value, str, where)
    if len(text) != 2 * PUBLIC_KEY_SIZE or not re.fullmatch(r"[0-9a-fA-F]*", text):
        raise GenesisError(errors.BAD_PUBLIC_KEY,
                           f"{where} must be {2 * PUBLIC_KEY_SIZE} hex characters (a compressed key)")
    return bytes.fromhex(text)


def parse_address(value: object, where: str) -> bytes:
    """The account hash of a human address, with the checksum failure reported as such."""
    text = _expect(value, str, where)
    try:
        return decode_address(text)
    except CryptoError as exc:
        code = errors.BAD_ADDRESS_CHECKSUM if exc.code == "bad-address-checksum" else errors.BAD_ADDRESS
        raise GenesisError(code, f"{where} {text!r}: {exc.message}") from None


def _parse_validator(value: object, where: str) -> GenesisValidator:
    obj = _expect(value, dict, where)
    _check_fields(obj, where, _VALIDATOR_FIELDS)
    return GenesisValidator(
        name=_expect(obj["name"], str, f"{where}.name"),
        public_key=_parse_public_key(obj["public_key"], f"{where}.public_key"),
        power=_expect(obj["power"], int, f"{where}.power"),
    )


def _parse_allocation(value: object, where: str) -> Allocation:
    obj = _expect(value, dict, where)
    _check_fields(obj, where, _ALLOCATION_FIELDS)
    return Allocation(
        address=parse_address(obj["address"], f"{where}.address"),
        amount=_expect(obj["amount"], int, f"{where}.amount"),
    )


def _parse_params(value: object) -> ConsensusParams:
    """Omitted parameters take the defaults above; ``dump_genesis`` always writes them all."""
    obj = _expect(value, dict, "params")
    _check_fields(obj, "params", _PARAM_FIELDS)
    return ConsensusParams(**{key: _expect(value, int, f"params.{key}") for key, value in obj.items()})


def parse_genesis(value: object) -> Genesis:
    """A validated ``Genesis`` from the decoded JSON document."""
    obj = _expect(value, dict, "genesis")
    _check_fields(obj, "genesis", _TOP_FIELDS)
    validators = _expect(obj["validators"], list, "validators")
    allocations = _expect(obj["allocations"], list, "allocations")
    genesis = Genesis(
        chain_id=_expect(obj["chain_id"], str, "chain_id"),
        genesis_time_ms=parse_genesis_time(_expect(obj["genesis_time"], str, "genesis_time")),
        validators=tuple(_parse_validator(v, f"validators[{i}]") for i, v in enumerate(validators)),
        allocations=tuple(_parse_allocation(a, f"allocations[{i}]") for i, a in enumerate(allocations)),
        params=_parse_params(obj.get("params", {})),
    )
    validate_genesis(genesis)
    return genesis


def _refuse_duplicate_keys(pairs: list[tuple[str, object]]) -> dict:
    # json.loads would silently keep the last of two equal keys: a typo would pass unnoticed
    out: dict = {}
    for key, value in pairs:
        if key in out:
            raise GenesisError(errors.DUPLICATE_FIELD, f"the field {key!r} appears twice in one object")
        out[key] = value
    return out


def _refuse_constant(name: str) -> object:
    raise GenesisError(errors.BAD_JSON, f"{name} is not a JSON number")


def loads_genesis(text: str | bytes) -> Genesis:
    """A validated ``Genesis`` from JSON text."""
    try:
        obj = json.loads(text, object_pairs_hook=_refuse_duplicate_keys, parse_constant=_refuse_constant)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise GenesisError(errors.BAD_JSON, f"not valid JSON: {exc}") from None
    return parse_genesis(obj)


def load_genesis(path: str | os.PathLike) -> Genesis:
    try:
        text = Path(path).read_bytes()
    except OSError as exc:
        raise GenesisError(errors.UNREADABLE, f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        return loads_genesis(text)
    except GenesisError as exc:
        raise GenesisError(exc.code, f"{path}: {exc.message}") from None


def genesis_to_json(genesis: Genesis) -> dict:
    return {
        "chain_id": genesis.chain_id,
        "genesis_time": format_genesis_time(genesis.genesis_time_ms),
        "validators": [
            {"name": v.name, "public_key": v.public_key.hex(), "power": v.power} for v in genesis.validators
        ],
        "allocations": [{"address": encode_address(a.address), "amount": a.amount} for a in genesis.allocations],
        "params": {f.name: getattr(genesis.params, f.name) for f in fields(ConsensusParams)},
    }


def dump_genesis(genesis: Genesis, path: str | os.PathLike) -> None:
    """Validate, then write the JSON form atomically (a crash leaves the old file or the new one)."""
    validate_genesis(genesis)
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(genesis_to_json(genesis), indent=2) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


# --------------------------------------------------------------------------- hash and validator set


def encode_genesis(genesis: Genesis) -> bytes:
    """Canonical bytes: fields in declaration order, explicit widths, counts before lists."""
    w = Writer().text(HASH_DOMAIN).u8(FORMAT_VERSION)
    w.text(genesis.chain_id).u64(genesis.genesis_time_ms)
    w.u32(len(genesis.validators))
    for v in genesis.validators:
        w.text(v.name).fixed(v.public_key, PUBLIC_KEY_SIZE).u64(v.power)
    w.u32(len(genesis.allocations))
    for a in genesis.allocations:
        w.fixed(a.address, ADDRESS_SIZE).u64(a.amount)
    for f in fields(ConsensusParams):
        w.u32(getattr(genesis.params, f.name))
    return w.getvalue()


def genesis_hash(genesis: Genesis) -> bytes:
    """32 bytes naming this chain's starting point: nodes refuse peers and stores with another."""
    return sha256(encode_genesis(genesis))


def validator_set_of(genesis: Genesis) -> ValidatorSet:
    """The ``ValidatorSet`` of the genesis validators (it orders them itself)."""
    return ValidatorSet(tuple(Validator(v.name, v.public_key, v.power) for v in genesis.validators))


def decode_genesis_header(data: bytes) -> Genesis:
    """The genesis from its canonical bytes, without its allocations (they live in the store)."""
    r = Reader(data)
    if r.text(64) != HASH_DOMAIN or r.u8() != FORMAT_VERSION:
        raise GenesisError(errors.BAD_JSON, "not a canonical genesis encoding")
    chain_id = r.text(64)
    time_ms = r.u64()
    validators = tuple(GenesisValidator(r.text(64), r.fixed(PUBLIC_KEY_SIZE), r.u64()) for _ in range(r.u32()))
    r.fixed((ADDRESS_SIZE + 8) * r.u32())
    params = ConsensusParams(**{f.name: r.u32() for f in fields(ConsensusParams)})
    r.finish()
    return Genesis(chain_id, time_ms, validators, (), params)
