"""The snapshot channel's messages (0x60): what a node that joins by state sync asks its peers, and their answers.

Every message is ``u8 kind || u32 request id || body``; an answer carries the
id of its request, and only the peer asked may answer it.

    kind  message          body
    1     list request     -
    2     list             count, then each snapshot's manifest (``node.ledger.snapshot``)
    3     anchor request   height u64
    4     anchor           block H, its certificate, set changes (``node.snapshot_file``); empty: none
    5     chunk request    chunk hash (32 bytes)
    6     chunk            the compressed chunk; empty: not held

Nothing a peer sends is believed: the anchor is checked from the genesis,
the manifest against the anchor's header, each chunk against the manifest.
"""

from __future__ import annotations

from node.encoding import DecodeError, Reader, Writer
from node.types.hashes import HASH_SIZE

LIST_REQUEST, LIST, ANCHOR_REQUEST, ANCHOR, CHUNK_REQUEST, CHUNK = 1, 2, 3, 4, 5, 6
REQUESTS = {LIST_REQUEST, ANCHOR_REQUEST, CHUNK_REQUEST}
ANSWERS = {LIST, ANCHOR, CHUNK}
MAX_LISTED = 8


def encode_request(kind: int, request_id: int, body: bytes = b"") -> bytes:
    return Writer().u8(kind).u32(request_id).raw(body).getvalue()


def encode_list_body(manifests: list[bytes]) -> bytes:
    """The body of a list answer."""
    w = Writer().u32(min(len(manifests), MAX_LISTED))
    for manifest in manifests[:MAX_LISTED]:
        w.var_bytes(manifest)
    return w.getvalue()


def decode_message(data: bytes) -> tuple[int, int, bytes]:
    """(kind, request id, body) of a snapshot-channel message."""
    if len(data) < 5:
        raise DecodeError("a snapshot message is at least 5 bytes")
    kind, request_id = data[0], int.from_bytes(data[1:5], "big")
    if kind not in REQUESTS and kind not in ANSWERS:
        raise DecodeError(f"unknown snapshot message kind {kind}")
    body = data[5:]
    if kind == LIST_REQUEST and body:
        raise DecodeError("a list request has no body")
    if kind == ANCHOR_REQUEST and len(body) != 8:
        raise DecodeError("an anchor request names a u64 height")
    if kind == CHUNK_REQUEST and len(body) != HASH_SIZE:
        raise DecodeError("a chunk request names a 32-byte hash")
    return kind, request_id, body


def decode_list(body: bytes, limit: int) -> list[bytes]:
    r = Reader(body)
    out = [r.var_bytes(limit) for _ in range(r.count(MAX_LISTED))]
    r.finish()
    return out
