"""Node-to-node message formats, in the canonical binary encoding: the payloads of the peer channels
(``node.p2p.channels``): transaction and consensus batches, block batches, block-sync messages.

Decoding is strict and bounded, so a malformed or oversized message is refused before anything is
allocated for it.
"""

from __future__ import annotations

from node.consensus.messages import Proposal, Vote
from node.consensus.round_status import Decided
from node.encoding import DecodeError, Reader, Writer
from node.errors import detached
from node.types.block import Block
from node.types.commit import Commit
from node.types.transaction import MAX_TX_BYTES

MAX_BATCH_TXS = 10_000
MAX_BATCH_MESSAGES = 10_000
MAX_BATCH_BLOCKS = 100
MAX_BLOCK_BYTES_WIRE = 64 * 1024 * 1024
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
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
            out.append((detached(exc), framed))  # kept as a value: without the frames that raised it
    return out


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


# --------------------------------------------------------------------------- block sync channel

SYNC_HEIGHT = 1
"""The sender's committed height and the earliest height whose block it still serves (it prunes below that),
sent on connect and after every commit."""
SYNC_REQUEST = 2
"""Blocks ``from``..``to`` please, under a request id."""
SYNC_BLOCKS = 3
"""The answer to a request: a block batch (possibly shorter than asked, empty when none is held)."""


def encode_sync_height(height: int, earliest: int) -> bytes:
    return Writer().u8(SYNC_HEIGHT).u64(height).u64(earliest).getvalue()


def encode_sync_request(request_id: int, start: int, end: int) -> bytes:
    return Writer().u8(SYNC_REQUEST).u32(request_id).u64(start).u64(end).getvalue()


def encode_sync_blocks(request_id: int, batch: bytes) -> bytes:
    """``batch`` is an ``encode_block_batch`` output."""
    return Writer().u8(SYNC_BLOCKS).u32(request_id).raw(batch).getvalue()


def decode_sync_message(data: bytes) -> tuple[int, int, tuple[int, int], bytes]:
    """(kind, height or request id, (from, to) of a request or (earliest, 0) of a height, block batch bytes of an
    answer)."""
    r = Reader(data)
    kind = r.u8()
    if kind == SYNC_HEIGHT:
        height, earliest = r.u64(), r.u64()
        r.finish()
        if earliest > height + 1:
            raise DecodeError(f"earliest height {earliest} above the announced height {height} + 1")
        return kind, height, (earliest, 0), b""
    if kind == SYNC_REQUEST:
        request_id, start, end = r.u32(), r.u64(), r.u64()
        r.finish()
        return kind, request_id, (start, end), b""
    if kind == SYNC_BLOCKS:
        request_id = r.u32()
        return kind, request_id, (0, 0), data[5:]
    raise DecodeError(f"unknown block-sync message kind {kind}")
