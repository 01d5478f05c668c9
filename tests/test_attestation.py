"""``node.attestation``: a node's signed word for a read answer verifies only for exactly that answer, chain,
kind, height and address, and its JSON form is read back or refused with ``bad-attestation``."""

from __future__ import annotations

import dataclasses

import pytest

from node.attestation import (
    BAD_ATTESTATION,
    BALANCE,
    UTXOS,
    AttestationError,
    attestation_json,
    balance_body,
    parse_attestation,
    sign_attestation,
    utxos_body,
    verify_attestation,
)
from node.crypto import SigningKey
from node.types.transaction import OutPoint

KEY = SigningKey(bytes([7]) * 32)
ADDRESS = bytes(range(20))
PAGE = utxos_body(None, [(OutPoint(b"\x01" * 32, 0), 500, 3), (OutPoint(b"\x02" * 32, 1), 9, 4)], False)


def test_an_attestation_verifies_for_its_answer_only():
    att = sign_attestation(KEY, "chain-a", BALANCE, 10, ADDRESS, balance_body(1_000))
    assert att.validator == KEY.public_key
    assert verify_attestation(att, "chain-a", BALANCE, 10, ADDRESS, balance_body(1_000))
    assert not verify_attestation(att, "chain-a", BALANCE, 10, ADDRESS, balance_body(1_001))  # another answer
    assert not verify_attestation(att, "chain-b", BALANCE, 10, ADDRESS, balance_body(1_000))  # another chain
    assert not verify_attestation(att, "chain-a", BALANCE, 11, ADDRESS, balance_body(1_000))  # another height
    assert not verify_attestation(att, "chain-a", BALANCE, 10, bytes(20), balance_body(1_000))  # another address
    assert not verify_attestation(att, "chain-a", UTXOS, 10, ADDRESS, balance_body(1_000))  # another kind
    assert not verify_attestation(att, "chain-a", "votes", 10, ADDRESS, balance_body(1_000))  # no such kind


def test_a_tampered_attestation_fails():
    att = sign_attestation(KEY, "chain-a", UTXOS, 5, ADDRESS, PAGE)
    assert verify_attestation(att, "chain-a", UTXOS, 5, ADDRESS, PAGE)
    flipped = att.signature[:10] + bytes([att.signature[10] ^ 1]) + att.signature[11:]
    assert not verify_attestation(dataclasses.replace(att, signature=flipped), "chain-a", UTXOS, 5, ADDRESS, PAGE)
    other = SigningKey(bytes([8]) * 32)  # a node claiming another validator's key for its own signature
    assert not verify_attestation(dataclasses.replace(att, validator=other.public_key), "chain-a", UTXOS, 5, ADDRESS,
                                  PAGE)
    # the page's cursor, amounts, order and "more pages" flag are all signed
    for changed in (utxos_body(OutPoint(b"\x01" * 32, 0), [(OutPoint(b"\x02" * 32, 1), 9, 4)], False),
                    utxos_body(None, [(OutPoint(b"\x01" * 32, 0), 501, 3), (OutPoint(b"\x02" * 32, 1), 9, 4)], False),
                    utxos_body(None, [(OutPoint(b"\x02" * 32, 1), 9, 4), (OutPoint(b"\x01" * 32, 0), 500, 3)], False),
                    utxos_body(None, [(OutPoint(b"\x01" * 32, 0), 500, 3), (OutPoint(b"\x02" * 32, 1), 9, 4)], True)):
        assert not verify_attestation(att, "chain-a", UTXOS, 5, ADDRESS, changed)


def test_json_round_trip_and_refusals():
    att = sign_attestation(KEY, "chain-a", BALANCE, 1, ADDRESS, balance_body(0))
    assert parse_attestation(attestation_json(att)) == att
    for bad in (None, "ab", {"validator": "zz", "signature": "00"}, {"validator": KEY.public_key.hex()},
                {"validator": KEY.public_key.hex()[:-2], "signature": att.signature.hex()}):
        with pytest.raises(AttestationError) as info:
            parse_attestation(bad)
        assert info.value.code == BAD_ATTESTATION
