"""Round trips and strict decoding of the records the ledger hashes: Header, Block, Commit, Vote.

(Primitives and Transaction have their own properties in tests/test_encoding.py.)
"""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.consensus.messages import Vote, VoteType
from node.encoding import DecodeError
from node.types.block import Block, Header
from node.types.commit import Commit, CommitSig
from node.types.transaction import OutPoint, Transaction, TxInput, TxOutput

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

h32 = st.binary(min_size=32, max_size=32)
a20 = st.binary(min_size=20, max_size=20)
u64 = st.integers(0, 2**64 - 1)
u32 = st.integers(0, 2**32 - 1)
chain_ids = st.text(max_size=20).filter(lambda t: len(t.encode("utf-8")) <= 64)

headers = st.builds(Header, chain_ids, u64, u64, h32, h32, h32, a20, h32, h32, h32, h32, h32)
votes = st.builds(Vote, st.sampled_from(list(VoteType)), u64, u32, st.none() | h32, u64, a20,
                  st.binary(min_size=64, max_size=64))
commits = st.builds(
    Commit, u64, u32, h32,
    st.lists(a20, max_size=5, unique=True).flatmap(
        lambda vals: st.tuples(*[st.builds(CommitSig, st.just(v), u64, st.binary(min_size=64, max_size=64))
                                 for v in sorted(vals)])),
)
txs = st.builds(
    Transaction,
    st.lists(st.builds(TxInput, st.builds(OutPoint, h32, u32), st.binary(min_size=33, max_size=33),
                       st.binary(min_size=64, max_size=64)), min_size=1, max_size=3).map(tuple),
    st.lists(st.builds(TxOutput, a20, u64), min_size=1, max_size=3).map(tuple),
)
blocks = st.builds(Block, headers, st.lists(txs, max_size=4).map(tuple), st.none() | commits)

RECORDS = {
    "header": (headers, Header.decode),
    "block": (blocks, Block.decode),
    "commit": (commits, Commit.decode),
    "vote": (votes, Vote.decode),
}


@pytest.mark.parametrize("kind", list(RECORDS))
def test_round_trip_and_strictness(kind):
    strategy, decode = RECORDS[kind]

    @FAST
    @given(strategy, st.data())
    def check(record, data):
        encoded = record.encode()
        decoded = decode(encoded)
        assert decoded == record and decoded.encode() == encoded
        # Trailing bytes are refused.
        with pytest.raises(DecodeError):
            decode(encoded + data.draw(st.binary(min_size=1, max_size=4)))
        # Every truncation is refused.
        cut = data.draw(st.integers(0, len(encoded) - 1))
        with pytest.raises(DecodeError):
            decode(encoded[:cut])

    check()


@FAST
@given(votes, st.integers(0, 255))
def test_vote_with_an_unknown_type_or_bad_boolean_is_refused(vote, tag):
    encoded = vote.encode()
    if tag not in (1, 2):
        with pytest.raises(DecodeError):
            Vote.decode(bytes([tag]) + encoded[1:])
    # Byte 13 is the "has block hash" flag: anything but 0/1 is refused.
    if tag > 1:
        with pytest.raises(DecodeError):
            Vote.decode(encoded[:13] + bytes([tag]) + encoded[14:])


@FAST
@given(blocks, st.integers(2, 255))
def test_block_commit_flag_and_transaction_tag_are_strict(block, flag):
    encoded = block.encode()
    flag_at = len(encoded) - (4 + len(block.last_commit.encode()) + 1 if block.last_commit else 1)
    assert encoded[flag_at] in (0, 1)
    with pytest.raises(DecodeError):
        Block.decode(encoded[:flag_at] + bytes([flag]) + encoded[flag_at + 1:])
    if block.txs:
        header_len = int.from_bytes(encoded[:4], "big")
        tag_at = 4 + header_len + 4 + 4  # first transaction's tag byte
        assert encoded[tag_at] == 1
        with pytest.raises(DecodeError):
            Block.decode(encoded[:tag_at] + bytes([flag]) + encoded[tag_at + 1:])


@FAST
@given(commits.filter(lambda c: len(c.signatures) >= 2))
def test_commit_signatures_must_be_sorted_and_unique(commit):
    sigs = list(commit.signatures)
    swapped = Commit(commit.height, commit.round, commit.block_hash, tuple([sigs[1], sigs[0]] + sigs[2:]))
    with pytest.raises(DecodeError):
        Commit.decode(swapped.encode())
    dup = Commit(commit.height, commit.round, commit.block_hash, tuple([sigs[0], sigs[0]] + sigs[2:]))
    with pytest.raises(DecodeError):
        Commit.decode(dup.encode())


def test_header_chain_id_length_and_utf8_are_enforced():
    header = Header("x" * 64, 1, 2, b"\x00" * 32, b"\x00" * 32, b"\x00" * 32, b"\x00" * 20, b"\x00" * 32, b"\x00" * 32,
                    b"\x01" * 32, b"\x02" * 32, b"\x03" * 32)
    assert Header.decode(header.encode()) == header
    too_long = dataclasses.replace(header, chain_id="x" * 65)
    with pytest.raises(DecodeError):
        Header.decode(too_long.encode())
    raw = bytearray(header.encode())
    raw[4] = 0xFF  # first chain-id byte: not UTF-8
    with pytest.raises(DecodeError):
        Header.decode(bytes(raw))
