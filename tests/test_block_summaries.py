"""Block summaries: txid listings read from a block's stored bytes give exactly the JSON (and errors) of a full decode.

``read_block_summary`` cuts each txid's preimage out of the stored bytes
instead of building every ``Transaction``; ``GET /v1/blocks`` without
``txs`` serves from it.  The reference here is ``block_json`` as it was
before summaries existed (kept verbatim below), fed a full ``Block.decode``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import types

import httpx
import pytest

from node.api.app import create_app
from node.api.views import block_json, block_summary_json, commit_json, header_json, reconfig_input_json, tx_json
from node.config import NodeConfig
from node.crypto import address_hash, derive_public_key
from node.encoding import DecodeError
from node.ledger.store import Store
from node.ledger.store_layout import P_BLOCK, U64
from node.types import transaction as transaction_module
from node.types.block import Block, Header, compute_tx_root, read_block_summary, summarize_block
from node.types.commit import Commit, CommitSig, commit_hash
from node.types.reconfig import inputs_hash, power_request, sign_approval, sign_join, sign_quit
from node.types.transaction import OutPoint, Transaction, TxInput, TxOutput
from tests.ledger.ledger_helpers import (
    CHAIN,
    PROPOSER,
    VALIDATORS_HASH,
    addr,
    allocations,
    build_block,
    gen_op,
    key,
    transfer,
)

VALIDATORS = sorted(address_hash(derive_public_key(key(100 + i))) for i in range(4))


def reference_block_json(block: Block, commit: Commit | None, with_txs: bool = True) -> dict:
    """``node.api.views.block_json`` as it was before block summaries (the old path, kept verbatim)."""
    out = {
        "hash": block.hash.hex(),
        "height": block.height,
        "header": header_json(block.header),
        "header_hex": block.header.encode().hex(),
        "tx_count": len(block.txs),
        "txids": [txid.hex() for txid in block.txids],
        "inputs": [reconfig_input_json(item) for item in block.inputs],
        "last_commit": commit_json(block.last_commit),
        "commit": commit_json(commit),
    }
    if with_txs:
        out["txs"] = [tx_json(tx) for tx in block.txs]
    return out


def json_bytes(value: object) -> bytes:
    """What ``JSONResponse`` writes for ``value``."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")).encode()


def certificate_of(height: int, block_hash: bytes) -> Commit:
    return Commit(height, 1, block_hash, tuple(CommitSig(v, 1_000 * height + i, bytes([i + 1]) * 64)
                                                for i, v in enumerate(VALIDATORS)))


def raw_tx(n_inputs: int, n_outputs: int, seed: int) -> Transaction:
    """A transaction of any shape (signatures are bytes here: the reader never checks them)."""
    inputs = tuple(TxInput(OutPoint(bytes([seed, i]) * 16, 7 * i + seed), derive_public_key(key(seed + i)),
                           bytes([seed + i]) * 64) for i in range(n_inputs))
    outputs = tuple(TxOutput(addr(key(seed + 50 + i)), 1 + 1_000 * i) for i in range(n_outputs))
    return Transaction(inputs, outputs)


def make_block(height: int, txs: list[Transaction], inputs: tuple = (), last_commit: Commit | None = None) -> Block:
    header = Header(CHAIN, height, 1_000 * height, bytes([height]) * 32, compute_tx_root(txs), b"\x0a" * 32,
                    PROPOSER, commit_hash(last_commit), VALIDATORS_HASH, VALIDATORS_HASH, inputs_hash(inputs),
                    b"\x0b" * 32)
    return Block(header, tuple(txs), last_commit, inputs)


def block_shapes() -> dict[str, Block]:
    """Blocks of every shape a block can take: empty, one transfer, many inputs and outputs, none of either,
    reconfiguration inputs (an approval of a join, of a power change, a quit), with and without a parent
    certificate."""
    parent = certificate_of(4, b"\x44" * 32)
    join = sign_join(CHAIN, key(200), 10, "new validator", 99)
    reconfig = (sign_approval(CHAIN, key(100), join), sign_approval(CHAIN, key(101), power_request(join.public_key,
                                                                                                 0, 99)),
                sign_quit(CHAIN, key(102), 99, since=3))
    return {
        "empty, first height": make_block(1, []),
        "one transfer": make_block(2, [raw_tx(1, 2, 1)], last_commit=certificate_of(1, b"\x11" * 32)),
        "many inputs and outputs": make_block(5, [raw_tx(1, 1, 2), raw_tx(3, 5, 3), raw_tx(7, 1, 4), raw_tx(2, 9, 5)],
                                              last_commit=parent),
        "no inputs, no outputs": make_block(5, [raw_tx(0, 2, 6), raw_tx(2, 0, 7), raw_tx(0, 0, 8)], last_commit=parent),
        "reconfiguration inputs": make_block(5, [raw_tx(1, 2, 9)], reconfig, parent),
        "reconfiguration only": make_block(5, [], reconfig[2:], parent),
    }


@pytest.mark.parametrize("name", list(block_shapes()))
def test_a_summary_read_from_bytes_lists_the_block_as_a_full_decode_does(name):
    block = block_shapes()[name]
    data = block.encode()
    commit = certificate_of(block.height, block.hash)
    summary = read_block_summary(data)
    assert summary == summarize_block(Block.decode(data)) == summarize_block(block)
    assert summary.txids == [tx.txid for tx in block.txs]
    expected = reference_block_json(Block.decode(data), commit, with_txs=False)
    assert json_bytes(block_summary_json(summary, commit)) == json_bytes(expected)
    assert json_bytes(block_json(Block.decode(data), commit, with_txs=False)) == json_bytes(expected)
    assert json_bytes(block_json(Block.decode(data), None)) == json_bytes(reference_block_json(block, None))


def corruptions(data: bytes):
    """Every truncation of ``data``, each byte flipped, and each byte zeroed (bounded: 3 per byte)."""
    for size in range(len(data)):
        yield data[:size]
    for at in range(len(data)):
        for value in (data[at] ^ 0xFF, 0):
            if value != data[at]:
                yield data[:at] + bytes([value]) + data[at + 1:]
    yield data + b"\x00"


def test_any_damaged_bytes_give_the_error_or_the_summary_a_full_decode_gives():
    blocks = block_shapes()
    data = make_block(5, [raw_tx(1, 2, 1), raw_tx(2, 3, 2)], blocks["reconfiguration only"].inputs,
                      certificate_of(4, b"\x44" * 32)).encode()
    refused = accepted = 0
    for damaged in corruptions(data):
        try:
            expected = summarize_block(Block.decode(damaged))
        except DecodeError as exc:
            with pytest.raises(DecodeError) as caught:
                read_block_summary(damaged)
            assert type(caught.value) is type(exc) and str(caught.value) == str(exc), damaged.hex()
            refused += 1
        else:
            assert read_block_summary(damaged) == expected, damaged.hex()
            accepted += 1
    assert refused > 1_000 and accepted > 100  # both outcomes were exercised (flipped amounts, keys still decode)


def test_bytes_of_another_type_take_the_general_path():
    block = block_shapes()["many inputs and outputs"]
    for data in (bytearray(block.encode()), memoryview(block.encode())):
        assert read_block_summary(data) == summarize_block(block)  # type: ignore[arg-type]  # bytes-like on purpose


# --------------------------------------------------------------------------- a store and the route


GHASH = b"S" * 32


def committed_chain(path, n_blocks: int, recent: int) -> tuple[Store, list[Block]]:
    """A store holding ``n_blocks`` blocks of transfers (one and two inputs, two outputs) chained across blocks,
    each with its parent's certificate and its own; the last ``recent`` are held in memory."""
    store = Store.open(str(path))
    store.initialize_genesis(CHAIN, GHASH, allocations(12, 1_000_000), b"{}")
    store.recent_blocks.max_blocks = recent
    owned = {i: [(gen_op(i), 1_000_000)] for i in range(12)}
    blocks, parent = [], None
    for b in range(n_blocks):
        txs = []
        for i in range(b % 3, 12, 3):
            spends = owned[i] if len(owned[i]) == 2 else owned[i][:1]
            total = sum(amount for _, amount in spends)
            tx = transfer([(op, key(i)) for op, _ in spends],
                          [(addr(key((i + 1) % 12)), total // 4), (addr(key(i)), total - total // 4 - 9)])
            txs.append(tx)
            owned[i] = owned[i][len(spends):] + [(OutPoint(tx.txid, 1), total - total // 4 - 9)]
            owned[(i + 1) % 12].append((OutPoint(tx.txid, 0), total // 4))
        block, result = build_block(store, txs)
        block = dataclasses.replace(block, header=dataclasses.replace(block.header,
                                                                      last_commit_hash=commit_hash(parent)),
                                    last_commit=parent)
        parent = certificate_of(block.height, block.hash)
        store.commit_block(block, parent, result)
        blocks.append(block)
    return store, blocks


def get(store: Store, path: str) -> httpx.Response:
    app = create_app(types.SimpleNamespace(config=NodeConfig(), store=store))

    async def ask():
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)  # a 500 is answered, not raised here
        async with httpx.AsyncClient(transport=transport, base_url="http://node") as client:
            return await client.get(path)
    return asyncio.run(ask())


def test_recent_blocks_are_summarized_from_memory_and_older_ones_from_their_bytes(tmp_path):
    store, blocks = committed_chain(tmp_path / "db", 5, recent=2)
    recent = store.get_block_summary(5)
    assert recent is not None and recent.txids is blocks[4].txids  # the committed object's list: nothing recomputed
    for block in blocks:
        assert store.get_block_summary(block.height) == summarize_block(block)
    assert store.get_block_summary(0) is None and store.get_block_summary(6) is None
    store.close()


def test_the_txids_listing_route_answers_the_old_bytes_without_decoding_a_transaction(tmp_path, monkeypatch):
    store, blocks = committed_chain(tmp_path / "db", 6, recent=2)
    assert any(len(tx.inputs) == 2 for tx in blocks[-1].txs)
    expected: dict = {"height": 6, "from": 1, "to": 6,
                      "blocks": [reference_block_json(b, store.get_commit(b.height), with_txs=False) for b in blocks]}
    with_txs = {**expected, "blocks": [reference_block_json(b, store.get_commit(b.height)) for b in blocks]}
    assert get(store, "/v1/blocks?from=1&to=6&txs=true").content == json_bytes(with_txs)

    def refuse(_data):
        raise AssertionError("a txids listing decoded a transaction")
    monkeypatch.setattr(transaction_module, "decode_transaction", refuse)
    monkeypatch.setattr(Transaction, "decode", classmethod(lambda _cls, data: refuse(data)))
    response = get(store, "/v1/blocks?from=1&to=6")
    assert response.status_code == 200 and response.content == json_bytes(expected)
    top = {"height": 6, "from": 5, "to": 6, "blocks": expected["blocks"][4:]}
    assert get(store, "/v1/blocks?from=5&to=99").content == json_bytes(top)
    store.close()


def test_damaged_stored_bytes_fail_as_a_full_decode_does(tmp_path):
    store, blocks = committed_chain(tmp_path / "db", 3, recent=1)
    data = blocks[0].encode()
    store._db.put(P_BLOCK + U64.pack(1), data[:-1])
    with pytest.raises(DecodeError) as full:
        store.get_block(1)
    with pytest.raises(DecodeError) as summary:
        store.get_block_summary(1)
    assert str(summary.value) == str(full.value)
    for path in ("/v1/blocks?from=1&to=2", "/v1/blocks?from=1&to=2&txs=true"):
        response = get(store, path)
        assert response.status_code == 500 and response.json()["error"]["code"] == "internal-error"
    store.close()
