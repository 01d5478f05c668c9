"""A Byzantine validator for fault drills: the node's own ``Node`` that serves some peers tampered blocks.

    python -m devnet.byzantine --home DIR [--seed S] [--tamper-to NAME,NAME,...]

It runs exactly what ``ledger-node start --home DIR`` runs (``node/cli.py``),
on a validator's own home (its key, store, signer state and write-ahead log),
so it votes and proposes like that validator, never signs twice, and can be
swapped back for the honest process afterwards.  Two things differ:

- **Proposals**: its own proposals go unchanged to some peers and, to the
  others, as a copy whose block bytes carry one transaction with a changed
  signature (``s`` replaced by ``n - s``, the classic ECDSA malleation, so
  the txid stays the same).  The header is untouched, so the copy names the
  same block id and carries the same proposal signature.
- **Blocks it serves**: its block-sync answers to those peers carry such a
  tampered transaction in the first block of the answer that has one, and so
  do the decided blocks in its round-state answers (how the relay hands a
  lagging peer a block).

With ``--equivocate`` (the drill's twin: a second process with a stolen
key) it does nothing of the above; instead, for every vote for a block it
casts, it sends its peers a conflicting vote for nil at the same height,
round and step, signed with the key but past the signer's guard.  Honest
nodes that see both record the equivocation as evidence.

With ``--corrupt-chunks`` it serves every snapshot chunk it is asked for
with one byte flipped (to every peer, throughout): a node that joins by
state sync must drop it and fetch those chunks from the others.

With ``--lie-balances AMOUNT`` it does nothing of the above either; its REST API adds AMOUNT base units
to every balance it reports (now and at past heights) and to the first unspent output of every page, and signs
those lies with its validator key when asked to attest them: a wallet that reads from several validators must
outvote it (``wallet.quorum``).

A peer is tampered with when its name (what it says of itself in the
handshake) is in ``--tamper-to``; without it the choice is made from
``--seed``.

Honest nodes must drop a tampered copy (a block id covers every byte of the
block) without halting; ``ledger-devnet drill --faults tamper`` checks that.
This is a test tool: it overrides methods of the real node and of its peer
reactor and nothing else.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import logging
import sys

from node.consensus.actions import BroadcastProposal, BroadcastVote
from node.consensus.messages import sign_vote
from node.consensus.round_status import Decided, RoundStatus
from node.crypto import N
from node.encoding import Reader
from node.p2p import snapshot_wire
from node.p2p.channels import CONSENSUS
from node.p2p.peer_link import PeerLink
from node.p2p.reactor import PeerReactor
from node.p2p.wire import (
    MAX_BATCH_BLOCKS,
    MAX_BLOCK_BYTES_WIRE,
    MAX_MESSAGE_BYTES,
    decode_consensus_batch,
    encode_block_batch,
    encode_consensus_batch,
    encode_consensus_message,
)
from node.runtime import Node
from node.types.block import Block
from node.types.transaction import Transaction, TxInput

log = logging.getLogger("ledger.byzantine")

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
    """A block-sync answer with its first block that has a transaction tampered, and that block's
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


def tamper_decided(encoded: list[bytes]) -> tuple[list[bytes], list[int]]:
    """Round-state answer messages with every decided block in them tampered, and their heights."""
    out, heights = [], []
    for raw in encoded:
        [(message, _)] = decode_consensus_batch(encode_consensus_batch([raw]))
        if isinstance(message, Decided):
            forged = tamper_block(message.value)
            if forged is not None:
                raw = encode_consensus_message(Decided(forged, message.commit))
                heights.append(message.height)
        out.append(raw)
    return out, heights


class Targets:
    """Which peers get tampered copies: the names given, or a choice made from the seed."""

    def __init__(self, seed: int, names: list[str] | None = None):
        self.seed = seed
        self.names = {n.strip() for n in names} if names else None

    def __contains__(self, name: str) -> bool:
        if self.names is not None:
            return name in self.names
        return hashlib.sha256(f"tamper-{self.seed}-{name}".encode()).digest()[0] % 2 == 0


# --------------------------------------------------------------------------- the node and its app


class TamperingReactor(PeerReactor):
    """The node's own reactor; what it serves to a target is tampered with."""

    targets = Targets(0)

    def answer_blocks(self, link: PeerLink, start: int, end: int) -> bytes:
        honest = super().answer_blocks(link, start, end)
        if link.name not in self.targets:
            return honest
        body, height = tamper_block_batch(honest)
        if height is not None:
            log.warning("byzantine: tampered sync answer height=%d to %s", height, link.name)
        return body

    def answer_round_status(self, link: PeerLink, status: RoundStatus) -> list[bytes]:
        honest = super().answer_round_status(link, status)
        if link.name not in self.targets:
            return honest
        forged, heights = tamper_decided(honest)
        if heights:
            log.warning("byzantine: tampered decided block height=%d to %s", heights[0], link.name)
        return forged


class TamperingNode(Node):
    """The real node; its reactor and the fan-out of its own proposals differ."""

    targets = Targets(0)
    """Set by ``main`` before the node is built."""
    corrupt_chunks = False
    """Serve every snapshot chunk with a byte flipped (``--corrupt-chunks``)."""
    equivocate = False
    """Send a conflicting nil vote for every block vote (``--equivocate``)."""
    lie_balances = 0
    """Base units added to every balance and first unspent output the REST API reports (``--lie-balances``)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.lie_balances:
            self._lie_about_balances(self.lie_balances)
        if self.corrupt_chunks:
            honest = self.peers.serve_snapshot

            def corrupted(kind: int, body: bytes) -> bytes:
                answer = honest(kind, body)
                if kind == snapshot_wire.CHUNK_REQUEST and answer:
                    log.warning("byzantine: corrupted snapshot chunk %s", body.hex()[:16])
                    return answer[:-1] + bytes([answer[-1] ^ 0x01])
                return answer
            self.peers.serve_snapshot = corrupted

    def _lie_about_balances(self, extra: int) -> None:
        """Wrap the store's address reads that only the REST API makes (consensus never reads them)."""
        store = self.store
        balance, balance_at, utxos_of = store.balance, store.balance_at, store.utxos_of
        store.balance = lambda address: balance(address) + extra  # type: ignore[method-assign]
        store.balance_at = lambda address, height: balance_at(address, height) + extra  # type: ignore[method-assign]

        def lying_utxos(address, limit=100, after=None):
            items = utxos_of(address, limit, after)
            if items:
                outpoint, entry = items[0]
                items[0] = (outpoint, dataclasses.replace(entry, amount=entry.amount + extra))
            return items
        store.utxos_of = lying_utxos  # type: ignore[method-assign]
        log.warning("byzantine: lying about balances by %d base units", extra)

    def _build_peers(self) -> PeerReactor:
        honest = super()._build_peers()
        reactor = TamperingReactor(honest.switch, serve_block=self._serve_block,
                                   request_timeout_s=honest.request_timeout_s)
        reactor.targets = self.targets
        return reactor

    def _run_actions(self, actions: list) -> None:
        if self.equivocate:
            super()._run_actions(actions)
            for action in actions:
                if isinstance(action, BroadcastVote) and action.vote.block_hash is not None:
                    self._send_conflicting(action.vote)
            return
        plain: list = []
        for action in actions:
            if isinstance(action, BroadcastProposal):
                super()._run_actions(plain)
                plain = []
                self._broadcast_split(action.proposal)
            else:
                plain.append(action)
        super()._run_actions(plain)

    def _send_conflicting(self, vote) -> None:
        """A vote for nil where this node voted for a block: same height, round and step, its own key."""
        conflicting = sign_vote(self.chain_id, self.key.private_key, vote.validator, vote.vote_type, vote.height,
                                vote.round, None, vote.time_ms)
        self.peers.broadcast_consensus(encode_consensus_message(conflicting))
        log.warning("byzantine: equivocated height=%d round=%d %s", vote.height, vote.round,
                    vote.vote_type.name.lower())

    def _broadcast_split(self, proposal) -> None:
        encoded = encode_consensus_message(proposal)
        self.relay.mark_seen(hashlib.sha256(encoded).digest())
        forged_value = tamper_block(proposal.value)
        forged = None if forged_value is None else \
            encode_consensus_message(dataclasses.replace(proposal, value=forged_value))
        tampered_to = []
        for link in self.peers.links:
            if not link.up:
                continue
            if forged is not None and link.name in self.targets:
                link.send(CONSENSUS, forged)
                tampered_to.append(link.name)
            else:
                link.send(CONSENSUS, encoded)
        if tampered_to:
            log.warning("byzantine: tampered proposal height=%d round=%d to %s", proposal.height, proposal.round,
                        ",".join(tampered_to))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devnet.byzantine", description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", required=True, help="the validator's home (stop its honest process first)")
    parser.add_argument("--seed", type=int, default=0, help="chooses the tampered peers without --tamper-to")
    parser.add_argument("--tamper-to", dest="tamper_to", default="",
                        help="comma-separated names of the peers to tamper with")
    parser.add_argument("--equivocate", action="store_true",
                        help="for every block vote, also send a conflicting nil vote (only this: no other tampering)")
    parser.add_argument("--corrupt-chunks", dest="corrupt_chunks", action="store_true",
                        help="serve every snapshot chunk with a byte flipped (only this: no other tampering)")
    parser.add_argument("--lie-balances", dest="lie_balances", type=int, default=0, metavar="AMOUNT",
                        help="report every balance (and each page's first unspent output) AMOUNT base units higher, "
                             "signed when attested (only this: no other tampering)")
    args = parser.parse_args(argv)
    from node import cli, runtime

    TamperingNode.targets = Targets(args.seed, [n for n in args.tamper_to.split(",") if n.strip()] or None)
    if args.corrupt_chunks or args.equivocate or args.lie_balances:
        TamperingNode.targets = Targets(args.seed, ["(nobody)"])
        TamperingNode.corrupt_chunks = args.corrupt_chunks
        TamperingNode.equivocate = args.equivocate
        TamperingNode.lie_balances = args.lie_balances
    # node.cli.run_node imports the name when it runs; mypy refuses assignments to a class
    runtime.Node = TamperingNode  # type: ignore[misc]  # a deliberate monkeypatch, see above
    return cli.main(["start", "--home", args.home])


if __name__ == "__main__":
    sys.exit(main())
