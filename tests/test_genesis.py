"""Genesis documents: every refusal has its code, the hash names the content
(not the formatting), and the JSON form round-trips."""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from dataclasses import fields, replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genesis import (
    Allocation,
    ConsensusParams,
    Genesis,
    GenesisError,
    GenesisValidator,
    dump_genesis,
    encode_genesis,
    errors,
    genesis_hash,
    genesis_to_json,
    load_genesis,
    loads_genesis,
    make_devnet_genesis,
    make_genesis,
    parse_genesis,
    validate_genesis,
    validator_set_of,
)
from genesis.build import derive_private_key
from genesis.cli import main
from genesis.document import MAX_TOTAL_POWER, PARAM_BOUNDS, format_genesis_time, parse_genesis_time
from node.crypto import address_hash, address_of, decode_address, derive_public_key, encode_address
from node.types.transaction import MAX_SUPPLY, MAX_TX_BYTES

SEED = b"test-genesis"
TIME_MS = 1_795_219_200_000  # 2026-11-21T00:00:00Z


def key(label: str) -> bytes:
    return derive_private_key(SEED, label)


def pub_hex(label: str) -> str:
    return derive_public_key(key(label)).hex()


def addr(label: str) -> str:
    return address_of(derive_public_key(key(label)))


def document() -> dict:
    """A valid JSON document to break one way at a time."""
    return {
        "chain_id": "testnet-1",
        "genesis_time": "2026-11-21T00:00:00Z",
        "validators": [
            {"name": "alpha", "public_key": pub_hex("a"), "power": 10},
            {"name": "beta", "public_key": pub_hex("b"), "power": 20},
            {"name": "gamma", "public_key": pub_hex("c"), "power": 30},
        ],
        "allocations": [
            {"address": addr("w1"), "amount": 5_000},
            {"address": addr("w2"), "amount": 7},
        ],
        "params": {"timeout_propose_ms": 2_000, "max_block_txs": 1_000},
    }


def refused(obj: object, code: str, *words: str) -> GenesisError:
    with pytest.raises(GenesisError) as info:
        parse_genesis(obj)
    assert info.value.code == code, info.value
    for word in words:
        assert word in info.value.message, info.value.message
    return info.value


def edited(**paths: object) -> dict:
    """``document()`` with values replaced: keys like ``validators.1.power``; a value of ... deletes."""
    doc = document()
    for path, value in paths.items():
        *parents, last = path.split(".")
        node = doc
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if isinstance(node, list):
            last = int(last)
        if value is ...:
            del node[last]
        else:
            node[last] = value
    return doc


# --------------------------------------------------------------------------- the valid document


def test_valid_document_parses():
    g = parse_genesis(document())
    assert g.chain_id == "testnet-1"
    assert g.genesis_time_ms == TIME_MS
    assert [v.name for v in g.validators] == ["alpha", "beta", "gamma"]
    assert g.validators[0].public_key == derive_public_key(key("a"))
    assert g.validators[0].address == address_hash(derive_public_key(key("a")))
    assert g.allocations[0] == Allocation(decode_address(addr("w1")), 5_000)
    assert g.total_power == 60 and g.total_supply == 5_007
    assert g.params == ConsensusParams(timeout_propose_ms=2_000, max_block_txs=1_000)


def test_params_may_be_omitted_and_take_the_defaults():
    assert parse_genesis(edited(params=...)).params == ConsensusParams()
    assert parse_genesis(edited(params={})).params == ConsensusParams()


def test_empty_allocations_are_allowed():
    assert parse_genesis(edited(allocations=[])).total_supply == 0


# --------------------------------------------------------------------------- structure errors


@pytest.mark.parametrize(
    "path, where",
    [
        ("extra", "in genesis"),
        ("validators.0.address", "in validators[0]"),
        ("allocations.1.memo", "in allocations[1]"),
        ("params.timeout_vote_ms", "in params"),
    ],
)
def test_unknown_field_is_named(path, where):
    refused(edited(**{path: 1}), errors.UNKNOWN_FIELD, repr(path.split(".")[-1]), where)


@pytest.mark.parametrize(
    "path, where",
    [
        ("chain_id", "genesis"),
        ("genesis_time", "genesis"),
        ("validators", "genesis"),
        ("allocations", "genesis"),
        ("validators.2.name", "validators[2]"),
        ("validators.0.public_key", "validators[0]"),
        ("validators.1.power", "validators[1]"),
        ("allocations.0.address", "allocations[0]"),
        ("allocations.1.amount", "allocations[1]"),
    ],
)
def test_missing_field_is_named(path, where):
    refused(edited(**{path: ...}), errors.MISSING_FIELD, repr(path.split(".")[-1]), where)


@pytest.mark.parametrize(
    "path, value, where",
    [
        ("chain_id", 7, "chain_id"),
        ("genesis_time", TIME_MS, "genesis_time"),
        ("validators", {}, "validators"),
        ("allocations", None, "allocations"),
        ("validators.0", ["alpha"], "validators[0]"),
        ("validators.0.name", None, "validators[0].name"),
        ("validators.0.power", "10", "validators[0].power"),
        ("validators.0.power", True, "validators[0].power"),
        ("validators.0.power", 10.0, "validators[0].power"),
        ("validators.1.public_key", 5, "validators[1].public_key"),
        ("allocations.0.amount", 5e3, "allocations[0].amount"),
        ("allocations.0.address", b"x", "allocations[0].address"),
        ("params", [], "params"),
        ("params.timeout_commit_ms", "200", "params.timeout_commit_ms"),
    ],
)
def test_wrong_type_is_named(path, value, where):
    refused(edited(**{path: value}), errors.WRONG_TYPE, where)


def test_document_must_be_an_object():
    refused([], errors.WRONG_TYPE, "genesis")


def test_duplicate_json_keys_are_refused():
    text = json.dumps(document())
    text = text.replace('"power": 10', '"power": 10, "power": 1000', 1)
    with pytest.raises(GenesisError) as info:
        loads_genesis(text)
    assert info.value.code == errors.DUPLICATE_FIELD and "'power'" in info.value.message


@pytest.mark.parametrize("text", ['{"chain_id": ', "not json", b"\xff\xfe", '{"a": NaN}'])
def test_bad_json_is_refused(text):
    with pytest.raises(GenesisError) as info:
        loads_genesis(text)
    assert info.value.code == errors.BAD_JSON


def test_unreadable_file(tmp_path):
    with pytest.raises(GenesisError) as info:
        load_genesis(tmp_path / "absent.json")
    assert info.value.code == errors.UNREADABLE and "absent.json" in info.value.message


def test_file_errors_name_the_file(tmp_path):
    path = tmp_path / "genesis.json"
    path.write_text(json.dumps(edited(**{"validators.0.power": 0})))
    with pytest.raises(GenesisError) as info:
        load_genesis(path)
    assert info.value.code == errors.BAD_POWER and str(path) in info.value.message


# --------------------------------------------------------------------------- value errors


@pytest.mark.parametrize("chain_id", ["", "x" * 65, "my chain", "chain/1", "ch\u00e4in", "net\n"])
def test_bad_chain_id(chain_id):
    refused(edited(chain_id=chain_id), errors.BAD_CHAIN_ID, "chain_id")


@pytest.mark.parametrize("chain_id", ["a", "x" * 64, "Main_net-2.0"])
def test_good_chain_ids(chain_id):
    assert parse_genesis(edited(chain_id=chain_id)).chain_id == chain_id


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-21",
        "2026-11-21T00:00:00",  # no zone
        "2026-11-21T00:00:00+01:00",  # not UTC
        "2026-11-21 00:00:00Z",
        "2026-02-30T00:00:00Z",  # no such day
        "2026-11-21T24:00:00Z",
        "2026-11-21T00:00:00.1234Z",  # finer than milliseconds
        "1969-12-31T23:59:59Z",  # before the epoch
    ],
)
def test_bad_genesis_time(text):
    refused(edited(genesis_time=text), errors.BAD_TIME, "genesis_time")


def test_genesis_time_parses_and_formats():
    assert parse_genesis_time("1970-01-01T00:00:00Z") == 0
    assert parse_genesis_time("2026-11-21T00:00:00Z") == TIME_MS
    assert parse_genesis_time("2026-11-21T00:00:00.5Z") == TIME_MS + 500
    assert parse_genesis_time("2026-11-21T00:00:00.05Z") == TIME_MS + 50
    assert parse_genesis_time("2026-11-21T00:00:00.005Z") == TIME_MS + 5
    for ms in (0, 1, TIME_MS, TIME_MS + 999, 253_402_300_799_999):
        assert parse_genesis_time(format_genesis_time(ms)) == ms
    assert format_genesis_time(TIME_MS) == "2026-11-21T00:00:00Z"


def test_no_validators():
    refused(edited(validators=[]), errors.NO_VALIDATORS)


def test_too_many_validators():
    g = parse_genesis(document())
    with pytest.raises(GenesisError) as info:
        validate_genesis(replace(g, validators=g.validators[:1] * 10_001))
    assert info.value.code == errors.TOO_MANY_VALIDATORS


@pytest.mark.parametrize("name", ["", "a b", "x" * 65, "v\u00e9"])
def test_bad_validator_name(name):
    refused(edited(**{"validators.1.name": name}), errors.BAD_VALIDATOR_NAME, "validators[1].name")


def test_duplicate_validator_by_name():
    refused(edited(**{"validators.2.name": "alpha"}), errors.DUPLICATE_VALIDATOR, "validators[2].name", "validators[0]")


def test_duplicate_validator_by_key():
    refused(
        edited(**{"validators.2.public_key": pub_hex("b")}),
        errors.DUPLICATE_VALIDATOR,
        "validators[2].public_key",
        "validators[1]",
    )


def test_duplicate_validator_key_in_other_case_is_the_same_key():
    refused(edited(**{"validators.2.public_key": pub_hex("b").upper()}), errors.DUPLICATE_VALIDATOR)


@pytest.mark.parametrize("power", [0, -1, -(2**70)])
def test_zero_or_negative_power(power):
    refused(edited(**{"validators.1.power": power}), errors.BAD_POWER, "validators[1].power")


def test_total_power_must_be_below_two_to_the_sixty():
    doc = edited(**{"validators.0.power": MAX_TOTAL_POWER - 51})
    assert parse_genesis(doc).total_power == MAX_TOTAL_POWER - 1
    refused(edited(**{"validators.0.power": MAX_TOTAL_POWER - 50}), errors.TOTAL_POWER_TOO_LARGE, "2^60")
    refused(edited(**{"validators.0.power": 2**64}), errors.TOTAL_POWER_TOO_LARGE)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "02" + "00" * 31,  # too short
        pub_hex("a") + "00",  # too long
        "zz" + pub_hex("a")[2:],  # not hex
        "04" + pub_hex("a")[2:],  # wrong prefix
        "02" + "ff" * 32,  # x >= p
        "02" + "00" * 32,  # x = 0 is not on the curve
        "04" + "00" * 64,  # uncompressed form
    ],
)
def test_bad_public_key(value):
    refused(edited(**{"validators.0.public_key": value}), errors.BAD_PUBLIC_KEY, "validators[0].public_key")


@pytest.mark.parametrize("value", ["", "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4", "lg1", "lg1" + "b" * 10, "hello"])
def test_bad_address(value):
    refused(edited(**{"allocations.1.address": value}), errors.BAD_ADDRESS, "allocations[1].address")


def test_address_typo_is_reported_as_a_checksum_failure():
    good = addr("w1")
    typo = good[:10] + ("q" if good[10] != "q" else "p") + good[11:]
    error = refused(edited(**{"allocations.0.address": typo}), errors.BAD_ADDRESS_CHECKSUM, "allocations[0].address")
    assert "checksum" in error.message and typo in error.message


@pytest.mark.parametrize("amount", [0, -1, MAX_SUPPLY + 1])
def test_bad_amount(amount):
    refused(edited(**{"allocations.0.amount": amount}), errors.BAD_AMOUNT, "allocations[0].amount")


def test_supply_over_the_maximum():
    assert parse_genesis(edited(**{"allocations.0.amount": MAX_SUPPLY - 7})).total_supply == MAX_SUPPLY
    refused(edited(**{"allocations.0.amount": MAX_SUPPLY - 6}), errors.SUPPLY_TOO_LARGE, "MAX_SUPPLY")


def _outside(name: str) -> list[int]:
    low, high = PARAM_BOUNDS[name]
    return [low - 1, high + 1] + ([-1] if low > 0 else [])


@pytest.mark.parametrize("name, value", [(name, value) for name in PARAM_BOUNDS for value in _outside(name)])
def test_bad_params(name, value):
    refused(edited(**{f"params.{name}": value}), errors.BAD_PARAMS, f"params.{name}")


@pytest.mark.parametrize("name", sorted(PARAM_BOUNDS))
def test_params_at_their_bounds_are_accepted(name):
    for value in PARAM_BOUNDS[name]:
        assert getattr(parse_genesis(edited(**{f"params.{name}": value})).params, name) == value


def test_every_block_holds_the_largest_transaction():
    assert PARAM_BOUNDS["max_block_bytes"][0] == MAX_TX_BYTES
    assert all(low >= 1 for name, (low, _) in PARAM_BOUNDS.items() if name != "timeout_commit_ms")


def test_every_param_has_bounds():
    assert set(PARAM_BOUNDS) == {f.name for f in fields(ConsensusParams)}
    validate_genesis(parse_genesis(document()))  # the defaults are within them


def test_records_built_in_code_are_validated_too():
    g = parse_genesis(document())
    bad = [
        (replace(g, chain_id="a b"), errors.BAD_CHAIN_ID),
        (replace(g, genesis_time_ms=-1), errors.BAD_TIME),
        (replace(g, validators=(replace(g.validators[0], power=0),)), errors.BAD_POWER),
        (replace(g, validators=(replace(g.validators[0], public_key=b"\x02" + bytes(32)),)), errors.BAD_PUBLIC_KEY),
        (replace(g, allocations=(Allocation(bytes(19), 1),)), errors.BAD_ADDRESS),
        (replace(g, allocations=(Allocation(bytes(20), 0),)), errors.BAD_AMOUNT),
        (replace(g, params=ConsensusParams(timeout_propose_ms=0)), errors.BAD_PARAMS),
        (replace(g, validators=list(g.validators)), errors.WRONG_TYPE),
    ]
    for genesis, code in bad:
        with pytest.raises(GenesisError) as info:
            validate_genesis(genesis)
        assert info.value.code == code
        with pytest.raises(GenesisError):
            dump_genesis(genesis, os.devnull)


# --------------------------------------------------------------------------- hash


def _reorder(obj: object) -> object:
    """The same JSON value with every object's keys in reverse order."""
    if isinstance(obj, dict):
        return {k: _reorder(obj[k]) for k in reversed(list(obj))}
    if isinstance(obj, list):
        return [_reorder(v) for v in obj]
    return obj


def test_hash_ignores_whitespace_and_key_order():
    doc = document()
    texts = [
        json.dumps(doc),
        json.dumps(doc, indent=4),
        json.dumps(doc, separators=(",", ":")),
        json.dumps(doc, sort_keys=True, indent="\t"),
        json.dumps(_reorder(doc), indent=1),
        "\n\n  " + json.dumps(_reorder(doc)).replace(", ", " ,\n ") + "  \n",
    ]
    hashes = {genesis_hash(loads_genesis(text)) for text in texts}
    assert len(hashes) == 1
    assert len(hashes.pop()) == 32


def test_hash_counts_omitted_params_as_their_defaults():
    explicit = edited(params={f.name: getattr(ConsensusParams(), f.name) for f in fields(ConsensusParams)})
    assert genesis_hash(parse_genesis(edited(params=...))) == genesis_hash(parse_genesis(explicit))


def test_hash_changes_with_every_field():
    base = document()
    variants = {
        "chain_id": edited(chain_id="testnet-2"),
        "genesis_time": edited(genesis_time="2026-11-21T00:00:00.001Z"),
        "validator name": edited(**{"validators.0.name": "alpha2"}),
        "validator key": edited(**{"validators.0.public_key": pub_hex("z")}),
        "validator power": edited(**{"validators.0.power": 11}),
        "validator order": edited(validators=list(reversed(base["validators"]))),
        "validator removed": edited(validators=base["validators"][:2]),
        "allocation address": edited(**{"allocations.0.address": addr("w3")}),
        "allocation amount": edited(**{"allocations.0.amount": 5_001}),
        "allocation order": edited(allocations=list(reversed(base["allocations"]))),
        "allocation added": edited(allocations=base["allocations"] + [{"address": addr("w1"), "amount": 1}]),
        "allocations removed": edited(allocations=[]),
    }
    for f in fields(ConsensusParams):
        current = getattr(parse_genesis(base).params, f.name)
        low, high = PARAM_BOUNDS[f.name]
        variants[f"params.{f.name}"] = edited(**{f"params.{f.name}": current + 1 if current < high else current - 1})
    hashes = {"base": genesis_hash(parse_genesis(base))}
    for label, doc in variants.items():
        hashes[label] = genesis_hash(parse_genesis(doc))
    assert len(set(hashes.values())) == len(hashes), "every change gives a different hash"


def test_hash_is_pinned():
    """The canonical encoding is part of the protocol: a change here forks every existing chain."""
    g = Genesis(
        chain_id="pinned",
        genesis_time_ms=TIME_MS,
        validators=(GenesisValidator("v", derive_public_key((1).to_bytes(32, "big")), 1),),
        allocations=(Allocation(bytes(20), 1),),
    )
    pub = derive_public_key((1).to_bytes(32, "big"))

    def text(value: str) -> bytes:
        return len(value).to_bytes(4, "big") + value.encode()

    expected = (
        text("ledger-genesis") + b"\x01"  # domain and format version
        + text("pinned") + TIME_MS.to_bytes(8, "big")
        + (1).to_bytes(4, "big") + text("v") + pub + (1).to_bytes(8, "big")
        + (1).to_bytes(4, "big") + bytes(20) + (1).to_bytes(8, "big")
        + b"".join(getattr(ConsensusParams(), f.name).to_bytes(4, "big") for f in fields(ConsensusParams))
    )
    assert encode_genesis(g) == expected
    assert genesis_hash(g) == hashlib.sha256(expected).digest()
    assert genesis_hash(g).hex() == "81316083acd2354af4f4d7463f00b901453213404bc7e356a7a71ed650c63275"


# --------------------------------------------------------------------------- JSON round trip


def test_json_round_trip(tmp_path):
    g = parse_genesis(document())
    assert parse_genesis(genesis_to_json(g)) == g
    assert parse_genesis(json.loads(json.dumps(genesis_to_json(g)))) == g
    path = tmp_path / "genesis.json"
    dump_genesis(g, path)
    assert load_genesis(path) == g
    assert json.loads(path.read_text()) == genesis_to_json(g)
    assert not (tmp_path / "genesis.json.tmp").exists()


def test_json_form_writes_every_field():
    out = genesis_to_json(parse_genesis(edited(params=...)))
    assert list(out) == ["chain_id", "genesis_time", "validators", "allocations", "params"]
    assert set(out["params"]) == {f.name for f in fields(ConsensusParams)}
    assert out["allocations"][0]["address"].startswith("lg1")


@settings(max_examples=60, deadline=None)
@given(
    chain_id=st.from_regex(r"[A-Za-z0-9._-]{1,64}", fullmatch=True),
    time_ms=st.integers(0, 253_402_300_799_999),
    powers=st.lists(st.integers(1, 2**50), min_size=1, max_size=5),
    amounts=st.lists(st.integers(1, MAX_SUPPLY // 8), max_size=6),
    params=st.fixed_dictionaries({name: st.integers(low, high) for name, (low, high) in PARAM_BOUNDS.items()}),
)
def test_json_round_trip_property(chain_id, time_ms, powers, amounts, params):
    g = Genesis(
        chain_id=chain_id,
        genesis_time_ms=time_ms,
        validators=tuple(
            GenesisValidator(f"v{i}", derive_public_key(key(f"p{i}")), power) for i, power in enumerate(powers)
        ),
        allocations=tuple(Allocation(address_hash(bytes([i])), amount) for i, amount in enumerate(amounts)),
        params=ConsensusParams(**params),
    )
    validate_genesis(g)
    again = loads_genesis(json.dumps(genesis_to_json(g)))
    assert again == g
    assert genesis_hash(again) == genesis_hash(g)


# --------------------------------------------------------------------------- building


def test_make_genesis_from_keys():
    keys = [("one", key("1")), ("two", key("2"), 5)]
    g, private = make_genesis("net", keys, [(addr("w1"), 10), (bytes(20), 3)], genesis_time_ms=TIME_MS)
    assert [(v.name, v.power) for v in g.validators] == [("one", 10), ("two", 5)]
    assert private == {"one": key("1"), "two": key("2")}
    assert g.validators[1].public_key == derive_public_key(key("2"))
    assert g.allocations == (Allocation(decode_address(addr("w1")), 10), Allocation(bytes(20), 3))
    assert g.params == ConsensusParams() and g.genesis_time_ms == TIME_MS


def test_make_genesis_refuses_what_a_file_would_be_refused_for():
    with pytest.raises(GenesisError) as info:
        make_genesis("net", [("same", key("1")), ("same", key("2"))], genesis_time_ms=TIME_MS)
    assert info.value.code == errors.DUPLICATE_VALIDATOR
    with pytest.raises(GenesisError) as info:
        make_genesis("net", 2, [(addr("w1")[:-1] + "x", 1)])
    assert info.value.code in (errors.BAD_ADDRESS, errors.BAD_ADDRESS_CHECKSUM)
    with pytest.raises(GenesisError) as info:
        make_genesis("net", 0)
    assert info.value.code == errors.NO_VALIDATORS


def test_make_genesis_with_a_count_makes_keys_reproducibly_from_a_seed():
    g1, k1 = make_genesis("net", 4, seed=b"s", genesis_time_ms=TIME_MS)
    g2, k2 = make_genesis("net", 4, seed=b"s", genesis_time_ms=TIME_MS)
    g3, k3 = make_genesis("net", 4, genesis_time_ms=TIME_MS)
    assert g1 == g2 and k1 == k2
    assert k3 != k1
    assert sorted(k1) == ["validator-0", "validator-1", "validator-2", "validator-3"]
    for v in g1.validators:
        assert derive_public_key(k1[v.name]) == v.public_key


def test_make_genesis_without_a_time_starts_now():
    import time

    g, _ = make_genesis("net", 1)
    assert abs(g.genesis_time_ms - time.time() * 1000) < 5_000 and g.genesis_time_ms % 1000 == 0


def test_devnet_genesis_funds_the_faucet_and_demo_wallets():
    g, validator_keys, wallet_keys = make_devnet_genesis(4, faucet_amount=10**12, demo_wallets=3, seed=b"d")
    assert g.chain_id == "devnet" and len(g.validators) == 4 and len(validator_keys) == 4
    assert list(wallet_keys) == ["faucet", "alice", "bob", "carol"]
    owners = {address_hash(derive_public_key(k)): name for name, k in wallet_keys.items()}
    funded = {owners[a.address]: a.amount for a in g.allocations}
    assert funded["faucet"] == 10**12 and set(funded) == set(wallet_keys)
    assert g.total_supply == 10**12 + 3 * funded["alice"]
    assert not set(validator_keys.values()) & set(wallet_keys.values())
    many = make_devnet_genesis(1, demo_wallets=10, seed=b"d")[2]
    assert len(many) == 11 and "wallet-10" in many
    assert make_devnet_genesis(1, demo_wallets=0)[0].allocations[0].amount > 0


def test_validator_set_of_genesis():
    validators = pytest.importorskip("node.types.validators")
    g = parse_genesis(document())
    vset = validator_set_of(g)
    assert isinstance(vset, validators.ValidatorSet)
    members = list(getattr(vset, "validators", vset))
    assert {(v.name, v.public_key, v.power) for v in members} == {
        (v.name, v.public_key, v.power) for v in g.validators
    }


# --------------------------------------------------------------------------- command line


def test_cli_new_then_check(tmp_path, capsys):
    out = tmp_path / "net" / "genesis.json"
    assert main(["new", "--validators", "3", "--chain-id", "clinet", "--out", str(out), "--seed", "00ff"]) == 0
    g = load_genesis(out)
    assert g.chain_id == "clinet" and len(g.validators) == 3
    keys_dir = out.parent / "keys"
    files = sorted(p.name for p in keys_dir.iterdir())
    assert files == sorted(["validator-0.json", "validator-1.json", "validator-2.json"] +
                           ["faucet.json", "alice.json", "bob.json", "carol.json"])
    for v in g.validators:
        path = keys_dir / f"{v.name}.json"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        body = json.loads(path.read_text())
        assert derive_public_key(bytes.fromhex(body["private_key"])) == v.public_key
        assert body["address"] == encode_address(v.address)
    capsys.readouterr()
    assert main(["check", str(out)]) == 0
    assert genesis_hash(g).hex() in capsys.readouterr().out
    # a second run neither overwrites the genesis nor the keys without --force
    before = {p.name: p.read_bytes() for p in keys_dir.iterdir()}
    assert main(["new", "--validators", "3", "--out", str(out)]) == 1
    out.unlink()
    assert main(["new", "--validators", "3", "--out", str(out)]) == 1
    assert before == {p.name: p.read_bytes() for p in keys_dir.iterdir()}
    assert main(["new", "--validators", "3", "--out", str(out), "--force"]) == 0
    assert before != {p.name: p.read_bytes() for p in keys_dir.iterdir()}


def test_cli_new_names_each_network_apart(tmp_path, capsys):
    """Without --chain-id a genesis gets a name of its own, never the devnet's: random, or derived from --seed."""
    ids = []
    for i, seed in enumerate([[], [], ["--seed", "00ff"], ["--seed", "00ff"], ["--seed", "0100"]]):
        out = tmp_path / str(i) / "genesis.json"
        assert main(["new", "--validators", "1", "--out", str(out), *seed]) == 0
        ids.append(load_genesis(out).chain_id)
        assert f"chain {ids[-1]}," in capsys.readouterr().out
    assert all(re.fullmatch(r"ledger-[0-9a-f]{8}", c) for c in ids), ids
    assert ids[0] != ids[1] and ids[2] == ids[3] != ids[4]


def test_cli_reports_errors_with_their_code(tmp_path, capsys):
    path = tmp_path / "genesis.json"
    path.write_text(json.dumps(edited(extra=1)))
    assert main(["check", str(path)]) == 1
    assert errors.UNKNOWN_FIELD in capsys.readouterr().err
    assert main(["new", "--validators", "0", "--out", str(tmp_path / "g.json")]) == 1
    assert not (tmp_path / "g.json").exists()
