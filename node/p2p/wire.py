"""Node-to-node wire formats: batches in the canonical binary encoding.

A peer request body is one batch.  Decoding is strict and bounded, so a
malformed or oversized body is refused before anything is allocated for it.
"""

from __future__ import annotations

from node.consensus.messages import Proposal, Vote
from node.consensus.round_status import Decided, RoundStatus
from node.encoding import DecodeError, Reader, Writer
from node.types.block import Block
from node.types.commit import Commit
from node.types.transaction import MAX_TX_BYTES, Transaction

MAX_BATCH_TXS = 10_000
MAX_BATCH_MESSAGES = 10_000
MAX_BATCH_BLOCKS = 100
MAX_BLOCK_BYTES_WIRE = 64 * 1024 * 1024
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
MAX_BATCH_BYTES = 16 * 1024 * 1024
"""Largest batch body a sender builds: a peer's default request-body limit (``NodeConfig.max_request_bytes``).
A peer with a smaller limit answers 413 and the sender splits the batch."""
BATCH_HEADER_BYTES = 4
"""The u32 item count in front of every batch."""

KIND_PROPOSAL = 1
KIND_VOTE = 2
KIND_DECIDED = 3
_KINDS: dict[int, type[Proposal] | type[Vote] | type[Decided]] = {
    KIND_PROPOSAL: Proposal, KIND_VOTE: Vote, KIND_DECIDED: Decided}


def encode_tx_batch(raw_txs: list[bytes]) -> bytes:
    w = Writer().u32(len(raw_txs))
    for raw in raw_txs:
        w.var_bytes(raw)
    return w.getvalue()


def tx_batch_item_bytes(raw: bytes) -> int:
    """Bytes one transaction adds to ``encode_tx_batch`` (its u32 length, then itself)."""
    return 4 + len(raw)


def decode_tx_batch(data: bytes) -> list[bytes]:
    """The raw transactions of a batch; each is decoded (and judged) on its own by the caller."""
    r = Reader(data)
    out = [r.var_bytes(MAX_TX_BYTES) for _ in range(r.count(MAX_BATCH_TXS))]
    r.finish()
    return out


ConsensusMessage = Proposal | Vote | Decided


def encode_consensus_message(message: ConsensusMessage) -> bytes:
    kind = KIND_PROPOSAL if isinstance(message, Proposal) else KIND_VOTE if isinstance(message, Vote) else KIND_DECIDED
    return Writer().u8(kind).var_bytes(message.encode()).getvalue()


def encode_consensus_batch(encoded_messages: list[bytes]) -> bytes:
    """``encoded_messages`` are outputs of ``encode_consensus_message``."""
    w = Writer().u32(len(encoded_messages))
    for item in encoded_messages:
        w.raw(item)
    return w.getvalue()


def decode_consensus_batch(data: bytes) -> list[tuple[ConsensusMessage | DecodeError, bytes]]:
    """Each message decoded on its own (one bad message does not spoil the batch), paired with its
    framed bytes as they arrived: decoding is strict, so those equal ``encode_consensus_message``
    of the message and can be hashed and re-flooded without encoding it again."""
    r = Reader(data)
    out = _read_consensus_messages(r, data)
    r.finish()
    return out


def _read_consensus_messages(r: Reader, data: bytes) -> list[tuple[ConsensusMessage | DecodeError, bytes]]:
    out: list[tuple[ConsensusMessage | DecodeError, bytes]] = []
    for _ in range(r.count(MAX_BATCH_MESSAGES)):
        start = len(data) - r.remaining()
        kind = r.u8()
        payload = r.var_bytes(MAX_MESSAGE_BYTES)
        framed = data[start:len(data) - r.remaining()]
        cls = _KINDS.get(kind)
        if cls is None:
            out.append((DecodeError(f"unknown consensus message kind {kind}"), framed))
            continue
        try:
            out.append((cls.decode(payload), framed))
        except DecodeError as exc:
            out.append((exc, framed))
    return out


def encode_status_answer(status: RoundStatus, encoded_messages: list[bytes]) -> bytes:
    """A peer's answer to a round status: its own status, then the messages the asker lacks."""
    return Writer().var_bytes(status.encode()).raw(encode_consensus_batch(encoded_messages)).getvalue()


def decode_status_answer(data: bytes) -> tuple[RoundStatus, list[tuple[ConsensusMessage | DecodeError, bytes]]]:
    r = Reader(data)
    status = RoundStatus.decode(r.var_bytes(MAX_MESSAGE_BYTES))
    messages = _read_consensus_messages(r, data)
    r.finish()
    return status, messages


def encode_block_batch(items: list[tuple[bytes, bytes]]) -> bytes:
    """(encoded block, encoded commit certificate) pairs."""
    w = Writer().u32(len(items))
    for block_bytes, commit_bytes in items:
        w.var_bytes(block_bytes).var_bytes(commit_bytes)
    return w.getvalue()


def decode_block_batch(data: bytes) -> list[tuple[Block, Commit]]:
    r = Reader(data)
    out = []
    for _ in range(r.count(MAX_BATCH_BLOCKS)):
        block = Block.decode(r.var_bytes(MAX_BLOCK_BYTES_WIRE))
        commit = Commit.decode(r.var_bytes(MAX_MESSAGE_BYTES))
        out.append((block, commit))
    r.finish()
    return out


def decode_transaction_or_error(raw: bytes) -> Transaction | DecodeError:
    try:
        return Transaction.decode(raw)
    except DecodeError as exc:
        return exc
