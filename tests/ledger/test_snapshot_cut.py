"""Snapshots cut each partition into chunks of at most ``CHUNK_OUTPUTS`` outputs: however the outputs fall (anyone
who pays for transactions chooses their txids' first byte), no chunk is larger than every node accepts, and one
state has one manifest."""

from __future__ import annotations

import dataclasses

import pytest

from node.crypto import sha256
from node.ledger import errors as E
from node.ledger.snapshot import (
    CHUNK_OUTPUTS,
    MAX_CHUNK_BYTES,
    MAX_CHUNK_FILE_BYTES,
    MAX_CHUNKS,
    PARTITIONS,
    ChunkRef,
    Manifest,
    check_layout,
    chunk_index,
    compress_chunk,
    cut,
    decode_chunk,
    encode_chunk,
)
from node.ledger.state import UtxoEntry
from node.ledger.store_layout import P_UTXO
from node.snapshots import chunks_from_raw
from node.types.transaction import OutPoint

ENTRY = UtxoEntry(b"\x05" * 20, 1_000, 3)


def ground(partition: int, count: int, start: int = 0) -> list[OutPoint]:
    """``count`` outputs whose txids all begin with ``partition`` (index 0: the partition is the first byte)."""
    return [OutPoint(bytes([partition]) + i.to_bytes(31, "big"), 0) for i in range(start, start + count)]


def raw_cut(outpoints: list[OutPoint], workdir) -> list[tuple[int, int, bytes, int]]:
    """What the node's snapshot maker cuts the same outputs into (from the store's raw records)."""
    items = sorted((P_UTXO + op.txid + op.index.to_bytes(4, "big"), ENTRY.encode()) for op in outpoints)
    got: list[tuple[int, int, bytes, int]] = []
    chunks_from_raw(iter(items), lambda *chunk: got.append(chunk), workdir)
    return got


def test_a_partition_of_a_million_ground_outputs_is_cut_into_chunks_every_node_accepts(tmp_path):
    """With one chunk per partition, these outputs (what about 3,900 transactions of 256 outputs each, their txids
    ground to one first byte, leave) made a chunk of 72 MB, over the 64 MiB every node accepted: every snapshot
    after them was refused by every node that tried to copy it."""
    outputs = 1_000_000
    items = ((P_UTXO + bytes([7]) + i.to_bytes(31, "big") + bytes(4), ENTRY.encode()) for i in range(outputs))
    sizes: list[tuple[int, int, int, int]] = []
    kept: dict[tuple[int, int], bytes] = {}

    def on_chunk(partition: int, part: int, raw: bytes, count: int) -> None:
        sizes.append((partition, part, len(raw), count))
        if (partition, part) in ((7, 0), (7, outputs // CHUNK_OUTPUTS)):
            kept[partition, part] = raw

    chunks_from_raw(items, on_chunk, tmp_path / "build")
    assert max(size for _, _, size, _ in sizes) <= MAX_CHUNK_BYTES < 5_000_000
    parts = [(part, count) for partition, part, _, count in sizes if partition == 7]
    assert parts == [(k, CHUNK_OUTPUTS) for k in range(15)] + [(15, outputs - 15 * CHUNK_OUTPUTS)]
    assert len(sizes) == PARTITIONS - 1 + 16
    for (partition, part), raw in kept.items():  # the first and the last part check out as the manifest names them
        compressed = compress_chunk(raw)
        ref = ChunkRef(sha256(raw), CHUNK_OUTPUTS if part == 0 else outputs % CHUNK_OUTPUTS, len(compressed),
                       partition, part)
        decoded = decode_chunk(part, compressed, ref)
        assert decoded[0][0] == OutPoint(bytes([7]) + (part * CHUNK_OUTPUTS).to_bytes(31, "big"), 0)


@pytest.mark.parametrize("count", [CHUNK_OUTPUTS - 1, CHUNK_OUTPUTS, CHUNK_OUTPUTS + 1])
def test_the_maker_cuts_what_the_reference_cut_does_a_full_partition_ending_with_an_empty_chunk(tmp_path, count):
    outpoints = ground(200, count) + ground(3, 5)
    expected = [(partition, part, encode_chunk(partition, part, items), len(items))
                for partition, part, items in cut((op, ENTRY) for op in outpoints)]
    assert raw_cut(outpoints, tmp_path / "build") == expected
    layout = [(partition, part, n) for partition, part, _, n in expected if partition == 200]
    assert layout == ([(200, 0, count)] if count < CHUNK_OUTPUTS else
                      [(200, 0, CHUNK_OUTPUTS), (200, 1, count - CHUNK_OUTPUTS)])
    assert all(chunk_index(op) == 200 for op in ground(200, 3))
    refs = tuple(ChunkRef(sha256(raw), n, 1, partition, part) for partition, part, raw, n in expected)
    check_layout(refs)
    manifest = Manifest("c", 1, bytes(32), bytes(32), b"", b"", refs)
    assert Manifest.decode(manifest.encoded) == manifest


def test_manifests_with_another_cut_are_refused():
    def refs(*layout: tuple[int, int, int]) -> tuple[ChunkRef, ...]:
        named = {(p, k): n for p, k, n in layout}
        every = [(p, 0, 0) for p in range(PARTITIONS) if (p, 0) not in named]
        return tuple(ChunkRef(bytes(32), n, 1, p, k) for p, k, n in sorted(every + list(layout)))

    check_layout(refs((9, 0, CHUNK_OUTPUTS), (9, 1, 0)))
    most = refs(*[(0, k, CHUNK_OUTPUTS) for k in range(MAX_CHUNKS - PARTITIONS)], (0, MAX_CHUNKS - PARTITIONS, 1))
    assert len(most) == MAX_CHUNKS
    check_layout(most)  # 268 million outputs: the most a manifest names
    too_many = refs(*[(0, k, CHUNK_OUTPUTS) for k in range(MAX_CHUNKS - PARTITIONS + 1)], (0, MAX_CHUNKS, 1))
    with pytest.raises(E.SnapshotError, match=f"names {MAX_CHUNKS + 1} chunks, more than the {MAX_CHUNKS}"):
        check_layout(too_many)
    with pytest.raises(E.SnapshotError, match="at most"):  # a chunk claimed larger than any compressed chunk
        check_layout(tuple(dataclasses.replace(ref, size=MAX_CHUNK_FILE_BYTES + 1) if ref.partition == 3 else ref
                           for ref in refs()))
    check_layout(refs((9, 0, CHUNK_OUTPUTS), (9, 1, CHUNK_OUTPUTS), (9, 2, 12)))
    for bad, says in (
            (refs((9, 0, CHUNK_OUTPUTS + 1)), "at most"),  # one chunk over the bound
            (refs((9, 0, CHUNK_OUTPUTS)), "part 1 of partition 9"),  # a full chunk must be followed by its next part
            (refs((9, 0, 10), (9, 1, 10)), "part 0 of partition 10"),  # a partition cut before it was full
            (refs()[:-1], "end before part 0 of partition 255"),
            (refs() + (ChunkRef(bytes(32), 0, 1, 255, 1),), "part 0 of partition 256"),
            (tuple(reversed(refs())), "part 0 of partition 0")):
        with pytest.raises(E.SnapshotError, match=says) as info:
            check_layout(bad)
        assert info.value.code == E.SNAPSHOT_FORMAT
        with pytest.raises(E.SnapshotError, match=says):  # a manifest that names such chunks does not decode
            Manifest.decode(dataclasses.replace(Manifest("c", 1, bytes(32), bytes(32), b"", b"", refs()),
                                                chunks=bad).encoded)
