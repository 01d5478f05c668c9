"""Transactions: the records users sign, their encoding, ids and signing digest.

``txid = H(unsigned body)``, where the unsigned body is the transaction with
every signature left out, so a signature can never change a txid: the txid is
the transaction's identity everywhere (outpoints, indexes, the mempool, REST).
``wtxid = H(signed encoding)`` (Bitcoin's witness txid) covers every byte,
signatures included: a block's tx_root is the merkle root of its wtxids, so a
block id covers its transactions' bytes.  Every input signs
``H(chain_id || unsigned body)``, so a transaction made for one chain is void
on another.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import NamedTuple

from node.crypto import ADDRESS_SIZE, PUBLIC_KEY_SIZE, SIGNATURE_SIZE, derive_public_key, sha256, sign_digest
from node.encoding import DecodeError, Reader, Writer
from node.types.hashes import HASH_SIZE

COIN: int = 100_000_000
"""Base units in one whole coin."""
MAX_SUPPLY: int = 21_000_000 * COIN
"""No amount, and no sum of amounts, may exceed this (fits a signed 64-bit integer)."""
MAX_TX_INPUTS: int = 1_000
MAX_TX_OUTPUTS: int = 1_000
MAX_TX_BYTES: int = 100_000
"""Largest encoded transaction accepted anywhere."""
TXID_SIZE = HASH_SIZE
ZERO_SIGNATURE = bytes(SIGNATURE_SIZE)


class OutPoint(NamedTuple):
    """A reference to one output of an earlier transaction.

    A named tuple rather than a dataclass: outpoints are the keys of every
    UTXO dict on the hot path (mempool, overlay, recent outputs, block
    results), and a tuple hashes and compares in C (a dataclass's
    ``__hash__``/``__eq__`` are Python calls, about 0.2 us per dict lookup).
    """

    txid: bytes
    """32-byte id of the transaction that created the output."""
    index: int  # type: ignore[assignment]  # the field shadows tuple.index, which no caller uses
    """Position of the output in that transaction (u32)."""

    def encode(self) -> bytes:
        return self.txid + self.index.to_bytes(4, "big")

    @classmethod
    def decode(cls, data: bytes) -> OutPoint:
        if len(data) != TXID_SIZE + 4:
            raise DecodeError("outpoint is 36 bytes")
        return cls(bytes(data[:32]), int.from_bytes(data[32:], "big"))


@dataclass(frozen=True, slots=True)
class TxInput:
    """Spends one output; the key must hash to that output's address."""

    prev: OutPoint
    """The output being spent."""
    public_key: bytes
    """33-byte compressed secp256k1 public key."""
    signature: bytes
    """64-byte low-S r||s over the transaction's signing digest."""


@dataclass(frozen=True, slots=True)
class TxOutput:
    """Creates a new unspent output."""

    address: bytes
    """20-byte account hash that may spend it."""
    amount: int
    """Base units, 0 < amount <= MAX_SUPPLY (u64 on the wire)."""


@dataclass(frozen=True)
class Transaction:
    """A transfer: spends every input, creates every output; the rest is the fee."""

    inputs: tuple[TxInput, ...]
    """Outputs spent, each with its key and signature."""
    outputs: tuple[TxOutput, ...]
    """Outputs created."""

    @cached_property
    def unsigned_bytes(self) -> bytes:
        return encode_unsigned(self)

    @cached_property
    def txid(self) -> bytes:
        return sha256(self.unsigned_bytes)

    @cached_property
    def encoded(self) -> bytes:
        return encode_transaction(self)

    @cached_property
    def wtxid(self) -> bytes:
        """SHA-256 of the full signed encoding: the leaf of the block's tx_root, covering every byte."""
        return sha256(self.encoded)

    def encode(self) -> bytes:
        return self.encoded

    @classmethod
    def decode(cls, data: bytes) -> Transaction:
        return decode_transaction(data)

    @property
    def size(self) -> int:
        return len(self.encoded)


def _write_body(w: Writer, tx: Transaction, with_signatures: bool) -> None:
    w.u32(len(tx.inputs))
    for txin in tx.inputs:
        w.fixed(txin.prev.txid, TXID_SIZE).u32(txin.prev.index).fixed(txin.public_key, PUBLIC_KEY_SIZE)
        if with_signatures:
            w.fixed(txin.signature, SIGNATURE_SIZE)
    w.u32(len(tx.outputs))
    for out in tx.outputs:
        w.fixed(out.address, ADDRESS_SIZE).u64(out.amount)


def encode_unsigned(tx: Transaction) -> bytes:
    w = Writer().u8(0)  # domain tag: unsigned body
    _write_body(w, tx, with_signatures=False)
    return w.getvalue()


def encode_transaction(tx: Transaction) -> bytes:
    w = Writer().u8(1)  # domain tag: signed transaction
    _write_body(w, tx, with_signatures=True)
    return w.getvalue()


def read_transaction(r: Reader) -> Transaction:
    tag = r.u8()
    if tag != 1:
        raise DecodeError(f"transaction tag must be 1, got {tag}")
    inputs = []
    for _ in range(r.count(MAX_TX_INPUTS)):
        prev = OutPoint(r.fixed(TXID_SIZE), r.u32())
        inputs.append(TxInput(prev, r.fixed(PUBLIC_KEY_SIZE), r.fixed(SIGNATURE_SIZE)))
    outputs = []
    for _ in range(r.count(MAX_TX_OUTPUTS)):
        outputs.append(TxOutput(r.fixed(ADDRESS_SIZE), r.u64()))
    return Transaction(tuple(inputs), tuple(outputs))


_COUNT = struct.Struct(">I")
_TAGGED_COUNT = struct.Struct(">BI")
_INPUT = struct.Struct(f">{TXID_SIZE}sI{PUBLIC_KEY_SIZE}s{SIGNATURE_SIZE}s")
_OUTPUT = struct.Struct(f">{ADDRESS_SIZE}sQ")
_UNSIGNED_INPUT_BYTES = TXID_SIZE + 4 + PUBLIC_KEY_SIZE
"""An input's bytes before its signature: the part of it the unsigned body (hence the txid) covers."""


def decode_transaction(data: bytes) -> Transaction:
    if len(data) > MAX_TX_BYTES:
        raise DecodeError(f"transaction is {len(data)} bytes, limit {MAX_TX_BYTES}")
    if type(data) is bytes:
        tx = decode_well_formed_transaction(data)
        if tx is not None:
            return tx
    r = Reader(data)  # anything unusual, and every error, takes the one general path (same messages)
    tx = read_transaction(r)
    r.finish()
    _remember_encodings(tx, bytes(data), encode_unsigned(tx))
    return tx


def decode_well_formed_transaction(data: bytes) -> Transaction | None:
    """The transaction ``data`` encodes, or None unless its counts and length are exactly right.

    The fast path of ``decode_transaction``: fixed-width fields unpacked with
    ``struct``, and the unsigned body (the txid's preimage) cut out of
    ``data`` instead of re-encoded.  It decides nothing ``read_transaction``
    would refuse: a None sends the bytes down the general path.
    """
    unsigned = cut_unsigned_body(data, 0, len(data))
    if unsigned is None:
        return None
    outputs_at = _TAGGED_COUNT.size + _INPUT.size * _TAGGED_COUNT.unpack_from(data)[1]
    inputs = tuple([TxInput(OutPoint(txid, index), key, signature)
                    for txid, index, key, signature in _INPUT.iter_unpack(data[_TAGGED_COUNT.size:outputs_at])])
    outputs = tuple([TxOutput(address, amount)
                     for address, amount in _OUTPUT.iter_unpack(data[outputs_at + _COUNT.size:])])
    tx = Transaction(inputs, outputs)
    _remember_encodings(tx, data, unsigned)
    return tx


def cut_unsigned_body(data: bytes, start: int, end: int) -> bytes | None:
    """The unsigned body (``Transaction.unsigned_bytes``, the txid's preimage) of the signed transaction
    ``data[start:end]``, or None unless its tag, counts and length are exactly right.

    Cut out of the bytes rather than re-encoded: decoding a transaction needs it for the txid, and so does
    listing a stored block's txids without decoding its transactions (``node.types.block.read_block_summary``).
    """
    if end - start < _TAGGED_COUNT.size + _COUNT.size:
        return None
    tag, n_inputs = _TAGGED_COUNT.unpack_from(data, start)
    inputs_at = start + _TAGGED_COUNT.size
    outputs_at = inputs_at + _INPUT.size * n_inputs
    if tag != 1 or n_inputs > MAX_TX_INPUTS or outputs_at + _COUNT.size > end:
        return None
    n_outputs = _COUNT.unpack_from(data, outputs_at)[0]
    if n_outputs > MAX_TX_OUTPUTS or outputs_at + _COUNT.size + _OUTPUT.size * n_outputs != end:
        return None
    # domain tag 0, the input count, each input without its signature, then the outputs as they are
    if n_inputs == 1:
        return b"\x00" + data[start + 1:inputs_at + _UNSIGNED_INPUT_BYTES] + data[outputs_at:end]
    parts = [b"\x00", data[start + 1:inputs_at]]
    parts += [data[at:at + _UNSIGNED_INPUT_BYTES] for at in range(inputs_at, outputs_at, _INPUT.size)]
    parts.append(data[outputs_at:end])
    return b"".join(parts)


def _remember_encodings(tx: Transaction, encoded: bytes, unsigned: bytes) -> None:
    """Store the bytes a decoded ``tx`` came from and its txid on it, computed now: every decoded transaction
    needs its txid (mempool, indexes, block listings), and setting it here skips the ``cached_property``
    machinery (a lock per first access on Python 3.11).  The wtxid stays lazy: a block read back to list its
    txids (``GET /v1/blocks``, 100 blocks a request) would hold a third more memory per transaction."""
    d = tx.__dict__
    d["encoded"] = encoded
    d["unsigned_bytes"] = unsigned
    d["txid"] = sha256(unsigned)


@lru_cache(maxsize=16)
def _chain_prefix(chain_id: str) -> bytes:
    return Writer().text(chain_id).getvalue()


def signing_digest(tx: Transaction, chain_id: str) -> bytes:
    """What every input of ``tx`` signs: binds the body to one chain (``H(text(chain_id) || unsigned body)``)."""
    return sha256(_chain_prefix(chain_id) + tx.unsigned_bytes)


def sign_transaction(
    chain_id: str,
    spends: list[tuple[OutPoint, bytes]],
    outputs: list[TxOutput],
) -> Transaction:
    """Build and sign a transfer; ``spends`` pairs each outpoint with its owner's private key."""
    unsigned = Transaction(
        tuple(TxInput(prev, derive_public_key(key), ZERO_SIGNATURE) for prev, key in spends),
        tuple(outputs),
    )
    digest = signing_digest(unsigned, chain_id)
    signed = tuple(
        TxInput(txin.prev, txin.public_key, sign_digest(key, digest))
        for txin, (_, key) in zip(unsigned.inputs, spends, strict=True)
    )
    return Transaction(signed, unsigned.outputs)
