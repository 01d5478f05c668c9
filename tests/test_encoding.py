"""Canonical encoding: every value round-trips, and decoding is strict.

Strict means a byte string decodes only if it is exactly the encoding of
what it decodes to: no trailing bytes, no truncation, no unknown tags, no
boolean other than 0/1, no count beyond its limit, no invalid UTF-8.  Any
other byte string raises ``DecodeError`` (never another exception type), so
callers have one thing to catch.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from node.encoding import DecodeError, Reader, Writer
from node.types.transaction import (
    MAX_TX_BYTES,
    MAX_TX_INPUTS,
    MAX_TX_OUTPUTS,
    OutPoint,
    Transaction,
    TxInput,
    TxOutput,
    decode_transaction,
    encode_transaction,
    encode_unsigned,
    signing_digest,
)

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --------------------------------------------------------------------------- primitives

RANGES = {
    "u8": (0, 2**8 - 1),
    "u16": (0, 2**16 - 1),
    "u32": (0, 2**32 - 1),
    "u64": (0, 2**64 - 1),
    "i32": (-(2**31), 2**31 - 1),
}
WIDTHS = {"u8": 1, "u16": 2, "u32": 4, "u64": 8, "i32": 4}
TEXT_LIMIT = BYTES_LIMIT = 1_000


def _field(kind: str) -> st.SearchStrategy:
    if kind in RANGES:
        return st.integers(*RANGES[kind])
    if kind == "boolean":
        return st.booleans()
    if kind == "fixed":
        return st.binary(max_size=40)
    if kind == "var_bytes":
        return st.binary(max_size=200)
    return st.text(max_size=100)


fields = st.sampled_from([*RANGES, "boolean", "fixed", "var_bytes", "text"]).flatmap(
    lambda kind: st.tuples(st.just(kind), _field(kind))
)


def write_fields(values: list[tuple[str, object]]) -> bytes:
    w = Writer()
    for kind, value in values:
        if kind == "fixed":
            w.fixed(value, len(value))
        else:
            getattr(w, kind)(value)
    return w.getvalue()


def read_fields(data: bytes, values: list[tuple[str, object]]) -> list[tuple[str, object]]:
    r = Reader(data)
    out = []
    for kind, value in values:
        if kind == "fixed":
            out.append((kind, r.fixed(len(value))))
        elif kind == "var_bytes":
            out.append((kind, r.var_bytes(BYTES_LIMIT)))
        elif kind == "text":
            out.append((kind, r.text(TEXT_LIMIT)))
        else:
            out.append((kind, getattr(r, kind)()))
    r.finish()
    return out


@FAST
@given(st.lists(fields, max_size=12))
def test_primitive_sequences_round_trip(values):
    data = write_fields(values)
    assert read_fields(data, values) == values
    assert write_fields(read_fields(data, values)) == data


@FAST
@given(st.lists(fields, min_size=1, max_size=8), st.data())
def test_any_truncation_of_a_primitive_sequence_is_rejected(values, data):
    encoded = write_fields(values)
    assume(encoded)
    cut = data.draw(st.integers(0, len(encoded) - 1))
    with pytest.raises(DecodeError):
        read_fields(encoded[:cut], values)


@FAST
@given(st.lists(fields, max_size=8), st.binary(min_size=1, max_size=10))
def test_trailing_bytes_after_a_primitive_sequence_are_rejected(values, extra):
    with pytest.raises(DecodeError, match="trailing"):
        read_fields(write_fields(values) + extra, values)


@pytest.mark.parametrize("kind", sorted(RANGES))
def test_integers_are_big_endian_fixed_width(kind):
    low, high = RANGES[kind]
    for value in (low, high, 0, 1):
        encoded = getattr(Writer(), kind)(value).getvalue()
        assert len(encoded) == WIDTHS[kind]
        assert int.from_bytes(encoded, "big", signed=kind == "i32") == value
        assert getattr(Reader(encoded), kind)() == value


@pytest.mark.parametrize("kind", sorted(RANGES))
def test_writer_refuses_out_of_range_integers(kind):
    low, high = RANGES[kind]
    for value in (low - 1, high + 1):
        with pytest.raises(struct.error):
            getattr(Writer(), kind)(value)


def test_boolean_bytes_above_one_are_rejected():
    assert Reader(b"\x00").boolean() is False
    assert Reader(b"\x01").boolean() is True
    for byte in (2, 0x80, 0xFF):
        with pytest.raises(DecodeError, match="boolean"):
            Reader(bytes([byte])).boolean()


def test_fixed_width_is_enforced_on_write_and_read():
    with pytest.raises(ValueError):
        Writer().fixed(b"abc", 4)
    with pytest.raises(DecodeError, match="truncated"):
        Reader(b"abc").fixed(4)


def test_lengths_and_counts_are_bounded_before_reading():
    huge = Writer().u32(2**32 - 1).getvalue()
    with pytest.raises(DecodeError, match="exceeds limit"):
        Reader(huge).var_bytes(100)
    with pytest.raises(DecodeError, match="exceeds limit"):
        Reader(huge).count(100)
    with pytest.raises(DecodeError, match="exceeds limit"):
        Reader(huge).text(100)
    at_limit = Writer().var_bytes(b"x" * 100).getvalue()
    assert Reader(at_limit).var_bytes(100) == b"x" * 100
    with pytest.raises(DecodeError, match="exceeds limit"):
        Reader(at_limit).var_bytes(99)
    assert Reader(Writer().u32(100).getvalue()).count(100) == 100
    # a count within its limit whose elements are missing is a truncation, not a crash
    with pytest.raises(DecodeError, match="truncated"):
        Reader(Writer().u32(5).getvalue()).var_bytes(10)


@pytest.mark.parametrize(
    "raw",
    [
        b"\xff",
        b"\xc0\x80",  # overlong NUL
        b"\xe0\x80\x80",  # overlong
        b"\xed\xa0\x80",  # UTF-16 surrogate
        b"\xf4\x90\x80\x80",  # above U+10FFFF
        b"abc\x80",  # stray continuation byte
        b"\xe2\x82",  # cut multi-byte sequence
    ],
)
def test_invalid_utf8_text_is_rejected(raw):
    with pytest.raises(DecodeError, match="UTF-8"):
        Reader(Writer().var_bytes(raw).getvalue()).text(100)


@FAST
@given(st.text())
def test_text_round_trips_any_unicode(value):
    encoded = Writer().text(value).getvalue()
    r = Reader(encoded)
    assert r.text(len(encoded)) == value
    r.finish()


def test_reader_takes_bytes_like_only():
    for data in (b"\x01", bytearray(b"\x01"), memoryview(b"\x01")):
        assert Reader(data).u8() == 1
    for bad in ("\x01", 1, None, [1]):
        with pytest.raises(DecodeError):
            Reader(bad)


def test_remaining_counts_unread_bytes():
    r = Reader(b"\x00\x01\x02")
    assert r.remaining() == 3
    r.u16()
    assert r.remaining() == 1
    with pytest.raises(DecodeError):
        r.finish()
    r.u8()
    r.finish()


# --------------------------------------------------------------------------- transactions

outpoints = st.builds(OutPoint, st.binary(min_size=32, max_size=32), st.integers(0, 2**32 - 1))
tx_inputs = st.builds(
    TxInput, outpoints, st.binary(min_size=33, max_size=33), st.binary(min_size=64, max_size=64)
)
tx_outputs = st.builds(TxOutput, st.binary(min_size=20, max_size=20), st.integers(0, 2**64 - 1))
transactions = st.builds(
    Transaction,
    st.lists(tx_inputs, max_size=6).map(tuple),
    st.lists(tx_outputs, max_size=6).map(tuple),
)


@FAST
@given(transactions)
def test_transaction_round_trips(tx):
    encoded = tx.encode()
    assert encoded == encode_transaction(tx)
    decoded = Transaction.decode(encoded)
    assert decoded == tx
    assert decoded.encode() == encoded
    assert decoded.txid == tx.txid
    assert decoded.size == len(encoded)
    assert encoded[0] == 1 and encode_unsigned(tx)[0] == 0


@FAST
@given(transactions, st.data())
def test_txid_ignores_signatures_but_signing_digest_binds_chain(tx, data):
    assume(tx.inputs)
    n = len(tx.inputs)
    other_sigs = data.draw(st.lists(st.binary(min_size=64, max_size=64), min_size=n, max_size=n))
    resigned = Transaction(
        tuple(TxInput(i.prev, i.public_key, sig) for i, sig in zip(tx.inputs, other_sigs, strict=True)), tx.outputs
    )
    assert resigned.txid == tx.txid
    assert signing_digest(resigned, "a") == signing_digest(tx, "a")
    assert signing_digest(tx, "a") != signing_digest(tx, "b")
    assert (resigned.encode() == tx.encode()) == (resigned == tx)


@FAST
@given(transactions, st.binary(min_size=1, max_size=8))
def test_transaction_with_trailing_bytes_is_rejected(tx, extra):
    with pytest.raises(DecodeError, match="trailing"):
        decode_transaction(tx.encode() + extra)


@FAST
@given(transactions, st.data())
def test_truncated_transaction_is_rejected(tx, data):
    encoded = tx.encode()
    cut = data.draw(st.integers(0, len(encoded) - 1))
    with pytest.raises(DecodeError):
        decode_transaction(encoded[:cut])


@FAST
@given(transactions, st.integers(0, 255).filter(lambda tag: tag != 1))
def test_transaction_with_a_bad_tag_is_rejected(tx, tag):
    with pytest.raises(DecodeError, match="tag"):
        decode_transaction(bytes([tag]) + tx.encode()[1:])


def test_unsigned_body_does_not_decode_as_a_transaction():
    tx = Transaction((TxInput(OutPoint(bytes(32), 0), b"\x02" + bytes(32), bytes(64)),), (TxOutput(bytes(20), 5),))
    with pytest.raises(DecodeError, match="tag"):
        decode_transaction(tx.unsigned_bytes)


def test_oversized_counts_are_rejected_without_allocating():
    for inputs, outputs in ((MAX_TX_INPUTS + 1, 0), (0, MAX_TX_OUTPUTS + 1), (2**32 - 1, 0), (0, 2**32 - 1)):
        data = Writer().u8(1).u32(inputs).getvalue()
        if inputs == 0:
            data += Writer().u32(outputs).getvalue()
        with pytest.raises(DecodeError, match="exceeds limit"):
            decode_transaction(data)
    # counts at the limit but with the elements missing are truncations
    with pytest.raises(DecodeError, match="truncated"):
        decode_transaction(Writer().u8(1).u32(MAX_TX_INPUTS).getvalue())


def test_oversized_transaction_is_rejected_before_parsing():
    with pytest.raises(DecodeError, match="limit"):
        decode_transaction(b"\x01" + bytes(MAX_TX_BYTES))


def test_encoder_refuses_wrong_widths_and_ranges():
    good_in = TxInput(OutPoint(bytes(32), 0), b"\x02" + bytes(32), bytes(64))
    good_out = TxOutput(bytes(20), 1)
    for tx in (
        Transaction((TxInput(OutPoint(bytes(31), 0), good_in.public_key, good_in.signature),), (good_out,)),
        Transaction((TxInput(good_in.prev, bytes(32), good_in.signature),), (good_out,)),
        Transaction((TxInput(good_in.prev, good_in.public_key, bytes(65)),), (good_out,)),
        Transaction((good_in,), (TxOutput(bytes(21), 1),)),
    ):
        with pytest.raises(ValueError):
            encode_transaction(tx)
    for tx in (
        Transaction((good_in,), (TxOutput(bytes(20), -1),)),
        Transaction((good_in,), (TxOutput(bytes(20), 2**64),)),
        Transaction((TxInput(OutPoint(bytes(32), 2**32), good_in.public_key, good_in.signature),), (good_out,)),
    ):
        with pytest.raises(struct.error):
            encode_transaction(tx)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(transactions, st.data())
def test_mutated_encodings_decode_only_to_themselves(tx, data):
    """Flip, insert or delete bytes: the result is a DecodeError or re-encodes identically."""
    encoded = bytearray(tx.encode())
    for _ in range(data.draw(st.integers(1, 3))):
        op = data.draw(st.sampled_from(("set", "insert", "delete")))
        pos = data.draw(st.integers(0, max(len(encoded) - 1, 0)))
        if op == "set" and encoded:
            encoded[pos] = data.draw(st.integers(0, 255))
        elif op == "insert":
            encoded[pos:pos] = data.draw(st.binary(min_size=1, max_size=4))
        elif encoded:
            del encoded[pos]
    try:
        decoded = decode_transaction(bytes(encoded))
    except DecodeError:
        return
    assert decoded.encode() == bytes(encoded)
    assert encode_transaction(Transaction(decoded.inputs, decoded.outputs)) == bytes(encoded)


@FAST
@given(st.binary(max_size=300))
def test_arbitrary_bytes_decode_only_to_themselves(raw):
    try:
        decoded = decode_transaction(b"\x01" + raw)
    except DecodeError:
        return
    assert encode_transaction(Transaction(decoded.inputs, decoded.outputs)) == b"\x01" + raw
