"""The genesis document: the chain's name and start time, its validators, the
first coins, and the consensus parameters every node must share.

Users edit it as JSON; the node works with the frozen records of
``genesis.records`` (re-exported here, with their validation).  The
genesis hash is over a canonical binary encoding of the records, not over
the JSON text, so reformatting the file never changes which chain it names.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

from genesis import errors
from genesis.errors import GenesisError
from genesis.records import (
    MAX_BLOCK_BYTES,
    MAX_BLOCK_TXS,
    MAX_EXPIRY_BLOCKS,
    MAX_GENESIS_TIME_MS,
    MAX_TIMEOUT_MS,
    MAX_TOTAL_POWER,
    MAX_VALIDATORS,
    NAME_PATTERN,
    PARAM_BOUNDS,
    Allocation,
    ConsensusParams,
    Genesis,
    GenesisValidator,
    _is_int,
    check_name,
    validate_allocations,
    validate_genesis,
    validate_params,
    validate_validators,
)
from node.crypto import (
    ADDRESS_SIZE,
    PUBLIC_KEY_SIZE,
    CryptoError,
    decode_address,
    encode_address,
    sha256,
)
from node.encoding import Reader, Writer
from node.types.validators import Validator, ValidatorSet

__all__ = [
    "FORMAT_VERSION", "HASH_DOMAIN", "MAX_BLOCK_BYTES", "MAX_BLOCK_TXS", "MAX_EXPIRY_BLOCKS", "MAX_GENESIS_TIME_MS",
    "MAX_TIMEOUT_MS", "MAX_TOTAL_POWER", "MAX_VALIDATORS", "NAME_PATTERN", "PARAM_BOUNDS", "Allocation",
    "ConsensusParams", "Genesis", "GenesisValidator", "check_name", "decode_genesis_header", "dump_genesis",
    "encode_genesis", "format_genesis_time", "genesis_hash", "genesis_to_json", "load_genesis", "loads_genesis",
    "parse_address", "parse_genesis", "parse_genesis_time", "validate_allocations", "validate_genesis",
    "validate_params", "validate_validators", "validator_set_of",
]

HASH_DOMAIN = "ledger-genesis"
FORMAT_VERSION = 1

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TIME_PATTERN = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,3}))?Z")


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
