"""A Byzantine validator for fault drills: the node's own ``Node`` that serves some peers tampered blocks.

    python -m devnet.byzantine --home DIR [--seed S] [--tamper-to URL,URL,...]

It runs exactly what ``ledger-node start --home DIR`` runs (``node/cli.py``),
on a validator's own home (its key, store, signer state and write-ahead log),
so it votes and proposes like that validator, never signs twice, and can be
swapped back for the honest process afterwards.  Two things differ:

- **Proposals**: its own proposals go unchanged to some peers and, to the
  others, as a copy whose block bytes carry one transaction with a changed
  signature (``s`` replaced by ``n - s``, the classic ECDSA malleation, so
  the txid stays the same).  The header is untouched, so the copy names the
  same block id and carries the same proposal signature.
- **Blocks it serves**: its ``GET /p2p/blocks`` answers (block sync) to those
  peers carry such a tampered transaction in the first block of the answer
  that has one, and so do the decided blocks in its round-state answers
  (``POST /p2p/round-state``, how the relay hands a lagging peer a block).

A peer is tampered with when its URL is in ``--tamper-to``: for proposals the
URL of the gossip link (the ``peers`` entry in ``config.toml``), for block
sync the requester's own URL (the ``x-ledger-peer`` header every node sends).
Without ``--tamper-to`` the choice is made from ``--seed``.

Honest nodes must drop a tampered copy (a block id covers every byte of the
block) without halting; ``ledger-devnet drill --faults tamper`` checks that.
This is a test tool: it overrides two methods of the real node and nothing
else.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import logging
import sys
from typing import Annotated

from fastapi import Query, Request, Response

from node.api import app as api_app
from node.consensus.actions import BroadcastProposal
from node.consensus.round_status import Decided
from node.crypto import N
from node.encoding import Reader
from node.p2p.gossip import PEER_HEADER
from node.p2p.wire import (
    MAX_BATCH_BLOCKS,
    MAX_BLOCK_BYTES_WIRE,
    MAX_MESSAGE_BYTES,
    decode_status_answer,
    encode_block_batch,
    encode_consensus_message,
    encode_status_answer,
)
from node.runtime import Node
from node.types.block import Block
from node.types.transaction import Transaction, TxInput

log = logging.getLogger("ledger.byzantine")

_honest_create_app = api_app.create_app

# --------------------------------------------------------------------------- tampering (pure)


def tamper_block(block_bytes: bytes) -> bytes | None:
    """The same block (same header, so the same id) with the first input signature of its first
    transaction malleated (``r || s`` -> ``r || n - s``); None for a block without transactions."""
    block = Block.decode(block_bytes)
    for index, tx in enumerate(block.txs):
        if not tx.inputs:
            continue
        first = tx.inputs[0]
        s = int.from_bytes(first.signature[32:], "big")
        forged = TxInput(first.prev, first.public_key, first.signature[:32] + (N - s).to_bytes(32, "big"))
        tampered = Transaction((forged,) + tx.inputs[1:], tx.outputs)
        txs = block.txs[:index] + (tampered,) + block.txs[index + 1:]
        return Block(block.header, txs, block.last_commit).encode()
    return None


def tamper_block_batch(data: bytes) -> tuple[bytes, int | None]:
    """A ``/p2p/blocks`` answer with its first block that has a transaction tampered, and that block's
    height (None when no block in it has one: the answer is then unchanged)."""
    r = Reader(data)
    items = [(r.var_bytes(MAX_BLOCK_BYTES_WIRE), r.var_bytes(MAX_MESSAGE_BYTES))
             for _ in range(r.count(MAX_BATCH_BLOCKS))]
    r.finish()
    for i, (block_bytes, commit_bytes) in enumerate(items):
        forged = tamper_block(block_bytes)
        if forged is not None:
            items[i] = (forged, commit_bytes)
            return encode_block_batch(items), Block.decode(forged).height
    return data, None


def tamper_status_answer(data: bytes) -> tuple[bytes, list[int]]:
    """A round-state answer with every decided block in it tampered, and their heights."""
    status, messages = decode_status_answer(data)
    framed, heights = [], []
    for message, raw in messages:
        if isinstance(message, Decided):
            forged = tamper_block(message.value)
            if forged is not None:
                raw = encode_consensus_message(Decided(forged, message.commit))
                heights.append(message.height)
        framed.append(raw)
    return (encode_status_answer(status, framed), heights) if heights else (data, [])


class Targets:
    """Which peers get tampered copies: the URLs given, or a choice made from the seed."""

    def __init__(self, seed: int, urls: list[str] | None = None):
        self.seed = seed
        self.urls = {u.rstrip("/") for u in urls} if urls else None

    def __contains__(self, url: str) -> bool:
        url = url.rstrip("/")
        if self.urls is not None:
            return url in self.urls
        return hashlib.sha256(f"tamper-{self.seed}-{url}".encode()).digest()[0] % 2 == 0


# --------------------------------------------------------------------------- the node and its app


class TamperingNode(Node):
    """The real node; only the fan-out of its own proposals differs."""

    targets = Targets(0)
    """Set by ``main`` before the node is built."""

    def _run_actions(self, actions: list) -> None:
        plain: list = []
        for action in actions:
            if isinstance(action, BroadcastProposal):
                super()._run_actions(plain)
                plain = []
                self._broadcast_split(action.proposal)
            else:
                plain.append(action)
        super()._run_actions(plain)

    def _broadcast_split(self, proposal) -> None:
        encoded = encode_consensus_message(proposal)
        self.relay.mark_seen(hashlib.sha256(encoded).digest())
        forged_value = tamper_block(proposal.value)
        forged = None if forged_value is None else \
            encode_consensus_message(dataclasses.replace(proposal, value=forged_value))
        tampered_to = []
        for link in self.gossip.links:
            if forged is not None and link.url in self.targets:
                link.queue_consensus(forged)
                tampered_to.append(link.url)
            else:
                link.queue_consensus(encoded)
        if tampered_to:
            log.warning("byzantine: tampered proposal height=%d round=%d to %s", proposal.height, proposal.round,
                        ",".join(tampered_to))


def _take_route(app, path: str):
    """Remove the route for ``path`` and return its handler."""
    route = next(r for r in app.router.routes if getattr(r, "path", None) == path)
    app.router.routes.remove(route)
    return route.endpoint


def create_tampering_app(node: TamperingNode):
    """The node's own app; the two routes that serve blocks to peers tamper with their answers to targets."""
    app = _honest_create_app(node)
    honest_blocks = _take_route(app, "/p2p/blocks")
    honest_round_state = _take_route(app, "/p2p/round-state")

    @app.get("/p2p/blocks", tags=["p2p"])
    async def p2p_blocks(request: Request, from_: Annotated[int, Query(alias="from", ge=1)],
                         to: Annotated[int, Query(ge=1)]):
        response = await honest_blocks(from_=from_, to=to)
        peer = request.headers.get(PEER_HEADER, "")
        if peer not in node.targets:
            return response
        body, height = tamper_block_batch(bytes(response.body))
        if height is not None:
            log.warning("byzantine: tampered sync answer height=%d to %s", height, peer)
        return Response(body, media_type="application/octet-stream")

    @app.post("/p2p/round-state", tags=["p2p"])
    async def p2p_round_state(request: Request):
        response = await honest_round_state(request)
        peer = request.headers.get(PEER_HEADER, "")
        if peer not in node.targets or response.status_code != 200:
            return response
        body, heights = tamper_status_answer(bytes(response.body))
        if heights:
            log.warning("byzantine: tampered decided block height=%d to %s", heights[0], peer)
        return Response(body, media_type="application/octet-stream")

    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devnet.byzantine", description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", required=True, help="the validator's home (stop its honest process first)")
    parser.add_argument("--seed", type=int, default=0, help="chooses the tampered peers without --tamper-to")
    parser.add_argument("--tamper-to", dest="tamper_to", default="",
                        help="comma-separated peer URLs to tamper with (link URLs and requesters' own URLs)")
    args = parser.parse_args(argv)
    from node import cli, runtime

    TamperingNode.targets = Targets(args.seed, [u for u in args.tamper_to.split(",") if u.strip()] or None)
    # node.cli.run_node imports both names when it runs; mypy refuses assignments to a class
    runtime.Node = TamperingNode  # type: ignore[misc]  # a deliberate monkeypatch, see above
    api_app.create_app = create_tampering_app
    return cli.main(["start", "--home", args.home])


if __name__ == "__main__":
    sys.exit(main())
