"""Block sync from a peer that tampers with certified blocks (issue 10).

A real one-validator chain is made in-process (the validator's own
consensus, store and execution), then a full node with a real Store in a
temporary home drives ``BlockSync.sync_once`` against two stubbed peer links
(their block requests answered from that chain's store): the first tampers with what it serves, the second is
honest.  The full node must drop the tampering peer, fetch the same heights
from the honest one and reach the tip; it must never stop on the lie.  It
declares state divergence only when certified bytes themselves fail here.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from pathlib import Path

import pytest

from devnet.cluster import devnet_params
from genesis.build import make_devnet_genesis
from genesis.document import dump_genesis, genesis_hash
from node.config import DATA_DIR, NodeConfig
from node.crypto import address_hash, derive_public_key
from node.home import init_home
from node.ledger.errors import BLK_APPHASH, BlockError
from node.ledger.store import Store
from node.p2p.wire import encode_block_batch
from node.runtime import Node, StateDivergence
from node.types.block import Block
from node.types.commit import Commit
from node.types.transaction import TxOutput, sign_transaction

TAMPERING = "aa" * 20 + "@tampering-peer.invalid:1"
HONEST = "bb" * 20 + "@honest-peer.invalid:1"
CHAIN_HEIGHT = 6


async def _make_chain(home: Path, wallets: dict[str, bytes], chain_id: str) -> None:
    """Run the validator until CHAIN_HEIGHT, with transactions in some of its blocks."""
    node = Node(home, NodeConfig(name="validator", create_empty_blocks_ms=1))
    node.start_consensus()
    try:
        sent = 0
        deadline = time.monotonic() + 60
        while node.store.height < CHAIN_HEIGHT and node.fatal is None:
            assert time.monotonic() < deadline, "the one-validator chain did not grow"
            if sent < 2 and node.store.height >= 1 + 2 * sent:
                key = wallets["faucet"] if sent == 0 else wallets[sorted(w for w in wallets if w != "faucet")[0]]
                owner = address_hash(derive_public_key(key))
                outpoint, entry = node.store.utxos_of(owner, limit=1)[0]
                tx = sign_transaction(chain_id, [(outpoint, key)],
                                      [TxOutput(bytes(20), 1000 + sent), TxOutput(owner, entry.amount - 2000)])
                assert node.admission.admit_client_txs([tx]) == [True]
                sent += 1
            await asyncio.sleep(0.02)
        assert node.fatal is None, node.fatal
    finally:
        await node.stop()


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """(genesis path, the validator's store holding a certified chain, chain id)."""
    base = tmp_path_factory.mktemp("sync-chain")
    genesis, keys, wallets = make_devnet_genesis(1, chain_id="sync-test", params=devnet_params(), demo_wallets=1)
    genesis_path = base / "genesis.json"
    dump_genesis(genesis, genesis_path)
    (name, key), = keys.items()
    home = base / name
    init_home(home, genesis_path, key, NodeConfig(name=name))
    asyncio.run(_make_chain(home, wallets, genesis.chain_id))
    store = Store.open(str(home / DATA_DIR))
    assert store.height >= CHAIN_HEIGHT
    assert any(store.get_block(h).txs for h in range(1, store.height + 1))
    yield genesis_path, store, genesis_hash(genesis).hex(), genesis.chain_id
    store.close()


# ------------------------------------------------------------------ ways to lie about a certified block


def flip(data: bytes, at: int) -> bytes:
    out = bytearray(data)
    out[at] ^= 0x01
    return bytes(out)


def tx_signature(block: Block, commit: Commit) -> tuple[Block, Commit]:
    """One signature byte of the first transaction: same header, same certificate, other bytes."""
    if not block.txs:
        return block, commit
    tx = block.txs[0]
    txin = dataclasses.replace(tx.inputs[0], signature=flip(tx.inputs[0].signature, 40))
    tampered = dataclasses.replace(tx, inputs=(txin, *tx.inputs[1:]))
    return Block(block.header, (tampered, *block.txs[1:]), block.last_commit), commit


def last_commit(block: Block, commit: Commit) -> tuple[Block, Commit]:
    """One signature byte of the certificate the block carries for its parent."""
    if block.last_commit is None:
        return block, commit
    first = block.last_commit.signatures[0]
    broken = dataclasses.replace(first, signature=flip(first.signature, 40))
    carried = dataclasses.replace(block.last_commit, signatures=(broken, *block.last_commit.signatures[1:]))
    return Block(block.header, block.txs, carried), commit


def header(block: Block, commit: Commit) -> tuple[Block, Commit]:
    """Another header under the real certificate."""
    return Block(dataclasses.replace(block.header, app_hash=b"\x66" * 32), block.txs, block.last_commit), commit


# ------------------------------------------------------------------ the syncing node


class StubConnection:
    """What block sync reads of a live connection: whether it is open, and ``close``."""

    def __init__(self):
        self.close_reason = ""

    def close(self, reason: str, tell_peer: bool = True) -> None:
        self.close_reason = reason


def serve(store: Store, tamper=None):
    """A peer's answers to block requests over ``store``, lying with ``tamper`` when given."""

    async def request_blocks(start: int, end: int) -> bytes:
        items = []
        for height in range(start, min(end, store.height) + 1):
            block, commit = store.get_block(height), store.get_commit(height)
            if tamper is not None:
                block, commit = tamper(block, commit)
            items.append((block.encode(), commit.encode()))
        return encode_block_batch(items)

    return request_blocks


def full_node(tmp_path: Path, chain, tamper) -> Node:
    genesis_path, store, _genesis_hex, _chain_id = chain
    home = tmp_path / "full"
    config = NodeConfig(name="full", peers=(TAMPERING, HONEST))
    init_home(home, genesis_path, None, config)
    node = Node(home, config)
    node.loop = asyncio.get_running_loop()  # what start_consensus sets; the links are stubs, not started
    servers = {}
    for link in node.peers.links:
        servers[link.node_id] = serve(store, tamper if str(link.address) == TAMPERING else None)
        link.connection = StubConnection()  # type: ignore[assignment]
        link.height = store.height

    async def request_blocks(link, start, end):
        return await servers[link.node_id](start, end) if link.up else None

    node.peers.request_blocks = request_blocks  # type: ignore[method-assign]
    return node


async def sync_until(node: Node, height: int, rounds: int = 4) -> None:
    for _ in range(rounds):
        await node.sync.sync_once()
        if node.store.height >= height or node.fatal is not None:
            return


@pytest.mark.parametrize("tamper", [tx_signature, last_commit, header])
def test_tampering_peer_is_dropped_and_an_honest_one_serves_the_same_heights(tmp_path, chain, tamper, caplog):
    top = chain[1].height

    async def scenario():
        node = full_node(tmp_path, chain, tamper)
        try:
            await sync_until(node, top)
            links = {str(link.address): link for link in node.peers.links}
            return node.fatal, node.store.height, node.store.tip_hash, links[TAMPERING].up, links[HONEST].up
        finally:
            await node.stop()

    with caplog.at_level(logging.WARNING, logger="ledger.node"):
        fatal, height, tip, tampering_up, honest_up = asyncio.run(scenario())
    assert fatal is None, f"the node stopped on a tampering peer: {fatal}"
    assert height == top and tip == chain[1].tip_hash
    assert not tampering_up and honest_up
    assert any(TAMPERING in r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)
    assert not any("state divergence" in r.getMessage() for r in caplog.records)


def test_certified_bytes_that_fail_here_are_a_divergence(tmp_path, chain):
    """The body matches its certified header, so a failure to execute it is this node's problem."""

    async def scenario():
        node = full_node(tmp_path, chain, None)

        def refuse(block):
            raise BlockError(BLK_APPHASH, "computed another app hash")

        node.application.execute = refuse
        try:
            await sync_until(node, chain[1].height)
            return node.fatal, node.store.height, [link.up for link in node.peers.links]
        finally:
            await node.stop()

    fatal, height, ups = asyncio.run(scenario())
    assert isinstance(fatal, StateDivergence) and height == 0
    assert ups == [True, True]  # no peer is blamed for it
